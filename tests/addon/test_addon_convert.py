"""The add-on driven through bpy.ops in real Blender: convert Suzanne, keep the network in the .blend,
remesh, .h5 round trip, undo, importance from a vertex selection.

One conversion (small settings, one torch thread) is made once per module and saved; each test opens
that .blend, so tests do not depend on each other.
"""

import importlib

import numpy as np
import pytest

from .scenes import OLD_START, add_suzanne, new_scene

#: Small but real: the network crosses zero inside Suzanne (remeshing needs that) in about 1 s.
#: Remeshing resolution for the tests (cells per axis of the bounding cube).
RESOLUTION = 64
#: Chamfer L1 (unit-sphere frame) between Suzanne and the remeshed implicit: 0.021-0.031 measured
#: with SMALL at RESOLUTION 64; the bound leaves room for other torch builds.
CHAMFER_BOUND = 0.06


class NI:
    """The installed extension's modules."""

    def __init__(self, blender):
        self.bpy = blender.bpy
        pkg = blender.package
        for name in ("bridge", "jobs", "operators", "properties", "core.training.convert", "core.meshes.mesh",
                     "core.geometry.metrics", "core.representation.fileformat", "core.common.settings"):
            setattr(self, "core_" * ("." in name) + name.rpartition(".")[2],
                    importlib.import_module(f"{pkg}.{name}"))


def vertices_world(obj):
    M = np.array(obj.matrix_world)
    co = np.array([v.co[:] for v in obj.data.vertices])
    return co @ M[:3, :3].T + M[:3, 3]


@pytest.fixture(scope="module")
def ni(blender):
    return NI(blender)


@pytest.fixture(scope="module")
def converted(ni, tmp_path_factory):
    """A saved .blend holding Suzanne (moved and rotated) and its implicit, plus facts about them."""
    bpy = ni.bpy
    new_scene(bpy)
    src = add_suzanne(bpy, location=(1.0, -2.0, 0.5), rotation=(0.3, 0.0, 0.7))
    bpy.ops.object.modifier_add(type='SUBSURF')     # conversion sees the evaluated mesh
    src.modifiers[-1].levels = 1
    depsgraph = bpy.context.evaluated_depsgraph_get()
    arrays = ni.bridge.evaluated_mesh_arrays(src, depsgraph)
    co_before = vertices_world(src)
    assert ni.bpy.ops.object.neural_implicit_convert() == {'FINISHED'}
    path = tmp_path_factory.mktemp("convert") / "suzanne.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return dict(path=str(path), arrays=arrays, co_before=co_before,
                settings=bpy.context.scene.neural_implicit_settings.to_core())


def open_converted(ni, converted):
    ni.bpy.ops.wm.open_mainfile(filepath=converted["path"])
    return ni.bpy.data.objects["Suzanne"], ni.bpy.data.objects["Suzanne_implicit"]


def test_convert_makes_an_implicit_empty_at_the_shape_and_hides_the_source(ni, converted):
    src, obj = open_converted(ni, converted)
    props = obj.neural_implicit
    assert obj.type == 'EMPTY' and props.is_implicit and props.key and props.data
    assert not src.neural_implicit.is_implicit and props.source == src
    # the source is hidden, not deleted, and not modified
    assert src.hide_get() and src.name in ni.bpy.context.view_layer.objects
    assert np.array_equal(vertices_world(src), converted["co_before"])
    assert len(src.modifiers) == 1
    # convention: origin at the bounding-box centre of the (evaluated, world) mesh, scale 1, sphere
    V = converted["arrays"].V
    centre = 0.5 * (V.min(0) + V.max(0))
    assert np.allclose(obj.location, centre, atol=1e-5)
    assert np.allclose(obj.scale, 1.0) and np.allclose(obj.rotation_euler, 0.0)
    implicit = ni.bridge.implicit_from_object(obj)
    s = implicit.scale
    assert np.allclose(implicit.transform, np.diag([s, s, s, 1.0]))
    radius = np.linalg.norm(V - centre, axis=1).max()
    assert obj.empty_display_type == 'SPHERE'
    assert obj.empty_display_size == pytest.approx(radius / 0.9, rel=1e-5)   # BOUND_RADIUS / s
    info = implicit.describe()
    assert info["parameters"] == implicit.architecture.parameters > 0
    assert implicit.metadata["surface_error"] > 0 and implicit.metadata["device"] == "cpu"


