"""The one training loop: a stack of K >= 1 networks under Adam, each with its own data, batch
order, learning-rate schedule position, early stop and history; cooperative cancellation.

Why one loop for everything: a shape converted alone (:func:`train`: single, target-error and
budget modes, with their resampling and quantisation-aware hooks) and shapes streaming through a
stack (core.conversion.batch_train, convert-dir) run the same :class:`StackTrainer`, so a recipe or
a speed-up reaches every mode at once, and a shape ends where it would alone whatever its
neighbours.

Why losses passed in: new loss terms never touch the loop. A loss function takes ``(prediction,
target)`` tensors of shape (K, B) and returns the per-network loss (K,) and its gradient with
respect to the prediction (K, B) (core.training.backprop, which computes the rest of the gradient by
hand).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..common.errors import InputError
from ..common.progress import CancelToken, ProgressCallback, check, report
from .backprop import FlatStack, Loss, StackAdam, l1
from .model import StackedMLP

log = logging.getLogger(__name__)

LossFn = Loss
EpochHook = Callable[[int, torch.nn.Module], Optional[tuple]]

#: Check the cancel token every this many gradient steps (about 0.1 s on a 2-core CPU at 8x32).
CANCEL_EVERY_STEPS = 16


l1_loss = l1


@dataclass
class TrainConfig:
    """The training knobs (a subset of ConversionSettings, so the loop does not depend on it)."""

    epochs: int = 40
    lr: float = 3e-3
    batch_size: int = 4096
    schedule: str = "onecycle"     # onecycle | cosine | constant
    patience: int = 0              # epochs without improvement before stopping; 0 = off
    min_improvement: float = 1e-3  # relative improvement that counts for early stopping
    init: str = "uniform"          # initial ReLU networks (core.training.model): "sphere" or "uniform"

    @classmethod
    def of(cls, settings) -> "TrainConfig":
        """The training knobs of a ConversionSettings."""
        return cls(epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
                   schedule=settings.schedule, patience=settings.patience, init=settings.init)


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
    from ..common.errors import InputError
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


@dataclass
class Slot:
    """One network of a :class:`StackTrainer` and where its training stands."""

    key: Any
    points: torch.Tensor     # (n, 3) float32 on the device
    sdf: torch.Tensor        # (n,) float32
    generator: torch.Generator   # its batch order
    init: Optional[StackedMLP] = None   # K = 1 initial weights while waiting to join the stack
    epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)   # per epoch: [mean loss]
    best: Optional[float] = None
    since_best: int = 0
    stopped_early: bool = False
    done: bool = False
    seconds: float = 0.0     # its share of the stack's training time
    implicit: Any = None     # its network, set when it leaves the stack

    def end_of_epoch(self, loss: float, config: TrainConfig, seconds: float) -> None:
        """Record an epoch; decide the early stop (``patience`` epochs without a relative
        improvement of ``min_improvement``) and whether the slot is done."""
        self.history.append([loss])
        self.epoch += 1
        self.seconds += seconds
        if config.patience:
            if self.best is None or loss < self.best * (1 - config.min_improvement):
                self.best, self.since_best = loss, 0
            else:
                self.since_best += 1
                self.stopped_early = self.since_best >= config.patience
        self.done = self.stopped_early or self.epoch >= config.epochs


class StackTrainer:
    """Networks of one architecture trained together, one epoch at a time.

    Two ways to use it: a stack that shapes join (:meth:`add`, up to ``capacity``) and leave when
    done (core.conversion.batch_train, convert-dir); or :meth:`around` an existing model whose K
    networks stay in place, a done network merely stops moving (:func:`train`). Every slot sees
    exactly what it would alone: its own initial weights and batch order from its seed, its own
    learning-rate schedule position and Adam step count (core.training.backprop.StackAdam), its own
    early stop; the loss is a sum of per-network terms, so networks never mix.
    Every slot must have the same number of samples.
    """

    def __init__(self, arch, config: TrainConfig, capacity: int, device: torch.device | str = "cpu",
                 loss_fn: LossFn = l1, quantize=None, model: Optional[StackedMLP] = None):
        if capacity < 1:
            raise InputError(f"shapes per batch must be at least 1, got {capacity}")
        self.arch, self.config, self.capacity = arch, config, capacity
        self.device = torch.device(device)
        self.loss_fn = loss_fn
        self.quantize = quantize
        self.model = StackedMLP(arch, 0).to(self.device) if model is None else model
        self._track(torch.zeros(0, dtype=torch.long), self.model.k)
        self.slots: list[Slot] = []
        self.waiting: list[Slot] = []
        self.n: Optional[int] = None
        self.leave_when_done = model is None
        self._steps = 0

    @classmethod
    def around(cls, model: StackedMLP, points: torch.Tensor, targets: torch.Tensor,
               config: TrainConfig, seed: int, loss_fn: LossFn = l1, quantize=None) -> "StackTrainer":
        """A trainer of ``model``'s K networks in place, on points (K, n, 3) and targets (K, n);
        every network's batch order comes from ``seed``."""
        K, n = targets.shape
        self = cls(model.arch, config, K, points.device, loss_fn, quantize, model=model)
        self.n = n
        self.slots = [Slot(j, points[j], targets[j], torch.Generator(device="cpu").manual_seed(seed))
                      for j in range(K)]
        return self

    def _track(self, keep: torch.Tensor, added: int) -> None:
        """Point the flat parameter buffer and Adam's moments at the model as it now is."""
        self.stack = FlatStack(self.model)
        self.stack.quantize = self.quantize
        if not hasattr(self, "optimizer"):
            self.optimizer = StackAdam(self.stack)
        else:
            self.optimizer.select(self.stack, keep, added)

    @property
    def active(self) -> int:
        """Shapes in the stack or about to join it."""
        return len(self.slots) + len(self.waiting)

    @property
    def free(self) -> int:
        return self.capacity - self.active

    def add(self, key, points: np.ndarray, sdf: np.ndarray, seed: int) -> None:
        """Queue a shape; it joins the stack at the next epoch.

        points : (n, 3) float32, sdf : (n,) float32, in the network frame; seed as in ConversionSettings.
        """
        if self.free <= 0:
            raise InputError(f"the stack is full ({self.capacity} shapes)")
        points = np.asarray(points, dtype=np.float32)
        sdf = np.asarray(sdf, dtype=np.float32).reshape(-1)
        if points.ndim != 2 or points.shape[1] != 3 or len(sdf) != len(points):
            raise InputError(f"points must have shape (n, 3) and sdf (n,), got {points.shape} and "
                             f"{sdf.shape}")
        if self.n is None or self.active == 0:
            self.n = len(points)
        elif len(points) != self.n:
            raise InputError(f"every shape of a stack needs the same number of samples: {self.n} "
                             f"in the stack, {len(points)} for {key!r}")
        init = StackedMLP(self.arch, 1, torch.Generator().manual_seed(seed), self.config.init)
        self.waiting.append(Slot(key, torch.tensor(points).to(self.device),
                                 torch.tensor(sdf).to(self.device),
                                 torch.Generator(device="cpu").manual_seed(seed), init))

    def set_data(self, points: torch.Tensor, targets: torch.Tensor) -> None:
        """New training data for every slot from the next epoch: points (K, n, 3), targets (K, n)."""
        for j, slot in enumerate(self.slots):
            slot.points, slot.sdf = points[j], targets[j]

    def _restack(self, keep: list[int]) -> None:
        """Keep networks ``keep`` of the stack, append the waiting ones, rebuild parameters and moments."""
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        for plist, name in ((self.model.weights, "weights"), (self.model.biases, "biases")):
            for i in range(len(plist)):
                plist[i] = torch.nn.Parameter(torch.cat(
                    [plist[i].detach()[idx]]
                    + [getattr(s.init, name)[i].detach().to(self.device) for s in self.waiting]))
        self.model.k = len(keep) + len(self.waiting)
        self._track(idx, len(self.waiting))
        for s in self.waiting:
            s.init = None
        self.slots = [self.slots[j] for j in keep] + self.waiting
        self.waiting = []

    def train_epoch(self, cancel: Optional[CancelToken] = None) -> list[Slot]:
        """One epoch of every slot not done (waiting shapes join first). Returns the slots that
        finished in it; in a stack they leave it, their network in ``slot.implicit``. Raises
        Cancelled when ``cancel`` is set."""
        if self.waiting:
            self._restack(list(range(len(self.slots))))
        if not self.slots:
            return []
        cfg, n, dev = self.config, self.n, self.device
        total_steps = max(1, math.ceil(n / cfg.batch_size)) * cfg.epochs
        t0 = time.perf_counter()
        moving = [not s.done for s in self.slots]
        perms = [torch.randperm(n, generator=s.generator).to(dev) for s in self.slots]
        P = torch.stack([s.points[p] for s, p in zip(self.slots, perms)])  # one gather per epoch
        Y = torch.stack([s.sdf[p] for s, p in zip(self.slots, perms)])
        sums = torch.zeros(len(self.slots), device=dev)
        for start in range(0, n, cfg.batch_size):
            if self._steps % CANCEL_EVERY_STEPS == 0:
                check(cancel)
            batch = Y[:, start:start + cfg.batch_size]
            loss = self.stack.step(P[:, start:start + cfg.batch_size], batch, self.loss_fn)
            lr = []
            for s, m in zip(self.slots, moving):
                lr.append(cfg.lr * _lr_factor(cfg.schedule, s.step, total_steps) if m else 0.0)
                s.step += m
            self.optimizer.step(lr, [max(s.step, 1) for s in self.slots])
            sums += loss * batch.shape[1]
            self._steps += 1
        losses = (sums / n).cpu().numpy().tolist()
        share = (time.perf_counter() - t0) / max(sum(moving), 1)
        finished = []
        for j, (s, loss, m) in enumerate(zip(self.slots, losses, moving)):
            if m:
                s.end_of_epoch(loss, cfg, share)
                if s.done:
                    s.implicit = self.model.to_implicit(j)
                    finished.append(s)
        if finished and self.leave_when_done:
            self._restack([j for j, s in enumerate(self.slots) if not s.done])
        return finished


