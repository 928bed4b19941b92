"""The two ends of a batched conversion, around the stack: prepare (load is the caller's; normalise
and sample) and finish (storage precision, surface error, metadata), each exactly as
core.training.convert.convert_mesh does them; then check (core.conversion.verify, with a retry alone
as core.training.convert.convert_checked does it).

Why a module of their own: sampling workers run these and must not need torch (it is large to import
and holds memory in every worker); core.conversion.batch_train holds the torch side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ..common.jsonsafe import finite_or_none
from ..common.settings import ConversionSettings
from ..geometry.metrics import surface_error
from ..meshes.mesh import Mesh
from ..representation.implicit import Implicit
from ..representation.quantize import with_storage
from ..samples.sampling import SampleSet
from ..training.convert import ConversionResult, conversion_metadata, peak_memory_mb, training_set


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
    """Normalise and sample one mesh exactly as core.training.convert.convert_mesh does (CPU,
    libigl)."""
    t0 = time.perf_counter()
    T = mesh.normalization()
    data = training_set(mesh.transformed(T), settings, np.random.default_rng(settings.seed),
                        progress, cancel)
    return PreparedShape(mesh, T, data, data.stats, time.perf_counter() - t0)


def finish_shape(prepared: PreparedShape, trained: TrainedShape,
                 settings: ConversionSettings) -> ConversionResult:
    """Storage precision, surface error and metadata, exactly as
    core.training.convert.convert_mesh."""
    t0 = time.perf_counter()
    mesh = prepared.mesh
    imp = trained.implicit
    implicit = with_storage(Implicit(imp.architecture, imp.weights, imp.biases, prepared.transform),
                            settings.dtype)
    err = surface_error(implicit, mesh)
    total = prepared.seconds_sampling + trained.seconds + (time.perf_counter() - t0)
    # a diverged loss (NaN) must not make the metadata invalid JSON
    implicit.metadata = finite_or_none(conversion_metadata(
        mesh, settings, float(trained.final_loss), err, trained.epochs_run, trained.stopped_early,
        trained.device, {"sampling": prepared.seconds_sampling, "training": trained.seconds,
                         "total": total}, prepared.sampling_stats))
    return ConversionResult(implicit, err, float(trained.final_loss), prepared.seconds_sampling,
                            trained.seconds, total, trained.epochs_run, trained.device,
                            peak_memory_mb(), prepared.sampling_stats, trained.history)


#: Conversions of a closed mesh whose stacked network failed its check: alone, with the next seeds.
RETRY_ATTEMPTS = 2


@dataclass
class CheckedShape:
    """A finished shape after its check. result : the conversion to keep (the stacked one, or the
    one converted again alone); verification : its core.conversion.verify.Verification; retried :
    whether it was converted again; warnings : what the user should know (one line each)."""

    result: ConversionResult
    verification: Any
    retried: bool = False
    warnings: list = field(default_factory=list)


def check_shape(result: ConversionResult, mesh: Mesh, settings: ConversionSettings,
                stage: Optional[Callable[[str], None]] = None) -> CheckedShape:
    """Check a finished shape against its source (core.conversion.verify.verify), as convert_checked
    does for a shape converted alone, and record the check in its metadata ("verification").

    Why: the loss and the surface error both reward a collapsed network; a stack must not write
    one silently. A network that fails is converted again alone by
    core.training.convert.convert_checked (its ``trained`` first attempt) with seeds ``seed + 1``
    and ``seed + 2`` (one torch thread: this runs in a worker process), which raises
    ConversionFailed when those fail too; open input fails only without a surface, as everywhere.
    ``stage`` is told "retrying" before a retry (worker time limits name the stage).
    """
    from .checked import convert_checked
    retrying = None if stage is None else (lambda: stage("retrying"))
    checked = convert_checked(mesh, settings.replace(threads=1), attempts=1 + RETRY_ATTEMPTS,
                              trained=result, on_retry=retrying)
    return CheckedShape(checked, checked.verification, retried=checked is not result,
                        warnings=list(checked.warnings))
