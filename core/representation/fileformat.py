"""Reading and writing neural implicits as HDF5 files (format ``neural-implicit``, version 1).

Why HDF5: the paper's choice; readable from C, C++, Julia, MATLAB and Python. The layout is
documented in docs/file-format.md so a reader can be written in any language. Everything needed to
evaluate the shape is stored explicitly.

A file is untrusted input (downloaded, shared, dropped on Blender's window), so :func:`load` is a
boundary with three promises:

* **one error line**: whatever is wrong (truncated, corrupt, foreign, future version, hostile), the
  caller gets one :class:`FileFormatError` naming the file and the problem, never another exception;
* **bounded memory**: the file is read whole into memory, at most :data:`MAX_FILE_BYTES`, and every
  attribute and dataset is checked for type, shape and stored size *before* it is read, against an
  architecture capped by ``core.representation.implicit.MAX_PARAMETERS``;
* **self-contained**: only hard links and plain (contiguous or compact) datasets are accepted, so no
  soft or external link, virtual dataset or external raw storage makes the loader open, wait on or
  reveal another file. Opening from memory means HDF5 has no path to follow in the first place;
  the explicit checks turn such files into a clear message.

The same machinery (:func:`reading`, :func:`check_self_contained`, ...) guards the paper's Keras
files in core/representation/paper_import.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os

import numpy as np

from ..common.errors import FileFormatError, InputError
from ..common.readfile import read_regular_file
from .implicit import MAX_LAYERS, MAX_NETWORKS, MAX_PARAMETERS, Architecture, Implicit
from .quantize import STORAGES, decode_layer, encode_layer, expected_dtypes

FORMAT_NAME = "neural-implicit"
#: Version 2 adds ``/members`` (further networks whose union is the shape, docs/file-format.md);
#: a file without members is written as version 1, which every earlier reader reads.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: Metadata is for provenance, not payload: keep it small (docs/file-format.md).
MAX_METADATA_BYTES = 16_384
#: Deepest nesting of lists and objects in the metadata: deeper JSON is refused on read, so code
#: that walks the metadata later (json.dumps in Implicit.copy, the add-on) cannot hit the recursion
#: limit. Files written by core convert nest 3 levels.
MAX_METADATA_DEPTH = 32
#: The architecture attribute is one small JSON object (about 80 bytes).
MAX_ARCHITECTURE_BYTES = 1_024
#: Other string attributes: format name, storage name, checksum (64 hex digits).
MAX_SHORT_TEXT_BYTES = 256
#: Largest file the loaders read: the float32 weights of the largest legal network, plus room for
#: HDF5's structure and the metadata (a default file holds 13 kB of structure).
MAX_FILE_BYTES = 4 * MAX_PARAMETERS + (16 << 20)
#: Most links a neural implicit file can hold: /transform, /layers, /members, and per network a
#: group and up to 3 arrays per layer.
MAX_LINKS = 3 + MAX_NETWORKS * (1 + 4 * (MAX_LAYERS + 1))
#: ``R^T R = s^2 I`` must hold within this relative tolerance (float32 rotations from Blender
#: composed in float64 stay within 1e-6).
SIMILARITY_TOLERANCE = 1e-5
#: Separates the architecture and storage strings from the numbers in the checksum.
_CHECKSUM_SEPARATOR = b"\x00"


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover
        raise InputError("h5py is not installed: it is needed to read and write .h5 files") from None
    return h5py


# ============================================================================ checksum

def _hash_numbers(h, transform: np.ndarray, layers: list[dict]) -> None:
    """Feed the transform (float64) and every stored array (in name order) as little-endian bytes."""
    h.update(np.ascontiguousarray(transform, dtype="<f8").tobytes())
    for arrays in layers:
        for name in sorted(arrays):
            a = arrays[name]
            h.update(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes())


def checksum(architecture: str, storage: str, transform: np.ndarray, layers: list[dict]) -> str:
    """SHA-256 of the architecture and storage attributes (UTF-8, each followed by a zero byte), then
    the transform and every stored array: a changed activation or storage fails like a changed weight."""
    h = hashlib.sha256()
    for text in (architecture, storage):
        h.update(text.encode("utf-8"))
        h.update(_CHECKSUM_SEPARATOR)
    _hash_numbers(h, transform, layers)
    return h.hexdigest()


def legacy_checksum(transform: np.ndarray, layers: list[dict]) -> str:
    """The checksum of files written before the attributes were covered: the numbers alone."""
    h = hashlib.sha256()
    _hash_numbers(h, transform, layers)
    return h.hexdigest()


# ============================================================================ transform

def similarity_problem(T: np.ndarray) -> str | None:
    """Why ``T`` is not the similarity the format promises (``x_net = s R x + t``), or None.

    A similarity keeps distances proportional, which is what makes ``f(T p) / s`` a distance in mesh
    units; a mirror turns inside out, a shear or non-uniform scale bends the distance field.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        return f"must be a finite 4x4 matrix, got shape {T.shape}"
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], rtol=0.0, atol=1e-9):
        return "must be affine (last row 0 0 0 1)"
    A = T[:3, :3]
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        G = A.T @ A
        s2 = float(np.trace(G)) / 3.0
    if not (np.isfinite(s2) and s2 > 0.0 and np.isfinite(G).all()):
        return "must have a positive, finite scale"
    if np.abs(G - s2 * np.eye(3)).max() > SIMILARITY_TOLERANCE * s2:
        return "must be a similarity (rotation and uniform scale), not a shear or non-uniform scale"
    if np.linalg.det(A) <= 0.0:
        return "must not mirror the shape (its determinant is negative)"
    return None


