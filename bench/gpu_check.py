"""GPU check (issue 15): the figures only a machine with an NVIDIA GPU can give, in one short run.

    python build.py gpu-check [--out FILE] [--quick] [--device cpu] [--steps convert budget ...]
    python -m bench.gpu_check ...            # the same, with whatever Python runs it (from the root)

Why a script of its own: the development machine and CI have no GPU, and a GPU machine, when one is
lent, comes for minutes, without network and without this project's .venv. So the check needs only
the Python that is there, says in one line what is missing, downloads nothing unless ``--install``
asks for it (offline from ``wheels/`` first), stops every step at a deadline (the whole run stays
under :data:`TIME_LIMIT` seconds) and rewrites ONE JSON file after every step, so what was measured
survives a later step that fails, hangs or is killed.

Steps (``--steps``; every one runs even when an earlier one failed):

* ``convert``: bunny.off (``../shared/meshes`` or ``shared/meshes``; else the repository's
  data/spot.obj) with the default settings on the device
  (``core.training.convert.convert_checked``): seconds total / sampling / training, surface error,
  then marching cubes at 256³ and its Chamfer, Hausdorff and p99 against the mesh
  (``core.geometry.metrics.surface_distances``);
* ``budget``: the same in budget mode at 30,000 bytes;
* ``stacked``: ``core.dataset.convert_dir`` on a folder of real meshes (repeated under other names
  to fill the stacks) with 16 and 128 shapes per stack: shapes per hour, converted and failed. The
  recipe is the one of docs/datasets.md's CPU throughput table (:data:`STACK_RECIPE`), so the two
  compare directly;
* ``viewport``: the add-on's GPU sphere tracer at 1920 x 1080 for the default 8 x 32 network (through
  bench/render.py and bench/gpu_context.py, in a child process, since a headless machine may have no
  GPU context for Blender: then the error is recorded), and core.geometry.trace's numpy tracer at a
  smaller size as a fallback figure.

Each step records the device name, torch and CUDA versions, its wall time, peak GPU memory and, if it
failed, the error in one line. ``--quick`` runs tiny settings (with ``--device cpu`` it tests the
plumbing in well under a minute; its figures mean nothing). Without a CUDA GPU (and no
``--device cpu``) the JSON says ``{"available": false, "reason": ...}`` and the exit code is
:data:`EXIT_UNAVAILABLE`; exit code 1 means a step failed, 0 that every step ran.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "out" / "gpu_check.json"
#: Where ``--install`` puts packages (git-ignored ``build/``), so no system Python is touched.
DEPS = ROOT / "build" / "gpu-deps"
STEPS = ("convert", "budget", "stacked", "viewport")
#: Exit code when the check cannot run here (no CUDA GPU, or a required package missing).
EXIT_UNAVAILABLE = 3
#: Seconds the whole run may take: a lent GPU machine gives about 15 minutes in all, start-up
#: included, so the check must end within 8 and leave time to run it again.
TIME_LIMIT = {"full": 450.0, "quick": 120.0}
#: Share of the time left that each step may use at most (the rest stays for the later steps).
STEP_SHARE = {"convert": 0.3, "budget": 0.45, "stacked": 0.75, "viewport": 1.0}
#: Module -> pip requirement name of what the check needs (versions from requirements.txt).
REQUIRED = {"numpy": "numpy", "scipy": "scipy", "igl": "libigl", "h5py": "h5py", "torch": "torch"}
OPTIONAL = {"bpy": "bpy"}
BUDGET_BYTES = 30_000
#: convert-dir recipe: docs/datasets.md's CPU throughput table used 100,000 samples from a pool of
#: 1,000,000 (a tenth of the defaults; sampling, which runs on the CPU, shrinks alike).
STACK_RECIPE = {"samples": 100_000, "pool": 1_000_000}
#: The tiny recipe of --quick: the least training that still passes core.conversion.verify on
#: bunny.off.
QUICK = {"samples": 30_000, "pool": 100_000, "epochs": 6, "batch_size": 512}
#: Per mode: conversion settings over the defaults, remesh resolution, surface samples of the
#: metrics, stack sizes and stacks' worth of shapes per convert-dir run (2: sampling the next stack
#: while one trains is part of the throughput), tracer sizes and frames.
MODES = {
    "full": {"settings": {}, "stack_settings": STACK_RECIPE, "resolution": 256,
             "metric_samples": 100_000, "stacks": (16, 128), "stacks_per_run": 2,
             "gpu_size": (1920, 1080), "gpu_frames": 10, "numpy_size": (480, 270), "numpy_frames": 2,
             "child_timeout": 150.0, "budget_recipe": None},
    "quick": {"settings": QUICK, "stack_settings": QUICK, "resolution": 48,
              "metric_samples": 5_000, "stacks": (2,), "stacks_per_run": 1,
              "gpu_size": (64, 36), "gpu_frames": 2, "numpy_size": (48, 27), "numpy_frames": 1,
              "child_timeout": 60.0, "budget_recipe": {**QUICK, "epochs": 2}},
}


class Unavailable(Exception):
    """The check cannot run on this machine; the message says why and what to do, in one line."""


def one_line(text) -> str:
    """The last non-empty line of ``text`` (tracebacks end with the error), at most 300 characters."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "no message")[:300]