def test_implicit_evaluates_like_the_core_model_of_the_same_mesh(ni, converted):
    src, obj = open_converted(ni, converted)
    arrays = converted["arrays"]
    mesh = ni.core_mesh.mesh_from_arrays(arrays.V, arrays.F, name="Suzanne")
    reference = ni.core_convert.convert_mesh(mesh, converted["settings"]).implicit  # world frame
    stored = ni.bridge.implicit_from_object(obj)
    assert all(np.array_equal(a, b) for a, b in zip(stored.weights, reference.weights))
    rng = np.random.default_rng(1)
    centre = np.array(obj.location)
    P = centre + rng.uniform(-1.2, 1.2, (2000, 3))
    f_blender = ni.bridge.evaluate_world(obj, P)
    f_core = reference.evaluate_mesh_frame(P)
    assert np.abs(f_blender - f_core).max() < 1e-5
    # and it is Suzanne: small |f| on her vertices (world units; she is about 2.7 wide)
    assert np.abs(ni.bridge.evaluate_world(obj, arrays.V)).mean() < 0.03


def test_moving_rotating_scaling_the_object_moves_the_shape(ni, converted):
    bpy = ni.bpy
    _, obj = open_converted(ni, converted)
    rng = np.random.default_rng(2)
    P_local = rng.uniform(-1.0, 1.0, (500, 3))
    M0 = np.array(obj.matrix_world)
    before = ni.bridge.evaluate_world(obj, P_local @ M0[:3, :3].T + M0[:3, 3])
    obj.location = (4.0, 5.0, -6.0)
    obj.rotation_euler = (0.5, -0.2, 1.0)
    obj.scale = (2.0, 2.0, 2.0)
    bpy.context.view_layer.update()
    M1 = np.array(obj.matrix_world)
    after = ni.bridge.evaluate_world(obj, P_local @ M1[:3, :3].T + M1[:3, 3])
    assert np.allclose(after, 2.0 * before, atol=1e-5)    # distances scale with the object


def test_duplicating_the_object_duplicates_the_shape(ni, converted):
    bpy = ni.bpy
    _, obj = open_converted(ni, converted)
    for o in bpy.context.selected_objects:
        o.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.object.duplicate_move(TRANSFORM_OT_translate={"value": (3.0, 0.0, 0.0)}) == {'FINISHED'}
    dup = bpy.context.active_object
    assert dup != obj and dup.neural_implicit.is_implicit
    assert dup.neural_implicit.data == obj.neural_implicit.data
    assert dup.neural_implicit.key == obj.neural_implicit.key
    P = np.array(obj.location) + np.random.default_rng(3).uniform(-1, 1, (200, 3))
    assert np.allclose(ni.bridge.evaluate_world(dup, P + [3.0, 0.0, 0.0]),
                       ni.bridge.evaluate_world(obj, P), atol=1e-6)


def test_weights_survive_save_close_reopen_identically(ni, converted, tmp_path):
    bpy = ni.bpy
    _, obj = open_converted(ni, converted)
    data, key = obj.neural_implicit.data, obj.neural_implicit.key
    weights = [w.copy() for w in ni.bridge.implicit_from_object(obj).weights]
    matrix = np.array(obj.matrix_world)
    path = tmp_path / "again.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_homefile(use_empty=True)
    assert "Suzanne_implicit" not in bpy.data.objects
    ni.bridge.clear_cache()                              # decode from the file's bytes
    bpy.ops.wm.open_mainfile(filepath=str(path))
    back = bpy.data.objects["Suzanne_implicit"]
    assert back.neural_implicit.data == data and back.neural_implicit.key == key
    assert ni.bridge.content_key(ni.bridge.stored_bytes(back)) == key
    assert all(np.array_equal(a, b) for a, b in
               zip(ni.bridge.implicit_from_object(back).weights, weights))
    assert np.array_equal(np.array(back.matrix_world), matrix)


def test_remesh_gives_a_mesh_near_suzanne_at_the_implicits_transform(ni, converted):
    bpy = ni.bpy
    _, obj = open_converted(ni, converted)
    obj.location.x += 2.0                                # remeshing follows the object
    bpy.context.view_layer.update()
    bpy.context.view_layer.objects.active = obj
    world = np.array(obj.matrix_world)
    assert bpy.ops.object.neural_implicit_remesh(resolution=RESOLUTION) == {'FINISHED'}
    out = bpy.data.objects["Suzanne_implicit"]            # the mesh replaces the implicit
    assert out.type == 'MESH' and bpy.context.active_object == out
    assert np.allclose(np.array(out.matrix_world), world)
    V = vertices_world(out) - [2.0, 0.0, 0.0]
    F = np.array([p.vertices[:] for p in out.data.polygons])
    arrays = converted["arrays"]
    reference = ni.core_mesh.mesh_from_arrays(arrays.V, arrays.F)
    d = ni.core_metrics.surface_distances(reference, V, F, n=20_000)
    print(f"remesh at {RESOLUTION}: Chamfer L1 {d.chamfer_l1:.4f}, Hausdorff {d.hausdorff:.4f}")
    assert d.chamfer_l1 < CHAMFER_BOUND


