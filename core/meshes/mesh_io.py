"""Readers for the mesh formats users bring: OBJ, OFF, PLY (ascii and binary) and STL (ascii and binary).

Why our own readers: loading must work with numpy alone (inside Blender and for remeshing) and every
malformed file must become an :class:`InputError` that names the file and the problem, never a
traceback from deep inside a parser. Readers return raw data; ``mesh.py`` validates and cleans it.

Hostile files: no count read from a file is trusted. Before anything is allocated for it, every
element count, list count and triangle count is checked against what the rest of the file can hold
(a binary PLY record of ``s`` bytes needs ``count * s`` bytes, an ascii record one token per value),
so a small file can never ask for a large allocation; a negative, non-integer or oversized count is
an :class:`InputError` naming it.

Every reader returns ``(V, faces)``: ``V`` (n, 3) float64 and ``faces`` either an (m, k) int64 array
(all polygons with k corners, the usual case, kept vectorised) or a list of int64 index arrays
(polygons of mixed sizes), 0-based. Writers for OBJ/OFF/PLY/STL live here too (used by remeshing).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import numpy as np

from ..common.errors import InputError
from ..common.readfile import read_regular_file

READ_EXTENSIONS = (".obj", ".off", ".ply", ".stl")

#: Most corners one polygon (or any PLY list) may have: the largest count a ``ushort`` list count
#: can announce. Real polygons are far smaller (all 20 shared meshes hold only triangles); a larger
#: count in a file is corruption, and fan triangulation would turn it into as many triangles.
MAX_POLYGON_CORNERS = 65_535

#: Largest index magnitude accepted while parsing (2**53: every such integer is exact in float64,
#: so indices written as floats, e.g. "3.0" in an ascii PLY, convert without rounding).
_MAX_INDEX = 2 ** 53

#: Largest mesh file read (1 GiB): parsing holds the text and its numbers in memory at once, so a
#: larger file would exhaust a 16-24 GB machine; no mesh a network of this size can represent
#: needs it.
MAX_MESH_FILE_BYTES = 1 << 30

#: Errors a parser can raise on malformed bytes; read_mesh_file turns them into InputError.
_PARSE_ERRORS = (ValueError, IndexError, KeyError, TypeError, OverflowError, struct.error,
                 UnicodeDecodeError)


def read_mesh_file(path: str) -> tuple[np.ndarray, np.ndarray | list[np.ndarray]]:
    """Read a mesh file by its extension; raise InputError with the file name on any problem."""
    path = os.fspath(path)
    _reader(path)                              # an unsupported extension fails before any read
    return read_mesh_bytes(read_regular_file(path, path, MAX_MESH_FILE_BYTES), path)


def read_mesh_bytes(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray | list[np.ndarray]]:
    """:func:`read_mesh_file` for the bytes of a file named ``name`` (its extension picks the
    format; messages name it)."""
    ext, reader = _reader(name)
    if not data.strip():
        raise InputError(f"{name}: the file is empty")
    try:
        return reader(data)
    except InputError as e:
        raise InputError(f"{name}: {e}") from None
    except _PARSE_ERRORS as e:
        raise InputError(f"{name}: not a valid {ext[1:].upper()} file ({_short(e)})") from None


def _reader(name: str):
    """(extension, reader) of a mesh file name; InputError for an unsupported extension."""
    ext = os.path.splitext(name)[1].lower()
    if ext not in READ_EXTENSIONS:
        raise InputError(f"{name}: unsupported mesh format {ext or '(none)'!r}; "
                         f"expected one of {', '.join(READ_EXTENSIONS)}")
    return ext, {".obj": _read_obj, ".off": _read_off, ".ply": _read_ply, ".stl": _read_stl}[ext]


def _short(e: Exception) -> str:
    """An exception's message on one line and at most 120 characters (it may quote file bytes)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


# ----------------------------------------------------------------------------- shared checks
def _count(text, what: str) -> int:
    """A non-negative integer count read from a header (``what`` names it in the message)."""
    try:
        n = int(text)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a whole number, got {_quote(text)}") from None
    if n < 0:
        raise InputError(f"{what} is negative ({n})")
    return n


