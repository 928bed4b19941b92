"""Hostile networks: valid, small .h5 files whose evaluation is what attacks remeshing, tracing, CSG.

Every case is a hand-made :class:`core.representation.implicit.Implicit` (finite weights of the
right shapes, so the file loads) written with :func:`core.representation.fileformat.save`. Use::

    from tests.hostile.networks import cases      # or `from hostile.networks import cases` in tests/
    for case in cases(tmpdir):
        case.name        # e.g. "sawtooth_relu"
        case.class_name  # the class of problem: "space_filling", "nan", "no_surface", "wide"
        case.path        # the .h5 file written under tmpdir
        case.expected    # "error": remesh at 256^3 must raise core.common.errors.InputError
                         quickly; # "ok": it must return a closed mesh, in bounded memory

Classes
-------
* ``space_filling``: the zero set fills the ball (a sine of frequency 300, a deep ReLU sawtooth with
  2^9 teeth per axis), so nearly every cell at 256^3 is crossed: 27 M triangles, gigabytes, unless
  the mesh size is checked as cells are found.
* ``nan``: weights finite but large enough that float32 activations overflow (inf - inf = NaN, or
  sin(inf)), everywhere or only in part of the ball; NaN compares false with everything and once
  passed for "negative at every grid point".
* ``no_surface``: positive everywhere, or negative everywhere in the ball: no zero level set, which
  must be an error naming which, never an empty mesh.
* ``wide``: one hidden layer of 4096 units (80 kB file) fitted to a ball: legitimate, but a chunk of
  65,536 points would take 1 GB per activation array; it must remesh in bounded memory.

Each builder is also exposed on its own (``sawtooth_relu()`` ...) returning the Implicit.
"""

from __future__ import annotations

import os

import numpy as np

from core.representation.fileformat import save
from core.representation.implicit import Architecture, Implicit

from . import Case


def constant(value: float, transform=None) -> Implicit:
    """``tanh(value)`` everywhere: no zero level set (positive, or negative in the whole ball); what
    a training that collapsed leaves (no surface, and a tiny surface error)."""
    arch = Architecture(layers=1, hidden=4)
    Ws, bs = _zeros(arch)
    bs[-1][:] = value
    return Implicit(arch, Ws, bs, np.eye(4) if transform is None else transform)


def negated(imp: Implicit) -> Implicit:
    """The same network with inside and outside swapped (an inverted sign)."""
    Ws = [w.copy() for w in imp.weights]
    bs = [b.copy() for b in imp.biases]
    Ws[-1] *= -1
    bs[-1] *= -1
    return Implicit(imp.architecture, Ws, bs, imp.transform)


def _zeros(arch: Architecture):
    """Zero weights and biases of the right shapes, to fill in by hand."""
    shapes = arch.layer_shapes()
    return [np.zeros(s, np.float32) for s in shapes], [np.zeros(s[0], np.float32) for s in shapes]


def sine_space_filling(frequency: float = 300.0) -> Implicit:
    """``tanh(sum_j w_j sin(frequency d_j . x))``: zero crossings every ~1/frequency in every
    direction, so nearly every cell of a 256^3 grid (cell 0.0078) is crossed."""
    arch = Architecture(layers=1, hidden=32, activation="sine")
    W, b = _zeros(arch)
    rng = np.random.default_rng(0)
    d = rng.standard_normal((32, 3))
    W[0][:] = frequency * d / np.linalg.norm(d, axis=1, keepdims=True)
    b[0][:] = rng.uniform(0, 2 * np.pi, 32)
    W[1][0] = rng.standard_normal(32)
    return Implicit(arch, W, b)


def sawtooth_relu(layers: int = 8) -> Implicit:
    """A ReLU network applying the tent map ``u -> 2 relu(u) - 4 relu(u - 1/2)`` ``layers`` times
    to each coordinate's ``u``, about ``(x + 1) / 2`` (Telgarsky's sawtooth): ``2^(layers - 1)``
    teeth per axis over [-1, 1] (128, one per 2 cells at 256^3; ``u`` is shrunk by 0.13 % so that grid
    points do not all fall on the same phase), so ``f = tanh(sum_axes (u - 1/2))`` changes sign in
    nearly every cell. Exact piecewise-linear arithmetic, no overflow: only the surface is hostile."""
    arch = Architecture(layers=layers, hidden=32)
    W, b = _zeros(arch)
    scale, shift = 0.5 * 0.9987, 0.5 * 0.9987 + 0.0007     # u in [0.0007, 0.9994]
    for c in range(3):
        a, t = 2 * c, 2 * c + 1                 # units relu(u) and relu(u - 1/2) of axis c
        W[0][a, c] = W[0][t, c] = scale
        b[0][a], b[0][t] = shift, shift - 0.5
        for i in range(1, layers):              # u' = 2 relu(u) - 4 relu(u - 1/2)
            W[i][a, a] = W[i][t, a] = 2.0
            W[i][a, t] = W[i][t, t] = -4.0
            b[i][t] = -0.5
        W[layers][0, a], W[layers][0, t] = 2.0, -4.0
    b[layers][0] = -1.5
    return Implicit(arch, W, b)


