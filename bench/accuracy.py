"""Accuracy distribution at default settings (paper Figure 5 and §3.3; issue 6, benchmark 1).

    .venv/bin/python -m bench.accuracy [MESH_OR_FOLDER...] [--json out.json] [--plot out.png]
        [--markdown]

Converts every mesh in ../shared/meshes (plus every mesh file or folder given) with the default
ConversionSettings (threads=1) in this process, one at a time, and measures with
``core.geometry.baselines.measure_implicit``: the paper's surface error, the final training loss,
Chamfer L1, Hausdorff and p99 of the marching-cubes mesh (256^3), held-out loss and conversion time.
Prints a table, the share of meshes under the paper's 0.003 surface error (paper: 93 % of Thingi10K,
worst 0.0097) and, with ``--plot``, histograms of surface error and final loss like the paper's
Figure 5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


from bench.variants import mesh_paths

PAPER_THRESHOLD = 0.003      # §3.3: 93 % of Thingi10K below it
PAPER_SHARE = 0.93
PAPER_WORST = 0.0097


def run(path, seed):
    from core.common.settings import ConversionSettings
    from core.geometry.baselines import measure_implicit
    from core.meshes.mesh import load_mesh
    from core.training.convert import convert_mesh

    mesh = load_mesh(path)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    r = convert_mesh(mesh, ConversionSettings(threads=1, seed=seed))
    seconds = time.perf_counter() - t
    m = measure_implicit(r.implicit, mesh)
    return {"mesh": os.path.basename(path), "source_faces": int(len(mesh.F)), "final_loss": r.final_loss,
            "seconds": seconds, "seconds_sampling": r.seconds_sampling,
            "seconds_training": r.seconds_training,
            "seconds_per_epoch": r.seconds_training / max(r.epochs_run, 1), "load_average": load, **m}


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    se = np.array([r["surface_error"] for r in rows])
    loss = np.array([r["final_loss"] for r in rows])
    ch = np.array([r["chamfer"] for r in rows])
    fig, ax = plt.subplots(1, 3, figsize=(11, 3.2), dpi=100)
    bins = np.logspace(np.log10(min(se.min(), 3e-4)), np.log10(max(se.max(), 0.02)), 20)
    ax[0].hist(se, bins=bins, color="#4a7bb7")
    ax[0].axvline(PAPER_THRESHOLD, color="r", ls="--", lw=1, label="0.003 (paper: 93% below)")
    ax[0].set_xscale("log"); ax[0].set_xlabel("surface error (unit sphere)"); ax[0].set_ylabel("meshes")
    ax[0].legend(fontsize=7)
    ax[1].hist(loss, bins=np.logspace(np.log10(loss.min() * 0.8), np.log10(loss.max() * 1.2), 20),
               color="#7a9a4a")
    ax[1].set_xscale("log"); ax[1].set_xlabel("final training loss (network units)")
    ax[2].hist(ch, bins=np.logspace(np.log10(ch.min() * 0.8), np.log10(ch.max() * 1.2), 20),
               color="#b77a4a")
    ax[2].set_xscale("log"); ax[2].set_xlabel("Chamfer L1 of the 256^3 mesh")
    fig.suptitle(f"default settings (8 x 32 ReLU, float32), {len(rows)} meshes", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)



def table(rows, markdown=True):
    from bench.variants import format_table

    head = ["mesh", "faces of the 256³ mesh", "surface error", "final loss", "Chamfer", "Hausdorff", "p99", "seconds", "load"]
    out = []
    for r in rows:
        if "error" in r:
            out.append([r["mesh"], "", "FAILED: " + r["error"], "", "", "", "", "", ""])
        else:
            out.append([r["mesh"], f"{r['faces']:,}", f"{r['surface_error']:.5f}", f"{r['final_loss']:.5f}",
                        f"{r['chamfer']:.5f}", f"{r['hausdorff']:.4f}", f"{r['p99']:.4f}",
                        f"{r['seconds']:.0f}", f"{r['load_average']:.1f}"])
    return format_table(head, out, markdown)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("extra", nargs="*", help="more mesh files or folders")
    ap.add_argument("--json", help="write rows and summary here")
    ap.add_argument("--plot", help="histogram PNG")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rows = []
    for path in mesh_paths(["all", *args.extra]):
        try:
            rows.append(run(path, args.seed))
        except Exception as e:          # a mesh that fails is a result: report it, keep going
            rows.append({"mesh": os.path.basename(path), "error": f"{type(e).__name__}: {e}"})
        r = rows[-1]
        print(f"# {r['mesh']}: " + (r["error"] if "error" in r else
              f"surface error {r['surface_error']:.5f} CD {r['chamfer']:.5f} HD {r['hausdorff']:.4f} "
              f"{r['seconds']:.0f} s (load {r['load_average']:.1f})"), file=sys.stderr, flush=True)
    ok = [r for r in rows if "error" not in r]
    print(table(rows, args.markdown))
    se = sorted(r["surface_error"] for r in ok)
    summary = {"meshes": len(rows), "failed": len(rows) - len(ok),
               "share_below_0.003": sum(s < PAPER_THRESHOLD for s in se) / max(len(ok), 1),
               "median_surface_error": se[len(se) // 2] if se else None,
               "worst_surface_error": se[-1] if se else None,
               "worst_mesh": max(ok, key=lambda r: r["surface_error"])["mesh"] if ok else None,
               "paper": {"share_below_0.003": PAPER_SHARE, "worst": PAPER_WORST}}
    print("\n" + json.dumps(summary))
    if args.plot and ok:
        plot(ok, args.plot)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "summary": summary}, fh, indent=1)


if __name__ == "__main__":
    main()