def _corner_count(n: int, what: str) -> int:
    """A polygon's (or list's) announced corner count, bounded by MAX_POLYGON_CORNERS."""
    if n < 0 or n > MAX_POLYGON_CORNERS:
        raise InputError(f"{what} announces {n:,} entries; at most {MAX_POLYGON_CORNERS:,} are supported")
    return n


def _fits(count: int, record_size: int, available: int, what: str, unit: str = "bytes") -> None:
    """Raise unless ``count`` records of at least ``record_size`` units each fit in the ``available``
    units (bytes, or tokens of an ascii file): the check before any allocation sized by a count."""
    if count * record_size > available:
        each = unit if record_size != 1 else unit[:-1]
        raise InputError(f"{what} announces {count:,} records of at least {record_size} {each} "
                         f"each, but only {available:,} {unit} remain")


def _quote(text) -> str:
    text = text.decode("ascii", "replace") if isinstance(text, bytes) else str(text)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _indices(values: np.ndarray, what: str) -> np.ndarray:
    """Vertex indices parsed as numbers -> int64, refusing fractions, NaN and absurd magnitudes."""
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64)
    if not (np.isfinite(values).all() and (np.abs(values) <= _MAX_INDEX).all()
            and (values == np.round(values)).all()):
        raise InputError(f"{what}: vertex indices must be whole numbers below 2**53")
    return values.astype(np.int64)


def _polygons(rows: list, what: str):
    """Index lists (of strings or numbers) -> an (m, k) int64 array when all have k corners, else
    a list of int64 arrays. One numpy conversion for the usual all-triangles case."""
    if not rows:
        return np.zeros((0, 3), dtype=np.int64)
    k = len(rows[0])
    if all(len(r) == k for r in rows):
        return _indices(np.asarray(rows, dtype=np.float64), what).reshape(len(rows), k)
    flat = _indices(np.asarray([x for r in rows for x in r], dtype=np.float64), what)
    return np.split(flat, np.cumsum([len(r) for r in rows])[:-1])


# ----------------------------------------------------------------------------- OBJ
def _read_obj(data: bytes):
    verts, faces = [], []
    for lineno, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        parts = raw.split("#", 1)[0].split()
        if not parts:
            continue
        if parts[0] == "v":
            if len(parts) < 4:
                raise InputError(f"line {lineno}: vertex needs 3 coordinates")
            verts.append(_obj_floats(parts[1:4], lineno))
        elif parts[0] == "f":
            if len(parts) < 4:
                raise InputError(f"line {lineno}: face needs at least 3 vertices")
            _corner_count(len(parts) - 1, f"line {lineno}: face")
            faces.append([_obj_index(p, len(verts), lineno) for p in parts[1:]])
    return np.asarray(verts, dtype=np.float64).reshape(-1, 3), _polygons(faces, "OBJ faces")


def _obj_floats(parts, lineno):
    try:
        return [float(p) for p in parts]
    except ValueError:   # read_mesh_file reports it as "not a valid ... file (line ...)"
        raise ValueError(f"line {lineno}: vertex coordinates must be numbers, got "
                         f"{_quote(' '.join(parts))}") from None


def _obj_index(token: str, n_verts: int, lineno: int) -> int:
    """One face corner ('7', '7/2', '7//3', '-1') -> 0-based index (negative = relative)."""
    head = token.split("/", 1)[0]
    try:
        i = int(head)
    except ValueError:
        raise ValueError(f"line {lineno}: face index must be a whole number, got {_quote(token)}") from None
    if i == 0:
        raise InputError(f"line {lineno}: OBJ indices start at 1, got 0")
    if abs(i) > _MAX_INDEX:
        raise InputError(f"line {lineno}: face index {_quote(head)} is out of range")
    return i - 1 if i > 0 else n_verts + i


# ----------------------------------------------------------------------------- OFF
_OFF_HEADS = ("OFF", "COFF", "NOFF", "CNOFF")