def test_h5_export_import_round_trip(ni, converted, tmp_path):
    bpy = ni.bpy
    _, obj = open_converted(ni, converted)
    obj.location = (0.5, 0.25, -1.0)                     # the file says where the shape is now
    obj.rotation_euler = (0.0, 0.4, 0.0)
    bpy.context.view_layer.update()
    bpy.context.view_layer.objects.active = obj
    path = tmp_path / "suzanne.h5"
    assert bpy.ops.export_scene.neural_implicit(filepath=str(path)) == {'FINISHED'}
    assert obj.neural_implicit.filepath == str(path)
    on_disk = ni.core_fileformat.load(str(path))
    P = np.random.default_rng(4).uniform(-1.5, 1.5, (1000, 3)) + np.array(obj.location)
    f_obj = ni.bridge.evaluate_world(obj, P)
    assert np.allclose(on_disk.evaluate_mesh_frame(P), f_obj, atol=1e-5)   # file frame = world

    assert bpy.ops.import_scene.neural_implicit(filepath=str(path)) == {'FINISHED'}
    imported = bpy.data.objects["suzanne"]
    assert imported.neural_implicit.is_implicit and imported.neural_implicit.filepath == str(path)
    assert bpy.context.active_object == imported
    assert np.allclose(np.array(imported.matrix_world), np.array(obj.matrix_world), atol=1e-5)
    assert np.allclose(imported.scale, 1.0, atol=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(ni.bridge.implicit_from_object(imported).weights,
                                                     ni.bridge.implicit_from_object(obj).weights))
    assert np.allclose(ni.bridge.evaluate_world(imported, P), f_obj, atol=1e-5)


def test_undo_removes_the_implicit_and_shows_the_source_again(ni):
    bpy = ni.bpy
    new_scene(bpy, epochs=2)
    add_suzanne(bpy)
    bpy.ops.ed.undo_push(message="before converting")
    # undo=True: operators called from Python push their undo step only when asked
    assert bpy.ops.object.neural_implicit_convert('EXEC_DEFAULT', True) == {'FINISHED'}
    assert "Suzanne_implicit" in bpy.data.objects and bpy.data.objects["Suzanne"].hide_get()
    bpy.ops.object.select_all(action='DESELECT')
    bpy.data.objects["Suzanne_implicit"].select_set(True)
    bpy.context.view_layer.objects.active = bpy.data.objects["Suzanne_implicit"]
    assert bpy.ops.object.neural_implicit_remesh('EXEC_DEFAULT', True, resolution=32) == {'FINISHED'}
    assert bpy.data.objects["Suzanne_implicit"].type == 'MESH'
    bpy.ops.ed.undo()
    assert bpy.data.objects["Suzanne_implicit"].neural_implicit.is_implicit
    bpy.ops.ed.undo()
    assert "Suzanne_implicit" not in bpy.data.objects
    assert not bpy.data.objects["Suzanne"].hide_get()
    bpy.ops.ed.redo()
    assert bpy.data.objects["Suzanne_implicit"].neural_implicit.is_implicit


def test_converting_several_objects_trains_them_together(ni, monkeypatch):
    """Several selected meshes go to one child process as one stack of networks
    (core.conversion.batch_train. convert_many runs there, core.conversion.child_process with
    ``together``), each checked afterwards."""
    bpy = ni.bpy
    calls = []
    child_process = importlib.import_module(ni.bridge.__name__.rsplit(".", 1)[0]
                                            + ".core.conversion.child_process")
    original = child_process.convert_in_child
    monkeypatch.setattr(child_process, "convert_in_child", lambda shapes, *a, **k: calls.append(
        (len(shapes), k.get("together"))) or original(shapes, *a, **k))
    new_scene(bpy, epochs=2)
    add_suzanne(bpy, location=(-3.0, 0.0, 0.0))
    bpy.ops.mesh.primitive_ico_sphere_add(location=(3.0, 0.0, 0.0))
    bpy.ops.object.select_all(action='SELECT')
    assert bpy.ops.object.neural_implicit_convert() == {'FINISHED'}
    for name, x in (("Suzanne", -3.0), ("Icosphere", 3.0)):
        obj = bpy.data.objects[f"{name}_implicit"]
        assert obj.neural_implicit.is_implicit and obj.location.x == pytest.approx(x, abs=1e-4)
        assert bpy.data.objects[name].hide_get()
        assert ni.bridge.implicit_from_object(obj).metadata["verification"]["passed"]
    assert calls == [(2, True)]


