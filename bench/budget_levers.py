"""The levers of budget mode, measured one at a time at 30,000 bytes (issue 10).

    .venv/bin/python -m bench.budget_levers [MESH...] [--levers NAME...] [--json out.json] [--markdown]

Default mesh: bunny.off. Each row changes one thing on the way from the default network to budget
mode (core/training/budget.py): storage precision, quantisation-aware fine-tuning, depth against
width at equal bytes, positional encoding, far-field samples, error-driven resampling (first among
importance-sampled candidates, then within 0.05 of the surface, then with candidates on the surface
chosen by squared error). Every network fits 30,000 bytes of weight_bytes except the first (the
default 8 x 32 float32, 30,340 bytes). The "budget mode" row is exactly
``core.training.budget.convert_to_budget(mesh, 30000)``; the two after it try budget mode with more
epochs and with SIREN instead of ReLU + positional encoding. Measured by
core.geometry.baselines.measure_implicit (marching cubes 256^3, unit-sphere frame); times are
in-process, one thread, with the load average next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from bench.variants import OUT, finish, format_table, log, run

QAT = {"qat_epochs": 3, "qat_lr": 5e-4}
FAR = {"far_fraction": 0.1}
RESAMPLE = {"resample_every": 2, "resample_pool": 1_000_000}
E20 = {"epochs": 20, "dtype": "int8", "far_fraction": 0.0}

#: Marks a lever as budget mode itself (core.training.budget.budget_settings) with the given
#: settings changes.
BUDGET = "budget mode"

#: name -> (ConversionSettings changes, Refinements fields or None or BUDGET)
LEVERS = {
    "default 8x32 float32 (30,340 B)": ({}, None),
    "7x64 int8": ({"layers": 7, "hidden": 64, **E20}, None),
    "7x64 int8 + QAT": ({"layers": 7, "hidden": 64, **E20}, QAT),
    "10x54 int8 + QAT": ({"layers": 10, "hidden": 54, **E20}, QAT),
    "4x95 int8 + QAT": ({"layers": 4, "hidden": 95, **E20}, QAT),
    "2x165 int8 + QAT": ({"layers": 2, "hidden": 165, **E20}, QAT),
    "4x91 int8 PE4 + QAT": ({"layers": 4, "hidden": 91, "encoding_frequencies": 4, **E20}, QAT),
    "4x91 int8 PE4 + far + QAT": ({"layers": 4, "hidden": 91, "encoding_frequencies": 4, **E20, **FAR},
                                  QAT),
    "... + resampling, all candidates": ({"layers": 4, "hidden": 91, "encoding_frequencies": 4, **E20, **FAR},
                                         {**QAT, **RESAMPLE}),
    "... + resampling within 0.05 of the surface": ({"layers": 4, "hidden": 91, "encoding_frequencies": 4,
                                                     **E20, **FAR},
                                                    {**QAT, **RESAMPLE, "resample_band": 0.05}),
    "budget mode (... + 80 % surface candidates, error²)": ({}, BUDGET),
    "budget mode, 30 epochs": ({"epochs": 30}, BUDGET),
    "budget mode with SIREN 4x95 (lr 5e-4) instead of ReLU + PE": (
        {"layers": 4, "hidden": 95, "activation": "sine", "encoding_frequencies": 0, "lr": 5e-4}, BUDGET),
}



def table(rows, markdown=True):
    head = ["mesh", "lever", "bytes", "Chamfer", "Hausdorff", "p99", "surface error", "held-out loss",
            "median abs grad", "seconds", "load"]
    out = []
    for r in rows:
        cells = [r["mesh"], r["lever"], f"{r['weight_bytes']:,}", f"{r['chamfer']:.5f}", f"{r['hausdorff']:.4f}",
                 f"{r['p99']:.4f}", f"{r['surface_error']:.5f}", f"{r['heldout_loss']:.5f}",
                 f"{r['grad_median']:.2f}", f"{r['seconds']:.0f}", f"{r['load_average']:.1f}"]
        out.append(cells)
    return format_table(head, out, markdown)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("meshes", nargs="*", default=["bunny.off"])
    ap.add_argument("--levers", nargs="*", help="names of LEVERS to run (default all)")
    ap.add_argument("--budget", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json"); ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--log", default=os.path.join(OUT, "budget_levers.jsonl"))
    ap.add_argument("--resume", action="store_true",
                    help="reuse rows of --log with the same mesh, lever, seed and budget (rows "
                         "logged before seed and budget were recorded ran with the defaults)")
    args = ap.parse_args()
    from core.common.settings import ConversionSettings
    from core.training.budget import budget_settings
    from core.training.refine import Refinements

    done = {}
    if args.resume and os.path.exists(args.log):
        with open(args.log) as fh:
            for line in fh:
                r = json.loads(line)
                done[(r["mesh"], r["lever"], r.get("seed", 0), r.get("budget", 30_000))] = r
    rows, cache = [], {}
    for mesh in args.meshes:
        for name, (changes, ref) in LEVERS.items():
            if args.levers and name not in args.levers:
                continue
            key = (os.path.basename(mesh), name, args.seed, args.budget)
            if key in done:
                rows.append(done[key])
                print(f"# {mesh} {name}: reused from {args.log}", file=sys.stderr, flush=True)
                continue
            base = ConversionSettings(threads=1, seed=args.seed)
            if ref == BUDGET:
                s, r = budget_settings(args.budget, base)
                s = s.replace(**changes).validate()
            else:
                s, r = base.replace(**changes), (Refinements(**ref) if ref else None)
            row, imp = run(mesh, s, r, heldout_cache=cache)
            row.update(lever=name, layers=s.layers, hidden=s.hidden, encoding=s.encoding_frequencies,
                       seed=args.seed, budget=args.budget)
            rows.append(row); log(args.log, row)
            print(f"# {mesh} {name}: CD {row['chamfer']:.5f} HD {row['hausdorff']:.4f} "
                  f"{row['weight_bytes']} B {row['seconds']:.0f} s (load {row['load_average']:.1f})",
                  file=sys.stderr, flush=True)
    finish(rows, args, table)


if __name__ == "__main__":
    main()