def _read_off(data: bytes):
    lines = [ln.split("#", 1)[0].split() for ln in data.decode("utf-8", errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines or lines[0][0] not in _OFF_HEADS:
        head = lines[0][0] if lines else ""
        raise InputError(f"OFF header expected, got {_quote(head)}")
    counts = lines[0][1:] if len(lines[0]) > 1 else (lines[1] if len(lines) > 1 else [])
    body = lines[1:] if len(lines[0]) > 1 else lines[2:]
    if len(counts) < 2:
        raise InputError("the OFF header needs vertex and face counts")
    nv = _count(counts[0], "OFF vertex count")
    nf = _count(counts[1], "OFF face count")
    if len(body) < nv + nf:   # one line per record: checked before anything is allocated
        raise InputError(f"file ends early: {nv:,} vertices and {nf:,} faces announced, "
                         f"{len(body):,} records found")
    short = next((k for k, row in enumerate(body[:nv]) if len(row) < 3), None)
    if short is not None:
        raise InputError(f"vertex {short} needs 3 coordinates, got {len(body[short])}")
    V = np.asarray([row[:3] for row in body[:nv]], dtype=np.float64).reshape(-1, 3)
    faces = []
    for k, row in enumerate(body[nv:nv + nf]):
        n = _corner_count(_count(row[0], f"face {k} vertex count"), f"face {k}")
        if n < 3 or len(row) < 1 + n:
            raise InputError(f"face {k}: bad vertex count {n}")
        faces.append(row[1:1 + n])   # trailing colour values ignored
    return V, _polygons(faces, "OFF faces")


# ----------------------------------------------------------------------------- PLY
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_FACE_LISTS = ("vertex_indices", "vertex_index")


@dataclass
class _Property:
    name: str
    type: str                    # numpy type code of the value (of each item for a list)
    count_type: str | None = None  # numpy type code of a list's count; None for a scalar

    @property
    def min_bytes(self) -> int:
        """Bytes the property takes at least in a binary record (a list with no items)."""
        return np.dtype(self.count_type or self.type).itemsize


@dataclass
class _Element:
    name: str
    count: int
    props: list = field(default_factory=list)

    def wanted(self) -> list[str]:
        """The properties this reader keeps from the element (vertex positions, face indices).

        Raises for an element of records without properties: they take no bytes, so no file size
        bounds their count, and no file needs them."""
        if self.count and not self.props:
            raise InputError(f"PLY element {self.name!r} announces {self.count:,} records "
                             f"but declares no properties")
        if self.name == "vertex":
            names = [p.name for p in self.props if p.count_type is None]
            if not all(c in names for c in "xyz"):
                raise InputError("PLY vertex element lacks x, y or z")
            return ["x", "y", "z"]
        if self.name == "face":
            for p in self.props:
                if p.count_type and p.name in _FACE_LISTS:
                    return [p.name]
            raise InputError("PLY face element lacks a vertex_indices list")
        return []


def _read_ply(data: bytes):
    fmt, elements, body = _ply_header(data)
    if fmt == "ascii":
        read, source = _ply_ascii_element, body.split()
    else:
        read, source = _ply_binary_element, (body, "<" if fmt == "binary_little_endian" else ">")
    pos, V, faces = 0, None, np.zeros((0, 3), dtype=np.int64)
    for el in elements:
        cols, pos = read(source, pos, el)
        if el.name == "vertex":
            V = np.stack([np.asarray(cols[c], dtype=np.float64) for c in "xyz"], axis=1)
        elif el.name == "face":
            faces = cols[el.wanted()[0]]
    if V is None:
        raise InputError("no 'vertex' element in the PLY file")
    return V, faces


def _ply_header(data: bytes):
    """(format, elements, body bytes) of a PLY file; every count checked to be a whole number >= 0."""
    end = data.find(b"end_header")
    newline = data.find(b"\n", end) if end >= 0 else -1
    if not data.startswith(b"ply") or newline < 0:
        raise InputError("PLY header ('ply' ... 'end_header') not found")
    fmt, elements = None, []
    for line in data[:end].decode("ascii", errors="replace").splitlines()[1:]:
        p = line.split()
        if not p or p[0] in ("comment", "obj_info"):
            continue
        if p[0] == "format":
            fmt = p[1] if len(p) > 1 else None
        elif p[0] == "element":
            if len(p) != 3:
                raise InputError(f"PLY element line needs a name and a count, got {_quote(line)}")
            elements.append(_Element(p[1], _count(p[2], f"PLY element {p[1]!r} count")))
        elif p[0] == "property":
            if not elements:
                raise InputError("property before any element in the PLY header")
            elements[-1].props.append(_ply_property(p, line))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise InputError(f"unsupported PLY format {fmt!r}")
    return fmt, elements, data[newline + 1:]


def _ply_property(p: list[str], line: str) -> _Property:
    if len(p) >= 5 and p[1] == "list":
        count_type = _ply_type(p[2])
        if count_type[0] == "f":
            raise InputError(f"PLY list count type must be an integer type, got {p[2]!r}")
        return _Property(p[4], _ply_type(p[3]), count_type)
    if len(p) == 3 and p[1] != "list":
        return _Property(p[2], _ply_type(p[1]))
    raise InputError(f"malformed PLY property line {_quote(line)}")


def _ply_type(name: str) -> str:
    if name not in _PLY_TYPES:
        raise InputError(f"unknown PLY property type {_quote(name)}")
    return _PLY_TYPES[name]


def _ply_ascii_element(tokens: list[bytes], pos: int, el: _Element):
    """Parse one element of an ascii PLY body from ``tokens[pos:]``: (columns, new position).

    Columns are float64 arrays for scalars and polygons (see _polygons) for face lists; only the
    properties ``el.wanted()`` names are converted."""
    wanted = el.wanted()
    if el.count == 0:
        return {name: np.zeros(0) for name in wanted}, pos
    what = f"PLY element {el.name!r}"
    _fits(el.count, len(el.props), len(tokens) - pos, what, "values")   # a token per value at least
    nprops = len(el.props)
    if all(p.count_type is None for p in el.props):
        block = tokens[pos:pos + el.count * nprops]
        cols = {}
        for j, p in enumerate(el.props):
            if p.name in wanted:
                cols[p.name] = np.asarray(block[j::nprops], dtype=np.float64)
        return cols, pos + el.count * nprops
    spans = {p.name: [] for p in el.props if p.name in wanted}
    for _ in range(el.count):
        for p in el.props:
            if p.count_type is None:
                if p.name in spans:
                    spans[p.name].append(tokens[pos])
                pos += 1
                continue
            n = _corner_count(_ascii_count(tokens[pos]), f"{what} list {p.name!r}")
            if pos + 1 + n > len(tokens):
                raise InputError(f"file ends inside {what}")
            if p.name in spans:
                spans[p.name].append(tokens[pos + 1:pos + 1 + n])
            pos += 1 + n
    cols = {}
    for p in el.props:
        if p.name in spans:
            rows = spans[p.name]
            cols[p.name] = (np.asarray(rows, dtype=np.float64) if p.count_type is None
                            else _polygons(rows, f"{what} list {p.name!r}"))
    return cols, pos


def _ascii_count(token: bytes) -> int:
    try:
        x = float(token)
    except ValueError:
        raise InputError(f"PLY list count must be a whole number, got {_quote(token)}") from None
    if not (abs(x) <= _MAX_INDEX and x == int(x)):
        raise InputError(f"PLY list count must be a whole number, got {_quote(token)}")
    return int(x)


def _ply_binary_element(source, pos: int, el: _Element):
    """Parse one element of a binary PLY body at byte ``pos``: (columns, new position).

    Vectorised when every list of the element has the same length in every record (all faces
    triangles: one structured dtype over the whole block); otherwise a record-by-record scan."""
    body, endian = source
    wanted = el.wanted()
    if el.count == 0:
        return {name: np.zeros(0) for name in wanted}, pos
    what = f"PLY element {el.name!r}"
    _fits(el.count, sum(p.min_bytes for p in el.props), len(body) - pos, what)
    fixed = _ply_fixed_lengths(body, pos, el, endian)
    if fixed is not None:
        dt = _ply_record_dtype(el, endian, fixed)
        if el.count * dt.itemsize <= len(body) - pos:
            rec = np.frombuffer(body, dtype=dt, count=el.count, offset=pos)
            lists = [p for p in el.props if p.count_type]
            if all((rec[f"{p.name}#n"] == fixed[p.name]).all() for p in lists):
                return _ply_fixed_columns(rec, el, wanted, what), pos + el.count * dt.itemsize
    return _ply_binary_scan(body, pos, el, endian, wanted, what)


def _ply_fixed_lengths(body: bytes, pos: int, el: _Element, endian: str):
    """The list lengths of the element's first record ({name: n}), the guess that every record
    has the same; None when a length is out of bounds (the scan then reports it)."""
    lengths = {}
    for p in el.props:
        if p.count_type is None:
            pos += p.min_bytes
            continue
        if pos + p.min_bytes > len(body):
            return None
        n = int(np.frombuffer(body, endian + p.count_type, 1, pos)[0])
        if n < 0 or n > MAX_POLYGON_CORNERS:
            return None
        lengths[p.name] = n
        pos += p.min_bytes + n * np.dtype(p.type).itemsize
    return lengths


def _ply_record_dtype(el: _Element, endian: str, lengths: dict) -> np.dtype:
    fields = []
    for p in el.props:
        if p.count_type is None:
            fields.append((p.name, endian + p.type))
        else:
            fields.append((f"{p.name}#n", endian + p.count_type))
            fields.append((p.name, endian + p.type, (lengths[p.name],)))
    return np.dtype(fields)


def _ply_fixed_columns(rec: np.ndarray, el: _Element, wanted: list[str], what: str) -> dict:
    cols = {}
    for p in el.props:
        if p.name in wanted:
            col = rec[p.name]
            cols[p.name] = col.astype(np.float64) if p.count_type is None else \
                _indices(np.ascontiguousarray(col), f"{what} list {p.name!r}").reshape(col.shape)
    return cols


def _ply_binary_scan(body: bytes, pos: int, el: _Element, endian: str, wanted: list[str], what: str):
    """Record-by-record walk for elements whose list lengths vary; every length is bounded and
    every record checked to lie inside the file before it is read."""
    offsets = {p.name: [] for p in el.props if p.name in wanted}
    lengths = {p.name: [] for p in el.props if p.name in wanted and p.count_type}
    count_fmt = {p.name: endian + np.dtype(p.count_type).char for p in el.props if p.count_type}
    for _ in range(el.count):
        for p in el.props:
            if p.count_type is None:
                if p.name in offsets:
                    offsets[p.name].append(pos)
                pos += p.min_bytes
                continue
            if pos + p.min_bytes > len(body):
                raise InputError(f"file ends inside {what}")
            n = struct.unpack_from(count_fmt[p.name], body, pos)[0]
            _corner_count(n, f"{what} list {p.name!r}")
            pos += p.min_bytes
            if p.name in offsets:
                offsets[p.name].append(pos)
                lengths[p.name].append(n)
            pos += n * np.dtype(p.type).itemsize
        if pos > len(body):
            raise InputError(f"file ends inside {what}")
    return _ply_gather(body, el, endian, offsets, lengths, what), pos


def _ply_gather(body: bytes, el: _Element, endian: str, offsets: dict, lengths: dict, what: str) -> dict:
    """Columns from the byte offsets the scan recorded (scalars gathered in one fancy index)."""
    raw = np.frombuffer(body, dtype=np.uint8)
    cols = {}
    for p in el.props:
        if p.name not in offsets:
            continue
        size = np.dtype(p.type).itemsize
        if p.count_type is None:
            at = np.asarray(offsets[p.name], dtype=np.int64)[:, None] + np.arange(size)
            cols[p.name] = raw[at].view(endian + p.type).reshape(-1).astype(np.float64)
        else:
            rows = [np.frombuffer(body, endian + p.type, n, off)
                    for off, n in zip(offsets[p.name], lengths[p.name])]
            cols[p.name] = _polygons(rows, f"{what} list {p.name!r}")
    return cols


# ----------------------------------------------------------------------------- STL
_STL_RECORD = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])