def error_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {one_line(exc) if str(exc) else 'no message'}"


def plain(value):
    """``value`` as strict JSON: non-finite floats -> None, numpy scalars and tuples -> plain."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Report:
    """The one JSON file, rewritten whole (temporary name, then renamed) after every change."""

    def __init__(self, path: Path, data: dict):
        self.path, self.data = Path(path), data
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(plain(self.data), indent=1, allow_nan=False) + "\n")
        os.replace(tmp, self.path)


# --------------------------------------------------------------------------- what this machine has

def requirement_pins() -> dict:
    """``{"torch": "torch==2.13.0", ...}`` from requirements.txt, so messages name the exact pins."""
    pins = {}
    path = ROOT / "requirements.txt"
    for line in path.read_text().splitlines() if path.exists() else []:
        line = line.split("#")[0].strip()
        if "==" in line and not line.startswith("-"):
            pins[line.split("==")[0].strip().lower()] = line
    return pins


def missing_modules(names) -> list[str]:
    importlib.invalidate_caches()
    return [m for m in names if importlib.util.find_spec(m) is None]


def use_deps_folder() -> None:
    """Put ``build/gpu-deps`` (what ``--install`` wrote: third-party packages, no .venv here) on the
    import paths of this process and of the child processes (convert-dir's workers, the viewport
    child); the repository is there already (``python -m bench.gpu_check`` from the root)."""
    paths = [str(DEPS)] if DEPS.is_dir() else []
    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))


def pip(args: list, timeout: float) -> dict:
    """Run ``python -m pip install --target build/gpu-deps ...``; returns what happened, one line."""
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--target",
           str(DEPS), *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        ok, tail = p.returncode == 0, one_line(p.stdout + p.stderr)
    except subprocess.TimeoutExpired:
        ok, tail = False, f"pip ran over {timeout:.0f} s"
    return {"command": " ".join(cmd[3:]), "ok": ok, "output": tail}


def install(missing: list[str]) -> list[dict]:
    """Install the missing packages into build/gpu-deps: the wheels in wheels/ offline first (the
    extension's libigl, scipy and h5py), then the pinned versions from the network, failing fast
    where there is none. torch from PyPI on Linux is the CUDA build."""
    if importlib.util.find_spec("pip") is None:
        return [{"command": "pip", "ok": False, "output": f"{sys.executable} has no pip"}]
    pins = requirement_pins()
    DEPS.mkdir(parents=True, exist_ok=True)
    done = []
    local = [p for p in (ROOT / "wheels").glob("*.whl")
             if p.name.split("-")[0].lower() in {REQUIRED[m] for m in missing}]
    if local:
        done.append(pip(["--no-index", "--no-deps", *map(str, local)], timeout=120))
    use_deps_folder()
    still = missing_modules(missing)
    if still:
        specs = [pins.get(REQUIRED.get(m, m), REQUIRED.get(m, m)) for m in still]
        done.append(pip(["--timeout", "10", "--retries", "0", *specs], timeout=420))
    use_deps_folder()
    return done


def environment(want: list[str]) -> dict:
    """Python, platform, which packages import, and torch's view of CUDA (if torch is there)."""
    env = {"python": sys.version.split()[0], "executable": sys.executable,
           "platform": platform.platform(), "cpu_count": os.cpu_count(),
           "missing": missing_modules(want), "missing_optional": missing_modules(OPTIONAL),
           "nvidia_smi": shutil.which("nvidia-smi") is not None}
    if "torch" not in env["missing"]:
        try:
            import torch
            env.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
                       cuda_available=bool(torch.cuda.is_available()))
            if env["cuda_available"]:
                env.update(device_name=torch.cuda.get_device_name(0),
                           device_count=torch.cuda.device_count())
        except Exception as e:          # a broken torch install is a finding, not a crash
            env["torch_error"] = error_line(e)
    return env


