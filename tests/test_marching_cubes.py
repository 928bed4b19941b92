"""Marching cubes: the copied tables, every case's orientation, welding, and closed meshes of analytic
fields (sphere, torus, two spheres, a box, noise)."""

import numpy as np
import pytest

from core.common.errors import InputError
from core.geometry.marching_cubes import (CORNERS, EDGE_TABLE, EDGES, TRI_TABLE, argsort_keys, case_index,
                                          grid_cells, marching_cubes, triangulate_cells, unique_keys)


# ----------------------------------------------------------------------------- helpers
def grid(n, lo=-1.0, hi=1.0):
    """(n, n, n, 3) point positions and the spacing of a cubic grid over [lo, hi]^3."""
    x = np.linspace(lo, hi, n)
    return np.stack(np.meshgrid(x, x, x, indexing="ij"), -1), (hi - lo) / (n - 1)


def closed_and_oriented(V, F):
    """Every directed edge once and its reverse present: closed, manifold edges, consistent faces."""
    d = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    fwd = d[:, 0] * len(V) + d[:, 1]
    rev = d[:, 1] * len(V) + d[:, 0]
    return len(np.unique(fwd)) == len(fwd) and bool(np.isin(fwd, rev).all())


def euler(V, F):
    E = np.unique(np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), 1), axis=0)
    return len(V) - len(E) + len(F)


def volume_area(V, F):
    a, b, c = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    return (np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6,
            np.linalg.norm(np.cross(b - a, c - a), axis=1).sum() / 2)


def mesh(f, n=49):
    X, h = grid(n)
    return marching_cubes(f(X), origin=(-1, -1, -1), spacing=h)


# ----------------------------------------------------------------------------- tables
def test_tables_use_exactly_the_edges_that_change_sign():
    assert TRI_TABLE.shape == (256, 16) and EDGE_TABLE.shape == (256,)
    for case in range(256):
        inside = [(case >> k) & 1 for k in range(8)]
        crossed = {e for e, (a, b) in enumerate(EDGES) if inside[a] != inside[b]}
        assert EDGE_TABLE[case] == sum(1 << e for e in crossed), case
        row = TRI_TABLE[case]
        count = int((row >= 0).sum())
        assert count % 3 == 0 and (row[:count] >= 0).all() and (row[count:] == -1).all(), case
        assert set(row[:count].tolist()) == crossed, case
        assert set(TRI_TABLE[255 - case][TRI_TABLE[255 - case] >= 0].tolist()) == crossed


def test_every_triangle_of_every_case_faces_the_positive_side():
    """The triangle normal points along the inside-to-outside direction of the edges it cuts."""
    for case in range(1, 255):
        values = np.array([[-1.0 if (case >> k) & 1 else 1.0 for k in range(8)]])
        V, F = triangulate_cells(np.zeros((1, 3), np.int64), values, (2, 2, 2))
        assert len(F) == int((TRI_TABLE[case] >= 0).sum()) // 3
        normals = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
        for tri, nrm in zip(F, normals):
            outward = 0
            for p in V[tri]:                       # p is the midpoint of the grid edge it lies on
                a, b = [k for k in range(8) if np.abs(CORNERS[k] - p).sum() == 0.5]
                outward = outward + (CORNERS[b] - CORNERS[a]) * np.sign(values[0, b] - values[0, a])
            assert nrm @ outward > 0, case


@pytest.mark.parametrize("seed", range(6))
def test_noise_gives_closed_consistently_oriented_meshes(seed):
    """Random values hit every case, ambiguous faces included: neighbouring cells must still join."""
    v = np.random.default_rng(seed).standard_normal((12, 12, 12))
    v[[0, -1]] = v[:, [0, -1]] = v[:, :, [0, -1]] = 1.0          # boundary outside: closed
    V, F = marching_cubes(v)
    assert len(F) > 100
    assert closed_and_oriented(V, F)


# ----------------------------------------------------------------------------- analytic shapes
def test_sphere_is_watertight_outward_and_accurate():
    r = 0.6
    V, F = mesh(lambda X: np.linalg.norm(X, axis=-1) - r, n=49)
    assert closed_and_oriented(V, F)
    assert euler(V, F) == 2
    vol, area = volume_area(V, F)
    assert vol > 0                                              # outward
    # at spacing h = r / 14.4 the chord error is about -0.3 % (volume) and -0.15 % (area)
    assert vol == pytest.approx(4 / 3 * np.pi * r ** 3, rel=0.01)
    assert area == pytest.approx(4 * np.pi * r ** 2, rel=0.01)
    assert np.abs(np.linalg.norm(V, axis=1) - r).max() < 1e-3      # vertices on the surface
    centroids = V[F].mean(1)
    normals = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    assert (np.einsum("ij,ij->i", normals, centroids) > 0).all()   # every face outward


