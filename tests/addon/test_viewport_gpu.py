"""The viewport's GPU sphere tracer, drawn for real (offscreen, Mesa llvmpipe here) through the same
draw path as the 3D viewport and compared pixel by pixel with the numpy reference
(core/geometry/trace.py).

All tests use the ``gpu_ready`` fixture (marked ``gpu``; deselect with ``-m "not gpu"``). Images are
64 x 64: llvmpipe evaluates about 80k networks per second.
"""

import contextlib
import importlib
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
SHAPE = "100173"     # the paper's converted "Geo lamp" (8 x 32 ReLU) and its source mesh
SIZE = 64


@pytest.fixture(scope="module")
def ni(gpu_ready):
    """The installed extension's viewport module and core modules, and a converted shape."""
    pkg = gpu_ready.package
    mod = SimpleNamespace(
        bpy=gpu_ready.bpy,
        gpu=importlib.import_module("gpu"),
        viewport=importlib.import_module(pkg + ".viewport"),
        glsl=importlib.import_module(pkg + ".core.geometry.glsl"),
        trace=importlib.import_module(pkg + ".core.geometry.trace"),
        implicit=importlib.import_module(pkg + ".core.representation.implicit"),
    )
    mesh = importlib.import_module(pkg + ".core.meshes.mesh").load_mesh(
        str(SHARED / "meshes" / f"{SHAPE}.stl"))
    mod.shape = importlib.import_module(pkg + ".core.representation.paper_import").load_paper_weights(
        str(SHARED / "paper-weights" / f"{SHAPE}_sf.h5"), mesh)
    mod.renderer = mod.viewport.ImplicitRenderer()
    yield mod
    mod.renderer.free()


def camera(ni, eye=(1.6, -2.4, 1.3), target=(0.0, 0.0, 0.0), ortho=False):
    V = ni.trace.look_at(eye, target)
    P = (ni.trace.orthographic(1.2, 1.0, 0.1, 20.0) if ortho else
         ni.trace.perspective(np.radians(40.0), 1.0, 0.1, 100.0))
    return V, P


def placed(ni, T_world):
    """matrix_world that puts the shape's network frame (radius 1) at T_world in the world."""
    return np.asarray(T_world, dtype=np.float64) @ ni.shape.transform


def compare(gpu_mask, gpu_depth, ref_mask, ref_depth):
    iou = (gpu_mask & ref_mask).sum() / max((gpu_mask | ref_mask).sum(), 1)
    both = gpu_mask & ref_mask
    err = np.abs(gpu_depth[both] - ref_depth[both])
    return iou, float(err.max()) if both.any() else np.inf


class StderrCapture:
    """Collect what the C side writes to file descriptor 2 (GPU backend errors land there)."""

    def __enter__(self):
        self.file = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode(errors="replace")
        self.file.close()


def mesh_drawer(ni, V, P, quads, color):
    """A callable that draws flat quads (world-space corner lists) in one colour with depth test."""
    gpu = ni.gpu
    from gpu_extras.batch import batch_for_shader

    info = gpu.types.GPUShaderCreateInfo()
    info.push_constant('MAT4', "view_projection")
    info.push_constant('VEC4', "color")
    info.vertex_in(0, 'VEC3', "pos")
    info.fragment_out(0, 'VEC4', "fragColor")
    info.vertex_source("void main()\n{\n  gl_Position = view_projection * vec4(pos, 1.0);\n}\n")
    info.fragment_source("void main()\n{\n  fragColor = color;\n}\n")
    shader = gpu.shader.create_from_info(info)
    verts, tris = [], []
    for q in quads:
        base = len(verts)
        verts += [tuple(map(float, c)) for c in q]
        tris += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    batch = batch_for_shader(shader, 'TRIS', {"pos": verts}, indices=tris)
    import mathutils
    VP = mathutils.Matrix((P @ V).tolist())

    def draw():
        gpu.state.depth_test_set('LESS_EQUAL')
        gpu.state.depth_mask_set(True)
        shader.bind()
        shader.uniform_float("view_projection", VP)
        shader.uniform_float("color", color)
        batch.draw(shader)
        gpu.state.depth_test_set('NONE')
    return draw


# ------------------------------------------------------------------------------------------ tests