def unavailable_reason(env: dict, device: str) -> str | None:
    """Why the check cannot run with ``device`` here (one line, with the fix), or None if it can."""
    pins = requirement_pins()
    missing = env["missing"]
    if missing:
        specs = " ".join(pins.get(REQUIRED[m], REQUIRED[m]) for m in missing)
        cuda = " (the CUDA build)" if "torch" in missing else ""
        return (f"missing here: {', '.join(missing)}: pip install {specs}{cuda} first, or rerun "
                f"with --install (offline from wheels/ where it can)")
    if "torch_error" in env:
        return f"torch does not import: {env['torch_error']}"
    if device == "cuda" and not env.get("cuda_available"):
        build = f"CUDA {env['torch_cuda']} build" if env.get("torch_cuda") else "CPU build"
        hint = ("; nvidia-smi is here, so install a CUDA torch: pip install "
                f"{pins.get('torch', 'torch')} (CUDA build)") if env["nvidia_smi"] and \
            not env.get("torch_cuda") else ""
        return (f"no CUDA GPU visible to torch (torch {env['torch']}, {build}): the GPU check needs "
                f"an NVIDIA GPU; run with --device cpu --quick to test the plumbing{hint}")
    return None


def device_info(device: str) -> dict:
    """What each step records about the device it ran on."""
    import torch

    info = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda}
    if device == "cuda":
        info["device_name"] = torch.cuda.get_device_name(0)
        torch.cuda.reset_peak_memory_stats()
    else:
        info["device_name"] = platform.processor() or platform.machine() or "cpu"
    return info


def gpu_peak_mb(device: str):
    if device != "cuda":
        return None
    import torch
    return torch.cuda.max_memory_allocated() / 2 ** 20


# --------------------------------------------------------------------------- deadlines and steps

@contextmanager
def deadline(seconds: float):
    """A core.common.progress.CancelToken that cancels itself after ``seconds``: long work
    (training, convert-dir) polls it, so a step that runs too long ends with Cancelled instead of
    eating the time of the steps after it."""
    from core.common.progress import CancelToken

    token = CancelToken()
    timer = threading.Timer(max(float(seconds), 0.0), token.cancel)
    timer.daemon = True
    timer.start()
    try:
        yield token
    finally:
        timer.cancel()


class Context:
    """What the steps share: arguments, mode, device, time left, the work folder, the network."""

    def __init__(self, args, mode: str, work: Path):
        self.args, self.mode, self.m, self.device = args, mode, MODES[mode], args.device
        self.end = time.monotonic() + (args.time_limit or TIME_LIMIT[mode])
        self.work = work
        self.mesh_dir, self.mesh_path = find_mesh_source(args.mesh_dir)
        self.network = None            # .h5 of the default conversion, for the viewport step

    def left(self) -> float:
        return self.end - time.monotonic()

    def settings(self, **extra):
        from core.common.settings import ConversionSettings
        return ConversionSettings(device=self.device, **{**self.m["settings"], **extra})


