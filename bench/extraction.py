"""Does mesh extraction limit the accuracy of the mesh a user gets? (issue 10)

    .venv/bin/python bench/extraction.py IMPLICIT.h5 MESH [--resolutions 128 256 512] [--markdown]

Remeshes one implicit (e.g. a budget-mode network saved by ``bench/equal_bytes.py --save``) with
marching cubes at several resolutions and measures each mesh against the source (unit-sphere frame).
If the figures do not move with resolution, the network, not the extraction, sets the error, and a
feature-preserving extraction (dual contouring) would not change the comparison.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("implicit"); ap.add_argument("mesh")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    from core.baselines import measure_mesh
    from core.fileformat import load
    from core.mesh import load_mesh
    from core.remesh import remesh
    from variants import mesh_path

    imp, mesh = load(args.implicit), load_mesh(mesh_path(args.mesh))
    head = ["resolution", "faces", "Chamfer", "Hausdorff", "p99", "seconds"]
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for R in args.resolutions:
        r = remesh(imp, resolution=R)
        m = measure_mesh(mesh, r.V, r.F)
        cells = [f"{R}^3", f"{len(r.F):,}", f"{m['chamfer']:.5f}", f"{m['hausdorff']:.4f}", f"{m['p99']:.4f}",
                 f"{r.stats['seconds']:.1f}"]
        print(("| " + " | ".join(cells) + " |") if args.markdown else "  ".join(f"{c:>10}" for c in cells))


if __name__ == "__main__":
    main()
