"""The viewport's shaders as GLSL text, and the numbers they read: no GPU, no Blender.

What is drawn, and how (docs/viewport.md has the long version)
----------------------------------------------------------------
Every implicit object is drawn as a *proxy*, the back faces of the cube circumscribing its bounding
ball (radius ``BOUND_RADIUS`` in its network frame, :data:`TRACE_VERTEX`), so only the pixels it
covers run the fragment shader, and each of them exactly once even when the camera is inside the
cube. The fragment shader (:func:`trace_fragment`) unprojects its pixel's ray straight into the
object's network frame, intersects it with the bounding ball, sphere-traces the network (weights read
from a float texture), takes the normal from a tetrahedral central difference, shades like Blender's
Solid mode and writes ``gl_FragDepth`` from the hit point, so implicits and meshes occlude each other
correctly. Rays that miss discard their pixel; rays of a selected object that pass within
``OUTLINE_PIXELS`` of the surface draw the outline.

The camera model, the per-object matrices, the stepping rule and every shading constant come from
``core/geometry/trace.py`` (the numpy reference tracer), the network and its texel layout from
``core/representation/layout.py``; this module only turns them into GLSL and uniform blocks, so they
cannot drift apart. ``neural_implicit_addon/viewport.py`` compiles the text
(``GPUShaderCreateInfo``, no bgl) and draws; the GLSL avoids backend-specific features, for
Blender's OpenGL, Vulkan and Metal backends.

The network
-----------
Each architecture gets a generated GLSL function ``float ni_sdf_<arch>(int offset, vec3 p)``
(:func:`network_glsl`) reading the bound weight texture ``weights_tx`` (:func:`fetch_glsl`) from
texel ``offset`` in the layout of ``core.representation.layout.pack_weights``, so a shader that
evaluates several networks (CSG) can pack them into one texture and call the functions of their
architectures at their offsets. ``tests/test_layout.py`` runs this text in numpy over the packed
texels.

CSG (``core.geometry.csg.CSGShape``)
---------------------------
A CSG result is one draw: one proxy around its bounding sphere, one fragment shader generated for the
tree's shape (:func:`csg_glsl`: the architectures of its networks and how they nest), all networks
packed into one weight texture at their own offsets, and per network its frame -> network matrix and
world-unit factor, per step its operation and blend radius, in a second uniform block (``NICSG``,
:func:`csg_block`), so moving an operand or changing an operation or a blend radius recompiles
nothing. The shader clips and combines the networks with the formulas of ``core/geometry/csg.py``
and sphere-traces the combined field in world units (its frame is the world translated to the
bounding sphere's centre), exactly as ``core.geometry.trace`` traces a CSGShape.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..common.constants import BOUND_RADIUS
from ..representation.layout import (WEIGHT_TEXTURE_WIDTH, WIDTH_BITS, bias_texel, ceil4, csg_offsets,
                                     encoding_scales, layer_texels, pack_csg_weights, pack_weights,
                                     weight_texel)
from .csg import OPERATIONS, SHELL, CSGShape
from .trace import (AMBIENT_GROUND, AMBIENT_SKY, LIGHTS, NORMAL_DELTA, OUTLINE_PIXELS, SHININESS,
                    SPECULAR, TETRAHEDRON, outline_color_linear, shape_radius, shape_unit)

#: Widest hidden layer the shader accepts: two arrays of hidden/4 vec4 live in registers per pixel.
GPU_MAX_HIDDEN = 256
#: Layers with at most this many (output vec4, input vec4) pairs are fully unrolled (constant array
#: indices keep activations in registers; hidden <= 64). Wider layers keep their loops: fine on GPUs,
#: but Mesa's llvmpipe caps a shader invocation at 65535 loop iterations in total.
UNROLL_PAIRS = 256
#: The proxy cube is this much larger than the ball so rasterisation never clips the ball's edge.
PROXY_MARGIN = 1.001
#: Most networks one CSG draw evaluates: each is inlined into the shader twice (trace, normal), so
#: compile time grows with the count; 16 keeps it in seconds on software GL.
CSG_MAX_LEAVES = 16

#: A hidden layer's activation (``core.representation.layout.activate``) on a vec4 ``z``.
ACTIVATION_GLSL = {"relu": "max(z, vec4(0.0))", "sine": "sin(z)"}


# ============================================================================ what a draw needs

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


def weight_texels(implicit) -> np.ndarray:
    """The weight texture's texels of an Implicit (``core.representation.layout.pack_weights``) or
    of a CSGShape (all its networks, ``core.representation.layout.pack_csg_weights``)."""
    if isinstance(implicit, CSGShape):
        return pack_csg_weights(implicit)
    return pack_weights(implicit)


def texture_key(implicit):
    """What a weight texture's layout depends on: the architecture, or a CSG tree's signature."""
    if isinstance(implicit, CSGShape):
        return ("csg", csg_signature(implicit))
    return implicit.architecture


# ============================================================================ the network

def _f(x: float) -> str:
    """A float literal that GLSL parses to the float32 value of ``x``."""
    s = repr(float(np.float32(x)))
    return s if ("." in s or "e" in s) else s + ".0"


def network_glsl(arch) -> str:
    """GLSL function ``float ni_sdf_<arch>(int offset, vec3 p)``: the network of
    ``core.representation.layout`` (encoding, hidden layers, tanh head) reading its weights from
    ``weights_tx`` at ``offset`` in its texel layout (``weight_texel``, ``bias_texel``)."""
    name = "ni_sdf_" + arch_name(arch)
    hidden = arch.hidden
    in4, h4 = ceil4(arch.input_dim), ceil4(hidden)
    act = ACTIVATION_GLSL[arch.activation]
    enc = ["p.x", "p.y", "p.z"]
    lines = []
    for k, scale in enumerate(encoding_scales(arch.encoding_frequencies)):
        lines.append(f"  vec3 s{k} = sin({_f(scale)} * p);")
        lines.append(f"  vec3 c{k} = cos({_f(scale)} * p);")
        enc += [f"s{k}.x", f"s{k}.y", f"s{k}.z", f"c{k}.x", f"c{k}.y", f"c{k}.z"]
    enc += ["0.0"] * (4 * in4 - len(enc))
    for k in range(in4):
        lines.append(f"  x[{k}] = vec4({', '.join(enc[4 * k:4 * k + 4])});")
    encode = "\n".join(lines)

    unroll = h4 * max(in4, h4) <= UNROLL_PAIRS

    def dense(src, dst, n4, indent):
        """One hidden layer: ``dst = act(W src + b)``, then ``base`` moves past the layer."""
        pad = " " * indent
        size = layer_texels(hidden, 4 * n4, False)
        if not unroll:   # rows 4j .. 4j+3 start at texels r, r + n4, r + 2 n4, r + 3 n4
            rows = [f"r + {weight_texel(c, 0, n4)} + k" if c else "r + k" for c in range(4)]
            return f"""{pad}for (int j = 0; j < {h4}; j++) {{
{pad}  int r = base + 4 * j * {n4};
{pad}  vec4 z = ni_w(base + {bias_texel(0, hidden, n4)} + j);
{pad}  for (int k = 0; k < {n4}; k++) {{
{pad}    vec4 v = {src}[k];
{pad}    z += vec4(dot(ni_w({rows[0]}), v), dot(ni_w({rows[1]}), v),
{pad}              dot(ni_w({rows[2]}), v), dot(ni_w({rows[3]}), v));
{pad}  }}
{pad}  {dst}[j] = {act};
{pad}}}
{pad}base += {size};"""
        out = []
        for j in range(h4):
            out.append(f"{pad}z = ni_w(base + {bias_texel(j, hidden, n4)});")
            for k in range(n4):
                dots = ", ".join(f"dot(ni_w(base + {weight_texel(4 * j + c, k, n4)}), {src}[{k}])"
                                 for c in range(4))
                out.append(f"{pad}z += vec4({dots});")
            out.append(f"{pad}{dst}[{j}] = {act};")
        out.append(f"{pad}base += {size};")
        return "\n".join(out)

    copy = "\n".join(f"    a[{j}] = b[{j}];" for j in range(h4))
    if unroll:
        output = "\n".join(f"  y += dot(ni_w(base + {weight_texel(0, k, h4)}), a[{k}]);"
                           for k in range(h4))
    else:
        output = f"  for (int k = 0; k < {h4}; k++) {{\n    y += dot(ni_w(base + k), a[k]);\n  }}"

    # the last layer: one row of h4 texels, then its bias in x
    return f"""
