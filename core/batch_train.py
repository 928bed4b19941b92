"""Many shapes trained at once: the paper's SIMD property, with shapes entering and leaving the stack.

K networks of one architecture live in one :class:`~core.model.StackedMLP` (weights (K, out, in),
batched matrix products) under one optimizer, :class:`StackedAdam`. Every network has its own
training data, loss, learning-rate schedule position and early stop. The stack advances one epoch at
a time (all shapes share ``samples`` and ``batch_size``, hence the number of steps per epoch); between
epochs, finished shapes leave and waiting shapes take their slots, so the stack stays full while a
dataset streams through it.

Why equal quality is by construction, not by tuning: a shape in a slot sees exactly what
:func:`core.convert.convert_mesh` gives it alone: the same initial weights (``StackedMLP(arch, 1,
Generator(seed))``), the same samples (:func:`core.convert.training_set` with ``default_rng(seed)``),
the same batch order (``randperm`` from ``Generator(seed)`` each epoch), the same learning rate at
each of its own steps and torch.optim.Adam's arithmetic with its own step count. Networks of a stack
never mix (the loss is a sum of per-network terms), so the result of a slot does not depend on its
neighbours, up to floating-point differences of batched matrix products. tests/test_dataset.py
checks both claims.

:func:`convert_many` is the in-process entry point (the Blender add-on's "Convert Selected" with
several objects); ``core.dataset`` adds worker processes, files and a manifest on top of the same
:class:`BatchTrainer` and the torch-free steps of ``core.batch_steps`` (prepare, finish).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from .batch_steps import PreparedShape, TrainedShape, finish_shape, prepare_shape
from .convert import ConversionResult
from .errors import InputError
from .implicit import Architecture
from .mesh import Mesh
from .model import StackedMLP
from .progress import CancelToken, ProgressCallback, check, report
from .settings import ConversionSettings
from .train import (CANCEL_EVERY_STEPS, LossFn, TrainConfig, _lr_factor, l1_loss, pick_device,
                    use_threads)


# ----------------------------------------------------------------------------- optimizer
class StackedAdam:
    """Adam over parameters of shape (K, ...) with a learning rate and a step count per network.

    The arithmetic is torch.optim.Adam's (single-tensor path, no weight decay, no amsgrad), operation
    for operation, so one network here follows the same trajectory as under torch.optim.Adam. The
    moments of a network can be dropped or zeroed with :meth:`select`, so a slot can be refilled
    without disturbing the others (Adam is elementwise).
    """

    def __init__(self, params: list[torch.Tensor], betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, lr: list[float], steps: list[int]) -> None:
        """One update. lr : (K,) learning rates; steps : (K,) step numbers, counting this one (>= 1)."""
        if not self.params:
            return
        device = self.params[0].device
        bc1 = [1 - self.beta1 ** t for t in steps]
        neg_step_size = torch.tensor([-a / b for a, b in zip(lr, bc1)], dtype=torch.float32)
        bc2_sqrt = torch.tensor([math.sqrt(1 - self.beta2 ** t) for t in steps], dtype=torch.float32)
        neg_step_size, bc2_sqrt = neg_step_size.to(device), bc2_sqrt.to(device)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            g = p.grad
            shape = (-1,) + (1,) * (p.dim() - 1)
            m.lerp_(g, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(self.eps)
            # torch's addcdiv_(m, denom, value=-step_size) computes (value * m) / denom, then adds
            p.add_((m * neg_step_size.view(shape)).div_(denom))

    def select(self, params: list[torch.Tensor], keep: torch.Tensor, added: int) -> None:
        """Follow a resized stack: keep the moments of networks ``keep`` (in that order), append
        ``added`` networks with zero moments, and track the new parameter tensors ``params``."""
        def resize(states):
            return [torch.cat([s[keep], s.new_zeros((added,) + s.shape[1:])]) for s in states]
        self.exp_avg = resize(self.exp_avg)
        self.exp_avg_sq = resize(self.exp_avg_sq)
        self.params = list(params)


# ----------------------------------------------------------------------------- the stack
@dataclass
class _Slot:
    key: Any
    points: torch.Tensor     # (n, 3) float32 on the device
    sdf: torch.Tensor        # (n,) float32
    generator: torch.Generator
    init: StackedMLP         # K = 1 initial weights (dropped once the slot joins the stack)
    epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)
    best: Optional[float] = None
    since_best: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


class BatchTrainer:
    """Up to ``capacity`` networks trained together; shapes join with :meth:`add` and leave from
    :meth:`train_epoch` when they reach ``config.epochs`` or stop early.

    Every shape must have the same number of samples (``settings.samples`` guarantees it).
    """

    def __init__(self, arch: Architecture, config: TrainConfig, capacity: int,
                 device: torch.device | str = "cpu", loss_fn: LossFn = l1_loss):
        if capacity < 1:
            raise InputError(f"shapes per batch must be at least 1, got {capacity}")
        self.arch = arch
        self.config = config
        self.capacity = capacity
        self.device = torch.device(device)
        self.loss_fn = loss_fn
        self.model = StackedMLP(arch, 0).to(self.device)
        self.optimizer = StackedAdam(list(self.model.parameters()))
        self.slots: list[_Slot] = []
        self.waiting: list[_Slot] = []
        self.n: Optional[int] = None
        self._steps = 0

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
        init = StackedMLP(self.arch, 1, torch.Generator().manual_seed(seed))
        self.waiting.append(_Slot(key, torch.tensor(points).to(self.device),
                                  torch.tensor(sdf).to(self.device),
                                  torch.Generator(device="cpu").manual_seed(seed), init))

    def _restack(self, keep: list[int]) -> None:
        """Keep networks ``keep`` of the stack, append the waiting ones, rebuild parameters and moments."""
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        new_w, new_b = [], []
        for i in range(len(self.model.weights)):
            W = torch.cat([self.model.weights[i].detach()[idx]]
                          + [s.init.weights[i].detach().to(self.device) for s in self.waiting])
            b = torch.cat([self.model.biases[i].detach()[idx]]
                          + [s.init.biases[i].detach().to(self.device) for s in self.waiting])
            new_w.append(W)
            new_b.append(b)
        for i in range(len(new_w)):
            self.model.weights[i] = torch.nn.Parameter(new_w[i])
            self.model.biases[i] = torch.nn.Parameter(new_b[i])
        self.model.k = len(keep) + len(self.waiting)
        self.optimizer.select(list(self.model.parameters()), idx, len(self.waiting))
        for s in self.waiting:
            s.init = None
        self.slots = [self.slots[j] for j in keep] + self.waiting
        self.waiting = []

    def train_epoch(self, cancel: Optional[CancelToken] = None) -> list[TrainedShape]:
        """One epoch of every shape in the stack (waiting shapes join first). Returns the shapes that
        finished (they have left the stack). Raises Cancelled when ``cancel`` is set."""
        if self.waiting:
            self._restack(list(range(len(self.slots))))
        if not self.slots:
            return []
        cfg, K, n, dev = self.config, len(self.slots), self.n, self.device
        steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
        total_steps = steps_per_epoch * cfg.epochs
        t0 = time.perf_counter()
        perms = [torch.randperm(n, generator=s.generator).to(dev) for s in self.slots]
        P = torch.stack([s.points[p] for s, p in zip(self.slots, perms)])
        Y = torch.stack([s.sdf[p] for s, p in zip(self.slots, perms)])
        sums = torch.zeros(K, device=dev)
        for start in range(0, n, cfg.batch_size):
            if self._steps % CANCEL_EVERY_STEPS == 0:
                check(cancel)
            lr = [cfg.lr * _lr_factor(cfg.schedule, s.step, total_steps) for s in self.slots]
            pred = self.model(P[:, start:start + cfg.batch_size])
            terms = self.loss_fn(pred, Y[:, start:start + cfg.batch_size])
            per_net = sum(terms.values())
            for p in self.model.parameters():
                p.grad = None
            per_net.sum().backward()
            for s in self.slots:
                s.step += 1
            self.optimizer.step(lr, [s.step for s in self.slots])
            sums += terms[next(iter(terms))].detach() * pred.shape[1]
            self._steps += 1
        losses = (sums / n).cpu().numpy().tolist()
        share = (time.perf_counter() - t0) / K
        done, keep = [], []
        for j, (s, loss) in enumerate(zip(self.slots, losses)):
            s.history.append([loss])
            s.epoch += 1
            s.seconds += share
            if cfg.patience:     # as core.train.train, for this network alone
                if s.best is None or loss < s.best * (1 - cfg.min_improvement):
                    s.best, s.since_best = loss, 0
                else:
                    s.since_best += 1
                    s.stopped_early = s.since_best >= cfg.patience
            if s.stopped_early or s.epoch >= cfg.epochs:
                done.append(TrainedShape(s.key, self.model.to_implicit(j), loss, s.epoch,
                                         s.stopped_early, s.history, s.seconds, str(dev)))
            else:
                keep.append(j)
        if done:
            self._restack(keep)
        return done


def train_config(settings: ConversionSettings) -> TrainConfig:
    """The training knobs of ``settings``, as core.convert.convert_mesh builds them."""
    return TrainConfig(epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
                       schedule=settings.schedule, patience=settings.patience)


# ----------------------------------------------------------------------------- in process
def convert_many(meshes: list[Mesh], settings: ConversionSettings | None = None,
                 shapes_per_batch: int = 16, progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelToken] = None) -> list[ConversionResult]:
    """Convert several validated meshes (mesh frame) with up to ``shapes_per_batch`` trained at once.

    In this process, no workers: sampling runs between epochs while the stack waits (core.dataset
    overlaps the two with worker processes). Results come back in the order of ``meshes``, each as
    core.convert.convert_mesh would give it. Progress: stage "converting", fraction = shapes done,
    ``message`` "i/n shapes". Raises InputError (bad settings or a mesh that cannot be sampled) and
    Cancelled (nothing is returned then).
    """
    settings = (settings or ConversionSettings()).validate()
    meshes = list(meshes)
    device = pick_device(settings.device)
    use_threads(settings.threads)
    trainer = BatchTrainer(settings.architecture, train_config(settings), shapes_per_batch, device)
    prepared: dict[int, PreparedShape] = {}
    results: list[Optional[ConversionResult]] = [None] * len(meshes)
    t0 = time.perf_counter()
    next_i = done = 0
    report(progress, stage="converting", fraction=0.0, message=f"0/{len(meshes)} shapes")
    while done < len(meshes):
        while trainer.free > 0 and next_i < len(meshes):
            check(cancel)
            p = prepare_shape(meshes[next_i], settings, cancel=cancel)
            trainer.add(next_i, p.data.points, p.data.sdf, settings.seed)
            prepared[next_i] = p.without_data()
            next_i += 1
        for t in trainer.train_epoch(cancel):
            results[t.key] = finish_shape(prepared.pop(t.key), t, settings)
            done += 1
        elapsed = time.perf_counter() - t0
        report(progress, stage="converting", fraction=done / len(meshes), elapsed=elapsed,
               eta=elapsed / done * (len(meshes) - done) if done else None,
               message=f"{done}/{len(meshes)} shapes")
    return results
