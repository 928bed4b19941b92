"""The add-on's draw items in the viewport's tracer: a converted object is drawn where its source mesh
is, after moving it too (the object convention of bridge.py as the GPU sees it)."""

import importlib

import numpy as np
import pytest

SMALL = dict(layers=3, hidden=32, pool=200_000, samples=30_000, epochs=5, lr=1e-2, batch_size=512,
             threads=1, seed=0)
SIZE = 64


def test_draw_items_render_the_shape_where_the_mesh_is(gpu_ready):
    bpy, pkg = gpu_ready.bpy, gpu_ready.package
    bridge = importlib.import_module(pkg + ".bridge")
    viewport = importlib.import_module(pkg + ".viewport")
    trace = importlib.import_module(pkg + ".core.geometry.trace")
    sampling = importlib.import_module(pkg + ".core.samples.sampling")
    bpy.ops.wm.read_homefile(use_empty=True)
    s = bpy.context.scene.neural_implicit_settings
    for key, value in SMALL.items():
        setattr(s, key, value)
    bpy.ops.mesh.primitive_monkey_add(location=(0.5, -0.3, 0.2), rotation=(0.0, 0.0, 0.6))
    arrays = bridge.evaluated_mesh_arrays(bpy.context.active_object, bpy.context.evaluated_depsgraph_get())
    assert bpy.ops.object.neural_implicit_convert() == {'FINISHED'}
    obj = bpy.data.objects["Suzanne_implicit"]
    obj.color = (0.8, 0.3, 0.2, 1.0)

    V = trace.look_at((1.5, -4.0, 1.5), (0.5, -0.3, 0.2))
    P = trace.perspective(np.radians(40.0), 1.0, 0.1, 100.0)
    renderer = viewport.ImplicitRenderer()
    try:
        for offset in ((0.0, 0.0, 0.0), (0.4, 0.0, -0.2)):
            obj.location = np.array(obj.location) + offset
            bpy.context.view_layer.update()
            items = bridge.draw_items(bpy.context)
            assert len(items) == 1 and items[0].active and items[0].selected
            assert np.allclose(items[0].color, (0.8, 0.3, 0.2, 1.0))
            rgba, depth = renderer.render_offscreen(items, V, P, SIZE, SIZE)
            reference = trace.trace(items, V, P, SIZE, SIZE)
            gpu_mask, ref_mask = depth < 1.0, reference.coverage
            iou = (gpu_mask & ref_mask).sum() / max((gpu_mask | ref_mask).sum(), 1)
            assert ref_mask.sum() > 300 and iou > 0.95, iou
            # the traced surface lies on Suzanne, moved with the object
            hits = reference.position[reference.hit] - np.asarray(obj.location) + (
                0.5 * (arrays.V.min(0) + arrays.V.max(0)))
            d = sampling.SignedDistance(arrays.V, arrays.F).unsigned(hits.astype(np.float64))
            assert np.median(d) < 0.03, np.median(d)
        obj.hide_set(True)
        assert bridge.draw_items(bpy.context) == []
    finally:
        renderer.free()


def test_viewport_settings_come_from_the_scene(blender):
    """The Viewport panel's options reach the draw handler's settings (defaults shared with core)."""
    bpy = blender.bpy
    bridge = importlib.import_module(blender.package + ".bridge")
    trace = importlib.import_module(blender.package + ".core.geometry.trace")
    bpy.ops.wm.read_homefile(use_empty=True)
    s = bpy.context.scene.neural_implicit_settings
    default = bridge.viewport_settings(bpy.context)
    assert (default.max_steps, default.epsilon, default.step_factor) == pytest.approx(
        (trace.TraceSettings.max_steps, trace.TraceSettings.epsilon, trace.TraceSettings.step_factor))
    s.viewport_max_steps, s.viewport_epsilon, s.viewport_step_factor = 40, 0.004, 0.6
    s.viewport_resolution_scale = 0.25
    got = bridge.viewport_settings(bpy.context).validate()
    assert (got.max_steps, got.epsilon, got.step_factor, got.resolution_scale) == pytest.approx(
        (40, 0.004, 0.6, 0.25))
