"""Reading the paper authors' released networks (Keras ``save_weights`` HDF5, u2ni/ICML2021).

Format (../shared/paper-weights/README.md): layers ``dense, dense_1, ..., dense_8``, each with
``<name>/<name>/kernel:0`` (in x out, y = x @ kernel + bias) and ``bias:0``; 3 -> 32, seven 32 -> 32,
32 -> 1; ReLU hidden, tanh output. No transform is stored: shapes were normalised by the minimum
enclosing ball of the vertices, centre to the origin and radius to 0.9 - the same network frame as
ours (``MESH_RADIUS`` = 0.9 in the unit ball), so only the transform has to be reconstructed.
"""

from __future__ import annotations

import os

import numpy as np

from .constants import MESH_RADIUS
from .errors import FileFormatError
from .implicit import Architecture, Implicit
from .miniball import minimum_enclosing_ball


def paper_transform(V: np.ndarray) -> np.ndarray:
    """4x4 similarity of the paper's normalisation for mesh vertices V: min ball -> radius 0.9."""
    c, r = minimum_enclosing_ball(V)
    s = MESH_RADIUS / r
    T = np.eye(4)
    T[:3, :3] *= s
    T[:3, 3] = -s * c
    return T


def load_paper_weights(path: str, mesh=None) -> Implicit:
    """Read a Keras weight file of the paper's release as an Implicit.

    mesh : optional core.mesh.Mesh the file was made from; its minimum enclosing ball gives the
    transform. Without it the transform is the identity (mesh frame = the paper's frame).
    """
    import h5py

    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise FileFormatError(f"{path}: not an HDF5 file, or truncated") from None
    with f:
        names = f.attrs.get("layer_names")
        if names is None:
            raise FileFormatError(f"{path}: not a Keras weight file (no 'layer_names' attribute)")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        Ws, bs = [], []
        for name in names:
            try:
                g = f[name][name]
                kernel = np.asarray(g["kernel:0"][()], dtype=np.float32)
                bias = np.asarray(g["bias:0"][()], dtype=np.float32)
            except KeyError:
                raise FileFormatError(f"{path}: layer {name!r} lacks kernel:0 or bias:0") from None
            Ws.append(kernel.T)
            bs.append(bias)
    if not Ws or Ws[0].shape[1] != 3 or Ws[-1].shape[0] != 1:
        raise FileFormatError(f"{path}: expected a 3 -> ... -> 1 network, got layers "
                              f"{[w.shape for w in Ws]}")
    hidden = Ws[0].shape[0]
    arch = Architecture(layers=len(Ws) - 1, hidden=hidden, activation="relu")
    transform = paper_transform(mesh.V) if mesh is not None else np.eye(4)
    meta = {"source": os.path.basename(path), "imported_from": "paper release (Keras HDF5)",
            "normalisation": "minimum enclosing ball, radius 0.9" if mesh is not None else
            "unknown (no mesh given): identity transform"}
    if mesh is not None:
        meta["source_mesh"] = mesh.name
        meta["content_hash"] = mesh.content_hash
    return Implicit(arch, Ws, bs, transform, meta)