def test_shader_network_equals_numpy_for_every_activation_and_encoding(ni):
    """The generated GLSL network and the texel packing evaluate the same function as numpy."""
    from_arch = ni.implicit.Architecture
    rng = np.random.default_rng(0)
    Q = rng.uniform(-1, 1, (1000, 3)).astype(np.float32)
    assert np.abs(ni.viewport.evaluate_on_gpu(ni.shape, Q) - ni.shape.evaluate(Q)).max() < 1e-5
    for arch in (from_arch(1, 5, "relu", 0), from_arch(3, 13, "sine", 2),
                 from_arch(2, 16, "relu", 4), from_arch(2, 8, "sine", 0)):
        scale = 1.5 if arch.activation == "sine" else 0.6
        W = [rng.normal(0, scale / np.sqrt(n), (o, n)) for o, n in arch.layer_shapes()]
        b = [rng.normal(0, 0.1, o) for o, _ in arch.layer_shapes()]
        imp = ni.implicit.Implicit(arch, W, b)
        err = np.abs(ni.viewport.evaluate_on_gpu(imp, Q) - imp.evaluate(Q)).max()
        assert err < 1e-5, (arch, err)


def test_a_shape_of_several_networks_is_drawn_as_their_union(ni):
    """Implicit.members (core.samples.parts): the shader evaluates the CSG union the viewport draws
    it as (one leaf per network), equal to numpy's minimum; one weight texture for all of them
    is refused rather than drawing the first network alone."""
    import importlib

    csg = importlib.import_module(ni.implicit.__name__.replace("representation.implicit",
                                                               "geometry.csg"))
    arch = ni.implicit.Architecture(2, 8, "relu", 0)
    rng = np.random.default_rng(1)

    def network():
        return ([rng.normal(0, 0.6 / np.sqrt(n), (o, n)) for o, n in arch.layer_shapes()],
                [rng.normal(0, 0.1, o) for o, _ in arch.layer_shapes()])

    imp = ni.implicit.Implicit(arch, *network(), members=[network(), network()])
    shape = csg.CSGShape(imp)
    assert len(shape.leaves()) == 3
    Q = rng.uniform(-0.55, 0.55, (1000, 3)).astype(np.float32)     # inside every network's ball
    gpu = ni.viewport.evaluate_on_gpu(shape, Q)
    assert np.abs(gpu - shape.evaluate(Q)).max() < 1e-5
    X = shape.to_mesh(Q)
    clipped = np.maximum(imp.evaluate(X), np.linalg.norm(X, axis=1) - 1.0)   # the ball's clip
    assert np.abs(shape.evaluate(Q) - clipped).max() < 1e-5
    with pytest.raises(Exception, match="CSGShape"):
        ni.viewport.evaluate_on_gpu(imp, Q)


def test_offscreen_render_matches_numpy_reference(ni):
    """Hit mask IoU >= 0.98, depth within 1e-4 and colour within 1/255, perspective and
    orthographic, identity and non-uniformly scaled, rotated object matrices; no GPU errors."""
    tr = ni.trace
    R = np.eye(4)
    c, s = np.cos(0.7), np.sin(0.7)
    R[:2, :2] = [[c, -s], [s, c]]
    stretched = np.diag([1.3, 0.8, 1.0, 1.0]) @ R
    stretched[:3, 3] = (0.1, 0.0, -0.1)
    cases = [(np.eye(4), False), (stretched, True)]
    with StderrCapture() as err:
        for T_world, ortho in cases:
            V, P = camera(ni, ortho=ortho)
            item = ni.viewport.DrawItem("shape", ni.shape, placed(ni, T_world), (0.8, 0.3, 0.2, 1.0))
            rgba, depth = ni.renderer.render_offscreen([item], V, P, SIZE, SIZE)
            ref = tr.trace([item], V, P, SIZE, SIZE, ni.viewport.ViewportSettings())
            mask = depth < 1.0
            iou, depth_err = compare(mask, depth, ref.coverage, ref.depth)
            assert ref.hit.sum() > 300
            assert iou >= 0.98, (ortho, iou)
            assert depth_err < 1e-4, (ortho, depth_err)
            both = mask & ref.hit
            assert np.abs(rgba[both, :3] - ref.rgba[both, :3]).max() < 1 / 255
            assert np.all(rgba[~mask, 3] == 0.0)
    assert "error" not in err.text.lower(), err.text


