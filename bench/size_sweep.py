"""Size sweep (paper Figure 1; issue 6, benchmark 3): accuracy, bytes, evaluation cost and conversion
time over a grid of network shapes, everything else at the defaults.

    .venv/bin/python -m bench.size_sweep [MESH...] [--layers 2 4 8 12] [--hidden 16 32 64 128]
        [--json out.json] [--plot out.png] [--markdown]

Default mesh: bunny.off. Each shape is converted in this process with ConversionSettings(layers,
hidden, threads=1) and measured by core.geometry.baselines.measure_implicit. ``eval_us_per_point``
is numpy evaluation (the path used by remeshing, tracing and Blender), microseconds per point, best
of three over 200,000 points. ``bytes`` is weight_bytes at the default float32 storage. Times are
in-process and single-threaded; the load average at the start of each run is recorded next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from bench.variants import OUT, finish, format_table, log, run


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = sorted({r["layers"] for r in rows})
    fig, ax = plt.subplots(1, 4, figsize=(14, 3.2), dpi=100)
    for L in layers:
        rs = sorted((r for r in rows if r["layers"] == L), key=lambda r: r["hidden"])
        H = [r["hidden"] for r in rs]
        for a, key in zip(ax, ("chamfer", "weight_bytes", "eval_us_per_point", "seconds")):
            a.plot(H, [r[key] for r in rs], "o-", label=f"{L} layers")
    titles = ("Chamfer L1 (256^3 mesh)", "bytes (float32)", "numpy evaluation, us / point",
              "conversion seconds (1 thread)")
    for a, t in zip(ax, titles):
        a.set_xscale("log", base=2); a.set_yscale("log"); a.set_xlabel("hidden width"); a.set_title(t, fontsize=9)
    ax[0].legend(fontsize=7)
    d = next((r for r in rows if r["layers"] == 8 and r["hidden"] == 32), None)
    if d:
        for a, key in zip(ax, ("chamfer", "weight_bytes", "eval_us_per_point", "seconds")):
            a.plot([32], [d[key]], "s", ms=10, mfc="none", mec="b")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)



def table(rows, markdown=True):
    head = ["mesh", "layers", "hidden", "parameters", "bytes", "surface error", "Chamfer", "Hausdorff",
            "eval us/pt", "s/epoch", "seconds", "load"]
    out = []
    for r in rows:
        cells = [r["mesh"], r["layers"], r["hidden"], f"{r['parameters']:,}", f"{r['weight_bytes']:,}",
                 f"{r['surface_error']:.5f}",
                 *(["no surface (collapsed)"] * 2 if r.get("no_surface") else
                   [f"{r['chamfer']:.5f}", f"{r['hausdorff']:.4f}"]),
                 f"{r['eval_us_per_point']:.2f}", f"{r['seconds_per_epoch']:.1f}", f"{r['seconds']:.0f}",
                 f"{r['load_average']:.1f}"]
        out.append(cells)
    return format_table(head, out, markdown)


def remeasure_eval(args):
    """Re-time ``eval_us_per_point`` of every row of ``args.json`` with nothing else running."""
    import numpy as np

    from core.representation.implicit import Architecture, Implicit
    from bench.variants import evaluation_cost

    with open(args.json) as fh:
        rows = json.load(fh)
    rng = np.random.default_rng(0)
    for r in rows:
        arch = Architecture(r["layers"], r["hidden"])
        shapes = arch.layer_shapes()
        imp = Implicit(arch, [rng.standard_normal(s) / np.sqrt(s[1]) for s in shapes],
                       [np.zeros(s[0]) for s in shapes], np.eye(4))
        r["eval_us_per_point"] = evaluation_cost(imp, repeats=5)
        r["eval_load_average"] = os.getloadavg()[0]
        print(f"# {r['layers']}x{r['hidden']}: {r['eval_us_per_point']:.2f} us/point", file=sys.stderr)
    finish(rows, args, table, plot)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("meshes", nargs="*", default=["bunny.off"])
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 4, 8, 12])
    ap.add_argument("--hidden", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--json"); ap.add_argument("--plot"); ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--log", default=os.path.join(OUT, "size_sweep.jsonl"))
    ap.add_argument("--remeasure-eval", action="store_true",
                    help="only re-time numpy evaluation for the rows of --json (on random weights of each "
                         "shape: the cost does not depend on the values) and rewrite it; for a quiet machine")
    ap.add_argument("--resume", action="store_true",
                    help="reuse rows of --log for the same mesh and shape (an interrupted run continues)")
    args = ap.parse_args()

    from core.common.settings import ConversionSettings

    if args.remeasure_eval:
        remeasure_eval(args)
        return
    done = {}
    if args.resume and os.path.exists(args.log):
        with open(args.log) as fh:
            for line in fh:
                r = json.loads(line)
                done[(r["mesh"], r["layers"], r["hidden"])] = r
    rows, cache = [], {}
    for mesh in args.meshes:
        for L in args.layers:
            for H in args.hidden:
                if (os.path.basename(mesh), L, H) in done:
                    rows.append(done[(os.path.basename(mesh), L, H)])
                    continue
                row, _ = run(mesh, ConversionSettings(layers=L, hidden=H, threads=1), heldout_cache=cache)
                row.update(layers=L, hidden=H)
                rows.append(row)
                log(args.log, row)
                print(f"# {mesh} {L}x{H}: CD {row['chamfer']:.5f} surface error {row['surface_error']:.5f} "
                      f"{row['seconds']:.0f} s (load {row['load_average']:.1f})", file=sys.stderr, flush=True)
    finish(rows, args, table, plot)


if __name__ == "__main__":
    main()
