"""Remeshing: the zero level set of a neural implicit as a triangle mesh, with numpy alone.

Why numpy alone: this runs inside Blender, where torch, libigl and scikit-image are absent.

Why sparse: marching cubes needs values only at the corners of cells the surface crosses, a thin
shell of the ``(R + 1)^3`` grid. The network approximates a signed distance, so ``|f(x)|`` roughly
bounds the distance from ``x`` to the surface. We evaluate a coarse grid, keep the coarse cells whose
corner values allow a zero inside them (see :data:`LIPSCHITZ_SAFETY`), split each kept cell into 8,
evaluate the new corners, and repeat until the cells are twice the target size. The last two
levels split only the cells that may hold a crossed fine cell for a signed distance's slope
(:data:`SURFACE_SAFETY`), and the last then follows the surface from the crossed fine cells into
neighbours across faces whose corners change sign until no new cell is reached
(:func:`_refine_surface`): each piece of surface comes out whole and closed, whatever the slope near
it, and the band's far wider shell is not evaluated at the finest level. Marching cubes then runs on
the crossed fine cells. Fine cells get exactly the values a dense grid would give them (one value
per point, evaluated once; :mod:`core.geometry.remesh_eval` makes it independent of the batch), so
wherever the bounds hold the result is the dense mesh, triangle for triangle.

Frames and field
----------------
The grid covers the network's bounding cube ``[-1, 1]^3`` (network frame) with ``R`` cells per axis.
The network is defined only in the ball of radius ``BOUND_RADIUS``; outside it its values are
arbitrary, so the field meshed is ``max(f(x), |x| - BOUND_RADIUS)``: the network, cut by the ball.
This keeps extrapolation garbage out of the mesh and makes the result closed even for a network
that is negative at the ball's boundary. Output vertices are mapped to the mesh frame.

Other fields
------------
:func:`remesh` also meshes any :class:`Field`: a cube to grid, a value function that is negative
inside and roughly 1-Lipschitz in the cube's units (so :data:`LIPSCHITZ_SAFETY` applies), and a map
of the grid's frame to the output frame. :class:`ImplicitField` is the one above;
``core.geometry.csg``'s ``CSGShape`` (several implicits combined in the world) is another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from ..common.constants import BOUND_RADIUS, EVAL_CHUNK, MESH_RADIUS
from ..common.errors import InputError
from ..common.progress import CancelToken, ProgressCallback, check, report
from .marching_cubes import (BYTES_PER_TRIANGLE, CORNERS, MESH_MEMORY_BUDGET, argsort_keys,
                             grid_cells, triangle_count, triangulate_cells, unique_keys)
from .remesh_eval import fast_evaluator

#: A cell is refined when its corner values allow a zero inside it for a field whose Lipschitz
#: constant is at most this. For an exact signed distance (constant 1), a zero at x in a cell means
#: every corner c has |f(c)| <= |x - c| <= the cell diagonal, and the nearest corner has |f| <= half
#: the diagonal. Trained networks are only approximately 1-Lipschitz (slopes of 1.2-1.5 occur where
#: the fit is poor, and the tanh output is not a distance far away), so we allow a factor of 2:
#: tighter loses surface on real networks, looser costs evaluations for nothing.
LIPSCHITZ_SAFETY = 2.0

#: The sparse scheme starts from a grid of at least this many cells per axis and halves the cell
#: size once per level (so 4 levels of refinement at R = 256). A coarser start would risk
#: stepping over thin parts whose |f| stays small; a finer one costs more coarse evaluations.
COARSE_RESOLUTION = 16

#: Accepted grid resolutions (cells per axis).
MIN_RESOLUTION, MAX_RESOLUTION = 4, 2048

#: Default resolutions: a mesh to keep (the command line, the error metrics) and an interactive one
#: (Blender's Convert to Mesh and CSG Apply, the Volume bake's lattice), a quarter of a second on a
#: laptop instead of about a second.
DEFAULT_RESOLUTION, INTERACTIVE_RESOLUTION = 256, 128

#: Points per evaluation chunk at most: one chunk's grid indices and coordinates take 48 bytes a
#: point, so this caps them at 200 MB whatever ``chunk`` a caller passes.
MAX_CHUNK = 1 << 22

#: Bytes one kept cell takes between refinement levels: its index (3 int64) and 8 corner values
#: (float64). What the narrow band costs while it is refined.
BYTES_PER_BAND_CELL = 88

#: The last level of refinement (:func:`_refine_surface`) splits only the cells that are crossed or
#: may hold a crossed cell of the finest grid for a field with Lipschitz constant
#: :data:`SURFACE_SAFETY`, then follows the surface from the crossed cells found into neighbours
#: across faces whose corners change sign, whatever the field's slope. The band's level before it
#: splits only the cells that may hold a crossed fine cell by the same test (:func:`_may_cross`).
#: At the last level the Lipschitz band keeps about 3.5 times as many cells as the surface
#: crosses: they were the bulk of the evaluations.
SURFACE_LEVELS = 1

#: Lipschitz constant of the last two levels' tests: a quarter above a signed distance's (1), not
#: :data:`LIPSCHITZ_SAFETY`'s margin of 2, because following the surface recovers every crossed cell
#: connected to one found, whatever the slope; the test has only to find each separate piece
#: once (a thin shell between the coarser grid's points, a small part). Measured on the bunny,
#: spot and four of the paper's networks (one a thin shell) at 37, 64, 128 and 256: the mesh of
#: the band with safety 2 everywhere, every time; at 1.0 a few dozen cells came from following the
#: surface alone, at 1.25 none did (for a fifth more evaluations): the margin kept for pieces that
#: touch no crossed cell where a network is steeper than a distance.
SURFACE_SAFETY = 1.25

#: Cells refined together: the refinement's temporaries (the 27 values of each split cell, point
#: keys and their sort) take about 1.3 kB per cell (measured: 1.39 GB peak for 1.1 M cells at
#: once), so batches of this many stay near 85 MB while the band is streamed through.
REFINE_BATCH = 65_536

#: Peak bytes per grid point of dense remeshing (``dense=True``): keys, values, inside masks and
#: case bytes of the full grid. Measured with tracemalloc at 128^3 on 50736_sf.h5: 34.
DENSE_BYTES_PER_POINT = 36


@dataclass
class RemeshResult:
    """A remeshed implicit.

    Attributes
    ----------
    V : (n, 3) float64, vertices in the mesh frame (``implicit.to_mesh`` of the network frame)
    F : (m, 3) int64, triangles, counter-clockwise seen from outside (outward normals)
    stats : dict with ``resolution``, ``evaluations`` (network evaluations done),
        ``dense_evaluations`` (``(R + 1)^3``, what a dense grid costs), ``evaluation_fraction``,
        ``levels``, ``coarse_resolution``, ``safety``, ``surface_levels``, ``surface_safety`` and
        ``flooded_cells`` (sparse only: levels that follow the surface, the Lipschitz constant of
        their test, cells found by following the surface), ``cells``
        (fine cells meshed), ``vertices``, ``faces``, ``seconds``, ``sparse``.
    """

    V: np.ndarray
    F: np.ndarray
    stats: dict = field(default_factory=dict)


class Field:
    """What :func:`remesh` meshes: a scalar field on a cube, negative inside.

    Subclasses set ``lower`` ((3,) float64, the cube's lowest corner), ``size`` (its edge length),
    ``name`` and ``region`` (for error messages: "the network", "its bounding sphere") and
    ``mirrored`` (the output map reverses orientation), and implement :meth:`values` and
    :meth:`to_output`. Values must be roughly 1-Lipschitz in the cube's units: a value ``v`` at a
    point means no surface within about ``|v|`` (the narrow band of the sparse scheme relies on it,
    with :data:`LIPSCHITZ_SAFETY`), and positive on the cube's boundary for a closed result.
    """

    lower: np.ndarray
    size: float
    name = "the field"
    region = "its domain"
    mirrored = False

    def values(self, X: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """(values (n,) float64, domain (n,) bool) at grid-frame points X (n, 3): ``domain`` marks
        the points where the field's own sign counts (the "no surface" check looks only there)."""
        raise NotImplementedError

    def to_output(self, V: np.ndarray) -> np.ndarray:
        """Grid-frame vertices (n, 3) -> the frame the mesh is returned in."""
        raise NotImplementedError


class ImplicitField(Field):
    """One implicit (or anything with ``evaluate``, ``to_mesh`` and ``transform``): the network cut
    by its ball, ``max(f(x), |x| - BOUND_RADIUS)``, on the cube ``[-1, 1]^3`` of its network frame;
    output in the mesh frame."""

    name = "the network"
    region = "its bounding sphere"

    def __init__(self, implicit):
        self.implicit = implicit
        self.lower = np.full(3, -1.0)
        self.size = 2.0
        self.mirrored = bool(np.linalg.det(np.asarray(implicit.transform)[:3, :3]) < 0)
        self.fast = fast_evaluator(implicit)           # equal to implicit.evaluate, bit for bit

    def values(self, X, chunk):
        evaluate = self.implicit.evaluate if self.fast is None else self.fast.evaluate
        f = evaluate(X, chunk=eval_chunk(self.implicit, chunk)).astype(np.float64)
        excess = np.sqrt(np.einsum("ij,ij->i", X, X)) - BOUND_RADIUS
        return np.maximum(f, excess), excess < 0

    def to_output(self, V):
        return self.implicit.to_mesh(V)


def recorded_gap(implicit) -> float | None:
    """The finest gap between the source's separate parts (network units) recorded in
    ``implicit``'s file at conversion (core.samples.openness.finest_gap), or None. For a shape
    whose parts were split between networks (core.samples.parts), the finest gap within one
    network: each network is meshed alone."""
    meta = getattr(implicit, "metadata", None) or {}
    parts = meta.get("parts")
    if isinstance(parts, dict) and "finest_gap_within" in parts:
        gap = parts["finest_gap_within"]
    else:
        gap = ((meta.get("surface") or {}).get("openness") or {}).get("finest_gap")
    return float(gap) if isinstance(gap, (int, float)) and gap > 0 else None


def resolution_for_gap(gap: float | None, requested: int, maximum: int = MAX_RESOLUTION) -> int:
    """The remesh resolution that keeps parts ``gap`` apart (network units) from merging: marching
    cubes needs a grid point in the gap, so cells of at most half of it. ``requested`` when that is
    fine enough or ``gap`` is None, else the smallest that is, capped at ``maximum``."""
    if gap is None or requested >= 4.0 * BOUND_RADIUS / gap:
        return int(requested)
    return int(max(requested, min(maximum, np.ceil(4.0 * BOUND_RADIUS / gap))))


def resolution_for(implicit, requested: int, maximum: int = MAX_RESOLUTION) -> int:
    """:func:`resolution_for_gap` for the gap recorded in ``implicit``'s file."""
    return resolution_for_gap(recorded_gap(implicit), requested, maximum)


def gap_warning(implicit, resolution: int) -> str | None:
    """A warning when the source of ``implicit`` had separate parts closer than two cells of a
    ``resolution`` grid (:func:`recorded_gap`): marching cubes needs a grid point in the gap to keep
    them apart. None when they are far enough, or not known."""
    gap = recorded_gap(implicit)
    if gap is None or resolution >= 4.0 * BOUND_RADIUS / gap:
        return None
    need = resolution_for_gap(gap, 0)
    return (f"the source has separate parts {100 * gap / MESH_RADIUS:.2g}% of its size apart, less "
            f"than two cells of this {resolution}^3 grid: they may merge in the mesh (a resolution "
            f"of {need} or more keeps them apart where the network does)")


def eval_chunk(implicit, chunk: int) -> int:
    """Points per evaluation of ``implicit`` (core.representation.implicit.Implicit.eval_chunk:
    lowered for wide layers); anything without that method (a CSG shape) is returned ``chunk``; its
    leaves cap their own."""
    cap = getattr(implicit, "eval_chunk", None)
    return int(chunk) if cap is None else cap(chunk)


def remesh(implicit, resolution: int = DEFAULT_RESOLUTION, chunk: int = EVAL_CHUNK,
           progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
           dense: bool = False, max_bytes: int = MESH_MEMORY_BUDGET) -> RemeshResult:
    """Triangle mesh of the network's zero level set by sparse (narrow-band) marching cubes.

    Parameters
    ----------
    implicit : core.representation.implicit.Implicit, or a :class:`Field` (e.g.
    ``core.geometry.csg.CSGShape``)
    resolution : cells per axis of the grid over the network's bounding cube ``[-1, 1]^3``
        (cell size ``2 / resolution`` network units); for a Field, over its cube.
    chunk : points per network evaluation, bounds memory.
    progress : callback receiving ``Progress(stage="remeshing", ...)`` records.
    cancel : token polled between evaluation chunks; raises :class:`core.common.errors.Cancelled`.
    dense : evaluate every grid point instead (the reference the sparse scheme must equal; slow).
    max_bytes : memory the mesh may take (:data:`MESH_MEMORY_BUDGET`); the band and the crossed
        cells are counted as they are found and the work stops with an InputError as soon as their
        estimated size (:data:`BYTES_PER_TRIANGLE`) passes it, before the triangles are built.

    Returns
    -------
    RemeshResult with ``V`` in the mesh frame (a Field's output frame) and outward ``F``; a closed,
    watertight mesh.

    Raises
    ------
    InputError
        for a bad ``resolution``/``chunk``/``max_bytes``; when the network has no zero level set
        inside its bounding sphere (an empty mesh is never returned); when it evaluates to NaN or
        infinity anywhere on the grid (never taken for inside or outside); when the mesh would
        exceed ``max_bytes``.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) \
            or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise InputError(f"resolution must be an integer in {MIN_RESOLUTION}..{MAX_RESOLUTION}, "
                         f"got {resolution!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) \
            or not 1 <= chunk <= MAX_CHUNK:
        raise InputError(f"chunk must be an integer in 1..{MAX_CHUNK}, got {chunk!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
        raise InputError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    R = int(resolution)
    if not isinstance(implicit, Field) and getattr(implicit, "members", None):
        return _remesh_union(implicit, R, int(chunk), progress, cancel, dense, int(max_bytes))
    t0 = time.perf_counter()
    source = implicit if isinstance(implicit, Field) else ImplicitField(implicit)
    field_ = _Grid(source, R, int(chunk), progress, cancel, t0, int(max_bytes))
    report(progress, stage="remeshing", fraction=0.0, message="evaluating the coarse grid")
    if dense:
        cells, corner_values, info = _dense_cells(field_)
    else:
        cells, corner_values, info = _sparse_cells(field_)
    field_.check_budget(triangle_count(corner_values), BYTES_PER_TRIANGLE, "the surface makes",
                        "triangles")
    if not (field_.negative_inside and field_.positive_inside):
        sign = "positive" if field_.positive_inside else "negative"
        raise InputError(f"remeshing found no surface: {source.name} has no zero level set inside "
                         f"{source.region} (it is {sign} at every grid point evaluated); was it "
                         "trained, and on a closed shape?")
    check(cancel)
    report(progress, stage="remeshing", fraction=0.95, elapsed=time.perf_counter() - t0,
           message=f"triangulating {len(cells):,} cells")
    V, F = triangulate_cells(cells, corner_values, (R + 1,) * 3)
    if len(F) == 0:
        raise InputError(f"remeshing found no surface: {source.name} has no zero level set inside "
                         f"{source.region} that a {R}^3 grid resolves; try a higher resolution")
    V = source.to_output(source.lower + V * (source.size / R))
    if source.mirrored:
        F = F[:, ::-1].copy()                  # a reflection would turn the triangles inside out
    seconds = time.perf_counter() - t0
    stats = {
        "resolution": R, "sparse": not dense, "evaluations": field_.evaluations,
        "dense_evaluations": (R + 1) ** 3,
        "evaluation_fraction": field_.evaluations / (R + 1) ** 3,
        **info, "cells": len(cells), "vertices": len(V), "faces": len(F), "seconds": seconds,
        "warnings": [w for w in [gap_warning(implicit, R)] if w],
    }
    report(progress, stage="remeshing", fraction=1.0, elapsed=seconds)
    return RemeshResult(V, F, stats)


def _remesh_union(implicit, R, chunk, progress, cancel, dense, max_bytes) -> RemeshResult:
    """The mesh of a shape of several networks (``Implicit.members``, core.samples.parts): each
    network meshed alone at ``R`` and the meshes put together.

    Why not the minimum on one grid: the networks hold parts that nearly touch, closer than a cell
    of the grid; on one grid they merge, while each network's own parts are far apart. Nothing is
    cut where two networks' solids overlap (by their error, where parts nearly touch: a few
    thousandths of the size): cutting there would leave holes, the meshes intersect instead."""
    t0 = time.perf_counter()
    nets = implicit.networks()
    Vs, Fs, stats, skipped, offset = [], [], [], [], 0
    for i, net in enumerate(nets):
        part = None if progress is None else (
            lambda p, i=i: progress(replace(p, fraction=(i + p.fraction) / len(nets),
                                            message=f"network {i + 1} of {len(nets)}: {p.message}")))
        try:
            r = remesh(net, R, chunk, part, cancel, dense, max_bytes)
        except InputError as exc:
            if "found no surface" not in str(exc):
                raise
            skipped.append(i)
            continue
        Vs.append(r.V)
        Fs.append(r.F + offset)
        offset += len(r.V)
        stats.append(r.stats)
    if not Vs:
        raise InputError(f"remeshing found no surface: none of the shape's {len(nets)} networks has "
                         "a zero level set inside its bounding sphere")
    V, F = np.concatenate(Vs), np.concatenate(Fs)
    seconds = time.perf_counter() - t0
    out = {"resolution": R, "sparse": not dense, "networks": len(nets),
           "networks_without_surface": skipped,
           "evaluations": sum(s["evaluations"] for s in stats),
           "dense_evaluations": (R + 1) ** 3 * len(nets), "vertices": len(V), "faces": len(F),
           "cells": sum(s["cells"] for s in stats), "seconds": seconds,
           "warnings": [w for w in [gap_warning(implicit, R)] if w]}
    out["evaluation_fraction"] = out["evaluations"] / out["dense_evaluations"]
    report(progress, stage="remeshing", fraction=1.0, elapsed=seconds)
    return RemeshResult(V, F, out)


class _Grid:
    """A Field on grid points given by integer index, with counting and polling.

    Point ``(i, j, k)`` is at ``lower + (i, j, k) * size / R`` in the field's frame (``-1 + (i, j, k)
    * 2 / R`` in the network frame of an implicit), computed the same way for dense and sparse grids
    so both see bit-identical values.
    """

    def __init__(self, field_, R, chunk, progress, cancel, t0, max_bytes=MESH_MEMORY_BUDGET):
        self.field, self.R, self.chunk = field_, R, chunk
        self.progress, self.cancel, self.t0 = progress, cancel, t0
        self.max_bytes = max_bytes
        self.evaluations = 0
        self.negative_inside = False      # the field is < 0 at some point of its domain (the ball)
        self.positive_inside = False      # ... and >= 0 at some point of its domain

    def __call__(self, keys: np.ndarray, n: int, fraction=(0.0, 1.0), message="") -> np.ndarray:
        """Values at points with linear indices ``keys`` (m,) int64 in an (n, n, n) point grid."""
        out = np.empty(len(keys), dtype=np.float64)
        lo, span = fraction
        h = self.field.size / self.R
        for s in range(0, len(keys), self.chunk):
            check(self.cancel)
            ijk = np.stack(np.unravel_index(keys[s:s + self.chunk], (n, n, n)), axis=1)
            X = self.field.lower + ijk * h
            v, inside = self.field.values(X, self.chunk)
            self._check_finite(v)
            if not (self.negative_inside and self.positive_inside):
                v_inside = v[inside]
                self.negative_inside |= bool((v_inside < 0).any())
                self.positive_inside |= bool((v_inside >= 0).any())
            out[s:s + self.chunk] = v
            self.evaluations += len(X)
            report(self.progress, stage="remeshing",
                   fraction=lo + span * min(s + self.chunk, len(keys)) / max(len(keys), 1),
                   elapsed=time.perf_counter() - self.t0, message=message)
        return out

    def _check_finite(self, v: np.ndarray) -> None:
        """NaN compares false with everything, so it would pass for "outside" (or, counted as
        neither sign, make the field look negative everywhere): refuse it where it appears."""
        if np.isfinite(v).all():
            return
        bad = ~np.isfinite(v)
        if bad.any():
            raise InputError(
                f"{self.field.name} evaluates to NaN or infinity at {int(bad.sum()):,} of the "
                f"{self.evaluations + len(v):,} grid points evaluated so far: the file is corrupt or "
                "its weights overflow float32")

    def check_budget(self, count: int, bytes_each: int, what: str, unit: str = "cells") -> None:
        """Refuse, before building it, a mesh whose cells would take more than ``max_bytes``."""
        need = count * bytes_each
        if need > self.max_bytes:
            raise InputError(
                f"{what} {count:,} {unit} or more at {self.R}^3: about {need / 1e9:.1f} GB of mesh, "
                f"over the {self.max_bytes / 1e9:.1f} GB budget; lower the resolution (a zero set "
                f"this large fills space: {self.field.name} is not a distance field)")


def _dense_cells(field_: _Grid):
    """Every grid point evaluated; returns the crossed cells in C order with their corner values."""
    n = field_.R + 1
    field_.check_budget(n ** 3, DENSE_BYTES_PER_POINT, "a dense grid holds")
    values = field_(np.arange(n ** 3, dtype=np.int64), n, (0.0, 0.95), "evaluating every grid point")
    cells, corner_values = grid_cells(values.reshape(n, n, n), max_bytes=field_.max_bytes)
    return cells, corner_values, {"levels": 0, "coarse_resolution": field_.R, "safety": None}


def _sparse_cells(field_: _Grid):
    """Coarse-to-fine refinement (module docstring); returns the crossed fine cells, sorted by index,
    with their corner values, and facts for the stats.

    Each level streams the kept cells through :func:`_refine` (the Lipschitz band; at the band's
    last level only the cells :func:`_may_cross` keeps) or, for the last :data:`SURFACE_LEVELS`
    levels, :func:`_refine_surface` (crossed cells, closed by following the surface) in batches, so
    memory follows the band, not the grid; the band is counted as it grows and refused over
    ``max_bytes``.
    """
    R = field_.R
    levels = max(0, int(np.floor(np.log2(R / COARSE_RESOLUTION))))
    R0 = -(-R // 2 ** levels)                          # coarse cells per axis, padded to cover R
    n = R0 * 2 ** levels + 1                           # points per axis of the padded fine grid
    h = field_.field.size / R
    # share of the progress bar per level: the shell's cell count grows about 4x per level
    weights = 4.0 ** np.arange(levels + 1)
    starts = np.concatenate([[0.0], np.cumsum(weights)[:-1]]) / weights.sum() * 0.95
    spans = weights / weights.sum() * 0.95

    # level 0: every coarse point
    size = 2 ** levels                                 # cell size in fine cells
    axis = np.arange(R0 + 1, dtype=np.int64) * size
    keys = ((axis[:, None, None] * n + axis[None, :, None]) * n + axis[None, None, :]).reshape(-1)
    values = field_(keys, n, (starts[0], spans[0]), f"level 1 of {levels + 1}: coarse grid")
    cells, corner_values = grid_cells(values.reshape((R0 + 1,) * 3), crossed_only=False)
    if levels:
        keep = _near_surface(corner_values, size * h)
        cells, corner_values = cells[keep], corner_values[keep]
    flooded = 0
    for level in range(1, levels + 1):
        size //= 2
        last = level == levels
        where = (starts[level], spans[level])
        label = f"level {level + 1} of {levels + 1}"
        if level > levels - SURFACE_LEVELS:
            cells, corner_values, added = _refine_surface(field_, cells, corner_values, size, n,
                                                          last, where, label)
            flooded += added
        else:
            if level == levels - SURFACE_LEVELS:       # what the last level can use
                split = _crossed(corner_values)
                split[~split] = _may_cross(corner_values[~split], size * h / 2,
                                           _REACH_GRANDCHILDREN)
                cells, corner_values = cells[split], corner_values[split]
            cells, corner_values = _refine(field_, cells, corner_values, size, n, last, where,
                                           label)
    crossed = _crossed(corner_values)
    cells, corner_values = cells[crossed], corner_values[crossed]
    order = argsort_keys((cells[:, 0] * (R + 1) + cells[:, 1]) * (R + 1) + cells[:, 2])
    return cells[order], corner_values[order], {
        "levels": levels, "coarse_resolution": R0, "safety": LIPSCHITZ_SAFETY,
        "surface_levels": min(SURFACE_LEVELS, levels), "surface_safety": SURFACE_SAFETY,
        "flooded_cells": flooded}


def _crossed(corner_values: np.ndarray) -> np.ndarray:
    """(c,) bool: cells whose corners have both signs (negative, and zero or positive)."""
    return _mixed(corner_values < 0)


def _mixed(mask: np.ndarray) -> np.ndarray:
    """(c,) bool: rows of a (c, 4) or (c, 8) bool array that are neither all False nor all True.

    Each row's bytes read as one integer (numpy's bools are bytes 0 and 1), so this is one pass
    over the data instead of a reduction along short rows (about 30 times faster)."""
    bits = _row_bits(mask)
    return (bits != 0) & (bits != _ALL_TRUE[mask.shape[-1]])


def _row_bits(mask: np.ndarray) -> np.ndarray:
    """A (..., 4 or 8) bool array's rows as (...,) unsigned integers (zero: all False)."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    return mask.view(np.uint32 if mask.shape[-1] == 4 else np.uint64)[..., 0]


