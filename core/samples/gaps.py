"""Narrow gaps between separate parts (issue 18): training samples in them, and the remesh
resolution that keeps the parts apart.

Why: importance samples land near the surface in proportion to its area, so the few points that fall
in a gap of 0.5 % of the shape's size between two parts carry little weight in the loss, and a small
network bridges the gap with a thin wall of negative values: the parts merge in every mesh made from
it. :func:`gap_samples` draws points *in* the gaps (on the segments from one part's surface to the
nearest other part, and close to both surfaces there) with exact signed distances; the conversion
(core.training.convert.training_set) replaces ``gap_fraction`` of its training set by them when the
source has separate parts whose narrowest gap (core.samples.openness.finest_gap) is below
:data:`NARROW`. Off by default: at 0.1 it lowers the Chamfer distance of cube arrays with 0.5-5 %
gaps but does not keep 0.5 % and 1 % gaps open with the default 8 x 32 network, and raises it on
63451.stl's 30 polyhedra (docs/open-geometry.md). :func:`joined_parts` reports a network that joins
parts across a gap; :func:`core.geometry.remesh.resolution_for` picks the remesh resolution a gap needs. A mesh of one
part, or of parts far apart, touching or overlapping, or of more than
core.samples.openness.MAX_GAP_PARTS parts, gets none: its training set is bit-identical to one drawn
without this module.

Frames: network frame throughout (core/common/constants.py), where the shape's farthest vertex is at
``MESH_RADIUS``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..common.constants import BOUND_RADIUS
from .openness import MAX_GAP_PARTS, TOUCHING, face_components, finest_gap
from .sampling import SampleSet, SignedDistance, sample_surface

#: Gap samples are drawn only when the narrowest gap is below this (network units, 5.5 % of the
#: shape's radius): wider gaps get enough importance samples of their own (exp(-30 · 0.025) = 0.47
#: in the middle of a 0.05 gap).
NARROW = 0.05
#: A surface point is "at a gap" when another part is nearer than this many finest gaps.
RANGE = 6.0
#: Surface points examined per gap sample wanted (at least :data:`MIN_CANDIDATES`): only the share of
#: the surface that faces a gap is kept.
CANDIDATES_PER_SAMPLE = 4
MIN_CANDIDATES = 100_000
#: Share of the gap samples spread along the segments across the gap; the rest sit near the two
#: surfaces that bound it (Gaussian of half the finest gap).
ACROSS = 0.8


@dataclass
class GapInfo:
    """What the gap sampling found and added (recorded in the sampling stats and the file)."""

    parts: int
    finest_gap: float | None        # network units, None when not measured or no gap
    points: int = 0                 # gap samples in the training set
    candidates: int = 0             # surface points found facing another part within the range
    range: float = 0.0              # network units
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def parts_and_gap(V: np.ndarray, F: np.ndarray, openness=None, seed: int = 0):
    """Face labels (m,), number of parts and the finest gap, reusing ``openness``
    (core.samples.openness.Openness) when the conversion measured it already."""
    n, labels = face_components(F)
    if openness is not None:
        return labels, n, openness.finest_gap
    return labels, n, finest_gap(V, F, labels, n, seed)


def narrow(parts: int, gap: float | None) -> bool:
    """Whether a source of ``parts`` separate parts whose finest gap is ``gap`` (network units)
    has parts closer than :data:`NARROW`, neither touching nor overlapping."""
    return 2 <= parts <= MAX_GAP_PARTS and gap is not None and TOUCHING < gap < NARROW


def needs_own_recipe(implicit, settings) -> bool:
    """Whether ``implicit``, trained with ``settings`` in a stack (one recipe and one network for
    every shape), was trained with less than its shape gets alone: a closed-mode network of parts
    closer than :data:`NARROW` (its metadata's ``surface.openness``), where alone it gets several
    networks (``part_networks``, core.samples.parts) or a longer recipe (``gap_factor`` above 1)."""
    meta = implicit.metadata if isinstance(implicit.metadata, dict) else {}
    surface = meta.get("surface") if isinstance(meta.get("surface"), dict) else {}
    o = surface.get("openness")
    alone_gets_more = settings.gap_factor > 1 or settings.part_networks == "auto"
    if not alone_gets_more or surface.get("mode") != "closed" or not isinstance(o, dict):
        return False
    parts, gap = o.get("components"), o.get("finest_gap")
    return (isinstance(parts, int) and isinstance(gap, (int, float))
            and narrow(parts, float(gap)))


def narrow_gap_settings(settings, surface) -> tuple:
    """``(settings, record)``: for a closed-mode conversion (``surface``, core.samples.shell.Surface)
    of parts closer than :data:`NARROW`, the samples, pool and epochs times
    ``settings.gap_factor``; else ``settings`` and None.

    Why: the default recipe joins such parts along their facing edges. Measured on three cubes 5 %
    of the size apart and on 63451.stl's 30 parts 1 % apart (docs/open-geometry.md): twice the
    samples or the epochs keeps the cubes apart, both together take 63451's Chamfer distance from
    0.0043 to 0.0013 (at four times the training time). ``record`` goes into the file's metadata.
    """
    o = surface.openness
    if surface.mode != "closed" or o is None or settings.gap_factor <= 1 \
            or not narrow(o.components, o.finest_gap):
        return settings, None
    return longer(settings, float(o.finest_gap))


def longer(settings, gap: float) -> tuple:
    """``settings`` with samples, pool and epochs times ``settings.gap_factor``, and the record of
    it for the file's metadata (``narrow_gaps``); ``gap`` is the finest gap (network units). Also
    what each network of a split shape trains with (core.samples.parts): the union is only as
    close to the gaps as each network is to its own surface (three cubes 0.5 % of a side apart:
    Chamfer 0.00076 -> 0.00036, 63451.stl 0.0019 -> 0.0009, docs/open-geometry.md)."""
    f = settings.gap_factor
    if f <= 1:
        return settings, None
    changed = settings.replace(samples=int(round(settings.samples * f)),
                               pool=int(round(settings.pool * f)),
                               epochs=int(round(settings.epochs * f)))
    return changed, {"finest_gap": gap, "factor": f, "samples": changed.samples,
                     "pool": changed.pool, "epochs": changed.epochs}


def facing_points(V: np.ndarray, F: np.ndarray, labels: np.ndarray, parts: int, reach: float,
                  n: int, rng: np.random.Generator):
    """Surface points that face another part: of ``n`` area-uniform surface points, those nearer
    than ``reach`` to a part other than their own. Returns the points (k, 3) and, for each, the
    closest point of the nearest other part (k, 3) (:func:`nearest_other_part`)."""
    S, fid = sample_surface(V, F, n, rng)
    best, other, _ = nearest_other_part(V, F, labels, parts, S, labels[fid], reach)
    keep = (best < reach) & (best > TOUCHING)
    return S[keep], other[keep]


def nearest_other_part(V, F, labels, parts: int, S, own, reach: float):
    """For surface points S (k, 3) of parts ``own`` (k,): the distance to the nearest other part
    within ``reach`` (inf beyond), its closest point there and that part's label (-1 when none)."""
    best = np.full(len(S), np.inf)
    other = np.zeros_like(S)
    other_part = np.full(len(S), -1)
    for k, q, d, C in part_distances(V, F, labels, parts, S, own, reach):
        nearer = d < best[q]
        best[q[nearer]], other[q[nearer]], other_part[q[nearer]] = d[nearer], C[nearer], k
    return best, other, other_part


def pair_gaps(V, F, labels, parts: int, S, own, reach: float) -> dict:
    """``{(p, q): distance}`` (p < q) for every pair of parts nearer than ``reach``, measured from
    the surface points S (k, 3) of parts ``own`` (k,) to the other part's triangles: every pair,
    not only each point's nearest (the diagonal neighbours of a cube array face each other only at
    corners, behind a nearer side neighbour)."""
    out = {}
    for k, q, d, _ in part_distances(V, F, labels, parts, S, own, reach):
        near = d < reach
        if not near.any():
            continue
        js, first = np.unique(own[q[near]], return_inverse=True)
        least = np.full(len(js), np.inf)
        np.minimum.at(least, first, d[near])
        for j, g in zip(js.tolist(), least.tolist()):
            key = (min(j, k), max(j, k))
            out[key] = min(out.get(key, np.inf), g)
    return out


def part_distances(V, F, labels, parts: int, S, own, reach: float):
    """For every part k: ``(k, q, d, C)``: the indices q of the surface points S (of other parts,
    ``own``) inside k's bounding box grown by ``reach``, their distances d to k's triangles and the
    closest points C. One distance tree per part, queried only with those points."""
    import igl

    by_x = np.argsort(S[:, 0], kind="stable")        # each part looks only at its slab of x
    xs = S[by_x, 0]
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(parts + 1))
    for k in range(parts):
        faces = F[order[starts[k]:starts[k + 1]]]
        Vk = V[faces.ravel()]
        lo, hi = Vk.min(0) - reach, Vk.max(0) + reach
        slab = by_x[np.searchsorted(xs, lo[0]):np.searchsorted(xs, hi[0], side="right")]
        P = S[slab]
        inside = (P[:, 1:] >= lo[1:]).all(1) & (P[:, 1:] <= hi[1:]).all(1)
        q = np.sort(slab[(own[slab] != k) & inside])
        if not len(q):
            continue
        tree = igl.AABB()
        tree.init(V, faces)
        sq, _, C = tree.squared_distance(V, faces, np.ascontiguousarray(S[q]))
        yield k, q, np.sqrt(np.maximum(sq, 0.0)), C