def test_meshes_and_implicits_occlude_each_other(ni):
    """A quad in front hides the implicit, one behind is hidden by it, in both drawing orders."""
    V, P = camera(ni, eye=(0.0, -3.0, 0.0))
    item = ni.viewport.DrawItem("shape", ni.shape, placed(ni, np.eye(4)), (0.8, 0.8, 0.8, 1.0))
    ref = ni.trace.trace([item], V, P, SIZE, SIZE)
    left = ni.trace.pixel_ndc(SIZE, SIZE)[..., 0] < 0
    # a quad covering the left half at y = -1.5 (in front of the ball), one filling all at y = 1.5
    front = [[(-3, -1.5, -3), (0, -1.5, -3), (0, -1.5, 3), (-3, -1.5, 3)]]
    back = [[(-9, 1.5, -9), (9, 1.5, -9), (9, 1.5, 9), (-9, 1.5, 9)]]
    green, blue = (0.0, 1.0, 0.0, 1.0), (0.0, 0.0, 1.0, 1.0)
    draw_front = mesh_drawer(ni, V, P, front, green)
    draw_back = mesh_drawer(ni, V, P, back, blue)
    for before, after in ((draw_front, draw_back), (draw_back, draw_front)):
        rgba, depth = ni.renderer.render_offscreen([item], V, P, SIZE, SIZE, before=before,
                                                   after=after)
        hidden = ref.hit & left
        shown = ref.hit & ~left
        assert hidden.sum() > 100 and shown.sum() > 100
        assert np.allclose(rgba[hidden], green)                      # the front quad wins
        assert np.abs(depth[shown] - ref.depth[shown]).max() < 1e-4  # the implicit wins
        assert not np.isclose(rgba[shown], blue).all(axis=1).any()
        assert np.allclose(rgba[~ref.coverage & ~left], blue)        # background: the back quad


def test_two_objects_with_different_transforms(ni):
    V, P = camera(ni, eye=(0.0, -5.0, 0.5))
    a = np.diag([0.8, 0.8, 0.8, 1.0])
    a[:3, 3] = (-1.0, 0.0, 0.0)
    b = np.diag([0.7, 0.7, 1.1, 1.0])
    b[:3, 3] = (1.0, 0.5, 0.2)
    items = [ni.viewport.DrawItem("a", ni.shape, placed(ni, a), (1.0, 0.0, 0.0, 1.0)),
             ni.viewport.DrawItem("a", ni.shape, placed(ni, b), (0.0, 0.0, 1.0, 1.0))]
    uploads = ni.renderer.uploads
    rgba, depth = ni.renderer.render_offscreen(items, V, P, SIZE, SIZE)
    ref = ni.trace.trace(items, V, P, SIZE, SIZE)
    assert ni.renderer.uploads - uploads <= 1          # one network, one texture
    for k in range(2):
        mask = ref.item == k
        assert mask.sum() > 100
        gpu_mask = (depth < 1) & (rgba[..., 0] > rgba[..., 2] if k == 0 else rgba[..., 2] > rgba[..., 0])
        iou = (gpu_mask & mask).sum() / (gpu_mask | mask).sum()
        assert iou >= 0.98, (k, iou)


def test_selection_outline_and_reduced_resolution(ni):
    tr, vp = ni.trace, ni.viewport
    V, P = camera(ni)
    item = vp.DrawItem("shape", ni.shape, placed(ni, np.eye(4)), (0.8, 0.8, 0.8, 1.0), True, True)
    rgba, depth = ni.renderer.render_offscreen([item], V, P, SIZE, SIZE)
    ref = tr.trace([item], V, P, SIZE, SIZE)
    ring = ref.coverage & ~ref.hit
    assert ring.sum() > 50
    iou, _ = compare(depth < 1, depth, ref.coverage, ref.depth)
    assert iou >= 0.98
    agree = ring & (depth < 1)
    assert np.abs(rgba[agree, :3] - tr.ACTIVE_SRGB).max() < 2e-3
    # half resolution while navigating: the 32 x 32 trace, upsampled (nearest) with its depth
    half = SIZE // 2
    rgba_s, depth_s = ni.renderer.render_offscreen([item], V, P, SIZE, SIZE, scale=0.5)
    ref_s = tr.trace([item], V, P, half, half)
    up = np.repeat(np.repeat(ref_s.coverage, 2, 0), 2, 1)
    up_depth = np.repeat(np.repeat(ref_s.depth, 2, 0), 2, 1)
    iou, depth_err = compare(depth_s < 1, depth_s, up, up_depth)
    assert iou >= 0.98 and depth_err < 1e-4, (iou, depth_err)


