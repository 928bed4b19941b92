"""Budget mode with its recipe changed: accuracy and seconds of each variant (issue 15).

    python -m bench.budget_recipe                       # the variants below, bunny.off at 30,000 B
    python -m bench.budget_recipe --mesh spot.obj --budget 15000 --json bench/out/budget_recipe.json
    python -m bench.budget_recipe --variants 'mine={"recipe": {"epochs": 12}}'

Prints figures, asserts nothing. Each variant changes core.training.budget.RECIPE (training knobs)
and REFINEMENTS for one conversion (core.training.budget.convert_to_budget on one torch thread),
then remeshes the result at 256^3 and measures the Chamfer and Hausdorff distances to the source
(unit-sphere frame, core.geometry.metrics). "shipped" is budget mode as it is, "previous recipe" the
one it replaced, and the others shorter versions of that.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from core.common.settings import ConversionSettings
from core.geometry.metrics import surface_distances
from core.geometry.remesh import remesh
from core.meshes.mesh import load_mesh
from core.training import budget

MESHES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir,
                      "shared", "meshes")

#: The recipe budget mode had before this one (20 epochs over 1 M samples from a 10 M pool, PyTorch's
#: initialisation, batch 4096, peak lr 0.015, 3 epochs of quantisation-aware fine-tuning).
PREVIOUS = {"recipe": {"epochs": 20, "lr": 0.015, "batch_size": 4096, "pool": 10_000_000,
                       "init": "uniform"},
            "refinements": {"qat_epochs": 3}}

VARIANTS = {
    "shipped": {},
    "previous recipe": PREVIOUS,
    "previous, 12 epochs": {"recipe": {**PREVIOUS["recipe"], "epochs": 12},
                            "refinements": PREVIOUS["refinements"]},
    "previous, 12 epochs, sphere start, batch 2048, lr 0.008": {
        "recipe": {**PREVIOUS["recipe"], "epochs": 12, "init": "sphere", "batch_size": 2048,
                   "lr": 0.008},
        "refinements": PREVIOUS["refinements"]},
}


def run(mesh_name: str, budget_bytes: int, name: str, variant: dict) -> dict:
    saved = dict(budget.RECIPE), dict(budget.REFINEMENTS)
    budget.RECIPE.update(variant.get("recipe", {}))
    budget.REFINEMENTS.update(variant.get("refinements", {}))
    try:
        mesh = load_mesh(os.path.join(MESHES, mesh_name))
        t = time.perf_counter()
        r = budget.convert_to_budget(mesh, budget_bytes, ConversionSettings(threads=1))
        seconds = time.perf_counter() - t
    finally:
        budget.RECIPE.clear(), budget.RECIPE.update(saved[0])
        budget.REFINEMENTS.clear(), budget.REFINEMENTS.update(saved[1])
    rm = remesh(r.implicit, 256)
    d = surface_distances(mesh, rm.V, rm.F)
    return {"mesh": mesh_name, "budget": budget_bytes, "variant": name, "changes": variant,
            "seconds": seconds, "seconds_training": r.seconds_training,
            "epochs": r.implicit.metadata["budget"]["epochs"], "surface_error": r.surface_error,
            "chamfer": d.chamfer_l1, "hausdorff": d.hausdorff, "load_average": os.getloadavg()[0]}


def table(d: dict) -> str:
    """docs/results.md's table of a --json output (bench/make_results.py)."""
    from bench.variants import format_table
    return format_table(["mesh", "budget", "variant", "epochs", "seconds", "surface error", "Chamfer",
                         "Hausdorff", "load"],
                        [[r["mesh"], f"{r['budget']:,}", r["variant"], r["epochs"], f"{r['seconds']:.0f}",
                          f"{r['surface_error']:.5f}", f"{r['chamfer']:.5f}", f"{r['hausdorff']:.4f}",
                          f"{r['load_average']:.1f}"] for r in d["rows"]])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mesh", default="bunny.off")
    ap.add_argument("--budget", type=int, default=30_000)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS),
                    help="variant names or NAME=JSON ({'recipe': {...}, 'refinements': {...}})")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    rows = []
    for v in args.variants:
        name, _, changes = v.partition("=")
        row = run(args.mesh, args.budget, name, json.loads(changes) if changes else VARIANTS[name])
        print(f"{row['mesh']} {row['budget']:,} B {name:45s} {row['seconds']:6.1f} s  Chamfer "
              f"{row['chamfer']:.5f}  Hausdorff {row['hausdorff']:.4f}  surface {row['surface_error']:.5f}"
              f"  (load {row['load_average']:.1f})", flush=True)
        rows.append(row)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