def _read_stl(data: bytes):
    """Binary when the size matches the announced triangle count exactly (so the count is bounded
    by the file), else ASCII when it starts with 'solid'."""
    n = struct.unpack("<I", data[80:84])[0] if len(data) >= 84 else None
    if n is not None and 84 + _STL_RECORD.itemsize * n == len(data):
        return _read_stl_binary(data, n)
    if data.lstrip()[:5].lower() == b"solid":
        return _read_stl_ascii(data, n)
    if n is not None:
        raise InputError(f"binary STL announces {n:,} triangles ({84 + 50 * n:,} bytes), "
                         f"but the file has {len(data):,} bytes")
    raise InputError("neither a binary STL (size does not match the triangle count) nor an ASCII STL")


def _read_stl_binary(data: bytes, n: int):
    tri = np.frombuffer(data, dtype=_STL_RECORD, count=n, offset=84)["v"].astype(np.float64)
    V = tri.reshape(-1, 3)
    return V, np.arange(len(V), dtype=np.int64).reshape(-1, 3)


def _read_stl_ascii(data: bytes, binary_count: int | None):
    verts = []
    for lineno, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        p = raw.split()
        if p and p[0].lower() == "vertex":
            if len(p) < 4:
                raise InputError(f"line {lineno}: vertex line needs 3 coordinates")
            verts.append(_obj_floats(p[1:4], lineno))
    if not verts and binary_count is not None and b"\0" in data:
        raise InputError(f"binary STL announces {binary_count:,} triangles "
                         f"({84 + 50 * binary_count:,} bytes), but the file has {len(data):,} bytes")
    if len(verts) % 3:
        raise InputError(f"{len(verts)} vertices is not a whole number of triangles")
    V = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    return V, np.arange(len(V), dtype=np.int64).reshape(-1, 3)
