"""bench/gpu_check.py (issue 15) without a GPU: the no-GPU answer of ``build.py gpu-check``, the
``--device cpu --quick`` plumbing (every step's keys in the one JSON, failures and deadlines
recorded step by step) and the results.md section made from that JSON.

The GPU child (Blender's shader) is tested on its own, marked ``blender``: its GPU context takes a
minute on a loaded CPU (llvmpipe)."""

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNNY = ROOT.parent / "shared" / "meshes" / "bunny.off"
STEP_KEYS = {"status", "error", "wall_seconds", "time_limit_s", "device", "device_name", "torch", "cuda"}
CONVERSION_KEYS = {"mesh", "seconds_total", "seconds_sampling", "seconds_training", "surface_error",
                   "chamfer", "hausdorff", "p99", "remesh_seconds", "weight_bytes", "architecture"}


def load_bench(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gc():
    return load_bench("gpu_check")


@pytest.fixture(scope="module")
def make_results():
    return load_bench("make_results")


def strict_json(path):
    """The file as strict JSON (NaN or Infinity fail)."""
    def refuse(name):
        raise ValueError(f"{path} holds {name}")
    return json.loads(Path(path).read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def bunny_dir(tmp_path_factory):
    """A mesh folder holding bunny.off alone (the quick recipe passes core.conversion.verify on
    it)."""
    if not BUNNY.exists():
        pytest.skip("needs ../shared/meshes/bunny.off")
    folder = tmp_path_factory.mktemp("meshes")
    shutil.copyfile(BUNNY, folder / "bunny.off")
    return folder


def run_main(gc, argv, **patches):
    """gpu_check.main in this process, with module attributes patched for the call only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", "")            # main() extends it; restored afterwards
        for name, value in patches.items():
            mp.setattr(gc, name, value)
        return gc.main(argv)


@pytest.fixture(scope="module")
def quick_run(gc, bunny_dir, tmp_path_factory):
    """One --device cpu --quick run of the convert, budget and viewport steps. Budget mode's
    resampling pool is shrunk (1,000,000 candidates take a minute here) and the shader child is
    replaced (its own test below): what runs is the script's plumbing and the numpy tracer."""
    import core.training.budget

    out = tmp_path_factory.mktemp("gpu") / "gpu_check.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(core.training.budget.REFINEMENTS, "resample_pool", 20_000)
        rc = run_main(gc, ["--device", "cpu", "--quick", "--mesh-dir", str(bunny_dir), "--out", str(out),
                           "--steps", "convert", "budget", "viewport"],
                      gpu_tracer=lambda ctx, h5, seconds: {"error": "shader child not run in this test"})
    return rc, out


def cuda_visible():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def test_without_cuda_build_py_says_why_exits_3_and_writes_the_json(tmp_path):
    if cuda_visible():
        pytest.skip("a CUDA GPU is visible: build.py gpu-check would run the real check")
    out = tmp_path / "check.json"
    p = subprocess.run([sys.executable, str(ROOT / "build.py"), "gpu-check", "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 3, p.stderr
    message = p.stderr.strip()
    assert message.startswith("gpu-check: no CUDA GPU visible to torch (torch ")
    assert "the GPU check needs an NVIDIA GPU; run with --device cpu --quick" in message
    assert len(message.splitlines()) == 1
    d = strict_json(out)
    assert d["available"] is False and d["steps"] == {}
    assert message.endswith(d["reason"])


def test_a_missing_package_is_named_with_its_pin_and_the_install_flag(gc):
    env = {"missing": ["igl", "torch"], "nvidia_smi": True}
    reason = gc.unavailable_reason(env, "cuda")
    pins = gc.requirement_pins()
    assert f"pip install {pins['libigl']} {pins['torch']} (the CUDA build)" in reason
    assert "--install" in reason
    cpu_torch = {"missing": [], "nvidia_smi": True, "torch": "2.13.0+cpu", "torch_cuda": None,
                 "cuda_available": False}
    assert "nvidia-smi is here, so install a CUDA torch" in gc.unavailable_reason(cpu_torch, "cuda")
    assert gc.unavailable_reason(cpu_torch, "cpu") is None


def test_quick_cpu_run_writes_every_steps_figures(quick_run):
    rc, out = quick_run
    d = strict_json(out)
    assert rc == 0, d["steps"]
    assert d["available"] is True and d["mode"] == "quick" and d["device"] == "cpu"
    assert d["finished_at"] and d["wall_seconds"] > 0
    for name in ("convert", "budget"):
        r = d["steps"][name]
        assert STEP_KEYS | CONVERSION_KEYS <= set(r), name
        assert r["status"] == "ok" and r["error"] is None and r["device"] == "cpu"
        assert 0 < r["surface_error"] < 0.1 and 0 < r["chamfer"] <= r["hausdorff"]
        assert r["seconds_sampling"] + r["seconds_training"] <= r["seconds_total"]
    assert d["steps"]["convert"]["architecture"] == "8x32"
    assert d["steps"]["budget"]["weight_bytes"] <= 30_000 and d["steps"]["budget"]["storage"] == "int8"
    v = d["steps"]["viewport"]
    assert STEP_KEYS <= set(v) and v["status"] == "ok"
    assert v["network"].startswith("convert step")
    assert v["numpy_tracer"]["ms_per_frame"] > 0
    assert v["numpy_tracer"]["traced_pixels"] > 0      # the shape is in front of the camera
    assert v["gpu_tracer"] == {"error": "shader child not run in this test"}


def test_stacked_step_records_the_convert_dir_run(gc, bunny_dir, tmp_path):
    out = tmp_path / "stacked.json"
    rc = run_main(gc, ["--device", "cpu", "--quick", "--mesh-dir", str(bunny_dir), "--out", str(out),
                       "--steps", "stacked"])
    r = strict_json(out)["steps"]["stacked"]
    assert rc == 0, r
    assert STEP_KEYS <= set(r) and r["distinct_meshes"] == 1
    (run,) = r["runs"]
    assert run["status"] == "ok" and run["shapes_per_batch"] == 2 and run["shapes"] == 2
    assert run["converted"] + run["failed"] == 2 and run["shapes_per_hour"] > 0
    assert run["recipe"]["samples"] == gc.QUICK["samples"]


def test_a_failing_step_is_recorded_and_the_next_still_runs(gc, tmp_path):
    bad = tmp_path / "meshes"
    bad.mkdir()
    (bad / "bunny.off").write_text("OFF\nthis is not a mesh\n")
    out = tmp_path / "failed.json"
    rc = run_main(gc, ["--device", "cpu", "--quick", "--mesh-dir", str(bad), "--out", str(out),
                       "--steps", "convert", "budget"])
    d = strict_json(out)
    assert rc == 1
    for name in ("convert", "budget"):
        r = d["steps"][name]
        assert r["status"] == "failed" and "bunny.off" in r["error"] and "\n" not in r["error"]


def test_a_step_over_its_deadline_is_stopped_and_recorded(gc, tmp_path):
    args = gc.parse_args(["--device", "cpu", "--quick", "--time-limit", "5"])
    ctx = gc.Context(args, "quick", tmp_path)
    report = gc.Report(tmp_path / "deadline.json", {"steps": {}})

    def forever(ctx, cancel, rec, report):
        while True:            # what training does: poll the token between small units of work
            cancel.check()
            time.sleep(0.01)

    t0 = time.perf_counter()
    assert gc.run_step(report, ctx, "convert", forever) is False
    assert time.perf_counter() - t0 < 3
    r = strict_json(tmp_path / "deadline.json")["steps"]["convert"]
    assert r["status"] == "timeout" and r["error"].startswith("stopped at its deadline of ")
    assert 0 < r["wall_seconds"] <= r["time_limit_s"] + 1


def test_results_section_renders_the_quick_run_but_shows_only_gpu_runs(quick_run, make_results, tmp_path):
    _, out = quick_run
    d = strict_json(out)
    tables = make_results.gpu_tables(d)
    assert "| default settings | bunny.off | 8x32 |" in tables
    assert "| budget mode, 30,000 B | bunny.off |" in tables
    assert "| core.geometry.trace (numpy, CPU) | 48x27 |" in tables
    assert "not measured: shader child not run in this test" in tables
    # a plumbing run is never shown as GPU figures; no file at all says the same
    assert make_results.gpu_check_section(str(out)).startswith(make_results.GPU_NOT_MEASURED)
    assert make_results.gpu_check_section(str(tmp_path / "none.json")) == make_results.GPU_NOT_MEASURED
    gpu_run = tmp_path / "gpu_run.json"
    d.update(mode="full", device="cuda")
    d["environment"].update(device_name="NVIDIA TEST", torch_cuda="12.8")
    gpu_run.write_text(json.dumps(d))
    section = make_results.gpu_check_section(str(gpu_run))
    assert section.startswith(f"Measured {d['finished_at']} on NVIDIA TEST with ")
    assert tables in section


@pytest.mark.blender
def test_viewport_child_times_the_shader(tmp_path):
    """The shader child end to end at a tiny size: a frame time, or Blender's GPU error."""
    if importlib.util.find_spec("bpy") is None:
        pytest.skip("bpy is not installed")
    from core.common.settings import ConversionSettings
    from core.meshes.mesh import load_mesh
    from core.representation.fileformat import save
    from core.training.convert import convert_mesh

    result = convert_mesh(load_mesh(str(ROOT / "data" / "spot.obj")),
                          ConversionSettings(device="cpu", samples=5_000, pool=20_000, epochs=1))
    h5 = tmp_path / "spot.h5"
    save(result.implicit, str(h5))
    p = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--viewport-child",
                        str(h5), "--size", "32x18", "--frames", "1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["ms_per_frame"] > 0 and (r["width"], r["height"]) == (32, 18) and r["renderer"]