float {name}(int offset, vec3 p)
{{
  vec4 x[{in4}];
{encode}
  vec4 a[{h4}];
  vec4 b[{h4}];
  vec4 z;
  int base = offset;
{dense("x", "a", in4, 2)}
  for (int l = 1; l < {arch.layers}; l++) {{
{dense("a", "b", h4, 4)}
{copy}
  }}
  float y = ni_w(base + {layer_texels(1, hidden, True) - 1}).x;
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
  return texelFetch(weights_tx, ivec2(i & {WEIGHT_TEXTURE_WIDTH - 1}, i >> {WIDTH_BITS}), 0);
}}

float ni_tanh(float z)
{{
  /* tanh without exp overflow for large |z| */
  float e = exp(-2.0 * abs(z));
  return sign(z) * (1.0 - e) / (1.0 + e);
}}
"""


# ============================================================================ the trace shader

def shading_glsl() -> str:
    """``ni_shade(n, v, color)`` and ``ni_linear_to_srgb``: core.geometry.trace.shade in GLSL,
    generated from the same constants so numpy and the shader shade alike (also used to draw meshes
    in the docs)."""
    lights = []
    for d, intensity in LIGHTS:
        L = np.asarray(d, dtype=np.float64) / np.linalg.norm(d)
        lights.append(f"  light += {_f(intensity)} * max(dot(n, {_vec3(L)}), 0.0);")
    L0 = np.asarray(LIGHTS[0][0], dtype=np.float64) / np.linalg.norm(LIGHTS[0][0])
    return f"""
