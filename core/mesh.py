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

from .constants import MESH_RADIUS
from .errors import InputError
from .mesh_io import read_mesh_file


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
        farthest vertex at ``MESH_RADIUS``); see core/constants.py for the frames."""
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


def normalization_transform(V: np.ndarray, radius: float = MESH_RADIUS) -> np.ndarray:
    """Similarity (uniform scale + translation) putting vertices V in the ball of ``radius``."""
    centre = 0.5 * (V.min(axis=0) + V.max(axis=0))
    extent = np.linalg.norm(V - centre, axis=1).max()
    s = radius / extent
    T = np.eye(4)
    T[:3, :3] *= s
    T[:3, 3] = -s * centre
    return T


def load_mesh(path: str, vertex_weights: np.ndarray | None = None) -> Mesh:
    """Read, validate and clean a mesh file (OBJ, OFF, PLY, STL)."""
    V, faces = read_mesh_file(path)
    return mesh_from_arrays(V, faces, name=os.path.basename(os.fspath(path)),
                            vertex_weights=vertex_weights, origin=os.fspath(path))


def mesh_from_arrays(V, faces, name: str = "mesh", vertex_weights=None, origin: str | None = None) -> Mesh:
    """Validate raw vertices and polygons (e.g. from Blender) and return a clean triangle Mesh.

    V : (n, 3) array-like; faces : (m, k) array or a list of index sequences (polygons, k >= 3);
    vertex_weights : optional (n,) importance per input vertex.
    Raises InputError for: no faces, non-finite coordinates, out-of-range indices, zero extent.
    """
    where = origin or name
    V = np.asarray(V, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] != 3:
        raise InputError(f"{where}: vertices must have shape (n, 3), got {V.shape}")
    F = triangulate(faces, where)
    if len(F) == 0:
        raise InputError(f"{where}: the mesh has no faces")
    if not np.isfinite(V).all():
        bad = int((~np.isfinite(V).all(axis=1)).sum())
        raise InputError(f"{where}: {bad} vertices have non-finite coordinates (NaN or infinity)")
    if F.min() < 0 or F.max() >= len(V):
        raise InputError(f"{where}: face indices must lie in 0..{len(V) - 1}, "
                         f"found {int(F.min())}..{int(F.max())}")
    if vertex_weights is not None:
        vertex_weights = np.asarray(vertex_weights, dtype=np.float64).reshape(-1)
        if vertex_weights.shape != (len(V),):
            raise InputError(f"{where}: importance weights must have one value per vertex "
                             f"({len(V)}), got {vertex_weights.shape[0]}")
        if not np.isfinite(vertex_weights).all() or (vertex_weights < 0).any():
            raise InputError(f"{where}: importance weights must be finite and >= 0")
    n_in = len(V)
    V, F, vertex_weights = weld_exact(V, F, vertex_weights)
    V, F, vertex_weights = remove_unreferenced(V, F, vertex_weights)
    extent = V.max(axis=0) - V.min(axis=0)
    if not (extent.max() > 0):
        raise InputError(f"{where}: zero extent (all vertices at one point)")
    degenerate = int((triangle_areas(V, F) <= 1e-14 * extent.max() ** 2).sum())
    stats = {"input_vertices": n_in, "vertices": len(V), "faces": len(F),
             "degenerate_faces": degenerate}
    return Mesh(V, F, name, vertex_weights, n_in - len(V), stats)


def triangulate(faces, where: str = "mesh") -> np.ndarray:
    """Fan-triangulate polygons into an (m, 3) int64 array."""
    if isinstance(faces, np.ndarray) and faces.ndim == 2:
        if faces.shape[1] < 3:
            raise InputError(f"{where}: faces need at least 3 vertices, got shape {faces.shape}")
        if not np.issubdtype(faces.dtype, np.integer):
            if not np.all(np.mod(faces, 1) == 0):
                raise InputError(f"{where}: face indices must be integers")
        faces = faces.astype(np.int64)
        if faces.shape[1] == 3:
            return np.ascontiguousarray(faces)
        k = faces.shape[1]
        return np.concatenate([faces[:, [0, i, i + 1]] for i in range(1, k - 1)])
    tris = []
    for j, poly in enumerate(faces):
        p = np.asarray(poly, dtype=np.int64).reshape(-1)
        if len(p) < 3:
            raise InputError(f"{where}: face {j} has {len(p)} vertices; at least 3 needed")
        tris.extend((p[0], p[i], p[i + 1]) for i in range(1, len(p) - 1))
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def weld_exact(V, F, weights=None):
    """Merge vertices with bit-identical coordinates (STL stores each triangle's corners apart).

    Weights of merged vertices take their maximum, so painted importance is never lost.
    """
    Vu, first, inverse = np.unique(V, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if len(Vu) == len(V):
        return V, F, weights
    # keep the original vertex order of first occurrences (stable for users and hashes)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    remap = rank[inverse]
    Vn = Vu[order]
    Wn = None
    if weights is not None:
        Wn = np.zeros(len(Vn))
        np.maximum.at(Wn, remap, weights)
    return Vn, remap[F], Wn


def remove_unreferenced(V, F, weights=None):
    """Drop vertices no face uses (they would distort the normalisation)."""
    used = np.zeros(len(V), dtype=bool)
    used[F.ravel()] = True
    if used.all():
        return V, F, weights
    remap = np.cumsum(used) - 1
    return V[used], remap[F], None if weights is None else weights[used]


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
