"""Narrow-band level sets from implicits and training data from level sets
(core/geometry/volume_grid.py): the band holds every voxel within it and exact values, closes at the
network's ball, finds blocks a coarse test misses, refuses oversized grids; training data reproduces
the grid in the band and a signed distance beyond it."""

import numpy as np
import pytest

from core.common.errors import InputError
from core.geometry.metrics import surface_distances
from core.geometry.remesh import remesh
from core.geometry.volume_grid import (BLOCK, MAX_VOXELS_PER_AXIS, DenseGrid, band_to_dense,
                                       default_voxel_size, grid_mesh, implicit_band, level_set_band)
from core.meshes.mesh import load_mesh
from core.representation.paper_import import load_paper_weights


PAPER = "/work/shared/paper-weights/50736_sf.h5"
PAPER_MESH = "/work/shared/meshes/50736.stl"


def sphere(P, r=0.7, c=(0.1, -0.05, 0.02)):
    return np.linalg.norm(P - np.asarray(c), axis=1) - r


def dense_reference(field_, band, lo_hi):
    """Every voxel of the box evaluated: the band any sparse scheme must equal."""
    lo, hi = lo_hi
    axes = [np.arange(a, b + 1) for a, b in zip(lo, hi)]
    ijk = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    f = field_(ijk * band.voxel_size)
    return ijk, f


def band_lookup(band):
    out = {}
    offsets = np.stack(np.meshgrid(*[np.arange(BLOCK)] * 3, indexing="ij"), -1).reshape(-1, 3)
    for o, block in zip(band.origins, band.values):
        for ijk, v in zip(o + offsets, block.reshape(-1)):
            out[tuple(ijk)] = v
    return out


@pytest.mark.parametrize("stretch", [1.0, 4.0])
def test_band_holds_every_voxel_near_the_surface_with_exact_values(stretch):
    """stretch 4: a field four times steeper than a distance; the coarse block test then skips
    blocks the surface crosses, and growing from active faces must find them."""
    def field_(P):
        return stretch * sphere(P)

    h, hw = 0.05, 3
    lo, hi = np.array([-20, -20, -20]), np.array([20, 20, 20])
    band = level_set_band(field_, lo, hi, h, hw)
    ijk, f = dense_reference(field_, band, (lo, hi))
    got = band_lookup(band)
    near = np.abs(f) < band.background
    assert near.sum() > 1000
    missing = [tuple(x) for x in ijk[near] if tuple(x) not in got]
    assert missing == []
    vals = np.array([got[tuple(x)] for x in ijk[near]])
    np.testing.assert_allclose(vals, f[near], atol=1e-6)
    assert band.active_voxels == int(near.sum())
    assert np.all(np.abs(band.values) <= band.background + 1e-7)
    assert np.all(band.origins % BLOCK == 0)


def test_band_of_a_paper_network_meshes_like_its_remesh():
    """The band of a real network (a paper network, 8 x 32) at remesh's lattice gives the same
    surface as core.geometry.remesh at that resolution, and its values are the network's own."""
    mesh = load_mesh(PAPER_MESH)
    implicit = load_paper_weights(PAPER, mesh)
    h = default_voxel_size(implicit)
    band = implicit_band(implicit, h)
    values, M = band_to_dense(band)
    g = grid_mesh(DenseGrid(values, M, band.background))
    r = remesh(implicit, resolution=128)
    d_band = surface_distances(mesh, g.V, g.F, n=20_000).chamfer_l1
    d_remesh = surface_distances(mesh, r.V, r.F, n=20_000).chamfer_l1
    assert d_band < 1.5 * d_remesh
    # values at active voxels are the network's distance in local units
    o, block = band.origins[len(band.origins) // 2], band.values[len(band.origins) // 2]
    P = (o + np.stack(np.meshgrid(*[np.arange(BLOCK)] * 3, indexing="ij"), -1).reshape(-1, 3)) * h
    f = implicit.evaluate_mesh_frame(P)
    act = np.abs(block.reshape(-1)) < band.background
    np.testing.assert_allclose(block.reshape(-1)[act], f[act], atol=1e-6)


def test_band_refuses_too_many_voxels_and_bad_arguments():
    mesh = load_mesh(PAPER_MESH)
    implicit = load_paper_weights(PAPER, mesh)
    tiny = default_voxel_size(implicit) * 128 / (MAX_VOXELS_PER_AXIS + 10)
    with pytest.raises(InputError, match="voxels across the shape"):
        implicit_band(implicit, tiny)
    with pytest.raises(InputError, match="voxel_size"):
        implicit_band(implicit, -1.0)
    with pytest.raises(InputError, match="half_width"):
        implicit_band(implicit, 0.1, half_width=0)
    with pytest.raises(InputError, match="more than 1,000 voxels"):
        implicit_band(implicit, default_voxel_size(implicit), max_voxels=1000)


def test_band_without_surface_is_an_error():
    with pytest.raises(InputError, match="no surface"):
        level_set_band(lambda P: np.full(len(P), 5.0), [-8] * 3, [8] * 3, 0.1, 3)
    with pytest.raises(InputError, match="no surface"):
        level_set_band(lambda P: np.full(len(P), -0.01), [-8] * 3, [8] * 3, 0.1, 3)
