"""Separate parts (issue 18): do they stay apart, and do small parts survive?

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.parts                          # every case, the default
    OMP_NUM_THREADS=1 .venv/bin/python -m bench.parts --variants one split     # one network, and split
    OMP_NUM_THREADS=1 .venv/bin/python -m bench.parts cubes0.5 63451.stl --json bench/out/parts.json

Cases: three unit cubes in a row 0.5 % of a cube's side apart (``side0.5``, the issue's case), and
whose gaps are 0.5, 1, 2 and 5 % of the shape's size (its radius,
the unit-sphere frame's 1: the convention of core.geometry.remesh.gap_warning's message), a 3 x 3
array of cubes 1 % apart, a cloth-like sheet (an open, folded 40 x 40-quad square: one part, shell
mode), and the many-part shared meshes 63451.stl (30 polyhedra) and multibody.stl (2 bodies). Each
is converted at default settings (one torch thread, one attempt of
core.conversion.checked.convert_checked, seed 0), in each
variant (:data:`VARIANTS`): ``split`` = the default (separate networks for parts that nearly touch,
core/samples/parts.py), ``one`` = a single network (``part_networks="one"``), ``before`` /
``after`` = a single network without and with 10 % gap samples (core/samples/gaps.py).
The network is remeshed at 256^3 and 512^3; for each the connected components are counted (all of
them, and those holding at least 0.1 % of the remesh's area, so specks do not count) against the
source's, and the 512^3 remesh is measured against the source by
core.geometry.metrics.surface_distances (Chamfer L1 and Hausdorff, unit-sphere frame);
core.samples.gaps.joined_parts says which neighbouring parts the network itself joins across their
gap. Also recorded: the surface error, the check's result and warnings, the remesh's gap warning,
the gap samples added, seconds and os.getloadavg(). Rows are merged into the JSON file (keyed by
case and variant, so runs add up).
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
from core.meshes.mesh import load_mesh, mesh_from_arrays, triangle_areas
from core.samples.gaps import joined_parts
from core.samples.openness import boundary_edge_count, face_components

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MESHES = os.path.normpath(os.path.join(ROOT, os.pardir, "shared", "meshes"))
OUT = os.path.join(ROOT, "bench", "out", "parts.json")
CASES = ("side0.5", "cubes0.5", "cubes1", "cubes2", "cubes5", "array1", "sheet", "63451.stl",
         "multibody.stl")
#: ``one`` = a single network (the narrow-gap recipe of gap_factor); ``split`` = the default, one
#: network per group of parts far apart (core.samples.parts); ``before`` / ``after`` = one network
#: without and with gap samples (the first study of docs/open-geometry.md).
VARIANTS = {"one": {"part_networks": "one"}, "split": {},
            "before": {"gap_fraction": 0.0, "part_networks": "one"},
            "after": {"gap_fraction": 0.1, "part_networks": "one"}}
RESOLUTIONS = (256, 512)
#: Remesh components smaller than this share of its area are specks, not parts.
SPECK = 1e-3


def _box(lo, hi):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    V = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    F = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return V, F


def cube_array(gap: float, nx: int = 3, ny: int = 1, name: str | None = None):
    """nx x ny unit cubes whose gaps are ``gap`` times the shape's radius (farthest vertex from the
    bounding box's centre), found by fixed-point iteration since the radius grows with the gap."""
    s = gap
    for _ in range(50):
        hx, hy = (nx + (nx - 1) * s) / 2, (ny + (ny - 1) * s) / 2
        s = gap * np.sqrt(hx ** 2 + hy ** 2 + 0.25)
    Vs, Fs = [], []
    for i in range(nx):
        for j in range(ny):
            V, F = _box([i * (1 + s), j * (1 + s), 0], [i * (1 + s) + 1, j * (1 + s) + 1, 1])
            Fs.append(F + 8 * len(Vs))
            Vs.append(V)
    return mesh_from_arrays(np.concatenate(Vs), np.concatenate(Fs),
                            name=name or f"{nx}x{ny} cubes {100 * gap:g}%")


def sheet(n: int = 40):
    """A cloth-like sheet: an n x n-quad unit square draped in two folds (open, one part)."""
    g = np.linspace(0.0, 1.0, n + 1)
    X, Y = np.meshgrid(g, g, indexing="ij")
    Z = 0.12 * np.sin(2 * np.pi * X) * np.cos(np.pi * Y) + 0.05 * np.sin(5 * np.pi * Y)
    V = np.stack([X.ravel(), Y.ravel(), Z.ravel()], 1)
    i = (np.arange(n)[:, None] * (n + 1) + np.arange(n)[None]).ravel()
    F = np.concatenate([np.stack([i, i + n + 1, i + 1], 1), np.stack([i + 1, i + n + 1, i + n + 2], 1)])
    return mesh_from_arrays(V, F, name=f"sheet{n}x{n}")


def side_cubes(gap: float, n: int = 3):
    """n unit cubes in a row ``gap`` of a cube's side apart (the issue's "three unit cubes with
    0.5 % gaps": 0.3 % of the radius)."""
    Vs, Fs = [], []
    for i in range(n):
        V, F = _box([i * (1 + gap), 0, 0], [i * (1 + gap) + 1, 1, 1])
        Fs.append(F + 8 * len(Vs))
        Vs.append(V)
    return mesh_from_arrays(np.concatenate(Vs), np.concatenate(Fs), name=f"{n} cubes {100 * gap:g}% of a side")


