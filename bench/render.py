"""Benchmark of the viewport's GPU sphere tracer and of the numpy reference tracer.

Usage::

    python -m bench.render [shape.h5] [--sizes 64 128 1920x1080] [--frames 5] [--json out.json]

Prints, per image size: milliseconds per frame, network evaluations per second and the average
number of sphere-tracing steps per traced pixel, for the shader (through the add-on's real draw code,
offscreen) and for ``core.geometry.trace.trace``. With no file the paper's converted "Geo lamp"
(Thingi10K 100173, the default 8 x 32 ReLU architecture) is used. GPU evaluations are counted
exactly with the shader's step-counting variant: tracing steps plus 4 evaluations per hit for the
normal.

Runs with the ``bpy`` module, from the repository root (``.venv/bin/python -m bench.render --sizes
1920x1080``; arguments after a ``--`` also work). On a machine without a GPU, Blender
draws with Mesa's llvmpipe, a software rasteriser on the CPU: its numbers say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np


from bench.gpu_context import SHARED, addon_modules, start_blender


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h or w)


def camera(trace, width, height):
    """The test camera: the bounding ball (radius 1) seen from 3.2 units, 40 degrees vertical."""
    V = trace.look_at((1.6, -2.4, 1.3), (0.0, 0.0, 0.0))
    P = trace.perspective(np.radians(40.0), width / height, 0.1, 100.0)
    return V, P


def bench_gpu(ni, item, width, height, frames, settings):
    import gpu

    V, P = camera(ni.trace, width, height)
    r = ni.viewport.ImplicitRenderer()
    # evaluations per frame from the step-counting variant (also compiles the shaders)
    counts, _ = r.render_offscreen([item], V, P, width, height, settings, debug_steps=True)
    r.render_offscreen([item], V, P, width, height, settings)
    steps = counts[..., 0]
    traced = steps > 0
    evaluations = float(steps.sum() + 4 * (counts[..., 1] > 0.5).sum())
    off = gpu.types.GPUOffScreen(width, height, format="RGBA16F")
    times = []
    try:
        with off.bind():
            fb = gpu.state.active_framebuffer_get()
            for _ in range(frames):
                t = time.perf_counter()
                fb.clear(color=(0.0, 0.0, 0.0, 0.0), depth=1.0)
                r.draw([item], V, P, width, height, settings)
                fb.read_color(0, 0, 1, 1, 4, 0, "FLOAT")      # waits for the frame to finish
                times.append(time.perf_counter() - t)
    finally:
        off.free()
        r.free()
    seconds = float(np.median(times))
    return {"ms_per_frame": 1e3 * seconds, "evaluations": evaluations,
            "evaluations_per_s": evaluations / seconds,
            "steps_per_traced_pixel": float(steps[traced].mean()) if traced.any() else 0.0,
            "traced_pixels": int(traced.sum())}


def bench_numpy(ni, item, width, height, frames, settings):
    V, P = camera(ni.trace, width, height)
    times, res = [], None
    for _ in range(frames):
        t = time.perf_counter()
        res = ni.trace.trace([item], V, P, width, height, settings)
        times.append(time.perf_counter() - t)
    seconds = float(np.median(times))
    return {"ms_per_frame": 1e3 * seconds, "evaluations": res.evaluations,
            "evaluations_per_s": res.evaluations / seconds,
            "steps_per_traced_pixel": res.mean_steps, "traced_pixels": int((res.steps > 0).sum())}


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("h5", nargs="?", help="a .h5 network of ours (default: the paper's 100173)")
    ap.add_argument("--sizes", nargs="+", default=["64", "128"], help="N or WxH")
    ap.add_argument("--frames", type=int, default=5, help="timed frames per size (median)")
    ap.add_argument("--no-numpy", action="store_true", help="skip the numpy tracer")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    start_blender()
    import gpu
    print(f"GPU context in {time.perf_counter() - t:.1f} s: {gpu.platform.backend_type_get()}, "
          f"{gpu.platform.renderer_get()}, {gpu.platform.version_get()}")
    ni = addon_modules()
    if args.h5:
        implicit = ni.fileformat.load(args.h5)
        source = args.h5
    else:
        source = "paper-weights/100173_sf.h5"
        implicit = ni.paper_import.load_paper_weights(str(SHARED / "paper-weights" / "100173_sf.h5"))
    print(f"network: {source} ({implicit.architecture}, {implicit.parameters} parameters)")
    settings = ni.viewport.ViewportSettings()
    print(f"settings: max_steps={settings.max_steps} epsilon={settings.epsilon} "
          f"step_factor={settings.step_factor}; CPU: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    item = ni.viewport.DrawItem("bench", implicit, np.eye(4), (0.8, 0.8, 0.8, 1.0))

    rows = []
    print(f"{'tracer':8} {'size':>10} {'ms/frame':>10} {'evals/s':>12} {'steps/px':>9} {'traced px':>10}")
    for size in args.sizes:
        w, h = parse_size(size)
        for name, fn in (("shader", bench_gpu), ("numpy", bench_numpy)):
            if name == "numpy" and args.no_numpy:
                continue
            r = fn(ni, item, w, h, args.frames, settings)
            r.update(tracer=name, width=w, height=h)
            rows.append(r)
            print(f"{name:8} {f'{w}x{h}':>10} {r['ms_per_frame']:10.1f} {r['evaluations_per_s']:12,.0f} "
                  f"{r['steps_per_traced_pixel']:9.2f} {r['traced_pixels']:10d}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gpu": gpu.platform.renderer_get(), "network": source, "results": rows}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
