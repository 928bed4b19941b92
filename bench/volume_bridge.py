"""Geometry Nodes bridge: does a baked implicit survive Blender's Grid to Mesh?

Usage::

    .venv/bin/python -m bench.volume_bridge [--weights W.h5 --mesh M.stl] [--resolutions 64 128 256]

Builds and installs the extension into a temporary user folder (as bench/ui_images.py does),
loads a paper network (default 50736) as an implicit object, bakes it with "Bake Neural Implicit to
Volume" at the voxel size of ``core.geometry.remesh`` at each resolution (``2 / (R * scale)``),
meshes the volume with a Geometry Nodes modifier (Object Info -> Get Named Grid "distance" -> Grid
to Mesh, evaluated by the depsgraph) and prints the Chamfer L1 distance (unit-sphere frame,
core.geometry.metrics.surface_distances) of that mesh and of ``core.geometry.remesh.remesh(implicit,
R)`` against the source mesh, and their ratio. The issue's target: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def install_extension():
    """bpy with the extension installed (bench/gpu_context.py) and the modules this bench uses."""
    from bench.gpu_context import install_extension as install
    bpy, mods = install(("bridge", "volume_ops", "core.geometry.metrics", "core.geometry.remesh",
                         "core.meshes.mesh",
                         "core.representation.paper_import"))
    return bpy, vars(mods)


def triangles(obj, depsgraph):
    """World-space vertices and triangles of ``obj``'s evaluated mesh."""
    ev = obj.evaluated_get(depsgraph)
    me = ev.to_mesh()
    me.calc_loop_triangles()
    V = np.empty(len(me.vertices) * 3)
    me.vertices.foreach_get("co", V)
    F = np.empty(len(me.loop_triangles) * 3, dtype=np.int64)
    me.loop_triangles.foreach_get("vertices", F)
    ev.to_mesh_clear()
    M = np.array(obj.matrix_world)
    return V.reshape(-1, 3) @ M[:3, :3].T + M[:3, 3], F.reshape(-1, 3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(SHARED / "paper-weights" / "50736_sf.h5"))
    ap.add_argument("--mesh", default=str(SHARED / "meshes" / "50736.stl"))
    ap.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--samples", type=int, default=100_000, help="Chamfer samples per surface")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    bpy, m = install_extension()
    mesh = m["mesh"].load_mesh(args.mesh)
    implicit = m["paper_import"].load_paper_weights(args.weights, mesh)
    rows = []
    print(f"{'R':>5} {'voxel':>9} {'band voxels':>12} {'bake s':>7} {'GN s':>6} "
          f"{'Chamfer GN':>11} {'Chamfer remesh':>15} {'ratio':>6}")
    for R in args.resolutions:
        bpy.ops.wm.read_homefile(use_empty=True)
        obj = m["bridge"].new_implicit_object(Path(args.weights).stem, implicit)
        m["bridge"].make_active(bpy.context.view_layer, obj)
        voxel = 2.0 * implicit.bound_radius / implicit.scale / R
        t0 = time.perf_counter()
        assert bpy.ops.object.neural_implicit_bake_volume(voxel_size=voxel) == {'FINISHED'}
        t_bake = time.perf_counter() - t0
        vobj = bpy.context.active_object
        grid = m["volume_ops"].openvdb_module().readAll(bpy.path.abspath(vobj.data.filepath))[0][0]
        gn = bpy.data.objects.new("gn", bpy.data.meshes.new("gn"))
        bpy.context.scene.collection.objects.link(gn)
        gn.matrix_world = vobj.matrix_world
        gn.modifiers.new("bridge", 'NODES').node_group = m["volume_ops"].grid_to_mesh_group(vobj)
        t0 = time.perf_counter()
        V, F = triangles(gn, bpy.context.evaluated_depsgraph_get())
        t_gn = time.perf_counter() - t0
        d_gn = m["metrics"].surface_distances(mesh, V, F, n=args.samples).chamfer_l1
        r = m["remesh"].remesh(implicit, resolution=R)
        d_re = m["metrics"].surface_distances(mesh, r.V, r.F, n=args.samples).chamfer_l1
        row = {"resolution": R, "voxel_size": voxel, "active_voxels": int(grid.activeVoxelCount()),
               "bake_seconds": t_bake, "grid_to_mesh_seconds": t_gn, "chamfer_grid_to_mesh": d_gn,
               "chamfer_remesh": d_re, "ratio": d_gn / d_re, "faces_grid_to_mesh": int(len(F)),
               "faces_remesh": int(len(r.F))}
        rows.append(row)
        print(f"{R:>5} {voxel:>9.5f} {row['active_voxels']:>12,} {t_bake:>7.1f} {t_gn:>6.2f} "
              f"{d_gn:>11.6f} {d_re:>15.6f} {d_gn / d_re:>6.3f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(r["ratio"] <= 1.5 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
