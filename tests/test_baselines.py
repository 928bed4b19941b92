"""Classical representations at a byte budget (core/geometry/baselines.py): bytes counted as
documented, budgets respected, and the meshes they produce close to the source."""

import numpy as np
import pytest

from core.common.errors import InputError
from core.geometry.baselines import (GRID_HEADER_BYTES, TSDF_CELLS, decimate_to_bytes, encode_grid,
                                     grid_bytes, measure_implicit, measure_mesh, mesh_bytes,
                                     sdf_grid_to_bytes)
from core.meshes.mesh import load_mesh, mesh_from_arrays
from helpers import icosphere, mesh_path


def sphere_mesh(subdivisions=4):
    V, F = icosphere(subdivisions, 2.0)
    return mesh_from_arrays(V + [1.0, 2.0, 3.0], F, name="sphere")


def test_mesh_bytes_are_float32_coordinates_and_int32_indices():
    assert mesh_bytes(841, 1678) == 841 * 12 + 1678 * 12 == 30_228


def test_decimation_fits_the_budget_and_uses_most_of_it():
    mesh = load_mesh(mesh_path("bunny.off"))
    b = decimate_to_bytes(mesh, 30_000)
    assert b.method == "qslim"
    assert b.bytes == mesh_bytes(len(b.V), len(b.F)) <= 30_000
    assert b.bytes > 0.97 * 30_000
    assert np.unique(b.F).size == len(b.V)            # no unreferenced vertex is paid for
    d = measure_mesh(mesh, b.V, b.F)
    assert d["chamfer"] < 0.003 and d["hausdorff"] < 0.03


def test_a_mesh_that_fits_is_returned_unchanged():
    mesh = load_mesh(mesh_path("decimated-knight.off"))       # 502 vertices, 1000 faces: 18,024 bytes
    b = decimate_to_bytes(mesh, 30_000)
    assert b.method == "original" and b.bytes == 18_024 and b.details["lossless"]
    assert np.array_equal(b.F, mesh.F)


@pytest.mark.parametrize("budget", [0, -5, 1.5, True])
def test_bad_budgets_are_rejected(budget):
    with pytest.raises(InputError, match="budget"):
        decimate_to_bytes(sphere_mesh(2), budget)


def test_a_budget_below_a_few_triangles_is_an_error():
    with pytest.raises(InputError, match="no quadric decimation fits"):
        decimate_to_bytes(sphere_mesh(3), 20)


@pytest.mark.parametrize("storage", ["float32", "float16", "int8"])
def test_sdf_grid_fits_the_budget_and_meshes_the_sphere(storage):
    mesh = sphere_mesh()
    b = sdf_grid_to_bytes(mesh, 20_000, storage)
    shape = b.details["shape"]
    assert b.bytes == grid_bytes(shape, storage) <= 20_000
    assert b.bytes == GRID_HEADER_BYTES + {"float32": 4, "float16": 2, "int8": 1}[storage] * np.prod(shape)
    # a finer grid would not fit: the next spacing down adds a layer of points on some axis
    assert grid_bytes([s + 1 for s in shape], storage) > 20_000
    r = np.linalg.norm(b.V - [1.0, 2.0, 3.0], axis=1)
    h = b.details["spacing"]
    assert np.abs(r - 2.0).max() < 0.25 * h + 0.01     # chord error of the icosphere ~ 0.005
    assert measure_mesh(mesh, b.V, b.F)["chamfer"] < 0.01


def test_int8_grid_round_trip_error_is_half_a_step_near_the_surface():
    rng = np.random.default_rng(0)
    h = 0.1
    d = rng.uniform(-TSDF_CELLS * h, TSDF_CELLS * h, 1000)
    back = encode_grid(d, h, "int8")
    assert np.abs(back - d).max() <= 0.5 * TSDF_CELLS * h / 127 + 1e-12
    far = encode_grid(np.array([-10.0, 10.0]), h, "int8")
    assert np.allclose(far, [-TSDF_CELLS * h, TSDF_CELLS * h])      # truncated, sign kept


def test_grid_storage_is_validated():
    with pytest.raises(InputError, match="storage"):
        sdf_grid_to_bytes(sphere_mesh(2), 20_000, "float64")
    with pytest.raises(InputError, match="more than"):
        sdf_grid_to_bytes(sphere_mesh(2), 50, "float32")


def test_measure_implicit_of_an_exact_sphere_field():
    """An 'implicit' that is exactly the sphere's distance scores near zero on every metric."""
    mesh = sphere_mesh(5)

    class SphereField:
        transform = mesh.normalization()
        scale = transform[0, 0]
        weight_bytes = 0
        bound_radius = 1.0

        def to_network(self, P):
            return P @ self.transform[:3, :3].T + self.transform[:3, 3]

        def to_mesh(self, Q):
            return (Q - self.transform[:3, 3]) / self.scale

        def evaluate(self, Q, chunk=None):
            return (np.linalg.norm(Q, axis=1) - 0.9).astype(np.float32)

        def gradient(self, Q, chunk=None):
            return (Q / np.linalg.norm(Q, axis=1, keepdims=True)).astype(np.float32)

    m = measure_implicit(SphereField(), mesh, resolution=64)
    assert m["chamfer"] < 2e-3 and m["surface_error"] < 1e-3
    assert abs(m["grad_median"] - 1.0) < 1e-3
    assert m["heldout_loss"] < 2e-3


def test_surface_distances_report_where_the_hausdorff_distance_is():
    """A spike the approximation adds is found on the approximation; a spike of the reference that
    the approximation lacks, on the reference."""
    from core.geometry.metrics import surface_distances, unit_transform

    V, F = icosphere(3, 0.5)
    top = int(np.argmax(V[:, 2]))
    S = V.copy()
    S[top] *= 1.3
    for ref_V, approx_V, on in ((V, S, "approximation"), (S, V, "reference")):
        ref = mesh_from_arrays(ref_V, F)
        d = surface_distances(ref, approx_V, F, n=20_000)
        assert d.worst_on == on and d.hausdorff > 0.1
        T = unit_transform(ref)
        tip = T[:3, :3] @ S[top] + T[:3, 3]
        assert np.linalg.norm(np.array(d.worst_point) - tip) < 1e-6
