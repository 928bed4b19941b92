"""The Geometry Nodes bridge in real Blender (neural_implicit_addon/volume_ops.py).

A paper network (50736, 8 x 32) is baked to a Volume; the .vdb holds a float level set named
"distance" that Geometry Nodes' Get Named Grid -> Grid to Mesh turns into a mesh within 1.5 times the
Chamfer distance of the network's own remesh at the same lattice (the issue's target). The reverse:
a level set made by Geometry Nodes (Mesh to SDF Grid on an icosphere) trains an implicit that lies
where the volume is. Errors reach the user as reports.
"""

import importlib
import os
from pathlib import Path

import numpy as np
import pytest

from .scenes import OLD_START, new_scene

PAPER = "/work/shared/paper-weights/50736_sf.h5"
PAPER_MESH = "/work/shared/meshes/50736.stl"
#: The issue's target: Grid to Mesh of the baked level set against core.geometry.remesh at the same
#: lattice.
TARGET_RATIO = 1.5


class NI:
    def __init__(self, blender):
        self.bpy = blender.bpy
        for name in ("bridge", "volume_ops", "core.geometry.metrics", "core.geometry.remesh",
                     "core.meshes.mesh",
                     "core.representation.paper_import"):
            setattr(self, "core_" * ("." in name) + name.rpartition(".")[2],
                    importlib.import_module(f"{blender.package}.{name}"))


@pytest.fixture(scope="module")
def ni(blender):
    ni = NI(blender)
    if not hasattr(ni.bpy.types, "OBJECT_OT_neural_implicit_bake_volume"):
        ni.volume_ops.register()       # until __init__.py registers the module itself
    return ni


def paper_object(ni, location=(0.0, 0.0, 0.0)):
    """The paper network as an implicit object whose source mesh is in world coordinates."""
    mesh = ni.core_mesh.load_mesh(PAPER_MESH)
    implicit = ni.core_paper_import.load_paper_weights(PAPER, mesh)
    obj = ni.bridge.new_implicit_object("paper", implicit)
    obj.location = tuple(np.array(obj.location) + np.asarray(location))
    ni.bridge.make_active(ni.bpy.context.view_layer, obj)
    return obj, mesh, implicit


def evaluated_triangles(obj, depsgraph):
    ev = obj.evaluated_get(depsgraph)
    me = ev.to_mesh()
    try:
        me.calc_loop_triangles()
        V = np.empty(len(me.vertices) * 3)
        me.vertices.foreach_get("co", V)
        F = np.empty(len(me.loop_triangles) * 3, dtype=np.int64)
        me.loop_triangles.foreach_get("vertices", F)
    finally:
        ev.to_mesh_clear()
    M = np.array(obj.matrix_world)
    V = V.reshape(-1, 3) @ M[:3, :3].T + M[:3, 3]
    return V, F.reshape(-1, 3)


