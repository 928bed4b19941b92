"""Remeshing: the zero level set of a neural implicit as a triangle mesh, with numpy alone.

Why numpy alone: this runs inside Blender, where torch, libigl and scikit-image are absent.

Why sparse: marching cubes needs values only at the corners of cells the surface crosses, a thin
shell of the ``(R + 1)^3`` grid. The network approximates a signed distance, so ``|f(x)|`` roughly
bounds the distance from ``x`` to the surface. We evaluate a coarse grid, keep the coarse cells whose
corner values allow a zero inside them (see :data:`LIPSCHITZ_SAFETY`), split each kept cell into 8,
evaluate the new corners, and repeat until the cells have the target size; marching cubes then runs
on the fine cells whose corners change sign. Fine cells get exactly the values a dense grid would
give them, so wherever the bound holds the result is the dense mesh, triangle for triangle.

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
of the grid's frame to the output frame. :class:`ImplicitField` is the one above; ``core.csg``'s
``CSGShape`` (several implicits combined in the world) is another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .constants import BOUND_RADIUS, EVAL_CHUNK, MESH_RADIUS
from .errors import InputError
from .marching_cubes import (BYTES_PER_TRIANGLE, CORNERS, MESH_MEMORY_BUDGET, grid_cells,
                             triangle_count, triangulate_cells)
from .progress import CancelToken, ProgressCallback, check, report

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
        ``levels``, ``coarse_resolution``, ``safety``, ``cells`` (fine cells meshed), ``vertices``,
        ``faces``, ``seconds``, ``sparse``.
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

    def values(self, X, chunk):
        f = self.implicit.evaluate(X, chunk=eval_chunk(self.implicit, chunk)).astype(np.float64)
        excess = np.sqrt(np.einsum("ij,ij->i", X, X)) - BOUND_RADIUS
        return np.maximum(f, excess), excess < 0

    def to_output(self, V):
        return self.implicit.to_mesh(V)


def gap_warning(implicit, resolution: int) -> str | None:
    """A warning when the source of ``implicit`` had separate parts closer than two cells of a
    ``resolution`` grid (core.openness.finest_gap, recorded at conversion): marching cubes needs
    a grid point in the gap to keep them apart. None when they are far enough, or not known."""
    meta = getattr(implicit, "metadata", None) or {}
    gap = ((meta.get("surface") or {}).get("openness") or {}).get("finest_gap")
    if not isinstance(gap, (int, float)) or not gap > 0:
        return None
    cell = 2.0 * BOUND_RADIUS / resolution
    if cell <= gap / 2:
        return None
    need = min(MAX_RESOLUTION, int(np.ceil(4.0 * BOUND_RADIUS / gap)))
    return (f"the source has separate parts {100 * gap / MESH_RADIUS:.2g}% of its size apart, less "
            f"than two cells of this {resolution}^3 grid: they may merge in the mesh (a resolution "
            f"of {need} or more keeps them apart where the network does)")


def eval_chunk(implicit, chunk: int) -> int:
    """Points per evaluation of ``implicit`` (core.implicit.Implicit.eval_chunk: lowered for wide
    layers); anything without that method (a CSG shape) is returned ``chunk``; its leaves cap their
    own."""
    cap = getattr(implicit, "eval_chunk", None)
    return int(chunk) if cap is None else cap(chunk)


def remesh(implicit, resolution: int = DEFAULT_RESOLUTION, chunk: int = EVAL_CHUNK,
           progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
           dense: bool = False, max_bytes: int = MESH_MEMORY_BUDGET) -> RemeshResult:
    """Triangle mesh of the network's zero level set by sparse (narrow-band) marching cubes.

    Parameters
    ----------
    implicit : core.implicit.Implicit, or a :class:`Field` (e.g. ``core.csg.CSGShape``)
    resolution : cells per axis of the grid over the network's bounding cube ``[-1, 1]^3``
        (cell size ``2 / resolution`` network units); for a Field, over its cube.
    chunk : points per network evaluation, bounds memory.
    progress : callback receiving ``Progress(stage="remeshing", ...)`` records.
    cancel : token polled between evaluation chunks; raises :class:`core.errors.Cancelled`.
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
            self.negative_inside |= bool((v[inside] < 0).any())
            self.positive_inside |= bool((v[inside] >= 0).any())
            out[s:s + self.chunk] = v
            self.evaluations += len(X)
            report(self.progress, stage="remeshing",
                   fraction=lo + span * min(s + self.chunk, len(keys)) / max(len(keys), 1),
                   elapsed=time.perf_counter() - self.t0, message=message)
        return out

    def _check_finite(self, v: np.ndarray) -> None:
        """NaN compares false with everything, so it would pass for "outside" (or, counted as
        neither sign, make the field look negative everywhere): refuse it where it appears."""
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

    Each level streams the kept cells through :func:`_refine` in batches, so memory follows the
    band, not the grid; the band is counted as it grows and refused over ``max_bytes``.
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
    for level in range(1, levels + 1):
        size //= 2
        cells, corner_values = _refine(field_, cells, corner_values, size, n, level == levels,
                                       (starts[level], spans[level]),
                                       f"level {level + 1} of {levels + 1}")
    crossed = (corner_values.min(1) < 0) & (corner_values.max(1) >= 0)
    cells, corner_values = cells[crossed], corner_values[crossed]
    order = np.argsort((cells[:, 0] * (R + 1) + cells[:, 1]) * (R + 1) + cells[:, 2])
    return cells[order], corner_values[order], {
        "levels": levels, "coarse_resolution": R0, "safety": LIPSCHITZ_SAFETY}


