"""The command line as a user runs it: JSON output, exit codes, one-line errors."""

import json
import subprocess
import sys

import pytest

from helpers import PAPER_WEIGHTS, ROOT, mesh_path

#: The smallest settings whose networks pass the conversion's own check on the knight (a coarse
#: likeness: Chamfer about 4 % of its size at seeds 0-3, measured); smaller ones are rightly refused.
SMALL = ["--layers", "4", "--hidden", "32", "--pool", "600000", "--samples", "60000", "--epochs", "6",
         "--batch-size", "1024", "--lr", "0.01", "--threads", "1"]


def run(*args):
    p = subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    return p


def one_json(p):
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, p.stdout
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "knight.h5"
    p = run("convert", mesh_path("decimated-knight.off"), "-o", out, "--json", *SMALL)
    assert p.returncode == 0, p.stderr
    return out, one_json(p)


def test_convert_json_keys(converted):
    out, d = converted
    for key in ("surface_error", "seconds_total", "seconds_sampling", "seconds_training",
                "parameters", "bytes", "weight_bytes", "peak_memory_mb", "verification", "warnings"):
        assert key in d
    assert d["parameters"] == 3 * 32 + 32 + 3 * (32 * 32 + 32) + 33
    assert d["verification"]["passed"] and 0 < d["verification"]["chamfer"] < 0.08
    assert out.exists() and d["bytes"] == out.stat().st_size


def test_info_remesh_error(converted, tmp_path):
    out, _ = converted
    d = one_json(run("info", out, "--json"))
    for key in ("parameters", "layers", "hidden", "activation", "transform", "format_version"):
        assert key in d
    assert (d["layers"], d["hidden"], d["activation"]) == (4, 32, "relu")
    obj = tmp_path / "knight.obj"
    d = one_json(run("remesh", out, "-o", obj, "--resolution", "64", "--json"))
    assert obj.exists() and d["faces"] > 100 and d["evaluations"] < d["dense_evaluations"]
    d = one_json(run("error", out, mesh_path("decimated-knight.off"), "--resolution", "64", "--json"))
    for key in ("surface_error", "chamfer_l1", "chamfer_l2", "hausdorff"):
        assert d[key] >= 0


def test_plain_output_is_readable(converted):
    out, _ = converted
    p = run("info", out)
    assert p.returncode == 0 and "4 x 32 relu" in p.stdout


def test_import_paper(tmp_path):
    out = tmp_path / "p.h5"
    d = one_json(run("import-paper", f"{PAPER_WEIGHTS}/50736_sf.h5", "--mesh", mesh_path("50736.stl"),
                     "-o", out, "--json"))
    assert d["parameters"] == 7553 and 0 < d["surface_error"] < 0.005
    assert one_json(run("info", out, "--json"))["parameters"] == 7553


@pytest.mark.parametrize("args,needle", [
    (["convert", "missing.obj", "-o", "x.h5"], "no such file"),
    (["info", "missing.h5"], "no such file"),
    (["info", mesh_path("bunny.off")], "not an HDF5"),
    (["convert", mesh_path("bunny.off"), "-o", "x.h5", "--beta", "-3"], "beta"),
    (["remesh", "missing.h5", "-o", "x.obj"], "no such file"),
])
def test_bad_input_is_one_line_without_traceback(args, needle, tmp_path):
    p = run(*args)
    assert p.returncode == 2
    assert needle in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    pj = run(*args, "--json")
    assert "error" in one_json(pj) and pj.returncode == 2


def test_bad_mesh_file(tmp_path):
    bad = tmp_path / "bad.stl"
    bad.write_text("not a mesh")
    p = run("convert", bad, "-o", tmp_path / "x.h5")
    assert p.returncode == 2 and "bad.stl" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "x.h5").exists()