def test_bake_writes_a_level_set_that_grid_to_mesh_meshes_like_remesh(ni, tmp_path):
    bpy = ni.bpy
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    obj, mesh, implicit = paper_object(ni)
    assert bpy.ops.object.neural_implicit_bake_volume() == {'FINISHED'}
    vobj = bpy.context.active_object
    assert vobj.type == 'VOLUME' and vobj is not obj
    np.testing.assert_allclose(np.array(vobj.matrix_world), np.array(obj.matrix_world))
    path = bpy.path.abspath(vobj.data.filepath)
    assert Path(path).parent == tmp_path / ni.volume_ops.VOLUME_FOLDER and os.path.isfile(path)
    assert vobj.data.filepath.startswith("//")           # relative to the saved .blend

    vdb = ni.volume_ops.openvdb_module()
    grids, _ = vdb.readAll(path)
    [grid] = grids
    assert grid.name == "distance" and grid.gridClass == vdb.GridClass.LEVEL_SET
    h = 2.0 / implicit.scale / 128
    np.testing.assert_allclose(grid.transform.voxelSize(), (h, h, h), rtol=1e-6)
    np.testing.assert_allclose(grid.background, 3 * h, rtol=1e-6)
    # a voxel's stored value is the network's distance there (object frame = local frame)
    ijk = next(iter(grid.citerOnValues()))["min"]
    local = np.array(ijk, dtype=np.float64)[None] * h
    world = local + np.array(obj.matrix_world.translation)
    np.testing.assert_allclose(grid.getConstAccessor().getValue(ijk),
                               ni.bridge.evaluate_world(obj, world)[0], atol=1e-5)

    # Geometry Nodes: Object Info -> Get Named Grid "distance" -> Grid to Mesh
    me = bpy.data.meshes.new("gn")
    gn = bpy.data.objects.new("gn", me)
    bpy.context.scene.collection.objects.link(gn)
    gn.matrix_world = vobj.matrix_world
    gn.modifiers.new("bridge", 'NODES').node_group = ni.volume_ops.grid_to_mesh_group(vobj)
    V, F = evaluated_triangles(gn, bpy.context.evaluated_depsgraph_get())
    assert len(F) > 1000
    d_gn = ni.core_metrics.surface_distances(mesh, V, F, n=30_000).chamfer_l1
    r = ni.core_remesh.remesh(implicit, resolution=128)
    d_remesh = ni.core_metrics.surface_distances(mesh, r.V, r.F, n=30_000).chamfer_l1
    print(f"\nChamfer L1: Grid to Mesh {d_gn:.6f}, remesh 128 {d_remesh:.6f}, "
          f"ratio {d_gn / d_remesh:.3f}")
    assert d_gn <= TARGET_RATIO * d_remesh


def test_bake_follows_the_object_and_its_voxel_size(ni, tmp_path):
    bpy = ni.bpy
    bpy.ops.wm.read_homefile(use_empty=True)            # unsaved: the extension's user folder
    obj, _, implicit = paper_object(ni, location=(3.0, -1.0, 0.5))
    obj.rotation_euler = (0.3, 0.0, 0.7)
    obj.scale = (2.0, 2.0, 2.0)
    bpy.context.view_layer.update()
    h = 4 * 2.0 / implicit.scale / 128                   # 32 voxels across the network's ball
    assert bpy.ops.object.neural_implicit_bake_volume(voxel_size=2 * h, half_width=2) == {'FINISHED'}
    vobj = bpy.context.active_object
    np.testing.assert_allclose(np.array(vobj.matrix_world), np.array(obj.matrix_world), atol=1e-6)
    path = vobj.data.filepath
    assert os.path.isabs(path) and os.path.isfile(path)
    grid = ni.volume_ops.openvdb_module().readAll(path)[0][0]
    # 2 h scene units at object scale 2 is h in the object's frame
    np.testing.assert_allclose(grid.transform.voxelSize(), (h,) * 3, rtol=1e-6)
    np.testing.assert_allclose(grid.background, 2 * h, rtol=1e-6)


def test_bake_errors_are_reported(ni):
    bpy = ni.bpy
    bpy.ops.wm.read_homefile(use_empty=True)
    obj, _, implicit = paper_object(ni)
    with pytest.raises(RuntimeError, match="voxels across the shape"):
        bpy.ops.object.neural_implicit_bake_volume(voxel_size=1e-5)
    assert not any(o.type == 'VOLUME' for o in bpy.data.objects)
    bpy.ops.mesh.primitive_cube_add()
    with pytest.raises(RuntimeError, match="no neural implicit"):
        bpy.ops.object.neural_implicit_bake_volume()


