"""Shell mode on open geometry: Chamfer and Hausdorff of the remeshed shell, and of the sheet it
collapses to (``remesh --sheet``, core.samples.shell.sheet_of), against the source sheet.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.shell                       # default settings
    OMP_NUM_THREADS=1 .venv/bin/python -m bench.shell --budget-bytes 30000  # budget mode, 30 kB

Converts lilium.obj, soup.stl, teapot.obj (../shared/meshes) and a 20 x 20-quad plane built here in
shell mode (``surface="shell"``, the default half thickness unless ``--thickness``), checked like
every conversion (core.training.convert.convert_checked), remeshes each network at 256^3 and
measures it against the source with core.geometry.metrics.surface_distances (unit-sphere frame).
Prints a table and merges the rows into bench/out/shell.json (keyed by mesh and mode, so runs add
up). The closed-mode and decimation figures to compare with are docs/results.md section 1's
(docs/open-geometry.md).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from core.common.settings import ConversionSettings
from core.conversion.checked import ConversionFailed, convert_checked
from core.geometry.metrics import surface_distances
from core.geometry.remesh import remesh
from core.meshes.mesh import load_mesh, mesh_from_arrays
from core.samples.openness import boundary_edge_count
from core.samples.shell import sheet_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MESHES = os.path.normpath(os.path.join(ROOT, os.pardir, "shared", "meshes"))
OUT = os.path.join(ROOT, "bench", "out", "shell.json")
NAMES = ("lilium.obj", "soup.stl", "teapot.obj", "plane")


def plane(n: int = 20):
    """An n x n-quad square in the z = 0 plane (2 n^2 triangles): the simplest open sheet."""
    g = np.linspace(0.0, 1.0, n + 1)
    X, Y = np.meshgrid(g, g, indexing="ij")
    V = np.stack([X.ravel(), Y.ravel(), np.zeros(X.size)], 1)
    i = (np.arange(n)[:, None] * (n + 1) + np.arange(n)[None]).ravel()
    F = np.concatenate([np.stack([i, i + n + 1, i + 1], 1), np.stack([i + 1, i + n + 1, i + n + 2], 1)])
    return mesh_from_arrays(V, F, name=f"plane{n}x{n}")


def load(name: str):
    return plane() if name == "plane" else load_mesh(os.path.join(MESHES, name))


def measure(name: str, settings: ConversionSettings, budget: int | None, resolution: int) -> dict:
    mesh = load(name)
    t0 = time.perf_counter()
    try:      # one attempt: a failed check is a figure to report, not a reason to train again
        result = convert_checked(mesh, settings, budget_bytes=budget, attempts=1)
    except ConversionFailed as e:
        return {"mesh": name, "mode": f"budget {budget}" if budget else "default",
                "check_passed": False, "failure": str(e), "seconds": time.perf_counter() - t0}
    seconds = time.perf_counter() - t0
    r = remesh(result.implicit, resolution=resolution)
    d = surface_distances(mesh, r.V, r.F)
    sheet = surface_distances(mesh, sheet_of(result.implicit, r.V, r.F)[0], r.F)
    v = result.verification
    return {"mesh": name, "mode": f"budget {budget}" if budget else "default",
            "surface": result.implicit.metadata["surface"], "weight_bytes": result.implicit.weight_bytes,
            "architecture": f"{result.implicit.architecture.layers}x{result.implicit.architecture.hidden}"
                            f" {result.implicit.storage}",
            "chamfer": d.chamfer_l1, "hausdorff": d.hausdorff, "p99": d.p99,
            "sheet_chamfer": sheet.chamfer_l1, "sheet_hausdorff": sheet.hausdorff,
            "sheet_p99": sheet.p99,
            "remesh_boundary_edges": boundary_edge_count(r.F), "remesh_faces": int(len(r.F)),
            "check_passed": v.passed, "check_chamfer": v.chamfer,
            "sign_agreement": v.sign_agreement, "sign_agreement_near": v.sign_agreement_near,
            "warnings": result.warnings, "seconds": seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("meshes", nargs="*", default=list(NAMES), help=f"any of {', '.join(NAMES)}")
    ap.add_argument("--budget-bytes", type=int, default=None)
    ap.add_argument("--thickness", type=float, default=None, help="shell half thickness (default: "
                    "ConversionSettings' default)")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--json", default=OUT)
    args = ap.parse_args(argv)
    settings = ConversionSettings(surface="shell", threads=1)
    if args.thickness is not None:
        settings = settings.replace(shell_thickness=args.thickness)
    rows = json.load(open(args.json)) if os.path.exists(args.json) else {}
    print("| mesh | mode | t | bytes | shell: Chamfer / Hausdorff / p99 | sheet (remesh --sheet): "
          "Chamfer / Hausdorff / p99 | closed remesh | check | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.meshes:
        row = measure(name, settings, args.budget_bytes, args.resolution)
        rows[f"{name} {row['mode']} t={settings.shell_thickness}"] = row
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
        if "failure" in row:
            print(f"| {name} | {row['mode']} | {settings.shell_thickness} | {row['failure']} |", flush=True)
            continue
        print(f"| {name} | {row['mode']} | {settings.shell_thickness} | {row['weight_bytes']:,} | "
              f"{row['chamfer']:.5f} / {row['hausdorff']:.4f} / {row['p99']:.4f} | "
              f"{row['sheet_chamfer']:.5f} / {row['sheet_hausdorff']:.4f} / {row['sheet_p99']:.4f} | "
              f"{'yes' if row['remesh_boundary_edges'] == 0 else 'no'} | "
              f"{'passed' if row['check_passed'] else 'FAILED'} | {row['seconds']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