def find_mesh_source(mesh_dir):
    """(folder of real meshes or None, the mesh for steps 1 and 3): ``--mesh-dir``, then
    ``shared/meshes`` in the repository (a lent machine gets the working tree only, so copy the
    meshes there for it), then ``../shared/meshes``;
    bunny.off from it, else the repository's data/spot.obj."""
    candidates = [Path(mesh_dir)] if mesh_dir else [ROOT / "shared" / "meshes",
                                                    ROOT.parent / "shared" / "meshes"]
    folder = next((c for c in candidates if c.is_dir()), None)
    if mesh_dir and folder is None:
        raise Unavailable(f"--mesh-dir {mesh_dir}: not a folder")
    bunny = folder / "bunny.off" if folder else None
    return folder, bunny if bunny and bunny.exists() else ROOT / "data" / "spot.obj"


def run_step(report: Report, ctx: Context, name: str, fn) -> bool:
    """Run one step under its deadline, recording it before, after and on any failure."""
    rec = {"status": "running", "error": None, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    report.data["steps"][name] = rec
    report.write()
    t0 = time.perf_counter()
    seconds = max(ctx.left() * STEP_SHARE[name], 0.0)
    rec["time_limit_s"] = seconds
    try:
        if seconds < 1.0:
            raise TimeoutError("no time left for this step")
        rec.update(device_info(ctx.device))
        with deadline(seconds) as cancel:
            rec.update(fn(ctx, cancel, rec, report) or {})
        rec["status"] = "ok"
    except BaseException as e:        # noqa: B036 - every failure, even SIGTERM, is recorded
        from_cancel = type(e).__name__ in ("Cancelled", "TimeoutError")
        rec["status"] = "timeout" if from_cancel else "failed"
        rec["error"] = (f"stopped at its deadline of {seconds:.0f} s" if type(e).__name__ == "Cancelled"
                        else error_line(e))
        frames = traceback.extract_tb(e.__traceback__)
        if frames and not from_cancel:
            rec["raised_at"] = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}"
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
    finally:
        rec["wall_seconds"] = time.perf_counter() - t0
        try:
            rec["gpu_peak_mb"] = gpu_peak_mb(ctx.device)
        except Exception:
            pass
        report.write()
    print(summary_line(name, rec), flush=True)
    return rec["status"] == "ok"


def summary_line(name: str, rec: dict) -> str:
    if rec["status"] != "ok":
        return f"{name:9} {rec['status'].upper()}: {rec['error']}"
    keys = ("seconds_total", "surface_error", "chamfer", "hausdorff", "shapes_per_hour",
            "ms_per_frame")
    found = [f"{k} {rec[k]:.4g}" for k in keys if isinstance(rec.get(k), (int, float))]
    for run in rec.get("runs", []):
        found.append(f"K={run['shapes_per_batch']}: {run.get('shapes_per_hour') or 0:.0f} shapes/h")
    for t in ("gpu_tracer", "numpy_tracer"):
        if t in rec:
            r = rec[t]
            found.append(f"{t} {r['ms_per_frame']:.1f} ms" if "ms_per_frame" in r
                         else f"{t}: {r.get('error')}")
    return f"{name:9} ok in {rec['wall_seconds']:.1f} s: " + ", ".join(found)


# --------------------------------------------------------------------------- steps 1: conversions

def conversion_figures(result) -> dict:
    imp = result.implicit
    return {"seconds_total": result.seconds_total, "seconds_sampling": result.seconds_sampling,
            "seconds_training": result.seconds_training, "surface_error": result.surface_error,
            "epochs": result.epochs_run, "architecture": f"{imp.architecture.layers}x"
            f"{imp.architecture.hidden}", "parameters": imp.parameters,
            "weight_bytes": imp.weight_bytes, "ran_on": result.device,
            "peak_memory_mb": result.peak_memory_mb,
            "attempts": (imp.metadata.get("verification") or {}).get("attempts")}


