"""Benchmark of dataset conversion: one-at-a-time ``convert`` calls versus ``convert-dir``.

Usage::

    python -m bench.dataset [FOLDER ...] [--ks 1 4 16] [--device cpu|cuda] [--repeat R]
                            [--samples 100000] [--pool 1000000] [--epochs 40] [--json OUT.json]

Every mesh under the folders (default ``../shared/meshes``; ``--repeat R`` lists each R times, to fill
large stacks) is converted (1) one at a time with core.training.convert.convert_mesh in this
process, one torch thread, and (2) with core.dataset.convert_dir for each stack size K in ``--ks``
(sampling workers beside the trainer). For each: shapes per hour and the surface-error distribution,
and the largest per-mesh difference from (1). The recipe is the default ConversionSettings except
``--samples``/``--pool`` (default 100k/1M, a tenth of the defaults, so a CPU run takes minutes;
sampling and training shrink alike, so their ratio holds).

With ``--device cuda`` (K up to several hundred) the line "projected" states the time for 10,000
Thingi10K-sized meshes: the slower of training (this run's rate, which does not depend on mesh size)
and sampling (measured seconds per mesh spread over the CPU cores), at the default recipe unless
``--samples``/``--pool`` say otherwise. Shared meshes are smaller than Thingi10K's on average, so the
sampling side is optimistic; the line says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from core.common.settings import ConversionSettings
from core.dataset import convert_dir, find_meshes, read_manifest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHARED_MESHES = os.path.join(os.path.dirname(ROOT), "shared", "meshes")
THINGI10K = 10_000


def stage_inputs(folders, repeat, where):
    """Symlink every mesh of ``folders`` into ``where`` (``repeat`` copies); returns relative paths."""
    rels = []
    for r in range(repeat):
        for i, folder in enumerate(folders):
            for rel in find_meshes(folder):
                dst_rel = f"r{r}/f{i}/{rel}"
                dst = os.path.join(where, dst_rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                os.symlink(os.path.abspath(os.path.join(folder, rel)), dst)
                rels.append(dst_rel)
    return sorted(rels)


def one_at_a_time(in_dir, rels, settings, out_dir):
    """convert_mesh + save for every mesh, in order; returns (seconds, {rel: surface error})."""
    from core.common.errors import InputError
    from core.meshes.mesh import load_mesh
    from core.representation.fileformat import save
    from core.training.convert import convert_mesh

    errors = {}
    t0 = time.perf_counter()
    for rel in rels:
        try:
            result = convert_mesh(load_mesh(os.path.join(in_dir, rel)), settings)
        except InputError:
            continue
        out = os.path.join(out_dir, rel + ".h5")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        save(result.implicit, out)
        errors[rel] = result.surface_error
    return time.perf_counter() - t0, errors


def describe(name, seconds, errors, reference=None, extra=None):
    e = np.array(list(errors.values()))
    d = {"mode": name, "shapes": len(e), "seconds": seconds,
         "shapes_per_hour": len(e) / seconds * 3600, "surface_error_median": float(np.median(e)),
         "surface_error_mean": float(e.mean()), "surface_error_p90": float(np.percentile(e, 90)),
         "surface_error_max": float(e.max())}
    if reference is not None:
        common = sorted(set(errors) & set(reference))
        d["max_abs_difference"] = float(max(abs(errors[k] - reference[k]) for k in common))
    d.update(extra or {})
    return d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", default=[SHARED_MESHES])
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16], help="stack sizes to measure")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--repeat", type=int, default=1, help="list every mesh this many times")
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--pool", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=None, help="default: ConversionSettings' default")
    ap.add_argument("--workers", type=int, default=None, help="sampling workers (default cores - 1)")
    ap.add_argument("--trainers", type=int, default=None, help="trainers (default: convert-dir's)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the one-at-a-time run")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)

    changes = {"samples": args.samples, "pool": args.pool, "device": args.device}
    if args.epochs:
        changes["epochs"] = args.epochs
    settings = ConversionSettings().replace(**changes)
    load_before = os.getloadavg()
    tmp = tempfile.mkdtemp(prefix="bench-dataset-")
    rows = []
    try:
        in_dir = os.path.join(tmp, "in")
        rels = stage_inputs(args.folders, args.repeat, in_dir)
        print(f"{len(rels)} meshes from {', '.join(args.folders)} (x{args.repeat}); "
              f"{os.cpu_count()} CPU cores; load average {load_before[0]:.2f}; recipe "
              f"{settings.layers}x{settings.hidden}, {settings.samples:,} samples, pool "
              f"{settings.pool:,}, {settings.epochs} epochs, batch {settings.batch_size}, "
              f"device {settings.device}", flush=True)
        reference = None
        if not args.no_baseline:
            import torch
            torch.set_num_threads(1)      # 2 threads on a busy 2-core machine spin-wait
            seconds, reference = one_at_a_time(in_dir, rels, settings.replace(threads=1),
                                               os.path.join(tmp, "single"))
            rows.append(describe("one at a time (convert, 1 thread)", seconds, reference))
            print(_line(rows[-1], None), flush=True)
        for k in args.ks:
            out = os.path.join(tmp, f"k{k}")
            s = convert_dir(in_dir, out, settings, shapes_per_batch=k, workers=args.workers,
                            trainers=args.trainers)
            manifest = read_manifest(out)
            errors = {r["path"]: r["surface_error"] for r in manifest.values() if r["status"] == "ok"}
            sampling = [_sampling_seconds(out, r) for r in manifest.values() if r["status"] == "ok"]
            name = f"convert-dir K={k}" + (f", {args.trainers} trainer(s)" if args.trainers else "")
            rows.append(describe(name, s.seconds, errors, reference,
                                 {"failed": s.failed, "mean_sampling_seconds": float(np.mean(sampling))}))
            print(_line(rows[-1], rows[0] if reference else None), flush=True)
        load_after = os.getloadavg()
        print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}"
              + (" (shared, loaded machine: figures are noisy)" if max(load_before[0], load_after[0]) > 1.5
                 else ""))
        if args.device != "cpu":
            best = max((r for r in rows if r["mode"].startswith("convert-dir")),
                       key=lambda r: r["shapes_per_hour"])
            print(_projection(best, settings))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"rows": rows, "load_before": load_before, "load_after": load_after,
                           "cpu_count": os.cpu_count(), "settings": settings.to_dict()}, fh, indent=1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _sampling_seconds(out, row):
    from core.representation.fileformat import load
    return load(os.path.join(out, row["output"])).metadata["timings"]["sampling"]


def _line(r, base):
    speed = f"  {r['shapes_per_hour'] / base['shapes_per_hour']:.2f}x" if base else ""
    diff = f"  max |diff| vs one at a time {r['max_abs_difference']:.2e}" if "max_abs_difference" in r else ""
    return (f"{r['mode']:<36} {r['shapes']:4d} shapes {r['seconds']:8.1f} s "
            f"{r['shapes_per_hour']:8.0f} shapes/h{speed}  surface error median "
            f"{r['surface_error_median']:.5f} mean {r['surface_error_mean']:.5f} "
            f"p90 {r['surface_error_p90']:.5f}{diff}")


def _projection(best, settings):
    cores = os.cpu_count() or 1
    train_hours = THINGI10K / best["shapes_per_hour"]
    sampling_hours = THINGI10K * best["mean_sampling_seconds"] / max(1, cores - 1) / 3600
    return (f"projected for {THINGI10K:,} meshes at this recipe: training {train_hours:.1f} h "
            f"({best['mode']}), sampling {sampling_hours:.1f} h on {cores - 1} CPU workers "
            f"(shared meshes are smaller than Thingi10K's average: sampling is optimistic); "
            f"the run takes about the larger, {max(train_hours, sampling_hours):.1f} h")


if __name__ == "__main__":
    sys.exit(main())
