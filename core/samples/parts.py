"""Separate parts that nearly touch get separate networks (issue 18).

Why: one small network cannot hold a gap narrower than its own error. Three unit cubes 0.5 % of
their size apart (0.0027 network units) came out of every single-network recipe measured (twice
the samples and epochs, gap samples) joined by slivers along their facing edges, and a 512^3
grid's cells (0.0039) are wider than the gap anyway (docs/open-geometry.md). Parts far apart are
no problem for one network. So the parts are put in groups whose parts are all far apart (a
colouring of the graph "these two parts are closer than :data:`NARROW`"), one network per group,
and the shape is the union of the networks (``Implicit.members``: the minimum of their values).
The union of disjoint solids' signed distances is exactly their minimum, so nothing is lost where
the parts are far apart, and each network meets only gaps of :data:`NARROW` or more. The remesh
meshes each network alone (core.geometry.remesh), so the parts stay apart at any resolution.

Parts that touch or overlap (nearer than ``TOUCHING``, or one inside the other) form one solid and
always share a network. A mesh of one part, of parts all far apart, of more than
:data:`MAX_SPLIT_PARTS` parts, or whose groups would need more than :data:`MAX_MEMBERS` networks,
is converted with one network as before (the narrow-gap recipe of core.samples.gaps applies then).

Frames: network frame of the whole shape (core/common/constants.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common.constants import BOUND_RADIUS
from ..meshes.mesh import Mesh, triangle_areas
from .gaps import NARROW, pair_gaps
from .openness import TOUCHING, face_components
from .sampling import SampleSet, SignedDistance, sample_surface

#: Most networks one conversion makes (the file format takes 16).
MAX_MEMBERS = 8
#: Most separate parts examined (one distance tree each, queried only near its bounding box; the
#: file's metadata lists each part's network). The gap measured before training stops at
#: core.samples.openness.MAX_GAP_PARTS; this search goes further.
MAX_SPLIT_PARTS = 1024
#: Surface points that find the close pairs: parts that face each other only at an edge or a corner
#: need many (core.samples.gaps.JOINED_POINTS measured it on 63451.stl).
GROUP_POINTS = 300_000
#: Surface points of a part tested against a neighbour for nesting (one inside the other).
NESTED_POINTS = 500
#: Same-group parts nearer than this many NARROW are looked for, to record the finest gap a network
#: holds (the remesh's warning needs it).
WITHIN_REACH = 1.5


@dataclass
class PartGroups:
    """Which network each face goes to, and what the split found.

    face_group : (m,) int, the group (network) of every face; groups : how many networks
    part_group : (parts,) int, the group of every part (labels of
    core.samples.openness.face_components)
    parts : the source's separate parts; solids : parts once touching and nested ones are merged
    narrow_pairs : pairs of solids closer than NARROW (each pair lands in two groups)
    finest_gap : the narrowest gap between parts (network units)
    finest_gap_within : the narrowest gap between parts of one group, or None (none within reach)
    """

    face_group: np.ndarray
    part_group: np.ndarray
    groups: int
    parts: int
    solids: int
    narrow_pairs: int
    finest_gap: float
    finest_gap_within: float | None

    def record(self) -> dict:
        """What the file's metadata says about the split (``metadata["parts"]``)."""
        sizes = np.bincount(self.face_group, minlength=self.groups)
        return {"networks": self.groups, "parts": self.parts, "solids": self.solids,
                "narrow_pairs": self.narrow_pairs, "finest_gap": self.finest_gap,
                "finest_gap_within": self.finest_gap_within,
                "faces_per_network": [int(s) for s in sizes],
                "group_of_part": [int(g) for g in self.part_group]}

    def meshes(self, mesh: Mesh) -> list:
        """The source split into one Mesh per group (vertices renumbered, weights kept)."""
        out = []
        for g in range(self.groups):
            F = mesh.F[self.face_group == g]
            used, inverse = np.unique(F, return_inverse=True)
            w = None if mesh.vertex_weights is None else mesh.vertex_weights[used]
            out.append(Mesh(mesh.V[used], inverse.reshape(-1, 3).astype(np.int64),
                            f"{mesh.name} (network {g + 1} of {self.groups})", w,
                            mesh.welded_vertices, dict(mesh.stats)))
        return out


