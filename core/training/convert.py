"""Mesh -> neural implicit: the pipeline wired together (normalise, sample, train, measure).

Why a module of its own: every way of converting (one shape, core.training.sizing's ladder,
core.training.budget, a stack in core.conversion.batch_train) builds on these functions, so a
conversion means the same thing everywhere. The entry point that picks the size mode and checks the
result is core.conversion.checked.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace

import numpy as np

from .. import __version__
from ..common.constants import MESH_RADIUS
from ..common.errors import Cancelled
from ..common.progress import check, report
from ..common.settings import ConversionSettings
from ..common.units import format_fraction
from ..geometry.metrics import surface_error
from ..meshes.mesh import Mesh
from ..representation.implicit import Implicit
from ..representation.quantize import with_storage
from ..samples.gaps import longer, narrow, narrow_gap_settings, with_gap_samples
from ..samples.openness import MAX_GAP_PARTS
from ..samples.parts import part_groups, with_small_part_samples
from ..samples.sampling import SampleSet, importance_sample, merge, surface_set, with_far_field
from ..samples.shell import distance_for, resolve
from .prefetch import sample_beside_torch


@dataclass
class ConversionResult:
    """A finished conversion and what it cost. Times in seconds, errors in the unit-sphere frame."""

    implicit: Implicit
    surface_error: float
    final_loss: float
    seconds_sampling: float
    seconds_training: float
    seconds_total: float
    epochs_run: int
    device: str
    peak_memory_mb: float | None
    sampling_stats: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    #: core.conversion.verify.Verification of the result against its source (set by
    #: :func:`convert_checked`)
    verification: object = None
    #: what the user must be told although the conversion succeeded (open input, coarse likeness)
    warnings: list = field(default_factory=list)

    def summary(self) -> dict:
        """The JSON keys ``core convert --json`` promises."""
        return {
            "surface_error": self.surface_error, "final_loss": self.final_loss,
            "seconds_total": self.seconds_total, "seconds_sampling": self.seconds_sampling,
            "seconds_training": self.seconds_training, "epochs": self.epochs_run,
            "parameters": self.implicit.parameters, "weight_bytes": self.implicit.weight_bytes,
            "device": self.device, "peak_memory_mb": self.peak_memory_mb,
            "verification": None if self.verification is None else self.verification.to_dict(),
            "warnings": list(self.warnings),
        }


def peak_memory_mb() -> float | None:
    """Peak resident memory of this process in MB (None where the OS does not tell)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def training_set(mesh_net: Mesh, settings: ConversionSettings, rng: np.random.Generator,
                 progress=None, cancel=None, far_rng: np.random.Generator | None = None,
                 surface=None) -> SampleSet:
    """The training data for a mesh already in the network frame: importance samples, plus
    ``surface_fraction`` of the set as near-surface points; then ``far_fraction`` of the set is
    replaced by uniform points in the bounding ball (exact signed distances for all), drawn with
    ``far_rng`` (default: its own generator from ``settings.seed``, so the rest of the set is the
    same with and without far points). The target is the signed distance, or in shell mode the
    shell's (core.samples.shell; ``settings.surface``), recorded in the set's stats as
    ``surface``."""
    sd, surface = distance_for(mesh_net, settings, surface)
    if surface.summary():
        report(progress, stage="sampling", fraction=0.0, message=surface.summary())
    n_surface = int(round(settings.samples * settings.surface_fraction))
    data = importance_sample(sd, beta=settings.beta, pool=settings.pool,
                             samples=settings.samples - n_surface, rng=rng,
                             importance_strength=settings.importance_strength,
                             progress=progress, cancel=cancel)
    if n_surface:
        data = merge(data, surface_set(sd, n_surface, rng, settings.surface_sigma,
                                       settings.importance_strength), rng)
    # narrow gaps between separate parts (core/samples/gaps.py): their own generator, so a mesh
    # without such gaps gets the same set, bit for bit, as without this step
    data, gaps = with_gap_samples(data, sd, mesh_net, settings.gap_fraction,
                                  np.random.default_rng([settings.seed, 3]), surface.openness,
                                  settings.seed)
    # small separate parts: a floor of samples each (their own generator: a mesh of one part, or
    # of no small part, gets the same set bit for bit). Closed mode only: soup.stl's shell, whose
    # 100 triangles cross each other, came out worse with it (Hausdorff 0.22 -> 0.28)
    small = None
    one_part = surface.openness is not None and surface.openness.components < 2
    if surface.mode == "closed" and not one_part:       # the detection counted the parts already
        data, small = with_small_part_samples(data, sd, mesh_net, settings.surface_sigma,
                                              np.random.default_rng([settings.seed, 4]))
    if settings.far_fraction:
        data = with_far_field(data, sd, settings.far_fraction,
                              far_rng if far_rng is not None else np.random.default_rng([settings.seed, 2]))
    data.stats["surface"] = surface.to_dict()
    if small is not None:
        data.stats["small_parts"] = small
        data.stats["surface"]["small_part_samples"] = small["points"]
    if gaps is not None and gaps.points:
        data.stats["gaps"] = gaps.to_dict()
        data.stats["surface"]["gap_samples"] = gaps.points
    return data


