"""Neural implicit <-> narrow-band level-set grids (the sparse signed-distance grids of OpenVDB that
Blender 5.0's SDF grid nodes work on). Numpy only: the add-on reads and writes the .vdb files.

Why: Geometry Nodes' SDF Grid Boolean / Fillet / Offset / Mean and Grid to Mesh take a *level set*:
signed distances (negative inside) stored on a voxel lattice only within ``half_width`` voxels of the
surface, with every other voxel an inactive ``+-background`` (``background = half_width *
voxel_size``). This module produces such a band from a network (:func:`implicit_band`) and turns a
dense copy of such a grid back into a surface mesh (:func:`grid_mesh`), which converts like any mesh.

Frames and units
----------------
* **local frame**: the implicit's mesh frame (an implicit object's local frame in Blender, scene units
  at object scale 1). Voxel ``(i, j, k)`` of a band sits at local point ``(i, j, k) * voxel_size``
  (OpenVDB's ``createLinearTransform(voxel_size)``), so blocks line up with OpenVDB's leaf nodes.
* distances in a band are local units; training data is in the network frame of the grid's surface
  mesh (``Mesh.normalization()``, core/common/constants.py), as
  ``core.training.convert.convert_mesh(data=...)`` wants.
Sign convention: negative inside, as everywhere in core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..common.constants import BOUND_RADIUS
from ..common.errors import InputError
from ..common.progress import check, report
from ..meshes.mesh import Mesh, mesh_from_arrays
from .marching_cubes import marching_cubes
from .remesh import INTERACTIVE_RESOLUTION, MAX_RESOLUTION

#: Edge of one block in voxels: OpenVDB's leaf node (8^3 voxels), so a block is one leaf.
BLOCK = 8
#: OpenVDB's default narrow band (``openvdb.LEVEL_SET_HALF_WIDTH``), voxels on each side.
DEFAULT_HALF_WIDTH = 3
#: Default voxels across the network's bounding ball (diameter ``2 * BOUND_RADIUS``): the lattice
#: spacing of an interactive remesh (core.geometry.remesh.INTERACTIVE_RESOLUTION).
DEFAULT_RESOLUTION = INTERACTIVE_RESOLUTION
#: Most voxels per axis of a bake (the cap of core.geometry.remesh's resolution): beyond it the band
#: of a detailed shape takes gigabytes and minutes.
MAX_VOXELS_PER_AXIS = MAX_RESOLUTION
#: Most voxels evaluated for the band (float32 values, 4 bytes each): 1 GiB at the cap.
MAX_BAND_VOXELS = 1 << 28
#: A block is evaluated when the network's value at its centre is within this factor of the block's
#: half-diagonal plus the band. A trained network is only nearly a distance (|grad f| near 1, not
#: at most 1), hence the margin; blocks missed all the same are found by :func:`_grow` (an active
#: voxel on a block's face pulls in its neighbour).
BLOCK_MARGIN = 1.5
#: Most voxels of a dense grid read for training (float32: 512 MiB).
MAX_DENSE_VOXELS = 1 << 27


# ============================================================================ implicit -> band

@dataclass
class NarrowBand:
    """A narrow-band level set in blocks of ``BLOCK^3`` voxels.

    voxel_size : float, local units; half_width : int, voxels on each side of the surface;
    origins : (k, 3) int64, index of each block's first voxel (multiples of BLOCK);
    values : (k, BLOCK, BLOCK, BLOCK) float32 signed distances in local units, clipped to
        ``[-background, background]``; ``values[b, i, j, k]`` is voxel ``origins[b] + (i, j, k)``.
    stats : evaluations, blocks and seconds (for reports).
    Voxels with ``|value| < background`` are the active band; the rest are outside it.
    """

    voxel_size: float
    half_width: int
    origins: np.ndarray
    values: np.ndarray
    stats: dict = field(default_factory=dict)

    @property
    def background(self) -> float:
        return float(self.half_width * self.voxel_size)

    @property
    def active_voxels(self) -> int:
        return int(np.count_nonzero(np.abs(self.values) < np.float32(self.background)))

    def index_to_local(self) -> np.ndarray:
        """(4, 4) voxel index -> local point."""
        return np.diag([self.voxel_size] * 3 + [1.0])


def default_voxel_size(implicit) -> float:
    """Voxel size (local units) giving :data:`DEFAULT_RESOLUTION` voxels across the network's ball."""
    return 2.0 * BOUND_RADIUS / implicit.scale / DEFAULT_RESOLUTION


