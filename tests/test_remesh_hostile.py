"""Hostile networks against remeshing, tracing and CSG: a clear InputError in bounded memory, never a
silent wrong result (NaN taken for a sign, an empty or half mesh) and never a process taken down.

The networks come from tests/hostile/networks.py. Remeshing runs in a subprocess whose address space
is capped at 2 GiB (RLIMIT_AS), at the CLI's default resolution (256): going over the cap would end
in MemoryError, not the InputError the test asks for.
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from core.common.errors import InputError
from core.geometry.csg import MAX_DEPTH, MAX_LEAVES, CSGShape, CSGStep, csg
from core.geometry.marching_cubes import marching_cubes
from core.geometry.remesh import remesh
from core.geometry.trace import MAX_PIXELS, look_at, perspective, trace
from core.representation.fileformat import load

from helpers import ROOT
from hostile import networks
from hostile.networks import cases

LIMIT = 2 << 30

#: Runs remesh on one file under RLIMIT_AS and prints the outcome as JSON.
CHILD = r"""
import json, resource, sys, warnings
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
sys.path.insert(0, {root!r})
sys.path.insert(0, {root!r} + "/tests")
from peak_memory import peak_mb
warnings.simplefilter("ignore")           # float32 overflow warnings are the point of these files
from core.common.errors import InputError
from core.representation.fileformat import load
from core.geometry.remesh import remesh
try:
    r = remesh(load({path!r}), {resolution})
    out = {{"ok": True, "faces": len(r.F), "vertices": len(r.V)}}
except InputError as e:
    out = {{"ok": False, "error": str(e)}}
out["peak_mb"] = peak_mb()
print(json.dumps(out))
"""

#: Words the error of each class must contain.
MESSAGE = {"space_filling": "budget", "nan": "NaN or infinity", "no_surface": "no surface"}


def remesh_in_child(path, resolution=256):
    code = CHILD.format(limit=LIMIT, root=str(ROOT), path=str(path), resolution=resolution)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return {c.name: c for c in cases(tmp_path_factory.mktemp("hostile"))}


def test_cases_cover_every_class(hostile):
    assert {c.class_name for c in hostile.values()} == {"space_filling", "nan", "no_surface", "wide"}
    for c in hostile.values():
        assert os.path.getsize(c.path) < 1 << 20 and c.expected in ("error", "ok")


@pytest.mark.parametrize("name", [b[0] for b in networks.BUILDERS if b[3] == "error"])
def test_remesh_refuses_hostile_network_in_bounded_memory(hostile, name):
    case = hostile[name]
    out = remesh_in_child(case.path)
    assert not out["ok"], f"{name}: remeshing returned {out}"
    assert MESSAGE[case.class_name] in out["error"], out["error"]
    assert out["peak_mb"] < 1536, out


def test_no_surface_error_names_the_sign(hostile):
    for name, sign in (("positive_everywhere", "positive"), ("negative_everywhere", "negative")):
        with pytest.raises(InputError, match=f"{sign} at every grid point"):
            remesh(load(hostile[name].path), 32)


def test_wide_network_remeshes_in_bounded_memory(hostile):
    out = remesh_in_child(hostile["wide_ball"].path, resolution=64)
    assert out["ok"] and out["faces"] > 1000, out
    assert out["peak_mb"] < 1024, out


def test_streamed_refinement_equals_one_batch(monkeypatch):
    """Slabs share the plane between them; carried values must give the mesh one batch gives."""
    import core.geometry.remesh as rm

    ball = networks.wide_ball(hidden=64)
    whole = remesh(ball, 64)
    monkeypatch.setattr(rm, "REFINE_BATCH", 50)
    sliced = remesh(ball, 64)
    assert whole.stats["evaluations"] == sliced.stats["evaluations"]
    np.testing.assert_array_equal(whole.F, sliced.F)
    np.testing.assert_array_equal(whole.V, sliced.V)


def test_budget_refuses_before_triangles():
    ball = networks.wide_ball(hidden=64)
    faces = len(remesh(ball, 48).F)
    with pytest.raises(InputError, match=r"makes [\d,]+ triangles or more at 48\^3"):
        remesh(ball, 48, max_bytes=faces * 270 // 8)


@pytest.mark.parametrize("bad", [dict(chunk=1 << 30), dict(max_bytes=0), dict(max_bytes=True)])
def test_remesh_bounds_arguments(bad):
    with pytest.raises(InputError):
        remesh(networks.constant(0.5), 32, **bad)


def test_dense_grid_over_budget_is_refused_before_evaluating():
    with pytest.raises(InputError, match="dense grid"):
        remesh(networks.constant(0.5), 2048, dense=True)


def test_marching_cubes_counts_bad_values_and_bounds_the_mesh():
    values = np.indices((40, 40, 40)).sum(0) % 2 - 0.5            # a checkerboard: every cell
    with pytest.raises(InputError, match="triangles on the 39 x 39 x 39 grid"):
        marching_cubes(values, max_bytes=1 << 20)
    values[0, 0, :3] = np.nan
    with pytest.raises(InputError, match="NaN or infinity at 3 of 64,000"):
        marching_cubes(values)


def camera():
    return look_at((0, -3, 0), (0, 0, 0)), perspective(0.8, 1.0, 0.1, 10.0)


def test_trace_reports_nan_instead_of_an_empty_image():
    V, P = camera()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="NaN or infinity"):
            trace([(networks.overflow_relu(), np.eye(4))], V, P, 16, 16)


def test_trace_bounds_image_size():
    V, P = camera()
    with pytest.raises(InputError, match="pixels"):
        trace([(networks.constant(0.5), np.eye(4))], V, P, 100_000, 100_000)
    assert MAX_PIXELS >= 3840 * 2160


def test_trace_in_tiles_equals_one_tile(monkeypatch):
    import core.geometry.trace as tr

    V, P = camera()
    ball = networks.wide_ball(hidden=64)
    whole = trace([(ball, np.eye(4))], V, P, 24, 20)
    monkeypatch.setattr(tr, "TRACE_TILE", 37)
    tiled = trace([(ball, np.eye(4))], V, P, 24, 20)
    assert whole.hit.any() and whole.evaluations == tiled.evaluations
    for name in ("hit", "steps", "item"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(tiled, name))
    for name in ("depth", "normal", "rgba"):      # float32 BLAS rounding varies with batch size
        np.testing.assert_allclose(getattr(whole, name), getattr(tiled, name), atol=1e-4)


def test_csg_with_nan_operand_is_an_error():
    ball = networks.wide_ball(hidden=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shape = csg(ball, None, ("union", CSGShape(networks.overflow_relu())))
        with pytest.raises(InputError, match="NaN or infinity"):
            remesh(shape, 32)


def test_csg_of_space_filling_network_is_refused(hostile):
    shape = csg(networks.wide_ball(hidden=64), None,
                ("union", CSGShape(networks.sine_space_filling())))
    with pytest.raises(InputError, match="budget"):
        remesh(shape, 128, max_bytes=100_000_000)


def test_csg_tree_size_is_bounded():
    ball = networks.constant(-0.5)
    with pytest.raises(InputError, match="implicits is over the limit"):
        CSGShape(ball, None, [CSGStep("union", CSGShape(ball)) for _ in range(MAX_LEAVES)])
    shape = CSGShape(ball)
    with pytest.raises(InputError, match="nested"):
        for _ in range(MAX_DEPTH):
            shape = csg(ball, None, ("union", shape))
