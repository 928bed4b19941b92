"""Is a mesh's inside well defined? Open-input detection, before training and in the result check.

Why: a signed distance describes a closed volume. A plane, a leaf, a lidless teapot or a triangle
soup has boundary edges, and near a sheet the generalized winding number sits between 0 and 1, so
"inside" means nothing there and a network trained on the winding-number sign learns an arbitrary
volume (docs/open-geometry.md). Small holes are harmless: the winding number still says in or out
almost everywhere. So a mesh counts as *ambiguous* when it has boundary edges **and** more than
:data:`AMBIGUOUS_SHARE` of the points near it (away from the surface) have ``|W|`` inside
:data:`AMBIGUOUS_WINDING`. Measured: lilium.obj 0.80, soup.stl 0.46, teapot.obj (lid missing)
0.006, closed meshes 0.

Conversion uses it to choose shell mode (core/samples/shell.py) for ``surface="auto"``;
core/conversion/verify.py uses the same share to tell a failed check from an ambiguous source.
Frames: every distance here is in the network frame (core/common/constants.py), where the shape's
farthest vertex is at ``MESH_RADIUS``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .sampling import SignedDistance, sample_surface

#: Near-surface points whose |winding number| lies in this open interval have no clear inside.
AMBIGUOUS_WINDING = (0.2, 0.8)
#: Above this share of such points an open source's inside is ambiguous (sheets, petals, triangle
#: soup: 0.46-0.80 of the points of lilium and soup); small holes stay below it (teapot without its
#: lid 0.006, Thingi10K meshes with holes 0.000).
AMBIGUOUS_SHARE = 0.02
#: Points nearer to the surface than this (network units) are not judged: the winding number jumps
#: across the surface, so right next to it every mesh looks ambiguous. core/conversion/verify.py
#: skips the same points for its sign agreement.
MARGIN = 0.01
#: Points of the detection before training: surface samples moved by a Gaussian of this sigma
#: (network units), as core/conversion/verify.py draws its near-surface points.
POINTS = 20_000
SIGMA = 0.03
#: The gap between separate parts is measured for at most this many parts (each part's tree is
#: queried with the others' points), from this many surface points in all.
MAX_GAP_PARTS = 64
GAP_POINTS = 20_000
#: Parts nearer than this (network units) touch or overlap: the solid is one there, no gap.
TOUCHING = 1e-4


@dataclass
class Openness:
    """How open a mesh is. ``ambiguous_share`` is a fraction of the near-surface points (0..1)."""

    boundary_edges: int
    ambiguous_share: float
    components: int
    #: the narrowest gap between two separate parts that do not touch (network units), None for
    #: one part, touching parts only, or more than MAX_GAP_PARTS parts (not measured)
    finest_gap: float | None = None

    @property
    def ambiguous(self) -> bool:
        """True when the mesh has no well-defined inside (shell mode is then the sensible target)."""
        return self.boundary_edges > 0 and self.ambiguous_share > AMBIGUOUS_SHARE

    def to_dict(self) -> dict:
        return {**asdict(self), "ambiguous": self.ambiguous}


def boundary_edge_count(F: np.ndarray) -> int:
    """Edges used by exactly one triangle: the mesh is open there."""
    E = np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), axis=1)
    _, counts = np.unique(E, axis=0, return_counts=True)
    return int((counts == 1).sum())


def face_components(F: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the faces (sharing a vertex connects): their number and the label of
    every face (m,); unused vertices don't count."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    F = np.asarray(F, np.int64)
    used, Fc = np.unique(F, return_inverse=True)
    Fc = Fc.reshape(F.shape)
    i = np.concatenate([Fc[:, 0], Fc[:, 1]])
    j = np.concatenate([Fc[:, 1], Fc[:, 2]])
    A = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(used), len(used)))
    n, vertex_label = connected_components(A, directed=False)
    return int(n), vertex_label[Fc[:, 0]]


def component_count(F: np.ndarray) -> int:
    """Connected components of the faces (sharing a vertex connects); unused vertices don't count."""
    return face_components(F)[0]


def ambiguous_share(sd: SignedDistance, X: np.ndarray, margin: float = MARGIN) -> float:
    """Share of points X (k, 3) farther than ``margin`` from the surface whose winding number says
    neither in nor out (0 when no point is that far)."""
    keep = sd.unsigned(X) > margin
    w = np.abs(sd.winding(X[keep]))
    lo, hi = AMBIGUOUS_WINDING
    return float(((w > lo) & (w < hi)).mean()) if len(w) else 0.0


def detect(V: np.ndarray, F: np.ndarray, *, seed: int = 0, sd: SignedDistance | None = None) -> Openness:
    """Measure a mesh's openness. V (n, 3) float64 in the network frame, F (m, 3) int64.

    The winding numbers are computed only when there are boundary edges (a closed mesh costs one
    edge count). ``sd``: the mesh's distance trees when the caller has them already. Deterministic
    for a given seed; draws from its own generator, never from the caller's.
    """
    F = np.asarray(F, np.int64)
    edges = boundary_edge_count(F)
    share = 0.0
    if edges:
        rng = np.random.default_rng([seed, 11])
        S, _ = sample_surface(np.asarray(V, np.float64), F, POINTS, rng)
        near = S + rng.normal(0.0, SIGMA, S.shape)
        share = ambiguous_share(sd if sd is not None else SignedDistance(V, F), near)
    n, labels = face_components(F)
    return Openness(edges, share, n, finest_gap(V, F, labels, n, seed))


def finest_gap(V: np.ndarray, F: np.ndarray, labels: np.ndarray, n: int, seed: int = 0):
    """The narrowest gap between separate parts (network units): the smallest distance from the
    surface points of one part to another part's triangles, over pairs of parts that neither touch
    (nearer than ``TOUCHING``) nor overlap (a point of one inside the other). Why: a grid coarser
    than the gap merges the parts when meshed (core.geometry.remesh warns), and training must
    resolve it. None when not measured (see :class:`Openness`)."""
    if not 2 <= n <= MAX_GAP_PARTS:
        return None
    S, fid = sample_surface(np.asarray(V, np.float64), F, GAP_POINTS, np.random.default_rng([seed, 12]))
    part = labels[fid]
    best = np.inf
    for k in range(n):
        others = part != k
        if not others.any():
            continue
        tree = SignedDistance(V, F[labels == k])
        d = tree.unsigned(S[others])
        inside = tree.inside(S[others])
        for j in np.unique(part[others]):
            of_j = part[others] == j
            if d[of_j].min() > TOUCHING and not inside[of_j].any():
                best = min(best, float(d[of_j].min()))
    return best if np.isfinite(best) else None
