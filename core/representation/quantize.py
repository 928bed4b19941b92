"""Storage precision of weights: float32, float16, or 8-bit with one scale per output channel.

Why: the file size is the product's compression claim. A reader must obtain exactly the float32
values that the writer evaluated, so quantisation is a pure function of the float32 weights and
``Implicit`` always holds the *dequantised* values (what numpy, torch and the shader evaluate).

Per layer, stored arrays (see docs/file-format.md):

=========  ==========================  ===============================================
storage    weight                      extra
=========  ==========================  ===============================================
float32    W float32 (out, in)         b float32 (out,)
float16    W float16                   b float16
int8       Wq int8, W = Wq * scale[:,  b float16, scale float32 (out,)
           None]
=========  ==========================  ===============================================

The int8 rounding (range and per-row scale) is ``layout.int8_quantize``, the one that quantisation-
aware training (``refine.py``) must reproduce.
"""

from __future__ import annotations

import numpy as np

from ..common.errors import InputError
from .layout import int8_dequantize, int8_quantize

STORAGES = ("float32", "float16", "int8")

#: Bytes of the stored similarity transform (4 x 4 float64).
TRANSFORM_BYTES = 16 * 8


def encode_layer(W: np.ndarray, b: np.ndarray, storage: str) -> dict[str, np.ndarray]:
    """Arrays to store for one layer, by name."""
    if storage == "float32":
        return {"W": W.astype(np.float32), "b": b.astype(np.float32)}
    if storage == "float16":
        return {"W": W.astype(np.float16), "b": b.astype(np.float16)}
    if storage == "int8":
        Wq, scale = int8_quantize(W)
        return {"W": Wq, "b": b.astype(np.float16), "scale": scale}
    raise InputError(f"storage must be one of {STORAGES}, got {storage!r}")


def decode_layer(arrays: dict[str, np.ndarray], storage: str) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_layer`: float32 (W, b) as every evaluator uses them."""
    W = np.asarray(arrays["W"])
    b = np.asarray(arrays["b"]).astype(np.float32)
    if storage == "int8":
        return int8_dequantize(W, arrays["scale"]), b
    return W.astype(np.float32), b


def expected_dtypes(storage: str) -> dict[str, np.dtype]:
    """The dtype each stored array must have, for validation on load."""
    if storage == "float32":
        return {"W": np.dtype(np.float32), "b": np.dtype(np.float32)}
    if storage == "float16":
        return {"W": np.dtype(np.float16), "b": np.dtype(np.float16)}
    if storage == "int8":
        return {"W": np.dtype(np.int8), "b": np.dtype(np.float16), "scale": np.dtype(np.float32)}
    raise InputError(f"storage must be one of {STORAGES}, got {storage!r}")


def quantized(W: np.ndarray, b: np.ndarray, storage: str) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) after a round trip through ``storage``: what a reader of the file will evaluate."""
    return decode_layer(encode_layer(W, b, storage), storage)


def stored_weight_bytes(implicit) -> int:
    """Bytes of every number the shape needs as stored: weights, biases, scales and the transform."""
    total = TRANSFORM_BYTES
    for weights, biases in [(implicit.weights, implicit.biases)] + list(getattr(implicit, "members", [])):
        for W, b in zip(weights, biases):
            total += sum(a.nbytes for a in encode_layer(W, b, implicit.storage).values())
    return total


def with_storage(implicit, storage: str):
    """A copy of ``implicit`` whose float32 weights are the dequantised values of ``storage``."""
    out = implicit.copy()
    def stored(weights, biases):
        pairs = [quantized(W, b, storage) for W, b in zip(weights, biases)]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    out.weights, out.biases = stored(out.weights, out.biases)
    out.members = [stored(W, B) for W, B in out.members]
    out.storage = storage
    return out
