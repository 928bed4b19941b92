"""Triangle meshes as the rest of core expects them: validated, triangulated, welded, normalised.

Why: every later step (sampling, metrics, remeshing) assumes a clean ``(V, F)`` pair. This is the one
boundary where user data is checked; problems the user must fix raise :class:`InputError`, while the
flaws real meshes have (degenerate or duplicate faces, holes, self-intersections, several components,
inverted orientation) are accepted, because the winding-number sign copes with them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from ..common.constants import MESH_RADIUS
from ..common.errors import InputError
from .mesh_io import read_mesh_bytes, read_mesh_file


@dataclass
class Mesh:
    """A triangle mesh in the mesh frame.

    V : (n, 3) float64 vertex positions; F : (m, 3) int64 triangle indices (0-based);
    vertex_weights : optional (n,) float64 user importance per vertex (0 = none);
    name : where it came from (file name or Blender object), for metadata and messages.
    """

    V: np.ndarray
    F: np.ndarray
    name: str = "mesh"
    vertex_weights: np.ndarray | None = None
    welded_vertices: int = 0
    stats: dict = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """SHA-256 of the cleaned geometry: identical shapes give identical hashes across formats."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.V, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(self.F, dtype="<i8").tobytes())
        return h.hexdigest()

    def normalization(self) -> np.ndarray:
        """4x4 similarity taking the mesh into the network frame (bounding-box centre at the origin,
        farthest vertex at ``MESH_RADIUS``); see core/common/constants.py for the frames."""
        return normalization_transform(self.V)

    def transformed(self, T: np.ndarray) -> "Mesh":
        """A copy with vertices mapped by the 4x4 affine T."""
        V = self.V @ T[:3, :3].T + T[:3, 3]
        return Mesh(V, self.F.copy(), self.name, None if self.vertex_weights is None
                    else self.vertex_weights.copy(), self.welded_vertices, dict(self.stats))

    def area(self) -> float:
        return float(triangle_areas(self.V, self.F).sum())


