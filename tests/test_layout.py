"""The weight layout checked from one place, without Blender or a GPU: the viewport's generated GLSL
(core/geometry/glsl.py) run in numpy over the packed texels (core/representation/layout.py) equals
Implicit.evaluate.

The GLSL is not re-implemented here: :func:`run_glsl` translates the generated text line by line into
Python (the subset the generator emits: functions, ``for``/``if`` blocks, vec constructors, swizzles,
``texelFetch``) and runs it with numpy's float32 arithmetic, reading the texture exactly as the
shader indexes it (``ni_w``'s row and column split included) and the ``NICSG`` uniform block as
std140 column-major matrices.
"""

import re

import numpy as np
import pytest

from core.geometry import glsl
from core.geometry.csg import csg
from core.representation import layout
from core.representation.implicit import Architecture, Implicit

TYPES = r"(?:float|int|bool|vec3|vec4)"
SWIZZLE = {"x": 0, "y": 1, "z": 2, "w": 3}


# ------------------------------------------------------------------------ GLSL -> Python, in numpy

def _statements(src: str):
    """(text, terminator) pairs: ``;`` ends a statement, ``{``/``}`` open/close a block (outside
    parentheses, so a ``for`` header stays whole)."""
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    out, cur, depth = [], "", 0
    for ch in src:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and ch in ";{}":
            out.append((" ".join(cur.split()), ch))
            cur = ""
        else:
            cur += ch
    assert not cur.strip(), cur
    return out


def _ternary(e: str) -> str:
    """``c ? a : b`` (``c`` a name) -> ``(a if c else b)``, the branches ending at ``,`` or ``)``."""
    while "?" in e:
        q = e.index("?")
        start = re.search(r"\w+\s*$", e[:q]).start()
        depth, colon, end = 0, None, len(e)
        for i in range(q + 1, len(e)):
            depth += {"(": 1, ")": -1}.get(e[i], 0)
            if depth == 0 and e[i] == ":" and colon is None:
                colon = i
            if depth < 0 or (depth == 0 and e[i] == ","):
                end = i
                break
        e = (f"{e[:start]}({e[q + 1:colon].strip()} if {e[start:q].strip()} else "
             f"{e[colon + 1:end].strip()}){e[end:]}")
    return e


def _expr(e: str) -> str:
    def swizzle(m):
        idx = [SWIZZLE[c] for c in m.group(1)]
        return f"[..., {idx[0]}]" if len(idx) == 1 else f"[..., {idx}]"
    assert "!" not in e.replace("!=", ""), e
    return _ternary(re.sub(r"(?<=[\w\])])\.([xyzw]{1,4})\b", swizzle, e))


def translate(src: str) -> str:
    """The GLSL functions of ``src`` as Python source."""
    lines, indent = [], 0
    for text, term in _statements(src):
        pad = "    " * indent
        if term == "}":
            assert not text, text
            indent -= 1
            continue
        if term == "{":
            m = re.fullmatch(rf"{TYPES} (\w+)\((.*)\)", text)
            f = re.fullmatch(r"for \(int (\w+) = (.+); \1 < (.+); \1\+\+\)", text)
            if m:
                args = ", ".join(a.split()[-1] for a in m.group(2).split(","))
                lines.append(f"{pad}def {m.group(1)}({args}):")
            elif f:
                start, stop = _expr(f.group(2)), _expr(f.group(3))
                lines.append(f"{pad}for {f.group(1)} in range({start}, {stop}):")
            elif text.startswith("if ("):
                lines.append(f"{pad}if {_expr(text[3:])}:")
            else:
                raise AssertionError(f"unexpected block {text!r}")
            lines.append(f"{pad}    pass")
            indent += 1
            continue
        array = re.fullmatch(rf"{TYPES} (\w+)\[(\d+)\]", text)
        init = re.fullmatch(rf"{TYPES} (\w+) = (.*)", text)
        compound = re.fullmatch(r"([\w\[\]]+) ([-+*/])= (.*)", text)
        if array:
            lines.append(f"{pad}{array.group(1)} = [None] * {array.group(2)}")
        elif init:
            lines.append(f"{pad}{init.group(1)} = {_expr(init.group(2))}")
        elif re.fullmatch(rf"{TYPES} [\w, ]+", text):
            continue                                 # declarations without a value
        elif text.startswith("return "):
            lines.append(f"{pad}return {_expr(text[7:])}")
        elif compound:                               # GLSL values, not numpy's in-place update
            target, op, value = compound.groups()
            lines.append(f"{pad}{target} = {target} {op} ({_expr(value)})")
        else:
            lines.append(f"{pad}{_expr(text)}")
    assert indent == 0
    return "\n".join(lines)


