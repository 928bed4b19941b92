"""Reference sphere tracer (numpy only): the camera model, stepping rule and shading of the viewport.

Why this module exists: the Blender viewport draws neural implicits with a GLSL sphere tracer
(``neural_implicit_addon/viewport.py``). This module is its specification in numpy: the same camera
model, the same per-object matrices (:func:`item_frames`, which the viewport uploads verbatim), the
same stepping rule and the same shading constants, so the tests can compare GPU pixels against it and
users without a GPU (or without Blender) get CPU preview renders (:func:`trace`, :func:`save_png`).

Camera model (Blender's ``RegionView3D.view_matrix`` / ``window_matrix``, OpenGL conventions)
---------------------------------------------------------------------------------------------
* ``view_matrix`` (4, 4) maps world to view space (camera looks down -z), ``projection_matrix``
  (4, 4) maps view space to clip space; perspective and orthographic both work.
* Pixel ``(row, col)`` of a ``width x height`` image (row 0 at the **top**, as in image files) has its
  centre at ``ndc = ((2 col + 1) / width - 1, 1 - (2 row + 1) / height)``.
* Its ray runs from the near plane (ndc z = -1) to the far plane (ndc z = +1), both unprojected with
  the inverse of ``projection @ view``. Hits outside the clip volume are discarded.
* Depth is the window-space depth ``0.5 * z_ndc + 0.5`` in [0, 1] that ``gl_FragDepth`` receives with
  the default depth range; background pixels have depth 1.

Tracing (per object, in the object's **network frame**)
------------------------------------------------------
The object's ``matrix_world`` maps its local frame (= the mesh frame of the implicit) to the world;
``implicit.transform`` maps the mesh frame to the network frame. Their composition ``A`` (world ->
network) is affine, so a straight world ray is a straight ray in the network frame. We trace there,
along a unit-length network-frame direction, so the network's value ``f`` is a distance in the units
of the ray parameter and the step ``t += step_factor * f`` is correct whatever non-uniform scale,
shear or mirroring ``matrix_world`` has. The ray starts where it enters the ball of radius
``BOUND_RADIUS`` (or at the near plane when that is inside the ball) and stops when it leaves the
ball (the network is undefined outside), after ``max_steps`` evaluations, or when ``f < epsilon``
(a hit; ``epsilon`` is in network units, where the shape has radius ``MESH_RADIUS`` = 0.9).
Only converting the network-frame hit back to the world needs ``A``; see
:attr:`ItemFrames.world_step_scale` for the conservative factor needed when several networks are
combined in one world-space trace (CSG).

Shapes other than one implicit (CSG)
------------------------------------
An item's ``implicit`` may be any *shape*: ``transform`` (mesh -> its frame) and ``evaluate(Q)`` in
that frame, a distance (or a conservative lower bound of one) in the frame's units. Two optional
attributes say where it lives: ``bound_radius`` (the ball around the frame's origin that holds it;
``BOUND_RADIUS`` when absent) and ``unit`` (the frame length of one network unit, by which
``epsilon`` and ``NORMAL_DELTA`` are scaled; 1 when absent). ``core.geometry.csg.CSGShape`` is such
a shape: its frame is the world translated to its bounding sphere's centre, so a CSG result is
traced in world units with one ray per pixel through all of its networks, as the viewport's CSG
shader does.

Normals are the central-difference gradient on a tetrahedron (4 evaluations, ``NORMAL_DELTA``) in the
network frame, taken to world and view space with the inverse-transpose of the linear maps.

Shading (``shade``): studio-like lighting fixed to the camera, like Blender's Solid mode: a hemisphere
ambient term, three directional lights (key, fill, rim) with Lambert diffuse, and a Blinn-Phong
highlight of the key light, on the object's scene-linear colour; the result is encoded to sRGB for
display (the 3D viewport's draw handlers write display-referred Rec.709 sRGB). Selected objects get
Blender's outline: rays that miss the surface but pass within ``OUTLINE_PIXELS`` pixels of it (the
smallest ``f`` along the ray measured in pixels at that distance) take the theme's selection colour.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..common.constants import BOUND_RADIUS, EVAL_CHUNK
from ..common.errors import InputError
from ..common.settings import check_fields, described
from .remesh import MAX_CHUNK, eval_chunk

# --------------------------------------------------------------------------------------- constants

#: Offset (network units) of the tetrahedral central differences for normals: ~1/1000 of the shape's
#: size, far above float32 noise (1e-7) yet below the detail an 8 x 32 network resolves.
NORMAL_DELTA = 1e-3

#: The four tetrahedron directions of the finite-difference gradient (Quilez): sum_i k_i f(p + h k_i).
TETRAHEDRON = ((1.0, -1.0, -1.0), (-1.0, -1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, 1.0, 1.0))

#: Lights in **view space** (x right, y up, z towards the viewer): (direction to the light, intensity).
#: A key light from the upper left, a weaker fill from the right and a rim light from behind, like the
#: default studio light of Blender's Solid mode.
LIGHTS = (
    ((-0.45, 0.60, 0.66), 0.62),
    ((0.70, 0.10, 0.45), 0.22),
    ((0.10, 0.55, -0.80), 0.18),
)
#: Hemisphere ambient: ``AMBIENT_GROUND + (AMBIENT_SKY - AMBIENT_GROUND) * (0.5 + 0.5 n_y)``.
AMBIENT_SKY = 0.30
AMBIENT_GROUND = 0.12
#: Blinn-Phong highlight of the key light (white, added after the diffuse term).
SPECULAR = 0.22
SHININESS = 32.0

#: Outline width in pixels for selected objects and the theme colours (sRGB, Blender's defaults for
#: the active object and other selected objects).
OUTLINE_PIXELS = 1.5
ACTIVE_SRGB = (1.0, 0.667, 0.251)
SELECTED_SRGB = (0.945, 0.345, 0.0)

#: Object colour used when none is given (Blender's default material grey, scene-linear).
DEFAULT_COLOR = (0.8, 0.8, 0.8, 1.0)

#: Largest image traced: 2^23 pixels (a 4K UHD viewport, 3840 x 2160, is 8.3 M). The result's eight
#: per-pixel arrays take 54 bytes a pixel, 450 MB here; an unchecked ``width x height`` from a caller
#: (100,000 x 100,000) would ask for half a terabyte before the first ray.
MAX_PIXELS = 1 << 23

#: Pixels traced together: the tracer's float64 per-ray state (ray origin and direction, parameters,
#: depth, colour: about 300 bytes a ray) exists for one tile at a time, about 20 MB.
TRACE_TILE = 65_536


# --------------------------------------------------------------------------------------- settings

@dataclass
class TraceSettings:
    """Sphere-tracing knobs shared by the numpy tracer and the viewport shader (each field's help
    and range are the Blender properties' too). The step factor is below 1 because a trained
    network only approximates a distance and may overestimate it."""

    max_steps: int = described(96, "network evaluations per pixel at most (a ray that runs out "
                                   "counts as a miss)", min=1, max=4096)
    epsilon: float = described(1e-3, "a ray hits the surface where the network is below this "
                                     "(network units: the shape's radius is 0.9)",
                               min=1e-7, max=0.1)
    step_factor: float = described(0.9, "safety factor on each sphere-tracing step, t += factor * "
                                        "f: lower it if thin parts show holes, raise it for speed",
                                   min=0.05, max=1.0)

    def validate(self) -> "TraceSettings":
        return check_fields(self)


@dataclass
class ViewportSettings(TraceSettings):
    """Blender's viewport drawing: the tracing fields and how it stays interactive."""

    resolution_scale: float = described(0.5, "resolution at which implicits are traced while the "
                                              "view moves (full resolution once it stops)",
                                        min=0.05, max=1.0)
    still_delay: float = described(0.25, "seconds without view change after which one "
                                         "full-resolution frame is drawn", min=0.0, max=10.0)


@dataclass
class TraceItem:
    """One implicit object in the scene.

    implicit : core.representation.implicit.Implicit (anything with ``evaluate(Q) -> (n,)`` and
    ``transform`` works)
    matrix_world : (4, 4) object (= mesh frame) -> world
    color : scene-linear RGBA
    selected, active : draw Blender's selection outline (active wins)
    """

    implicit: object
    matrix_world: np.ndarray = field(default_factory=lambda: np.eye(4))
    color: tuple = DEFAULT_COLOR
    selected: bool = False
    active: bool = False


def as_item(item) -> TraceItem:
    """Accept a TraceItem, any object with the same attributes (the viewport's DrawItem), or a tuple
    ``(implicit, matrix_world[, color[, selected[, active]]])``."""
    if isinstance(item, TraceItem):
        return item
    if isinstance(item, (tuple, list)):
        if not 1 <= len(item) <= 5:
            raise InputError(f"an item tuple must be (implicit, matrix_world[, color, selected, "
                             f"active]), got {len(item)} values")
        return TraceItem(*item)
    try:
        return TraceItem(item.implicit, item.matrix_world, item.color,
                         bool(getattr(item, "selected", False)), bool(getattr(item, "active", False)))
    except AttributeError:
        raise InputError(f"cannot use {type(item).__name__} as a trace item: it needs .implicit, "
                         f".matrix_world and .color") from None


# --------------------------------------------------------------------------------------- frames

def _matrix(M, name: str) -> np.ndarray:
    M = np.array(M, dtype=np.float64)
    if M.shape != (4, 4) or not np.isfinite(M).all():
        raise InputError(f"{name} must be a finite 4x4 matrix, got shape {M.shape}")
    return M


@dataclass
class ItemFrames:
    """Per-object matrices of one view; the viewport uploads exactly these to its shader.

    world_to_net : (4, 4) world -> network frame (``implicit.transform @ inv(matrix_world)``)
    net_to_world : (4, 4) its inverse
    net_to_clip : (4, 4) network frame -> clip space (``projection @ view @ net_to_world``)
    clip_to_net : (4, 4) its inverse (unprojects pixel rays straight into the network frame)
    normal_to_view : (3, 3) network-frame gradient -> view-space normal (inverse-transpose)
    normal_to_world : (3, 3) network-frame gradient -> world normal (inverse-transpose)
    dir_to_view : (3, 3) network-frame direction -> view-space direction
    pixel_scale : network-unit size of one pixel per unit of clip-space w (``pixel = pixel_scale *
        w_clip``), used for the outline width; the network frame's scale is taken as the cube root of
        ``|det|`` of world -> network
    mirrored : the object's transform flips orientation (the proxy's faces wind the other way)
    """

    world_to_net: np.ndarray
    net_to_world: np.ndarray
    net_to_clip: np.ndarray
    clip_to_net: np.ndarray
    normal_to_view: np.ndarray
    normal_to_world: np.ndarray
    dir_to_view: np.ndarray
    pixel_scale: float
    mirrored: bool

    @property
    def world_step_scale(self) -> float:
        """Conservative factor from network-frame distances to world distances.

        A network-frame ball of radius ``f`` maps to a world ellipsoid whose smallest semi-axis is
        ``f * sigma_min(L)``, with ``L`` the linear part of network -> world (``sigma_min`` its smallest
        singular value). So ``f * world_step_scale`` is a safe world-space sphere-tracing step under
        any non-uniform scale. Single objects do not need it (they are traced in their own network
        frame, where ``f`` is exact); a trace that combines several networks (CSG) in world space does.
        """
        return float(np.linalg.svd(self.net_to_world[:3, :3], compute_uv=False)[-1])


def item_frames(item, view_matrix, projection_matrix, height: int) -> ItemFrames:
    """The matrices of one item for one view. ``height`` is the image height in pixels."""
    it = as_item(item)
    M = _matrix(it.matrix_world, "matrix_world")
    V = _matrix(view_matrix, "view_matrix")
    P = _matrix(projection_matrix, "projection_matrix")
    T = _matrix(it.implicit.transform, "implicit.transform")
    try:
        world_to_net = T @ np.linalg.inv(M)
        net_to_world = np.linalg.inv(world_to_net)
        net_to_clip = P @ V @ net_to_world
        clip_to_net = np.linalg.inv(net_to_clip)
    except np.linalg.LinAlgError:
        raise InputError("matrix_world, view or projection matrix is singular") from None
    A = world_to_net[:3, :3]
    Vl = V[:3, :3]
    normal_to_world = A.T
    normal_to_view = np.linalg.inv(Vl).T @ A.T
    dir_to_view = Vl @ net_to_world[:3, :3]
    s_net = float(np.cbrt(abs(np.linalg.det(A))))
    p11 = abs(P[1, 1])
    pixel_scale = 2.0 * s_net / (max(int(height), 1) * p11) if p11 > 0 else 0.0
    return ItemFrames(world_to_net, net_to_world, net_to_clip, clip_to_net, normal_to_view,
                      normal_to_world, dir_to_view, pixel_scale,
                      bool(np.linalg.det(net_to_world[:3, :3]) < 0))


def pixel_ndc(width: int, height: int) -> np.ndarray:
    """(height, width, 2) normalised device coordinates of the pixel centres, row 0 at the top."""
    x = (2.0 * np.arange(width) + 1.0) / width - 1.0
    y = 1.0 - (2.0 * np.arange(height) + 1.0) / height
    return np.stack(np.meshgrid(x, y, indexing="xy"), axis=-1)


def _hom(M: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Apply a 4x4 projective map to (n, 3) points."""
    Y = X @ M[:3, :3].T + M[:3, 3]
    w = X @ M[3, :3] + M[3, 3]
    return Y / w[:, None]


def _clip_w(M: np.ndarray, X: np.ndarray) -> np.ndarray:
    return X @ M[3, :3] + M[3, 3]


def _depth(net_to_clip: np.ndarray, X: np.ndarray) -> np.ndarray:
    C = X @ net_to_clip[:, :3].T + net_to_clip[:, 3]
    return 0.5 * C[:, 2] / C[:, 3] + 0.5


# --------------------------------------------------------------------------------------- shading

def srgb_to_linear(c):
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c):
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1.0 / 2.4) - 0.055)


def shade(normal_view: np.ndarray, to_eye_view: np.ndarray, color: np.ndarray) -> np.ndarray:
    """Studio-like shading in view space; returns display (sRGB) RGB in [0, 1].

    normal_view, to_eye_view : (n, 3) unit vectors (surface normal; direction from the surface
    towards the camera); color : (n, 3) or (3,) scene-linear base colour.
    """
    n = normal_view
    ny = n[:, 1]
    light = AMBIENT_GROUND + (AMBIENT_SKY - AMBIENT_GROUND) * (0.5 + 0.5 * ny)
    for d, intensity in LIGHTS:
        L = np.asarray(d) / np.linalg.norm(d)
        light = light + intensity * np.maximum(n @ L, 0.0)
    L0 = np.asarray(LIGHTS[0][0]) / np.linalg.norm(LIGHTS[0][0])
    H = L0[None, :] + to_eye_view
    H /= np.maximum(np.linalg.norm(H, axis=1, keepdims=True), 1e-12)
    spec = SPECULAR * np.maximum((n * H).sum(1), 0.0) ** SHININESS
    rgb = np.asarray(color, dtype=np.float64) * light[:, None] + spec[:, None]
    return linear_to_srgb(rgb)


def outline_color_linear(selected: bool, active: bool):
    """Scene-linear outline colour of an item, or None when it is not selected."""
    if active:
        return tuple(srgb_to_linear(ACTIVE_SRGB))
    if selected:
        return tuple(srgb_to_linear(SELECTED_SRGB))
    return None


# --------------------------------------------------------------------------------------- tracing

@dataclass
class TraceResult:
    """A traced image. Images are (height, width, ...) with row 0 at the top.

    hit : bool, a ray hit a surface; coverage : bool, hit or selection outline (what the GPU draws)
    depth : float32 window depth in [0, 1], 1 where nothing was drawn
    position : float32 (h, w, 3) world hit point, NaN where no hit
    normal : float32 (h, w, 3) unit world normal, 0 where no hit
    steps : int32 sphere-tracing evaluations per pixel, summed over the items whose ball it crosses
    item : int32 index of the visible item, -1 for background
    rgba : float32 (h, w, 4) display (sRGB) colour, alpha 0 on the background
    evaluations : total network evaluations (tracing + normals)
    """

    hit: np.ndarray
    coverage: np.ndarray
    depth: np.ndarray
    position: np.ndarray
    normal: np.ndarray
    steps: np.ndarray
    item: np.ndarray
    rgba: np.ndarray
    evaluations: int = 0

    @property
    def mean_steps(self) -> float:
        """Average evaluations per pixel over the pixels whose ray entered a bounding ball."""
        traced = self.steps > 0
        return float(self.steps[traced].mean()) if traced.any() else 0.0


def sphere_interval(o: np.ndarray, d: np.ndarray, radius: float = BOUND_RADIUS):
    """Entry and exit parameters of rays o + t d (d unit, (n, 3)) in the ball; NaN where they miss."""
    b = (o * d).sum(1)
    c = (o * o).sum(1) - radius * radius
    disc = b * b - c
    s = np.sqrt(np.where(disc >= 0, disc, np.nan))
    return -b - s, -b + s


def shape_radius(shape) -> float:
    """Radius of the ball around the shape's frame origin that holds it (module docstring)."""
    return float(getattr(shape, "bound_radius", BOUND_RADIUS))


def shape_unit(shape) -> float:
    """Frame length of one network unit: the scale of ``epsilon`` and the normal offset."""
    return float(getattr(shape, "unit", 1.0))


def _trace_item(it: TraceItem, fr: ItemFrames, ndc: np.ndarray, settings: TraceSettings,
                chunk: int):
    """Trace one item for (n, 2) pixel ndc. Returns per-ray arrays (see trace())."""
    n = len(ndc)
    near = _hom(fr.clip_to_net, np.column_stack([ndc, -np.ones(n)]))
    far = _hom(fr.clip_to_net, np.column_stack([ndc, np.ones(n)]))
    d = far - near
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    t0, t1 = sphere_interval(near, d, shape_radius(it.implicit))
    t0 = np.maximum(t0, 0.0)
    alive = np.isfinite(t1) & (t1 > t0)

    t = np.where(alive, t0, 0.0)
    steps = np.zeros(n, np.int32)
    hit = np.zeros(n, bool)
    best = np.full(n, np.inf)          # smallest f / pixel size seen along the ray (outline)
    best_t = np.zeros(n)
    act = np.nonzero(alive)[0]
    eps = np.float32(settings.epsilon * shape_unit(it.implicit))
    k = float(settings.step_factor)
    evals = 0
    for _ in range(int(settings.max_steps)):
        if not len(act):
            break
        P = near[act] + t[act, None] * d[act]
        f = _finite(it.implicit.evaluate(P, eval_chunk(it.implicit, chunk)).astype(np.float64))
        evals += len(act)
        steps[act] += 1
        h = f < eps
        hit[act[h]] = True
        miss = ~h
        a, fm, Pm = act[miss], f[miss], P[miss]
        ratio = fm / np.maximum(fr.pixel_scale * _clip_w(fr.net_to_clip, Pm), 1e-30)
        better = ratio < best[a]
        best[a[better]] = ratio[better]
        best_t[a[better]] = t[a[better]]
        t[a] += k * fm
        act = a[t[a] <= t1[a]]
    return near, d, t, hit, steps, best, best_t, evals


def tetra_gradient(implicit, P: np.ndarray, delta: float = NORMAL_DELTA,
                   chunk: int = EVAL_CHUNK) -> np.ndarray:
    """Central-difference gradient on a tetrahedron: sum_i k_i f(P + delta k_i), (n, 3) unnormalised
    (4 evaluations per point, the same formula as the shader)."""
    K = np.asarray(TETRAHEDRON)
    Q = (P[None, :, :] + delta * K[:, None, :]).reshape(-1, 3)
    f = _finite(implicit.evaluate(Q, eval_chunk(implicit, chunk)).astype(np.float64)).reshape(4, -1)
    return (K[:, None, :] * f[:, :, None]).sum(0)


def _finite(f: np.ndarray) -> np.ndarray:
    """``f``, unless the network gave NaN or infinity: NaN fails every comparison, so a ray would
    silently miss (and ``t += NaN`` end it); a corrupt network must not look like an empty view."""
    bad = ~np.isfinite(f)
    if bad.any():
        raise InputError(f"the network evaluates to NaN or infinity at {int(bad.sum()):,} of "
                         f"{len(f):,} ray points: the file is corrupt or its weights overflow float32")
    return f


def check_image_size(width, height) -> None:
    """Refuse sizes that are not positive integers or exceed :data:`MAX_PIXELS`."""
    if not (isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer))
            and not isinstance(width, bool) and not isinstance(height, bool)
            and width >= 1 and height >= 1):
        raise InputError(f"width and height must be positive integers, got {width!r} x {height!r}")
    if int(width) * int(height) > MAX_PIXELS:
        raise InputError(f"an image of {width} x {height} has {int(width) * int(height):,} pixels; "
                         f"at most {MAX_PIXELS:,} can be traced (lower the resolution)")


