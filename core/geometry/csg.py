"""Constructive solid geometry between neural implicits: one combined signed field, in world units.

Why this module exists: it is the numpy definition of a CSG result, evaluated in **one place** for
remeshing (``core.geometry.remesh``), metrics and the reference tracer (``core.geometry.trace``);
the viewport's shader (``neural_implicit_addon/viewport.py``) evaluates the same formulas on the GPU
and is tested against it. Sign convention: negative inside, as everywhere in the project.

The model
---------
A :class:`CSGShape` is a *base* implicit placed in the world (``matrix_world``: mesh frame -> world)
and an ordered stack of :class:`CSGStep` s, each an operation with an *operand* and a blend radius,
applied in order like Blender's modifier stack::

    v = base(x);  for each step: v = op(v, operand(x), blend)

An operand is itself a CSGShape, so an operand that has its own stack takes part with it applied (a
shape with no steps is a single implicit). Cycles are the caller's business (the add-on refuses
them while building the tree): a Python tree cannot hold one.

One metric for all operands
---------------------------
Each implicit is evaluated in its own network frame ``q = A x + t`` (``A, t`` from
``transform @ inv(matrix_world)``, world -> network) and its value is brought to world units by
dividing by ``sigma_max(A)``, the largest singular value of ``A``. For a uniformly scaled object that
is exact (``s``: network units per world unit); under non-uniform scale a network-frame ball of
radius ``f`` contains the world ball of radius ``f / sigma_max``, so the value stays a conservative
distance (a safe sphere-tracing step, a valid narrow band) and only its zero set is exact.

Outside its bounding ball (radius ``R = BOUND_RADIUS`` in the network frame) a network is undefined.
Each implicit is therefore *clipped* before combining (:func:`leaf_value`), with ``r = |q| - R``:

* inside the ball (``r < 0``): ``max(f(q), r)``, the field ``core.geometry.remesh`` meshes for one
  implicit;
* outside (``r >= 0``): ``sqrt(r^2 + g^2)`` with ``g = max(f(p), 0)`` at ``p = R q / |q|``, the
  nearest point of the ball's surface. The network is never evaluated where it is undefined. This is
  a lower bound of the distance to the clipped solid: a solid point ``y`` lies in the ball, so
  ``(q - p) . (y - p) <= 0`` (``q - p`` is the outward normal at ``p`` times ``r``) and
  ``|q - y|^2 >= r^2 + |p - y|^2 >= r^2 + g^2`` (``|p - y| >= g`` for a distance-like ``f``). So the
  value is a safe step, and it meets the inside value continuously at the ball's surface (a plain
  ``r`` outside would fall to 0 there and look like a surface to a sphere tracer). Beyond
  ``r >= SHELL`` the gain is small (at most ``sqrt(SHELL^2 + 1) - SHELL`` for a tanh output, and
  far less for the ``g`` of about 0.1 that converted shapes have at their ball), so ``r`` alone is
  used and nothing is evaluated.

The zero set is that of ``core.geometry.remesh`` (the value is positive everywhere outside the
ball).

Operations (``a`` the stack so far, ``b`` the operand, ``k`` the blend radius in world units)
--------------------------------------------------------------------------------------------
* union ``min(a, b)``; intersection ``max(a, b)``; difference ``max(a, -b)``;
* smooth union ``smin(a, b, k) = min(a, b) - h^2 k / 4`` with ``h = max(k - |a - b|, 0) / k``
  (Inigo Quilez's quadratic polynomial smooth minimum); smooth intersection ``smax(a, b, k) =
  -smin(-a, -b, k)``; smooth difference ``smax(a, -b, k)``. ``k = 0`` gives the hard operation.

With negative inside, the smooth union is a smooth *minimum*: ``smin <= min`` everywhere, equal where
``|a - b| >= k`` (far from the seam), so the solid it bounds *contains* the hard union. Likewise
``smax >= max``: smooth intersections and differences are contained in the hard ones. ``smin`` and
``smax`` have partial derivatives in [0, 1] that sum to 1, so the combined field is as Lipschitz as
its operands: sphere tracing and the sparse remeshing band keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common.constants import BOUND_RADIUS, EVAL_CHUNK
from ..common.errors import InputError
from .remesh import DEFAULT_RESOLUTION, Field, eval_chunk

#: The operations, in the order of their codes (the shader receives ``OPERATIONS.index(op)``).
OPERATIONS = ("union", "intersection", "difference",
              "smooth_union", "smooth_intersection", "smooth_difference")
SMOOTH = frozenset(("smooth_union", "smooth_intersection", "smooth_difference"))

#: Outside a ball, the network (at the nearest point of the ball's surface) is evaluated only closer
#: than this (network units, half the ball's radius); farther, ``r`` alone, a looser lower bound
#: (module docstring) that saves the evaluation where it hardly matters.
SHELL = 0.5

#: Most implicits one CSG tree may hold. Every point of a remesh or a trace evaluates each of them,
#: so time grows with their number; the viewport's shader takes 16 (``CSG_MAX_LEAVES``), the CPU
#: evaluators 16 times that.
MAX_LEAVES = 256

#: Deepest nesting of operands: the evaluators recurse once per level, and Python's stack (1,000
#: frames by default, fewer left inside Blender) must never be what stops a tree.
MAX_DEPTH = 64


# ============================================================================ the formulas

def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Quadratic polynomial smooth minimum (Quilez): ``min(a, b) - h^2 k / 4``, ``h = max(k - |a - b|,
    0) / k``; the plain minimum for ``k <= 0``. Never above ``min(a, b)``, equal where ``|a - b| >= k``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    m = np.minimum(a, b)
    if k <= 0:
        return m
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return m - h * h * (0.25 * k)


def combine(operation: str, a: np.ndarray, b: np.ndarray, blend: float = 0.0) -> np.ndarray:
    """``operation`` of fields ``a`` (the stack so far) and ``b`` (the operand), elementwise."""
    if operation == "union":
        return np.minimum(a, b)
    if operation == "intersection":
        return np.maximum(a, b)
    if operation == "difference":
        return np.maximum(a, -np.asarray(b))
    if operation == "smooth_union":
        return smooth_min(a, b, blend)
    if operation == "smooth_intersection":
        return -smooth_min(-np.asarray(a), -np.asarray(b), blend)
    if operation == "smooth_difference":
        return -smooth_min(-np.asarray(a), b, blend)
    raise InputError(f"operation must be one of {OPERATIONS}, got {operation!r}")


# ============================================================================ the tree

def _affine(M, name: str) -> np.ndarray:
    M = np.array(M, dtype=np.float64)
    if M.shape != (4, 4) or not np.isfinite(M).all():
        raise InputError(f"{name} must be a finite 4x4 matrix, got shape {M.shape}")
    if not np.allclose(M[3], (0.0, 0.0, 0.0, 1.0)):
        raise InputError(f"{name} must be affine (last row 0 0 0 1)")
    if abs(np.linalg.det(M[:3, :3])) < 1e-12:
        raise InputError(f"{name} is singular (an object scaled to zero?)")
    return M


@dataclass
class CSGStep:
    """One entry of a stack: ``operation`` (one of :data:`OPERATIONS`) with ``operand`` (a
    :class:`CSGShape`) and ``blend``, the blend radius of smooth operations in world units (>= 0)."""

    operation: str
    operand: "CSGShape"
    blend: float = 0.0

    def __post_init__(self):
        if self.operation not in OPERATIONS:
            raise InputError(f"operation must be one of {OPERATIONS}, got {self.operation!r}")
        if not isinstance(self.operand, CSGShape):
            raise InputError(f"a CSG operand must be a CSGShape, got {type(self.operand).__name__}")
        self.blend = float(self.blend)
        if not (np.isfinite(self.blend) and self.blend >= 0.0):
            raise InputError(f"blend must be a finite radius >= 0, got {self.blend!r}")


@dataclass
class Leaf:
    """One implicit of a tree, with the maps the evaluators need.

    implicit : the network (anything with ``evaluate(Q)``, ``transform`` and ``architecture``)
    world_to_net : (4, 4) world -> network frame; inv_sigma : ``1 / sigma_max`` of its linear part
    (network values times this are world distances, conservatively); sigma_ratio : ``sigma_max /
    sigma_min`` (1 for uniform scale)
    """

    implicit: object
    world_to_net: np.ndarray
    inv_sigma: float
    sigma_ratio: float


class CSGShape(Field):
    """A base implicit placed in the world, combined with a stack of operands (module docstring).

    Parameters
    ----------
    implicit : core.representation.implicit.Implicit (or a duck-typed one: ``evaluate``,
    ``transform``)
    matrix_world : (4, 4) the implicit's mesh frame -> world (Blender's ``Object.matrix_world``);
        identity: the mesh frame is the world
    steps : list of CSGStep, applied in order

    The shape is evaluated in the world with :meth:`evaluate_world`. It is also a
    :class:`core.geometry.remesh.Field` (``remesh(shape, R)`` meshes it on a cube around
    :meth:`bounds`, in world coordinates) and a shape for ``core.geometry.trace`` (trace it as
    ``TraceItem(shape, identity)``): its "network frame" is the world translated so that its
    bounding sphere (``bound_radius``) is centred at the origin (``transform``), in which
    :meth:`evaluate` takes points.
    """

    name = "the CSG result"
    region = "its operands' bounding spheres"

    def __init__(self, implicit, matrix_world=None, steps=()):
        if not hasattr(implicit, "evaluate") or not hasattr(implicit, "transform"):
            raise InputError(f"a CSG base must be an implicit, got {type(implicit).__name__}")
        self.matrix_world = _affine(np.eye(4) if matrix_world is None else matrix_world,
                                    "matrix_world")
        self.steps = list(steps)
        if getattr(implicit, "members", None):
            # a shape of several networks (core.samples.parts) is their union: one leaf each, so
            # the shader and the evaluators see single networks
            nets = implicit.networks()
            self.steps = [CSGStep("union", CSGShape(n, self.matrix_world))
                          for n in nets[1:]] + self.steps
            implicit = nets[0]
        self.implicit = implicit
        for s in self.steps:
            if not isinstance(s, CSGStep):
                raise InputError(f"CSG steps must be CSGStep, got {type(s).__name__}")
        _check_size(self.steps)
        T = _affine(implicit.transform, "implicit.transform")
        world_to_net = T @ np.linalg.inv(self.matrix_world)
        sv = np.linalg.svd(world_to_net[:3, :3], compute_uv=False)
        self.leaf = Leaf(implicit, world_to_net, float(1.0 / sv[0]), float(sv[0] / sv[-1]))
        lo, hi = self.bounds()
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise InputError("the CSG result's bounds overflow: an object is scaled or moved beyond "
                             "float range, or a blend radius is too large")
        if np.all(hi >= lo):
            self.center = 0.5 * (lo + hi)
            self.bound_radius = float(0.5 * np.linalg.norm(hi - lo))
            side = float((hi - lo).max())
        else:                                   # an empty intersection: nothing anywhere
            self.center = np.zeros(3)
            self.bound_radius = 0.0
            side = 0.0
        # Field: the cube around the bounds, output in the world
        self.size = max(side, 1e-9)
        self.lower = self.center - 0.5 * self.size
        self.mirrored = False

    # ------------------------------------------------------------------ structure
    def leaves(self) -> list:
        """Every implicit of the tree as :class:`Leaf`, depth first: the base, then each step's
        operand's leaves in stack order (the order the shader's per-leaf data follows)."""
        out = [self.leaf]
        for s in self.steps:
            out += s.operand.leaves()
        return out

    def flat_steps(self) -> list:
        """Every step of the tree in evaluation order: for each step of this stack, first the steps
        inside its operand, then the step itself (the order of the shader's per-step data)."""
        out = []
        for s in self.steps:
            out += s.operand.flat_steps()
            out.append(s)
        return out

    def depth(self) -> int:
        """Nesting depth (1 for a flat stack of single implicits); the evaluators need one
        temporary per level."""
        return 1 + max((s.operand.depth() for s in self.steps), default=0)

    @property
    def sigma_ratio(self) -> float:
        """Largest ``sigma_max / sigma_min`` of the tree's leaves (1 when all scale uniformly)."""
        return max(leaf.sigma_ratio for leaf in self.leaves())

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """World axis-aligned box ``(lo, hi)`` holding the solid (``hi < lo`` somewhere: empty).

        The base's box is that of its bounding ellipsoid; union takes the boxes' union (grown by
        ``blend / 4`` times the leaves' ``sigma_ratio`` for smooth union, which lowers the field by at
        most ``blend / 4``), intersection their intersection, difference keeps the box.
        """
        A = np.linalg.inv(self.leaf.world_to_net)          # network -> world
        c = A[:3, 3]
        half = BOUND_RADIUS * np.sqrt((A[:3, :3] ** 2).sum(1))
        lo, hi = c - half, c + half
        for s in self.steps:
            olo, ohi = s.operand.bounds()
            if s.operation in ("union", "smooth_union"):
                margin = 0.0
                if s.operation == "smooth_union":
                    margin = 0.25 * s.blend * max(self.sigma_ratio, s.operand.sigma_ratio)
                lo = np.minimum(lo, olo) - margin
                hi = np.maximum(hi, ohi) + margin
            elif s.operation in ("intersection", "smooth_intersection"):
                lo, hi = np.maximum(lo, olo), np.minimum(hi, ohi)
        return lo, hi

    # ------------------------------------------------------------------ evaluation
    def evaluate_world(self, P: np.ndarray, chunk: int = EVAL_CHUNK) -> np.ndarray:
        """The combined field at world points P (n, 3) -> (n,) float64, world units, negative inside."""
        P = np.asarray(P, dtype=np.float64)
        if P.ndim != 2 or P.shape[1] != 3:
            raise InputError(f"query points must have shape (n, 3), got {P.shape}")
        v = leaf_value(self.leaf, P, chunk)
        for s in self.steps:
            v = combine(s.operation, v, s.operand.evaluate_world(P, chunk), s.blend)
        return v

    def domain_world(self, P: np.ndarray) -> np.ndarray:
        """(n,) bool: world points inside at least one leaf's bounding ball."""
        P = np.asarray(P, dtype=np.float64)
        inside = np.zeros(len(P), dtype=bool)
        for leaf in self.leaves():
            q = P @ leaf.world_to_net[:3, :3].T + leaf.world_to_net[:3, 3]
            inside |= np.einsum("ij,ij->i", q, q) < BOUND_RADIUS ** 2
        return inside

    # ------------------------------------------------------------------ core.geometry.remesh.Field
    def values(self, X, chunk):
        return self.evaluate_world(X, chunk), self.domain_world(X)

    def to_output(self, V):
        return np.asarray(V, dtype=np.float64)

    # ------------------------------------------------------------------ core.geometry.trace shape
    @property
    def transform(self) -> np.ndarray:
        """World -> the tracing frame: a translation by ``-center`` (distances stay world units)."""
        T = np.eye(4)
        T[:3, 3] = -self.center
        return T

    @property
    def scale(self) -> float:
        """Tracing-frame units per world unit (1): what ``core.geometry.metrics.surface_error``
        divides by."""
        return 1.0

    @property
    def unit(self) -> float:
        """World length of one network unit of the finest leaf: ``core.geometry.trace`` scales its
        ``epsilon`` and normal offset, which are stated in network units, by this."""
        return min(leaf.inv_sigma for leaf in self.leaves())

    def to_network(self, P: np.ndarray) -> np.ndarray:
        """World points -> tracing-frame points."""
        return np.asarray(P, dtype=np.float64) - self.center

    def to_mesh(self, Q: np.ndarray) -> np.ndarray:
        """Tracing-frame points -> world points."""
        return np.asarray(Q, dtype=np.float64) + self.center

    def evaluate(self, Q: np.ndarray, chunk: int = EVAL_CHUNK) -> np.ndarray:
        """The combined field at tracing-frame points Q (n, 3) -> (n,) float32 (world units)."""
        return self.evaluate_world(self.to_mesh(Q), chunk).astype(np.float32)


def _check_size(steps) -> None:
    """Refuse trees with more than :data:`MAX_LEAVES` implicits or deeper than :data:`MAX_DEPTH`
    (operands are already built, so their own sizes are known and checked)."""
    depth = 1 + max((s.operand.depth() for s in steps), default=0)
    if depth > MAX_DEPTH:
        raise InputError(f"a CSG tree nested {depth} deep is over the limit of {MAX_DEPTH}")
    leaves = 1 + sum(len(s.operand.leaves()) for s in steps)
    if leaves > MAX_LEAVES:
        raise InputError(f"a CSG tree of {leaves} implicits is over the limit of {MAX_LEAVES}")


def leaf_value(leaf: Leaf, P: np.ndarray, chunk: int = EVAL_CHUNK) -> np.ndarray:
    """One implicit, clipped by its ball, in world units at world points P (n, 3) -> (n,) float64
    (module docstring): with ``r = |q| - R``, ``max(f(q), r)`` inside the ball, ``sqrt(r^2 +
    max(f(p), 0)^2)`` at ``p = R q / |q|`` in the shell ``0 <= r < SHELL``, ``r`` beyond; times
    ``inv_sigma``."""
    q = P @ leaf.world_to_net[:3, :3].T + leaf.world_to_net[:3, 3]
    norm = np.sqrt(np.einsum("ij,ij->i", q, q))
    r = norm - BOUND_RADIUS
    v = r.copy()
    near = np.nonzero(r < SHELL)[0]
    if len(near):
        rn = r[near]
        outside = rn >= 0
        Q = q[near]
        Q[outside] *= (BOUND_RADIUS / norm[near][outside])[:, None]
        f = leaf.implicit.evaluate(Q, eval_chunk(leaf.implicit, chunk)).astype(np.float64)
        bad = ~np.isfinite(f)
        if bad.any():      # NaN would pass for outside in min/max, and hide the operand
            raise InputError(f"a CSG operand evaluates to NaN or infinity at {int(bad.sum()):,} of "
                             f"{len(f):,} points: its file is corrupt or its weights overflow float32")
        g = np.maximum(f, 0.0)
        v[near] = np.where(outside, np.sqrt(rn * rn + g * g), np.maximum(f, rn))
    return v * leaf.inv_sigma


# ============================================================================ conveniences

def csg(implicit, matrix_world=None, *steps) -> CSGShape:
    """Shorthand: ``csg(a, Ma, ("difference", csg(b, Mb)), ("smooth_union", csg(c, Mc), 0.1))``."""
    out = []
    for s in steps:
        if isinstance(s, CSGStep):
            out.append(s)
        elif isinstance(s, (tuple, list)) and 2 <= len(s) <= 3:
            out.append(CSGStep(*s))
        else:
            raise InputError(f"a step must be CSGStep or (operation, operand[, blend]), got {s!r}")
    return CSGShape(implicit, matrix_world, out)


def lens_volumes(radius: float, distance: float) -> dict:
    """Exact volumes of two balls of ``radius`` whose centres are ``distance`` apart: ``union``,
    ``intersection`` (the lens ``pi (4r + d)(2r - d)^2 / 12``), ``difference`` (one minus the other).
    The reference of the CSG tests and benchmarks."""
    r, d = float(radius), float(distance)
    ball = 4.0 / 3.0 * np.pi * r ** 3
    lens = np.pi * (4 * r + d) * (2 * r - d) ** 2 / 12.0 if d < 2 * r else 0.0
    return {"ball": ball, "intersection": lens, "union": 2 * ball - lens, "difference": ball - lens}


__all__ = ["OPERATIONS", "SMOOTH", "MAX_LEAVES", "MAX_DEPTH", "CSGShape", "CSGStep", "Leaf", "combine", "smooth_min", "csg",
           "leaf_value", "lens_volumes"]


def distill(shape, settings=None, resolution: int = DEFAULT_RESOLUTION, progress=None,
            cancel=None):
    """Train one new network on a CSG result, so a stack becomes a single compact implicit again.

    The result's surface is extracted by sparse marching cubes at ``resolution`` (in the world
    frame) and converted like any mesh (core.training.convert.convert_mesh with ``settings``): the
    new network's mesh frame is the world. Returns a core.training.convert.ConversionResult whose
    metadata records the distillation. Needs torch (training).
    """
    from ..meshes.mesh import mesh_from_arrays
    from ..training.convert import convert_mesh
    from .remesh import remesh

    surface = remesh(shape, resolution, progress=progress, cancel=cancel)
    mesh = mesh_from_arrays(surface.V, surface.F, name="csg result")
    result = convert_mesh(mesh, settings, progress=progress, cancel=cancel)
    result.implicit.metadata["distilled_from"] = {
        "operation": "csg", "resolution": resolution, "faces": int(len(surface.F))}
    return result
