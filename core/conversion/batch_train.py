"""Many shapes trained at once: the paper's SIMD property, with shapes entering and leaving the stack.

K networks of one architecture live in one :class:`~core.training.model.StackedMLP` (weights (K,
out, in), batched matrix products) trained by the one loop,
:class:`core.training.train.StackTrainer`. Every network has its own training data, loss,
learning-rate schedule position and early stop. The stack advances one epoch at a time (all shapes
share ``samples`` and ``batch_size``, hence the number of steps per epoch); between epochs, finished
shapes leave and waiting shapes take their slots, so the stack stays full while a dataset streams
through it.

Why equal quality is by construction, not by tuning: a shape in a slot sees exactly what
:func:`core.training.convert.convert_mesh` gives it alone: the same initial weights
(``StackedMLP(arch, 1, Generator(seed))``), the same samples
(:func:`core.training.convert.training_set` with ``default_rng(seed)``), the same batch order
(``randperm`` from ``Generator(seed)`` each epoch), the same learning rate at each of its own steps
and torch.optim.Adam's arithmetic with its own step count. Networks of a stack never mix (the loss
is a sum of per-network terms), so the result of a slot does not depend on its neighbours, up to
floating-point differences of batched matrix products. tests/test_dataset.py checks both claims.

:func:`convert_many` is the in-process entry point (the Blender add-on's "Convert Selected" with
several objects); ``core.dataset`` adds worker processes, files and a manifest on top of the same
:class:`BatchTrainer` and the torch-free steps of ``core.conversion.batch_steps`` (prepare, finish).
"""

from __future__ import annotations

import time
from typing import Optional

from ..common.progress import CancelToken, ProgressCallback, check, for_shape, report
from ..common.settings import ConversionSettings
from ..meshes.mesh import Mesh
from ..training.convert import ConversionResult
from ..training.train import StackTrainer, TrainConfig, pick_device, use_threads
from .batch_steps import PreparedShape, TrainedShape, finish_shape, prepare_shape


# ----------------------------------------------------------------------------- the stack
class BatchTrainer(StackTrainer):
    """Up to ``capacity`` networks trained together (core.training.train.StackTrainer); shapes join
    with :meth:`add` and leave from :meth:`train_epoch` when they reach ``config.epochs`` or stop
    early.

    Every shape must have the same number of samples (``settings.samples`` guarantees it).
    """

    def train_epoch(self, cancel: Optional[CancelToken] = None) -> list[TrainedShape]:
        """One epoch of every shape in the stack (waiting shapes join first). Returns the shapes that
        finished (they have left the stack). Raises Cancelled when ``cancel`` is set."""
        return [TrainedShape(s.key, s.implicit, s.history[-1][0], s.epoch, s.stopped_early,
                             s.history, s.seconds, str(self.device))
                for s in super().train_epoch(cancel)]


def train_config(settings: ConversionSettings) -> TrainConfig:
    """The training knobs of ``settings``, as core.training.convert.convert_mesh uses them."""
    return TrainConfig.of(settings)


# ----------------------------------------------------------------------------- in process
def convert_many(meshes: list[Mesh], settings: ConversionSettings | None = None,
                 shapes_per_batch: int = 16, progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelToken] = None) -> list[ConversionResult]:
    """Convert several validated meshes (mesh frame) with up to ``shapes_per_batch`` trained at once.

    In this process, no workers: sampling runs between epochs while the stack waits (core.dataset
    overlaps the two with worker processes). Results come back in the order of ``meshes``, each as
    core.training.convert.convert_mesh would give it. Progress: per shape (``shape`` = the mesh's
    name), its "sampling" records, then after every epoch of the stack one "training" record for
    each shape in it (its epoch, loss and ETA: the stack's seconds per epoch times its epochs left;
    ``fraction`` = its epochs done). Raises InputError (bad settings or a mesh that cannot be
    sampled) and Cancelled (nothing is returned then).
    """
    settings = (settings or ConversionSettings()).validate()
    meshes = list(meshes)
    device = pick_device(settings.device)
    use_threads(settings.threads)
    config = train_config(settings)
    trainer = BatchTrainer(settings.architecture, config, shapes_per_batch, device)
    prepared: dict[int, PreparedShape] = {}
    results: list[Optional[ConversionResult]] = [None] * len(meshes)
    t0 = time.perf_counter()
    next_i = done = 0
    while done < len(meshes):
        while trainer.free > 0 and next_i < len(meshes):
            check(cancel)
            p = prepare_shape(meshes[next_i], settings, for_shape(progress, meshes[next_i].name),
                              cancel=cancel)
            trainer.add(next_i, p.data.points, p.data.sdf, settings.seed)
            prepared[next_i] = p.without_data()
            next_i += 1
        t_epoch = time.perf_counter()
        finished = trainer.train_epoch(cancel)
        seconds = time.perf_counter() - t_epoch
        trained = [(s.key, s.epoch, s.history[-1][0], config.epochs - s.epoch)
                   for s in trainer.slots]
        trained += [(t.key, t.epochs_run, t.final_loss, 0) for t in finished]
        for key, epoch, loss, left in sorted(trained):
            report(progress, stage="training", fraction=epoch / config.epochs,
                   elapsed=time.perf_counter() - t0, eta=seconds * left, epoch=epoch,
                   epochs=config.epochs, loss=float(loss), shape=meshes[key].name)
        for t in finished:
            results[t.key] = finish_shape(prepared.pop(t.key), t, settings)
            done += 1
    return results
