"""The trained shape: architecture + similarity transform + weights, evaluated with numpy alone.

The network it evaluates (parameter order, encoding, activations, head) is defined in ``layout.py``,
which numpy (here), torch (``model.py``) and the viewport's shader (``glsl.py``) all read, so the three
evaluators cannot drift apart. Torch is never imported here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..common.constants import BOUND_RADIUS, EVAL_CHUNK, MESH_RADIUS
from ..common.errors import InputError
from .layout import (ACTIVATIONS, MAX_LAYERS, MAX_PARAMETERS,  # noqa: F401  (re-exported)
                     Architecture, activate, activation_derivative, encode, encoding_jacobian,
                     encoding_scales, head, head_derivative)

#: Most networks one shape holds (core.samples.parts makes at most MAX_MEMBERS; files are refused
#: beyond this, so a crafted file cannot multiply the work of every evaluation).
MAX_NETWORKS = 16

#: Bytes of one layer's activations in one evaluation chunk, at most (see Implicit.eval_chunk).
ACTIVATION_BYTES = 64 << 20


@dataclass
class Implicit:
    """A weight-encoded neural implicit.

    Attributes
    ----------
    architecture : Architecture
    weights : list of (out, in) float32 arrays, one per linear layer (``layout.py``)
    biases : list of (out,) float32 arrays
    transform : (4, 4) float64, the similarity that maps mesh-frame points to the network frame
        (``x_net = s R x + t`` with ``R`` the identity for conversions of ours).
    metadata : dict of JSON-serialisable values (source, settings, timings, errors)
    storage : how weights are stored in files: ``float32``, ``float16`` or ``int8`` (the arrays here
        are always the float32 values a reader obtains)
    members : further networks of the same architecture and transform, as ``(weights, biases)``
        pairs; the shape is their union with the first (the minimum of the values). A conversion
        makes them for separate parts that nearly touch (core.samples.parts): one network per group
        of parts far apart, so no network has to resolve a gap narrower than its accuracy.
    """

    architecture: Architecture
    weights: list
    biases: list
    transform: np.ndarray = field(default_factory=lambda: np.eye(4))
    metadata: dict = field(default_factory=dict)
    storage: str = "float32"
    members: list = field(default_factory=list)

    def __post_init__(self):
        self.weights = [np.ascontiguousarray(w, dtype=np.float32) for w in self.weights]
        self.biases = [np.ascontiguousarray(b, dtype=np.float32).reshape(-1) for b in self.biases]
        self.members = [([np.ascontiguousarray(w, dtype=np.float32) for w in W],
                         [np.ascontiguousarray(b, dtype=np.float32).reshape(-1) for b in B])
                        for W, B in self.members]
        self.transform = np.asarray(self.transform, dtype=np.float64)
        self.validate()

    # ------------------------------------------------------------------ structure
    def validate(self) -> None:
        """Raise InputError unless weights, biases (of every member) and transform match the
        architecture."""
        if len(self.members) >= MAX_NETWORKS:
            raise InputError(f"a shape holds at most {MAX_NETWORKS} networks, got "
                             f"{1 + len(self.members)}")
        if self.members and self.parameters > MAX_PARAMETERS:
            raise InputError(f"{self.network_count} networks of {self.architecture.parameters:,} "
                             f"parameters are over the limit of {MAX_PARAMETERS:,} in all")
        shapes = self.architecture.layer_shapes()
        for m, (weights, biases) in enumerate([(self.weights, self.biases)] + self.members):
            where = f"network {m}, " if m else ""
            if len(weights) != len(shapes) or len(biases) != len(shapes):
                raise InputError(f"{where}expected {len(shapes)} layers for {self.architecture}, "
                                 f"got {len(weights)} weight and {len(biases)} bias arrays")
            for i, ((o, n), W, b) in enumerate(zip(shapes, weights, biases)):
                if W.shape != (o, n):
                    raise InputError(f"{where}layer {i}: weight must have shape {(o, n)}, got {W.shape}")
                if b.shape != (o,):
                    raise InputError(f"{where}layer {i}: bias must have shape {(o,)}, got {b.shape}")
                if not (np.isfinite(W).all() and np.isfinite(b).all()):
                    raise InputError(f"{where}layer {i}: weights contain NaN or infinity")
        if self.transform.shape != (4, 4) or not np.isfinite(self.transform).all():
            raise InputError(f"transform must be a finite 4x4 matrix, got shape {self.transform.shape}")
        if not np.allclose(self.transform[3], [0, 0, 0, 1]):
            raise InputError("transform must be affine (last row 0 0 0 1)")
        if self.scale <= 0:
            raise InputError("transform must have a positive scale")

    @property
    def parameters(self) -> int:
        """Numbers of every network of the shape (the architecture's count times the networks)."""
        return self.architecture.parameters * self.network_count

    # ------------------------------------------------------------------ members
    @property
    def network_count(self) -> int:
        return 1 + len(self.members)

    def network(self, i: int) -> "Implicit":
        """Network ``i`` alone (0: the first), with this shape's transform, metadata and storage;
        what code that reads weights (the shader's texture, the fast remesh evaluator) takes."""
        W, B = (self.weights, self.biases) if i == 0 else self.members[i - 1]
        return Implicit(self.architecture, W, B, self.transform, self.metadata, self.storage)

    def networks(self) -> list:
        """Every network of the shape alone (:meth:`network`); ``[self]`` for one network."""
        return [self] if not self.members else [self.network(i) for i in range(self.network_count)]

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
        h = encode(X, encoding_scales(arch.encoding_frequencies))
        pre = []
        overflow = None
        last = len(self.weights) - 1
        with np.errstate(over="ignore", invalid="ignore"):
            for i, (W, b) in enumerate(zip(self.weights, self.biases)):
                z = h @ W.T + b
                if keep:
                    pre.append(z)
                if i == last:
                    h = head(z)
                    break
                h = activate(z, arch.activation)
                if not np.isfinite(h.sum()):       # one fast pass; rows only when something is off
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
        if self.members:                  # the union: the minimum (NaN stays NaN: it is reported)
            return np.minimum.reduce([n.evaluate(Q, chunk) for n in self.networks()])
        chunk = self.eval_chunk(chunk)
        out = np.empty(len(Q), dtype=np.float32)
        for s in range(0, len(Q), chunk):
            out[s:s + chunk], _ = self._forward(Q[s:s + chunk], keep=False)
        return out

    def gradient(self, Q: np.ndarray, chunk: int = EVAL_CHUNK) -> np.ndarray:
        """Analytic gradient d f / d x at network-frame points Q (n, 3) -> (n, 3) float32."""
        Q = _as_points(Q)
        if self.members:                  # the union's: that of the network giving the minimum
            nets = self.networks()
            which = np.argmin(np.stack([n.evaluate(Q, chunk) for n in nets]), axis=0)
            out = np.zeros((len(Q), 3), dtype=np.float32)
            for i, n in enumerate(nets):
                at = which == i
                if at.any():
                    out[at] = n.gradient(Q[at], chunk)
            return out
        chunk = self.eval_chunk(chunk)
        out = np.empty((len(Q), 3), dtype=np.float32)
        for s in range(0, len(Q), chunk):
            out[s:s + chunk] = self._gradient_chunk(Q[s:s + chunk])
        return out

    def _gradient_chunk(self, X: np.ndarray) -> np.ndarray:
        f, pre = self._forward(X, keep=True)
        g = head_derivative(f)[:, None]
        for i in range(len(self.weights) - 1, -1, -1):
            g = g @ self.weights[i]                      # back through W_i -> d/d h_i
            if i > 0:
                g = g * activation_derivative(pre[i - 1], self.architecture.activation)
        scales = encoding_scales(self.architecture.encoding_frequencies)
        if scales:
            g = np.einsum("ne,nek->nk", g, encoding_jacobian(X, scales).astype(np.float32))
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
            "transform": self.transform.tolist(), "networks": self.network_count,
        }

    def copy(self) -> "Implicit":
        return Implicit(self.architecture, [w.copy() for w in self.weights],
                        [b.copy() for b in self.biases], self.transform.copy(),
                        json.loads(json.dumps(self.metadata)), self.storage,
                        [([w.copy() for w in W], [b.copy() for b in B]) for W, B in self.members])


def _as_points(Q) -> np.ndarray:
    Q = np.asarray(Q)
    if Q.ndim != 2 or Q.shape[1] != 3:
        raise InputError(f"query points must have shape (n, 3), got {Q.shape}")
    return np.ascontiguousarray(Q, dtype=np.float32)
