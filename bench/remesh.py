"""Benchmark of sparse remeshing: seconds and network evaluations, against a previous implementation.

Usage::

    python -m bench.remesh [shape.h5] [--resolutions 128 256 512] [--runs 3] [--reference HEAD]

With no file, an 8 x 32 network is trained quickly on ``shared/meshes/spot.obj`` (small settings,
well under 30 s on 2 CPU cores; the fit is rough but the field is a realistic trained network).

For each resolution: the median of ``--runs`` wall-clock seconds of ``core.geometry.remesh.remesh``
(and of the process's CPU seconds, less disturbed by other processes on a shared machine), the
network evaluations, and the same for the previous implementation, ``core/geometry/remesh.py`` and
``core/geometry/marching_cubes.py`` as committed at ``--reference`` (read with ``git show``, run in
this process on the same network, alternating with the current one), with the ratio and whether both
meshes are the same. At the lowest resolution the dense grid is also meshed and compared with the
sparse result, which must be identical. The load average is printed: on a busy machine the seconds
are not comparable with an idle one's, the ratio still is.

Run it with one thread (``OMP_NUM_THREADS=1``): that is the figure the remesher is held to.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import time

from pathlib import Path

import numpy as np

from core.geometry.remesh import remesh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SPOT = os.path.join(os.path.dirname(ROOT), "shared", "meshes", "spot.obj")


def train_spot(seed: int = 0):
    """An 8 x 32 ReLU network fitted to spot.obj in a few seconds (rough, but a real trained net)."""
    import torch

    from core.meshes.mesh import load_mesh
    from core.representation.implicit import Architecture
    from core.samples.sampling import SignedDistance, importance_sample
    from core.training.model import StackedMLP
    from core.training.train import TrainConfig, train

    torch.set_num_threads(1)        # 2 threads on a busy 2-core machine spin-wait: ~100x slower
    torch.manual_seed(seed)
    mesh = load_mesh(SPOT)
    T = mesh.normalization()
    net = mesh.transformed(T)
    rng = np.random.default_rng(seed)
    samples = importance_sample(SignedDistance(net.V, net.F), beta=30.0, pool=400_000,
                                samples=150_000, rng=rng)
    model = StackedMLP(Architecture(8, 32), 1, torch.Generator().manual_seed(seed))
    P = torch.from_numpy(np.ascontiguousarray(samples.points, dtype=np.float32))[None]
    Y = torch.from_numpy(np.ascontiguousarray(samples.sdf, dtype=np.float32))[None]
    result = train(model, P, Y, TrainConfig(epochs=12, batch_size=2048, lr=3e-3), seed=seed)
    return model.to_implicit(transform=T), result


def previous_remesh(rev: str):
    """``remesh`` of git revision ``rev`` with that revision's marching cubes, loaded as private
    modules (``core._previous_*``) whose other imports are today's modules of the same name (found
    under core/ by name, so a revision from before core/ was grouped into packages loads too);
    None (with the reason printed) outside a git checkout or when the revision lacks them."""
    where = {p.stem: ".".join(p.relative_to(ROOT).with_suffix("").parts)
             for p in Path(ROOT, "core").rglob("*.py")}
    sources = {}
    for name in ("marching_cubes", "remesh"):
        for path in (f"core/geometry/{name}.py", f"core/{name}.py"):
            try:
                sources[name] = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT,
                                               capture_output=True, text=True, check=True).stdout
                break
            except (OSError, subprocess.CalledProcessError) as e:
                reason = e
        else:
            print(f"no reference: cannot read core/{name}.py at {rev} ({reason})")
            return None

    def absolute(match):
        name = match.group(3)
        target = "core._previous_marching_cubes" if name == "marching_cubes" else where.get(name)
        return f"{match.group(1)}from {target or 'core.' + name} import"

    modules = {}
    for name in ("marching_cubes", "remesh"):
        full = f"core._previous_{name}"
        source = re.sub(r"^(\s*)from (\.+)(\w+) import", absolute, sources[name], flags=re.M)
        source = re.sub(r"^(\s*)from \.+ import", r"\1from core import", source, flags=re.M)
        spec = importlib.util.spec_from_loader(full, loader=None)
        module = importlib.util.module_from_spec(spec)
        module.__package__ = "core"
        sys.modules[full] = module
        exec(compile(source, f"{rev}:core/{name}.py", "exec"), module.__dict__)
        modules[name] = module
    return modules["remesh"].remesh


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def same_mesh(a, b) -> bool:
    return (np.array_equal(a.F, b.F) and a.V.shape == b.V.shape
            and np.allclose(a.V, b.V, rtol=0, atol=1e-9))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("h5", nargs="?", help="a .h5 network (default: train one on spot.obj)")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--runs", type=int, default=3, help="runs per resolution (median reported)")
    ap.add_argument("--reference", default="HEAD",
                    help="git revision of the previous implementation to compare with")
    ap.add_argument("--no-reference", action="store_true", help="time the current code only")
    ap.add_argument("--save-h5", help="save the quickly trained network here")
    ap.add_argument("--no-dense", action="store_true", help="skip the dense comparison")
    args = ap.parse_args(argv)

    if args.h5:
        from core.representation.fileformat import load
        implicit = load(args.h5)
        print(f"network: {args.h5} ({implicit.architecture})")
    else:
        t = time.perf_counter()
        implicit, tr = train_spot()
        print(f"network: 8x32 trained on spot.obj in {time.perf_counter() - t:.1f} s "
              f"(final L1 {tr.final_loss[0]:.4f})")
        if args.save_h5:
            from core.representation.fileformat import save
            save(implicit, args.save_h5)
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    previous = None if args.no_reference else previous_remesh(args.reference)

    n = 200_000
    Q = np.random.default_rng(0).uniform(-1, 1, (n, 3))
    t = time.perf_counter()
    implicit.evaluate(Q)
    rate = n / (time.perf_counter() - t)
    print(f"numpy evaluation (Implicit.evaluate): {rate / 1e6:.2f} M points/s")

    remesh(implicit, min(args.resolutions))                # warm up (imports, caches)
    for i, R in enumerate(args.resolutions):
        new, old = [], []
        for _ in range(args.runs):                          # alternate: both see the same load
            r, wall, cpu = timed(remesh, implicit, R)
            new.append((wall, cpu))
            if previous is not None:
                p, wall, cpu = timed(previous, implicit, R)
                old.append((wall, cpu))
        wall, cpu = np.median(new, axis=0)
        s = r.stats
        line = (f"R={R:5d}  {wall:6.3f} s (CPU {cpu:6.3f} s)  evaluations {s['evaluations']:>10,} "
                f"({s['evaluation_fraction']:.1%} of dense)  {s['vertices']:,} V  {s['faces']:,} F")
        if previous is not None:
            old_wall, old_cpu = np.median(old, axis=0)
            line += (f"\n         previous ({args.reference}) {old_wall:6.3f} s (CPU {old_cpu:6.3f} s)"
                     f"  evaluations {p.stats['evaluations']:>10,}  ratio {old_wall / wall:.2f}x "
                     f"(CPU {old_cpu / cpu:.2f}x)  same mesh: {same_mesh(r, p)}")
        print(line + f"\n         load average {os.getloadavg()[0]:.2f}", flush=True)
        if i == 0 and not args.no_dense:
            d, wall, _ = timed(remesh, implicit, R, dense=True)
            print(f"R={R:5d}  dense  {wall:6.2f} s  sparse == dense: {same_mesh(d, r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