def test_torus_two_spheres_and_box_topology_and_volume():
    R, r = 0.55, 0.2
    torus = lambda X: np.hypot(np.hypot(X[..., 0], X[..., 1]) - R, X[..., 2]) - r  # noqa: E731
    V, F = mesh(torus, 65)
    assert closed_and_oriented(V, F) and euler(V, F) == 0
    assert volume_area(V, F)[0] == pytest.approx(2 * np.pi ** 2 * R * r ** 2, rel=0.02)

    two = lambda X: np.minimum(np.linalg.norm(X - [0.45, 0, 0], axis=-1),  # noqa: E731
                               np.linalg.norm(X + [0.45, 0, 0], axis=-1)) - 0.3
    V, F = mesh(two, 49)
    assert closed_and_oriented(V, F) and euler(V, F) == 4           # two spheres
    assert volume_area(V, F)[0] == pytest.approx(2 * 4 / 3 * np.pi * 0.3 ** 3, rel=0.02)

    box = lambda X: np.abs(X - 0.013).max(-1) - 0.5                # noqa: E731  (off the grid)
    V, F = mesh(box, 49)
    assert closed_and_oriented(V, F) and euler(V, F) == 2
    assert volume_area(V, F)[0] == pytest.approx(1.0, rel=0.01)


def test_exact_zeros_count_as_outside_and_stay_closed():
    """A box whose faces lie exactly on grid points: zero values everywhere on the surface."""
    X, h = grid(21)
    V, F = marching_cubes(np.abs(X).max(-1) - 0.5, (-1, -1, -1), h)
    assert closed_and_oriented(V, F)
    assert volume_area(V, F)[0] > 0


# ----------------------------------------------------------------------------- welding and subsets
def test_one_vertex_per_crossed_grid_edge():
    X, h = grid(25)
    f = np.linalg.norm(X, axis=-1) - 0.55
    V, F = marching_cubes(f, (-1, -1, -1), h)
    inside = f < 0
    crossed = sum(int((inside[tuple(slice(1, None) if a == ax else slice(None) for a in range(3))]
                       != inside[tuple(slice(None, -1) if a == ax else slice(None) for a in range(3))]
                       ).sum()) for ax in range(3))
    assert len(V) == crossed
    assert len(np.unique(np.round(V, 12), axis=0)) == len(V)      # no duplicate positions
    assert np.bincount(F.ravel(), minlength=len(V)).min() >= 3    # every vertex used


def test_triangulating_all_cells_equals_triangulating_crossed_cells():
    X, _ = grid(17)
    f = np.linalg.norm(X - 0.1, axis=-1) - 0.5
    all_cells, all_values = grid_cells(f, crossed_only=False)
    cells, values = grid_cells(f)
    assert len(cells) < len(all_cells)
    Va, Fa = triangulate_cells(all_cells, all_values, f.shape)
    Vc, Fc = triangulate_cells(cells, values, f.shape)
    assert np.array_equal(Va, Vc) and np.array_equal(Fa, Fc)


def test_no_crossing_cells_give_empty_arrays():
    V, F = triangulate_cells(np.zeros((1, 3), np.int64), np.ones((1, 8)), (2, 2, 2))
    assert V.shape == (0, 3) and F.shape == (0, 3) and F.dtype == np.int64


# ----------------------------------------------------------------------------- errors
def test_bad_input_and_empty_level_set_raise():
    with pytest.raises(InputError, match="3-D grid"):
        marching_cubes(np.zeros((4, 4)))
    with pytest.raises(InputError, match="3-D grid"):
        marching_cubes(np.zeros((4, 1, 4)))
    v = np.ones((4, 4, 4))
    v[1, 1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        marching_cubes(v)
    with pytest.raises(InputError, match="no surface"):
        marching_cubes(np.ones((4, 4, 4)))
    with pytest.raises(InputError, match="no surface"):
        marching_cubes(-np.ones((4, 4, 4)))


# ----------------------------------------------------------------------------- sorting keys
@pytest.mark.parametrize("high", [10, 1 << 40, (1 << 62) - 1])      # the last does not pack: fallback
def test_key_sorts_equal_numpys(high):
    keys = np.random.default_rng(0).integers(0, high, 5000)
    np.testing.assert_array_equal(argsort_keys(keys), np.argsort(keys, kind="stable"))
    for got, want in zip(unique_keys(keys), np.unique(keys, return_index=True, return_inverse=True)):
        np.testing.assert_array_equal(got, want)
    assert len(argsort_keys(np.zeros(0, np.int64))) == 0


def test_case_index_sets_bit_k_for_inside_corner_k():
    values = np.where(np.random.default_rng(1).random((300, 8)) < 0.5, -1.0, 1.0)
    want = (values < 0).astype(np.int64) @ (1 << np.arange(8))
    got = case_index(values)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