def gap_samples(sd: SignedDistance, labels: np.ndarray, parts: int, gap: float, n: int,
                rng: np.random.Generator) -> tuple[SampleSet | None, GapInfo]:
    """``n`` training points in the gaps between parts, with the training target of ``sd`` (exact
    signed distance, or the shell's), or None when no surface point faces another part within
    :data:`RANGE` finest gaps. ``labels``: part of every face of ``sd.F``."""
    import time

    t0 = time.perf_counter()
    reach = RANGE * gap
    info = GapInfo(parts, gap, range=reach)
    P, C = facing_points(sd.V, sd.F, labels, parts, reach,
                         max(CANDIDATES_PER_SAMPLE * n, MIN_CANDIDATES), rng)
    info.candidates = len(P)
    if not len(P) or n < 1:
        info.seconds = time.perf_counter() - t0
        return None, info
    pick = rng.integers(0, len(P), n)
    P, C = P[pick], C[pick]
    across = rng.random(n) < ACROSS
    t = rng.random(n)[:, None]
    X = np.where(across[:, None], P + t * (C - P), P + 0.5 * gap * rng.standard_normal((n, 3)))
    r = np.linalg.norm(X, axis=1, keepdims=True)
    X = np.where(r > BOUND_RADIUS, X * (BOUND_RADIUS / r), X)
    d = sd.unsigned(X)
    y = sd.target(d, sd.inside(X))
    info.points = n
    info.seconds = time.perf_counter() - t0
    return SampleSet(X.astype(np.float32), y.astype(np.float32), {}), info