def overflow_relu(scale: float = 1e30) -> Implicit:
    """Finite weights of ``scale``: the second layer's activations pass float32's 3.4e38, become
    inf, and the third layer's mixed signs give inf - inf = NaN at every point."""
    arch = Architecture(layers=3, hidden=8)
    W, b = _zeros(arch)
    W[0][:] = scale
    b[0][:] = scale                              # relu(scale (x + y + z + 1)) > 0 almost everywhere
    W[1][:] = scale
    W[2][:, :4], W[2][:, 4:] = 1.0, -1.0         # inf - inf
    W[3][0] = 1.0
    return Implicit(arch, W, b)


def overflow_sine(scale: float = 3e38) -> Implicit:
    """SIREN-style: 16 first-layer outputs of sin(1) = 0.84 times ``scale`` sum past float32's
    3.4e38 in the second layer, and ``sin(inf)`` is NaN everywhere."""
    arch = Architecture(layers=2, hidden=16, activation="sine")
    W, b = _zeros(arch)
    b[0][:] = 1.0
    W[1][:] = scale
    W[2][0] = 1.0
    return Implicit(arch, W, b)


def overflow_half_ball() -> Implicit:
    """A ball of radius 0.5 where ``x < 0.25``, NaN where ``x > 0.25``: the overflow happens only in
    part of the ball, so the rest still has a surface; half a mesh must not come out as success.

    Two hidden units reach inf (``1e30 * relu(1e30 (x - 0.25))``, each one product, so an FMA
    kernel overflows too) and the next layer subtracts them: inf - inf = NaN."""
    arch = Architecture(layers=3, hidden=64)
    W, b = _zeros(arch)
    rng = np.random.default_rng(1)
    d = rng.standard_normal((60, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    W[0][:60] = d                                # sum_i relu(d_i . x) ~ 15 |x| over 60 directions
    W[0][60] = (1e30, 0, 0)                      # relu(1e30 (x - 0.25)): huge where x > 0.25
    b[0][60] = -0.25e30
    W[1][:60, :60] = W[2][:60, :60] = np.eye(60)
    W[1][60, 60] = W[1][61, 60] = 1e30           # inf where x > 0.25
    W[2][0, 60], W[2][0, 61] = 1.0, -1.0         # inf - inf
    W[3][0, :60] = 1.0 / 15.0
    b[3][0] = -0.5
    return Implicit(arch, W, b)


def wide_ball(hidden: int = 4096, radius: float = 0.5) -> Implicit:
    """One hidden layer of ``hidden`` ReLU units over random unit directions ``d_i``: the mean of
    ``relu(d_i . x)`` is ``|x| / 4``, so ``f = tanh(4 mean - radius)`` is about ``|x| - radius``. A
    legitimate ball that is expensive per point."""
    arch = Architecture(layers=1, hidden=hidden)
    W, b = _zeros(arch)
    rng = np.random.default_rng(2)
    d = rng.standard_normal((hidden, 3))
    W[0][:] = d / np.linalg.norm(d, axis=1, keepdims=True)
    W[1][0] = 4.0 / hidden
    b[1][0] = -radius
    return Implicit(arch, W, b)


#: (name, class, builder, expected) of every case.
BUILDERS = (
    ("sine_space_filling", "space_filling", sine_space_filling, "error"),
    ("sawtooth_relu", "space_filling", sawtooth_relu, "error"),
    ("overflow_relu", "nan", overflow_relu, "error"),
    ("overflow_sine", "nan", overflow_sine, "error"),
    ("overflow_half_ball", "nan", overflow_half_ball, "error"),
    ("positive_everywhere", "no_surface", lambda: constant(0.5), "error"),
    ("negative_everywhere", "no_surface", lambda: constant(-0.5), "error"),
    ("wide_ball", "wide", wide_ball, "ok"),
)


def cases(tmpdir) -> list[Case]:
    """Write every hostile network under ``tmpdir`` (created if missing); one Case per file."""
    os.makedirs(tmpdir, exist_ok=True)
    out = []
    for name, class_name, build, expected in BUILDERS:
        path = os.path.join(str(tmpdir), f"{name}.h5")
        save(build(), path)
        out.append(Case(name, class_name, path, expected))
    return out