def _near_surface(corner_values: np.ndarray, cell: float) -> np.ndarray:
    """(c,) bool: cells of edge ``cell`` (field units) whose corner values allow a zero inside for a
    field with Lipschitz constant :data:`LIPSCHITZ_SAFETY` (module docstring); the ones refined."""
    crossed = (corner_values.min(1) < 0) & (corner_values.max(1) >= 0)
    a = np.abs(corner_values)
    diagonal = np.sqrt(3.0) * cell
    return crossed | ((a.min(1) <= LIPSCHITZ_SAFETY * diagonal / 2)
                      & (a.max(1) <= LIPSCHITZ_SAFETY * diagonal))


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
    order = np.argsort((parents[:, 0] * n + parents[:, 1]) * n + parents[:, 2])
    parents, parent_values = parents[order], parent_values[order]
    bounds = _slabs(parents[:, 0], REFINE_BATCH)
    lo, span = fraction
    total = max(len(parents), 1)
    out_cells, out_values, count = [], [], 0
    carry_keys, carry_values = np.zeros(0, dtype=np.int64), np.zeros(0)
    for b0, b1 in zip(bounds[:-1], bounds[1:]):
        P, PV = parents[b0:b1], parent_values[b0:b1]
        message = f"{label}: {8 * len(parents):,} cells"
        block, carry_keys, carry_values = _block_values(
            field_, P, PV, size, n, carry_keys, carry_values,
            (lo + span * b0 / total, span * (b1 - b0) / total), message)
        cells, values = _children(P, block, last)
        inside_grid = (cells * size < R).all(1)        # drop the padding
        cells, values = cells[inside_grid], values[inside_grid]
        if not last:
            keep = _near_surface(values, size * h)
            cells, values = cells[keep], values[keep]
        if last:
            count += triangle_count(values)
            field_.check_budget(count, BYTES_PER_TRIANGLE, "the surface makes", "triangles")
        else:
            count += len(cells)
            field_.check_budget(count, BYTES_PER_BAND_CELL, "the band around the surface holds")
        out_cells.append(cells)
        out_values.append(values)
    if not out_cells:
        return np.zeros((0, 3), dtype=np.int64), np.zeros((0, 8))
    return np.concatenate(out_cells), np.concatenate(out_values)


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
    them with the keys and values on the slab's upper x plane (shared with the next slab)."""
    base = parents * 2 * size
    base_key = (base[:, 0] * n + base[:, 1]) * n + base[:, 2]
    inner_keys = base_key[:, None] + (_BLOCK[_BLOCK_INNER] * size) @ np.array([n * n, n, 1])
    unique, inverse = np.unique(inner_keys, return_inverse=True)
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
    shared = unique // (n * n) == top
    return block, unique[shared], new[shared]


def _children(parents, block, last):
    """Children of each parent as cells (c, 3) and corner values (c, 8); at the last level only the
    ones the surface crosses, to save memory."""
    if last:
        inside = (block < 0)[:, _CHILD_CORNERS]                       # (p, 8 children, 8)
        parent_of, child = np.nonzero(inside.any(2) & ~inside.all(2))
    else:
        parent_of, child = np.divmod(np.arange(8 * len(parents)), 8)
    cells = parents[parent_of] * 2 + CORNERS[child]
    return cells, block[parent_of[:, None], _CHILD_CORNERS[child]]


# The 3 x 3 x 3 block of points of a cell split in 8: point offsets (27, 3) in child units, C order.
_BLOCK = np.stack(np.meshgrid(*[np.arange(3, dtype=np.int64)] * 3, indexing="ij"), -1).reshape(-1, 3)
# Block positions of the parent's corners (8,), and of each child's corners (8 children, 8 corners).
_BLOCK_CORNERS = (CORNERS * 2) @ np.array([9, 3, 1])
_BLOCK_INNER = np.setdiff1d(np.arange(27), _BLOCK_CORNERS)          # the 19 new points
_CHILD_CORNERS = (CORNERS[:, None, :] + CORNERS[None, :, :]) @ np.array([9, 3, 1])