_ALL_TRUE = {4: np.uint32(0x01010101), 8: np.uint64(0x0101010101010101)}


def _near_surface(corner_values: np.ndarray, cell: float) -> np.ndarray:
    """(c,) bool: cells of edge ``cell`` (field units) whose corner values allow a zero inside for a
    field with Lipschitz constant :data:`LIPSCHITZ_SAFETY` (module docstring); the ones refined."""
    crossed = _crossed(corner_values)
    a = np.abs(corner_values)
    diagonal = np.sqrt(3.0) * cell
    some_near = _row_bits(a <= LIPSCHITZ_SAFETY * diagonal / 2) != 0        # min |f| <= ...
    all_near = _row_bits(a <= LIPSCHITZ_SAFETY * diagonal) == _ALL_TRUE[8]  # max |f| <= ...
    return crossed | (some_near & all_near)


def _may_cross(corner_values: np.ndarray, step: float, reach: np.ndarray) -> np.ndarray:
    """(c,) bool: cells with a point of a finer lattice inside them (spacing ``step``, field units)
    that may have the other sign than all their corners for a field with Lipschitz constant
    :data:`SURFACE_SAFETY`; ``reach`` (points, 8): the points' distances to the corners, in steps.

    A point q of the other sign than corner c means ``|f(c)| <= L |q - c|``, for every corner at
    once: the bound :func:`_near_surface` asks of any point of the cell, asked of the lattice's
    points only, which is all the finest level sees. Cells that fail cannot hold a crossed cell of
    that lattice (where the bound holds)."""
    far = np.abs(corner_values) / (SURFACE_SAFETY * step)                 # (c, 8), in steps
    # quick necessary conditions first: some corner within the largest distance from a point to
    # its nearest corner, every corner within the largest distance of all
    rows = np.flatnonzero((_row_bits(far <= reach.min(1).max()) != 0)
                          & (_row_bits(far <= reach.max()) == _ALL_TRUE[8]))
    out = np.zeros(len(corner_values), dtype=bool)
    for s in range(0, len(rows), _MAY_CROSS_BATCH):               # (batch, points, 8) bools
        at = rows[s:s + _MAY_CROSS_BATCH]
        may = _row_bits(far[at][:, None, :] <= reach[None, :, :]) == _ALL_TRUE[8]
        out[at] = may.any(1)
    return out