# ============================================================================ writing

def save(implicit: Implicit, path: str) -> int:
    """Write ``implicit`` to ``path`` (temporary name first, then renamed). Returns the file size."""
    path = os.fspath(path)
    fields = _fields(implicit)
    tmp = path + ".part"
    try:
        _write(tmp, fields)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return os.path.getsize(path)


def to_bytes(implicit: Implicit) -> bytes:
    """:func:`save` in memory (e.g. to store a network in a .blend): the same attributes, datasets
    and checksum, laid out a little more tightly by HDF5 than in a file."""
    buffer = io.BytesIO()
    _write(buffer, _fields(implicit))
    return buffer.getvalue()


def _fields(implicit: Implicit) -> tuple:
    """(architecture JSON, storage, metadata JSON, transform, encoded layers), validated."""
    _h5py()
    storage = implicit.storage
    if storage not in STORAGES:
        raise InputError(f"storage must be one of {STORAGES}, got {storage!r}")
    problem = similarity_problem(implicit.transform)
    if problem:
        raise InputError(f"cannot save: the transform {problem}; apply the object's scale first")
    meta = json.dumps(implicit.metadata, sort_keys=True, default=_json_default)
    if len(meta.encode("utf-8")) > MAX_METADATA_BYTES:
        raise InputError(f"metadata is {len(meta)} bytes; at most {MAX_METADATA_BYTES} are allowed")
    architecture = json.dumps(implicit.architecture.to_dict(), sort_keys=True)
    layers = [encode_layer(W, b, storage) for W, b in zip(implicit.weights, implicit.biases)]
    members = [[encode_layer(W, b, storage) for W, b in zip(Ws, Bs)] for Ws, Bs in implicit.members]
    return architecture, storage, meta, implicit.transform, layers, members


def _write(target, fields: tuple) -> None:
    """Write :func:`_fields` into ``target``, a path or a binary file object."""
    architecture, storage, meta, transform, layers, members = fields
    with _h5py().File(target, "w", libver=("v108", "latest")) as f:   # readable by HDF5 >= 1.8
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION if members else 1
        f.attrs["architecture"] = architecture
        f.attrs["storage"] = storage
        f.attrs["metadata"] = meta
        f.attrs["checksum"] = checksum(architecture, storage, transform,
                                       layers + [a for m in members for a in m])
        f.create_dataset("transform", data=transform.astype("<f8"))
        _write_layers(f.create_group("layers"), layers)
        if members:
            g = f.create_group("members")
            for k, m in enumerate(members):
                _write_layers(g.create_group(str(k)), m)


def _write_layers(group, layers: list[dict]) -> None:
    for i, arrays in enumerate(layers):
        lg = group.create_group(str(i))
        for name, a in arrays.items():
            lg.create_dataset(name, data=a)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ============================================================================ the reading boundary

def display_name(path) -> str:
    """``path`` as it goes into a one-line message (control characters escaped)."""
    name = os.fsdecode(path)
    return name if name.isprintable() else repr(name)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