def with_gap_samples(data: SampleSet, sd: SignedDistance, mesh_net, fraction: float,
                     rng: np.random.Generator, openness=None, seed: int = 0):
    """``data`` with ``fraction`` of its points (chosen at random) replaced by gap samples when the
    source (``mesh_net``, network frame) has narrow gaps between parts (:func:`narrow`); otherwise
    ``data`` itself, untouched. Returns the set and the :class:`GapInfo` (None when one part). The
    set's size never changes."""
    if fraction <= 0:
        return data, None
    labels, parts, gap = parts_and_gap(mesh_net.V, mesh_net.F, openness, seed)
    if parts < 2:
        return data, None
    if not narrow(parts, gap):
        return data, GapInfo(parts, gap)
    n = int(round(len(data) * fraction))
    extra, info = gap_samples(sd, labels, parts, gap, n, rng)
    if extra is None:
        return data, info
    idx = rng.choice(len(data), n, replace=False)
    P, S = data.points.copy(), data.sdf.copy()
    P[idx], S[idx] = extra.points, extra.sdf
    return SampleSet(P, S, dict(data.stats)), info


#: A pair of parts counts as joined by the network when it says "inside" at more than this share of
#: the points midway across the gap between them (points the source has outside both parts), and at
#: JOINED_INSIDE of them at least. A sliver is enough to merge the parts in every mesh: three cubes
#: 2 % apart came out as one piece at 512^3 with the network inside at 0.4 % of their midplanes.
JOINED_SHARE = 0.0005
JOINED_INSIDE = 2
#: Surface points drawn per check, and the fewest midpoints a pair needs to be judged. Parts that
#: face each other only at a corner or an edge get few: 63451.stl's 49 close pairs had 5 to 40
#: midpoints of 100,000 points, and 9 of its pairs merged unseen when 20 were needed.
JOINED_POINTS = 300_000
JOINED_MIN = 5