def _tile_ndc(start: int, stop: int, width: int, height: int) -> np.ndarray:
    """(stop - start, 2) ndc of pixels start..stop in row-major order; equal to the same rows of
    ``pixel_ndc(width, height).reshape(-1, 2)``, without building the whole image's."""
    row, col = np.divmod(np.arange(start, stop, dtype=np.int64), width)
    return np.column_stack([(2.0 * col + 1.0) / width - 1.0, 1.0 - (2.0 * row + 1.0) / height])


def _item_color(idx: int, it: TraceItem) -> np.ndarray:
    color = np.asarray(it.color, dtype=np.float64).reshape(-1)
    if color.shape not in ((3,), (4,)):
        raise InputError(f"item {idx}: color must be RGB or RGBA, got {color.shape}")
    return color


def trace(items, view_matrix, projection_matrix, width: int, height: int,
          settings: TraceSettings | None = None, *, chunk: int = EVAL_CHUNK) -> TraceResult:
    """Sphere-trace the implicits ``items`` into a ``width x height`` image (see the module doc).

    items : list of TraceItem, tuples ``(implicit, matrix_world[, color[, selected[, active]]])`` or
    objects with those attributes. Rays are evaluated in batches of the still-active rays (dynamic
    batching): each step evaluates only the rays that have neither hit nor left the ball. The image
    is traced in tiles of :data:`TRACE_TILE` pixels, so memory beyond the result stays bounded.

    Raises InputError for sizes over :data:`MAX_PIXELS`, bad settings or items, and for a network
    that evaluates to NaN or infinity along a ray (never drawn as a miss).
    """
    check_image_size(width, height)
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) \
            or not 1 <= chunk <= MAX_CHUNK:
        raise InputError(f"chunk must be an integer in 1..{MAX_CHUNK}, got {chunk!r}")
    settings = (settings or TraceSettings()).validate()
    items = [as_item(i) for i in items]
    frames = [item_frames(it, view_matrix, projection_matrix, height) for it in items]
    colors = [_item_color(idx, it) for idx, it in enumerate(items)]
    n = int(width) * int(height)
    out = TraceResult(np.zeros(n, bool), np.zeros(n, bool), np.ones(n, np.float32),
                      np.full((n, 3), np.nan, np.float32), np.zeros((n, 3), np.float32),
                      np.zeros(n, np.int32), np.full(n, -1, np.int32), np.zeros((n, 4), np.float32))
    for s in range(0, n, TRACE_TILE):
        e = min(s + TRACE_TILE, n)
        tile = _trace_tile(items, frames, colors, _tile_ndc(s, e, width, height), settings, chunk)
        for name in ("hit", "coverage", "depth", "position", "normal", "steps", "item", "rgba"):
            getattr(out, name)[s:e] = getattr(tile, name)
        out.evaluations += tile.evaluations
    shape = (int(height), int(width))
    return TraceResult(out.hit.reshape(shape), out.coverage.reshape(shape), out.depth.reshape(shape),
                       out.position.reshape(shape + (3,)), out.normal.reshape(shape + (3,)),
                       out.steps.reshape(shape), out.item.reshape(shape),
                       out.rgba.reshape(shape + (4,)), int(out.evaluations))


