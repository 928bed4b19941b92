"""Error-driven sizing (paper A.2): the smallest network of a ladder that reaches a target error.

Why: one architecture for every shape wastes bytes on simple shapes and fails complex ones (paper
Figure 6). The paper grid-searches architectures until the surface error falls below the user's
threshold; we do the same over a fixed ladder ordered by size, sampling the mesh once and training
each rung on the same samples, and record the search in the file's metadata.

The error is the paper's surface error (mean |f| on the source surface, unit-sphere frame) by
default, or the Chamfer distance of the marching-cubes mesh (``metric="chamfer"``), which also sees
spurious surface away from the shape but costs a remesh per rung.
"""

from __future__ import annotations

import time

import numpy as np

from ..common.errors import InputError
from ..common.progress import Progress, check
from ..common.settings import ConversionSettings
from ..meshes.mesh import Mesh
from .convert import ConversionResult, convert_mesh, training_set

#: (hidden layers, width) from small to large; each rung roughly doubles the parameters
#: (bench/size_sweep.py measures error, bytes and time on this grid; docs/results.md).
#: The ConversionSettings fields the ladder decides (the caller's values are not used).
DECIDES = ("layers", "hidden")

LADDER = ((2, 16), (4, 16), (4, 32), (8, 32), (8, 48), (8, 64), (8, 96), (8, 128), (12, 128))

METRICS = ("surface_error", "chamfer")

#: Marching-cubes resolution for ``metric="chamfer"`` (the remesh command's default).
CHAMFER_RESOLUTION = 256


#: Marching-cubes resolution of the check that a rung has any surface at all (metric surface_error).
SURFACE_CHECK_RESOLUTION = 64


def _measure(result: ConversionResult, mesh: Mesh, metric: str) -> float:
    """The rung's error; infinite when its field has no zero set (a collapsed network: its surface
    error can look fine, e.g. 12 x 128 at lr 0.015 on bunny.off, docs/results.md section 4)."""
    from ..geometry.metrics import surface_distances
    from ..geometry.remesh import remesh

    if metric == "surface_error":
        try:
            remesh(result.implicit, resolution=SURFACE_CHECK_RESOLUTION)
        except InputError:
            return float("inf")
        return result.surface_error

    try:
        r = remesh(result.implicit, resolution=CHAMFER_RESOLUTION)
    except InputError:                  # no surface at all: infinitely far from the target
        return float("inf")
    return surface_distances(mesh, r.V, r.F).chamfer_l1


def convert_to_target_error(mesh: Mesh, error: float, settings: ConversionSettings | None = None,
                            progress=None, cancel=None, metric: str = "surface_error",
                            ladder=LADDER) -> ConversionResult:
    """Convert ``mesh`` with the smallest architecture of ``ladder`` whose error is at most ``error``.

    Parameters
    ----------
    mesh : core.meshes.mesh.Mesh (mesh frame)
    error : target, unit-sphere-frame distance (the paper's surface error 0.003 is a good default)
    settings : everything but ``layers``/``hidden`` (which the search sets); defaults otherwise
    metric : ``"surface_error"`` or ``"chamfer"``
    ladder : (layers, hidden) pairs tried in order

    Returns
    -------
    The ConversionResult of the first rung that reaches ``error``, or of the rung with the lowest
    error when none does. ``implicit.metadata["sizing"]`` records the target, whether it was
    reached and every rung tried (architecture, weight bytes, error, seconds).

    Raises InputError for a bad target, metric or ladder; Cancelled when ``cancel`` is set.
    """
    if isinstance(error, bool) or not isinstance(error, (int, float)) or not error > 0 \
            or not np.isfinite(error):
        raise InputError(f"target error must be a positive number, got {error!r}")
    if metric not in METRICS:
        raise InputError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    ladder = [tuple(r) for r in ladder]
    if not ladder or any(len(r) != 2 for r in ladder):
        raise InputError("ladder must be a non-empty list of (layers, hidden) pairs")
    settings = (settings or ConversionSettings()).validate()
    t0 = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    data = training_set(mesh.transformed(mesh.normalization()), settings, rng, progress, cancel)
    t_sampled = time.perf_counter() - t0

    tried, best, chosen = [], None, None
    for i, (layers, hidden) in enumerate(ladder):
        check(cancel)
        rung = settings.replace(layers=layers, hidden=hidden)
        tag = f"size {i + 1} of {len(ladder)}: {layers} x {hidden}"
        result = convert_mesh(mesh, rung, _tagged(progress, tag), cancel, data=data)
        err = _measure(result, mesh, metric)
        tried.append({"layers": layers, "hidden": hidden,
                      "weight_bytes": int(result.implicit.weight_bytes),
                      "parameters": int(result.implicit.parameters), "error": float(err),
                      "surface_error": float(result.surface_error),
                      "seconds": round(result.seconds_training, 2)})
        if best is None or err < best[0]:
            best = (err, result)
        if err <= error:
            chosen = result
            break
    result = chosen if chosen is not None else best[1]
    result.seconds_sampling = t_sampled
    result.seconds_total = time.perf_counter() - t0
    result.implicit.metadata["sizing"] = {
        "target": float(error), "metric": metric, "reached": chosen is not None, "tried": tried}
    result.implicit.metadata["timings"]["total"] = result.seconds_total
    return result


def _tagged(progress, tag: str):
    """A progress callback that prefixes every message with the rung being trained."""
    if progress is None:
        return None

    def forward(p: Progress):
        progress(Progress(p.stage, p.fraction, p.elapsed, p.eta, p.epoch, p.epochs, p.loss,
                          f"{tag}{': ' + p.message if p.message else ''}"))
    return forward
