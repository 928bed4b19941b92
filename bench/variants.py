"""Shared runner of the recipe benchmarks (size sweep, sampling ablation, SIREN/PE, budget
levers): convert one mesh with one variant of the settings and measure it the same way.

Not a script: bench/size_sweep.py, bench/sampling_ablation.py, bench/activations.py and
bench/budget_levers.py import it. Every run is appended to a JSONL log
(bench/out/, git-ignored) so long sweeps can be inspected while they run.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from core.common.errors import InputError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED_MESHES = os.path.normpath(os.path.join(ROOT, os.pardir, "shared", "meshes"))
OUT = os.path.join(HERE, "out")

#: Surface points used to follow the surface error epoch by epoch (cheap: one forward pass).
TRACK_POINTS = 20_000


MESH_EXT = (".obj", ".off", ".ply", ".stl")


def mesh_path(name: str) -> str:
    return name if os.path.exists(name) else os.path.join(SHARED_MESHES, name)


def mesh_paths(names) -> list:
    """Mesh files for command-line ``names``: files, names in ../shared/meshes, folders (every mesh
    file in them) or ``all`` (every shared mesh)."""
    paths = []
    for n in names:
        src = SHARED_MESHES if n == "all" else mesh_path(n)
        if os.path.isdir(src):
            paths += sorted(os.path.join(src, f) for f in os.listdir(src) if f.lower().endswith(MESH_EXT))
        else:
            paths.append(src)
    return paths


def selected_variants(args, variants: dict):
    """(mesh, name, value) for every mesh of ``args.meshes`` and every entry of ``variants`` named in
    ``args.variants`` (all when none is named); an unknown name is an error before anything runs."""
    unknown = set(args.variants or []) - set(variants)
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(sorted(unknown))}")
    for mesh in args.meshes:
        for name, value in variants.items():
            if not args.variants or name in args.variants:
                yield mesh, name, value


def finish(rows, args, table, plot=None, payload=None) -> None:
    """Print the table of ``rows``; with ``args.plot`` draw ``plot(rows, path)``; with ``args.json``
    write ``payload`` (default: the rows)."""
    print(table(rows, args.markdown))
    if plot is not None and getattr(args, "plot", None):
        plot(rows, args.plot)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows if payload is None else payload, fh, indent=1, default=float)


def log(path: str, row: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(row, default=float) + "\n")


def evaluation_cost(implicit, n: int = 200_000, repeats: int = 3) -> float:
    """Microseconds per point of numpy evaluation (single thread as configured), best of repeats."""
    Q = np.random.default_rng(0).uniform(-1, 1, (n, 3)).astype(np.float32)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        implicit.evaluate(Q)
        best = min(best, time.perf_counter() - t)
    return best / n * 1e6


def run(mesh_name: str, settings, refinements=None, track: bool = False, heldout_cache=None) -> dict:
    """Convert ``mesh_name`` with ``settings`` (and core.training.refine.Refinements) and measure
    it.

    track : also follow the surface error and the held-out loss after every epoch (runs the same
        pipeline as core.training.convert.convert_mesh step by step, so that the model is visible
        between epochs; refinements are not supported then).
    Returns a flat dict: the measures of core.geometry.baselines.measure_implicit, times, per-epoch
    seconds, the load average when it started and, when tracking, ``curve`` (per epoch: seconds
    since the start of training, surface error, held-out loss).
    """
    from core.geometry.baselines import heldout_set, measure_implicit
    from core.meshes.mesh import load_mesh
    from core.training.convert import convert_mesh

    mesh = load_mesh(mesh_path(mesh_name))
    if heldout_cache is not None and mesh_name in heldout_cache:
        heldout = heldout_cache[mesh_name]
    else:
        heldout = heldout_set(mesh)
        if heldout_cache is not None:
            heldout_cache[mesh_name] = heldout
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    if track:
        if refinements is not None:
            raise ValueError("tracking does not support refinements")
        implicit, info = _tracked(mesh, settings, heldout)
    else:
        r = convert_mesh(mesh, settings, refinements=refinements)
        implicit = r.implicit
        info = {"seconds_sampling": r.seconds_sampling, "seconds_training": r.seconds_training,
                "epochs_run": r.epochs_run, "final_loss": r.final_loss}
    info["seconds"] = time.perf_counter() - t0
    info["seconds_per_epoch"] = info["seconds_training"] / max(info["epochs_run"], 1)
    try:
        m = measure_implicit(implicit, mesh, heldout=heldout)
    except InputError as e:       # e.g. a collapsed network with no surface: a result, not a crash
        from core.geometry.metrics import surface_error
        m = {"no_surface": str(e), "surface_error": surface_error(implicit, mesh),
             "chamfer": float("nan"), "hausdorff": float("nan"), "p99": float("nan"),
             "heldout_loss": float(np.abs(implicit.evaluate(heldout[0]) - heldout[1]).mean()),
             "grad_median": float("nan"), "weight_bytes": int(implicit.weight_bytes)}
    return {"mesh": os.path.basename(mesh_name), "parameters": implicit.parameters,
            "storage": implicit.storage, "load_average": load, **info, **m,
            "eval_us_per_point": evaluation_cost(implicit)}, implicit


def _tracked(mesh, settings, heldout):
    import torch

    from core.representation.quantize import with_storage
    from core.samples.sampling import sample_surface
    from core.training.convert import training_set
    from core.training.model import StackedMLP
    from core.training.train import TrainConfig, train

    settings = settings.validate()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    t0 = time.perf_counter()
    T = mesh.normalization()
    mesh_net = mesh.transformed(T)
    data = training_set(mesh_net, settings, np.random.default_rng(settings.seed))
    t_sampled = time.perf_counter()
    model = StackedMLP(settings.architecture, 1, torch.Generator().manual_seed(settings.seed))
    S, _ = sample_surface(mesh_net.V, mesh_net.F, TRACK_POINTS, np.random.default_rng(7))
    S = torch.from_numpy(S.astype(np.float32))[None]
    HP = torch.from_numpy(heldout[0])[None]
    HS = torch.from_numpy(heldout[1])
    from core.common.constants import MESH_RADIUS
    curve = []

    def hook(epoch, m):
        with torch.no_grad():
            se = float(m(S).abs().mean()) / MESH_RADIUS          # unit-sphere frame
            ho = float((m(HP)[0] - HS).abs().mean())
        curve.append({"epoch": epoch, "seconds": time.perf_counter() - t_sampled,
                      "surface_error": se, "heldout_loss": ho})
        return None

    cfg = TrainConfig(epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
                      schedule=settings.schedule, patience=settings.patience)
    result = train(model, torch.from_numpy(data.points)[None], torch.from_numpy(data.sdf)[None], cfg,
                   seed=settings.seed, on_epoch_end=hook)
    hook(result.epochs_run, model)                                 # the last epoch too
    t_trained = time.perf_counter()
    implicit = with_storage(model.to_implicit(0, transform=T), settings.dtype)
    return implicit, {"seconds_sampling": t_sampled - t0, "seconds_training": t_trained - t_sampled,
                      "epochs_run": result.epochs_run, "final_loss": float(result.final_loss[0]),
                      "curve": curve}


def first_epoch_below(curve, key: str, threshold: float):
    """(epoch, seconds) from which ``key`` stays at or below ``threshold`` to the end, or (None, None).

    "Stays", not "first falls": early in training a field that is nearly zero everywhere has a tiny
    surface error, so the first dip below a threshold can be an artefact of a flat field."""
    hit = (None, None)
    for c in reversed(curve):
        if c[key] > threshold:
            break
        hit = (c["epoch"], c["seconds"])
    return hit


def format_table(head, rows, markdown: bool = True) -> str:
    """A table of ``rows`` (lists of cells) under ``head``: Markdown, or aligned plain text."""
    if markdown:
        lines = ["| " + " | ".join(map(str, head)) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    else:
        lines = ["  ".join(f"{c!s:>12}" for c in r) for r in [head, *rows]]
    return "\n".join(lines)