def _trace_tile(items, frames, colors, ndc, settings, chunk) -> TraceResult:
    """Trace every item for the (n, 2) pixel ndc of one tile; flat (n, ...) arrays, float64."""
    n = len(ndc)
    depth = np.ones(n)
    hit = np.zeros(n, bool)
    cover = np.zeros(n, bool)
    position = np.full((n, 3), np.nan)
    normal = np.zeros((n, 3))
    steps = np.zeros(n, np.int32)
    owner = np.full(n, -1, np.int32)
    rgba = np.zeros((n, 4))
    evaluations = 0

    for idx, (it, fr, color) in enumerate(zip(items, frames, colors)):
        near, d, t, h, st, best, best_t, ev = _trace_item(it, fr, ndc, settings, chunk)
        steps += st
        evaluations += ev
        alpha = color[3] if len(color) == 4 else 1.0

        # surface hits
        hi = np.nonzero(h)[0]
        P = near[hi] + t[hi, None] * d[hi]
        dz = _depth(fr.net_to_clip, P)
        keep = (dz >= 0.0) & (dz <= 1.0) & (dz <= depth[hi])
        hi, P, dz = hi[keep], P[keep], dz[keep]
        if len(hi):
            g = tetra_gradient(it.implicit, P, NORMAL_DELTA * shape_unit(it.implicit), chunk=chunk)
            evaluations += 4 * len(hi)
            nv = g @ fr.normal_to_view.T
            nv /= np.maximum(np.linalg.norm(nv, axis=1, keepdims=True), 1e-30)
            ev_dir = d[hi] @ fr.dir_to_view.T
            to_eye = -ev_dir / np.linalg.norm(ev_dir, axis=1, keepdims=True)
            nw = g @ fr.normal_to_world.T
            nw /= np.maximum(np.linalg.norm(nw, axis=1, keepdims=True), 1e-30)
            depth[hi] = dz
            hit[hi] = True
            cover[hi] = True
            owner[hi] = idx
            position[hi] = _hom(fr.net_to_world, P)
            normal[hi] = nw
            rgba[hi, :3] = shade(nv, to_eye, color[:3])
            rgba[hi, 3] = alpha

        # selection outline on near misses
        oc = outline_color_linear(it.selected, it.active)
        if oc is not None:
            oi = np.nonzero(~h & (best < OUTLINE_PIXELS))[0]
            P = near[oi] + best_t[oi, None] * d[oi]
            dz = _depth(fr.net_to_clip, P)
            keep = (dz >= 0.0) & (dz <= 1.0) & (dz <= depth[oi])
            oi, dz = oi[keep], dz[keep]
            depth[oi] = dz
            hit[oi] = False
            cover[oi] = True
            owner[oi] = idx
            position[oi] = np.nan
            normal[oi] = 0.0
            rgba[oi, :3] = linear_to_srgb(np.asarray(oc))
            rgba[oi, 3] = 1.0

    return TraceResult(hit, cover, depth.astype(np.float32), position.astype(np.float32),
                       normal.astype(np.float32), steps, owner, rgba.astype(np.float32),
                       int(evaluations))


