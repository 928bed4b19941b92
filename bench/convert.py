"""Benchmark of the core engine's targets (issue 2). Prints figures; asserts nothing.

    python -m bench.convert                 # every mesh in ../shared/meshes, default settings
    python -m bench.convert --meshes bunny.off spot.obj
    python -m bench.convert --json out.json

For each mesh it runs ``python -m core convert --json`` in a fresh process (so time and peak memory
are those of one end-to-end conversion: load, sample, train, save), then remeshes the result at 256^3
and, where the paper's release has a network for the same mesh (../shared/paper-weights), measures
both surface errors the same way in the same frame (core.geometry.metrics.surface_error, unit-sphere
frame).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, os.pardir, "shared")

TARGETS = {"surface_error_default": 0.003, "surface_error_all": 0.01, "bunny_seconds": 60.0,
           "peak_memory_mb": 3072.0, "remesh_seconds": 5.0}


def convert(mesh_path: str, out: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "core", "convert", mesh_path, "-o", out, "--json", *extra]
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    try:
        d = json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        d = {"error": p.stderr.strip()[-500:]}
    d["wall_seconds"] = wall
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meshes", nargs="*", help="file names in ../shared/meshes (default: all)")
    ap.add_argument("--folder", default=os.path.join(SHARED, "meshes"))
    ap.add_argument("--json", help="also write all figures to this file")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="extra convert flags after --")
    args = ap.parse_args()
    extra = [a for a in args.extra if a != "--"]

    from core.geometry.metrics import surface_error
    from core.geometry.remesh import remesh
    from core.meshes.mesh import load_mesh
    from core.representation.fileformat import load
    from core.representation.paper_import import load_paper_weights

    names = args.meshes or sorted(f for f in os.listdir(args.folder)
                                  if f.lower().endswith((".obj", ".off", ".ply", ".stl")))
    rows = []
    tmp = tempfile.mkdtemp(prefix="bench-convert-")
    print(f"{'mesh':24} {'surf.err':>9} {'loss':>8} {'total s':>8} {'sample s':>8} {'train s':>8} "
          f"{'peak MB':>8} {'remesh s':>8} {'evals saved':>11} {'paper':>8}")
    for name in names:
        path = os.path.join(args.folder, name)
        out = os.path.join(tmp, name + ".h5")
        d = convert(path, out, extra)
        row = {"mesh": name, **d}
        if "error" not in d:
            imp = load(out)
            r = remesh(imp, resolution=256)
            row["remesh_seconds"] = r.stats["seconds"]
            row["remesh_saving"] = r.stats["dense_evaluations"] / r.stats["evaluations"]
            stem = os.path.splitext(name)[0]
            paper = os.path.join(SHARED, "paper-weights", f"{stem}_sf.h5")
            if os.path.exists(paper):
                mesh = load_mesh(path)
                row["paper_surface_error"] = surface_error(load_paper_weights(paper, mesh), mesh)
        rows.append(row)
        if "error" in row:
            print(f"{name:24} FAILED: {row['error']}")
            continue
        print(f"{name:24} {row['surface_error']:9.5f} {row['final_loss']:8.5f} {row['seconds_total']:8.1f} "
              f"{row['seconds_sampling']:8.1f} {row['seconds_training']:8.1f} "
              f"{row['peak_memory_mb'] or float('nan'):8.0f} {row['remesh_seconds']:8.2f} "
              f"{row['remesh_saving']:10.1f}x {row.get('paper_surface_error', float('nan')):8.5f}", flush=True)

    ok = [r for r in rows if "error" not in r]
    print("\nTargets")
    for name in ("spot.obj", "bunny.off"):
        r = next((r for r in ok if r["mesh"] == name), None)
        if r:
            print(f"  {name}: surface error {r['surface_error']:.5f} (target <= {TARGETS['surface_error_default']})")
    if ok:
        worst = max(ok, key=lambda r: r["surface_error"])
        print(f"  all {len(ok)} converted, {len(rows) - len(ok)} failed; worst surface error "
              f"{worst['surface_error']:.5f} ({worst['mesh']}; target <= {TARGETS['surface_error_all']}); "
              f"share below 0.003: {sum(r['surface_error'] < 0.003 for r in ok) / len(ok):.0%}")
        b = next((r for r in ok if r["mesh"] == "bunny.off"), None)
        if b:
            print(f"  bunny.off end to end {b['seconds_total']:.1f}s in-process, {b['wall_seconds']:.1f}s "
                  f"wall incl. interpreter start (target <= {TARGETS['bunny_seconds']:.0f}): sampling "
                  f"{b['seconds_sampling']:.1f}s, training {b['seconds_training']:.1f}s, peak memory "
                  f"{b['peak_memory_mb']:.0f} MB (target <= {TARGETS['peak_memory_mb']:.0f})")
        print(f"  remesh 256^3: max {max(r['remesh_seconds'] for r in ok):.2f}s (target <= "
              f"{TARGETS['remesh_seconds']}), evaluations saved vs dense: "
              f"{min(r['remesh_saving'] for r in ok):.0f}x to {max(r['remesh_saving'] for r in ok):.0f}x")
        paper = [r for r in ok if "paper_surface_error" in r]
        if paper:
            print("  against the paper's released networks (same frame, same metric):")
            for r in paper:
                verdict = "ours lower" if r["surface_error"] < r["paper_surface_error"] else "PAPER LOWER"
                print(f"    {r['mesh']:14} ours {r['surface_error']:.5f}  paper {r['paper_surface_error']:.5f}  {verdict}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (figures are only comparable on an idle machine)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