def part_groups(V: np.ndarray, F: np.ndarray, seed: int = 0) -> PartGroups | None:
    """Groups of the separate parts of (V, F) (network frame) such that no two parts of a group are
    closer than :data:`NARROW`; None when one network does (module docstring)."""
    F = np.asarray(F, np.int64)
    n, labels = face_components(F)
    if not 2 <= n <= MAX_SPLIT_PARTS:
        return None
    V = np.asarray(V, np.float64)
    S, fid = sample_surface(V, F, GROUP_POINTS, np.random.default_rng([seed, 14]))
    own = labels[fid]
    found = pair_gaps(V, F, labels, n, S, own, WITHIN_REACH * NARROW)
    if not any(g < NARROW for g in found.values()):
        return None
    keys = np.array([p * n + q for p, q in found], np.int64)
    gap = np.array(list(found.values()))

    solid = np.arange(n)

    def find(i):
        while solid[i] != i:
            solid[i] = solid[solid[i]]
            i = solid[i]
        return i

    for k, g in zip(keys, gap):
        if g <= TOUCHING:
            solid[find(k // n)] = find(k % n)
    narrow = [(int(k // n), int(k % n)) for k, g in zip(keys, gap) if TOUCHING < g < NARROW]
    for p, q in _nested(V, F, labels, S, own, narrow):
        solid[find(p)] = find(q)
    roots = np.array([find(i) for i in range(n)])
    edges = {(min(roots[p], roots[q]), max(roots[p], roots[q])) for p, q in narrow
             if roots[p] != roots[q]}
    if not edges:
        return None
    colour = _colouring(sorted(set(roots.tolist())), edges)
    groups = max(colour.values()) + 1
    if groups > MAX_MEMBERS:
        return None
    group_of_part = np.array([colour[r] for r in roots])
    within = [g for k, g in zip(keys, gap) if g > TOUCHING
              and roots[k // n] != roots[k % n] and group_of_part[k // n] == group_of_part[k % n]]
    finest = float(gap[gap > TOUCHING].min())          # edges exist: some pair is narrow
    return PartGroups(group_of_part[labels], group_of_part, groups, n, len(set(roots.tolist())),
                      len(edges), finest, float(min(within)) if within else None)


def _nested(V, F, labels, S, own, pairs):
    """The pairs (p, q) of ``pairs`` where surface points of one part lie inside the other (one part
    inside another, or overlapping without touching where sampled): one solid, not a gap."""
    out = []
    trees = {}
    order = np.argsort(own, kind="stable")
    bounds = np.searchsorted(own[order], np.arange(labels.max() + 2))
    lows, highs = {}, {}
    for p, q in pairs:
        for x, y in ((p, q), (q, p)):
            pts = S[order[bounds[x]:bounds[x + 1]]]
            if len(pts) > NESTED_POINTS:
                pts = pts[:: len(pts) // NESTED_POINTS]
            if y not in trees:
                Fy = F[labels == y]
                trees[y] = SignedDistance(V, Fy)
                lows[y], highs[y] = V[Fy].min((0, 1)), V[Fy].max((0, 1))
            pts = pts[((pts >= lows[y]) & (pts <= highs[y])).all(1)]    # inside needs the box
            if len(pts) and trees[y].inside(pts).any():
                out.append((p, q))
                break
    return out


def _colouring(nodes: list, edges: set) -> dict:
    """A greedy colouring (most neighbours first, smallest free colour): node -> colour."""
    neighbours = {v: set() for v in nodes}
    for p, q in edges:
        neighbours[p].add(q)
        neighbours[q].add(p)
    colour = {}
    for v in sorted(nodes, key=lambda v: (-len(neighbours[v]), v)):
        used = {colour[u] for u in neighbours[v] if u in colour}
        colour[v] = next(c for c in range(len(nodes) + 1) if c not in used)
    return colour



#: Near-surface samples each separate part gets at least (1 % of the default set): a part whose
#: share of the surface area would give it fewer gets that many drawn on it. Why: samples crowd
#: where the area is, so a small loose part (a cube 2 % of the size beside a sphere: about 60 points
#: of 300,000) is dropped by the network, silently; 1,500 kept it beside one sphere and not another,
#: 3,000 beside both (docs/open-geometry.md).
PART_FLOOR = 3_000
#: At most this share of the training set is replaced by such samples.
PART_FLOOR_SHARE = 0.1


def with_small_part_samples(data, sd: SignedDistance, mesh_net: Mesh, sigma: float,
                            rng: np.random.Generator):
    """``data`` with points near the small separate parts of ``mesh_net`` (network frame) in place
    of random ones, so that each part has about :data:`PART_FLOOR` near-surface samples; ``data``
    itself (untouched) when the mesh is one part or no part is small. Half of a part's samples lie
    within ``sigma`` of its surface, half within its own size (so its far side is learnt too);
    exact signed distances. Returns the set and a record (None when nothing was added)."""
    F = np.asarray(mesh_net.F, np.int64)
    n, labels = face_components(F)
    if not 2 <= n <= MAX_SPLIT_PARTS:
        return data, None
    V = np.asarray(mesh_net.V, np.float64)
    area = np.bincount(labels, triangle_areas(V, F), minlength=n)
    expected = len(data) * area / max(area.sum(), 1e-300)
    small = np.nonzero(expected < PART_FLOOR)[0]
    if not len(small):
        return data, None
    each = int(min(PART_FLOOR, PART_FLOOR_SHARE * len(data) / len(small)))
    if each < 1:
        return data, None
    points = []
    for k in small:
        faces = F[labels == k]
        S, _ = sample_surface(V, faces, each, rng)
        size = float(np.linalg.norm(V[faces].reshape(-1, 3).ptp(axis=0)))
        spread = np.where(np.arange(each) % 2 == 0, sigma, max(0.5 * size, sigma))[:, None]
        points.append(S + spread * rng.standard_normal(S.shape))
    P = np.concatenate(points)
    r = np.linalg.norm(P, axis=1, keepdims=True)
    P = np.where(r > BOUND_RADIUS, P * (BOUND_RADIUS / r), P)
    idx = rng.choice(len(data), len(P), replace=False)
    X, y = data.points.copy(), data.sdf.copy()
    X[idx], y[idx] = P.astype(np.float32), sd.signed(P).astype(np.float32)
    record = {"parts": int(len(small)), "points": int(len(P)), "per_part": each}
    return SampleSet(X, y, dict(data.stats)), record