# ----------------------------------------------------------------------------- writers
WRITE_EXTENSIONS = (".obj", ".off", ".ply", ".stl")


def write_mesh_file(path: str, V: np.ndarray, F: np.ndarray) -> None:
    """Write a triangle mesh; the format follows the extension. Written to a temporary name first."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in WRITE_EXTENSIONS:
        raise InputError(f"{path}: cannot write {ext or '(none)'!r}; use one of {', '.join(WRITE_EXTENSIONS)}")
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    tmp = path + ".part"
    with open(tmp, "wb") as fh:
        if ext == ".obj":
            fh.write(_fmt_rows("v %.9g %.9g %.9g\n", V))
            fh.write(_fmt_rows("f %d %d %d\n", F + 1))
        elif ext == ".off":
            fh.write(f"OFF\n{len(V)} {len(F)} 0\n".encode())
            fh.write(_fmt_rows("%.9g %.9g %.9g\n", V))
            fh.write(_fmt_rows("3 %d %d %d\n", F))
        elif ext == ".ply":
            fh.write((f"ply\nformat binary_little_endian 1.0\nelement vertex {len(V)}\n"
                      "property float x\nproperty float y\nproperty float z\n"
                      f"element face {len(F)}\nproperty list uchar int vertex_indices\nend_header\n").encode())
            fh.write(V.astype("<f4").tobytes())
            rec = np.zeros(len(F), dtype=[("n", "u1"), ("i", "<i4", 3)])
            rec["n"] = 3
            rec["i"] = F
            fh.write(rec.tobytes())
        else:
            tri = V[F]
            nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            ln = np.linalg.norm(nrm, axis=1, keepdims=True)
            nrm = np.divide(nrm, ln, out=np.zeros_like(nrm), where=ln > 0)
            rec = np.zeros(len(F), dtype=[("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
            rec["normal"] = nrm
            rec["v"] = tri
            fh.write(b"neural implicit remesh".ljust(80, b" "))
            fh.write(struct.pack("<I", len(F)))
            fh.write(rec.tobytes())
    os.replace(tmp, path)


def _fmt_rows(fmt: str, A: np.ndarray) -> bytes:
    if len(A) == 0:
        return b""
    return ((fmt * len(A)) % tuple(A.ravel().tolist())).encode()