def conversion_metadata(mesh: Mesh, settings: ConversionSettings, final_loss: float, err: float,
                        epochs_run: int, stopped_early: bool, device: str, timings: dict,
                        sampling_stats: dict) -> dict:
    """The metadata every conversion writes into its file (docs/file-format.md), in one place so a
    shape converted alone and one converted in a stack (core.conversion.batch_steps) record the
    same."""
    return {
        "source": mesh.name, "content_hash": mesh.content_hash,
        "mesh": {"vertices": int(len(mesh.V)), "faces": int(len(mesh.F))},
        "settings": settings.to_dict(),
        "final_loss": float(final_loss), "surface_error": err,
        "epochs_run": epochs_run, "stopped_early": stopped_early, "device": device,
        "timings": timings,
        "sampling": {k: sampling_stats[k] for k in ("exact_distance_queries", "unique_points")
                     if k in sampling_stats},
        "surface": sampling_stats.get("surface"),
        "software": f"neural-implicit core {__version__}",
    }


def convert_mesh(mesh: Mesh, settings: ConversionSettings | None = None, progress=None,
                 cancel=None, refinements=None, data: SampleSet | None = None,
                 while_sampling=None, frame: np.ndarray | None = None) -> ConversionResult:
    """Convert a validated mesh (core.meshes.mesh.Mesh, mesh frame) into an Implicit.

    refinements : optional core.training.refine.Refinements (error-driven resampling,
        quantisation-aware fine-tuning); None trains exactly the paper-style recipe of ``settings``.
    data : optional training set already drawn by :func:`training_set` for this mesh in its network
        frame (``mesh.normalization()``) with these settings; searches that train several networks
        on one mesh (core.training.sizing, core.training.budget) pass it to sample once.
    while_sampling : optional callable run once while the training set is drawn (on Linux beside the
        sampler, core.training.prefetch); not at all when ``data`` is given.
    frame : the mesh -> network similarity to use instead of ``mesh.normalization()`` (a group of
        the parts of a larger shape is trained in that shape's frame, :func:`convert_parts`).
    Raises InputError for bad settings, Cancelled when ``cancel`` is set (nothing is returned then).

    Separate parts closer than core.samples.gaps.NARROW are trained as several networks, one per
    group of parts far apart (core.samples.parts; ``settings.part_networks``), unless ``data`` is
    given (the searches of sizing and budget mode train one network).
    """
    settings = (settings or ConversionSettings()).validate()
    t0 = time.perf_counter()
    T = mesh.normalization() if frame is None else np.asarray(frame, np.float64)
    mesh_net = mesh.transformed(T)

    gaps = None
    if data is None:
        surface = resolve(mesh_net.V, mesh_net.F, settings)
        groups = None if frame is not None else groups_for(mesh_net, surface, settings)
        if groups is not None:
            return convert_parts(mesh, T, groups, surface, settings, progress, cancel, refinements,
                                 while_sampling, t0)
        settings, gaps = narrow_gap_settings(settings, surface)
        if gaps is not None:
            report(progress, stage="sampling", fraction=0.0,
                   message=f"separate parts {format_fraction(gaps['finest_gap'] / MESH_RADIUS)} of "
                           f"the size apart: {gaps['factor']:g} x the samples and epochs")
        rng = np.random.default_rng(settings.seed)
        data = sample_beside_torch(
            lambda progress, cancel: training_set(mesh_net, settings, rng, progress, cancel,
                                                  surface=surface),
            progress, cancel, meanwhile=while_sampling)
    t_sampled = time.perf_counter()
    check(cancel)

    import torch

    from .train import pick_device, use_threads

    device = pick_device(settings.device)
    use_threads(settings.threads)

    warnings = []
    try:
        model, result, resampling = _train_network(mesh_net, settings, refinements, data, device,
                                                   progress, cancel)
    except Exception as exc:        # noqa: BLE001 - MPS may fail anywhere; never the CPU's errors
        if device.type != "mps" or isinstance(exc, Cancelled):
            raise
        warnings.append(f"training on Apple's MPS failed ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]}); trained on the CPU instead")
        device = torch.device("cpu")
        model, result, resampling = _train_network(mesh_net, settings, refinements, data, device,
                                                   progress, cancel)
    t_trained = time.perf_counter()

    implicit = with_storage(model.to_implicit(0, transform=T), settings.dtype)
    report(progress, stage="measuring", fraction=0.0, message="surface error")
    err = surface_error(implicit, mesh)
    total = time.perf_counter() - t0
    implicit.metadata = conversion_metadata(
        mesh, settings, float(result.final_loss[0]), err, result.epochs_run, result.stopped_early,
        result.device, {"sampling": t_sampled - t0, "training": t_trained - t_sampled, "total": total},
        data.stats)
    if refinements is not None and refinements.active:
        implicit.metadata["refinements"] = refinements.to_dict()
        if resampling is not None:
            implicit.metadata["resampling"] = resampling
    if gaps is not None:
        implicit.metadata["narrow_gaps"] = gaps
    if warnings:
        implicit.metadata["device_warnings"] = warnings
    return ConversionResult(implicit, err, float(result.final_loss[0]), t_sampled - t0,
                            t_trained - t_sampled, total, result.epochs_run, result.device,
                            peak_memory_mb(), data.stats, result.history, warnings=warnings)


