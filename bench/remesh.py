"""Benchmark of sparse remeshing: seconds and network evaluations, sparse vs dense.

Usage::

    python -m bench.remesh [shape.h5] [--resolutions 128 256] [--save-h5 out.h5]

With no file, an 8 x 32 network is trained quickly on ``shared/meshes/spot.obj`` (small settings,
well under 30 s on 2 CPU cores; the fit is rough but the field is a realistic trained network). At the
lowest resolution the dense grid is also meshed, timed and compared with the sparse result, which
must be identical.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from core.remesh import remesh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SPOT = os.path.join(os.path.dirname(ROOT), "shared", "meshes", "spot.obj")


def train_spot(seed: int = 0):
    """An 8 x 32 ReLU network fitted to spot.obj in a few seconds (rough, but a real trained net)."""
    import torch

    from core.implicit import Architecture
    from core.mesh import load_mesh
    from core.model import StackedMLP
    from core.sampling import SignedDistance, importance_sample
    from core.train import TrainConfig, train

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("h5", nargs="?", help="a .h5 network (default: train one on spot.obj)")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--save-h5", help="save the quickly trained network here")
    ap.add_argument("--no-dense", action="store_true", help="skip the dense comparison")
    args = ap.parse_args(argv)

    if args.h5:
        from core.fileformat import load
        implicit = load(args.h5)
        print(f"network: {args.h5} ({implicit.architecture})")
    else:
        t = time.perf_counter()
        implicit, tr = train_spot()
        print(f"network: 8x32 trained on spot.obj in {time.perf_counter() - t:.1f} s "
              f"(final L1 {tr.final_loss[0]:.4f})")
        if args.save_h5:
            from core.fileformat import save
            save(implicit, args.save_h5)

    n = 200_000
    Q = np.random.default_rng(0).uniform(-1, 1, (n, 3))
    t = time.perf_counter()
    implicit.evaluate(Q)
    rate = n / (time.perf_counter() - t)
    print(f"numpy evaluation: {rate / 1e6:.2f} M points/s")

    for i, R in enumerate(args.resolutions):
        r = remesh(implicit, R)
        s = r.stats
        print(f"R={R:5d}  sparse {s['seconds']:6.2f} s  evaluations {s['evaluations']:>11,} of "
              f"{s['dense_evaluations']:>11,} dense  ({s['evaluation_fraction']:.1%}, "
              f"{1 / s['evaluation_fraction']:.1f}x fewer)  {s['vertices']:,} V  {s['faces']:,} F")
        if i == 0 and not args.no_dense:
            d = remesh(implicit, R, dense=True)
            same = (np.array_equal(d.F, r.F) and d.V.shape == r.V.shape
                    and np.allclose(d.V, r.V, atol=1e-9))
            print(f"R={R:5d}  dense  {d.stats['seconds']:6.2f} s  sparse == dense: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