def load(case: str):
    if case.startswith("side"):
        return side_cubes(float(case[4:]) / 100)
    if case.startswith("cubes"):
        return cube_array(float(case[5:]) / 100)
    if case.startswith("array"):
        return cube_array(float(case[5:]) / 100, 3, 3)
    if case == "sheet":
        return sheet()
    return load_mesh(os.path.join(MESHES, case))


def parts(V, F) -> tuple[int, int]:
    """Connected components of a mesh: all, and those with at least SPECK of its area."""
    n, labels = face_components(F)
    area = np.bincount(labels, triangle_areas(V, F), minlength=n)
    return n, int((area >= SPECK * area.sum()).sum())


def measure(case: str, variant: str) -> dict:
    mesh = load(case)
    settings = ConversionSettings(threads=1).replace(**VARIANTS[variant])
    row = {"case": case, "variant": variant, "source_parts": parts(mesh.V, mesh.F)[0],
           "loadavg_before": os.getloadavg()}
    t0 = time.perf_counter()
    try:      # one attempt: a failed check is a figure to report, not a reason to train again
        result = convert_checked(mesh, settings, attempts=1)
    except ConversionFailed as e:
        return {**row, "check_passed": False, "failure": str(e), "seconds": time.perf_counter() - t0}
    row["seconds"] = time.perf_counter() - t0
    meta = result.implicit.metadata
    row.update(networks=result.implicit.network_count, weight_bytes=result.implicit.weight_bytes,
               surface_error=result.surface_error, check_passed=result.verification.passed,
               warnings=list(result.warnings), surface_mode=meta["surface"]["mode"],
               finest_gap=(meta["surface"].get("openness") or {}).get("finest_gap"),
               gap_samples=result.sampling_stats.get("gaps"))
    joined = joined_parts(result.implicit, mesh)
    row["joined"] = joined
    for res in RESOLUTIONS:
        r = remesh(result.implicit, resolution=res)
        n_all, n_big = parts(r.V, r.F)
        row[f"parts_{res}"] = n_all
        row[f"parts_{res}_big"] = n_big
        row[f"gap_warning_{res}"] = list(r.stats.get("warnings", []))
        if res == max(RESOLUTIONS):
            d = surface_distances(mesh, r.V, r.F)
            row.update(chamfer=d.chamfer_l1, hausdorff=d.hausdorff, p99=d.p99,
                       remesh_boundary_edges=boundary_edge_count(r.F))
    row["loadavg_after"] = os.getloadavg()
    return row


def _fmt(row: dict) -> str:
    if "failure" in row:
        return f"| {row['case']} | {row['variant']} | {row['source_parts']} | check failed: {row['failure'][:120]} |"
    gap = row["finest_gap"]
    warned = any(row[f"gap_warning_{r}"] for r in RESOLUTIONS)
    added = (row["gap_samples"] or {}).get("points", 0)
    return (f"| {row['case']} | {row['variant']} | {'-' if gap is None else f'{100 * gap / 0.9:.2f}%'} | "
            f"{added:,} | {row.get('networks', 1)} | {row['source_parts']} | {row['parts_256']} ({row['parts_256_big']}) | "
            f"{row['parts_512']} ({row['parts_512_big']}) | {row['chamfer']:.5f} | {row['hausdorff']:.4f} | "
            f"{row['surface_error']:.5f} | {'passed' if row['check_passed'] else 'FAILED'}"
            f"{', warned' if row['warnings'] else ''} | {'yes' if warned else 'no'} | {_joined(row)} | "
            f"{row['seconds']:.0f} |")


HEADER = ("| case | variant | finest gap | gap samples | networks | source parts | parts 256³ (≥0.1 % area) | "
          "parts 512³ (≥0.1 % area) | Chamfer 512³ | Hausdorff 512³ | surface error | check | "
          "remesh gap warning | pairs joined | s |\n|" + "---|" * 15)


def table(rows: dict) -> str:
    """The rows of a JSON file this bench wrote, as docs/results.md shows them (bench.make_results):
    every case, its variants in the order of :data:`VARIANTS`."""
    cases = list(dict.fromkeys(r["case"] for r in rows.values()))
    lines = [HEADER]
    for case in cases:
        for variant in VARIANTS:
            if f"{case} {variant}" in rows:
                lines.append(_fmt(rows[f"{case} {variant}"]))
    return "\n".join(lines)


def _joined(row: dict) -> str:
    j = row.get("joined")
    return "-" if not j or not j["pairs"] else f"{len(j['joined'])} of {j['pairs']}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", default=list(CASES), help=f"any of {', '.join(CASES)}, "
                    "cubesG / arrayG for another gap G (percent), or a file of ../shared/meshes")
    ap.add_argument("--variants", nargs="+", default=["split"], choices=list(VARIANTS))
    ap.add_argument("--json", default=OUT)
    args = ap.parse_args(argv)
    rows = json.load(open(args.json)) if os.path.exists(args.json) else {}
    print(f"load average at start: {os.getloadavg()}")
    print(HEADER)
    for case in args.cases:
        for variant in args.variants:
            row = measure(case, variant)
            rows[f"{case} {variant}"] = row
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
            print(_fmt(row), flush=True)
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