def surface_figures(implicit, mesh, ctx: Context) -> dict:
    """Marching cubes at the mode's resolution, then Chamfer / Hausdorff / p99 against the mesh."""
    from core.geometry.metrics import surface_distances
    from core.geometry.remesh import remesh

    r = remesh(implicit, resolution=ctx.m["resolution"])
    d = surface_distances(mesh, r.V, r.F, n=ctx.m["metric_samples"])
    return {"remesh_resolution": ctx.m["resolution"], "remesh_seconds": r.stats["seconds"],
            "remesh_faces": int(len(r.F)), "chamfer": d.chamfer_l1, "hausdorff": d.hausdorff,
            "p99": d.p99}


def step_convert(ctx: Context, cancel, rec, report) -> dict:
    from core.conversion.checked import convert_checked
    from core.meshes.mesh import load_mesh
    from core.representation.fileformat import save

    mesh = load_mesh(str(ctx.mesh_path))
    rec["mesh"] = ctx.mesh_path.name
    result = convert_checked(mesh, ctx.settings(), cancel=cancel)
    rec.update(conversion_figures(result))
    report.write()
    ctx.network = ctx.work / "convert.h5"
    save(result.implicit, str(ctx.network))
    return surface_figures(result.implicit, mesh, ctx)


def step_budget(ctx: Context, cancel, rec, report) -> dict:
    from core.conversion.checked import convert_checked
    from core.meshes.mesh import load_mesh

    mesh = load_mesh(str(ctx.mesh_path))
    rec.update(mesh=ctx.mesh_path.name, budget_bytes=BUDGET_BYTES)
    if ctx.m["budget_recipe"] is None:
        result = convert_checked(mesh, ctx.settings(), budget_bytes=BUDGET_BYTES, cancel=cancel)
    else:            # --quick: budget mode's own recipe samples 1M points, far too slow for it
        from core.training.budget import convert_to_budget
        result = convert_to_budget(mesh, BUDGET_BYTES, ctx.settings(), cancel=cancel,
                                   recipe=ctx.m["budget_recipe"])
    rec.update(conversion_figures(result), storage=result.implicit.metadata["budget"]["storage"])
    report.write()
    return surface_figures(result.implicit, mesh, ctx)


# --------------------------------------------------------------------------- step 2: convert-dir

def stage_meshes(sources: list[Path], count: int, where: Path) -> None:
    """Copy ``count`` meshes into ``where``, cycling through ``sources`` under new names
    (``0007_bunny.off``), so that a stack can be filled from a small collection."""
    where.mkdir(parents=True)
    for i in range(count):
        src = sources[i % len(sources)]
        shutil.copyfile(src, where / f"{i:04d}_{src.name}")


def mesh_sources(ctx: Context) -> list[Path]:
    from core.dataset import find_meshes

    if ctx.mesh_dir is None:
        return [ctx.mesh_path]
    return [ctx.mesh_dir / rel for rel in find_meshes(str(ctx.mesh_dir))] or [ctx.mesh_path]


def convert_dir_run(ctx: Context, k: int, sources, seconds: float) -> dict:
    """One convert-dir run of the mode's stacks' worth of shapes at ``k`` shapes per stack, stopped
    at ``seconds``; a stopped run still gives its rate from the last progress report."""
    from core.dataset import convert_dir

    count = ctx.m["stacks_per_run"] * k
    in_dir, out_dir = ctx.work / f"in_{k}", ctx.work / f"out_{k}"
    stage_meshes(sources, count, in_dir)
    last = {}
    settings = ctx.settings(**ctx.m["stack_settings"])
    row = {"shapes_per_batch": k, "shapes": count, "recipe": {
        f: getattr(settings, f) for f in ("samples", "pool", "epochs", "batch_size")}}
    t0 = time.perf_counter()
    try:
        with deadline(seconds) as cancel:
            s = convert_dir(str(in_dir), str(out_dir), settings, shapes_per_batch=k,
                            progress=lambda p: last.update(fraction=p.fraction, message=p.message),
                            cancel=cancel)
        row.update(status="ok", converted=s.converted, failed=s.failed, skipped=s.skipped,
                   seconds=s.seconds, shapes_per_hour=s.shapes_per_hour, engine=s.engine)
    except Exception as e:
        elapsed = time.perf_counter() - t0
        done = round(last.get("fraction", 0.0) * count)
        stopped = type(e).__name__ == "Cancelled"
        row.update(status="timeout" if stopped else "failed",
                   error=f"stopped at its deadline of {seconds:.0f} s" if stopped else error_line(e),
                   seconds=elapsed, done_before_stop=done,
                   shapes_per_hour_partial=3600.0 * done / elapsed if elapsed > 0 else None,
                   last_progress=last.get("message"))
    finally:
        shutil.rmtree(in_dir, ignore_errors=True)
        shutil.rmtree(out_dir, ignore_errors=True)
    return row