@contextlib.contextmanager
def reading(name: str):
    """Turn every failure in the body into one FileFormatError line naming ``name``.

    Why so broad: h5py and numpy raise RuntimeError, AttributeError, TypeError, MemoryError and more
    on corrupt or hostile files; a caller (the command line, a Blender operator) must be able to
    catch one type and show one line. KeyboardInterrupt and SystemExit are no Exceptions and pass.
    """
    try:
        yield
    except FileFormatError as e:
        raise FileFormatError(_one_line(e)) from None
    except InputError as e:
        raise FileFormatError(f"{name}: {_one_line(e)}") from None
    except MemoryError:
        raise FileFormatError(f"{name}: not enough memory to read the file") from None
    except RecursionError:
        raise FileFormatError(f"{name}: structure nested too deeply to read") from None
    except Exception as e:   # noqa: BLE001 - the promise is one FileFormatError, see the docstring
        raise FileFormatError(f"{name}: corrupt file ({type(e).__name__}: {_one_line(e, 200)})") from None


def read_bounded(path: str, name: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` (core.common.readfile);
    FileFormatError."""
    return read_regular_file(path, name, limit, FileFormatError)


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_GLOBAL_HEAP = b"GCOL"


def _length_size(data: bytes) -> int:
    """Bytes of a "length" field, from the superblock (HDF5 looks for it at 0, 512, 1024, ...)."""
    base = 0
    while base + 16 <= len(data):
        if data[base:base + 8] == _HDF5_SIGNATURE:
            return data[base + 14] if data[base + 8] < 2 else data[base + 10]
        base = 512 if base == 0 else base * 2
    return 8


def check_global_heaps(data: bytes, name: str) -> None:
    """Refuse global heap collections that would make HDF5 loop forever.

    Why: variable-length strings (every text attribute h5py writes) live in global heap
    collections, and HDF5 (2.0.0 included) walks a collection's objects by their stored sizes: a
    free-space object of size 0 (16 zeroed bytes are enough) never advances, and the reader spins
    at 100 % CPU forever. HDF5 only loads a collection whose bytes start with ``GCOL`` and version
    1, so checking every such place in the file's bytes, walking as HDF5 does, covers them all
    (these 5 bytes inside weights would be refused only if their walk failed too).
    """
    length = _length_size(data)
    if length not in (2, 4, 8, 16):
        return                                      # HDF5 refuses such a superblock itself
    at = data.find(_GLOBAL_HEAP)
    while at >= 0:
        if at + 8 + length <= len(data) and data[at + 4] == 1:
            size = int.from_bytes(data[at + 8:at + 8 + length], "little")
            if not _heap_walk_ends(data, at, size, length):
                raise FileFormatError(f"{name}: corrupt global heap at byte {at} (would never "
                                      "finish reading)")
        at = data.find(_GLOBAL_HEAP, at + 1)


def _heap_walk_ends(data: bytes, start: int, size: int, length: int) -> bool:
    """Whether HDF5's walk over the objects of the collection at ``start`` ends (C size_t maths)."""
    end, header = start + size, 8 + length          # object header: index, refs, reserved, size
    if end > len(data):
        return False                                # past the end: zeros, i.e. size-0 objects
    wrap = 1 << 64
    p = start + 8 + length                          # collection header: GCOL, version, 3, size
    while p < end and p + header <= end:
        index = int.from_bytes(data[p:p + 2], "little")
        obj = int.from_bytes(data[p + 8:p + 8 + length], "little")
        need = (header + ((obj + 7) % wrap) // 8 * 8) % wrap if index else obj
        if need == 0 or need >= wrap >> 1:          # no progress, or a pointer that wraps back
            return False
        p += need
    return True


@contextlib.contextmanager
def open_in_memory(data: bytes, name: str):
    """An h5py File over ``data``: HDF5 reads these bytes and no other file."""
    h5py = _h5py()
    check_global_heaps(data, name)
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except OSError:
        raise FileFormatError(f"{name}: not an HDF5 file, or the file is truncated or corrupt") from None
    with f:
        yield f


def check_self_contained(f, name: str, max_depth: int, max_links: int) -> None:
    """Refuse anything in ``f`` that refers outside the file, before any data is read.

    Every link must be a hard link to a group or a dataset; every dataset must keep its numbers in
    this file, contiguous or compact (no virtual dataset, no external raw storage, no chunking: a
    chunk can declare gigabytes that a few compressed bytes expand to). Groups nested more than
    ``max_depth`` deep (the root is 0; hard links can form cycles) and more than ``max_links``
    links in all are refused.
    """
    h5py = _h5py()
    budget = [max_links]

    def visit(group, where: str, depth: int) -> None:
        n = len(group)
        if n > budget[0]:
            raise FileFormatError(f"{name}: holds more than {max_links} entries; not a file this "
                                  "reader writes")
        budget[0] -= n
        for key in group:
            here = f"{where}/{key}"
            kind = _link_kind(group, key, h5py)
            if kind != "hard":
                raise FileFormatError(f"{name}: {here} is {kind}; a file must be self-contained "
                                      "(hard links only)")
            cls = group.get(key, getclass=True)
            if cls is h5py.Dataset:
                _check_dataset_storage(group[key], here, name)
            elif cls is h5py.Group:
                if depth + 1 > max_depth:
                    raise FileFormatError(f"{name}: {here} is nested deeper than this format allows")
                visit(group[key], here, depth + 1)
            else:
                raise FileFormatError(f"{name}: {here} is a {getattr(cls, '__name__', cls)}, "
                                      "expected a group or a dataset")

    visit(f, "", 0)


def _link_kind(group, key, h5py) -> str:
    """'hard', or a description of the link for the message, without following it."""
    link = group.get(key, getlink=True)
    if isinstance(link, h5py.HardLink):
        return "hard"
    if isinstance(link, h5py.SoftLink):
        return f"a soft link to {_one_line(link.path, 80)!r}"
    if isinstance(link, h5py.ExternalLink):
        return f"an external link to {_one_line(link.filename, 80)!r}"
    return "a user-defined link"


def _check_dataset_storage(ds, here: str, name: str) -> None:
    from h5py import h5d
    plist = ds.id.get_create_plist()
    layout = plist.get_layout()
    if layout == h5d.VIRTUAL:
        raise FileFormatError(f"{name}: {here} is a virtual dataset that reads other files; a file "
                              "must be self-contained")
    if plist.get_external_count() > 0:
        raise FileFormatError(f"{name}: {here} keeps its numbers in an external file; a file must "
                              "be self-contained")
    if layout not in (h5d.CONTIGUOUS, h5d.COMPACT):
        raise FileFormatError(f"{name}: {here} is stored chunked or compressed; datasets must be "
                              "contiguous or compact")


def check_dataset(ds, here: str, name: str, shape: tuple, dtypes) -> None:
    """Refuse ``ds`` unless it has ``shape``, one of ``dtypes`` (any byte order) and all its bytes
    stored: checked from the file's structure, before a byte of data is read."""
    if ds.shape != shape:
        raise FileFormatError(f"{name}: {here} must have shape {shape}, got {ds.shape}")
    dt = ds.dtype
    if dt.kind not in "iuf" or dt.newbyteorder("=") not in [np.dtype(d).newbyteorder("=") for d in dtypes]:
        want = " or ".join(np.dtype(d).name for d in dtypes)
        raise FileFormatError(f"{name}: {here} must be {want}, got {dt}")
    need = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    stored = ds.id.get_storage_size()
    if stored != need:
        raise FileFormatError(f"{name}: {here} stores {stored} bytes, its shape needs {need}")


def attribute_info(f, key: str, name: str):
    """(shape, dtype) of attribute ``key`` of ``f`` without reading its value; FileFormatError when
    it is missing."""
    if key not in f.attrs:
        raise FileFormatError(f"{name}: missing attribute {key!r}")
    aid = f.attrs.get_id(key)
    return aid.shape, aid.dtype


def describe(shape, dt) -> str:
    """An attribute's type for a message: 'text', 'float64', 'int64 array of shape (3,)'."""
    kind = "text" if _h5py().check_string_dtype(dt) else str(dt)
    return kind if shape == () else f"{kind} array of shape {shape}"


def text_attribute(f, key: str, name: str, limit: int) -> str:
    """The scalar string attribute ``key``, refused unless it is a string of at most ``limit``
    UTF-8 bytes (a fixed-length string is checked before it is read)."""
    h5py = _h5py()
    shape, dt = attribute_info(f, key, name)
    info = h5py.check_string_dtype(dt)
    if shape != () or info is None:
        raise FileFormatError(f"{name}: attribute {key!r} must be one string, got "
                              f"{describe(shape, dt)}")
    if info.length is not None and info.length > limit:
        raise FileFormatError(f"{name}: attribute {key!r} is {info.length} bytes; at most {limit}")
    value = f.attrs[key]
    if isinstance(value, np.ndarray):
        value = value.item()
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")
    if len(raw) > limit:
        raise FileFormatError(f"{name}: attribute {key!r} is {len(raw):,} bytes; at most {limit:,}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FileFormatError(f"{name}: attribute {key!r} is not UTF-8 text") from None


def parse_json(text: str, what: str, name: str, max_depth: int):
    """JSON ``text`` refused when invalid or nested deeper than ``max_depth``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{name}: {what} is not valid JSON ({e})") from None
    except (RecursionError, ValueError):
        raise FileFormatError(f"{name}: {what} is not valid JSON (nested too deeply or a number "
                              "too long)") from None
    if _depth(value) > max_depth:
        raise FileFormatError(f"{name}: {what} is nested deeper than {max_depth} levels")
    return value


def _depth(value) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


# ============================================================================ reading

def load(path: str) -> Implicit:
    """Read and validate a neural implicit file; FileFormatError (one line) names what is wrong."""
    _h5py()
    path = os.fspath(path)
    name = display_name(path)
    with reading(name):
        return from_bytes(read_bounded(path, name), name)


def from_bytes(data: bytes, name: str = "<bytes>") -> Implicit:
    """:func:`load` for the bytes of a file (e.g. stored in a .blend, or made by :func:`to_bytes`),
    with every check of the reading boundary; ``name`` goes into messages."""
    with reading(name):
        if len(data) > MAX_FILE_BYTES:
            raise FileFormatError(f"{name}: larger than any valid file (at most {MAX_FILE_BYTES:,} "
                                  "bytes)")
        with open_in_memory(bytes(data), name) as f:
            return _read(f, name)


def _read(f, name: str) -> Implicit:
    _check_format(f, name)
    check_self_contained(f, name, max_depth=3, max_links=MAX_LINKS)
    arch_text = text_attribute(f, "architecture", name, MAX_ARCHITECTURE_BYTES)
    arch = Architecture.from_dict(parse_json(arch_text, "architecture", name, 1))
    storage = text_attribute(f, "storage", name, MAX_SHORT_TEXT_BYTES)
    if storage not in STORAGES:
        raise FileFormatError(f"{name}: unknown storage {storage!r}")
    metadata = parse_json(text_attribute(f, "metadata", name, MAX_METADATA_BYTES), "metadata", name,
                          MAX_METADATA_DEPTH)
    if not isinstance(metadata, dict):
        raise FileFormatError(f"{name}: metadata must be a JSON object, got {type(metadata).__name__}")
    stored_sum = text_attribute(f, "checksum", name, MAX_SHORT_TEXT_BYTES)
    datasets = _check_layout(f, name, arch, storage)                 # shapes, types, sizes: no data
    transform = datasets.pop("transform")[()]
    layers = [{key: ds[()] for key, ds in group.items()} for group in datasets.pop("layers")]
    members = [[{key: ds[()] for key, ds in group.items()} for group in m]
               for m in datasets.pop("members")]
    every = layers + [a for m in members for a in m]
    if stored_sum not in (checksum(arch_text, storage, transform, every),
                          legacy_checksum(transform, every)):
        raise FileFormatError(f"{name}: checksum mismatch: the weights or the architecture are corrupt")
    problem = similarity_problem(transform)
    if problem:
        raise FileFormatError(f"{name}: the transform {problem}")

    def decoded(stored):
        pairs = [decode_layer(a, storage) for a in stored]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    W, B = decoded(layers)
    return Implicit(arch, W, B, transform.astype(np.float64), metadata, storage,
                    [decoded(m) for m in members])


def _check_format(f, name: str) -> None:
    """Refuse foreign files (pointing Keras files to import-paper) and versions other than 1."""
    h5py = _h5py()
    if "format" not in f.attrs:
        if "layer_names" in f.attrs and "keras_version" in f.attrs:
            raise FileFormatError(f"{name}: this is a Keras weight file (the paper's release format); "
                                  "convert it first with: python -m core import-paper FILE.h5 -o OUT.h5")
        raise FileFormatError(f"{name}: not a neural implicit file (no format attribute)")
    shape, dt = attribute_info(f, "format", name)
    fmt = text_attribute(f, "format", name, MAX_SHORT_TEXT_BYTES) \
        if shape == () and h5py.check_string_dtype(dt) else None
    if fmt != FORMAT_NAME:
        shown = repr(fmt) if fmt is not None else describe(shape, dt)
        raise FileFormatError(f"{name}: not a neural implicit file (format attribute is {shown})")
    shape, dt = attribute_info(f, "format_version", name)
    if shape != () or dt.kind not in "iu":
        raise FileFormatError(f"{name}: format_version must be the integer {FORMAT_VERSION}, got "
                              f"{describe(shape, dt)}")
    version = int(f.attrs["format_version"])
    if version > FORMAT_VERSION:
        raise FileFormatError(f"{name}: written by a newer version (format version {version}); this "
                              f"reader understands up to {FORMAT_VERSION}: update the software")
    if version not in READABLE_VERSIONS:
        raise FileFormatError(f"{name}: invalid format version {version}")
    if "members" in f and version < 2:
        raise FileFormatError(f"{name}: /members needs format version 2, the file says {version}")


def _check_layout(f, name: str, arch: Architecture, storage: str) -> dict:
    """The datasets of the file, each checked against ``arch`` and ``storage`` (nothing read):
    ``{"transform": Dataset, "layers": [{"W": Dataset, ...}, ...], "members": [[...], ...]}``."""
    h5py = _h5py()
    extra = sorted(set(f.keys()) - {"transform", "layers", "members"})
    if extra:
        raise FileFormatError(f"{name}: unexpected entries {extra}")
    if "transform" not in f or not isinstance(f["transform"], h5py.Dataset):
        raise FileFormatError(f"{name}: missing dataset 'transform'")
    check_dataset(f["transform"], "/transform", name, (4, 4), ["f8"])
    members = []
    if "members" in f:
        g = f["members"]
        if not isinstance(g, h5py.Group) or set(g.keys()) != {str(k) for k in range(len(g))}:
            raise FileFormatError(f"{name}: /members must be a group of networks named 0, 1, ...")
        if not 1 <= len(g) < MAX_NETWORKS:
            raise FileFormatError(f"{name}: holds {1 + len(g)} networks; at most {MAX_NETWORKS} "
                                  "are allowed")
        if arch.parameters * (1 + len(g)) > MAX_PARAMETERS:
            raise FileFormatError(f"{name}: {1 + len(g)} networks of {arch.parameters:,} parameters "
                                  f"are over the limit of {MAX_PARAMETERS:,} in all")
        members = [_layer_datasets(g[str(k)], f"members/{k}", name, arch, storage)
                   for k in range(len(g))]
    return {"transform": f["transform"],
            "layers": _layer_datasets(f.get("layers"), "layers", name, arch, storage),
            "members": members}


def _layer_datasets(group, where: str, name: str, arch: Architecture, storage: str) -> list:
    """The checked datasets of one network's layers, stored under ``where``."""
    h5py = _h5py()
    shapes = arch.layer_shapes()
    found = len(group) if isinstance(group, h5py.Group) else 0
    if found != len(shapes):
        raise FileFormatError(f"{name}: {arch.layers} hidden layers need {len(shapes)} stored layers"
                              f"{'' if where == 'layers' else ' in ' + where}, found {found}")
    want = expected_dtypes(storage)
    layers = []
    for i, (o, n) in enumerate(shapes):
        g = group.get(str(i))
        if not isinstance(g, h5py.Group):
            raise FileFormatError(f"{name}: missing layer group {where}/{i}")
        if set(g.keys()) != set(want):
            raise FileFormatError(f"{name}: {where}/{i} must hold {sorted(want)}, has {sorted(g.keys())}")
        expect = {"W": (o, n), "b": (o,), "scale": (o,)}
        for key, dt in want.items():
            check_dataset(g[key], f"{where}/{i}/{key}", name, expect[key], [dt])
        layers.append({key: g[key] for key in want})
    return layers
