"""Signed distances and importance sampling on real meshes."""

import numpy as np
import pytest

from core.meshes.mesh import load_mesh, mesh_from_arrays
from core.samples.sampling import SignedDistance, importance_sample, sample_surface, uniform_ball
from helpers import icosphere, mesh_path


def _net_frame(name):
    m = load_mesh(mesh_path(name))
    return m.transformed(m.normalization())


@pytest.mark.parametrize("name", ["bunny.off", "spot.obj", "3holes.off", "fandisk.obj"])
def test_sign_is_correct_on_closed_meshes(name):
    """Points pushed off the surface along the face normal are outside (+) and inside (-)."""
    m = _net_frame(name)
    sd = SignedDistance(m.V, m.F)
    rng = np.random.default_rng(0)
    P, fid = sample_surface(m.V, m.F, 2000, rng)
    n = np.cross(m.V[m.F[fid, 1]] - m.V[m.F[fid, 0]], m.V[m.F[fid, 2]] - m.V[m.F[fid, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    eps = 1e-4
    out, inn = sd.signed(P + eps * n), sd.signed(P - eps * n)
    # sharp concave corners can put a pushed point closer to another face: allow a tiny share
    assert (out > 0).mean() > 0.995 and (inn < 0).mean() > 0.995
    assert np.allclose(np.abs(out), eps, rtol=0.05, atol=1e-6) or np.median(np.abs(out)) < 2 * eps


def test_sphere_distances_are_exact():
    V, F = icosphere(4, 0.5)
    sd = SignedDistance(V, F)
    Q = uniform_ball(5000, np.random.default_rng(1)).astype(np.float64)
    exact = np.linalg.norm(Q, axis=1) - 0.5
    assert np.abs(sd.signed(Q) - exact).max() < 2e-3    # polygonal sphere vs true sphere


def test_inverted_mesh_has_the_same_inside():
    """A globally inverted mesh (W = -1 inside) keeps its inside."""
    V, F = icosphere(2, 0.5)
    a, b = SignedDistance(V, F), SignedDistance(V, F[:, ::-1])
    Q = uniform_ball(1000, np.random.default_rng(2)).astype(np.float64)
    assert np.array_equal(a.inside(Q), b.inside(Q)) and a.inside(Q).any()


def test_inconsistent_orientation_is_repaired_for_the_sign():
    """43859.stl has faces that disagree in orientation: after repair W is 0 or 1, not fractional."""
    m = _net_frame("43859.stl")
    W = SignedDistance(m.V, m.F).winding(uniform_ball(20000, np.random.default_rng(0)))
    assert ((np.abs(W) > 0.2) & (np.abs(W) < 0.8)).mean() < 0.001 and (np.abs(W) > 0.5).any()


def test_cavity_bounded_by_an_inward_shell_stays_empty():
    V1, F1 = icosphere(2, 0.8)
    V2, F2 = icosphere(2, 0.4)
    V = np.vstack([V1, V2])
    F = np.vstack([F1, F2[:, ::-1] + len(V1)])          # inner shell faces inward: a hollow ball
    inside = SignedDistance(V, F).inside(np.array([[0.0, 0, 0], [0.6, 0, 0]]))
    assert inside.tolist() == [False, True]


def test_open_mesh_gets_a_sensible_inside():
    """The teapot is open and self-intersecting; the winding number still finds its interior."""
    m = _net_frame("teapot.obj")
    sd = SignedDistance(m.V, m.F)
    centre_of_body = np.array([[0.0, 0.0, 0.0]])
    assert sd.inside(centre_of_body)[0]


def test_resampled_distance_histogram_follows_the_weight():
    """Draws must follow p(x) ∝ exp(-beta |d|) over the uniform pool: compare the histogram of |d|
    of the drawn set with the pool's histogram reweighted by exp(-beta d) (exact reference)."""
    m = _net_frame("bunny.off")
    sd = SignedDistance(m.V, m.F)
    beta, pool = 30.0, 400_000
    S = importance_sample(sd, beta=beta, pool=pool, samples=200_000, rng=np.random.default_rng(3))
    ref_pool = uniform_ball(pool, np.random.default_rng(4)).astype(np.float64)
    d = sd.unsigned(ref_pool)
    bins = np.linspace(0, 0.4, 21)
    ref, _ = np.histogram(d, bins, weights=np.exp(-beta * d))
    ref /= ref.sum()
    got, _ = np.histogram(np.abs(S.sdf), bins)
    got = got / got.sum()
    assert np.abs(got - ref).sum() < 0.02          # total variation over the bins
    # and the distances in the set are exact for their points
    idx = np.random.default_rng(5).choice(len(S), 2000, replace=False)
    assert np.allclose(np.abs(S.sdf[idx]), sd.unsigned(S.points[idx]), atol=1e-6)
    assert np.array_equal(S.sdf[idx] < 0, sd.inside(S.points[idx]))


def test_uniform_when_beta_is_zero():
    V, F = icosphere(2, 0.5)
    S = importance_sample(SignedDistance(V, F), beta=0.0, pool=50_000, samples=50_000,
                          rng=np.random.default_rng(0))
    r = np.linalg.norm(S.points, axis=1)
    # uniform in the unit ball: P(r < 0.5) = 1/8
    assert abs((r < 0.5).mean() - 0.125) < 0.01


def test_bound_skips_most_of_the_pool():
    m = _net_frame("bunny.off")
    S = importance_sample(SignedDistance(m.V, m.F), beta=30, pool=2_000_000, samples=200_000,
                          rng=np.random.default_rng(0))
    assert S.stats["pool_fraction_queried"] < 0.5


def test_same_seed_same_samples_other_seed_different():
    V, F = icosphere(2, 0.5)
    sd = SignedDistance(V, F)
    a = importance_sample(sd, beta=30, pool=50_000, samples=5_000, rng=np.random.default_rng(7))
    b = importance_sample(sd, beta=30, pool=50_000, samples=5_000, rng=np.random.default_rng(7))
    c = importance_sample(sd, beta=30, pool=50_000, samples=5_000, rng=np.random.default_rng(8))
    assert np.array_equal(a.points, b.points) and np.array_equal(a.sdf, b.sdf)
    assert not np.array_equal(a.points, c.points)


def test_user_importance_concentrates_samples():
    """Weights on one half of a sphere put more of the near-surface samples there."""
    V, F = icosphere(3, 0.5)
    w = (V[:, 0] > 0).astype(float)
    plain = importance_sample(SignedDistance(V, F), beta=30, pool=200_000, samples=50_000,
                              rng=np.random.default_rng(0))
    painted = importance_sample(SignedDistance(V, F, w), beta=30, pool=200_000, samples=50_000,
                                rng=np.random.default_rng(0), importance_strength=4.0)
    share = lambda S: (S.points[:, 0] > 0.05).mean()
    assert share(plain) == pytest.approx(0.45, abs=0.05)
    assert share(painted) > 0.7                      # (1 + 4) : 1 near the painted half


def test_surface_samples_lie_on_the_surface():
    V, F = icosphere(2, 0.5)
    P, fid = sample_surface(V, F, 1000, np.random.default_rng(0))
    assert np.abs(SignedDistance(V, F).unsigned(P)).max() < 1e-9


def test_near_surface_samples_follow_painted_importance():
    """Surface points are drawn with density ∝ 1 + strength · importance: with one half painted and
    strength 4, the painted half holds (1 + 4) / (2 + 4) of the points."""
    from core.samples.sampling import surface_set
    V, F = icosphere(3, 0.5)
    w = (V[:, 0] > 0).astype(float)
    S = surface_set(SignedDistance(V, F, w), 40_000, np.random.default_rng(0), sigma=0.0,
                    importance_strength=4.0)
    assert (S.points[:, 0] > 0.02).mean() == pytest.approx(5 / 6, abs=0.03)
    plain = surface_set(SignedDistance(V, F), 40_000, np.random.default_rng(0))
    assert (plain.points[:, 0] > 0.02).mean() == pytest.approx(0.5, abs=0.03)