def step_stacked(ctx: Context, cancel, rec, report) -> dict:
    sources = mesh_sources(ctx)
    rec.update(mesh_folder=str(ctx.mesh_dir or ctx.mesh_path.parent), distinct_meshes=len(sources),
               runs=[])
    stacks = ctx.m["stacks"]
    step_end = time.monotonic() + rec["time_limit_s"]
    for i, k in enumerate(stacks):
        seconds = (step_end - time.monotonic()) / (len(stacks) - i)
        row = convert_dir_run(ctx, k, sources, seconds)
        rec["runs"].append(row)
        report.write()
    failed = [r for r in rec["runs"] if r["status"] != "ok"]
    if failed:
        error = (TimeoutError if all(r["status"] == "timeout" for r in failed) else RuntimeError)
        raise error(f"convert-dir at K={failed[0]['shapes_per_batch']}: {failed[0]['error']}")
    return {}


# --------------------------------------------------------------------------- step 3: the tracers

def viewport_child(h5: str, size: str, frames: int) -> int:
    """In a child process: Blender's GPU context, then bench/render.py's shader timing; prints one
    JSON line. A child because bpy without a display may crash the process instead of raising."""
    from bench.render import bench_gpu, parse_size
    from bench.gpu_context import addon_modules, start_blender

    start_blender()
    import gpu

    ni = addon_modules()
    implicit = ni.fileformat.load(h5)
    # the network frame as world: the shape fills render.py's test camera, whatever its mesh units
    item = ni.viewport.DrawItem("gpu-check", implicit, implicit.transform, (0.8, 0.8, 0.8, 1.0))
    w, h = parse_size(size)
    r = bench_gpu(ni, item, w, h, frames, ni.viewport.ViewportSettings())
    r.update(width=w, height=h, frames=frames, backend=str(gpu.platform.backend_type_get()),
             renderer=gpu.platform.renderer_get(), version=gpu.platform.version_get())
    print(json.dumps(plain(r)), flush=True)
    return 0


def gpu_tracer(ctx: Context, h5: Path, seconds: float) -> dict:
    """The shader's frame time from the child process, or the reason there is none."""
    if importlib.util.find_spec("bpy") is None:
        pin = requirement_pins().get("bpy", "bpy")
        return {"error": f"bpy is not installed here ({pin}): no viewport frame time"}
    w, h = ctx.m["gpu_size"]
    cmd = [sys.executable, "-m", "bench.gpu_check", "--viewport-child", str(h5),
           "--size", f"{w}x{h}", "--frames", str(ctx.m["gpu_frames"])]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(seconds, 1.0), cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"Blender's GPU context or the draw took over {seconds:.0f} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": f"exit status {p.returncode}: {one_line(p.stderr or p.stdout)}"}


def numpy_tracer(ctx: Context, h5: Path) -> dict:
    """core.geometry.trace's CPU tracer through bench/render.py's bench_numpy, at the mode's small
    size."""
    import types
    from bench.render import bench_numpy
    from core.geometry import trace
    from core.representation.fileformat import load

    w, h = ctx.m["numpy_size"]
    implicit = load(str(h5))
    item = trace.TraceItem(implicit, implicit.transform)     # as in viewport_child
    r = bench_numpy(types.SimpleNamespace(trace=trace), item, w, h, ctx.m["numpy_frames"],
                    trace.TraceSettings())
    return {**r, "width": w, "height": h, "frames": ctx.m["numpy_frames"]}


