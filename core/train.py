"""The training loop: Adam on a loss passed in, with a learning-rate schedule, early stopping,
progress reports and cooperative cancellation.

Why one loop with losses passed in: new loss terms (surface fine-tuning, eikonal, ...) never touch the
loop. A loss function takes ``(prediction, target)`` tensors of shape (K, B) and returns a dict of
named (K,) tensors, one value per network of the stack; the loop sums the terms, per network.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from .progress import CancelToken, ProgressCallback, check, report

log = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], dict]
EpochHook = Callable[[int, torch.nn.Module], Optional[tuple]]

#: Check the cancel token every this many gradient steps (about 0.1 s on a 2-core CPU at 8x32).
CANCEL_EVERY_STEPS = 16


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> dict:
    """The paper's loss: mean absolute difference, per network of the stack."""
    return {"l1": (pred - target).abs().mean(dim=1)}


@dataclass
class TrainConfig:
    """The training knobs (a subset of ConversionSettings, so the loop does not depend on it)."""

    epochs: int = 40
    lr: float = 3e-3
    batch_size: int = 4096
    schedule: str = "onecycle"     # onecycle | cosine | constant
    patience: int = 0              # epochs without improvement before stopping; 0 = off
    min_improvement: float = 1e-3  # relative improvement that counts for early stopping


@dataclass
class TrainResult:
    """What happened in training. Losses are per network of the stack (K values)."""

    final_loss: list
    epochs_run: int
    seconds: float
    history: list = field(default_factory=list)   # per epoch: list of K mean losses
    stopped_early: bool = False
    device: str = "cpu"


def use_threads(threads: int) -> int:
    """Set torch's CPU threads to ``threads``, or for 0 to every core but one (at least one).

    Why not every core: torch's threads spin-wait on each other, so when anything else keeps a core
    busy (Blender's UI, a sampling worker, another conversion) a run with as many threads as cores
    slows down severalfold. Measured on a 2-core CPU: bunny.off trained in 27 s with two threads on
    an idle machine, 36 s with one, and 231 s with two while one core was busy.
    """
    n = threads or max(1, (os.cpu_count() or 1) - 1)
    torch.set_num_threads(n)
    return n


def pick_device(name: str, notify: Optional[Callable[[str], None]] = None) -> torch.device:
    """The torch device for the ``device`` setting.

    'auto' -> CUDA when available, else Apple's MPS (Apple Silicon) when it works, else CPU;
    'cuda' without CUDA is an InputError the user can fix; 'mps' (asked for, or chosen by 'auto')
    is first tried on a small computation, and any failure there (no MPS build, an old macOS, a
    driver error) falls back to the CPU: the reason goes to ``notify`` (and the module log), never
    out as an exception.
    """
    from .errors import InputError
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return _mps_or_cpu(notify, asked=False)
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu")
    if name == "mps":
        return _mps_or_cpu(notify, asked=True)
    return torch.device(name)


def _mps_or_cpu(notify: Optional[Callable[[str], None]], asked: bool) -> torch.device:
    """MPS when it is there and a small float32 matrix product on it gives the CPU's answer, else
    the CPU (with the reason to ``notify`` when MPS was asked for or is present but fails)."""
    mps = getattr(torch.backends, "mps", None)
    try:
        available = bool(mps is not None and mps.is_available())
    except Exception as exc:   # a broken MPS backend must never stop a conversion
        available, why = False, f"{type(exc).__name__}: {exc}"
    else:
        why = "torch sees no MPS device (needs Apple Silicon, macOS 12.3+ and an MPS build of torch)"
    if available:
        try:
            a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
            got = (a.to("mps") @ a.T.to("mps")).cpu()
            if torch.allclose(got, a @ a.T):
                return torch.device("mps")
            why = "a test computation on MPS gave a wrong result"
        except Exception as exc:   # any MPS failure: the CPU instead, never an exception
            why = f"{type(exc).__name__}: {exc}"
    if asked or available:
        message = f"MPS is not usable ({why}); training on the CPU instead"
        log.warning(message)
        if notify is not None:
            notify(message)
    return torch.device("cpu")


def _lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the peak learning rate at ``step`` of ``total``."""
    t = step / max(total - 1, 1)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    # one-cycle: linear warm-up over the first 10 %, cosine decay to 1/1000 of the peak
    warm = 0.1
    if t < warm:
        return 0.04 + 0.96 * t / warm
    return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))


def train(model: torch.nn.Module, points: torch.Tensor, targets: torch.Tensor, config: TrainConfig,
          loss_fn: LossFn = l1_loss, progress: Optional[ProgressCallback] = None,
          cancel: Optional[CancelToken] = None, seed: int = 0,
          on_epoch_end: Optional[EpochHook] = None) -> TrainResult:
    """Fit ``model`` (a StackedMLP with K networks) to ``targets`` at ``points``.

    points : (K, n, 3) float32, targets : (K, n) float32, on the model's device.
    on_epoch_end : optional ``hook(epoch, model)`` called after every epoch (epoch counts from 1);
        it may return new ``(points, targets)`` of the same shapes to train on from the next epoch
        (error-driven resampling, see core/refine.py), or None to keep the data. The learning-rate
        schedule is not affected.
    Raises Cancelled (leaving the model half-trained; callers discard it) when ``cancel`` is set.
    """
    device = points.device
    K, n = targets.shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = max(1, math.ceil(n / config.batch_size))
    total_steps = steps_per_epoch * config.epochs
    history, best, since_best = [], None, 0
    t0 = time.perf_counter()
    step = 0
    stopped = False
    for epoch in range(config.epochs):
        perm = torch.randperm(n, generator=gen).to(device)
        P, Y = points[:, perm], targets[:, perm]        # one gather per epoch, then contiguous slices
        sums = torch.zeros(K, device=device)
        for s in range(0, n, config.batch_size):
            if step % CANCEL_EVERY_STEPS == 0:
                check(cancel)
            for g in opt.param_groups:
                g["lr"] = config.lr * _lr_factor(config.schedule, step, total_steps)
            pred = model(P[:, s:s + config.batch_size])
            terms = loss_fn(pred, Y[:, s:s + config.batch_size])
            per_net = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            per_net.sum().backward()
            opt.step()
            sums += terms[next(iter(terms))].detach() * pred.shape[1]
            step += 1
        epoch_loss = (sums / n).cpu().numpy().tolist()
        history.append(epoch_loss)
        elapsed = time.perf_counter() - t0
        report(progress, stage="training", fraction=(epoch + 1) / config.epochs, elapsed=elapsed,
               eta=elapsed / (epoch + 1) * (config.epochs - epoch - 1), epoch=epoch + 1,
               epochs=config.epochs, loss=float(np.mean(epoch_loss)))
        if on_epoch_end is not None and epoch + 1 < config.epochs:
            replaced = on_epoch_end(epoch + 1, model)
            if replaced is not None:
                points, targets = replaced
        if config.patience:
            cur = float(np.mean(epoch_loss))
            if best is None or cur < best * (1 - config.min_improvement):
                best, since_best = cur, 0
            else:
                since_best += 1
                if since_best >= config.patience:
                    stopped = True
                    break
    return TrainResult(history[-1], len(history), time.perf_counter() - t0, history, stopped,
                       str(device))