def region_error(ni, obj, mesh_world, selected):
    """The core surface error of the implicit on the faces whose vertices are all selected."""
    F = mesh_world.F[selected[mesh_world.F].all(axis=1)]
    used = np.unique(F)
    remap = np.full(len(mesh_world.V), -1)
    remap[used] = np.arange(len(used))
    region = ni.core_mesh.Mesh(mesh_world.V[used], remap[F])
    implicit = ni.bridge.in_world(obj, ni.bridge.implicit_from_object(obj))
    return ni.core_metrics.surface_error(implicit, region, n=20_000)


def test_vertex_selection_lowers_the_error_in_the_selected_region(ni):
    """Suzanne's right ear selected, strength 50: the error there falls. Summed over seeds 0 and 1,
    because one small network's error varies by 2x between seeds (core, same settings: ratios 0.30
    and 0.26 at seeds 0 and 1; NONE errors 0.067 and 0.103)."""
    bpy = ni.bpy
    errors = {'NONE': 0.0, 'SELECTION': 0.0}
    for seed in (0, 1):
        for source in ('NONE', 'SELECTION'):
            new_scene(bpy, importance_strength=50.0, seed=seed, **OLD_START)
            src = add_suzanne(bpy)
            selected = vertices_world(src)[:, 0] > 1.0      # her right ear (29 vertices)
            src.data.vertices.foreach_set("select", selected)
            src.neural_implicit.importance_source = source
            arrays = ni.bridge.evaluated_mesh_arrays(src, bpy.context.evaluated_depsgraph_get())
            if source == 'SELECTION':
                assert np.array_equal(arrays.weights, selected.astype(float))
                assert ni.bridge.importance_summary(src)[1:3] == (29, len(src.data.vertices))
            else:
                assert arrays.weights is None
            assert bpy.ops.object.neural_implicit_convert() == {'FINISHED'}
            mesh = ni.core_mesh.mesh_from_arrays(arrays.V, arrays.F)
            errors[source] += region_error(ni, bpy.data.objects["Suzanne_implicit"], mesh, selected)
    print("surface error in the selected region (sum of seeds 0 and 1):", errors)
    assert errors['SELECTION'] < 0.6 * errors['NONE']


def test_vertex_group_weights_are_the_importance(ni):
    bpy = ni.bpy
    new_scene(bpy)
    src = add_suzanne(bpy)
    group = src.vertex_groups.new(name="detail")
    group.add([0, 1, 2, 3], 0.5, 'REPLACE')
    group.add([10], 1.0, 'REPLACE')
    props = src.neural_implicit
    props.importance_source = 'VERTEX_GROUP'
    props.importance_group = "detail"
    arrays = ni.bridge.evaluated_mesh_arrays(src, bpy.context.evaluated_depsgraph_get())
    expected = np.zeros(len(src.data.vertices))
    expected[[0, 1, 2, 3]] = 0.5
    expected[10] = 1.0
    assert np.allclose(arrays.weights, expected)
    assert "detail" in arrays.importance
    label, count, total, problem = ni.bridge.importance_summary(src)
    assert (count, total, problem) == (5, len(src.data.vertices), None) and "detail" in label
    props.importance_group = "missing"
    ni.bridge.clear_cache()
    assert "does not exist" in ni.bridge.importance_summary(src)[3]
    with pytest.raises(RuntimeError, match="vertex group 'missing' does not exist"):
        bpy.ops.object.neural_implicit_convert()


