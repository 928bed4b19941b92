"""Reading the paper authors' released networks (Keras ``save_weights`` HDF5, u2ni/ICML2021).

Format (../shared/paper-weights/README.md): layers ``dense, dense_1, ..., dense_8``, each with
``<name>/<name>/kernel:0`` (in x out, y = x @ kernel + bias) and ``bias:0``; 3 -> 32, seven 32 -> 32,
32 -> 1; ReLU hidden, tanh output. No transform is stored: shapes were normalised by the minimum
enclosing ball of the vertices, centre to the origin and radius to 0.9 - the same network frame as
ours (``MESH_RADIUS`` = 0.9 in the unit ball), so only the transform has to be reconstructed.

These files come from elsewhere, so reading them keeps core/representation/fileformat.py's promises:
one FileFormatError line for anything wrong, the file read from memory and self-contained (hard
links, plain datasets only), and every shape, type and stored size checked before a number is read.
"""

from __future__ import annotations

import os

import numpy as np

from ..common.constants import MESH_RADIUS
from ..common.errors import FileFormatError
from .fileformat import (MAX_SHORT_TEXT_BYTES, check_dataset, check_self_contained, describe,
                         display_name, open_in_memory, read_bounded, reading)
from .implicit import MAX_LAYERS, Architecture, Implicit
from .miniball import minimum_enclosing_ball


def paper_transform(V: np.ndarray) -> np.ndarray:
    """4x4 similarity of the paper's normalisation for mesh vertices V: min ball -> radius 0.9."""
    c, r = minimum_enclosing_ball(V)
    s = MESH_RADIUS / r
    T = np.eye(4)
    T[:3, :3] *= s
    T[:3, 3] = -s * c
    return T


#: Keras stores each layer as ``<name>/<name>/{kernel:0,bias:0}``, one group per layer name.
_MAX_PAPER_LINKS = 4 * (MAX_LAYERS + 1)
#: Stored kernels may be any IEEE float; they are evaluated in float32.
_FLOATS = ("f2", "f4", "f8")


def load_paper_weights(path: str, mesh=None) -> Implicit:
    """Read a Keras weight file of the paper's release as an Implicit.

    mesh : optional core.meshes.mesh.Mesh the file was made from; its minimum enclosing ball gives
    the transform. Without it the transform is the identity (mesh frame = the paper's frame).
    Raises FileFormatError (one line naming the file) for anything but such a file.
    """
    path = os.fspath(path)
    name = display_name(path)
    with reading(name):
        with open_in_memory(read_bounded(path, name), name) as f:
            arch, Ws, bs = _read_layers(f, name)
        for i, (W, b) in enumerate(zip(Ws, bs)):
            if not (np.isfinite(W).all() and np.isfinite(b).all()):
                raise FileFormatError(f"{name}: layer {i} holds NaN or infinite weights")
    transform = paper_transform(mesh.V) if mesh is not None else np.eye(4)
    meta = {"source": os.path.basename(path), "imported_from": "paper release (Keras HDF5)",
            "normalisation": "minimum enclosing ball, radius 0.9" if mesh is not None else
            "unknown (no mesh given): identity transform"}
    if mesh is not None:
        meta["source_mesh"] = mesh.name
        meta["content_hash"] = mesh.content_hash
    return Implicit(arch, Ws, bs, transform, meta)


def _read_layers(f, name: str) -> tuple[Architecture, list, list]:
    """The architecture, float32 (out, in) weights and (out,) biases of every layer; the structure,
    shapes, types, stored sizes and the parameter cap are checked before a number is read."""
    import h5py

    names = _layer_names(f, name)
    check_self_contained(f, name, max_depth=2, max_links=_MAX_PAPER_LINKS)
    kernels, biases = [], []
    for layer in names:
        outer = f.get(layer)
        g = outer.get(layer) if isinstance(outer, h5py.Group) else None
        kernel, bias = (g.get("kernel:0"), g.get("bias:0")) if isinstance(g, h5py.Group) else (None, None)
        if not (isinstance(kernel, h5py.Dataset) and isinstance(bias, h5py.Dataset)):
            raise FileFormatError(f"{name}: layer {layer!r} lacks {layer}/{layer}/kernel:0 or bias:0")
        kernels.append(kernel)
        biases.append(bias)
    shapes = _chain(kernels, name)
    arch = Architecture(layers=len(shapes) - 1, hidden=shapes[0][1], activation="relu")
    for layer, kernel, bias, (n_in, n_out) in zip(names, kernels, biases, shapes):
        check_dataset(kernel, f"{layer}/{layer}/kernel:0", name, (n_in, n_out), _FLOATS)
        check_dataset(bias, f"{layer}/{layer}/bias:0", name, (n_out,), _FLOATS)
    Ws = [np.asarray(k[()], dtype=np.float32).T.copy() for k in kernels]
    bs = [np.asarray(b[()], dtype=np.float32) for b in biases]
    return arch, Ws, bs


def _layer_names(f, name: str) -> list[str]:
    """The ``layer_names`` attribute: 2 .. MAX_LAYERS + 1 plain names, checked before reading."""
    import h5py

    if "layer_names" not in f.attrs:
        raise FileFormatError(f"{name}: not a Keras weight file (no 'layer_names' attribute)")
    aid = f.attrs.get_id("layer_names")
    info = h5py.check_string_dtype(aid.dtype)
    if aid.shape is None or len(aid.shape) != 1 or info is None:
        raise FileFormatError(f"{name}: layer_names must be a list of strings, got "
                              f"{describe(aid.shape, aid.dtype)}")
    if not 2 <= aid.shape[0] <= MAX_LAYERS + 1:
        raise FileFormatError(f"{name}: {aid.shape[0]} layers; a network of this format has "
                              f"2..{MAX_LAYERS + 1}")
    if info.length is not None and info.length > MAX_SHORT_TEXT_BYTES:
        raise FileFormatError(f"{name}: layer names of {info.length} bytes are too long")
    names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in f.attrs["layer_names"]]
    for n in names:
        if not n or "/" in n or n in (".", "..") or len(n.encode("utf-8")) > MAX_SHORT_TEXT_BYTES \
                or not n.isprintable():
            raise FileFormatError(f"{name}: invalid layer name {n[:80]!r}")
    return names


def _chain(kernels: list, name: str) -> list[tuple[int, int]]:
    """(in, out) of every kernel, refused unless they chain 3 -> H -> ... -> H -> 1 (the only
    networks core.representation.implicit evaluates): read from the datasets' shapes, not their
    data."""
    shapes = [k.shape for k in kernels]
    if any(len(s) != 2 for s in shapes):
        raise FileFormatError(f"{name}: every kernel must be a matrix, got shapes {shapes}")
    hidden = shapes[0][1]
    want = [(3, hidden)] + [(hidden, hidden)] * (len(shapes) - 2) + [(hidden, 1)]
    if shapes != want:
        raise FileFormatError(f"{name}: expected a 3 -> {hidden} -> ... -> 1 network with equal "
                              f"hidden widths, got kernels {_short(shapes)}")
    return want


def _short(shapes: list) -> str:
    text = str(shapes)
    return text if len(text) <= 120 else text[:120] + "...]"
