"""Live drawing of neural implicits in the 3D viewport: GPU resources, the renderer, the draw handler.

What is drawn and how is ``core/geometry/glsl.py`` (the shaders as GLSL text, the uniform blocks)
and ``core/representation/layout.py`` (the network and the texel layout of its weights), both
Blender-free and tested without a GPU; docs/viewport.md has the long version. This module compiles
that text (``gpu.types.GPUShaderCreateInfo``, no bgl), uploads the texels as RGBA32F textures, draws
one proxy per item with depth test and depth writes, and owns the draw handler.

Interactivity
-------------
The draw handler never asks for redraws on its own. While the view moves it renders at
``settings.resolution_scale`` into a small offscreen buffer (colour + depth) and composites it with
depth; once the view has been still for ``settings.still_delay`` seconds a one-shot timer asks the 3D
views for one full-resolution redraw. Weight textures are uploaded once per key and freed when no draw
has used them for ``CACHE_IDLE_DRAWS`` draws.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import bpy
import gpu
from gpu_extras.batch import batch_for_shader

from .core.common.errors import InputError
from .core.geometry.csg import CSGShape
from .core.geometry.glsl import (COMPOSITE_FRAGMENT, FULLSCREEN_VERTEX, arch_name, csg_block, csg_signature,
                                 evaluate_fragment, gpu_unsupported_reason, object_block, trace_program,
                                 texture_key, weight_texels)
from .core.geometry.glsl import shading_glsl  # noqa: F401  (bench/viewport_images.py)
from .core.geometry.trace import DEFAULT_COLOR, ViewportSettings, item_frames
from .core.representation.layout import texture_data

log = logging.getLogger(__name__)

#: A weight texture not used by this many consecutive draws is freed.
CACHE_IDLE_DRAWS = 120

# ============================================================================ settings and items

@dataclass
class DrawItem:
    """One implicit to draw.

    key : content key of the network (weights are uploaded again only when it changes); for a CSG,
        a key that changes when any of its networks does
    implicit : core.representation.implicit.Implicit, or a core.geometry.csg.CSGShape (drawn with
        ``matrix_world`` identity: the shape holds its own placements)
    matrix_world : (4, 4) object -> world (numpy or mathutils)
    color : scene-linear RGBA (Blender's ``Object.color``)
    selected, active : selection state (outline in the theme's colours)
    """

    key: str
    implicit: object
    matrix_world: np.ndarray = field(default_factory=lambda: np.eye(4))
    color: tuple = DEFAULT_COLOR
    selected: bool = False
    active: bool = False


# ============================================================================ GPU resources

def build_trace_shader(arch, debug_steps: bool = False):
    """Compile the sphere-tracing shader of one architecture, or of a CSGShape's tree
    (``core.geometry.glsl.trace_program``; raises on compile errors)."""
    typedef, vertex, fragment = trace_program(arch, debug_steps)
    iface = gpu.types.GPUStageInterfaceInfo("ni_trace_iface")
    iface.smooth('VEC3', "net_pos")
    info = gpu.types.GPUShaderCreateInfo()
    info.typedef_source(typedef)
    info.uniform_buf(0, "NIObject", "obj")
    if isinstance(arch, CSGShape):
        info.uniform_buf(1, "NICSG", "csg")
    info.sampler(0, 'FLOAT_2D', "weights_tx")
    info.vertex_in(0, 'VEC3', "pos")
    info.vertex_out(iface)
    info.fragment_out(0, 'VEC4', "fragColor")
    info.depth_write('ANY')
    info.vertex_source(vertex)
    info.fragment_source(fragment)
    return gpu.shader.create_from_info(info)


def _fullscreen_shader(name: str, fragment: str, size: str, samplers, typedef: str = "",
                       depth_write: bool = False):
    """(shader, batch) of a full-screen pass (``core.geometry.glsl.FULLSCREEN_VERTEX``): push
    constant ``size`` (vec2), ``samplers`` as (type, name) in slot order, a ``NICSG`` block when
    ``typedef``."""
    iface = gpu.types.GPUStageInterfaceInfo(name)
    iface.smooth('VEC2', "uv")
    info = gpu.types.GPUShaderCreateInfo()
    if typedef:
        info.typedef_source(typedef)
        info.uniform_buf(1, "NICSG", "csg")
    info.push_constant('VEC2', size)
    for slot, (kind, sampler) in enumerate(samplers):
        info.sampler(slot, kind, sampler)
    info.vertex_in(0, 'VEC2', "pos")
    info.vertex_out(iface)
    info.fragment_out(0, 'VEC4', "fragColor")
    if depth_write:
        info.depth_write('ANY')
    info.vertex_source(FULLSCREEN_VERTEX)
    info.fragment_source(fragment)
    shader = gpu.shader.create_from_info(info)
    return shader, batch_for_shader(shader, 'TRIS', {"pos": [(-1, -1), (3, -1), (-1, 3)]})


def _texture(data: np.ndarray):
    """An RGBA32F GPUTexture of ``data`` (rows, columns, 4), row 0 first."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    buf = gpu.types.Buffer('FLOAT', data.size, data.ravel())
    return gpu.types.GPUTexture((data.shape[1], data.shape[0]), format='RGBA32F', data=buf)


def _offscreen(width: int, height: int, draw: Callable[[], None], depth: bool = False):
    """Run ``draw`` into a cleared RGBA32F GPUOffScreen and read it back: float32 colour (h, w, 4)
    and, with ``depth``, its own depth attachment (h, w) (else None), row 0 at the bottom."""
    off = gpu.types.GPUOffScreen(width, height, format='RGBA32F')
    try:
        with off.bind():
            fb = gpu.state.active_framebuffer_get()
            fb.clear(color=(0.0, 0.0, 0.0, 0.0), depth=1.0)
            gpu.state.viewport_set(0, 0, width, height)
            draw()
            rgba = np.array(fb.read_color(0, 0, width, height, 4, 0, 'FLOAT').to_list(),
                            dtype=np.float32).reshape(height, width, 4)
            z = (np.array(fb.read_depth(0, 0, width, height).to_list(),
                          dtype=np.float32).reshape(height, width) if depth else None)
    finally:
        off.free()
    return rgba, z


def evaluate_on_gpu(implicit, Q) -> np.ndarray:
    """The shader's network function evaluated at network-frame points Q (n, 3) -> (n,) float32.

    For tests and debugging: it runs exactly the GLSL of ``core.geometry.glsl.network_glsl`` over
    the texture of ``core.representation.layout.pack_weights``, one point per pixel of an offscreen
    buffer. Needs a GPU context. For a ``CSGShape`` it runs ``core.geometry.glsl.csg_glsl`` with
    ``csg_block`` at points of the shape's frame (``CSGShape.evaluate``'s).
    """
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    if Q.ndim != 2 or Q.shape[1] != 3 or not len(Q):
        raise InputError(f"Q must have shape (n, 3) with n > 0, got {Q.shape}")
    csg = isinstance(implicit, CSGShape)
    arch = implicit if csg else implicit.architecture
    reason = gpu_unsupported_reason(arch)
    if reason:
        raise InputError(reason)
    w = min(len(Q), 256)
    h = -(-len(Q) // w)
    pts = np.zeros((w * h, 4), np.float32)
    pts[:len(Q), :3] = Q
    points = _texture(pts.reshape(h, w, 4))
    weights = _texture(texture_data(weight_texels(implicit)))
    typedef, fragment = evaluate_fragment(arch)
    shader, batch = _fullscreen_shader("ni_eval_iface", fragment, "size",
                                       (('FLOAT_2D', "weights_tx"), ('FLOAT_2D', "points_tx")),
                                       typedef)

    def draw():
        shader.bind()
        shader.uniform_float("size", (float(w), float(h)))
        if csg:   # kept in a variable: the buffer must outlive the draw call
            ubo = gpu.types.GPUUniformBuf(csg_block(implicit))
            shader.uniform_block("csg", ubo)
        shader.uniform_sampler("weights_tx", weights)
        shader.uniform_sampler("points_tx", points)
        batch.draw(shader)

    rgba, _ = _offscreen(w, h, draw)
    return rgba.reshape(-1, 4)[:len(Q), 0].copy()


def _cube():
    """Corners and outward counter-clockwise triangles of the cube [-1, 1]^3."""
    V = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float32)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = []
    for a, b, c, d in quads:
        for tri in ((a, b, c), (a, c, d)):
            p = V[list(tri)]
            if np.dot(np.cross(p[1] - p[0], p[2] - p[0]), p.mean(0)) < 0:
                tri = (tri[0], tri[2], tri[1])
            tris.append(tri)
    return V, tris


# ============================================================================ renderer

@dataclass
class _Weights:
    texture: object
    arch: object
    texels: int
    last_draw: int


class ImplicitRenderer:
    """Owns the shaders, the proxy batches and the per-network weight textures.

    One instance lives as long as the draw handler (or a test). Not thread-safe: use it from the
    thread that draws (Blender's main thread).
    """

    def __init__(self):
        self._programs = {}        # (arch, debug) -> (shader, batch)
        self._failed = {}          # (arch, debug) -> error message
        self._weights = {}         # key -> _Weights
        self._composite = None
        self._lowres = None        # (w, h, color_tex, depth_tex, framebuffer)
        self._draws = 0
        self.uploads = 0           # weight textures uploaded so far (tests check re-use)
        self.errors = {}           # item key -> why it was not drawn

    # ------------------------------------------------------------------ resources
    def program(self, arch, debug_steps: bool = False):
        """(shader, proxy batch) of an architecture or of a CSGShape's tree shape
        (:func:`csg_signature`), compiled on first use."""
        csg = isinstance(arch, CSGShape)
        k = (("csg", csg_signature(arch)) if csg else arch, debug_steps)
        if k in self._failed:
            raise RuntimeError(self._failed[k])
        if k not in self._programs:
            try:
                shader = build_trace_shader(arch, debug_steps)
            except Exception as exc:  # the GPU module raises plain Exception on compile errors
                what = (f"CSG of {len(arch.leaves())} networks" if csg else arch_name(arch))
                self._failed[k] = f"viewport shader for {what} failed to compile: {exc}"
                raise RuntimeError(self._failed[k]) from None
            V, tris = _cube()
            batch = batch_for_shader(shader, 'TRIS', {"pos": V.tolist()}, indices=tris)
            self._programs[k] = (shader, batch)
        return self._programs[k]

    def weights(self, key: str, implicit):
        """The weight texture of ``key``, uploaded only when the key (or architecture) is new."""
        entry = self._weights.get(key)
        layout = texture_key(implicit)
        if entry is None or entry.arch != layout:
            texels = weight_texels(implicit)
            entry = _Weights(_texture(texture_data(texels)), layout, len(texels), self._draws)
            self._weights[key] = entry
            self.uploads += 1
        entry.last_draw = self._draws
        return entry.texture

    def cached_keys(self) -> list:
        return sorted(self._weights)

    def _evict(self):
        stale = [k for k, e in self._weights.items() if self._draws - e.last_draw > CACHE_IDLE_DRAWS]
        for k in stale:
            del self._weights[k]   # the GPUTexture is freed with its last reference

    def free(self):
        """Drop every GPU resource (called on unregister)."""
        self._programs.clear()
        self._failed.clear()
        self._weights.clear()
        self._composite = None
        self._lowres = None

    def _lowres_target(self, w: int, h: int):
        if self._lowres is None or self._lowres[:2] != (w, h):
            color = gpu.types.GPUTexture((w, h), format='RGBA16F')
            depth = gpu.types.GPUTexture((w, h), format='DEPTH_COMPONENT32F')
            fb = gpu.types.GPUFrameBuffer(depth_slot=depth, color_slots=(color,))
            self._lowres = (w, h, color, depth, fb)
        return self._lowres

    # ------------------------------------------------------------------ drawing
    def draw(self, items, view_matrix, projection_matrix, width: int, height: int,
             settings: ViewportSettings | None = None, *, scale: float = 1.0,
             debug_steps: bool = False) -> int:
        """Draw ``items`` into the bound framebuffer (viewport ``width x height`` pixels) with depth
        test LESS_EQUAL and depth writes; restores gpu.state. ``scale < 1`` traces at that fraction of
        the resolution and upsamples. Returns the number of items drawn; items that cannot be drawn
        are skipped and explained in ``self.errors``."""
        settings = (settings or ViewportSettings()).validate()
        self._draws += 1
        scale = float(scale)
        if not (0.0 < scale <= 1.0):
            raise InputError(f"scale must be in (0, 1], got {scale!r}")
        depth_test = gpu.state.depth_test_get()
        depth_mask = gpu.state.depth_mask_get()
        blend = gpu.state.blend_get()
        try:
            gpu.state.blend_set('NONE')
            gpu.state.depth_test_set('LESS_EQUAL')
            gpu.state.depth_mask_set(True)
            if scale >= 1.0:
                drawn = self._draw_items(items, view_matrix, projection_matrix, height, settings,
                                         debug_steps)
            else:
                drawn = self._draw_scaled(items, view_matrix, projection_matrix, width, height,
                                          settings, scale, debug_steps)
        finally:
            gpu.state.face_culling_set('NONE')
            gpu.state.front_facing_set(False)
            gpu.state.depth_test_set(depth_test)
            gpu.state.depth_mask_set(depth_mask)
            gpu.state.blend_set(blend)
        self._evict()
        return drawn

    def _draw_items(self, items, V, P, height, settings, debug_steps) -> int:
        V = np.array(V, dtype=np.float64)
        P = np.array(P, dtype=np.float64)
        drawn = 0
        for item in items:
            csg = isinstance(item.implicit, CSGShape)
            arch = item.implicit if csg else item.implicit.architecture
            reason = gpu_unsupported_reason(arch)
            if reason is None:
                try:
                    shader, batch = self.program(arch, debug_steps)
                except RuntimeError as exc:
                    reason = str(exc)
            if reason is not None:
                self.errors[item.key] = reason
                continue
            self.errors.pop(item.key, None)
            texture = self.weights(item.key, item.implicit)
            fr = item_frames(item, V, P, height)
            ubo = gpu.types.GPUUniformBuf(object_block(fr, item, settings))
            gpu.state.front_facing_set(fr.mirrored)
            gpu.state.face_culling_set('FRONT')
            shader.bind()
            shader.uniform_block("obj", ubo)
            if csg:   # kept in a variable: the buffer must outlive the draw call
                csg_ubo = gpu.types.GPUUniformBuf(csg_block(item.implicit))
                shader.uniform_block("csg", csg_ubo)
            shader.uniform_sampler("weights_tx", texture)
            batch.draw(shader)
            drawn += 1
        return drawn

    def _draw_scaled(self, items, V, P, width, height, settings, scale, debug_steps) -> int:
        lw = max(1, int(round(width * scale)))
        lh = max(1, int(round(height * scale)))
        _, _, color, depth, fb = self._lowres_target(lw, lh)
        viewport = gpu.state.viewport_get()
        with fb.bind():
            gpu.state.viewport_set(0, 0, lw, lh)
            fb.clear(color=(0.0, 0.0, 0.0, 0.0), depth=1.0)
            drawn = self._draw_items(items, V, P, lh, settings, debug_steps)
        gpu.state.viewport_set(*viewport)
        if self._composite is None:   # nearest-texel upsampling with depth
            self._composite = _fullscreen_shader(
                "ni_composite_iface", COMPOSITE_FRAGMENT, "lowres",
                (('FLOAT_2D', "color_tx"), ('DEPTH_2D', "depth_tx")), depth_write=True)
        shader, batch = self._composite
        gpu.state.face_culling_set('NONE')
        shader.bind()
        shader.uniform_float("lowres", (float(lw), float(lh)))
        shader.uniform_sampler("color_tx", color)
        shader.uniform_sampler("depth_tx", depth)
        batch.draw(shader)
        return drawn

    def render_offscreen(self, items, view_matrix, projection_matrix, width: int, height: int,
                         settings: ViewportSettings | None = None, *, scale: float = 1.0,
                         before: Optional[Callable[[], None]] = None,
                         after: Optional[Callable[[], None]] = None, debug_steps: bool = False):
        """Render into a GPUOffScreen and read it back through the same draw path as the viewport.

        before / after : optional callables drawn into the same framebuffer before / after the
        implicits (tests and docs draw meshes with them; the projection is theirs to set).
        Returns ``(rgba, depth)``: float32 (h, w, 4) display-space colour (alpha 0 where nothing was
        drawn) and float32 (h, w) window depth (1 = background), row 0 at the top, like
        core.geometry.trace. The depth is read from the offscreen framebuffer's own depth
        attachment.
        """
        def draw():
            if before is not None:
                before()
            self.draw(items, view_matrix, projection_matrix, width, height, settings,
                      scale=scale, debug_steps=debug_steps)
            if after is not None:
                after()

        rgba, depth = _offscreen(int(width), int(height), draw, depth=True)
        return rgba[::-1].copy(), depth[::-1].copy()


# ============================================================================ draw handler

class _HandlerState:
    """The one place that holds the draw handler and what it needs between frames."""

    def __init__(self):
        self.handle = None
        self.renderer: ImplicitRenderer | None = None
        self.get_items = None
        self.get_settings = None
        self.views = {}            # region pointer -> (view bytes, time of last change)
        self.timer = None          # the pending full-quality redraw timer function
        self.last_error = None


_state = _HandlerState()


def is_registered() -> bool:
    return _state.handle is not None


def renderer() -> ImplicitRenderer | None:
    """The renderer of the registered handler (for panels that show errors), or None."""
    return _state.renderer


def last_error() -> Optional[str]:
    return _state.last_error


def register_draw_handler(get_items: Callable, get_settings: Optional[Callable] = None) -> None:
    """Add the SpaceView3D POST_VIEW handler (idempotent: a second call only swaps the callbacks).

    get_items(context) -> list[DrawItem]; get_settings(context) -> ViewportSettings (default
    settings when omitted). Neither may keep ``context`` or Blender data beyond the call.
    """
    _state.get_items = get_items
    _state.get_settings = get_settings
    if _state.handle is None:
        _state.renderer = ImplicitRenderer()
        _state.handle = bpy.types.SpaceView3D.draw_handler_add(_draw_callback, (), 'WINDOW',
                                                               'POST_VIEW')


def unregister_draw_handler() -> None:
    """Remove the handler, its timer and every GPU resource (idempotent)."""
    if _state.handle is not None:
        bpy.types.SpaceView3D.draw_handler_remove(_state.handle, 'WINDOW')
        _state.handle = None
    if _state.timer is not None and bpy.app.timers.is_registered(_state.timer):
        bpy.app.timers.unregister(_state.timer)
    _state.timer = None
    if _state.renderer is not None:
        _state.renderer.free()
    _state.renderer = None
    _state.get_items = None
    _state.get_settings = None
    _state.views.clear()


def _view_moving(region, view_key: bytes, still_delay: float) -> bool:
    """Whether this region's view changed within the last ``still_delay`` seconds."""
    now = time.monotonic()
    rid = region.as_pointer()
    prev = _state.views.get(rid)
    if prev is None:
        _state.views[rid] = (view_key, now - still_delay - 1.0)
        return False
    if prev[0] != view_key:
        _state.views[rid] = (view_key, now)
        return True
    return now - prev[1] < still_delay


def _schedule_full_quality(still_delay: float) -> None:
    """One-shot timer: when every view has been still for ``still_delay``, redraw the 3D views."""
    if _state.timer is not None and bpy.app.timers.is_registered(_state.timer):
        return

    def full_quality():
        now = time.monotonic()
        latest = max((t for _, t in _state.views.values()), default=0.0)
        wait = latest + still_delay - now
        if wait > 0:
            return wait + 0.01
        _state.timer = None
        from .bridge import tag_view3d_redraw
        tag_view3d_redraw(bpy.context)
        return None

    _state.timer = full_quality
    bpy.app.timers.register(full_quality, first_interval=still_delay + 0.01)


def _draw_callback():
    context = bpy.context
    rv3d = context.region_data
    region = context.region
    if rv3d is None or region is None or _state.renderer is None or _state.get_items is None:
        return
    try:
        items = _state.get_items(context)
        if not items:
            return
        settings = _state.get_settings(context) if _state.get_settings else ViewportSettings()
        V = np.array(rv3d.view_matrix, dtype=np.float64)
        P = np.array(rv3d.window_matrix, dtype=np.float64)
        key = V.tobytes() + P.tobytes() + bytes((region.width % 256, region.height % 256))
        scale = 1.0
        if settings.resolution_scale < 1.0 and _view_moving(region, key, settings.still_delay):
            scale = settings.resolution_scale
            _schedule_full_quality(settings.still_delay)
        _state.renderer.draw(items, V, P, region.width, region.height, settings, scale=scale)
        _state.last_error = None
    except Exception as exc:  # a draw callback must never raise every frame
        message = f"{type(exc).__name__}: {exc}"
        if message != _state.last_error:
            log.exception("neural implicit viewport drawing failed")
        _state.last_error = message


__all__ = ["ViewportSettings", "DrawItem", "ImplicitRenderer", "evaluate_on_gpu",
           "register_draw_handler", "unregister_draw_handler", "is_registered", "renderer",
           "last_error"]
