"""The images of docs/viewport.md: neural implicits drawn by the viewport shader beside their meshes.

Usage::

    python -m bench.viewport_images [--out docs/images] [--size 256] [--no-convert]

For each of the paper's released networks in ../shared/paper-weights (with the matching mesh of
../shared/meshes) and for spot.obj converted here with small settings (about a minute on 2 CPU
cores), one PNG shows the source mesh (left, rasterised with the shader's own shading formula and
flat normals) and the implicit (right, drawn by ``ImplicitRenderer.render_offscreen``, the viewport's
draw path). ``viewport_scene.png`` shows depth-correct mixing with a mesh, several transforms and the
selection outline; ``viewport_gpu_vs_numpy.png`` shows the shader beside the numpy reference tracer.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


from bench.gpu_context import ROOT, SHARED, addon_modules, start_blender

PAPER_SHAPES = ("100173", "50736", "63451", "40921", "679615")
BACKGROUND = (0.23, 0.23, 0.23)     # close to Blender's default viewport grey (display space)
COLOR = (0.8, 0.8, 0.8, 1.0)        # Blender's default material grey (scene-linear)


def mesh_drawer(ni, V_mesh, F, matrix_world, view, proj, color):
    """A callable drawing a triangle mesh with flat normals and the viewport's shading formula."""
    import gpu
    import mathutils
    from gpu_extras.batch import batch_for_shader

    P = V_mesh[F].reshape(-1, 3) @ matrix_world[:3, :3].T + matrix_world[:3, 3]     # world, unwelded
    tri = P.reshape(-1, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
    n_view = np.repeat(n @ np.linalg.inv(view[:3, :3]), 3, axis=0)                  # inverse-transpose
    p_view = P @ view[:3, :3].T + view[:3, 3]

    iface = gpu.types.GPUStageInterfaceInfo("ni_mesh_iface")
    iface.smooth('VEC3', "v_normal")
    iface.smooth('VEC3', "v_view")
    info = gpu.types.GPUShaderCreateInfo()
    info.push_constant('MAT4', "view_projection")
    info.push_constant('VEC4', "color")
    info.push_constant('FLOAT', "ortho")
    info.vertex_in(0, 'VEC3', "pos")
    info.vertex_in(1, 'VEC3', "nrm")
    info.vertex_in(2, 'VEC3', "vpos")
    info.vertex_out(iface)
    info.fragment_out(0, 'VEC4', "fragColor")
    info.vertex_source("""
void main()
{
  v_normal = nrm;
  v_view = vpos;
  gl_Position = view_projection * vec4(pos, 1.0);
}
""")
    ortho = 1.0 if abs(proj[3, 3] - 1.0) < 1e-12 else 0.0
    info.fragment_source(ni.viewport.shading_glsl() + f"""
void main()
{{
  vec3 v = ortho > 0.5 ? vec3(0.0, 0.0, 1.0) : normalize(-v_view);
  vec3 n = normalize(v_normal);
  n = dot(n, v) < 0.0 ? -n : n;   /* two-sided: open meshes and flipped faces */
  fragColor = vec4(ni_shade(n, v, color.rgb), color.a);
}}
""")
    shader = gpu.shader.create_from_info(info)
    batch = batch_for_shader(shader, 'TRIS', {"pos": P.astype(np.float32).tolist(),
                                              "nrm": n_view.astype(np.float32).tolist(),
                                              "vpos": p_view.astype(np.float32).tolist()})
    VP = mathutils.Matrix((proj @ view).tolist())

    def draw():
        gpu.state.depth_test_set('LESS_EQUAL')
        gpu.state.depth_mask_set(True)
        shader.bind()
        shader.uniform_float("view_projection", VP)
        shader.uniform_float("color", color)
        shader.uniform_float("ortho", ortho)
        batch.draw(shader)
        gpu.state.depth_test_set('NONE')
    return draw


def on_background(rgba):
    a = rgba[..., 3:4]
    return np.concatenate([rgba[..., :3] * a + np.asarray(BACKGROUND) * (1 - a),
                           np.ones_like(a)], axis=-1)


def translate(x, y=0.0, z=0.0):
    M = np.eye(4)
    M[:3, 3] = (x, y, z)
    return M


def side_by_side(ni, renderer, name, mesh, implicit, out, size):
    """mesh (left) | implicit (right), both placed so their network frames are unit balls, seen with
    an orthographic camera."""
    tr = ni.trace
    width, height = 2 * size, size
    # orthographic, so both copies are seen from the same direction (no perspective difference)
    view = tr.look_at((0.0, -10.0, 4.2), (0.0, 0.0, 0.0))
    proj = tr.orthographic(1.15, width / height, 0.1, 100.0)
    T = implicit.transform
    draw_mesh = mesh_drawer(ni, mesh.V, mesh.F, translate(-1.15) @ T, view, proj, COLOR)
    item = ni.viewport.DrawItem(name, implicit, translate(1.15) @ T, COLOR)
    t = time.perf_counter()
    rgba, _ = renderer.render_offscreen([item], view, proj, width, height, before=draw_mesh)
    path = os.path.join(out, f"viewport_{name}.png")
    tr.save_png(on_background(rgba), path)
    return path, time.perf_counter() - t


def quick_spot(ni):
    """spot.obj converted with small settings (rough but real):
    core.training.convert.convert_mesh."""
    import importlib
    convert = importlib.import_module("neural_implicit_dev.core.training.convert")
    settings_mod = importlib.import_module("neural_implicit_dev.core.common.settings")
    mesh = ni.mesh.load_mesh(str(SHARED / "meshes" / "spot.obj"))
    settings = settings_mod.ConversionSettings(pool=1_000_000, samples=200_000, epochs=15,
                                               batch_size=2048, threads=1, seed=0)
    result = convert.convert_mesh(mesh, settings)
    return mesh, result


def scene_image(ni, renderer, shapes, out, size):
    """Two implicits (one stretched, one active with its outline) cut by a mesh plane."""
    tr = ni.trace
    width, height = 2 * size, size
    view = tr.look_at((0.5, -6.0, 2.2), (0.0, 0.0, 0.1))
    proj = tr.perspective(np.radians(32.0), width / height, 0.1, 100.0)
    (na, ma, ia), (nb, mb, ib) = shapes
    stretch = translate(-1.2, 0.3, 0.0) @ np.diag([0.8, 0.8, 1.35, 1.0]) @ ia.transform
    placed = translate(1.15, 0.0, 0.0) @ ib.transform
    items = [ni.viewport.DrawItem(na, ia, stretch, (0.8, 0.45, 0.3, 1.0)),
             ni.viewport.DrawItem(nb, ib, placed, (0.35, 0.55, 0.8, 1.0), True, True)]
    # a horizontal plane through both, drawn as a mesh
    z = -0.3
    Vp = np.array([[-3.0, -1.5, z], [3.0, -1.5, z], [3.0, 1.5, z], [-3.0, 1.5, z]])
    Fp = np.array([[0, 1, 2], [0, 2, 3]])
    plane = mesh_drawer(ni, Vp, Fp, np.eye(4), view, proj, (0.55, 0.55, 0.5, 1.0))
    rgba, _ = renderer.render_offscreen(items, view, proj, width, height, before=plane)
    path = os.path.join(out, "viewport_scene.png")
    tr.save_png(on_background(rgba), path)
    return path


def gpu_vs_numpy(ni, renderer, name, implicit, out, size):
    tr = ni.trace
    view = tr.look_at((1.6, -2.4, 1.3), (0.0, 0.0, 0.0))
    proj = tr.perspective(np.radians(40.0), 1.0, 0.1, 100.0)
    item = ni.viewport.DrawItem(name, implicit, implicit.transform, COLOR)
    rgba, depth = renderer.render_offscreen([item], view, proj, size, size)
    ref = tr.trace([item], view, proj, size, size)
    gpu_mask = depth < 1
    iou = (gpu_mask & ref.coverage).sum() / (gpu_mask | ref.coverage).sum()
    both = gpu_mask & ref.hit
    image = np.concatenate([on_background(rgba), on_background(ref.rgba)], axis=1)
    path = os.path.join(out, "viewport_gpu_vs_numpy.png")
    tr.save_png(image, path)
    return path, float(iou), float(np.abs(depth[both] - ref.depth[both]).max()), \
        float(np.abs(rgba[both, :3] - ref.rgba[both, :3]).max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    ap.add_argument("--size", type=int, default=256, help="image height (width is twice that)")
    ap.add_argument("--no-convert", action="store_true", help="skip converting spot.obj")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    start_blender()
    ni = addon_modules()
    renderer = ni.viewport.ImplicitRenderer()
    shapes = []
    for sid in PAPER_SHAPES:
        mesh = ni.mesh.load_mesh(str(SHARED / "meshes" / f"{sid}.stl"))
        implicit = ni.paper_import.load_paper_weights(
            str(SHARED / "paper-weights" / f"{sid}_sf.h5"), mesh)
        shapes.append((sid, mesh, implicit))
    if not args.no_convert:
        t = time.perf_counter()
        mesh, result = quick_spot(ni)
        print(f"spot.obj converted in {time.perf_counter() - t:.0f} s, surface error "
              f"{result.surface_error:.4f}", flush=True)
        shapes.append(("spot", mesh, result.implicit))
    for name, mesh, implicit in shapes:
        path, seconds = side_by_side(ni, renderer, name, mesh, implicit, args.out, args.size)
        print(f"{path}: {seconds:.1f} s", flush=True)
    print(scene_image(ni, renderer, [shapes[0], shapes[1]], args.out, args.size))
    path, iou, depth_err, color_err = gpu_vs_numpy(ni, renderer, shapes[0][0], shapes[0][2],
                                                   args.out, args.size)
    print(f"{path}: IoU {iou:.4f}, max depth difference {depth_err:.2e}, "
          f"max colour difference {color_err:.2e}")
    renderer.free()
    return 0


if __name__ == "__main__":
    sys.exit(main())