# --------------------------------------------------------------------------------------- cameras

def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """(4, 4) view matrix (world -> view, camera looking down -z) like Blender's ``view_matrix``."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    fwd = target - eye
    if not np.linalg.norm(fwd) > 0:
        raise InputError("eye and target must differ")
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, up)
    if np.linalg.norm(right) < 1e-9:
        right = np.cross(fwd, (0.0, 1.0, 0.0) if abs(fwd[1]) < 0.9 else (1.0, 0.0, 0.0))
    right /= np.linalg.norm(right)
    true_up = np.cross(right, fwd)
    R = np.stack([right, true_up, -fwd])
    V = np.eye(4)
    V[:3, :3] = R
    V[:3, 3] = -R @ eye
    return V


def perspective(fov_y: float, aspect: float, near: float, far: float) -> np.ndarray:
    """(4, 4) OpenGL perspective projection (Blender's ``window_matrix`` for a perspective view).
    fov_y in radians, aspect = width / height."""
    if not (0 < near < far) or not (0 < fov_y < np.pi) or not aspect > 0:
        raise InputError("perspective needs 0 < near < far, 0 < fov_y < pi and aspect > 0")
    f = 1.0 / np.tan(fov_y / 2.0)
    P = np.zeros((4, 4))
    P[0, 0] = f / aspect
    P[1, 1] = f
    P[2, 2] = (far + near) / (near - far)
    P[2, 3] = 2.0 * far * near / (near - far)
    P[3, 2] = -1.0
    return P


def orthographic(half_height: float, aspect: float, near: float, far: float) -> np.ndarray:
    """(4, 4) OpenGL orthographic projection of a view ``2 half_height`` tall."""
    if not (near < far) or not half_height > 0 or not aspect > 0:
        raise InputError("orthographic needs near < far, half_height > 0 and aspect > 0")
    P = np.eye(4)
    P[0, 0] = 1.0 / (half_height * aspect)
    P[1, 1] = 1.0 / half_height
    P[2, 2] = -2.0 / (far - near)
    P[2, 3] = -(far + near) / (far - near)
    return P


# --------------------------------------------------------------------------------------- images

def save_png(rgba: np.ndarray, path) -> int:
    """Write an (h, w, 4) or (h, w, 3) image (floats in [0, 1], row 0 at the top, display-encoded) or
    a uint8 image as an 8-bit PNG with numpy and zlib only. Returns the file size in bytes."""
    img = np.asarray(rgba)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or img.shape[0] < 1 or img.shape[1] < 1:
        raise InputError(f"image must have shape (h, w, 3) or (h, w, 4), got {img.shape}")
    if img.dtype != np.uint8:
        img = np.round(np.clip(np.nan_to_num(img.astype(np.float64)), 0.0, 1.0) * 255.0)
        img = img.astype(np.uint8)
    h, w, c = img.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * c)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    color_type = 6 if c == 4 else 2
    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
           + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)
    return len(png)