def test_target_error_and_byte_budget_modes(ni):
    """The Network Size modes reach core.training.sizing and core.training.budget and their records
    reach the object."""
    bpy = ni.bpy
    s = new_scene(bpy, epochs=3)
    add_suzanne(bpy)
    s.size_mode = 'TARGET_ERROR'
    s.target_error = 0.5                          # reached by the first (smallest) size
    assert bpy.ops.object.neural_implicit_convert() == {'FINISHED'}
    implicit = ni.bridge.implicit_from_object(bpy.data.objects["Suzanne_implicit"])
    sizing = implicit.metadata["sizing"]
    assert sizing["reached"] and len(sizing["tried"]) == 1
    assert (implicit.architecture.layers, implicit.architecture.hidden) == \
        (sizing["tried"][0]["layers"], sizing["tried"][0]["hidden"])

    bpy.ops.wm.read_homefile(use_empty=True)
    s = new_scene(bpy)
    add_suzanne(bpy)
    s.size_mode = 'BUDGET'
    s.budget_bytes = 6_000
    assert bpy.ops.object.neural_implicit_convert() == {'FINISHED'}
    implicit = ni.bridge.implicit_from_object(bpy.data.objects["Suzanne_implicit"])
    assert implicit.weight_bytes <= 6_000 and implicit.metadata["budget"]["budget_bytes"] == 6_000


def test_remesh_a_shell_as_its_sheet(ni, tmp_path):
    """An open plane converted in shell mode (core, tiny settings) and imported: Convert to Mesh
    with Sheet gives the plane itself; without it, the closed shell around the plane."""
    bpy = ni.bpy
    new_scene(bpy)
    package = ni.bridge.__name__.rsplit(".", 1)[0]
    checked = importlib.import_module(f"{package}.core.conversion.checked")
    g = np.linspace(0.0, 1.0, 7)
    X, Y = np.meshgrid(g, g, indexing="ij")
    V = np.stack([X.ravel(), Y.ravel(), np.zeros(X.size)], 1)
    i = (np.arange(6)[:, None] * 7 + np.arange(6)[None]).ravel()
    F = np.concatenate([np.stack([i, i + 7, i + 1], 1), np.stack([i + 1, i + 7, i + 8], 1)])
    settings = ni.core_settings.ConversionSettings(layers=3, hidden=32, samples=30_000, pool=200_000,
                                                    epochs=5, lr=0.01, batch_size=512, threads=1,
                                                    shell_thickness=0.02)
    r = checked.convert_checked(ni.core_mesh.mesh_from_arrays(V, F, name="plane"), settings, attempts=1)
    assert r.implicit.metadata["surface"]["mode"] == "shell"
    path = tmp_path / "plane.h5"
    ni.core_fileformat.save(r.implicit, path)
    assert bpy.ops.import_scene.neural_implicit(filepath=str(path)) == {'FINISHED'}
    implicit = bpy.context.active_object
    spread = {}
    for sheet in (False, True):
        bpy.ops.object.select_all(action='DESELECT')
        implicit.select_set(True)
        bpy.context.view_layer.objects.active = implicit
        assert bpy.ops.object.neural_implicit_remesh(resolution=48, keep_original=True,
                                                     sheet=sheet) == {'FINISHED'}
        z = vertices_world(bpy.context.active_object)[:, 2]
        spread[sheet] = float(np.median(np.abs(z - np.median(z))))
    assert spread[True] < 0.5 * spread[False], spread        # the shell's two sides lie on the plane


def test_an_array_of_cubes_that_nearly_touch_stays_apart(ni):
    """A cube with an Array modifier, gaps of 0.5 % of a side (issue 18's case): the conversion
    gives the parts that nearly touch networks of their own (the panel's Parameters say so), the
    viewport draws their union, and Convert to Mesh at a grid far coarser than the gap gives three
    separate pieces."""
    bpy = ni.bpy
    new_scene(bpy)
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    cube = bpy.context.active_object
    array = cube.modifiers.new("Array", 'ARRAY')
    array.count = 3
    array.relative_offset_displace = (1.005, 0.0, 0.0)
    assert bpy.ops.object.neural_implicit_convert() == {'FINISHED'}
    obj = bpy.data.objects["Cube_implicit"]
    implicit = ni.bridge.implicit_from_object(obj)
    assert implicit.network_count == 2 and implicit.metadata["parts"]["parts"] == 3
    package = ni.bridge.__name__.rsplit(".", 1)[0]
    csg = importlib.import_module(f"{package}.core.geometry.csg")
    openness = importlib.import_module(f"{package}.core.samples.openness")
    items = [i for i in ni.bridge.draw_items(bpy.context) if i.key.endswith(obj.neural_implicit.key)]
    assert len(items) == 1 and isinstance(items[0].implicit, csg.CSGShape)
    assert len(items[0].implicit.leaves()) == 2
    bpy.ops.object.select_all(action='DESELECT')
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.object.neural_implicit_remesh(resolution=RESOLUTION, keep_original=True) == {'FINISHED'}
    me = bpy.context.active_object.data
    F = np.array([p.vertices[:] for p in me.polygons])
    assert openness.face_components(F)[0] == 3
