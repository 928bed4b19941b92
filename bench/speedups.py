"""Training speed-ups (issue 6, benchmark 6): which learning rate, schedule, batch size and epoch
count reach the paper's accuracy in the fewest seconds on this CPU, with the default 8 x 32 network.

    .venv/bin/python bench/speedups.py [MESH...] [--target 0.003] [--json out.json] [--markdown]

Default mesh: bunny.off. Each variant is followed epoch by epoch (bench/variants.py): seconds of
training (one thread, in-process; the load average is recorded next to it) until the surface error
first reaches ``--target`` (the paper's 0.003), and the final surface error, Chamfer and Hausdorff.
Compare seconds only between rows measured at similar load.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from variants import OUT, finish, first_epoch_below, format_table, log, run, selected_variants  # noqa: E402

VARIANTS = {
    "paper-like: constant 1e-3, batch 4096, 30 ep, no near-surface": {
        "schedule": "constant", "lr": 1e-3, "surface_fraction": 0.0, "far_fraction": 0.0},
    "one-cycle 3e-3, batch 4096, 30 ep": {"lr": 3e-3},
    "one-cycle 0.015, batch 4096, 30 ep (default)": {},
    "one-cycle 0.015, batch 4096, 15 ep": {"epochs": 15},
    "one-cycle 0.015, batch 16384, 30 ep": {"batch_size": 16384},
    "one-cycle 0.03, batch 16384, 30 ep": {"batch_size": 16384, "lr": 0.03},
    "cosine 0.015, batch 4096, 30 ep": {"schedule": "cosine"},
    "one-cycle 0.015, batch 4096, 30 ep, 500k samples": {"samples": 500_000},
}



def table(rows, markdown=True):
    target = rows[0]["target"] if rows else 0.003
    head = ["mesh", "variant", f"s to {target}", "epochs to it", "training s", "s/epoch",
            "surface error", "Chamfer", "Hausdorff", "load"]
    out = []
    for r in rows:
        epochs, seconds = first_epoch_below(r["curve"], "surface_error", r["target"])
        st = f"{seconds:.0f}" if seconds is not None else "never"
        cells = [r["mesh"], r["variant"], st, epochs or "-", f"{r['seconds_training']:.0f}",
                 f"{r['seconds_per_epoch']:.1f}", f"{r['surface_error']:.5f}", f"{r['chamfer']:.5f}",
                 f"{r['hausdorff']:.4f}", f"{r['load_average']:.1f}"]
        out.append(cells)
    return format_table(head, out, markdown)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("meshes", nargs="*", default=["bunny.off"])
    ap.add_argument("--target", type=float, default=0.003)
    ap.add_argument("--variants", nargs="*")
    ap.add_argument("--json"); ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--log", default=os.path.join(OUT, "speedups.jsonl"))
    args = ap.parse_args()
    from core.settings import ConversionSettings

    rows, cache = [], {}
    for mesh, name, changes in selected_variants(args, VARIANTS):
        row, _ = run(mesh, ConversionSettings(threads=1).replace(**changes), track=True, heldout_cache=cache)
        row["variant"], row["target"] = name, args.target
        row["epochs_to_target"], row["seconds_to_target"] = first_epoch_below(
            row["curve"], "surface_error", args.target)
        rows.append(row); log(args.log, row)
        print(f"# {mesh} {name}: se {row['surface_error']:.5f} to-target {row['seconds_to_target']}",
              file=sys.stderr, flush=True)
    finish(rows, args, table)


if __name__ == "__main__":
    main()
