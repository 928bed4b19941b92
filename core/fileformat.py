"""Reading and writing neural implicits as HDF5 files (format ``neural-implicit``, version 1).

Why HDF5: the paper's choice; readable from C, C++, Julia, MATLAB and Python. The layout is
documented in docs/file-format.md so a reader can be written in any language. Everything needed to
evaluate the shape is stored explicitly; the loader validates every part and raises FileFormatError
with a clear message for truncated, corrupt, foreign or future-version files.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from .errors import FileFormatError, InputError
from .implicit import Architecture, Implicit
from .quantize import STORAGES, decode_layer, encode_layer, expected_dtypes

FORMAT_NAME = "neural-implicit"
FORMAT_VERSION = 1
#: Metadata is for provenance, not payload: keep it small (docs/file-format.md).
MAX_METADATA_BYTES = 16_384


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover
        raise InputError("h5py is not installed: it is needed to read and write .h5 files") from None
    return h5py


def _checksum(transform: np.ndarray, layers: list[dict]) -> str:
    """SHA-256 over the little-endian bytes of the transform and every stored array, in order."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(transform, dtype="<f8").tobytes())
    for arrays in layers:
        for name in sorted(arrays):
            a = arrays[name]
            h.update(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


def save(implicit: Implicit, path: str) -> int:
    """Write ``implicit`` to ``path`` (temporary name first, then renamed). Returns the file size."""
    h5py = _h5py()
    path = os.fspath(path)
    storage = implicit.storage
    if storage not in STORAGES:
        raise InputError(f"storage must be one of {STORAGES}, got {storage!r}")
    meta = json.dumps(implicit.metadata, sort_keys=True, default=_json_default)
    if len(meta) > MAX_METADATA_BYTES:
        raise InputError(f"metadata is {len(meta)} bytes; at most {MAX_METADATA_BYTES} are allowed")
    layers = [encode_layer(W, b, storage) for W, b in zip(implicit.weights, implicit.biases)]
    tmp = path + ".part"
    try:
        with h5py.File(tmp, "w", libver=("v108", "latest")) as f:   # readable by HDF5 >= 1.8
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["architecture"] = json.dumps(implicit.architecture.to_dict(), sort_keys=True)
            f.attrs["storage"] = storage
            f.attrs["metadata"] = meta
            f.attrs["checksum"] = _checksum(implicit.transform, layers)
            f.create_dataset("transform", data=implicit.transform.astype("<f8"))
            g = f.create_group("layers")
            for i, arrays in enumerate(layers):
                lg = g.create_group(str(i))
                for name, a in arrays.items():
                    lg.create_dataset(name, data=a)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return os.path.getsize(path)


def load(path: str) -> Implicit:
    """Read and validate a neural implicit file; FileFormatError names what is wrong."""
    h5py = _h5py()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileFormatError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise FileFormatError(f"{path}: not an HDF5 file, or the file is truncated or corrupt") from None
    try:
        with f:
            return _read(f, path)
    except FileFormatError:
        raise
    except InputError as e:
        raise FileFormatError(f"{path}: {e}") from None
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise FileFormatError(f"{path}: corrupt neural implicit file ({e})") from None


def _attr(f, name, path):
    if name not in f.attrs:
        raise FileFormatError(f"{path}: missing attribute {name!r}")
    v = f.attrs[name]
    return v.decode() if isinstance(v, bytes) else v


def _read(f, path) -> Implicit:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT_NAME:
        if "layer_names" in f.attrs and "keras_version" in f.attrs:
            raise FileFormatError(f"{path}: this is a Keras weight file (the paper's release format); "
                                  "convert it first with: python -m core import-paper FILE.h5 -o OUT.h5")
        raise FileFormatError(f"{path}: not a neural implicit file (format attribute is {fmt!r})")
    version = int(_attr(f, "format_version", path))
    if version > FORMAT_VERSION:
        raise FileFormatError(f"{path}: written by a newer version (format version {version}); this "
                              f"reader understands up to {FORMAT_VERSION}: update the software")
    if version < 1:
        raise FileFormatError(f"{path}: invalid format version {version}")
    try:
        arch = Architecture.from_dict(json.loads(_attr(f, "architecture", path)))
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{path}: architecture is not valid JSON ({e})") from None
    storage = str(_attr(f, "storage", path))
    if storage not in STORAGES:
        raise FileFormatError(f"{path}: unknown storage {storage!r}")
    try:
        metadata = json.loads(_attr(f, "metadata", path))
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{path}: metadata is not valid JSON ({e})") from None
    if "transform" not in f:
        raise FileFormatError(f"{path}: missing dataset 'transform'")
    transform = np.asarray(f["transform"][()], dtype=np.float64)
    if transform.shape != (4, 4):
        raise FileFormatError(f"{path}: transform must be 4x4, got {transform.shape}")
    shapes = arch.layer_shapes()
    if "layers" not in f or len(f["layers"]) != len(shapes):
        n = len(f["layers"]) if "layers" in f else 0
        raise FileFormatError(f"{path}: {arch.layers} hidden layers need {len(shapes)} stored layers, "
                              f"found {n}")
    want = expected_dtypes(storage)
    layers = []
    for i, (o, n) in enumerate(shapes):
        key = str(i)
        if key not in f["layers"]:
            raise FileFormatError(f"{path}: missing layer group layers/{key}")
        g = f["layers"][key]
        if set(g.keys()) != set(want):
            raise FileFormatError(f"{path}: layers/{key} must hold {sorted(want)}, has {sorted(g.keys())}")
        arrays = {name: np.asarray(g[name][()]) for name in want}
        for name, dt in want.items():
            if arrays[name].dtype.newbyteorder("=") != dt.newbyteorder("="):
                raise FileFormatError(f"{path}: layers/{key}/{name} must be {dt.name} for storage "
                                      f"{storage}, got {arrays[name].dtype.name}")
        expect = {"W": (o, n), "b": (o,), "scale": (o,)}
        for name, a in arrays.items():
            if a.shape != expect[name]:
                raise FileFormatError(f"{path}: layers/{key}/{name} must have shape {expect[name]}, "
                                      f"got {a.shape}")
        layers.append(arrays)
    stored = _attr(f, "checksum", path)
    if stored != _checksum(transform, layers):
        raise FileFormatError(f"{path}: checksum mismatch: the weights are corrupt")
    pairs = [decode_layer(a, storage) for a in layers]
    return Implicit(arch, [p[0] for p in pairs], [p[1] for p in pairs], transform, metadata, storage)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
