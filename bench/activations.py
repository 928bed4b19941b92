"""SIREN and positional encoding at hidden 32 and 64 (paper A.3; issue 6, benchmark 5).

    .venv/bin/python -m bench.activations [MESH...] [--hidden 32 64] [--json out.json] [--markdown]

Default mesh: bunny.off, 8 hidden layers. Variants, each with the default recipe otherwise:
ReLU (the paper's); ReLU with NeRF positional encoding L = 4 and L = 8; the same with 10 % of the
training set uniform in the ball (the far_fraction setting, which pins the far field); SIREN
(sine activations, omega_0 = 30, SIREN's initialisation) at a peak learning rate of 5e-4 (SIREN
diverges at the ReLU rate 0.015). Measured by core.geometry.baselines.measure_implicit; "spurious"
surface shows as a Chamfer/Hausdorff far above the surface error.
"""

from __future__ import annotations

import argparse
import os
import sys

from bench.variants import OUT, finish, format_table, log, run

NO_FAR = {"far_fraction": 0.0}
FAR = {"far_fraction": 0.1}

#: name -> (ConversionSettings changes, Refinements fields or None)
VARIANTS = {
    "ReLU": (NO_FAR, None),
    "ReLU + PE L=4": ({"encoding_frequencies": 4, **NO_FAR}, None),
    "ReLU + PE L=8": ({"encoding_frequencies": 8, **NO_FAR}, None),
    "ReLU + PE L=4 + 10% far samples": ({"encoding_frequencies": 4, **FAR}, None),
    "ReLU + PE L=8 + 10% far samples": ({"encoding_frequencies": 8, **FAR}, None),
    "SIREN (lr 5e-4)": ({"activation": "sine", "lr": 5e-4, **NO_FAR}, None),
    "SIREN (lr 5e-4) + 10% far samples": ({"activation": "sine", "lr": 5e-4, **FAR}, None),
}



def table(rows, markdown=True):
    head = ["mesh", "hidden", "variant", "bytes", "surface error", "Chamfer", "Hausdorff", "p99",
            "held-out loss", "median abs grad", "s/epoch", "load"]
    out = []
    for r in rows:
        cells = [r["mesh"], r["hidden"], r["variant"], f"{r['weight_bytes']:,}", f"{r['surface_error']:.5f}",
                 f"{r['chamfer']:.5f}", f"{r['hausdorff']:.4f}", f"{r['p99']:.4f}", f"{r['heldout_loss']:.5f}",
                 f"{r['grad_median']:.2f}", f"{r['seconds_per_epoch']:.1f}", f"{r['load_average']:.1f}"]
        out.append(cells)
    return format_table(head, out, markdown)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("meshes", nargs="*", default=["bunny.off"])
    ap.add_argument("--hidden", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--variants", nargs="*", help="names of VARIANTS to run (default all)")
    ap.add_argument("--json"); ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--log", default=os.path.join(OUT, "activations.jsonl"))
    args = ap.parse_args()
    from core.common.settings import ConversionSettings
    from core.training.refine import Refinements

    rows, cache = [], {}
    for mesh in args.meshes:
        for H in args.hidden:
            for name, (changes, ref) in VARIANTS.items():
                if args.variants and name not in args.variants:
                    continue
                s = ConversionSettings(threads=1, hidden=H).replace(**changes)
                row, _ = run(mesh, s, Refinements(**ref) if ref else None, heldout_cache=cache)
                row.update(variant=name, hidden=H)
                rows.append(row); log(args.log, row)
                print(f"# {mesh} {H} {name}: CD {row['chamfer']:.5f} se {row['surface_error']:.5f}",
                      file=sys.stderr, flush=True)
    finish(rows, args, table)


if __name__ == "__main__":
    main()