def triangle_areas(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    """(m,) area of every triangle."""
    a, b, c = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


#: A face whose area is at most this times the squared bounding-box extent counts as degenerate:
#: 100 times the round-off of a cross product (float64 epsilon 2.2e-16 times the squared extent),
#: so faces spanned by colinear or repeated vertices are degenerate and real slivers are not.
DEGENERATE_AREA = 1e-14

#: Largest spacing of float64 numbers at the mesh's coordinates, relative to its radius (farthest
#: vertex from the bounding-box centre). The mesh -> network transform is computed and applied in
#: float64 (the network sees float32 only after centring and scaling), so a georeferenced scan far
#: from its origin converts well; but a shape whose own coordinates cannot resolve it (a 1e-5 detail
#: at 1e10) has lost its geometry before we see it. 0.003 is the paper's accuracy target (surface
#: error in the unit-sphere frame, docs/results.md): round-off alone must stay below it.
SPACING_LIMIT = 0.003


def normalization_transform(V: np.ndarray, radius: float = MESH_RADIUS) -> np.ndarray:
    """Similarity (uniform scale + translation) putting vertices V in the ball of ``radius``.

    The farthest distance from the centre is measured on coordinates scaled by their largest
    magnitude first, so it neither underflows (extent 1e-300) nor overflows (extent 1e300).
    Raises InputError when no finite, invertible transform exists (zero or overflowing extent)."""
    V = np.asarray(V, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        centre = 0.5 * V.min(axis=0) + 0.5 * V.max(axis=0)   # halves first: no overflow near 1e308
        D = V - centre
        m = np.abs(D).max()
        extent = m * np.linalg.norm(D / m, axis=1).max() if m > 0 else 0.0
        s = radius / extent if extent > 0 else np.inf
    if not (np.isfinite(extent) and extent > 0 and np.isfinite(s) and s > 0):
        raise InputError(f"cannot scale the mesh into the unit ball: its extent is {extent:.3g}")
    T = np.eye(4)
    T[:3, :3] *= s
    T[:3, 3] = -s * centre
    return T


def load_mesh(path: str, vertex_weights: np.ndarray | None = None, data: bytes | None = None) -> Mesh:
    """Read, validate and clean a mesh file (OBJ, OFF, PLY, STL); with ``data``, the file's bytes
    (``path`` then only names it: its extension, the mesh's name and messages)."""
    V, faces = read_mesh_file(path) if data is None else read_mesh_bytes(data, path)
    return mesh_from_arrays(V, faces, name=os.path.basename(os.fspath(path)),
                            vertex_weights=vertex_weights, origin=os.fspath(path))


def mesh_from_arrays(V, faces, name: str = "mesh", vertex_weights=None, origin: str | None = None) -> Mesh:
    """Validate raw vertices and polygons (e.g. from Blender) and return a clean triangle Mesh.

    V : (n, 3) array-like; faces : (m, k) array or a list of index sequences (polygons, k >= 3);
    vertex_weights : optional (n,) importance per input vertex.
    Raises InputError for: no faces, non-finite coordinates, out-of-range indices, zero extent, an
    extent float32 cannot hold or a shape too far from its origin for float32 to resolve, and no
    face of positive area.

    The result is in canonical order (:func:`canonical_order`): the same geometry gives the same
    V, F, content hash, samples and network whatever order its vertices and faces came in.
    """
    where = origin or name
    V = _vertex_array(V, where)
    F = triangulate(faces, where)
    if len(F) == 0:
        raise InputError(f"{where}: the mesh has no faces")
    if not np.isfinite(V).all():
        bad = int((~np.isfinite(V).all(axis=1)).sum())
        raise InputError(f"{where}: {bad} vertices have non-finite coordinates (NaN or infinity)")
    if F.min() < 0 or F.max() >= len(V):
        raise InputError(f"{where}: face indices must lie in 0..{len(V) - 1}, "
                         f"found {int(F.min())}..{int(F.max())}")
    vertex_weights = _weight_array(vertex_weights, len(V), where)
    n_in = len(V)
    V = V + 0.0      # -0.0 -> +0.0: one zero, so welding and sorting cannot depend on input order
    V, F, vertex_weights = weld_exact(V, F, vertex_weights)
    V, F, vertex_weights = remove_unreferenced(V, F, vertex_weights)
    V, F, vertex_weights = canonical_order(V, F, vertex_weights)
    _check_frame(V, where)
    degenerate = _check_area(V, F, where)
    stats = {"input_vertices": n_in, "vertices": len(V), "faces": len(F),
             "degenerate_faces": degenerate}
    return Mesh(V, F, name, vertex_weights, n_in - len(V), stats)


def _vertex_array(V, where: str) -> np.ndarray:
    try:
        V = np.asarray(V, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as e:
        raise InputError(f"{where}: vertices must be numbers ({e})") from None
    if V.ndim != 2 or V.shape[1] != 3:
        raise InputError(f"{where}: vertices must have shape (n, 3), got {V.shape}")
    return V


def _weight_array(weights, n: int, where: str):
    if weights is None:
        return None
    try:
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, OverflowError) as e:
        raise InputError(f"{where}: importance weights must be numbers ({e})") from None
    if weights.shape != (n,):
        raise InputError(f"{where}: importance weights must have one value per vertex "
                         f"({n}), got {weights.shape[0]}")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise InputError(f"{where}: importance weights must be finite and >= 0")
    return weights


def _check_frame(V: np.ndarray, where: str) -> None:
    """Raise unless the mesh -> network transform is finite and well conditioned in float32.

    Catches extents too small or too large to scale (1e-300, 1e300: NaN or infinite transforms,
    sampling that never ends) and shapes so far from their origin relative to their size that
    their coordinates collapse them (a 1e-5 detail at 1e10)."""
    with np.errstate(over="ignore", invalid="ignore"):
        size = V.max(axis=0) - V.min(axis=0)
    if not np.isfinite(size).all():
        raise InputError(f"{where}: the mesh is too large: its extent overflows float64")
    if not size.max() > 0:
        raise InputError(f"{where}: zero extent (all vertices at one point)")
    try:
        T = normalization_transform(V)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    radius = MESH_RADIUS / T[0, 0]
    with np.errstate(over="ignore", under="ignore"):
        T32 = T.astype(np.float32)
        spacing = float(np.spacing(np.abs(V).max()))
    if not (np.isfinite(T32).all() and T32[0, 0] > 0 and np.isfinite(spacing)):
        raise InputError(f"{where}: the mesh is {radius:.3g} in radius, too small or too large to "
                         f"scale to the unit ball in float32 (the network's precision): rescale it")
    if not spacing <= SPACING_LIMIT * radius:
        raise InputError(f"{where}: the mesh is {radius:.3g} in radius but lies "
                         f"{np.abs(V).max():.3g} from the origin, where its coordinates only resolve "
                         f"steps of {spacing:.3g}: move it nearer the origin")


def _check_area(V: np.ndarray, F: np.ndarray, where: str) -> int:
    """Number of degenerate faces; raise when every face is degenerate (no surface to sample)."""
    extent = float((V.max(axis=0) - V.min(axis=0)).max())
    degenerate = int((triangle_areas(V, F) <= DEGENERATE_AREA * extent ** 2).sum())
    if degenerate == len(F):
        raise InputError(f"{where}: all {len(F)} faces have zero area (vertices on one line or "
                         f"repeated corners): there is no surface to sample")
    return degenerate


def triangulate(faces, where: str = "mesh") -> np.ndarray:
    """Fan-triangulate polygons into an (m, 3) int64 array.

    faces : an (m, k) array, or a sequence of index sequences of any lengths >= 3. Indices must be
    whole numbers (float input is accepted only where every value is integral)."""
    if isinstance(faces, np.ndarray) and faces.ndim == 2:
        if faces.shape[1] < 3:
            raise InputError(f"{where}: faces need at least 3 vertices, got shape {faces.shape}")
        faces = _index_array(faces, where)
        if faces.shape[1] == 3:
            return np.ascontiguousarray(faces)
        k = faces.shape[1]
        return np.concatenate([faces[:, [0, i, i + 1]] for i in range(1, k - 1)])
    polys = [np.asarray(p).reshape(-1) for p in faces]
    if not polys:
        return np.zeros((0, 3), dtype=np.int64)
    sizes = np.fromiter((len(p) for p in polys), dtype=np.int64, count=len(polys))
    if sizes.min() < 3:
        j = int(np.argmax(sizes < 3))
        raise InputError(f"{where}: face {j} has {sizes[j]} vertices; at least 3 needed")
    flat = _index_array(np.concatenate(polys), where)
    starts = np.cumsum(sizes) - sizes
    ntri = sizes - 2
    owner = np.repeat(np.arange(len(polys)), ntri)
    corner = np.arange(int(ntri.sum())) - np.repeat(np.cumsum(ntri) - ntri, ntri) + 1
    base = starts[owner]
    return flat[np.stack([base, base + corner, base + corner + 1], axis=1)]


def _index_array(values: np.ndarray, where: str) -> np.ndarray:
    """Face indices -> int64, refusing fractions, NaN and values beyond int64."""
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64)
    try:
        f = values.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: face indices must be integers") from None
    if not (np.isfinite(f).all() and (np.abs(f) < 2.0 ** 62).all() and (f == np.round(f)).all()):
        raise InputError(f"{where}: face indices must be integers")
    return f.astype(np.int64)


def weld_exact(V, F, weights=None):
    """Merge vertices with bit-identical coordinates (STL stores each triangle's corners apart).

    Returns the unique vertices in lexicographic order (canonical_order keeps it). Weights of
    merged vertices take their maximum, so painted importance is never lost.
    """
    Vu, inverse = np.unique(V, axis=0, return_inverse=True)
    if len(Vu) == len(V):
        return V, F, weights
    inverse = inverse.reshape(-1)
    Wn = None
    if weights is not None:
        Wn = np.zeros(len(Vu))
        np.maximum.at(Wn, inverse, weights)
    return Vu, inverse[F], Wn


def remove_unreferenced(V, F, weights=None):
    """Drop vertices no face uses (they would distort the normalisation)."""
    used = np.zeros(len(V), dtype=bool)
    used[F.ravel()] = True
    if used.all():
        return V, F, weights
    remap = np.cumsum(used) - 1
    return V[used], remap[F], None if weights is None else weights[used]


def canonical_order(V, F, weights=None):
    """The mesh in an order that depends only on its geometry.

    Why: sampling draws surface points face by face and libigl's orientation repair walks faces in
    order, so the same shape given in another vertex or face order (Blender's UV sphere operator
    gives a new face order on every call) would train a different network. Vertices are sorted
    lexicographically by (x, y, z), faces re-indexed, each triangle rotated to its lexicographically
    smallest rotation (orientation kept; for a triangle with distinct corners, the smallest index
    first), and faces sorted lexicographically. Weights follow their vertices.
    """
    order = np.lexsort((V[:, 2], V[:, 1], V[:, 0]))         # stable: equal rows keep their order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    V = V[order]
    weights = None if weights is None else weights[order]
    F = _smallest_rotation(rank[F])
    F = F[np.lexsort((F[:, 2], F[:, 1], F[:, 0]))]
    return V, np.ascontiguousarray(F), weights


def _smallest_rotation(F: np.ndarray) -> np.ndarray:
    """Each row replaced by the lexicographically smallest of its three cyclic rotations."""
    best = F
    for r in (1, 2):
        cand = np.roll(F, -r, axis=1)
        less = (cand[:, 0] < best[:, 0]) | ((cand[:, 0] == best[:, 0]) & (
            (cand[:, 1] < best[:, 1]) | ((cand[:, 1] == best[:, 1]) & (cand[:, 2] < best[:, 2]))))
        best = np.where(less[:, None], cand, best)
    return best


def icosphere(subdivisions: int = 3, radius: float = 1.0):
    """(V, F) of a closed, outward-oriented sphere: the icosahedron subdivided ``subdivisions``
    times, vertices on the sphere of ``radius``. A mesh built in code, for tests, demos and
    benchmarks that need a shape with a known signed distance (|x| - radius)."""
    t = (1 + 5 ** 0.5) / 2
    V = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t],
         [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    F = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
         [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    V = np.array(V, dtype=float)
    F = np.array(F)
    for _ in range(subdivisions):
        edges = {}
        newF = []
        Vl = list(V)

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in edges:
                edges[key] = len(Vl)
                Vl.append((Vl[a] + Vl[b]) / 2)
            return edges[key]
        for a, b, c in F:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            newF += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        V = np.array(Vl)
        F = np.array(newF)
    V = V / np.linalg.norm(V, axis=1, keepdims=True) * radius
    return V, F
