"""Does a trained network actually describe its source mesh? The check every conversion runs.

Why: the training loss and the paper's surface error (mean |f| on the source surface) both *reward*
failure: a network that collapsed to a small constant has a tiny surface error and no surface at
all. So every conversion (command line, add-on, convert-dir, target-error and budget modes) ends with
three independent checks against the source mesh, on points the network was not trained on:

1. **a surface exists**: the network changes sign inside its ball and evaluates to finite values;
2. **the sign agrees** with the source's generalized winding number (libigl), separately on uniform
   points in the ball and on points near the surface (a collapsed network agrees with the volume of a
   thin shape almost everywhere, so the near-surface share is what exposes it). Points closer to the
   surface than :data:`SIGN_MARGIN` are skipped: an accurate network may flip there;
3. **the mesh it gives is close** to the source: a coarse marching-cubes mesh (``RESOLUTION``^3)
   compared with the source by Chamfer L1 distance, in the unit-sphere frame (a fraction of the
   shape's radius), the figure shown to users instead of the surface error.

Thresholds (named below) are set so healthy networks pass with a wide margin and collapsed, inverted
or torn networks fail; ``docs/algorithms.md`` ("Checking the result") gives the measured evidence.
Open input whose inside is ambiguous (sheets, petals, triangle soup: boundary edges and many points
with a winding number far from 0 and 1; core/samples/openness.py) has no well-defined inside, so
there only "no surface" and non-finite values are failures; everything else becomes a warning the
user sees.

Separate parts are checked too (warnings, not failures): a part of the source the coarse mesh
lacks, and neighbouring parts the network joins across the gap between them
(core.samples.gaps.joined_parts), which merge in every mesh made from it.

A network trained as a shell (core/samples/shell.py) has a well-defined inside again, the points
within its half thickness t of the sheet: the sign is compared with that, the coarse mesh is fine
enough to resolve the shell, and since the shell's surface lies t from the sheet on both sides its
Chamfer distance to the sheet is about t, so the Chamfer thresholds apply to the excess over t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..common.constants import BOUND_RADIUS
from ..common.errors import InputError
from ..common.units import format_fraction
from ..meshes.mesh import Mesh
from ..samples.openness import (AMBIGUOUS_SHARE, AMBIGUOUS_WINDING, MARGIN, ambiguous_share,
                                boundary_edge_count, face_components)
from ..samples.sampling import SignedDistance, sample_surface, uniform_ball
from ..samples.shell import ShellDistance, trained_thickness

#: Marching-cubes resolution of the coarse mesh the Chamfer estimate uses (cells per axis over the
#: network's cube): fine enough that thin parts of real meshes survive, coarse enough to cost well
#: under a second.
RESOLUTION = 96
#: Held-out points of each kind (uniform in the ball, near the surface).
POINTS = 20_000
#: Near-surface held-out points: surface samples moved by a Gaussian of this sigma (network units).
NEAR_SIGMA = 0.03
#: Points nearer to the source surface than this (network units) are not used for sign agreement
#: (the margin core.samples.openness uses too).
SIGN_MARGIN = MARGIN
#: Below these shares of agreeing points the sign is wrong (a failure).
MIN_AGREEMENT_UNIFORM = 0.90
MIN_AGREEMENT_NEAR = 0.65
#: An open source's inside is ambiguous, and its check only warns, when more than AMBIGUOUS_SHARE of
#: the near-surface points have |winding number| in AMBIGUOUS_WINDING (core/samples/openness.py,
#: re-exported).
__all__ = ["AMBIGUOUS_SHARE", "AMBIGUOUS_WINDING", "Verification", "boundary_edge_count",
           "format_fraction", "verify"]
#: Coarse Chamfer L1 (unit-sphere frame) above which the network is not the source shape (failure),
#: and above which it is a coarse likeness the user is warned about.
MAX_CHAMFER = 0.08
WARN_CHAMFER = 0.01
#: A separate part of the source (a connected component of its faces, at least MIN_PART_POINTS of
#: the surface points) whose points lie on average farther than this (unit-sphere frame, plus
#: the shell's offset) from the coarse mesh is missing from the result: a warning names it (issue
#: 18: parts lost or merged away must not be silent; the Chamfer distance averages them out).
MISSING_PART = 0.02
MIN_PART_POINTS = 20
#: How far on either side of a surface point the source's inside is looked up to tell the solid's
#: boundary from a buried surface (unit-sphere frame).
BOUNDARY_STEP = 0.005
#: Samples per surface for the coarse Chamfer estimate.
CHAMFER_SAMPLES = 10_000
#: For a shell, the coarse mesh has at least this many cells across the shell's full thickness 2t
#: (so every part of the shell contains grid points), at most MAX_SHELL_RESOLUTION cells per axis.
SHELL_CELLS_ACROSS = 2
MAX_SHELL_RESOLUTION = 512


@dataclass
class Verification:
    """The outcome of :func:`verify`. Distances in the unit-sphere frame of the source mesh
    (1 = the distance from the shape's centre to its farthest vertex)."""

    has_surface: bool
    sign_agreement: float
    chamfer: float
    open_input: bool
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    sign_agreement_near: float = float("nan")
    boundary_edges: int = 0
    ambiguous_share: float = 0.0
    #: half thickness (fraction of the radius) of a network checked as a shell, else None
    shell_thickness: float | None = None

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        """JSON-safe: non-finite numbers become None."""
        def clean(x):
            return x if not isinstance(x, float) or math.isfinite(x) else None
        return {"passed": self.passed, "has_surface": self.has_surface,
                "sign_agreement": clean(self.sign_agreement),
                "sign_agreement_near": clean(self.sign_agreement_near),
                "chamfer": clean(self.chamfer), "open_input": self.open_input,
                "boundary_edges": self.boundary_edges, "ambiguous_share": clean(self.ambiguous_share),
                "shell_thickness": self.shell_thickness,
                "problems": list(self.problems), "warnings": list(self.warnings)}

    def summary(self) -> str:
        """One line for people: the accuracy as a share of the shape's size, and the sign."""
        if not self.has_surface:
            return "no surface"
        return (f"Chamfer {format_fraction(self.chamfer)} of size, sign agreement "
                f"{100 * self.sign_agreement:.1f}% (near the surface "
                f"{100 * self.sign_agreement_near:.1f}%)")


@dataclass
class SourceSide:
    """The source's half of the check, which needs no network: the check's points (network frame)
    and the source's signed distance at them. Computed by :func:`source_side`, before training where
    there is time (core.conversion.checked does it while the training set is drawn), else by
    :func:`verify` itself; the result is the same either way."""

    transform: np.ndarray
    seed: int
    t_net: float | None                 # a shell's half thickness in the network frame, else None
    sd: SignedDistance
    open_edges: int
    uniform: np.ndarray
    S: np.ndarray
    face_ids: np.ndarray
    near: np.ndarray
    ambiguous: float
    d_uniform: np.ndarray               # the source's signed distance at ``uniform``
    d_near: np.ndarray                  # ... and at ``near``

    def matches(self, transform: np.ndarray, seed: int, t_net: float | None) -> bool:
        return (self.seed == seed and self.t_net == t_net
                and np.array_equal(self.transform, transform))


def source_side(mesh: Mesh, transform: np.ndarray, seed: int = 0,
                shell_thickness: float | None = None) -> SourceSide:
    """The check's points and the source's distances at them, for a network whose frame is
    ``transform`` (mesh frame to network frame), trained closed or (``shell_thickness``, a fraction
    of the radius) as a shell."""
    T = np.asarray(transform, dtype=np.float64)
    scale = float(np.cbrt(abs(np.linalg.det(T[:3, :3]))))
    t_net = None if shell_thickness is None else shell_thickness * scale / _unit_scale(mesh)
    rng = np.random.default_rng([seed, 7])
    open_edges = boundary_edge_count(mesh.F)
    V_net = mesh.V @ T[:3, :3].T + T[:3, 3]
    sd = SignedDistance(V_net, mesh.F) if t_net is None else ShellDistance(V_net, mesh.F, t_net)
    uniform = uniform_ball(POINTS, rng, BOUND_RADIUS).astype(np.float64)
    S, face_ids = sample_surface(V_net, mesh.F, POINTS, rng)
    near = S + rng.normal(0.0, NEAR_SIGMA, S.shape)
    near = near[np.linalg.norm(near, axis=1) < BOUND_RADIUS]
    ambiguous = ambiguous_share(sd, near, SIGN_MARGIN) if open_edges else 0.0
    return SourceSide(T, seed, t_net, sd, open_edges, uniform, S, face_ids, near, ambiguous,
                      sd.signed(uniform), sd.signed(near))


def verify(implicit, mesh: Mesh, *, seed: int = 0, shell_thickness: float | None = None,
           source: SourceSide | None = None) -> Verification:
    """Check ``implicit`` against its source ``mesh`` (mesh frame); see the module docstring.

    shell_thickness : half thickness (fraction of the shape's radius) when the network was trained as
        a shell (core.samples.shell); None takes it from the network's metadata (``surface``), which
        is None for networks trained on the signed distance.
    source : :func:`source_side` computed earlier; used when it was made for this network's frame,
        seed and surface, else computed here.
    Never raises for a bad network: every failure is a problem in the returned record.
    """
    from ..geometry.metrics import surface_distances
    from ..geometry.remesh import remesh
    from ..samples.gaps import joined_parts

    if shell_thickness is None:
        shell_thickness = trained_thickness(implicit)
    if shell_thickness is not None and not (np.isfinite(shell_thickness) and shell_thickness > 0):
        raise InputError(f"shell_thickness must be a positive number, got {shell_thickness!r}")
    t_net = None if shell_thickness is None else shell_thickness * implicit.scale / _unit_scale(mesh)
    if source is None or not source.matches(implicit.transform, seed, t_net):
        source = source_side(mesh, implicit.transform, seed, shell_thickness)
    sd, open_edges, ambiguous, t_net = source.sd, source.open_edges, source.ambiguous, source.t_net
    uniform, S, face_ids, near = source.uniform, source.S, source.face_ids, source.near
    result = Verification(has_surface=False, sign_agreement=float("nan"), chamfer=float("inf"),
                          open_input=ambiguous > AMBIGUOUS_SHARE, boundary_edges=open_edges,
                          ambiguous_share=ambiguous, shell_thickness=shell_thickness)
    f_uniform = implicit.evaluate(uniform)
    f_near = implicit.evaluate(near)
    f_surface = implicit.evaluate(S)
    values = np.concatenate([f_uniform, f_near, f_surface])
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        result.problems.append(f"the network evaluates to NaN or infinity at {bad:,} of "
                               f"{len(values):,} points: its weights overflow")
        return result

    result.sign_agreement = _agreement(source.d_uniform, f_uniform)
    result.sign_agreement_near = _agreement(source.d_near, f_near, balanced=True)
    try:
        r = remesh(implicit, resolution=_resolution(t_net))
    except InputError as e:
        if "no surface" not in str(e) and "no zero level set" not in str(e):
            raise
        sign = "positive (outside)" if values.min() >= 0 else "negative (inside)"
        result.problems.append(f"the network has no surface: it is {sign} everywhere it was "
                               "evaluated (training collapsed to a constant"
                               + (", or the open source encloses no volume)" if result.open_input
                                  else ")"))
        return result
    result.has_surface = True
    d = surface_distances(mesh, r.V, r.F, n=CHAMFER_SAMPLES, seed=seed)
    result.chamfer = d.chamfer_l1
    result.warnings += _missing_parts(mesh, S, face_ids, r, implicit,
                                      MISSING_PART + (shell_thickness or 0.0),
                                      None if shell_thickness is not None else sd)
    if shell_thickness is None:      # a shell's offset bridges gaps under 2t by design
        joined = joined_parts(implicit, mesh, seed)
        if joined is not None and joined["warning"]:
            result.warnings.append(joined["warning"])

    shell = shell_thickness is not None
    soft = result.warnings if result.open_input and not shell else result.problems
    inside = "the shell around the source" if shell else "the source"
    if result.sign_agreement < MIN_AGREEMENT_UNIFORM or result.sign_agreement_near < MIN_AGREEMENT_NEAR:
        soft.append(f"inside and outside disagree with {inside}: the sign is right at "
                    f"{100 * result.sign_agreement:.1f}% of points in the volume and "
                    f"{100 * result.sign_agreement_near:.1f}% near the surface")
    excess = result.chamfer - (shell_thickness or 0.0)   # a shell's surface lies t from its sheet
    offset = f" ({format_fraction(shell_thickness)} of it is the shell's offset)" if shell else ""
    if excess > MAX_CHAMFER:
        soft.append(f"the shape is far from the source: Chamfer distance "
                    f"{format_fraction(result.chamfer)} of its size{offset} (a coarse "
                    f"{_resolution(t_net)}^3 mesh)")
    elif excess > WARN_CHAMFER:
        result.warnings.append(f"coarse likeness: Chamfer distance {format_fraction(result.chamfer)} "
                               f"of the shape's size{offset}; thin or small parts may be lost (more "
                               "epochs, a larger network or more samples help)")
    if result.open_input and not shell:
        result.warnings.insert(0, f"the source mesh is open ({open_edges:,} boundary edges) and "
                                  f"{100 * ambiguous:.0f}% of the points near it are neither clearly "
                                  "inside nor outside: a signed distance describes it only roughly")
    return result


def _missing_parts(mesh: Mesh, S: np.ndarray, face_ids: np.ndarray, remeshed, implicit,
                   limit: float, sd: SignedDistance | None) -> list:
    """Warnings for separate parts of the source that the result lacks: for each connected
    component of the source's faces, the mean distance of its surface points S (network frame) to
    the coarse mesh ``remeshed`` (mesh frame), in the unit-sphere frame, against ``limit``.

    With ``sd`` (the source's signed distance; None for a shell) only points on the boundary of the
    source's solid count: a shell inside another part, or the part of a surface buried in an
    overlapping one, has no place in a signed distance and is not missing."""
    n, labels = face_components(mesh.F)
    if n < 2:
        return []
    T = implicit.transform
    if sd is not None:
        normal = _unit_normals(sd.V, mesh.F[face_ids])
        step = BOUNDARY_STEP * implicit.scale / _unit_scale(mesh)
        boundary = sd.inside(S + step * normal) != sd.inside(S - step * normal)
        S, face_ids = S[boundary], face_ids[boundary]
    V_net = remeshed.V @ T[:3, :3].T + T[:3, 3]
    dist = SignedDistance(V_net, remeshed.F).unsigned(S) / implicit.scale * _unit_scale(mesh)
    part = labels[face_ids]
    counts = np.bincount(part, minlength=n)
    means = np.bincount(part, weights=dist, minlength=n) / np.maximum(counts, 1)
    missing = np.nonzero((counts >= MIN_PART_POINTS) & (means > limit))[0]
    small = _small_parts_missing(mesh, labels, n, counts, implicit, limit, sd)
    if not len(missing) and not small:
        return []
    out = []
    if len(missing):
        worst = missing[np.argmax(counts[missing])]
        out.append(f"{len(missing)} of the source's {n} separate parts are missing from the result "
                   f"(the largest, {format_fraction(counts[worst] / len(S))} of the surface, lies "
                   f"{format_fraction(means[worst])} of the size away): small or close parts were "
                   "lost or merged (more epochs, a larger network or more samples help)")
    if small:
        out.append(f"{small} of the source's {n} separate parts, each too small for the check's "
                   f"{len(S):,} points, are missing from the network (it has no inside there, or "
                   f"its values on them average above {format_fraction(limit)} of the size): more "
                   "epochs or samples help")
    return out


#: Points drawn on each separate part too small for the check's area-uniform points.
SMALL_PART_POINTS = 50


def _small_parts_missing(mesh: Mesh, labels, n: int, counts, implicit, limit: float,
                         sd: SignedDistance | None) -> int:
    """How many of the parts with fewer than MIN_PART_POINTS of the check's points the network
    lacks, judged on SMALL_PART_POINTS points drawn on each: the network's mean |value| there
    (unit-sphere frame) above ``limit``, or no point just inside the part (closed; for a shell,
    the part's own points, which lie inside the shell) where the network is negative. Why the
    network and not the coarse mesh: a part smaller than the coarse mesh's cells is not in it even
    when the network has it."""
    small = np.nonzero(counts < MIN_PART_POINTS)[0]
    if not len(small):
        return 0
    T = implicit.transform
    V = mesh.V @ T[:3, :3].T + T[:3, 3]
    F = np.asarray(mesh.F, np.int64)
    rng = np.random.default_rng(17)
    step = BOUNDARY_STEP * implicit.scale / _unit_scale(mesh)
    points, inner, of_points, of_inner = [], [], [], []
    for k in small:
        faces = F[labels == k]
        P, fid = sample_surface(V, faces, SMALL_PART_POINTS, rng)
        if sd is None:
            Q = P                       # a shell: the sheet lies inside it
        else:
            normal = _unit_normals(V, faces[fid])
            # as for the large parts, only points on the boundary of the source's solid count
            # (a part buried in another has no place in a signed distance)
            boundary = sd.inside(P + step * normal) != sd.inside(P - step * normal)
            if boundary.sum() < MIN_PART_POINTS // 4:
                continue
            P, normal = P[boundary], normal[boundary]
            Q = np.concatenate([P - 0.5 * step * normal, P + 0.5 * step * normal])  # orientation
        points.append(P)
        inner.append(Q)
        of_points.append(np.full(len(P), k))
        of_inner.append(np.full(len(Q), k))
    if not points:
        return 0
    f = implicit.evaluate(np.concatenate(points)) / implicit.scale * _unit_scale(mesh)
    g = implicit.evaluate(np.concatenate(inner))
    judged = np.unique(np.concatenate(of_points))
    count = np.bincount(np.concatenate(of_points), minlength=n)[judged]
    mean = np.bincount(np.concatenate(of_points), np.abs(f), minlength=n)[judged] / count
    has_inside = np.bincount(np.concatenate(of_inner), g < 0, minlength=n)[judged] > 0
    return int(((mean > limit) | ~has_inside).sum())


def _unit_normals(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    """(k, 3) unit normals of the triangles F (k, 3) of vertices V."""
    a, b, c = (V[F[:, j]] for j in range(3))
    normal = np.cross(b - a, c - a)
    return normal / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-300)


def _unit_scale(mesh: Mesh) -> float:
    """Scale from the mesh frame to its unit-sphere frame."""
    from ..geometry.metrics import unit_transform
    return float(unit_transform(mesh)[0, 0])


def _resolution(t_net: float | None) -> int:
    """Cells per axis of the coarse mesh: RESOLUTION, finer for a thin shell (half thickness t_net)."""
    if t_net is None:
        return RESOLUTION
    return int(min(MAX_SHELL_RESOLUTION, max(RESOLUTION, math.ceil(SHELL_CELLS_ACROSS / t_net))))


def _agreement(d: np.ndarray, f: np.ndarray, balanced: bool = False) -> float:
    """Share of points (away from the surface) where sign(f) matches the source's inside, from the
    source's signed distance d and the network's values f there.

    balanced : the mean of the shares on inside and on outside points, so that a thin shape (few
    inside points) cannot hide a network that gets its whole inside wrong. Inside points count from
    half the deepest inside depth when that is less than SIGN_MARGIN: a plate thinner than two
    margins would otherwise have no inside points at all.
    """
    depth = float(-d.min()) if (d < 0).any() else 0.0
    inner_margin = min(SIGN_MARGIN, 0.5 * depth)
    keep = (d > SIGN_MARGIN) | ((d < 0) & (-d > inner_margin))
    if not keep.any():
        return 1.0
    inside, net_inside = d[keep] < 0, f[keep] < 0
    if not balanced or inside.all() or not inside.any():
        return float((inside == net_inside).mean())
    return float(0.5 * (net_inside[inside].mean() + (~net_inside[~inside]).mean()))
