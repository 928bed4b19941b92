"""The MLP in torch, stored as a *stack* of K networks of one architecture.

Why a stack: the paper's SIMD property. K shapes of one architecture train together as weights of
shape (K, out, in) with batched matrix products; converting one shape is simply K = 1, so the single
and the batched paths are the same code. Layout and conventions are those of ``layout.py`` (its
encoding, activation and head run here on torch's arrays); this module only adds training-time
details (SIREN's omega_0 kept separate so its initialisation works, folded into the weights on
export).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..representation.implicit import Architecture, Implicit
from ..representation.layout import ArrayOps, activate, encode, encoding_scales, head

#: SIREN frequency factor (Sitzmann et al. 2020): sin(omega_0 (W x + b)).
SIREN_OMEGA = 30.0

#: torch's functions for the formulas of ``layout.py``.
TORCH = ArrayOps(torch.sin, torch.cos, torch.relu, torch.tanh, lambda parts: torch.cat(parts, dim=-1))


class StackedMLP(torch.nn.Module):
    """K independent MLPs of one architecture. forward: (K, B, 3) points -> (K, B) signed distances."""

    def __init__(self, arch: Architecture, k: int = 1, generator: torch.Generator | None = None,
                 init: str = "uniform"):
        super().__init__()
        self.arch = arch
        self.k = k
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for i, (o, n) in enumerate(arch.layer_shapes()):
            W = torch.empty(k, o, n)
            b = torch.empty(k, o, 1)
            _init_layer(W, b, i, len(arch.layer_shapes()), arch, generator, init)
            self.weights.append(torch.nn.Parameter(W))
            self.biases.append(torch.nn.Parameter(b))
        freqs = encoding_scales(arch.encoding_frequencies)
        self.register_buffer("freqs", torch.tensor(freqs, dtype=torch.float32), persistent=False)

    @property
    def omega(self) -> float:
        return SIREN_OMEGA if self.arch.activation == "sine" else 1.0

    def encode(self, X: torch.Tensor) -> torch.Tensor:
        return encode(X, self.freqs, TORCH)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        # work in (K, features, B) so each layer is one batched W @ h + b
        h = self.encode(X).transpose(1, 2)
        last = len(self.weights) - 1
        sine = self.arch.activation == "sine"
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            z = torch.baddbmm(b, W, h)
            if i == last:
                return head(z, TORCH)[:, 0, :]
            h = activate(self.omega * z if sine else z, self.arch.activation, TORCH)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ export / import
    def to_implicit(self, j: int = 0, transform=None, metadata=None) -> Implicit:
        """Network j of the stack as an :class:`Implicit` (omega_0 folded into the weights)."""
        Ws, bs = [], []
        last = len(self.weights) - 1
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            f = self.omega if (i != last) else 1.0
            Ws.append(W[j].detach().cpu().numpy().astype(np.float64) * f)
            bs.append(b[j, :, 0].detach().cpu().numpy().astype(np.float64) * f)
        return Implicit(self.arch, Ws, bs, np.eye(4) if transform is None else transform,
                        dict(metadata or {}))

    @classmethod
    def from_implicits(cls, implicits: list[Implicit]) -> "StackedMLP":
        """A stack initialised with the weights of existing implicits (same architecture)."""
        arch = implicits[0].architecture
        model = cls(arch, len(implicits))
        last = len(model.weights) - 1
        with torch.no_grad():
            for i in range(len(model.weights)):
                f = model.omega if i != last else 1.0
                model.weights[i].copy_(torch.from_numpy(np.stack([m.weights[i] for m in implicits]) / f))
                model.biases[i].copy_(torch.from_numpy(
                    np.stack([m.biases[i] for m in implicits])[:, :, None] / f))
        return model


#: Radius of the sphere whose distance a "sphere"-initialised network starts as (network frame,
#: where the mesh's farthest vertex lies at 0.9). Why small: the start's inside is surface the
#: samples must erase wherever the shape is not. Measured at the default recipe against 0.5
#: (bench/time_to_accuracy.py with this constant changed): surface error of bunny.off 0.00214
#: instead of 0.00242 (no far-field samples), of the thin-walled tray 679615.stl 0.00117 instead
#: of 0.00139 (2 % far-field samples).
SPHERE_RADIUS = 0.1


def _init_layer(W, b, i, n_layers, arch, gen, init="uniform"):
    """Initialisation: SIREN's for sine nets; for ReLU nets PyTorch's default Linear init
    ("uniform") or the geometric one ("sphere").

    Why "sphere": the network then starts as (nearly) the distance to a sphere, a signed distance
    already, instead of a near-constant; training only has to move the surface, so a short recipe
    gets much further (bench/time_to_accuracy.py, docs/results.md section 7).
    Hidden layers get N(0, 2 / out) weights and zero biases (ReLU keeps |x| in expectation), the
    head N(sqrt(pi / in), 1e-4) weights and bias -SPHERE_RADIUS; with an encoding, the first
    layer ignores the sin/cos features at the start (zero weights), as in IDR/NeuS."""
    o, n = W.shape[1:]
    with torch.no_grad():
        if arch.activation == "sine":
            if i == 0:
                bound = 1.0 / n
            else:
                bound = math.sqrt(6.0 / n) / SIREN_OMEGA
            if i == n_layers - 1:
                bound = math.sqrt(6.0 / n) / SIREN_OMEGA
            W.uniform_(-bound, bound, generator=gen)
            b.uniform_(-1.0 / math.sqrt(n), 1.0 / math.sqrt(n), generator=gen)
            if i != 0:
                b.mul_(1.0 / SIREN_OMEGA)
        elif init == "sphere":
            if i == n_layers - 1:
                W.normal_(math.sqrt(math.pi / n), 1e-4, generator=gen)
                b.fill_(-SPHERE_RADIUS)
            else:
                W.normal_(0.0, math.sqrt(2.0 / o), generator=gen)
                b.zero_()
                if i == 0:
                    W[:, :, 3:] = 0.0
        else:
            bound = 1.0 / math.sqrt(n)
            W.uniform_(-bound, bound, generator=gen)
            b.uniform_(-bound, bound, generator=gen)