def _vec(n):
    def construct(*args):
        parts = [np.asarray(a, np.float32) for a in args]
        parts = [p if p.ndim == 2 else p.reshape(-1, 1) for p in parts]   # vectors are (n, k)
        rows = max(len(p) for p in parts)
        v = np.concatenate([np.broadcast_to(p, (rows, p.shape[1])) for p in parts], axis=1)
        v = np.repeat(v, n, axis=1) if v.shape[1] == 1 else v
        assert v.shape[1] == n, (n, v.shape)
        return v
    return construct


class Mat4:
    """A ``mat4`` uniform: ``M * v`` is the matrix-vector product."""

    def __init__(self, column_major):
        self.M = np.asarray(column_major, np.float32).reshape(4, 4).T

    def __mul__(self, v):
        return v @ self.M.T


def run_glsl(src: str, texels: np.ndarray, block=None, shape=None) -> dict:
    """Run ``fetch_glsl() + src`` with ``weights_tx`` holding ``texels``; for CSG the ``NICSG``
    block ``block`` of ``shape`` (std140: mat4 columns, then vec4 rows). Returns the namespace."""
    tex = layout.texture_data(texels)
    ns = {
        "vec3": _vec(3), "vec4": _vec(4), "ivec2": lambda a, b: (int(a), int(b)),
        "texelFetch": lambda t, xy, lod: t[xy[1], xy[0]][None, :].copy(),
        "weights_tx": tex, "dot": lambda a, b: np.sum(a * b, axis=-1),
        "max": np.maximum, "min": np.minimum, "sin": np.sin, "cos": np.cos, "exp": np.exp,
        "abs": np.abs, "sign": np.sign, "sqrt": np.sqrt,
        "length": lambda v: np.linalg.norm(v, axis=-1).astype(np.float32),
    }
    if block is not None:
        leaves, steps = len(shape.leaves()), len(shape.flat_steps())
        mats = block[:16 * leaves].reshape(leaves, 16)
        rows = block[16 * leaves:].reshape(-1, 4)
        assert len(rows) == leaves + steps
        ns["csg"] = type("NICSG", (), {"to_net": [Mat4(m) for m in mats], "leaf": rows[:leaves],
                                       "step": rows[leaves:]})
    exec(translate(glsl.fetch_glsl() + src), ns)
    return ns


def random_implicit(arch, rng, transform=None):
    scale = 1.5 if arch.activation == "sine" else 0.6
    W = [rng.normal(0, scale / np.sqrt(n), (o, n)) for o, n in arch.layer_shapes()]
    b = [rng.normal(0, 0.1, o) for o, _ in arch.layer_shapes()]
    return Implicit(arch, W, b, np.eye(4) if transform is None else transform)


# ------------------------------------------------------------------------------------------ tests

ARCHS = [Architecture(1, 5, "relu", 0), Architecture(3, 13, "sine", 2), Architecture(2, 16, "relu", 4),
         Architecture(2, 8, "sine", 0), Architecture(2, 6, "relu", 1),
         Architecture(2, 70, "sine", 1)]    # 70: wider than UNROLL_PAIRS, the shader keeps its loops