def network_for_tracing(ctx: Context, cancel, rec) -> Path:
    """The default 8 x 32 network of the convert step; if that step did not run or failed, a quick
    conversion of the same mesh (same architecture, few samples: frame time is what counts here)."""
    if ctx.network is not None and ctx.network.exists():
        rec["network"] = f"convert step ({ctx.mesh_path.name})"
        return ctx.network
    from core.meshes.mesh import load_mesh
    from core.representation.fileformat import save
    from core.training.convert import convert_mesh

    result = convert_mesh(load_mesh(str(ctx.mesh_path)),
                          ctx.settings(**MODES["quick"]["settings"]), cancel=cancel)
    path = ctx.work / "tracing.h5"
    save(result.implicit, str(path))
    rec["network"] = f"quick conversion of {ctx.mesh_path.name} (the convert step did not run)"
    return path


def step_viewport(ctx: Context, cancel, rec, report) -> dict:
    h5 = network_for_tracing(ctx, cancel, rec)
    t0 = time.perf_counter()
    rec["numpy_tracer"] = numpy_tracer(ctx, h5)
    report.write()
    left = rec["time_limit_s"] - (time.perf_counter() - t0)
    rec["gpu_tracer"] = gpu_tracer(ctx, h5, min(left, ctx.m["child_timeout"]))
    if "ms_per_frame" in rec["gpu_tracer"]:
        rec["ms_per_frame"] = rec["gpu_tracer"]["ms_per_frame"]
    return {}


STEP_FUNCTIONS = {"convert": step_convert, "budget": step_budget, "stacked": step_stacked,
                  "viewport": step_viewport}


# --------------------------------------------------------------------------- command line

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="the JSON file (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="tiny settings: tests the plumbing only")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), metavar="STEP",
                    help=f"steps to run, of {', '.join(STEPS)} (default: all)")
    ap.add_argument("--mesh-dir", help="folder of real meshes (default: shared/meshes or "
                                       "../shared/meshes; without one, data/spot.obj alone)")
    ap.add_argument("--time-limit", type=float, help="seconds for the whole run (default "
                    f"{TIME_LIMIT['full']:.0f}, --quick {TIME_LIMIT['quick']:.0f})")
    ap.add_argument("--install", action="store_true",
                    help="pip install what is missing into build/gpu-deps (wheels/ offline first)")
    ap.add_argument("--viewport-child", metavar="H5", help=argparse.SUPPRESS)
    ap.add_argument("--size", default="1920x1080", help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, default=10, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def sigterm_as_exit(*_):
    """A killed run (the lent machine's time limit) still records the step it was in."""
    raise SystemExit(f"terminated by signal {signal.SIGTERM}")


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    use_deps_folder()
    if args.viewport_child:
        return viewport_child(args.viewport_child, args.size, args.frames)
    mode = "quick" if args.quick else "full"
    report = Report(args.out, {"check": "gpu_check", "available": None, "mode": mode,
                               "device": args.device, "steps_requested": args.steps,
                               "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "steps": {}})
    if args.install and missing_modules(REQUIRED):
        report.data["install"] = install(missing_modules(REQUIRED))
    env = environment(list(REQUIRED))
    reason = unavailable_reason(env, args.device)
    report.data.update(environment=env, available=reason is None, reason=reason)
    report.write()
    if reason:
        print(f"gpu-check: {reason}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    previous = signal.signal(signal.SIGTERM, sigterm_as_exit)
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="ni-gpu-check-"))
    ok = True
    try:
        ctx = Context(args, mode, work)
        report.data.update(mesh=str(ctx.mesh_path), mesh_dir=str(ctx.mesh_dir) if ctx.mesh_dir else None)
        for name in STEPS:
            if name in args.steps:
                ok &= run_step(report, ctx, name, STEP_FUNCTIONS[name])
    except Unavailable as e:
        report.data.update(available=False, reason=str(e))
        print(f"gpu-check: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(work, ignore_errors=True)
        report.data.update(wall_seconds=time.perf_counter() - t0,
                           finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        report.write()
    print(f"gpu-check: {'every step ran' if ok else 'some step failed'}; figures in {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
