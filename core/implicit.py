"""The trained shape: architecture + similarity transform + weights, evaluated with numpy alone.

Why this module exists: it defines the **one weight layout** that numpy, torch (``model.py``) and the
viewport shader all read, so the three evaluators cannot drift apart. Torch is never imported here.

Layout
------
For ``layers`` hidden layers of width ``hidden`` there are ``layers + 1`` linear layers::

    h_0 = encode(x)                       x : (3,) point in the network frame
    h_{i+1} = act(W_i @ h_i + b_i)        i = 0 .. layers-1, W_i : (out, in) float32
    f(x) = tanh(W_L @ h_L + b_L)          W_L : (1, hidden)

* ``act`` is ReLU, or ``sin`` for SIREN networks. SIREN's frequency factor omega_0 is folded into
  ``W_i`` and ``b_i`` when the network is exported, so every evaluator applies plain ``sin(W h + b)``.
* ``encode`` is the identity (3 inputs) or, with ``encoding_frequencies = L > 0``, NeRF's positional
  encoding ``[x, sin(2^0 pi x), cos(2^0 pi x), ..., sin(2^(L-1) pi x), cos(2^(L-1) pi x)]``, each term
  a 3-vector, so ``3 + 6 L`` inputs.
* ``f`` is a signed distance in the network frame, negative inside.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from .constants import BOUND_RADIUS, EVAL_CHUNK, MESH_RADIUS
from .errors import InputError

ACTIVATIONS = ("relu", "sine")

#: Bytes of one layer's activations in one evaluation chunk, at most (see Implicit.eval_chunk).
ACTIVATION_BYTES = 64 << 20

#: Limits of an architecture. Files are untrusted input: a few bytes of JSON in a .h5 file name the
#: architecture, and every array the loader allocates follows from it, so the limits are what keeps a
#: small hostile file from claiming gigabytes. MAX_PARAMETERS (8 MB of float32 weights) is 11 times
#: the largest network the project trains (core/sizing.py's ladder ends at 12 x 128, 182,273
#: parameters) and 4 times a wide 8 x 256 with 16 encoding frequencies (486,401).
MAX_LAYERS = 64
MAX_HIDDEN = 4096
MAX_ENCODING_FREQUENCIES = 16
MAX_PARAMETERS = 2_000_000


def _is_int(v) -> bool:
    """A true integer: ``True`` is an int in Python but never a layer count."""
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class Architecture:
    """Shape of the network. ``layers`` counts hidden layers (the paper's N), ``hidden`` their width."""

    layers: int = 8
    hidden: int = 32
    activation: str = "relu"
    encoding_frequencies: int = 0

    def __post_init__(self):
        if not (_is_int(self.layers) and 1 <= self.layers <= MAX_LAYERS):
            raise InputError(f"layers must be an integer in 1..{MAX_LAYERS}, got {self.layers!r}")
        if not (_is_int(self.hidden) and 1 <= self.hidden <= MAX_HIDDEN):
            raise InputError(f"hidden must be an integer in 1..{MAX_HIDDEN}, got {self.hidden!r}")
        if not (isinstance(self.activation, str) and self.activation in ACTIVATIONS):
            raise InputError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if not (_is_int(self.encoding_frequencies)
                and 0 <= self.encoding_frequencies <= MAX_ENCODING_FREQUENCIES):
            raise InputError(f"encoding_frequencies must be an integer in "
                             f"0..{MAX_ENCODING_FREQUENCIES}, got {self.encoding_frequencies!r}")
        if self.parameters > MAX_PARAMETERS:
            raise InputError(f"a network of {self.layers} x {self.hidden} has {self.parameters:,} "
                             f"parameters; at most {MAX_PARAMETERS:,} are allowed")

    @property
    def input_dim(self) -> int:
        return 3 + 6 * self.encoding_frequencies

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(out, in) of every linear layer, first to last."""
        shapes = [(self.hidden, self.input_dim)]
        shapes += [(self.hidden, self.hidden)] * (self.layers - 1)
        shapes.append((1, self.hidden))
        return shapes

    @property
    def parameters(self) -> int:
        return sum(o * i + o for o, i in self.layer_shapes())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Architecture":
        if not isinstance(d, dict):
            raise InputError(f"architecture must be a JSON object, got {type(d).__name__}")
        known = {"layers", "hidden", "activation", "encoding_frequencies"}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown architecture fields: {sorted(unknown)}")
        return cls(**d)


def encode(X: np.ndarray, frequencies: int) -> np.ndarray:
    """Positional encoding of (n, 3) points -> (n, 3 + 6 L), in the order documented above."""
    if frequencies == 0:
        return X
    parts = [X]
    for k in range(frequencies):
        s = (2.0 ** k) * np.pi
        parts += [np.sin(s * X), np.cos(s * X)]
    return np.concatenate(parts, axis=1)


def _encode_jacobian(X: np.ndarray, frequencies: int) -> np.ndarray:
    """d encode / d x as (n, 3 + 6L, 3); each encoded coordinate depends on one input axis."""
    n = X.shape[0]
    eye = np.broadcast_to(np.eye(3, dtype=X.dtype), (n, 3, 3))
    parts = [eye]
    for k in range(frequencies):
        s = (2.0 ** k) * np.pi
        parts += [eye * (s * np.cos(s * X))[:, None, :], eye * (-s * np.sin(s * X))[:, None, :]]
    return np.concatenate(parts, axis=1)


@dataclass
class Implicit:
    """A weight-encoded neural implicit.

    Attributes
    ----------
    architecture : Architecture
    weights : list of (out, in) float32 arrays, one per linear layer (see the module docstring)
    biases : list of (out,) float32 arrays
    transform : (4, 4) float64, the similarity that maps mesh-frame points to the network frame
        (``x_net = s R x + t`` with ``R`` the identity for conversions of ours).
    metadata : dict of JSON-serialisable values (source, settings, timings, errors)
    storage : how weights are stored in files: ``float32``, ``float16`` or ``int8`` (the arrays here
        are always the float32 values a reader obtains)
    """

    architecture: Architecture
    weights: list
    biases: list
    transform: np.ndarray = field(default_factory=lambda: np.eye(4))
    metadata: dict = field(default_factory=dict)
    storage: str = "float32"

    def __post_init__(self):
        self.weights = [np.ascontiguousarray(w, dtype=np.float32) for w in self.weights]
        self.biases = [np.ascontiguousarray(b, dtype=np.float32).reshape(-1) for b in self.biases]
        self.transform = np.asarray(self.transform, dtype=np.float64)
        self.validate()

    # ------------------------------------------------------------------ structure
    def validate(self) -> None:
        """Raise InputError unless weights, biases and transform match the architecture."""
        shapes = self.architecture.layer_shapes()
        if len(self.weights) != len(shapes) or len(self.biases) != len(shapes):
            raise InputError(f"expected {len(shapes)} layers for {self.architecture}, got "
                             f"{len(self.weights)} weight and {len(self.biases)} bias arrays")
        for i, ((o, n), W, b) in enumerate(zip(shapes, self.weights, self.biases)):
            if W.shape != (o, n):
                raise InputError(f"layer {i}: weight must have shape {(o, n)}, got {W.shape}")
            if b.shape != (o,):
                raise InputError(f"layer {i}: bias must have shape {(o,)}, got {b.shape}")
            if not (np.isfinite(W).all() and np.isfinite(b).all()):
                raise InputError(f"layer {i}: weights contain NaN or infinity")
        if self.transform.shape != (4, 4) or not np.isfinite(self.transform).all():
            raise InputError(f"transform must be a finite 4x4 matrix, got shape {self.transform.shape}")
        if not np.allclose(self.transform[3], [0, 0, 0, 1]):
            raise InputError("transform must be affine (last row 0 0 0 1)")
        if self.scale <= 0:
            raise InputError("transform must have a positive scale")

    @property
    def parameters(self) -> int:
        return self.architecture.parameters

    @property
    def scale(self) -> float:
        """Uniform scale factor of the transform (network units per mesh unit)."""
        return float(np.cbrt(abs(np.linalg.det(self.transform[:3, :3]))))

    @property
    def bound_radius(self) -> float:
        """Radius of the ball, in the network frame, where the network is defined."""
        return BOUND_RADIUS

    # ------------------------------------------------------------------ frames
    def to_network(self, P: np.ndarray) -> np.ndarray:
        """Mesh-frame points (n, 3) -> network-frame points (n, 3)."""
        P = np.asarray(P, dtype=np.float64)
        return P @ self.transform[:3, :3].T + self.transform[:3, 3]

    def to_mesh(self, Q: np.ndarray) -> np.ndarray:
        """Network-frame points (n, 3) -> mesh-frame points (n, 3)."""
        inv = np.linalg.inv(self.transform)
        Q = np.asarray(Q, dtype=np.float64)
        return Q @ inv[:3, :3].T + inv[:3, 3]

    @property
    def unit_scale(self) -> float:
        """Factor from network-frame distances to the unit-sphere frame used for metrics."""
        return 1.0 / MESH_RADIUS

    # ------------------------------------------------------------------ evaluation
    def _forward(self, X: np.ndarray, keep: bool):
        """Run the layers on (n, 3) float32 network-frame points; optionally keep pre-activations.

        A point whose hidden activations overflow float32 gets NaN, whatever the matrix kernel
        makes of the infinity later (a fused multiply-add can turn it into a finite tanh of 1):
        callers then report the overflow instead of reading it as inside or outside."""
        arch = self.architecture
        h = encode(X, arch.encoding_frequencies)
        pre = []
        overflow = None
        last = len(self.weights) - 1
        with np.errstate(over="ignore", invalid="ignore"):
            for i, (W, b) in enumerate(zip(self.weights, self.biases)):
                z = h @ W.T + b
                if keep:
                    pre.append(z)
                if i == last:
                    h = np.tanh(z)
                    break
                h = np.maximum(z, 0.0) if arch.activation == "relu" else np.sin(z)
                bad = ~np.isfinite(h.sum(axis=1))
                overflow = bad if overflow is None else overflow | bad
        f = h[:, 0]
        if overflow is not None and overflow.any():
            f = np.where(overflow, np.float32(np.nan), f)
        return f, pre

    def eval_chunk(self, chunk: int = EVAL_CHUNK) -> int:
        """Points per evaluation so one layer's activations stay within :data:`ACTIVATION_BYTES`:
        ``chunk``, lowered for wide layers (a legal 4096-wide layer at EVAL_CHUNK points would
        take 1 GiB per array)."""
        width = max(self.architecture.hidden, self.architecture.input_dim)
        return max(1, min(int(chunk), ACTIVATION_BYTES // (4 * width)))

    def evaluate(self, Q: np.ndarray, chunk: int = EVAL_CHUNK) -> np.ndarray:
        """Signed distance at network-frame points Q (n, 3) -> (n,) float32, chunked for memory."""
        Q = _as_points(Q)
        chunk = self.eval_chunk(chunk)
        out = np.empty(len(Q), dtype=np.float32)
        for s in range(0, len(Q), chunk):
            out[s:s + chunk], _ = self._forward(Q[s:s + chunk], keep=False)
        return out

    def gradient(self, Q: np.ndarray, chunk: int = EVAL_CHUNK) -> np.ndarray:
        """Analytic gradient d f / d x at network-frame points Q (n, 3) -> (n, 3) float32."""
        Q = _as_points(Q)
        chunk = self.eval_chunk(chunk)
        out = np.empty((len(Q), 3), dtype=np.float32)
        for s in range(0, len(Q), chunk):
            out[s:s + chunk] = self._gradient_chunk(Q[s:s + chunk])
        return out

    def _gradient_chunk(self, X: np.ndarray) -> np.ndarray:
        f, pre = self._forward(X, keep=True)
        g = (1.0 - f * f)[:, None]                       # d tanh
        for i in range(len(self.weights) - 1, -1, -1):
            g = g @ self.weights[i]                      # back through W_i -> d/d h_i
            if i > 0:
                z = pre[i - 1]
                g = g * ((z > 0) if self.architecture.activation == "relu" else np.cos(z))
        L = self.architecture.encoding_frequencies
        if L:
            g = np.einsum("ne,nek->nk", g, _encode_jacobian(X, L).astype(np.float32))
        return g.astype(np.float32)

    def evaluate_mesh_frame(self, P: np.ndarray, chunk: int = EVAL_CHUNK) -> np.ndarray:
        """Signed distance in mesh units at mesh-frame points P (n, 3)."""
        return self.evaluate(self.to_network(P), chunk) / np.float32(self.scale)

    # ------------------------------------------------------------------ sizes
    @property
    def weight_bytes(self) -> int:
        """Bytes of every number the shape needs at its stored size (see docs/file-format.md)."""
        from .quantize import stored_weight_bytes
        return stored_weight_bytes(self)

    def describe(self) -> dict:
        """Summary used by ``core info`` and the add-on's panel."""
        a = self.architecture
        return {
            "parameters": a.parameters, "layers": a.layers, "hidden": a.hidden,
            "activation": a.activation, "encoding_frequencies": a.encoding_frequencies,
            "storage": self.storage, "weight_bytes": self.weight_bytes,
            "transform": self.transform.tolist(),
        }

    def copy(self) -> "Implicit":
        return Implicit(self.architecture, [w.copy() for w in self.weights],
                        [b.copy() for b in self.biases], self.transform.copy(),
                        json.loads(json.dumps(self.metadata)), self.storage)


def _as_points(Q) -> np.ndarray:
    Q = np.asarray(Q)
    if Q.ndim != 2 or Q.shape[1] != 3:
        raise InputError(f"query points must have shape (n, 3), got {Q.shape}")
    return np.ascontiguousarray(Q, dtype=np.float32)
