"""The images of docs/user-guide.md, made by driving the installed extension in real Blender.

Usage (inside .venv)::

    python -m bench.ui_images [--out docs/images] [--size 240]

It builds the extension with build.py, installs it into a temporary Blender user folder (as a user
does with Install from Disk), builds each scene through ``bpy.ops`` (convert, importance, remesh)
and renders it offscreen through the viewport's own draw path (``ImplicitRenderer.render_offscreen``
with the items the draw handler gets from ``bridge.draw_items``); meshes are rasterised with the same
shading formula (bench/viewport_images.py). About two minutes on two CPU cores with Mesa's llvmpipe.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: Conversion settings of the pictures: smaller than the defaults so the script runs in minutes.
PICTURE = dict(layers=8, hidden=32, pool=2_000_000, samples=400_000, epochs=20, batch_size=2048,
               threads=0, seed=0)
#: Deliberately tiny networks for the importance picture, where the difference must be visible.
TINY = dict(layers=3, hidden=24, pool=300_000, samples=60_000, epochs=8, lr=1e-2, batch_size=512,
            threads=0, seed=0, importance_strength=50.0)
GREY = (0.8, 0.8, 0.8, 1.0)
ORANGE = (0.9, 0.35, 0.05, 1.0)


def install_extension():
    """bpy with the extension installed (bench/gpu_context.py), its GPU context made, and the
    modules the pictures use."""
    from bench.gpu_context import install_extension as install
    return install(("bridge", "viewport", "core.geometry.trace"), gpu=True)


def new_scene(bpy, **settings):
    bpy.ops.wm.read_homefile(use_empty=True)
    s = bpy.context.scene.neural_implicit_settings
    for key, value in settings.items():
        setattr(s, key, value)


def world_mesh(bpy, ni, obj):
    """World-space vertices and triangles of a mesh object with its modifiers, as conversion sees it."""
    arrays = ni.bridge.evaluated_mesh_arrays(obj, bpy.context.evaluated_depsgraph_get())
    return arrays.V, arrays.F


def add_suzanne(bpy, location=(0.0, 0.0, 0.0), subdivide=True):
    """Suzanne, smoothed by a Subdivision Surface modifier (conversion uses the evaluated mesh)."""
    bpy.ops.mesh.primitive_monkey_add(location=location)
    obj = bpy.context.active_object
    if subdivide:
        obj.modifiers.new("Subdivision", 'SUBSURF').levels = 2
    return obj


def render(bpy, ni, width, height, eye, target, meshes=(), fov=35.0):
    """The visible implicits (as the draw handler gets them) and ``meshes`` [(V, F, colour)]."""
    from bench.viewport_images import mesh_drawer, on_background

    tr = ni.trace
    view = tr.look_at(eye, target)
    proj = tr.perspective(np.radians(fov), width / height, 0.1, 100.0)
    drawers = [mesh_drawer(ni, V, F, np.eye(4), view, proj, color) for V, F, color in meshes]

    def before():
        for draw in drawers:
            draw()

    renderer = ni.viewport.ImplicitRenderer()
    try:
        rgba, _ = renderer.render_offscreen(ni.bridge.draw_items(bpy.context), view, proj, width,
                                            height, before=before)
    finally:
        renderer.free()
    return on_background(rgba)


def convert_image(bpy, ni, out, size):
    """Suzanne the mesh (left) and Suzanne converted (right, active: orange outline)."""
    new_scene(bpy, **PICTURE)
    left = add_suzanne(bpy, location=(-1.5, 0.0, 0.0))
    add_suzanne(bpy, location=(1.5, 0.0, 0.0))
    t = time.perf_counter()
    bpy.ops.object.neural_implicit_convert()
    seconds = time.perf_counter() - t
    V, F = world_mesh(bpy, ni, left)
    image = render(bpy, ni, 2 * size, size, (0.0, -7.5, 2.5), (0.0, 0.0, 0.0),
                   meshes=[(V, F, GREY)])
    ni.trace.save_png(image, out / "ui-convert.png")
    return seconds


def importance_image(bpy, ni, out, size):
    """Selected ear (left, orange); tiny networks without (middle) and with (right) that importance."""
    panels = []
    for source in (None, 'NONE', 'SELECTION'):
        new_scene(bpy, **TINY)
        obj = add_suzanne(bpy, subdivide=False)
        V, F = world_mesh(bpy, ni, obj)
        selected = V[:, 0] > 0.95
        obj.data.vertices.foreach_set("select", selected)
        if source is None:
            region = F[selected[F].all(axis=1)]
            meshes = [(V, F, GREY), (V + [0.002, -0.002, 0.0], region, ORANGE)]
        else:
            obj.neural_implicit.importance_source = source
            bpy.ops.object.neural_implicit_convert()
            bpy.data.objects["Suzanne_implicit"].select_set(False)
            meshes = []
        panels.append(render(bpy, ni, size, size, (4.0, -3.0, 1.2), (0.6, 0.0, 0.2),
                             meshes=meshes, fov=28.0))
    ni.trace.save_png(np.concatenate(panels, axis=1), out / "ui-importance.png")


def remesh_image(bpy, ni, out, size, resolution=96):
    """An implicit (left) and its mesh (right): Convert to Mesh with Keep Original."""
    new_scene(bpy, **PICTURE)
    add_suzanne(bpy, location=(-1.5, 0.0, 0.0))
    bpy.ops.object.neural_implicit_convert()
    implicit = bpy.context.active_object
    implicit.select_set(False)
    bpy.ops.object.select_all(action='DESELECT')
    implicit.select_set(True)
    bpy.context.view_layer.objects.active = implicit
    bpy.ops.object.neural_implicit_remesh(resolution=resolution, keep_original=True)
    remeshed = bpy.context.active_object
    remeshed.location.x += 3.0
    bpy.context.view_layer.update()
    implicit.select_set(False)
    V, F = world_mesh(bpy, ni, remeshed)
    image = render(bpy, ni, 2 * size, size, (0.0, -7.5, 2.5), (0.0, 0.0, 0.0), meshes=[(V, F, GREY)])
    ni.trace.save_png(image, out / "ui-remesh.png")
    return len(F)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    ap.add_argument("--size", type=int, default=240, help="image height in pixels")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bpy, ni = install_extension()
    t = time.perf_counter()
    seconds = convert_image(bpy, ni, out, args.size)
    print(f"ui-convert.png (conversion {seconds:.0f} s)", flush=True)
    importance_image(bpy, ni, out, args.size)
    print("ui-importance.png", flush=True)
    faces = remesh_image(bpy, ni, out, args.size)
    print(f"ui-remesh.png ({faces:,} triangles); {time.perf_counter() - t:.0f} s in all", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