def groups_for(mesh_net: Mesh, surface, settings: ConversionSettings):
    """The groups of parts a closed-mode conversion trains as separate networks
    (core.samples.parts.part_groups), or None for one network: ``settings.part_networks`` is
    "one", the surface is a shell, or the detection found no parts closer than NARROW (when the
    detection ran and measured the gap: ``surface="closed"`` skips it, and it stops at
    MAX_GAP_PARTS parts; then the groups are searched directly)."""
    if settings.part_networks != "auto" or surface.mode != "closed":
        return None
    o = surface.openness
    if o is not None and o.components <= MAX_GAP_PARTS and not narrow(o.components, o.finest_gap):
        return None
    return part_groups(mesh_net.V, mesh_net.F, settings.seed)


def convert_parts(mesh: Mesh, T: np.ndarray, groups, surface, settings: ConversionSettings,
                  progress=None, cancel=None, refinements=None, while_sampling=None,
                  t0: float | None = None) -> ConversionResult:
    """One network per group of parts (core.samples.parts), each trained on its parts alone in the
    whole shape's frame ``T`` with ``settings`` made longer by ``gap_factor``
    (core.samples.gaps.longer); the result is their union (``Implicit.members``),
    measured against the whole mesh. Its metadata is a conversion's, plus ``parts`` (the split and
    each network's own figures)."""
    t0 = time.perf_counter() if t0 is None else t0
    subs = groups.meshes(mesh)
    settings, gaps = longer(settings, groups.finest_gap)
    report(progress, stage="sampling", fraction=0.0,
           message=f"separate parts {format_fraction(groups.finest_gap / MESH_RADIUS)} of the size "
                   f"apart: {len(subs)} networks, one per group of parts far apart"
                   + (f", {gaps['factor']:g} x the samples and epochs" if gaps else ""))
    results = []
    for i, sub in enumerate(subs):
        tag = f"network {i + 1} of {len(subs)}"
        part = None if progress is None else (
            lambda p, tag=tag: progress(replace(
                p, message=f"{tag}: {p.message}" if p.message else tag)))
        # the whole shape was judged closed: a group on its own must not be judged again (a
        # group holding the open parts could look open, and the union mix shells with solids)
        results.append(convert_mesh(sub, settings.replace(surface="closed"), part, cancel,
                                    refinements, while_sampling=while_sampling if i == 0 else None,
                                    frame=T))
    first = results[0].implicit
    implicit = Implicit(first.architecture, first.weights, first.biases, T, {}, first.storage,
                        [(r.implicit.weights, r.implicit.biases) for r in results[1:]])
    report(progress, stage="measuring", fraction=0.0, message="surface error")
    err = surface_error(implicit, mesh)
    sampling = sum(r.seconds_sampling for r in results)
    training = sum(r.seconds_training for r in results)
    total = time.perf_counter() - t0
    stats = dict(results[0].sampling_stats)
    stats["surface"] = surface.to_dict()
    final_loss = max(r.final_loss for r in results)
    implicit.metadata = conversion_metadata(
        mesh, settings, final_loss, err, max(r.epochs_run for r in results),
        all(r.implicit.metadata.get("stopped_early") for r in results), results[0].device,
        {"sampling": sampling, "training": training, "total": total}, stats)
    record = groups.record()
    record["per_network"] = [{"surface_error": r.surface_error, "epochs_run": r.epochs_run,
                              "final_loss": r.final_loss} for r in results]
    implicit.metadata["parts"] = record
    if gaps is not None:
        implicit.metadata["narrow_gaps"] = gaps
    warnings = [split_note(record)] + [w for r in results for w in r.warnings]
    return ConversionResult(implicit, err, final_loss, sampling, training, total,
                            max(r.epochs_run for r in results), results[0].device,
                            peak_memory_mb(), stats, [h for r in results for h in r.history],
                            warnings=warnings)