def joined_parts(implicit, mesh, seed: int = 0) -> dict | None:
    """Which neighbouring separate parts of ``mesh`` (core.meshes.mesh.Mesh, mesh frame) the network
    ``implicit`` joins across the gap between them: it says inside (f < 0) at more than
    :data:`JOINED_SHARE` of the points midway from one part's surface to the nearest other part,
    where the source is outside both. A join merges the parts in every mesh made from the network,
    at any resolution (core.geometry.remesh.gap_warning covers the other cause, a grid too coarse).

    Only parts nearer than :data:`NARROW` are examined (wider gaps get a midpoint far from both
    surfaces). Returns None for one part or more than core.samples.openness.MAX_GAP_PARTS, else
    ``{"parts": n, "pairs": examined pairs, "joined": [[k, j, share], ...], "warning": str | None}``.
    """
    T = mesh.normalization()
    V = mesh.V @ T[:3, :3].T + T[:3, 3]
    F = np.asarray(mesh.F, np.int64)
    parts, labels = face_components(F)
    if not 2 <= parts <= MAX_GAP_PARTS:
        return None
    rng = np.random.default_rng([seed, 13])
    S, fid = sample_surface(V, F, JOINED_POINTS, rng)
    own = labels[fid]
    best, other, other_part = nearest_other_part(V, F, labels, parts, S, own, NARROW)
    keep = (best < NARROW) & (best > TOUCHING)
    if not keep.any():
        return {"parts": parts, "pairs": 0, "joined": [], "warning": None}
    M = 0.5 * (S[keep] + other[keep])
    # the source must be outside at the midpoint by a quarter of the gap (not inside a third part,
    # not where the two parts overlap)
    sd = SignedDistance(V, F)
    outside = sd.signed(M) > 0.25 * best[keep]
    a, b = own[keep], other_part[keep]
    f = _network_values(implicit, network_to_mesh_frame(M, T), a, b)
    outside &= np.isfinite(f)
    pair = np.minimum(a, b) * parts + np.maximum(a, b)
    joined, pairs = [], 0
    for key in np.unique(pair[outside]):
        at = outside & (pair == key)
        if at.sum() < JOINED_MIN:
            continue
        pairs += 1
        share = float((f[at] < 0).mean())
        if share > JOINED_SHARE and (f[at] < 0).sum() >= JOINED_INSIDE:
            joined.append([int(key // parts), int(key % parts), share])
    warning = None
    if joined:
        touched = len({p for j in joined for p in j[:2]})
        warning = (f"the network joins {len(joined)} of {pairs} pairs of neighbouring separate parts "
                   f"({touched} of the source's {parts} parts) across the gap between them: they "
                   f"will merge in any mesh made from it (with part_networks auto, parts that "
                   f"nearly touch get separate networks)")
    return {"parts": parts, "pairs": pairs, "joined": joined, "warning": warning}


def _network_values(implicit, P: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The value at mesh-frame points P (k, 3) that decides whether parts ``a`` and ``b`` (k,) merge
    there: the network's; for a shape of several networks (core.samples.parts) that of the network
    holding both parts, and NaN where they are in different networks (each network is meshed
    alone, so those never merge)."""
    groups = group_of_part(implicit)
    if groups is None or len(groups) <= max(a.max(initial=0), b.max(initial=0)):
        return np.asarray(implicit.evaluate_mesh_frame(P), np.float64)
    g = np.asarray(groups)
    ga, gb = g[a], g[b]
    f = np.full(len(P), np.nan)
    for k in np.unique(ga[ga == gb]):
        at = (ga == k) & (gb == k)
        f[at] = implicit.network(int(k)).evaluate_mesh_frame(P[at])
    return f


def group_of_part(implicit) -> list | None:
    """The network of every separate part (face_components' labels) recorded by the conversion that
    split ``implicit`` (core.samples.parts.PartGroups.record), or None for one network."""
    if not getattr(implicit, "members", None):
        return None
    parts = (implicit.metadata or {}).get("parts") if isinstance(implicit.metadata, dict) else None
    groups = parts.get("group_of_part") if isinstance(parts, dict) else None
    if not (isinstance(groups, list) and all(isinstance(g, int) and 0 <= g < implicit.network_count
                                             for g in groups)):
        return None
    return groups


def network_to_mesh_frame(X: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Points X (k, 3) of the mesh's network frame (the 4 x 4 similarity T = mesh.normalization())
    back in the mesh frame."""
    return (X - T[:3, 3]) @ np.linalg.inv(T[:3, :3]).T

