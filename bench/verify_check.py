"""Does the conversion's own check (core/conversion/verify.py) separate healthy networks from
failures?

Usage::

    python -m bench.verify_check [--meshes bunny.off spot.obj ...] [--epochs 30] [--json out.json]

For every mesh (default: all of ../shared/meshes) a network is trained with the default settings
(``--epochs`` overrides the epoch count) and checked, then two failures built from it are checked
too: the same network with inside and outside swapped (an inverted sign) and a constant network
(what a training that collapsed leaves: tanh(0.0008) everywhere). The paper authors' own networks
(../shared/paper-weights) are checked as they are. Prints one row per network with the figures the
thresholds act on, and whether it passed; docs/algorithms.md ("Checking the result") quotes it.
"""

from __future__ import annotations

import argparse
import os
import time

from core.common import jsonsafe
from core.conversion.verify import verify
from core.representation.implicit import Implicit
from tests.hostile.networks import constant, negated

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHARED = os.path.join(os.path.dirname(ROOT), "shared")


def row(mesh_name: str, kind: str, imp: Implicit, mesh) -> dict:
    t = time.perf_counter()
    v = verify(imp, mesh)
    return {"mesh": mesh_name, "network": kind, "seconds": time.perf_counter() - t, **v.to_dict()}


def main() -> int:
    from core.common.settings import ConversionSettings
    from core.meshes.mesh import load_mesh
    from core.representation.paper_import import load_paper_weights
    from core.training.convert import convert_mesh

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--meshes", nargs="*")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--json", default=os.path.join(ROOT, "bench", "out", "verify_check.json"))
    args = p.parse_args()
    names = args.meshes or sorted(f for f in os.listdir(os.path.join(SHARED, "meshes"))
                                  if f.lower().endswith((".obj", ".off", ".ply", ".stl")))
    settings = ConversionSettings(threads=1)
    if args.epochs:
        settings = settings.replace(epochs=args.epochs)
    rows = []
    for name in names:
        mesh = load_mesh(os.path.join(SHARED, "meshes", name))
        r = convert_mesh(mesh, settings)
        for kind, imp in (("trained (default)", r.implicit), ("inverted", negated(r.implicit)),
                          ("constant", constant(0.0008, r.implicit.transform))):
            rows.append(row(name, kind, imp, mesh))
            print_row(rows[-1])
        stem = os.path.splitext(name)[0]
        paper = os.path.join(SHARED, "paper-weights", stem + "_sf.h5")
        if os.path.exists(paper):
            rows.append(row(name, "paper's network", load_paper_weights(paper, mesh), mesh))
            print_row(rows[-1])
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as fh:
        fh.write(jsonsafe.dumps({"settings": settings.to_dict(), "rows": rows}, indent=1))
    print(f"wrote {args.json}")
    return 0


def print_row(r: dict) -> None:
    def pct(x):
        return "  n/a" if x is None else f"{100 * x:5.1f}"
    chamfer = "   inf" if r["chamfer"] is None else f"{r['chamfer']:.4f}"
    print(f"{r['mesh']:<22} {r['network']:<18} {'pass' if r['passed'] else 'FAIL'}  "
          f"sign {pct(r['sign_agreement'])}% near {pct(r['sign_agreement_near'])}%  "
          f"chamfer {chamfer}  open {r['open_input']!s:<5} ({r['seconds']:.1f}s)", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