def implicit_band(implicit, voxel_size: float, half_width: int = DEFAULT_HALF_WIDTH, *,
                  progress=None, cancel=None, max_voxels: int = MAX_BAND_VOXELS) -> NarrowBand:
    """The narrow band of ``implicit``'s signed distance on a lattice of ``voxel_size`` (local units).

    implicit : core.representation.implicit.Implicit (mesh frame = local frame); its network is
        defined in a ball (``bound_radius`` in the network frame): beyond it the value is the
        distance to that ball, positive (outside), so the band closes there.
    Raises InputError for a bad voxel size or half width, more than :data:`MAX_VOXELS_PER_AXIS`
    voxels per axis, a band above ``max_voxels``, NaN or infinity from the network, or no surface.
    """
    if isinstance(half_width, bool) or not isinstance(half_width, (int, np.integer)) \
            or not 1 <= half_width <= BLOCK:
        raise InputError(f"half_width must be an integer in 1..{BLOCK} voxels, got {half_width!r}")
    if isinstance(voxel_size, bool) or not isinstance(voxel_size, (int, float, np.floating)) \
            or not math.isfinite(voxel_size) or voxel_size <= 0:
        raise InputError(f"voxel_size must be a positive number, got {voxel_size!r}")
    h = float(voxel_size)
    centre = implicit.to_mesh(np.zeros((1, 3)))[0]
    radius = implicit.bound_radius / implicit.scale
    lo = np.floor((centre - radius) / h).astype(np.int64) - 1
    hi = np.ceil((centre + radius) / h).astype(np.int64) + 1
    across = int((hi - lo).max()) + 1
    if across > MAX_VOXELS_PER_AXIS:
        smallest = 2 * radius / (MAX_VOXELS_PER_AXIS - 3)
        raise InputError(f"voxel size {h:.6g} gives {across:,} voxels across the shape, more than "
                         f"the {MAX_VOXELS_PER_AXIS:,} allowed; use a voxel size of at least "
                         f"{smallest:.6g}")

    def field_(P):
        f = implicit.evaluate_mesh_frame(P).astype(np.float64)
        outside = np.linalg.norm(implicit.to_network(P), axis=1) - implicit.bound_radius
        beyond = outside > 0
        f[beyond] = np.maximum(np.nan_to_num(f[beyond], nan=0.0), outside[beyond] / implicit.scale)
        return f

    return level_set_band(field_, lo, hi, h, int(half_width), progress=progress, cancel=cancel,
                          max_voxels=max_voxels)


