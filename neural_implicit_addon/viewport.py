"""Live drawing of neural implicits in the 3D viewport: a GPU sphere tracer behind a draw handler.

What is drawn, and how (docs/viewport.md has the long version)
----------------------------------------------------------------
Every implicit object is drawn as a *proxy*, the back faces of the cube circumscribing its bounding
ball (radius ``BOUND_RADIUS`` in its network frame), so only the pixels it covers run the fragment
shader, and each of them exactly once even when the camera is inside the cube. The fragment shader
unprojects its pixel's ray straight into the object's network frame, intersects it with the bounding
ball, sphere-traces the network (weights read from a float texture), takes the normal from a
tetrahedral central difference, shades like Blender's Solid mode and writes ``gl_FragDepth`` from the
hit point, so implicits and meshes occlude each other correctly. Rays that miss discard their pixel;
rays of a selected object that pass within ``OUTLINE_PIXELS`` of the surface draw the outline.

The camera model, the per-object matrices, the stepping rule and every shading constant come from
``core/trace.py`` (the numpy reference tracer); this module only turns them into GLSL and GPU state,
so the two cannot drift apart. Shaders are built with ``gpu.types.GPUShaderCreateInfo`` (no bgl) from
GLSL that avoids backend-specific features, for Blender's OpenGL, Vulkan and Metal backends.

Weights on the GPU (``pack_weights``)
-------------------------------------
One RGBA32F texture per network, ``WEIGHT_TEXTURE_WIDTH`` texels wide, read with ``texelFetch`` at a
texel offset. Layer ``(out, in)`` of ``implicit.weights`` is stored as ``out_p = ceil(out / 4) * 4``
rows of ``in4 = ceil(in / 4)`` texels (row ``j`` holds ``W[j, 4k:4k+4]`` in texel ``k``; padding is
zero), followed by ``ceil(out / 4)`` texels of biases; the last layer (one output) is one row of
``in4`` texels followed by one texel whose ``x`` is the bias. Values are the float32 numbers of
``core.implicit`` unchanged (no fp16), so the GPU evaluates the same function as numpy up to the order
of float32 sums.

Each architecture gets a generated GLSL function ``float ni_sdf_<arch>(int offset, vec3 p)`` reading
the bound weight texture ``weights_tx`` from texel ``offset`` (:func:`network_glsl`), so a shader
that evaluates several networks (CSG) can pack several networks into one texture and call the
functions of their architectures at their offsets.

CSG (``core.csg.CSGShape`` as a DrawItem's ``implicit``)
-------------------------------------------------------
A CSG result is one draw: one proxy around its bounding sphere, one fragment shader generated for the
tree's shape (:func:`csg_glsl`: the architectures of its networks and how they nest), all networks
packed into one weight texture at their own offsets, and per network its frame -> network matrix and
world-unit factor, per step its operation and blend radius, in a second uniform block (``NICSG``), so
moving an operand or changing an operation or a blend radius recompiles nothing. The shader clips
and combines the networks with the formulas of ``core/csg.py`` and sphere-traces the combined field
in world units (its frame is the world translated to the bounding sphere's centre), exactly as
``core.trace`` traces a CSGShape.

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
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import bpy
import gpu
from gpu_extras.batch import batch_for_shader

from .core.constants import BOUND_RADIUS
from .core.csg import OPERATIONS, SHELL, CSGShape
from .core.errors import InputError
from .core.trace import (AMBIENT_GROUND, AMBIENT_SKY, DEFAULT_COLOR, LIGHTS, NORMAL_DELTA,
                         OUTLINE_PIXELS, SHININESS, SPECULAR, TETRAHEDRON, TraceSettings,
                         item_frames, outline_color_linear, shape_radius, shape_unit)

log = logging.getLogger(__name__)

#: Texels per row of a weight texture (a power of two so the shader splits an index with shifts;
#: 2048 is far below every backend's minimum maximum texture size of 16384).
WEIGHT_TEXTURE_WIDTH = 2048
_WIDTH_BITS = 11
#: Widest hidden layer the shader accepts: two arrays of hidden/4 vec4 live in registers per pixel.
GPU_MAX_HIDDEN = 256
#: Layers with at most this many (output vec4, input vec4) pairs are fully unrolled (constant array
#: indices keep activations in registers; hidden <= 64). Wider layers keep their loops: fine on GPUs,
#: but Mesa's llvmpipe caps a shader invocation at 65535 loop iterations in total.
UNROLL_PAIRS = 256
#: The proxy cube is this much larger than the ball so rasterisation never clips the ball's edge.
PROXY_MARGIN = 1.001
#: A weight texture not used by this many consecutive draws is freed.
CACHE_IDLE_DRAWS = 120
#: Most networks one CSG draw evaluates: each is inlined into the shader twice (trace, normal), so
#: compile time grows with the count; 16 keeps it in seconds on software GL.
CSG_MAX_LEAVES = 16


# ============================================================================ settings and items

@dataclass
class ViewportSettings(TraceSettings):
    """Viewport drawing settings (the tracing fields are core.trace.TraceSettings').

    resolution_scale : render scale while the view moves (1 = always full resolution)
    still_delay : seconds without view change after which one full-resolution frame is drawn
    """

    resolution_scale: float = 0.5
    still_delay: float = 0.25

    def validate(self) -> "ViewportSettings":
        super().validate()
        if not (0.05 <= float(self.resolution_scale) <= 1.0):
            raise InputError(f"resolution_scale must be in 0.05..1, got {self.resolution_scale!r}")
        if not (0.0 <= float(self.still_delay) <= 10.0):
            raise InputError(f"still_delay must be in 0..10 s, got {self.still_delay!r}")
        return self


@dataclass
class DrawItem:
    """One implicit to draw.

    key : content key of the network (weights are uploaded again only when it changes); for a CSG,
        a key that changes when any of its networks does
    implicit : core.implicit.Implicit, or a core.csg.CSGShape (drawn with ``matrix_world`` identity:
        the shape holds its own placements)
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


# ============================================================================ weights -> texels

def _ceil4(n: int) -> int:
    return (n + 3) // 4


def layer_texels(out: int, inp: int, last: bool) -> int:
    """Texels of one layer in the packed layout (module docstring)."""
    if last:
        return _ceil4(inp) + 1
    return 4 * _ceil4(out) * _ceil4(inp) + _ceil4(out)


def pack_weights(implicit) -> np.ndarray:
    """The network's weights as (n_texels, 4) float32 in the shader's layout (module docstring)."""
    shapes = implicit.architecture.layer_shapes()
    blocks = []
    last = len(shapes) - 1
    for i, (W, b) in enumerate(zip(implicit.weights, implicit.biases)):
        out, inp = W.shape
        in4 = _ceil4(inp)
        if i == last:
            row = np.zeros(4 * in4, np.float32)
            row[:inp] = W[0]
            bias = np.zeros(4, np.float32)
            bias[0] = b[0]
            blocks += [row.reshape(in4, 4), bias.reshape(1, 4)]
        else:
            out_p = 4 * _ceil4(out)
            Wp = np.zeros((out_p, 4 * in4), np.float32)
            Wp[:out, :inp] = W
            bp = np.zeros(out_p, np.float32)
            bp[:out] = b
            blocks += [Wp.reshape(out_p * in4, 4), bp.reshape(-1, 4)]
    texels = np.concatenate(blocks).astype(np.float32)
    expected = sum(layer_texels(o, n, i == last) for i, (o, n) in enumerate(shapes))
    if len(texels) != expected:  # a bug, not bad input
        raise RuntimeError(f"packed {len(texels)} texels, layout says {expected}")
    return texels


def arch_name(arch) -> str:
    """Identifier of an architecture, used in GLSL function names and the shader cache."""
    return f"{arch.layers}x{arch.hidden}_{arch.activation}_pe{arch.encoding_frequencies}"


def gpu_unsupported_reason(arch) -> Optional[str]:
    """Why the shader cannot draw this architecture (or CSGShape), or None."""
    if isinstance(arch, CSGShape):
        leaves = arch.leaves()
        if len(leaves) > CSG_MAX_LEAVES:
            return (f"the CSG result combines {len(leaves)} networks; the viewport draws at most "
                    f"{CSG_MAX_LEAVES} (Apply it, or use a CPU preview)")
        for leaf in leaves:
            reason = gpu_unsupported_reason(leaf.implicit.architecture)
            if reason:
                return reason
        return None
    if arch.hidden > GPU_MAX_HIDDEN:
        return (f"hidden width {arch.hidden} exceeds the viewport shader's limit of "
                f"{GPU_MAX_HIDDEN}; use a CPU preview render instead")
    return None


# ============================================================================ GLSL

def _f(x: float) -> str:
    """A float literal that GLSL parses to the float32 value of ``x``."""
    s = repr(float(np.float32(x)))
    return s if ("." in s or "e" in s) else s + ".0"


def network_glsl(arch) -> str:
    """GLSL function ``float ni_sdf_<arch>(int offset, vec3 p)``: the network of ``core.implicit``
    (encoding, hidden layers, tanh output) reading its weights from ``weights_tx`` at ``offset``."""
    name = "ni_sdf_" + arch_name(arch)
    inp = arch.input_dim
    in4, h4 = _ceil4(inp), _ceil4(arch.hidden)
    hp = 4 * h4
    act = "max(z, vec4(0.0))" if arch.activation == "relu" else "sin(z)"
    enc = ["p.x", "p.y", "p.z"]
    lines = []
    for k in range(arch.encoding_frequencies):
        s = _f((2.0 ** k) * math.pi)
        lines.append(f"  vec3 s{k} = sin({s} * p);")
        lines.append(f"  vec3 c{k} = cos({s} * p);")
        enc += [f"s{k}.x", f"s{k}.y", f"s{k}.z", f"c{k}.x", f"c{k}.y", f"c{k}.z"]
    enc += ["0.0"] * (4 * in4 - len(enc))
    for k in range(in4):
        lines.append(f"  x[{k}] = vec4({', '.join(enc[4 * k:4 * k + 4])});")
    encode = "\n".join(lines)

    unroll = h4 * max(in4, h4) <= UNROLL_PAIRS

    def dense(src, dst, n4, size, indent):
        pad = " " * indent
        if not unroll:
            return f"""{pad}for (int j = 0; j < {h4}; j++) {{
{pad}  int r = base + 4 * j * {n4};
{pad}  vec4 z = ni_w(base + {hp * n4} + j);
{pad}  for (int k = 0; k < {n4}; k++) {{
{pad}    vec4 v = {src}[k];
{pad}    z += vec4(dot(ni_w(r + k), v), dot(ni_w(r + {n4} + k), v),
{pad}              dot(ni_w(r + {2 * n4} + k), v), dot(ni_w(r + {3 * n4} + k), v));
{pad}  }}
{pad}  {dst}[j] = {act};
{pad}}}
{pad}base += {size};"""
        out = []
        for j in range(h4):
            out.append(f"{pad}z = ni_w(base + {hp * n4 + j});")
            for k in range(n4):
                r = 4 * j * n4 + k
                out.append(f"{pad}z += vec4(dot(ni_w(base + {r}), {src}[{k}]), "
                           f"dot(ni_w(base + {r + n4}), {src}[{k}]), "
                           f"dot(ni_w(base + {r + 2 * n4}), {src}[{k}]), "
                           f"dot(ni_w(base + {r + 3 * n4}), {src}[{k}]));")
            out.append(f"{pad}{dst}[{j}] = {act};")
        out.append(f"{pad}base += {size};")
        return "\n".join(out)

    copy = "\n".join(f"    a[{j}] = b[{j}];" for j in range(h4))
    if unroll:
        output = "\n".join(f"  y += dot(ni_w(base + {k}), a[{k}]);" for k in range(h4))
    else:
        output = f"  for (int k = 0; k < {h4}; k++) {{\n    y += dot(ni_w(base + k), a[k]);\n  }}"

    return f"""
float {name}(int offset, vec3 p)
{{
  vec4 x[{in4}];
{encode}
  vec4 a[{h4}];
  vec4 b[{h4}];
  vec4 z;
  int base = offset;
{dense("x", "a", in4, hp * in4 + h4, 2)}
  for (int l = 1; l < {arch.layers}; l++) {{
{dense("a", "b", h4, hp * h4 + h4, 4)}
{copy}
  }}
  float y = ni_w(base + {h4}).x;
{output}
  return ni_tanh(y);
}}
"""


def _vec3(v) -> str:
    return f"vec3({', '.join(_f(c) for c in v)})"


def fetch_glsl() -> str:
    """``ni_w(i)``: texel ``i`` of the weight texture ``weights_tx``; ``ni_tanh``."""
    return f"""
vec4 ni_w(int i)
{{
  return texelFetch(weights_tx, ivec2(i & {WEIGHT_TEXTURE_WIDTH - 1}, i >> {_WIDTH_BITS}), 0);
}}

float ni_tanh(float z)
{{
  /* tanh without exp overflow for large |z| */
  float e = exp(-2.0 * abs(z));
  return sign(z) * (1.0 - e) / (1.0 + e);
}}
"""


def shading_glsl() -> str:
    """``ni_shade(n, v, color)`` and ``ni_linear_to_srgb``: core.trace.shade in GLSL, generated from
    the same constants so numpy and the shader shade alike (also used to draw meshes in the docs)."""
    lights = []
    for d, intensity in LIGHTS:
        L = np.asarray(d, dtype=np.float64) / np.linalg.norm(d)
        lights.append(f"  light += {_f(intensity)} * max(dot(n, {_vec3(L)}), 0.0);")
    L0 = np.asarray(LIGHTS[0][0], dtype=np.float64) / np.linalg.norm(LIGHTS[0][0])
    return f"""
vec3 ni_linear_to_srgb(vec3 c)
{{
  c = clamp(c, 0.0, 1.0);
  /* step(c, e) is 1 where c <= e: the linear segment, as in core.trace.linear_to_srgb */
  return mix(1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055, 12.92 * c, step(c, vec3(0.0031308)));
}}

vec3 ni_shade(vec3 n, vec3 v, vec3 color)
{{
  float light = {_f(AMBIENT_GROUND)} + {_f(AMBIENT_SKY - AMBIENT_GROUND)} * (0.5 + 0.5 * n.y);
{chr(10).join(lights)}
  vec3 h = normalize({_vec3(L0)} + v);
  float spec = {_f(SPECULAR)} * pow(max(dot(n, h), 0.0), {_f(SHININESS)});
  return ni_linear_to_srgb(color * light + vec3(spec));
}}
"""


#: Per-object uniform block (std140: only mat4 and vec4 members, so no padding rules apply).
#: ``trace = (epsilon, step_factor, bounding radius, pixel_scale)`` and ``limits = (max_steps, texel
#: offset, normal offset, 0)``, epsilon and the normal offset in the shape's frame units
#: (``core.trace.shape_unit``), the radius ``core.trace.shape_radius``.
OBJECT_STRUCT = """
struct NIObject {
  mat4 net_to_clip;
  mat4 clip_to_net;
  mat4 normal_to_view;
  mat4 dir_to_view;
  vec4 color;
  vec4 outline;
  vec4 trace;
  vec4 limits;
};
"""

_VERTEX = f"""
void main()
{{
  net_pos = pos * (obj.trace.z * {_f(PROXY_MARGIN)});
  gl_Position = obj.net_to_clip * vec4(net_pos, 1.0);
}}
"""


def _trace_fragment(sdf: str, debug_steps: bool) -> str:
    K = TETRAHEDRON
    tetra = f"""    for (int q = 0; q < 4; q++) {{
      vec3 kq = q == 0 ? {_vec3(K[0])} : (q == 1 ? {_vec3(K[1])} : (q == 2 ? {_vec3(K[2])} : {_vec3(K[3])}));
      g += kq * {sdf}(offset, p + obj.limits.z * kq);
    }}"""
    if debug_steps:  # benchmark variant: steps in red, hit in green; misses kept at far depth
        out = "fragColor = vec4(float(steps), hit ? 1.0 : 0.0, 0.0, 1.0);"
        miss = "gl_FragDepth = 1.0;\n    fragColor = vec4(float(steps), 0.0, 0.0, 1.0);\n    return;"
    else:
        out = "fragColor = vec4(rgb, alpha);"
        miss = "discard;"
    return f"""
void main()
{{
  /* the pixel's ray, unprojected from the near to the far plane into the network frame */
  vec4 c = obj.net_to_clip * vec4(net_pos, 1.0);
  vec2 ndc = c.xy / c.w;
  vec4 n4 = obj.clip_to_net * vec4(ndc, -1.0, 1.0);
  vec4 f4 = obj.clip_to_net * vec4(ndc, 1.0, 1.0);
  vec3 o = n4.xyz / n4.w;
  vec3 d = normalize(f4.xyz / f4.w - o);

  /* entry into and exit from the bounding ball */
  float radius = obj.trace.z;
  float bb = dot(o, d);
  float disc = bb * bb - (dot(o, o) - radius * radius);
  if (disc < 0.0) {{
    discard;
  }}
  float sq = sqrt(disc);
  float t0 = max(-bb - sq, 0.0);
  float t1 = -bb + sq;
  if (!(t1 > t0)) {{
    discard;
  }}

  float eps = obj.trace.x;
  float k = obj.trace.y;
  int max_steps = int(obj.limits.x);
  int offset = int(obj.limits.y);
  vec4 wrow = vec4(obj.net_to_clip[0][3], obj.net_to_clip[1][3], obj.net_to_clip[2][3],
                   obj.net_to_clip[3][3]);
  float t = t0;
  bool hit = false;
  float best = 1e30;
  float best_t = t0;
  int steps = 0;
  for (int i = 0; i < max_steps; i++) {{
    vec3 p = o + t * d;
    float f = {sdf}(offset, p);
    steps = i + 1;
    if (f < eps) {{
      hit = true;
      break;
    }}
    float ratio = f / max(obj.trace.w * dot(wrow, vec4(p, 1.0)), 1e-30);
    if (ratio < best) {{
      best = ratio;
      best_t = t;
    }}
    t += k * f;
    if (t > t1) {{
      break;
    }}
  }}

  vec3 rgb;
  float alpha = 1.0;
  vec3 p;
  if (hit) {{
    p = o + t * d;
    vec3 g = vec3(0.0);
{tetra}
    vec3 nv = normalize(mat3(obj.normal_to_view) * g);
    vec3 to_eye = -normalize(mat3(obj.dir_to_view) * d);
    rgb = ni_shade(nv, to_eye, obj.color.rgb);
    alpha = obj.color.a;
  }}
  else if (obj.outline.w > 0.5 && best < {_f(OUTLINE_PIXELS)}) {{
    p = o + best_t * d;
    rgb = ni_linear_to_srgb(obj.outline.rgb);
  }}
  else {{
    {miss}
  }}
  vec4 cp = obj.net_to_clip * vec4(p, 1.0);
  float depth = 0.5 * cp.z / cp.w + 0.5;
  if (depth < 0.0 || depth > 1.0) {{
    discard;
  }}
  gl_FragDepth = depth;
  {out}
}}
"""


def csg_signature(shape: CSGShape) -> tuple:
    """What a CSG shader depends on: the architecture of each network and how the stacks nest
    (operations, blend radii and matrices are uniforms)."""
    return (shape.leaf.implicit.architecture, tuple(csg_signature(s.operand) for s in shape.steps))


def csg_struct(shape: CSGShape) -> str:
    """The ``NICSG`` uniform block of a tree (std140, mat4 and vec4 arrays only)."""
    return f"""
struct NICSG {{
  mat4 to_net[{len(shape.leaves())}];
  vec4 leaf[{len(shape.leaves())}];
  vec4 step[{len(shape.flat_steps())}];
}};
"""


def csg_glsl(shape: CSGShape) -> str:
    """GLSL ``float ni_csg(int offset, vec3 p)``: the combined field of ``core.csg`` at ``p`` in the
    shape's frame (world units), reading ``csg.to_net[i]`` (frame -> network of leaf ``i``),
    ``csg.leaf[i] = (texel offset, inv_sigma, 0, 0)`` and ``csg.step[j] = (operation code, blend, 0,
    0)``, leaves and steps in the order of ``CSGShape.leaves`` / ``flat_steps``."""
    archs = []
    for leaf in shape.leaves():
        if leaf.implicit.architecture not in archs:
            archs.append(leaf.implicit.architecture)
    R, code = _f(BOUND_RADIUS), {op: i for i, op in enumerate(OPERATIONS)}
    parts = [network_glsl(a) for a in archs]
    for a in archs:
        parts.append(f"""
float ni_leaf_{arch_name(a)}(int i, vec3 p)
{{
  /* core.csg.leaf_value: the network clipped by its ball, in world units */
  vec3 q = (csg.to_net[i] * vec4(p, 1.0)).xyz;
  float n = length(q);
  float r = n - {R};
  if (r >= {_f(SHELL)}) {{
    return r * csg.leaf[i].y;
  }}
  bool outside = r >= 0.0;
  float f = ni_sdf_{arch_name(a)}(int(csg.leaf[i].x), outside ? q * ({R} / n) : q);
  float g = max(f, 0.0);
  float v = outside ? sqrt(r * r + g * g) : max(f, r);
  return v * csg.leaf[i].y;
}}
""")
    parts.append(f"""
float ni_smin(float a, float b, float k)
{{
  /* core.csg.smooth_min */
  float m = min(a, b);
  if (k <= 0.0) {{
    return m;
  }}
  float h = max(k - abs(a - b), 0.0) / k;
  return m - h * h * (0.25 * k);
}}

float ni_combine(float a, float b, vec4 s)
{{
  /* core.csg.combine; s = (operation code, blend, 0, 0) */
  int op = int(s.x + 0.5);
  if (op == {code["union"]}) {{
    return min(a, b);
  }}
  if (op == {code["intersection"]}) {{
    return max(a, b);
  }}
  if (op == {code["difference"]}) {{
    return max(a, -b);
  }}
  if (op == {code["smooth_union"]}) {{
    return ni_smin(a, b, s.y);
  }}
  if (op == {code["smooth_intersection"]}) {{
    return -ni_smin(-a, -b, s.y);
  }}
  return -ni_smin(-a, b, s.y);
}}
""")
    lines, counters = [], [0, 0]

    def emit(node, level):
        i = counters[0]
        counters[0] += 1
        lines.append(f"  v{level} = ni_leaf_{arch_name(node.leaf.implicit.architecture)}({i}, p);")
        for step in node.steps:
            emit(step.operand, level + 1)
            lines.append(f"  v{level} = ni_combine(v{level}, v{level + 1}, csg.step[{counters[1]}]);")
            counters[1] += 1

    emit(shape, 0)
    temps = ", ".join(f"v{k}" for k in range(shape.depth()))
    body = "\n".join(lines)
    parts.append(f"""
float ni_csg(int offset, vec3 p)
{{
  float {temps};
{body}
  return v0;
}}
""")
    return "".join(parts)


def build_trace_shader(arch, debug_steps: bool = False):
    """Compile the sphere-tracing shader of one architecture, or of a CSGShape's tree (raises on
    compile errors)."""
    iface = gpu.types.GPUStageInterfaceInfo("ni_trace_iface")
    iface.smooth('VEC3', "net_pos")
    info = gpu.types.GPUShaderCreateInfo()
    info.typedef_source(OBJECT_STRUCT + (csg_struct(arch) if isinstance(arch, CSGShape) else ""))
    info.uniform_buf(0, "NIObject", "obj")
    if isinstance(arch, CSGShape):
        info.uniform_buf(1, "NICSG", "csg")
        sdf, source = "ni_csg", csg_glsl(arch)
    else:
        sdf, source = "ni_sdf_" + arch_name(arch), network_glsl(arch)
    info.sampler(0, 'FLOAT_2D', "weights_tx")
    info.vertex_in(0, 'VEC3', "pos")
    info.vertex_out(iface)
    info.fragment_out(0, 'VEC4', "fragColor")
    info.depth_write('ANY')
    info.vertex_source(_VERTEX)
    info.fragment_source(fetch_glsl() + shading_glsl() + source + _trace_fragment(sdf, debug_steps))
    return gpu.shader.create_from_info(info)


def build_composite_shader():
    """Full-screen pass that upsamples a low-resolution trace (nearest texel) with its depth."""
    iface = gpu.types.GPUStageInterfaceInfo("ni_composite_iface")
    iface.smooth('VEC2', "uv")
    info = gpu.types.GPUShaderCreateInfo()
    info.push_constant('VEC2', "lowres")
    info.sampler(0, 'FLOAT_2D', "color_tx")
    info.sampler(1, 'DEPTH_2D', "depth_tx")
    info.vertex_in(0, 'VEC2', "pos")
    info.vertex_out(iface)
    info.fragment_out(0, 'VEC4', "fragColor")
    info.depth_write('ANY')
    info.vertex_source("""
void main()
{
  uv = pos * 0.5 + 0.5;
  gl_Position = vec4(pos, 0.0, 1.0);
}
""")
    info.fragment_source("""
void main()
{
  ivec2 size = ivec2(lowres);
  ivec2 px = clamp(ivec2(uv * lowres), ivec2(0), size - 1);
  float depth = texelFetch(depth_tx, px, 0).r;
  if (depth >= 1.0) {
    discard;
  }
  gl_FragDepth = depth;
  fragColor = texelFetch(color_tx, px, 0);
}
""")
    return gpu.shader.create_from_info(info)


def csg_offsets(shape: CSGShape) -> tuple[int, list]:
    """``(texel count, offsets)`` of a CSG tree's packed weights: ``offsets[i]`` is the first texel
    of leaf ``i``; a network that appears several times (one object used twice) is stored once."""
    offsets, seen, size = [], {}, 0
    for leaf in shape.leaves():
        k = id(leaf.implicit)
        if k not in seen:
            seen[k] = size
            shapes = leaf.implicit.architecture.layer_shapes()
            size += sum(layer_texels(o, n, i == len(shapes) - 1) for i, (o, n) in enumerate(shapes))
        offsets.append(seen[k])
    return size, offsets


def pack_csg_weights(shape: CSGShape) -> np.ndarray:
    """Every network of a CSG tree packed one after the other (at :func:`csg_offsets`)."""
    blocks, seen = [], set()
    for leaf in shape.leaves():
        if id(leaf.implicit) not in seen:
            seen.add(id(leaf.implicit))
            blocks.append(pack_weights(leaf.implicit))
    texels = np.concatenate(blocks)
    if len(texels) != csg_offsets(shape)[0]:  # a bug, not bad input
        raise RuntimeError("packed CSG weights disagree with csg_offsets")
    return texels


def csg_block(shape: CSGShape) -> np.ndarray:
    """The NICSG uniform block of a tree (float32): per leaf its frame -> network matrix, then per
    leaf ``(offset, inv_sigma, 0, 0)``, then per step ``(operation code, blend, 0, 0)``."""
    _, offsets = csg_offsets(shape)
    leaves = shape.leaves()
    frame_to_world = np.linalg.inv(shape.transform)
    mats = [_column_major(leaf.world_to_net @ frame_to_world) for leaf in leaves]
    leaf_rows = [[offsets[i], leaf.inv_sigma, 0.0, 0.0] for i, leaf in enumerate(leaves)]
    step_rows = [[OPERATIONS.index(s.operation), s.blend, 0.0, 0.0] for s in shape.flat_steps()]
    return np.ascontiguousarray(np.concatenate([np.ravel(mats), np.ravel(leaf_rows),
                                                np.ravel(step_rows)]), dtype=np.float32)


def _layout(implicit):
    """What a weight texture's layout depends on: the architecture, or a CSG tree's signature."""
    if isinstance(implicit, CSGShape):
        return ("csg", csg_signature(implicit))
    return implicit.architecture


def _texture_of(texels: np.ndarray):
    """(GPUTexture, texel count) holding ``texels`` (n, 4) from texel 0."""
    rows = -(-len(texels) // WEIGHT_TEXTURE_WIDTH)
    data = np.zeros((rows * WEIGHT_TEXTURE_WIDTH, 4), np.float32)
    data[:len(texels)] = texels
    buf = gpu.types.Buffer('FLOAT', data.size, data.ravel())
    return gpu.types.GPUTexture((WEIGHT_TEXTURE_WIDTH, rows), format='RGBA32F', data=buf), len(texels)


def _weight_texture(implicit):
    """(GPUTexture, texel count) holding ``pack_weights(implicit)`` (or a CSG tree's
    ``pack_csg_weights``) from texel 0."""
    if isinstance(implicit, CSGShape):
        return _texture_of(pack_csg_weights(implicit))
    return _texture_of(pack_weights(implicit))


def evaluate_on_gpu(implicit, Q) -> np.ndarray:
    """The shader's network function evaluated at network-frame points Q (n, 3) -> (n,) float32.

    For tests and debugging: it runs exactly the GLSL of :func:`network_glsl` over the texture of
    :func:`pack_weights`, one point per pixel of an offscreen buffer. Needs a GPU context. For a
    ``CSGShape`` it runs :func:`csg_glsl` with :func:`csg_block` at points of the shape's frame
    (``CSGShape.evaluate``'s).
    """
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    if Q.ndim != 2 or Q.shape[1] != 3 or not len(Q):
        raise InputError(f"Q must have shape (n, 3) with n > 0, got {Q.shape}")
    csg = isinstance(implicit, CSGShape)
    reason = gpu_unsupported_reason(implicit if csg else implicit.architecture)
    if reason:
        raise InputError(reason)
    w = min(len(Q), 256)
    h = -(-len(Q) // w)
    pts = np.zeros((w * h, 4), np.float32)
    pts[:len(Q), :3] = Q
    points = gpu.types.GPUTexture((w, h), format='RGBA32F',
                                  data=gpu.types.Buffer('FLOAT', pts.size, pts.ravel()))
    weights, _ = _weight_texture(implicit)
    if csg:
        sdf, source = "ni_csg", csg_glsl(implicit)
    else:
        sdf, source = "ni_sdf_" + arch_name(implicit.architecture), network_glsl(implicit.architecture)
    iface = gpu.types.GPUStageInterfaceInfo("ni_eval_iface")
    iface.smooth('VEC2', "uv")
    info = gpu.types.GPUShaderCreateInfo()
    if csg:
        info.typedef_source(csg_struct(implicit))
        info.uniform_buf(1, "NICSG", "csg")
    info.push_constant('VEC2', "size")
    info.sampler(0, 'FLOAT_2D', "weights_tx")
    info.sampler(1, 'FLOAT_2D', "points_tx")
    info.vertex_in(0, 'VEC2', "pos")
    info.vertex_out(iface)
    info.fragment_out(0, 'VEC4', "fragColor")
    info.vertex_source("void main()\n{\n  uv = pos * 0.5 + 0.5;\n  gl_Position = vec4(pos, 0.0, 1.0);\n}\n")
    info.fragment_source(fetch_glsl() + source + f"""
void main()
{{
  ivec2 px = clamp(ivec2(uv * size), ivec2(0), ivec2(size) - 1);
  fragColor = vec4({sdf}(0, texelFetch(points_tx, px, 0).xyz), 0.0, 0.0, 1.0);
}}
""")
    shader = gpu.shader.create_from_info(info)
    batch = batch_for_shader(shader, 'TRIS', {"pos": [(-1, -1), (3, -1), (-1, 3)]})
    off = gpu.types.GPUOffScreen(w, h, format='RGBA32F')
    try:
        with off.bind():
            fb = gpu.state.active_framebuffer_get()
            fb.clear(color=(0.0, 0.0, 0.0, 0.0))
            gpu.state.viewport_set(0, 0, w, h)
            shader.bind()
            shader.uniform_float("size", (float(w), float(h)))
            if csg:
                ubo = gpu.types.GPUUniformBuf(csg_block(implicit))
                shader.uniform_block("csg", ubo)
            shader.uniform_sampler("weights_tx", weights)
            shader.uniform_sampler("points_tx", points)
            batch.draw(shader)
            out = np.array(fb.read_color(0, 0, w, h, 4, 0, 'FLOAT').to_list(), np.float32)
    finally:
        off.free()
    return out.reshape(-1, 4)[:len(Q), 0].copy()


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
        layout = _layout(implicit)
        if entry is None or entry.arch != layout:
            tex, texels = _weight_texture(implicit)
            entry = _Weights(tex, layout, texels, self._draws)
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
            ubo = gpu.types.GPUUniformBuf(_object_block(fr, item, settings))
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
        if self._composite is None:
            shader = build_composite_shader()
            batch = batch_for_shader(shader, 'TRIS', {"pos": [(-1, -1), (3, -1), (-1, 3)]})
            self._composite = (shader, batch)
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
        drawn) and float32 (h, w) window depth (1 = background), row 0 at the top, like core.trace.
        The depth is read from the offscreen framebuffer's own depth attachment.
        """
        off = gpu.types.GPUOffScreen(int(width), int(height), format='RGBA32F')
        try:
            with off.bind():
                fb = gpu.state.active_framebuffer_get()
                fb.clear(color=(0.0, 0.0, 0.0, 0.0), depth=1.0)
                gpu.state.viewport_set(0, 0, int(width), int(height))
                if before is not None:
                    before()
                self.draw(items, view_matrix, projection_matrix, width, height, settings,
                          scale=scale, debug_steps=debug_steps)
                if after is not None:
                    after()
                rgba = np.array(fb.read_color(0, 0, width, height, 4, 0, 'FLOAT').to_list(),
                                dtype=np.float32).reshape(height, width, 4)
                depth = np.array(fb.read_depth(0, 0, width, height).to_list(),
                                 dtype=np.float32).reshape(height, width)
        finally:
            off.free()
        return rgba[::-1].copy(), depth[::-1].copy()


def _column_major(M: np.ndarray) -> np.ndarray:
    """A 4x4 (or 3x3 padded to 4x4) matrix as 16 floats in GLSL's column-major order."""
    out = np.eye(4)
    out[:M.shape[0], :M.shape[1]] = M
    return out.T.ravel()


def _object_block(fr, item, settings) -> np.ndarray:
    """The NIObject uniform block of one item (float32, std140)."""
    color = np.asarray(item.color, dtype=np.float64).reshape(-1)
    if color.shape == (3,):
        color = np.append(color, 1.0)
    outline = outline_color_linear(item.selected, item.active)
    outline = (*outline, 1.0) if outline is not None else (0.0, 0.0, 0.0, 0.0)
    block = np.concatenate([
        _column_major(fr.net_to_clip), _column_major(fr.clip_to_net),
        _column_major(fr.normal_to_view), _column_major(fr.dir_to_view),
        color[:4], outline,
        [settings.epsilon * shape_unit(item.implicit), settings.step_factor,
         shape_radius(item.implicit), fr.pixel_scale],
        [settings.max_steps, 0.0, NORMAL_DELTA * shape_unit(item.implicit), 0.0],
    ])
    return np.ascontiguousarray(block, dtype=np.float32)


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
        wm = bpy.context.window_manager
        for window in (wm.windows if wm else ()):
            for area in window.screen.areas:
                if area.type == 'VIEW_3D':
                    area.tag_redraw()
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


__all__ = ["ViewportSettings", "DrawItem", "ImplicitRenderer", "pack_weights", "network_glsl",
           "evaluate_on_gpu", "csg_glsl", "csg_block", "csg_offsets", "pack_csg_weights",
           "register_draw_handler", "unregister_draw_handler", "is_registered", "renderer"]