def split_note(record: dict) -> str:
    """What a user is told about a split (the command line, Blender's report, convert-dir's
    manifest): a file of several networks needs a reader of format version 2."""
    return (f"{record['parts']} separate parts, some {format_fraction(record['finest_gap'] / MESH_RADIUS)} "
            f"of the size apart: converted as {record['networks']} networks, one per group of parts "
            f"far apart, so they stay apart (the shape is their union; file format version 2; "
            f"part_networks 'one' for a single network)")


def _train_network(mesh_net, settings, refinements, data, device, progress, cancel):
    """A fresh network of ``settings`` trained on ``data`` on ``device`` (with the refinements'
    resampling and quantisation-aware steps); returns ``(model, TrainResult, the last resampling
    records or None)``."""
    import torch

    from .model import StackedMLP
    from .train import TrainConfig, train

    cfg = TrainConfig.of(settings)
    model = StackedMLP(settings.architecture, 1, torch.Generator().manual_seed(settings.seed),
                       cfg.init).to(device)
    P = torch.from_numpy(data.points).to(device)[None]
    Y = torch.from_numpy(data.sdf).to(device)[None]
    hook = None
    if refinements is not None and refinements.validate().resample_every:
        hook = _resampler(mesh_net, settings, refinements, data, device, progress, cancel)
    result = train(model, P, Y, cfg, progress=progress, cancel=cancel, seed=settings.seed,
                   on_epoch_end=hook)
    if refinements is not None and refinements.qat_epochs and settings.dtype != "float32":
        from .refine import quantizer
        if hook is not None and hook.last is not None:
            P, Y = hook.last
        qcfg = TrainConfig(epochs=refinements.qat_epochs, lr=refinements.qat_lr,
                           batch_size=settings.batch_size, schedule="cosine")
        q = train(model, P, Y, qcfg, progress=progress, cancel=cancel, seed=settings.seed + 1,
                  quantize=quantizer(settings.dtype))
        result.history += q.history
        result.final_loss = q.final_loss
    return model, result, None if hook is None else hook.history[-8:]


#: Fewest candidates drawn as a training set for resampling (ConversionSettings.samples' minimum).
MIN_CANDIDATES = 1000


def _resampler(mesh_net, settings, refinements, data, device, progress, cancel):
    """An ErrorResampler with its own candidate pool (same distribution as the training set)."""
    from .refine import ErrorResampler

    # only the candidates that are not drawn on the surface come from a training set, from a
    # uniform pool of the training set's ratio (not its size: 10M points for 200k candidates cost
    # budget mode 10 s)
    n_surface = int(round(refinements.resample_pool * refinements.resample_surface))
    n_set = max(refinements.resample_pool - n_surface, MIN_CANDIDATES)
    pool_settings = settings.replace(samples=n_set,
                                     pool=max(n_set, round(n_set * settings.pool / settings.samples)))
    rng = np.random.default_rng([settings.seed, 1])
    report(progress, stage="sampling", fraction=0.0, message="candidates for resampling")
    pool = training_set(mesh_net, pool_settings, rng, progress, cancel, far_rng=rng)
    if n_surface:
        sd, _ = distance_for(mesh_net, settings)
        near = surface_set(sd, n_surface, rng, refinements.resample_sigma, settings.importance_strength)
        pool = merge(pool, near, rng)
    return ErrorResampler(data, pool, refinements, settings.epochs, rng, device)