def level_set_band(field_, lo, hi, voxel_size: float, half_width: int, *, progress=None,
                   cancel=None, max_voxels: int = MAX_BAND_VOXELS) -> NarrowBand:
    """Narrow band of any signed-distance function ``field_(P (n, 3) float64 local) -> (n,)`` over
    the voxels ``lo..hi`` (inclusive, (3,) int), evaluated block by block (see :data:`BLOCK_MARGIN`).
    Raises InputError as :func:`implicit_band` does."""
    import time

    t0 = time.perf_counter()
    h = float(voxel_size)
    bg = half_width * h
    b_lo = np.floor_divide(np.asarray(lo), BLOCK)
    b_hi = np.floor_divide(np.asarray(hi), BLOCK)
    axes = [np.arange(a, b + 1) for a, b in zip(b_lo, b_hi)]
    keys = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    report(progress, stage="baking", fraction=0.0, message=f"coarse test of {len(keys):,} blocks")
    centres = (keys * BLOCK + (BLOCK - 1) / 2.0) * h
    f = _evaluate(field_, centres, cancel)
    reach = BLOCK_MARGIN * (math.sqrt(3.0) * (BLOCK - 1) / 2.0 * h + bg)
    todo = keys[np.abs(f) <= reach]
    done: dict = {}
    evaluations = len(keys)
    offsets = np.stack(np.meshgrid(*[np.arange(BLOCK)] * 3, indexing="ij"), -1).reshape(-1, 3)
    bounds = (b_lo, b_hi)
    while len(todo):
        if (len(done) + len(todo)) * BLOCK ** 3 > max_voxels:
            raise InputError(f"the narrow band needs more than {max_voxels:,} voxels at voxel size "
                             f"{h:.6g}; use a larger voxel size")
        per_batch = max(1, 65_536 // BLOCK ** 3)
        for s in range(0, len(todo), per_batch):
            batch = todo[s:s + per_batch]
            P = ((batch[:, None, :] * BLOCK + offsets[None]) * h).reshape(-1, 3)
            v = _evaluate(field_, P, cancel).reshape(len(batch), BLOCK, BLOCK, BLOCK)
            evaluations += len(P)
            for key, block in zip(map(tuple, batch), v):
                done[key] = np.clip(block, -bg, bg).astype(np.float32)
            report(progress, stage="baking", fraction=min(0.99, len(done) / max(1, len(done) + len(todo))),
                   message=f"{len(done):,} blocks evaluated")
        todo = _grow(todo, done, bg, bounds)
    if not done:
        raise InputError("baking found no surface: the field is farther than the band from zero "
                         "everywhere in its bounding box")
    origins = np.array(sorted(done), dtype=np.int64).reshape(-1, 3)
    values = np.stack([done[tuple(o)] for o in origins]) if len(origins) else np.zeros((0,) + (BLOCK,) * 3)
    negative = bool((values < 0).any())
    positive = bool((values > 0).any())
    if not (negative and positive):
        sign = "positive (outside)" if positive else "negative (inside)"
        raise InputError(f"baking found no surface: the field is {sign} at every voxel evaluated")
    stats = {"blocks": len(origins), "evaluations": int(evaluations),
             "seconds": time.perf_counter() - t0}
    report(progress, stage="baking", fraction=1.0, message=f"{len(origins):,} blocks")
    return NarrowBand(h, half_width, origins * BLOCK, values, stats)


def _evaluate(field_, P, cancel) -> np.ndarray:
    check(cancel)
    f = np.asarray(field_(np.asarray(P, dtype=np.float64)), dtype=np.float64)
    if not np.isfinite(f).all():
        bad = int((~np.isfinite(f)).sum())
        raise InputError(f"the field evaluates to NaN or infinity at {bad:,} of {len(f):,} voxels: "
                         "its weights overflow")
    return f


#: The 6 face neighbours of a block, and the slice of a block's voxels on that face.
_FACES = [((-1, 0, 0), (0, slice(None), slice(None))), ((1, 0, 0), (-1, slice(None), slice(None))),
          ((0, -1, 0), (slice(None), 0, slice(None))), ((0, 1, 0), (slice(None), -1, slice(None))),
          ((0, 0, -1), (slice(None), slice(None), 0)), ((0, 0, 1), (slice(None), slice(None), -1))]


def _grow(batch_keys, done: dict, bg: float, bounds) -> np.ndarray:
    """Blocks not yet evaluated next to a face of a new block where the band touches that face."""
    lo, hi = bounds
    new = set()
    for key in map(tuple, batch_keys):
        block = done[key]
        for step, face in _FACES:
            if (np.abs(block[face]) < bg).any():
                nb = tuple(int(k + d) for k, d in zip(key, step))
                if nb not in done and all(lo[i] <= nb[i] <= hi[i] for i in range(3)):
                    new.add(nb)
    return np.array(sorted(new), dtype=np.int64).reshape(-1, 3)


def band_to_dense(band: NarrowBand) -> tuple[np.ndarray, np.ndarray]:
    """The band as a dense array over its blocks' bounding box: ``(values, index_to_local)``, voxels
    outside every block set to ``+background`` (for tests and small grids; costs the whole box)."""
    lo = band.origins.min(0)
    hi = band.origins.max(0) + BLOCK
    shape = tuple(int(x) for x in hi - lo)
    if int(np.prod(shape)) > MAX_DENSE_VOXELS:
        raise InputError(f"a dense copy of this band would take {int(np.prod(shape)):,} voxels")
    out = np.full(shape, band.background, dtype=np.float32)
    for o, block in zip(band.origins - lo, band.values):
        out[o[0]:o[0] + BLOCK, o[1]:o[1] + BLOCK, o[2]:o[2] + BLOCK] = block
    M = band.index_to_local()
    M[:3, 3] = lo * band.voxel_size
    return out, M


# ============================================================================ grid -> training data

@dataclass
class DenseGrid:
    """A level set read back as a dense array.

    values : (nx, ny, nz) float32 signed distances (negative inside), local units, ``+-background``
        beyond the band (the sign is right there: OpenVDB's signed flood fill);
    index_to_local : (4, 4) voxel index -> local point (uniform scale, any rotation and offset);
    background : float, the band's limit in local units.
    """

    values: np.ndarray
    index_to_local: np.ndarray
    background: float
    name: str = "grid"

    def validate(self) -> "DenseGrid":
        self.values = np.ascontiguousarray(self.values, dtype=np.float32)
        if self.values.ndim != 3 or min(self.values.shape) < 2:
            raise InputError(f"{self.name}: values must be a 3-D grid with at least 2 voxels per axis, "
                             f"got shape {self.values.shape}")
        if self.values.size > MAX_DENSE_VOXELS:
            raise InputError(f"{self.name}: {self.values.size:,} voxels is more than the "
                             f"{MAX_DENSE_VOXELS:,} a conversion reads; resample the grid coarser")
        if not np.isfinite(self.values).all():
            raise InputError(f"{self.name}: the grid holds NaN or infinity")
        M = np.asarray(self.index_to_local, dtype=np.float64)
        if M.shape != (4, 4) or not np.isfinite(M).all() or not np.allclose(M[3], [0, 0, 0, 1]):
            raise InputError(f"{self.name}: index_to_local must be a finite affine 4x4 matrix")
        sv = np.linalg.svd(M[:3, :3], compute_uv=False)
        if sv.min() <= 0 or not np.isclose(sv.max(), sv.min(), rtol=1e-5):
            raise InputError(f"{self.name}: voxels must be cubes (a uniform voxel size), got sizes "
                             f"{', '.join(f'{s:.6g}' for s in sv)}")
        self.index_to_local = M
        if not (math.isfinite(self.background) and self.background > 0):
            raise InputError(f"{self.name}: the background must be a positive distance, got "
                             f"{self.background!r}")
        return self

    @property
    def voxel_size(self) -> float:
        return float(np.cbrt(abs(np.linalg.det(self.index_to_local[:3, :3]))))


def grid_mesh(grid: DenseGrid) -> Mesh:
    """The zero level set of ``grid`` as a validated Mesh in the local frame (marching cubes)."""
    grid.validate()
    V, F = marching_cubes(grid.values)
    M = grid.index_to_local
    V = V @ M[:3, :3].T + M[:3, 3]
    if np.linalg.det(M[:3, :3]) < 0:
        F = F[:, ::-1]
    return mesh_from_arrays(V, F, name=grid.name)