@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_glsl_network_over_packed_texels_equals_numpy(arch):
    rng = np.random.default_rng(arch.hidden)
    imp = random_implicit(arch, rng)
    texels = layout.pack_weights(imp)
    assert len(texels) == layout.network_texels(arch)
    Q = rng.uniform(-1, 1, (300, 3)).astype(np.float32)
    offset = 37                          # networks need not start at texel 0 (CSG packs several)
    padded = np.concatenate([np.full((offset, 4), np.nan, np.float32), texels])
    sdf = run_glsl(glsl.network_glsl(arch), padded)["ni_sdf_" + glsl.arch_name(arch)]
    got = sdf(offset, Q)
    assert got.dtype == np.float32 and got.shape == (len(Q),)
    assert np.abs(got - imp.evaluate(Q)).max() < 1e-5


def test_paper_sized_network_and_texture_rows():
    """The default 8 x 32 network: 1,897 texels; a network that crosses a texture row is read
    across it (``ni_w`` splits the index into column and row)."""
    arch = Architecture()
    assert layout.network_texels(arch) == 1897
    imp = random_implicit(arch, np.random.default_rng(1))
    offset = layout.WEIGHT_TEXTURE_WIDTH - 100
    texels = np.concatenate([np.zeros((offset, 4), np.float32), layout.pack_weights(imp)])
    assert layout.texture_data(texels).shape == (2, layout.WEIGHT_TEXTURE_WIDTH, 4)
    Q = np.random.default_rng(2).uniform(-1, 1, (200, 3)).astype(np.float32)
    got = run_glsl(glsl.network_glsl(arch), texels)["ni_sdf_" + glsl.arch_name(arch)](offset, Q)
    assert np.abs(got - imp.evaluate(Q)).max() < 1e-5


def test_glsl_csg_over_packed_texels_and_block_equals_numpy():
    """Every operation, a nested stack, a non-uniformly scaled operand, a network used twice
    (stored once) and leaves of different architectures in one texture."""
    rng = np.random.default_rng(3)
    A = random_implicit(Architecture(2, 6, "relu", 1), rng, np.diag([1.1, 1.1, 1.1, 1.0]))
    B = random_implicit(Architecture(1, 5, "sine", 0), rng)
    Ma, Mb = np.eye(4), np.diag([0.9, 0.9, 0.9, 1.0])
    Ma[:3, 3], Mb[:3, 3] = (0.3, 0.0, 0.0), (-0.2, 0.1, 0.0)
    inner = csg(B, Mb @ np.diag([1.3, 0.7, 1.0, 1.0]), ("smooth_intersection", csg(A, Mb), 0.2))
    shape = csg(A, Ma, ("smooth_union", csg(B, Mb), 0.15), ("difference", inner),
                ("smooth_difference", csg(B, Ma), 0.1), ("intersection", csg(A, Ma)),
                ("union", csg(A, Mb)))
    size, offsets = layout.csg_offsets(shape)
    assert size == layout.network_texels(A.architecture) + layout.network_texels(B.architecture)
    assert len(set(offsets)) == 2
    texels = layout.pack_csg_weights(shape)
    assert np.array_equal(glsl.weight_texels(shape), texels)
    ni_csg = run_glsl(glsl.csg_glsl(shape), texels, glsl.csg_block(shape), shape)["ni_csg"]
    Q = rng.uniform(-1.5, 1.5, (150, 3)).astype(np.float32) * shape.bound_radius
    got = np.array([ni_csg(0, q[None])[0] for q in Q])     # one point at a time: the GLSL branches
    assert np.abs(got - shape.evaluate(Q)).max() < 1e-5


def test_every_activation_has_a_glsl_form_and_one_int8_rule():
    """(The torch side of the int8 rule, refine.fake_quantized: tests/test_budget.py.)"""
    assert set(glsl.ACTIVATION_GLSL) == set(layout.ACTIVATIONS)
    from core.representation.quantize import quantized
    W = np.random.default_rng(4).normal(0, 1, (7, 5)).astype(np.float32)
    W[2] = 0.0
    Wq, scale = layout.int8_quantize(W)
    assert Wq.dtype == np.int8 and np.abs(Wq).max() == layout.INT8_LEVELS and scale[2] == 1.0
    assert np.array_equal(quantized(W, np.zeros(7), "int8")[0], layout.int8_dequantize(Wq, scale))

