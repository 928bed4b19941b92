"""Accuracy metrics, all stated in the **unit-sphere frame** of the source mesh (bounding-box centre
at the origin, farthest vertex at distance 1; see core/common/constants.py), so numbers are
comparable between shapes, between our networks and the paper's, and with mesh-based
representations.

* surface error (the paper's): mean |f| at 1e5 area-uniform points on the source surface;
* Chamfer L1: mean of the two one-sided mean distances between surfaces (1e5 area-uniform samples
  per side, exact point-to-triangle distances); Chamfer L2: the same with squared distances;
* Hausdorff: the larger one-sided maximum over those samples plus all vertices (a lower bound of the
  true Hausdorff distance that is tight at this sampling density), and its 99th percentile;
* inside agreement: share of uniform points in the bounding ball where the network's sign equals the
  winding-number sign of the source mesh (1 - relative volume of the symmetric difference).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..common.constants import SURFACE_ERROR_SAMPLES
from ..meshes.mesh import Mesh, normalization_transform
from ..samples.sampling import SignedDistance, sample_surface, uniform_ball


def unit_transform(mesh: Mesh) -> np.ndarray:
    """4x4 similarity from the mesh frame to its unit-sphere frame."""
    return normalization_transform(mesh.V, radius=1.0)


def _apply(T, V):
    return V @ T[:3, :3].T + T[:3, 3]


def surface_error(implicit, mesh: Mesh, n: int = SURFACE_ERROR_SAMPLES, seed: int = 0) -> float:
    """Mean |f| at n area-uniform points of ``mesh``, in unit-sphere-frame distance units."""
    P, _ = sample_surface(mesh.V, mesh.F, n, np.random.default_rng(seed))
    f = implicit.evaluate(implicit.to_network(P)).astype(np.float64)
    unit_per_mesh = unit_transform(mesh)[0, 0]
    return float(np.abs(f).mean() / implicit.scale * unit_per_mesh)


@dataclass
class SurfaceDistances:
    """Distances between two surfaces A (reference) and B (approximation), unit-sphere frame."""

    chamfer_l1: float
    chamfer_l2: float
    hausdorff: float
    p99: float
    a_to_b_mean: float
    b_to_a_mean: float
    #: where the Hausdorff distance is attained (unit-sphere frame) and on which surface: "reference"
    #: (a part of the reference the approximation misses) or "approximation" (surface it adds)
    worst_point: tuple = ()
    worst_on: str = ""

    def to_dict(self):
        return asdict(self)


def surface_distances(reference: Mesh, V: np.ndarray, F: np.ndarray, n: int = SURFACE_ERROR_SAMPLES,
                      seed: int = 0) -> SurfaceDistances:
    """Compare the surface (V, F) (mesh frame of ``reference``) with ``reference``."""
    T = unit_transform(reference)
    VA, FA = _apply(T, reference.V), reference.F
    VB, FB = _apply(T, np.asarray(V, np.float64)), np.asarray(F, np.int64)
    rng = np.random.default_rng(seed)
    PA = np.concatenate([sample_surface(VA, FA, n, rng)[0], VA])
    PB = np.concatenate([sample_surface(VB, FB, n, rng)[0], VB])
    dA = SignedDistance(VB, FB).unsigned(PA)      # reference samples -> approximation
    dB = SignedDistance(VA, FA).unsigned(PB)      # approximation samples -> reference
    # the means use the area-uniform samples only (vertices are added for the maxima)
    mA, mB = dA[:n], dB[:n]
    on_a = dA.max() >= dB.max()
    worst = PA[dA.argmax()] if on_a else PB[dB.argmax()]
    return SurfaceDistances(
        chamfer_l1=float(0.5 * (mA.mean() + mB.mean())),
        chamfer_l2=float(0.5 * ((mA ** 2).mean() + (mB ** 2).mean())),
        hausdorff=float(max(dA.max(), dB.max())),
        p99=float(max(np.percentile(mA, 99), np.percentile(mB, 99))),
        a_to_b_mean=float(mA.mean()), b_to_a_mean=float(mB.mean()),
        worst_point=tuple(float(x) for x in worst), worst_on="reference" if on_a else "approximation")


def inside_agreement(implicit, mesh: Mesh, n: int = 200_000, seed: int = 0,
                     sd: SignedDistance | None = None) -> float:
    """Share of uniform points in the network's bounding ball where both agree on inside/outside."""
    Q = uniform_ball(n, np.random.default_rng(seed), implicit.bound_radius).astype(np.float64)
    P = implicit.to_mesh(Q)
    if sd is None:
        sd = SignedDistance(mesh.V, mesh.F)
    inside_mesh = sd.inside(P)
    inside_net = implicit.evaluate(Q) < 0
    return float((inside_mesh == inside_net).mean())