def _lattice_reach(m: int) -> np.ndarray:
    """(points, 8): distances from the points of an (m + 1)^3 lattice on a cell, corners left out,
    to the cell's corners, in lattice steps, a hair longer (1e-9) so that rounding can only keep a
    cell."""
    points = np.stack(np.meshgrid(*[np.arange(m + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    points = points[~np.isin(points, (0, m)).all(1)]
    return np.linalg.norm(points[:, None, :] - (CORNERS * m)[None, :, :], axis=2) * (1 + 1e-9)


def _refine(field_: _Grid, parents, parent_values, size, n, last, fraction, label):
    """Split kept cells in 8 (children of ``size`` fine cells), in batches of :data:`REFINE_BATCH`.

    Returns the children that go on: at the last level those the surface crosses, before it those
    near the surface (:func:`_near_surface`), within the grid (the padding dropped).

    Each parent's 8 children have 27 corner points, a 3 x 3 x 3 block; the block's 8 outer points are
    the parent's corners, already evaluated, so only the 19 others are new (fewer where neighbouring
    blocks share points). Batches are slabs of whole x layers of parents, so two batches share
    points only on the plane between consecutive slabs; those values are carried over rather than
    evaluated again, so every point is evaluated once, as with one batch, and neighbouring cells see
    the same values at shared corners (no cracks).
    """
    R, h = field_.R, field_.field.size / field_.R
    parents, parent_values, _ = _sorted_by_key(parents, parent_values, n)
    out_cells, out_values, count = [], [], 0
    for _, _, P, block, _, _ in _evaluated_blocks(field_, parents, parent_values, size, n, fraction,
                                                  label):
        cells, values = _children(P, block, last)
        if n - 1 > R:                                  # drop the padding
            inside_grid = (cells * size < R).all(1)
            cells, values = cells[inside_grid], values[inside_grid]
        if not last:
            keep = _near_surface(values, size * h)
            cells, values = cells[keep], values[keep]
        count = _count(field_, count, values, last)
        out_cells.append(cells)
        out_values.append(values)
    if not out_cells:
        return np.zeros((0, 3), dtype=np.int64), np.zeros((0, 8))
    return np.concatenate(out_cells), np.concatenate(out_values)


def _refine_surface(field_: _Grid, parents, parent_values, size, n, last, fraction, label):
    """Split the cells among ``parents`` that are crossed or may hold a crossed child
    (:func:`_may_cross`) in 8 (children of ``size`` fine cells) and return the crossed children,
    closed by :func:`_flood`, with their corner values and the number of cells the flood added.

    The flood adds every crossed child that a crossed one reaches through a face with corners of
    both signs, so each connected piece of the surface comes out whole, closed and equal to the
    dense grid's, even where the field is steeper than :data:`SURFACE_SAFETY`; the test has only to
    split one cell of each piece.

    Batches, carried planes and budget checks as in :func:`_refine`; the inner points evaluated are
    kept (sorted keys and values, 16 bytes each) for the flood to look up.
    """
    R = field_.R
    h = field_.field.size / R
    split = _crossed(parent_values)
    split[~split] = _may_cross(parent_values[~split], size * h, _REACH_CHILDREN)
    P_all, PV_all, split = _sorted_by_key(parents[split], parent_values[split], n)
    out_cells, out_values, reached, count = [], [], [], 0
    known = []                                         # (sorted keys, values) of inner points
    for b0, b1, P, block, inner_keys, inner_values in _evaluated_blocks(
            field_, P_all, PV_all, size, n, fraction, label):
        known.append((inner_keys, inner_values))
        values = np.take(block, _CHILD_CORNERS.reshape(-1), axis=1).reshape(-1, 8, 8)
        cells = P[:, None, :] * 2 + CORNERS[None, :, :]               # (p, 8 children, 3)
        negative = values < 0
        keep = _mixed(negative)                                       # crossed
        if n - 1 > R:
            keep &= (cells * size < R).all(2)                         # the padding dropped
        # where the surface leaves a split parent for one that is not: the flood's starting points
        key = split[b0:b1]
        for d, (step, mine) in enumerate(_FACES):
            leave = np.flatnonzero(~_contains(split, key + step @ np.array([n * n, n, 1])))
            if len(leave):
                kids = _SIDE_CHILDREN[d]                              # the 4 children on that side
                mixed = _mixed(negative[leave][:, kids][:, :, mine]) & keep[leave][:, kids]
                row, kid = np.nonzero(mixed)
                reached.append(cells[leave[row], kids[kid]] + step)
        cells, values = cells[keep], values[keep]
        count = _count(field_, count, values, last)
        out_cells.append(cells)
        out_values.append(values)
    cells = np.concatenate(out_cells) if out_cells else np.zeros((0, 3), dtype=np.int64)
    values = np.concatenate(out_values) if out_values else np.zeros((0, 8))
    lookup = _PointLookup(known, split, PV_all, size, n)
    reached = np.concatenate(reached) if reached else np.zeros((0, 3), dtype=np.int64)
    more_cells, more_values = _flood(field_, reached, split, lookup, size, n, last, count,
                                     sum(fraction), label)
    if len(more_cells):
        cells = np.concatenate([cells, more_cells])
        values = np.concatenate([values, more_values])
    return cells, values, len(more_cells)


def _sorted_by_key(parents, parent_values, n):
    """Parent cells, their corner values and keys, in the order of their keys (x-major): the order
    the slab batches and the carried shared points rely on."""
    keys = (parents[:, 0] * n + parents[:, 1]) * n + parents[:, 2]
    order = argsort_keys(keys)
    return parents[order], parent_values[order], keys[order]


def _evaluated_blocks(field_: _Grid, parents, parent_values, size, n, fraction, label):
    """Key-sorted parents in slab batches (:func:`_slabs`), each with its 27 points' values
    (:func:`_block_values`, points shared with the previous batch carried over): yields
    ``(b0, b1, parents[b0:b1], block, inner_keys, inner_values)``."""
    bounds = _slabs(parents[:, 0], REFINE_BATCH)
    lo, span = fraction
    total = max(len(parents), 1)
    message = f"{label}: {8 * len(parents):,} cells"
    carry_keys, carry_values = np.zeros(0, dtype=np.int64), np.zeros(0)
    for b0, b1 in zip(bounds[:-1], bounds[1:]):
        P = parents[b0:b1]
        block, carry_keys, carry_values, inner_keys, inner_values = _block_values(
            field_, P, parent_values[b0:b1], size, n, carry_keys, carry_values,
            (lo + span * b0 / total, span * (b1 - b0) / total), message)
        yield b0, b1, P, block, inner_keys, inner_values


def _count(field_: _Grid, count: int, values: np.ndarray, last: bool) -> int:
    """Add kept cells to the running count and refuse it over budget: at the last level the
    triangles they make, before it the band."""
    if last:
        count += triangle_count(values)
        field_.check_budget(count, BYTES_PER_TRIANGLE, "the surface makes", "triangles")
    else:
        count += len(values)
        field_.check_budget(count, BYTES_PER_BAND_CELL, "the band around the surface holds")
    return count


class _PointLookup:
    """Values of grid points already evaluated at a level: the inner block points (sorted key arrays,
    one per batch), the corners of the split parents (sorted cell keys, (p, 8) values) and the points
    the flood evaluates (added as it goes). Each point of the level's cells then has one value,
    whichever cells it is a corner of."""

    def __init__(self, known, parent_keys, parent_values, size, n):
        self.known = list(known)
        self.parent_keys = parent_keys
        self.parent_values = parent_values
        self.size, self.n = size, n

    def add(self, keys, values):
        order = np.argsort(keys)
        self.known.append((keys[order], values[order]))

    def __call__(self, keys):
        """(values, found) for point keys (m,) int64."""
        values = np.zeros(len(keys))
        found = np.zeros(len(keys), dtype=bool)
        for k, v in self.known:
            if len(k):
                at = np.minimum(np.searchsorted(k, keys), len(k) - 1)
                hit = k[at] == keys
                values[hit] = v[at[hit]]
                found |= hit
        # a point of the parents' lattice is corner c of the parent cell at (point - CORNERS[c])
        n, step = self.n, 2 * self.size
        ijk = np.stack(np.unravel_index(keys, (n, n, n)), axis=1)
        lattice = ~found & (ijk % step == 0).all(1)
        if lattice.any() and len(self.parent_keys):
            g = ijk[lattice] // step
            sub_v, sub_f = values[lattice], found[lattice]
            for c in range(8):
                cell = g - CORNERS[c]
                ck = (cell[:, 0] * n + cell[:, 1]) * n + cell[:, 2]
                at = np.minimum(np.searchsorted(self.parent_keys, ck), len(self.parent_keys) - 1)
                hit = ~sub_f & (self.parent_keys[at] == ck) & (cell >= 0).all(1)
                sub_v[hit] = self.parent_values[at[hit], c]
                sub_f |= hit
            values[lattice], found[lattice] = sub_v, sub_f
        return values, found


def _flood(field_: _Grid, reached, split, lookup, size, n, last, count, fraction, label):
    """The crossed cells connected to the ``reached`` cells (m, 3), each across a face with corners
    of both signs from a crossed cell, and so crossed itself: the cells among them that are not
    children of the ``split`` parents (sorted keys; their crossed children are known already), and
    then, cell by cell, those these reach the same way; with their corner values. Missing points
    are evaluated once (``lookup`` remembers them)."""
    R = field_.R
    out_cells, out_values = [], []
    seen = np.zeros(0, dtype=np.int64)                 # sorted keys of the cells added so far
    while len(reached):
        check(field_.cancel)
        c = reached[((reached >= 0) & (reached * size < R)).all(1)]
        key = (c[:, 0] * n + c[:, 1]) * n + c[:, 2]
        key, first = np.unique(key, return_index=True)
        c = c[first]
        parent = c // 2
        pkey = (parent[:, 0] * n + parent[:, 1]) * n + parent[:, 2]
        new = ~_contains(split, pkey) & ~_contains(seen, key)
        c, key = c[new], key[new]
        if len(c) == 0:
            break
        seen = np.sort(np.concatenate([seen, key]))
        points = (c[:, None, :] + CORNERS[None, :, :]) * size
        pk = ((points[..., 0] * n + points[..., 1]) * n + points[..., 2]).reshape(-1)
        v, found = lookup(pk)
        if not found.all():
            missing, inverse = np.unique(pk[~found], return_inverse=True)
            fresh = field_(missing, n, (fraction, 0.0), f"{label}: closing the surface")
            lookup.add(missing, fresh)
            v[~found] = fresh[inverse]
        values = v.reshape(-1, 8)
        count = _count(field_, count, values, last)
        out_cells.append(c)
        out_values.append(values)
        negative = values < 0
        reached = np.concatenate([c[_mixed(negative[:, mine])] + step for step, mine in _FACES])
    if not out_cells:
        return np.zeros((0, 3), dtype=np.int64), np.zeros((0, 8))
    return np.concatenate(out_cells), np.concatenate(out_values)


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(m,) bool: which ``keys`` are in the sorted array ``sorted_keys``."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys


def _slabs(x: np.ndarray, batch: int) -> list:
    """Batch bounds over sorted x indices: runs of about ``batch`` items that never split one x."""
    if len(x) == 0:
        return [0]
    starts = np.flatnonzero(np.diff(x)) + 1           # where a new x begins
    bounds = [0]
    for s in starts:
        if s - bounds[-1] >= batch:
            bounds.append(int(s))
    bounds.append(len(x))
    return bounds


def _block_values(field_, parents, parent_values, size, n, carry_keys, carry_values, fraction,
                  message):
    """(p, 27) values of the parents' 3 x 3 x 3 blocks, evaluating each new point once; returns
    them with the keys and values on the slab's upper x plane (shared with the next slab), and the
    sorted keys and values of the blocks' 19 inner points of every parent."""
    base = parents * 2 * size
    base_key = (base[:, 0] * n + base[:, 1]) * n + base[:, 2]
    inner_keys = base_key[:, None] + (_BLOCK[_BLOCK_INNER] * size) @ np.array([n * n, n, 1])
    unique, _, inverse = unique_keys(inner_keys)
    del base, base_key, inner_keys
    new = np.empty(len(unique))
    known = np.zeros(len(unique), dtype=bool)
    if len(carry_keys):
        at = np.minimum(np.searchsorted(carry_keys, unique), len(carry_keys) - 1)
        known = carry_keys[at] == unique
        new[known] = carry_values[at[known]]
    new[~known] = field_(unique[~known], n, fraction, message)
    block = np.empty((len(parents), 27))
    block[:, _BLOCK_CORNERS] = parent_values           # reuse the parent's corner values
    block[:, _BLOCK_INNER] = new[inverse.reshape(-1)].reshape(len(parents), len(_BLOCK_INNER))
    top = (parents[:, 0].max() + 1) * 2 * size         # the x plane shared with the next slab
    shared = slice(*np.searchsorted(unique, [top * n * n, (top + 1) * n * n]))   # unique is sorted
    return block, unique[shared], new[shared], unique, new


def _children(parents, block, last):
    """Children of each parent as cells (c, 3) and corner values (c, 8), parent by parent in
    ``CORNERS`` order; at the last level only the ones the surface crosses, to save memory."""
    values = np.take(block, _CHILD_CORNERS.reshape(-1), axis=1).reshape(-1, 8, 8)
    cells = parents[:, None, :] * 2 + CORNERS[None, :, :]                 # (p, 8 children, 3)
    if last:
        keep = _mixed(values < 0)                                         # (p, 8 children)
        return cells[keep], values[keep]
    return cells.reshape(-1, 3), values.reshape(-1, 8)


# The 3 x 3 x 3 block of points of a cell split in 8: point offsets (27, 3) in child units, C order.
_BLOCK = np.stack(np.meshgrid(*[np.arange(3, dtype=np.int64)] * 3, indexing="ij"), -1).reshape(-1, 3)
# Block positions of the parent's corners (8,), and of each child's corners (8 children, 8 corners).
_BLOCK_CORNERS = (CORNERS * 2) @ np.array([9, 3, 1])
_BLOCK_INNER = np.setdiff1d(np.arange(27), _BLOCK_CORNERS)          # the 19 new points
_CHILD_CORNERS = (CORNERS[:, None, :] + CORNERS[None, :, :]) @ np.array([9, 3, 1])
# Distances from the new points of a split cell's block (19) and of its children's blocks (117) to
# its corners, in steps of the lattice (see _may_cross).
_REACH_CHILDREN, _REACH_GRANDCHILDREN = _lattice_reach(2), _lattice_reach(4)
#: Cells tested together by _may_cross: 117 x 8 bools each.
_MAY_CROSS_BATCH = 16_384
# Faces of a cell: the step to the neighbour across it, and the corners on it.
_FACES = [(np.eye(3, dtype=np.int64)[axis] * (1 if side else -1),
           np.flatnonzero(CORNERS[:, axis] == side)) for axis in range(3) for side in (0, 1)]
# The children of a split cell on each face's side (CORNERS numbers the children too).
_SIDE_CHILDREN = [mine for _, mine in _FACES]