def test_weight_cache_uploads_once_and_frees_unused(ni):
    vp, gpu = ni.viewport, ni.gpu
    r = vp.ImplicitRenderer()
    V, P = camera(ni)
    item = vp.DrawItem("k1", ni.shape, placed(ni, np.eye(4)))
    off = gpu.types.GPUOffScreen(8, 8)
    try:
        with off.bind():
            for _ in range(3):
                r.draw([item], V, P, 8, 8)
            assert r.uploads == 1 and r.cached_keys() == ["k1"]
            changed = ni.shape.copy()
            changed.biases[-1] = changed.biases[-1] + 0.01
            r.draw([vp.DrawItem("k2", changed, item.matrix_world)], V, P, 8, 8)
            assert r.uploads == 2
            for _ in range(vp.CACHE_IDLE_DRAWS + 1):
                r.draw([vp.DrawItem("k2", changed, item.matrix_world)], V, P, 1, 1, scale=1.0)
            assert r.cached_keys() == ["k2"]
            too_wide = ni.implicit.Architecture(1, ni.glsl.GPU_MAX_HIDDEN + 4)
            wide = ni.implicit.Implicit(too_wide, [np.zeros(s) for s in too_wide.layer_shapes()],
                                        [np.zeros(s[0]) for s in too_wide.layer_shapes()])
            assert r.draw([vp.DrawItem("wide", wide, np.eye(4))], V, P, 8, 8) == 0
            assert "hidden width" in r.errors["wide"]
    finally:
        off.free()
        r.free()
    assert r.cached_keys() == []


@contextlib.contextmanager
def handler_restored(vp):
    """The enabled add-on registered the handler with its own callbacks: put them back after."""
    saved = (vp._state.get_items, vp._state.get_settings) if vp.is_registered() else None
    try:
        yield
    finally:
        vp.unregister_draw_handler()
        if saved is not None:
            vp.register_draw_handler(*saved)


def test_draw_handler_is_idempotent_and_removed_on_unregister(ni):
    vp, bpy = ni.viewport, ni.bpy

    def get_items(context):
        return []

    with handler_restored(vp):
        vp.unregister_draw_handler()
        assert not vp.is_registered()
        vp.register_draw_handler(get_items)
        handle = vp._state.handle
        vp.register_draw_handler(get_items)              # a second call adds nothing
        assert vp._state.handle is handle and vp.is_registered()
        vp._draw_callback()                              # no region in background mode: no-op
        assert vp.last_error() is None
        vp.unregister_draw_handler()
        vp.unregister_draw_handler()                     # and a second removal is harmless
        assert not vp.is_registered() and vp.renderer() is None
        with pytest.raises(ValueError):                  # Blender no longer knows the handle
            bpy.types.SpaceView3D.draw_handler_remove(handle, 'WINDOW')


def test_navigation_lowers_resolution_until_the_view_is_still(ni):
    """While the view changes the handler draws at resolution_scale; a one-shot timer asks for the
    full-resolution frame once the view has been still for still_delay (removed on unregister)."""
    vp, bpy = ni.viewport, ni.bpy

    class Region:
        def as_pointer(self):
            return 1234

    region = Region()
    with handler_restored(vp):
        vp.register_draw_handler(lambda context: [])
        assert not vp._view_moving(region, b"view-1", 0.25)   # first sight: still, full quality
        assert vp._view_moving(region, b"view-2", 0.25)       # the view changed
        assert vp._view_moving(region, b"view-2", 0.25)       # unchanged, but within still_delay
        assert not vp._view_moving(region, b"view-2", 0.0)    # still for longer than the delay
        vp._schedule_full_quality(0.25)
        timer = vp._state.timer
        assert timer is not None and bpy.app.timers.is_registered(timer)
        vp._schedule_full_quality(0.25)                       # one pending timer at most
        assert vp._state.timer is timer
        vp.unregister_draw_handler()
        assert not bpy.app.timers.is_registered(timer)


def test_disabling_the_addon_removes_the_draw_handler(gpu_ready):
    """Enabling registers the viewport handler, disabling removes it (run last: it re-enables)."""
    bpy, pkg = gpu_ready.bpy, gpu_ready.package
    assert sys.modules[pkg + ".viewport"].is_registered()
    handle = sys.modules[pkg + ".viewport"]._state.handle
    try:
        assert bpy.ops.preferences.addon_disable(module=pkg) == {"FINISHED"}
        assert not sys.modules[pkg + ".viewport"].is_registered()
        with pytest.raises(ValueError):
            bpy.types.SpaceView3D.draw_handler_remove(handle, 'WINDOW')
    finally:
        assert bpy.ops.preferences.addon_enable(module=pkg) == {"FINISHED"}
    assert sys.modules[pkg + ".viewport"].is_registered()
