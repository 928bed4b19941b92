"""Sampling ablation (paper §2.1.2; issue 6, benchmark 4): uniform, DeepSDF-style near-surface
Gaussian and importance sampling at several beta, on the default 8 x 32 network.

    .venv/bin/python -m bench.sampling_ablation [MESH...] [--json out.json] [--plot out.png] [--markdown]

Default mesh: bunny.off. Every variant trains the default recipe (30 epochs, one-cycle 0.015,
batch 4096, 1M samples, threads=1) on a differently drawn training set and is followed epoch by
epoch (surface error on 20,000 surface points, held-out loss on the fixed beta-30 set of
core.geometry.baselines.heldout_set). "Epochs to 0.003" is the first epoch whose surface error is at
most the paper's threshold; "epochs to 110 %" the first within 10 % of the run's final surface
error.
"""

from __future__ import annotations

import argparse
import os
import sys

from bench.variants import OUT, finish, first_epoch_below, format_table, log, run, selected_variants

#: name -> ConversionSettings changes
PURE = {"surface_fraction": 0.0, "far_fraction": 0.0}
VARIANTS = {
    "uniform (beta 0)": {"beta": 0.0, **PURE},
    "DeepSDF-style (90% N(surface, 0.025), 10% uniform)": {"beta": 0.0, "surface_fraction": 0.9,
                                                          "surface_sigma": 0.025, "far_fraction": 0.0},
    "importance beta 10": {"beta": 10.0, **PURE},
    "importance beta 30 (paper)": {"beta": 30.0, **PURE},
    "importance beta 100": {"beta": 100.0, **PURE},
    "default: beta 30 + 25% N(surface, 0.01)": {"far_fraction": 0.0},
    "default + 2% uniform (far_fraction 0.02)": {"far_fraction": 0.02},
    "default + 10% uniform (far_fraction 0.1)": {"far_fraction": 0.1},
}


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meshes = list(dict.fromkeys(r["mesh"] for r in rows))
    fig, axes = plt.subplots(len(meshes), 2, figsize=(10, 3.4 * len(meshes) + 1.0), dpi=100, squeeze=False)
    for ax, mesh in zip(axes, meshes):
        for r in (r for r in rows if r["mesh"] == mesh):
            c = r["curve"]
            ax[0].plot([p["epoch"] for p in c], [p["surface_error"] for p in c], label=r["variant"])
            ax[1].plot([p["epoch"] for p in c], [p["heldout_loss"] for p in c], label=r["variant"])
        ax[0].axhline(0.003, color="k", ls=":", lw=1)
        for a, t in zip(ax, ("surface error (unit sphere)", "held-out loss, beta-30 samples")):
            a.set_yscale("log"); a.set_xlabel("epoch"); a.set_title(f"{mesh}: {t}", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 1.0 / (3.4 * len(meshes) + 1.0), 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.savefig(path); plt.close(fig)



def table(rows, markdown=True):
    head = ["mesh", "sampling", "surface error", "Chamfer", "Hausdorff", "held-out loss", "epochs to 0.003",
            "epochs to 110 %", "sampling s", "load"]
    out = []
    for r in rows:       # recomputed from the stored curve, so the rule of first_epoch_below applies
        to_target, _ = first_epoch_below(r["curve"], "surface_error", 0.003)
        to_110, _ = first_epoch_below(r["curve"], "surface_error", 1.1 * r["curve"][-1]["surface_error"])
        cells = [r["mesh"], r["variant"], f"{r['surface_error']:.5f}", f"{r['chamfer']:.5f}",
                 f"{r['hausdorff']:.4f}", f"{r['heldout_loss']:.5f}", to_target or "never",
                 to_110, f"{r['seconds_sampling']:.0f}", f"{r['load_average']:.1f}"]
        out.append(cells)
    return format_table(head, out, markdown)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("meshes", nargs="*", default=["bunny.off"])
    ap.add_argument("--json"); ap.add_argument("--plot"); ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--log", default=os.path.join(OUT, "sampling_ablation.jsonl"))
    ap.add_argument("--variants", nargs="*", help="names of VARIANTS to run (default all)")
    args = ap.parse_args()
    from core.common.settings import ConversionSettings

    rows, cache = [], {}
    for mesh, name, changes in selected_variants(args, VARIANTS):
        row, _ = run(mesh, ConversionSettings(threads=1).replace(**changes), track=True, heldout_cache=cache)
        row["variant"] = name
        final = row["curve"][-1]["surface_error"]
        row["epochs_to_0.003"], row["seconds_to_0.003"] = first_epoch_below(row["curve"], "surface_error", 0.003)
        row["epochs_to_110pct"], _ = first_epoch_below(row["curve"], "surface_error", 1.1 * final)
        rows.append(row); log(args.log, row)
        print(f"# {mesh} {name}: surface error {row['surface_error']:.5f} CD {row['chamfer']:.5f}",
              file=sys.stderr, flush=True)
    finish(rows, args, table, plot)


if __name__ == "__main__":
    main()
