"""The images of the user guide's CSG section: each operation drawn by the viewport's CSG shader.

Usage::

    python -m bench.csg_images [--out docs/images] [--size 256]

spot.obj (the cow) and an icosphere are converted with small settings (a few minutes on 2 CPU
cores, one torch thread; ``--cache DIR`` keeps them for the next run), the ball is placed over the
cow's back, and ``csg-<operation>.png`` shows ``spot <operation> ball`` for each of
core.geometry.csg.OPERATIONS, drawn by ``ImplicitRenderer.render_offscreen`` (the viewport's draw
path); ``csg-operands.png`` shows the two operands alone.
Each image is also traced with the numpy reference (core.geometry.trace) and the agreement is
printed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

import numpy as np


from bench.gpu_context import ROOT, SHARED, addon_modules, start_blender
from bench.viewport_images import on_background, translate

#: Blend radius of the smooth operations, in scene units (the cow is about 1.7 units long).
BLEND = 0.12
#: Ball centre and camera position in units of the cow's bounding diameter (cow centred at 0).
BALL_CENTRE = (0.08, -0.08, 0.1)
EYE = (1.8, -0.9, 0.75)
SPOT_COLOR = (0.8, 0.8, 0.8, 1.0)
BALL_COLOR = (0.35, 0.55, 0.8, 1.0)


def convert(mesh, **settings):
    """core.training.convert.convert_mesh with one torch thread and the given settings."""
    convert_mod = importlib.import_module("neural_implicit_dev.core.training.convert")
    settings_mod = importlib.import_module("neural_implicit_dev.core.common.settings")
    return convert_mod.convert_mesh(mesh, settings_mod.ConversionSettings(
        batch_size=2048, threads=1, seed=0, **settings))


def convert_networks(ni):
    """spot.obj (8 x 32, 30 epochs) and an icosphere (4 x 32, 10 epochs), converted here."""
    mesh_mod = importlib.import_module("neural_implicit_dev.core.meshes.mesh")
    spot = convert(ni.mesh.load_mesh(str(SHARED / "meshes" / "spot.obj")),
                   pool=2_000_000, samples=400_000, epochs=30)
    V, F = mesh_mod.icosphere(4)
    ball = convert(mesh_mod.mesh_from_arrays(V, F, name="ball"), layers=4, pool=400_000,
                   samples=100_000, epochs=10)
    return spot, ball


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    ap.add_argument("--size", type=int, default=256, help="image width and height")
    ap.add_argument("--cache", default=None,
                    help="folder to keep the two converted networks in (.h5) between runs")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    start_blender()
    ni = addon_modules()
    csg = importlib.import_module("neural_implicit_dev.core.geometry.csg")
    networks = {}
    paths = {n: os.path.join(args.cache, f"csg-{n}.h5") for n in ("spot", "ball")} if args.cache \
        else {}
    if paths and all(os.path.exists(p) for p in paths.values()):
        networks = {n: ni.fileformat.load(p) for n, p in paths.items()}
    else:
        t = time.perf_counter()
        spot, ball = convert_networks(ni)
        print(f"converted in {time.perf_counter() - t:.0f} s; surface errors spot "
              f"{spot.surface_error:.4f}, ball {ball.surface_error:.4f}", flush=True)
        networks = {"spot": spot.implicit, "ball": ball.implicit}
        if paths:
            os.makedirs(args.cache, exist_ok=True)
            for n, p in paths.items():
                ni.fileformat.save(networks[n], p)
    spot, ball = networks["spot"], networks["ball"]

    # spot.obj is Y-up: stand the cow on the ground (Z-up), its centre at the origin; the ball
    # (radius 1 in its mesh frame) sits on its back
    upright = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    centre_net = np.linalg.inv(spot.transform)[:3, 3]           # the mesh-frame centre of the cow
    spot_world = upright @ translate(*(-centre_net))
    size = 2.0 * 0.9 / spot.scale                                 # the cow's bounding diameter
    radius = 0.2 * size
    ball_world = translate(*(np.array(BALL_CENTRE) * size)) @ np.diag([radius] * 3 + [1.0])
    tr = ni.trace
    view = tr.look_at(np.array(EYE) * size, (0.0, 0.0, 0.0))
    proj = tr.perspective(np.radians(30.0), 1.0, 0.05, 100.0)
    renderer = ni.viewport.ImplicitRenderer()
    vp = ni.viewport

    items = [vp.DrawItem("spot", spot, spot_world, SPOT_COLOR),
             vp.DrawItem("ball", ball, ball_world, BALL_COLOR)]
    rgba, _ = renderer.render_offscreen(items, view, proj, args.size, args.size)
    tr.save_png(on_background(rgba), os.path.join(args.out, "csg-operands.png"))
    for op in csg.OPERATIONS:
        blend = BLEND if op in csg.SMOOTH else 0.0
        shape = csg.csg(spot, spot_world, (op, csg.csg(ball, ball_world), blend))
        item = vp.DrawItem(f"csg-{op}", shape, np.eye(4), SPOT_COLOR)
        t = time.perf_counter()
        rgba, depth = renderer.render_offscreen([item], view, proj, args.size, args.size)
        seconds = time.perf_counter() - t
        ref = tr.trace([item], view, proj, args.size, args.size, vp.ViewportSettings())
        gpu_mask = depth < 1
        iou = (gpu_mask & ref.coverage).sum() / max((gpu_mask | ref.coverage).sum(), 1)
        both = gpu_mask & ref.hit
        path = os.path.join(args.out, f"csg-{op.replace('_', '-')}.png")
        tr.save_png(on_background(rgba), path)
        print(f"{path}: GPU {seconds:.1f} s, IoU with numpy {iou:.4f}, max depth difference "
              f"{np.abs(depth[both] - ref.depth[both]).max():.1e}", flush=True)
    renderer.free()
    return 0


if __name__ == "__main__":
    sys.exit(main())
