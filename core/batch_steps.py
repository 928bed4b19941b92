"""The two ends of a batched conversion, around the stack: prepare (load is the caller's; normalise
and sample) and finish (storage precision, surface error, metadata), each exactly as
core.convert.convert_mesh does them.

Why a module of their own: sampling workers run these and must not need torch (it is large to import
and holds memory in every worker); core.batch_train holds the torch side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .convert import ConversionResult, conversion_metadata, peak_memory_mb, training_set
from .implicit import Implicit
from .mesh import Mesh
from .metrics import surface_error
from .quantize import with_storage
from .sampling import SampleSet
from .settings import ConversionSettings


@dataclass
class TrainedShape:
    """A network that left the stack: its weights (identity transform) and how training went."""

    key: Any
    implicit: Implicit
    final_loss: float
    epochs_run: int
    stopped_early: bool
    history: list            # per epoch: [mean loss] (one network), as TrainResult.history
    seconds: float           # this shape's share of the stack's training time
    device: str


@dataclass
class PreparedShape:
    """A mesh ready to train: the network-frame samples and what finishing needs.

    transform : (4, 4) mesh frame -> network frame; data : SampleSet (None once handed to a trainer).
    """

    mesh: Mesh
    transform: np.ndarray
    data: Optional[SampleSet]
    sampling_stats: dict
    seconds_sampling: float

    def without_data(self) -> "PreparedShape":
        """The same record without the samples (what finishing needs; small to send to a process)."""
        return PreparedShape(self.mesh, self.transform, None, self.sampling_stats,
                             self.seconds_sampling)


def prepare_shape(mesh: Mesh, settings: ConversionSettings, progress=None,
                  cancel=None) -> PreparedShape:
    """Normalise and sample one mesh exactly as core.convert.convert_mesh does (CPU, libigl)."""
    t0 = time.perf_counter()
    T = mesh.normalization()
    data = training_set(mesh.transformed(T), settings, np.random.default_rng(settings.seed),
                        progress, cancel)
    return PreparedShape(mesh, T, data, data.stats, time.perf_counter() - t0)


def finish_shape(prepared: PreparedShape, trained: TrainedShape,
                 settings: ConversionSettings) -> ConversionResult:
    """Storage precision, surface error and metadata, exactly as core.convert.convert_mesh."""
    t0 = time.perf_counter()
    mesh = prepared.mesh
    imp = trained.implicit
    implicit = with_storage(Implicit(imp.architecture, imp.weights, imp.biases, prepared.transform),
                            settings.dtype)
    err = surface_error(implicit, mesh)
    total = prepared.seconds_sampling + trained.seconds + (time.perf_counter() - t0)
    implicit.metadata = conversion_metadata(
        mesh, settings, float(trained.final_loss), err, trained.epochs_run, trained.stopped_early,
        trained.device, {"sampling": prepared.seconds_sampling, "training": trained.seconds,
                         "total": total}, prepared.sampling_stats)
    return ConversionResult(implicit, err, float(trained.final_loss), prepared.seconds_sampling,
                            trained.seconds, total, trained.epochs_run, trained.device,
                            peak_memory_mb(), prepared.sampling_stats, trained.history)