def sdf_volume_from_geometry_nodes(bpy, location, radius=0.6, voxel=0.04):
    """A Volume object whose level set "sdf" Geometry Nodes makes: Mesh to SDF Grid of an icosphere."""
    tree = bpy.data.node_groups.new("sdf", 'GeometryNodeTree')
    tree.interface.new_socket("Geometry", in_out='OUTPUT', socket_type='NodeSocketGeometry')
    ico = tree.nodes.new('GeometryNodeMeshIcoSphere')
    ico.inputs["Radius"].default_value = radius
    ico.inputs["Subdivisions"].default_value = 5
    to_sdf = tree.nodes.new('GeometryNodeMeshToSDFGrid')
    to_sdf.inputs["Voxel Size"].default_value = voxel
    store = tree.nodes.new('GeometryNodeStoreNamedGrid')
    store.data_type = 'FLOAT'
    store.inputs["Name"].default_value = "sdf"
    out = tree.nodes.new('NodeGroupOutput')
    tree.links.new(ico.outputs["Mesh"], to_sdf.inputs["Mesh"])
    tree.links.new(to_sdf.outputs[0], store.inputs["Grid"])
    tree.links.new(store.outputs[0], out.inputs["Geometry"])
    vobj = bpy.data.objects.new("gn volume", bpy.data.volumes.new("gn volume"))
    bpy.context.scene.collection.objects.link(vobj)
    vobj.location = location
    vobj.modifiers.new("sdf", 'NODES').node_group = tree
    return vobj


def test_volume_from_geometry_nodes_converts_to_an_implicit_in_place(ni):
    bpy = ni.bpy
    new_scene(bpy, **OLD_START)         # its error bound was measured with the old start
    centre, radius = np.array([1.0, 2.0, -0.5]), 0.6
    vobj = sdf_volume_from_geometry_nodes(bpy, centre, radius)
    ni.bridge.make_active(bpy.context.view_layer, vobj)
    assert bpy.ops.object.neural_implicit_from_volume() == {'FINISHED'}
    new = bpy.context.active_object
    assert ni.bridge.is_implicit(new) and new is not vobj
    v = ni.bridge.implicit_from_object(new).metadata["verification"]
    assert v["passed"]
    rng = np.random.default_rng(0)
    D = rng.standard_normal((2000, 3))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    t = rng.uniform(0.2, 1.4, 2000)                     # from deep inside to well outside
    P = centre + D * (radius * t)[:, None]
    f = ni.bridge.evaluate_world(new, P)
    exact = radius * (t - 1.0)
    # the icosphere (subdivision 5) lies within 0.1% of the sphere; 5 epochs of a 3 x 32 network,
    # trained like every conversion with samples concentrated near the surface: accurate there
    near = np.abs(t - 1.0) < 0.2
    err = np.abs(f - exact)[near]
    print(f"\nworld-space error of the converted sphere near its surface: median {np.median(err):.4f}, "
          f"p95 {np.quantile(err, 0.95):.4f} (radius {radius})")
    assert np.median(err) < 0.03
    far = np.abs(exact) > 0.1
    assert np.all(np.sign(f[far]) == np.sign(exact[far]))


def test_volume_without_a_level_set_is_refused(ni):
    bpy = ni.bpy
    bpy.ops.wm.read_homefile(use_empty=True)
    vobj = bpy.data.objects.new("empty volume", bpy.data.volumes.new("empty volume"))
    bpy.context.scene.collection.objects.link(vobj)
    ni.bridge.make_active(bpy.context.view_layer, vobj)
    with pytest.raises(RuntimeError, match="empty volume: no signed distance grid"):
        bpy.ops.object.neural_implicit_from_volume()
    bpy.ops.mesh.primitive_cube_add()
    with pytest.raises(RuntimeError, match="no Volume"):
        bpy.ops.object.neural_implicit_from_volume()


def test_menus_show_the_operators(ni):
    bpy = ni.bpy
    assert ni.volume_ops.menu_convert in bpy.types.VIEW3D_MT_object_convert._dyn_ui_initialize()
    assert ni.volume_ops.menu_context in bpy.types.VIEW3D_MT_object_context_menu._dyn_ui_initialize()