vec3 ni_linear_to_srgb(vec3 c)
{{
  c = clamp(c, 0.0, 1.0);
  /* step(c, e) is 1 where c <= e: the linear segment, as in core.geometry.trace.linear_to_srgb */
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
#: (``core.geometry.trace.shape_unit``), the radius ``core.geometry.trace.shape_radius``.
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

TRACE_VERTEX = f"""
void main()
{{
  net_pos = pos * (obj.trace.z * {_f(PROXY_MARGIN)});
  gl_Position = obj.net_to_clip * vec4(net_pos, 1.0);
}}
"""


def trace_fragment(sdf: str, debug_steps: bool) -> str:
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


def _column_major(M: np.ndarray) -> np.ndarray:
    """A 4x4 (or 3x3 padded to 4x4) matrix as 16 floats in GLSL's column-major order."""
    out = np.eye(4)
    out[:M.shape[0], :M.shape[1]] = M
    return out.T.ravel()


def object_block(fr, item, settings) -> np.ndarray:
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


# ============================================================================ CSG

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
    """GLSL ``float ni_csg(int offset, vec3 p)``: the combined field of ``core.geometry.csg`` at
    ``p`` in the shape's frame (world units), reading ``csg.to_net[i]`` (frame -> network of leaf
    ``i``), ``csg.leaf[i] = (texel offset, inv_sigma, 0, 0)`` and ``csg.step[j] = (operation code,
    blend, 0, 0)``, leaves and steps in the order of ``CSGShape.leaves`` / ``flat_steps``."""
    archs = list(dict.fromkeys(leaf.implicit.architecture for leaf in shape.leaves()))
    R, code = _f(BOUND_RADIUS), {op: i for i, op in enumerate(OPERATIONS)}
    parts = [network_glsl(a) for a in archs]
    for a in archs:
        parts.append(f"""
float ni_leaf_{arch_name(a)}(int i, vec3 p)
{{
  /* core.geometry.csg.leaf_value: the network clipped by its ball, in world units */
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
  /* core.geometry.csg.smooth_min */
  float m = min(a, b);
  if (k <= 0.0) {{
    return m;
  }}
  float h = max(k - abs(a - b), 0.0) / k;
  return m - h * h * (0.25 * k);
}}

float ni_combine(float a, float b, vec4 s)
{{
  /* core.geometry.csg.combine; s = (operation code, blend, 0, 0) */
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


# ============================================================================ whole programs

def sdf_glsl(arch) -> tuple[str, str, str]:
    """``(function name, source, typedef)`` of the distance function of an architecture
    (:func:`network_glsl`) or of a CSGShape's tree (:func:`csg_glsl`, whose ``NICSG`` block is the
    typedef); the source needs :func:`fetch_glsl` before it."""
    if isinstance(arch, CSGShape):
        return "ni_csg", csg_glsl(arch), csg_struct(arch)
    return "ni_sdf_" + arch_name(arch), network_glsl(arch), ""


def trace_program(arch, debug_steps: bool = False) -> tuple[str, str, str]:
    """``(typedef, vertex, fragment)`` source of the sphere-tracing shader of an architecture or of
    a CSGShape's tree: uniform blocks ``obj`` (NIObject) and, for CSG, ``csg`` (NICSG); sampler
    ``weights_tx``; vertex input ``pos`` (vec3, the proxy cube), ``net_pos`` passed on."""
    sdf, source, typedef = sdf_glsl(arch)
    fragment = fetch_glsl() + shading_glsl() + source + trace_fragment(sdf, debug_steps)
    return OBJECT_STRUCT + typedef, TRACE_VERTEX, fragment


#: Vertex shader of a full-screen pass: input ``pos`` (vec2, a triangle covering the screen),
#: output ``uv`` in [0, 1]^2.
FULLSCREEN_VERTEX = """
void main()
{
  uv = pos * 0.5 + 0.5;
  gl_Position = vec4(pos, 0.0, 1.0);
}
"""

#: The full-screen pass that upsamples a low-resolution trace (nearest texel) with its depth:
#: samplers ``color_tx`` and ``depth_tx``, push constant ``lowres`` (their size).
COMPOSITE_FRAGMENT = """
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
"""


def evaluate_fragment(arch) -> tuple[str, str]:
    """``(typedef, fragment)`` of a full-screen pass that writes the distance function of ``arch``
    (an architecture or a CSGShape) at the point in texel ``uv * size`` of ``points_tx`` into red
    (tests and debugging: ``viewport.evaluate_on_gpu``)."""
    sdf, source, typedef = sdf_glsl(arch)
    return typedef, fetch_glsl() + source + f"""
void main()
{{
  ivec2 px = clamp(ivec2(uv * size), ivec2(0), ivec2(size) - 1);
  fragColor = vec4({sdf}(0, texelFetch(points_tx, px, 0).xyz), 0.0, 0.0, 1.0);
}}
"""
