"""Time to accuracy: error against wall seconds for training recipes on real meshes (issue 15).

    python -m bench.time_to_accuracy                       # the recipes below on five meshes
    python -m bench.time_to_accuracy --meshes bunny.off --recipes paper default
    python -m bench.time_to_accuracy --step-rate           # samples per second of one training step
    python -m bench.time_to_accuracy --json bench/out/time_to_accuracy.json --plot docs/images/x.png

Prints figures, asserts nothing. For each mesh and recipe it draws the training set
(core.training.convert.training_set), trains (core.training.train.train) and after every epoch
measures, with the clock stopped: the surface error (mean |f| at 10^5 surface points), the Chamfer
distance of a 128^3 remesh to the source, and the sign agreement with the winding number at 10^5
uniform points (all in the unit-sphere frame). Seconds are sampling plus training, on ``--threads``
torch threads; it reports the seconds to reach surface error 0.003 and to get within 10 % of the
recipe's final Chamfer. Recipes are ConversionSettings changes over today's defaults; "paper" is the
recipe the defaults were before issue 15 (PyTorch's initialisation, 30 epochs of 1M samples from a
10M pool, batch 4096, peak lr 0.015); "default, uniform init" is today's recipe from PyTorch's
initialisation instead of the sphere; "default, no far samples" without its 2 % of uniform
far-field samples.

--step-rate compares one training step by autograd with torch.optim.Adam (the baseline, run first
in the same process) with core.training.backprop's hand-written step, on random data.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MESHES = os.path.join(ROOT, os.pardir, "shared", "meshes")
DEFAULT_MESHES = ["bunny.off", "spot.obj", "3holes.off", "fandisk.obj", "100173.stl"]

#: Recipes (ConversionSettings changes over the defaults). "paper": the defaults before issue 15.
RECIPES = {
    "paper": {"init": "uniform", "epochs": 30, "samples": 1_000_000, "pool": 10_000_000,
              "batch_size": 4096, "lr": 0.015},
    "default": {},
    "default, uniform init": {"init": "uniform"},
    "default, no far samples": {"far_fraction": 0.0},
}
#: What the default runs use (the last recipe is for thin parts: --meshes 1002_tray_bottom.STL ...).
DEFAULT_RECIPES = ["paper", "default", "default, uniform init"]
SURFACE_TARGET = 0.003
CHAMFER_RESOLUTION = 128


def measure(implicit, mesh, Q, inside) -> dict:
    from core.geometry.metrics import surface_distances, surface_error
    from core.geometry.remesh import remesh

    from core.common.errors import InputError

    err = surface_error(implicit, mesh)
    try:
        rm = remesh(implicit, CHAMFER_RESOLUTION)
        d = surface_distances(mesh, rm.V, rm.F)
    except InputError:                  # no surface yet (early epochs)
        d = None
    f = implicit.evaluate(implicit.to_network(Q))
    return {"surface_error": err, "chamfer": None if d is None else d.chamfer_l1,
            "hausdorff": None if d is None else d.hausdorff,
            "sign_agreement": float(((f < 0) == inside).mean())}


def run(mesh_name: str, recipe: str, changes: dict, threads: int) -> dict:
    import torch

    from core.common.settings import ConversionSettings
    from core.meshes.mesh import load_mesh
    from core.samples.sampling import SignedDistance, uniform_ball
    from core.training.convert import training_set
    from core.training.model import StackedMLP
    from core.training.train import TrainConfig, train, use_threads

    use_threads(threads)
    mesh = load_mesh(os.path.join(MESHES, mesh_name))
    settings = ConversionSettings().replace(**changes)
    T = mesh.normalization()
    mesh_net = mesh.transformed(T)
    Q = mesh.V.mean(0) + uniform_ball(100_000, np.random.default_rng(99)) \
        * np.linalg.norm(mesh.V - mesh.V.mean(0), axis=1).max()
    inside = SignedDistance(mesh.V, mesh.F).inside(Q)

    t0 = time.perf_counter()
    data = training_set(mesh_net, settings, np.random.default_rng(settings.seed))
    sampling = time.perf_counter() - t0
    cfg = TrainConfig.of(settings)
    model = StackedMLP(settings.architecture, 1, torch.Generator().manual_seed(settings.seed), cfg.init)
    curve, paused = [], [0.0]
    t1 = time.perf_counter()

    def checkpoint(epoch, m):
        stop = time.perf_counter()
        row = measure(m.to_implicit(0, transform=T), mesh, Q, inside)
        curve.append({"epoch": epoch, "seconds": sampling + stop - t1 - paused[0], **row})
        paused[0] += time.perf_counter() - stop

    train(model, torch.from_numpy(data.points)[None], torch.from_numpy(data.sdf)[None], cfg,
          seed=settings.seed, on_epoch_end=checkpoint)
    checkpoint(settings.epochs, model)
    final = curve[-1]
    within = [c["seconds"] for c in curve
              if c["chamfer"] is not None and final["chamfer"] is not None
              and c["chamfer"] <= 1.1 * final["chamfer"]]
    reach = [c["seconds"] for c in curve if c["surface_error"] <= SURFACE_TARGET]
    return {"mesh": mesh_name, "recipe": recipe, "changes": changes, "threads": threads,
            "sample_steps": settings.epochs * settings.samples, "seconds_sampling": sampling,
            "seconds": final["seconds"], "final": final,
            "seconds_to_surface_target": reach[0] if reach else None,
            "seconds_to_chamfer_within_10pct": within[0] if within else None,
            "load_average": os.getloadavg()[0], "curve": curve}


def step_rate(threads: int, batch_sizes=(1024, 4096), seconds: float = 3.0) -> list:
    """Samples per second of one training step: autograd + torch.optim.Adam, then
    core.training.backprop."""
    import torch

    from core.representation.implicit import Architecture
    from core.training.backprop import FlatStack, StackAdam, l1
    from core.training.model import StackedMLP
    from core.training.train import use_threads

    use_threads(threads)
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(1, 200_000, 3, generator=gen) * 2 - 1
    Y = X.norm(dim=-1) - 0.5

    def rate(step, bs):
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            s = (n * bs) % (X.shape[1] - bs)
            step(X[:, s:s + bs], Y[:, s:s + bs])
            n += 1
        return n * bs / (time.perf_counter() - t)

    rows = []
    for bs in batch_sizes:
        a = StackedMLP(Architecture(), 1, torch.Generator().manual_seed(1))
        opt = torch.optim.Adam(a.parameters(), lr=1e-3)

        def autograd_step(x, y):
            opt.zero_grad(set_to_none=True)
            (a(x) - y).abs().mean(dim=1).sum().backward()
            opt.step()
        stack = FlatStack(StackedMLP(Architecture(), 1, torch.Generator().manual_seed(1)))
        adam = StackAdam(stack)

        def manual_step(x, y):
            stack.step(x, y, l1)
            adam.step([1e-3], [1])
        base, mine = rate(autograd_step, bs), rate(manual_step, bs)
        rows.append({"batch_size": bs, "threads": threads, "autograd_samples_per_s": base,
                     "backprop_samples_per_s": mine, "ratio": mine / base})
        print(f"batch {bs:5d}, {threads} thread(s): autograd {base / 1e6:.2f} M samples/s, "
              f"core.training.backprop {mine / 1e6:.2f} M samples/s ({mine / base:.2f}x)", flush=True)
    return rows


def _s(x) -> str:
    return "never" if x is None else f"{x:.1f}"


def table(d: dict) -> str:
    """docs/results.md's table of a --json output (bench/make_results.py)."""
    from bench.variants import format_table
    rows = []
    for r in d["runs"]:
        f = r["final"]
        rows.append([r["mesh"], r["recipe"], f"{r['sample_steps'] / 1e6:.1f} M", f"{r['seconds']:.1f}",
                     f"{r['seconds_sampling']:.1f}", _s(r["seconds_to_surface_target"]),
                     _s(r["seconds_to_chamfer_within_10pct"]), f"{f['surface_error']:.5f}",
                     f"{f['chamfer']:.5f}" if f["chamfer"] is not None else "-",
                     f"{f['hausdorff']:.4f}" if f["hausdorff"] is not None else "-",
                     f"{f['sign_agreement']:.4f}", f"{r['load_average']:.1f}"])
    return format_table(["mesh", "recipe", "sample-steps", "seconds", "of which sampling",
                         f"s to surface error {SURFACE_TARGET}", "s to final Chamfer + 10 %",
                         "surface error", f"Chamfer ({CHAMFER_RESOLUTION}³)", "Hausdorff",
                         "sign agreement", "load"], rows)


