"""The MLP in torch, stored as a *stack* of K networks of one architecture.

Why a stack: the paper's SIMD property. K shapes of one architecture train together as weights of
shape (K, out, in) with batched matrix products; converting one shape is simply K = 1, so the single
and the batched paths are the same code. Layout and conventions are those of ``implicit.py``; this
module only adds training-time details (SIREN's omega_0 kept separate so its initialisation works,
folded into the weights on export).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .implicit import Architecture, Implicit

#: SIREN frequency factor (Sitzmann et al. 2020): sin(omega_0 (W x + b)).
SIREN_OMEGA = 30.0


class StackedMLP(torch.nn.Module):
    """K independent MLPs of one architecture. forward: (K, B, 3) points -> (K, B) signed distances."""

    def __init__(self, arch: Architecture, k: int = 1, generator: torch.Generator | None = None):
        super().__init__()
        self.arch = arch
        self.k = k
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for i, (o, n) in enumerate(arch.layer_shapes()):
            W = torch.empty(k, o, n)
            b = torch.empty(k, o, 1)
            _init_layer(W, b, i, len(arch.layer_shapes()), arch, generator)
            self.weights.append(torch.nn.Parameter(W))
            self.biases.append(torch.nn.Parameter(b))
        freqs = [(2.0 ** j) * math.pi for j in range(arch.encoding_frequencies)]
        self.register_buffer("freqs", torch.tensor(freqs, dtype=torch.float32), persistent=False)

    @property
    def omega(self) -> float:
        return SIREN_OMEGA if self.arch.activation == "sine" else 1.0

    def encode(self, X: torch.Tensor) -> torch.Tensor:
        if self.arch.encoding_frequencies == 0:
            return X
        parts = [X]
        for s in self.freqs:
            parts += [torch.sin(s * X), torch.cos(s * X)]
        return torch.cat(parts, dim=-1)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        # work in (K, features, B) so each layer is one batched W @ h + b
        h = self.encode(X).transpose(1, 2)
        last = len(self.weights) - 1
        sine = self.arch.activation == "sine"
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            z = torch.baddbmm(b, W, h)
            if i == last:
                return torch.tanh(z)[:, 0, :]
            h = torch.sin(self.omega * z) if sine else torch.relu(z)
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


def _init_layer(W, b, i, n_layers, arch, gen):
    """Initialisation: SIREN's for sine nets; for ReLU nets, PyTorch's default Linear init."""
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
        else:
            bound = 1.0 / math.sqrt(n)
            W.uniform_(-bound, bound, generator=gen)
            b.uniform_(-bound, bound, generator=gen)