def train(model: torch.nn.Module, points: torch.Tensor, targets: torch.Tensor, config: TrainConfig,
          loss_fn: LossFn = l1_loss, progress: Optional[ProgressCallback] = None,
          cancel: Optional[CancelToken] = None, seed: int = 0,
          on_epoch_end: Optional[EpochHook] = None, quantize=None) -> TrainResult:
    """Fit ``model`` (a StackedMLP with K networks) to ``targets`` at ``points``, in place
    (:meth:`StackTrainer.around`).

    points : (K, n, 3) float32, targets : (K, n) float32, on the model's device.
    on_epoch_end : optional ``hook(epoch, model)`` called after every epoch (epoch counts from 1);
        it may return new ``(points, targets)`` of the same shapes to train on from the next epoch
        (error-driven resampling, see core/training/refine.py), or None to keep the data. The
        learning-rate schedule is not affected.
    quantize : optional ``quantize(tensor, is_bias)``: the forward pass computes with the weights it
        returns while the float32 weights take the gradient (quantisation-aware training, straight
        through; core.training.refine.quantizer).
    Raises Cancelled (leaving the model half-trained; callers discard it) when ``cancel`` is set.
    """
    trainer = StackTrainer.around(model, points, targets, config, seed, loss_fn, quantize)
    t0 = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        trainer.train_epoch(cancel)
        elapsed = time.perf_counter() - t0
        loss = float(np.mean([s.history[-1][0] for s in trainer.slots]))
        report(progress, stage="training", fraction=epoch / config.epochs, elapsed=elapsed,
               eta=elapsed / epoch * (config.epochs - epoch), epoch=epoch, epochs=config.epochs,
               loss=loss)
        if all(s.done for s in trainer.slots):
            break
        if on_epoch_end is not None:
            replaced = on_epoch_end(epoch, model)
            if replaced is not None:
                trainer.set_data(*replaced)
    history = [[s.history[e][0] if e < len(s.history) else s.history[-1][0] for s in trainer.slots]
               for e in range(max(len(s.history) for s in trainer.slots))]
    return TrainResult(history[-1], len(history), time.perf_counter() - t0, history,
                       all(s.stopped_early for s in trainer.slots), str(trainer.device))