def step_table(d: dict) -> str:
    """docs/results.md's table of a --step-rate --json output."""
    from bench.variants import format_table
    return format_table(["batch", "threads", "autograd + torch.optim.Adam (M samples/s)",
                         "core.training.backprop (M samples/s)", "ratio"],
                        [[r["batch_size"], r["threads"], f"{r['autograd_samples_per_s'] / 1e6:.2f}",
                          f"{r['backprop_samples_per_s'] / 1e6:.2f}", f"{r['ratio']:.2f}x"]
                         for r in d["step_rate"]])


def plot(results: list, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meshes = sorted({r["mesh"] for r in results}, key=[r["mesh"] for r in results].index)
    fig, axes = plt.subplots(2, len(meshes), figsize=(3.2 * len(meshes), 5.6), squeeze=False)
    for j, mesh in enumerate(meshes):
        for r in (r for r in results if r["mesh"] == mesh):
            t = [c["seconds"] for c in r["curve"]]
            axes[0, j].plot(t, [c["surface_error"] for c in r["curve"]], ".-", label=r["recipe"])
            axes[1, j].plot(t, [c["chamfer"] or np.nan for c in r["curve"]], ".-", label=r["recipe"])
        axes[0, j].axhline(SURFACE_TARGET, color="grey", lw=0.5, ls="--")
        axes[0, j].set_title(mesh, fontsize=9)
        for i in (0, 1):
            axes[i, j].set_yscale("log")
            axes[i, j].set_xlabel("seconds (sampling + training, 1 thread)", fontsize=7)
            axes[i, j].tick_params(labelsize=7)
    axes[0, 0].set_ylabel("surface error")
    axes[1, 0].set_ylabel(f"Chamfer at {CHAMFER_RESOLUTION}^3")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meshes", nargs="+", default=DEFAULT_MESHES)
    ap.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES,
                    help=f"recipe names ({', '.join(RECIPES)}) or NAME=JSON of settings changes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--step-rate", action="store_true", help="only the step-rate comparison")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--plot", help="write the curves here (PNG)")
    args = ap.parse_args(argv)
    if args.step_rate:
        out = {"step_rate": step_rate(args.threads)}
    else:
        results = []
        for mesh in args.meshes:
            for recipe in args.recipes:
                name, _, changes = recipe.partition("=")
                r = run(mesh, name, json.loads(changes) if changes else RECIPES[name], args.threads)
                f = r["final"]
                print(f"{mesh:14s} {r['recipe']:18s} {r['seconds']:6.1f} s (sampling {r['seconds_sampling']:.1f}) "
                      f"surface {f['surface_error']:.5f} Chamfer {f['chamfer'] or float('nan'):.5f} "
                      f"Hausdorff {f['hausdorff'] or float('nan'):.4f} sign {f['sign_agreement']:.4f} "
                      f"to 0.003: {r['seconds_to_surface_target']} s, to Chamfer+10%: "
                      f"{r['seconds_to_chamfer_within_10pct']} s (load {r['load_average']:.1f})",
                      flush=True)
                results.append(r)
        out = {"runs": results}
        if args.plot:
            plot(results, args.plot)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
