"""Outputs are checked before any work: no input is ever overwritten, no minutes lost to a bad -o."""

import shutil

import pytest

from core.common.errors import InputError
from core.common.outputs import check_output
from helpers import PAPER_WEIGHTS, mesh_path
from test_cli import SMALL, one_json, run


@pytest.fixture
def source(tmp_path):
    """A copy of a real mesh and its bytes, to prove it is never touched."""
    path = tmp_path / "knight.off"
    shutil.copy(mesh_path("decimated-knight.off"), path)
    return path, path.read_bytes()


@pytest.mark.parametrize("output,needle", [
    ("knight.off", "also an input"),        # convert m.obj -o m.obj
    ("other.stl", "must end in .h5"),       # HDF5 bytes under a mesh name
    ("missing/x.h5", "does not exist"),     # found before training, not after
    ("notes.h5", "not a neural implicit"),  # an existing foreign file
])
def test_convert_refuses_unsafe_outputs_before_training(tmp_path, source, output, needle):
    path, before = source
    (tmp_path / "other.stl").write_bytes(b"solid keep me\nendsolid\n")
    (tmp_path / "notes.h5").write_bytes(b"my notes, not HDF5")
    p = run("convert", path, "-o", tmp_path / output, "--json", *SMALL)
    assert p.returncode == 2 and needle in one_json(p)["error"], p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert path.read_bytes() == before
    assert (tmp_path / "other.stl").read_bytes() == b"solid keep me\nendsolid\n"
    assert (tmp_path / "notes.h5").read_bytes() == b"my notes, not HDF5"


def test_import_paper_refuses_its_own_input(tmp_path):
    keras = tmp_path / "50736_sf.h5"
    shutil.copy(f"{PAPER_WEIGHTS}/50736_sf.h5", keras)
    before = keras.read_bytes()
    p = run("import-paper", keras, "-o", keras)
    assert p.returncode == 2 and "also an input" in p.stderr and "Traceback" not in p.stderr
    assert keras.read_bytes() == before


def test_import_paper_checks_the_network_against_its_mesh(tmp_path):
    d = one_json(run("import-paper", f"{PAPER_WEIGHTS}/50736_sf.h5", "--mesh", mesh_path("50736.stl"),
                     "-o", tmp_path / "p.h5", "--json"))
    assert d["verification"]["passed"] and d["verification"]["chamfer"] < 0.01
    info = run("info", tmp_path / "p.h5")
    assert "checked against the source" in info.stdout and "% of size" in info.stdout


def test_remesh_never_overwrites_an_existing_mesh_without_asking(tmp_path, source):
    path, before = source
    out = tmp_path / "p.h5"
    assert run("import-paper", f"{PAPER_WEIGHTS}/50736_sf.h5", "-o", out).returncode == 0
    p = run("remesh", out, "-o", path, "--resolution", "32")
    assert p.returncode == 2 and "--overwrite" in p.stderr
    assert path.read_bytes() == before
    p = run("remesh", out, "-o", path, "--resolution", "32", "--overwrite", "--json")
    assert p.returncode == 0 and one_json(p)["faces"] > 0
    p = run("remesh", out, "-o", out.with_suffix(".obj"), "--resolution", "32")
    assert p.returncode == 0
    p = run("remesh", out, "-o", out, "--resolution", "32", "--overwrite")   # never the input
    assert p.returncode == 2 and "also an input" in p.stderr


def test_reconverting_over_our_own_file_is_allowed(tmp_path):
    out = tmp_path / "p.h5"
    for _ in range(2):
        assert run("import-paper", f"{PAPER_WEIGHTS}/50736_sf.h5", "-o", out).returncode == 0


def test_check_output_names_the_problem(tmp_path):
    (tmp_path / "d.h5").mkdir()
    with pytest.raises(InputError, match="not a regular file"):
        check_output(tmp_path / "d.h5", kind="implicit")
    with pytest.raises(InputError, match="not a file name"):
        check_output("", kind="mesh")
    assert check_output(tmp_path / "new.obj", [tmp_path / "in.h5"], kind="mesh") == str(tmp_path / "new.obj")
    assert not any(p.name.endswith(".probe") for p in tmp_path.iterdir())
