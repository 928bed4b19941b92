"""Mesh input: every shared mesh loads, every bad input gives InputError with a clear message."""

import os
import struct

import numpy as np
import pytest

from core.common.errors import InputError
from core.meshes.mesh import load_mesh, mesh_from_arrays, normalization_transform
from core.meshes.mesh_io import read_mesh_file, write_mesh_file
from helpers import MESHES, mesh_path, shared_meshes, tetrahedron

# counts after welding, from ../shared/meshes/CATALOG.tsv
CATALOG_COUNTS = {
    "spot.obj": (2930, 5856), "bunny.off": (3485, 6966), "fandisk.obj": (6475, 12946),
    "teapot.obj": (3241, 6320), "featuretype.ply": (1722, 3476), "fixed_top.ply": (2374, 4772),
    "1002_tray_bottom.STL": (2216, 4520), "multibody.stl": (20, 32), "soup.stl": (300, 100),
    "63451.stl": (240, 360), "100173.stl": (128, 250), "40921.stl": (80, 186),
    "43859.stl": (6, 8), "73342.stl": (202, 420), "679615.stl": (49, 94),
}


@pytest.mark.parametrize("path", shared_meshes(), ids=os.path.basename)
def test_every_shared_mesh_loads(path):
    m = load_mesh(path)
    assert m.V.dtype == np.float64 and m.F.dtype == np.int64 and m.F.shape[1] == 3
    assert m.F.min() >= 0 and m.F.max() < len(m.V)
    name = os.path.basename(path)
    if name in CATALOG_COUNTS:
        assert (len(m.V), len(m.F)) == CATALOG_COUNTS[name]


def test_binary_and_ascii_formats_agree(tmp_path):
    """The same triangles written as OBJ, OFF, binary PLY and binary STL read back identically."""
    m = load_mesh(mesh_path("decimated-knight.off"))
    for ext in (".obj", ".off", ".ply", ".stl"):
        p = tmp_path / f"knight{ext}"
        write_mesh_file(p, m.V, m.F)
        m2 = load_mesh(p)
        assert m2.F.shape == m.F.shape
        tol = 1e-6 * np.abs(m.V).max()  # PLY and STL store float32
        np.testing.assert_allclose(np.sort(m2.V, axis=0), np.sort(m.V, axis=0), atol=tol)


def test_polygons_are_triangulated(tmp_path):
    p = tmp_path / "quad.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\nf 1 2 3 4\nf 1 2/1 5//2\n")
    m = load_mesh(p)
    assert m.F.shape == (3, 3)


def test_negative_obj_indices(tmp_path):
    p = tmp_path / "neg.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\n")
    m = load_mesh(p)    # canonical order renumbers vertices: compare the corners' coordinates
    assert m.V[m.F].tolist() == [[[0, 0, 0], [1, 0, 0], [0, 1, 0]]]


def test_stl_duplicates_are_welded():
    m = load_mesh(mesh_path("multibody.stl"))
    assert m.welded_vertices == 96 - 20


def test_ascii_ply_and_binary_ply_both_read():
    assert len(read_mesh_file(mesh_path("featuretype.ply"))[0]) == 5096   # ascii, before welding
    assert len(read_mesh_file(mesh_path("fixed_top.ply"))[0]) == 2374     # binary


def test_flawed_meshes_are_not_errors():
    """Holes, soups, inverted and inconsistent orientation, degenerate faces all load."""
    for name in ("teapot.obj", "soup.stl", "43859.stl", "73342.stl", "679615.stl", "lilium.obj"):
        load_mesh(mesh_path(name))
    V, F = tetrahedron()
    mesh_from_arrays(V, F[:, ::-1])                       # inverted
    mesh_from_arrays(V, np.vstack([F, F, [[0, 0, 1]]]))   # duplicate and degenerate faces


def test_normalisation_puts_mesh_in_the_ball():
    m = load_mesh(mesh_path("fandisk.obj"))
    T = normalization_transform(m.V, 0.9)
    Vn = m.transformed(T).V
    assert np.isclose(np.linalg.norm(Vn, axis=1).max(), 0.9)
    assert np.allclose(0.5 * (Vn.min(0) + Vn.max(0)), 0, atol=1e-12)
    assert np.allclose(T[:3, :3], T[0, 0] * np.eye(3))   # uniform scale, no rotation


def test_vertex_weights_follow_welding():
    V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0.0], [0, 0, 1]])
    F = np.array([[0, 1, 2], [3, 2, 4]])
    m = mesh_from_arrays(V, F, vertex_weights=[0.2, 0, 0, 0.7, 0])
    assert len(m.V) == 4 and m.vertex_weights[0] == pytest.approx(0.7)


# ----------------------------------------------------------------------------- bad input
def _write(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return p


@pytest.mark.parametrize("name,content,needle", [
    ("empty.obj", "", "empty"),
    ("nofaces.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no faces"),
    ("nan.obj", "v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "non-finite"),
    ("inf.off", "OFF\n3 1 0\n0 0 inf\n1 0 0\n0 1 0\n3 0 1 2\n", "non-finite"),
    ("range.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n", "0..2"),
    ("range.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n", "0..2"),
    ("point.obj", "v 1 1 1\nv 1 1 1.0\nv 1 1 1\nf 1 2 3\n", "zero extent"),
    ("short.off", "OFF\n4 2 0\n0 0 0\n1 0 0\n", "ends early"),
    ("text.stl", "this is not a mesh at all\n", "STL"),
    ("text.ply", "hello\n", "PLY header"),
    ("garbage.obj", "v a b c\nf 1 2 3\n", "not a valid OBJ"),
    ("mesh.xyz", "1 2 3\n", "unsupported mesh format"),
])
def test_bad_files_give_clear_errors(tmp_path, name, content, needle):
    p = _write(tmp_path, name, content)
    with pytest.raises(InputError) as e:
        load_mesh(p)
    assert needle in str(e.value) and name in str(e.value)


def test_truncated_binary_stl(tmp_path):
    data = open(mesh_path("100173.stl"), "rb").read()
    p = _write(tmp_path, "cut.stl", data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.stl"):
        load_mesh(p)


def test_empty_binary_stl(tmp_path):
    p = _write(tmp_path, "empty.stl", b"\0" * 80 + struct.pack("<I", 0))
    with pytest.raises(InputError, match="no faces"):
        load_mesh(p)


def test_missing_file():
    with pytest.raises(InputError, match="no such file"):
        load_mesh(os.path.join(MESHES, "does-not-exist.obj"))


def test_bad_arrays():
    V, F = tetrahedron()
    with pytest.raises(InputError, match=r"shape \(n, 3\)"):
        mesh_from_arrays(V[:, :2], F)
    with pytest.raises(InputError, match="0..3"):
        mesh_from_arrays(V, F + 1)
    with pytest.raises(InputError, match="no faces"):
        mesh_from_arrays(V, np.zeros((0, 3), int))
    with pytest.raises(InputError, match="importance"):
        mesh_from_arrays(V, F, vertex_weights=[1, 2])
