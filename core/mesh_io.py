"""Readers for the mesh formats users bring: OBJ, OFF, PLY (ascii and binary) and STL (ascii and binary).

Why our own readers: loading must work with numpy alone (inside Blender and for remeshing) and every
malformed file must become an :class:`InputError` that names the file and the problem, never a
traceback from deep inside a parser. Readers return raw data; ``mesh.py`` validates and cleans it.

Every reader returns ``(V, faces)``: ``V`` (n, 3) float64 and ``faces`` a list of int64 index arrays
(polygons of any size, 0-based). Writers for OBJ/OFF/PLY/STL live here too (used by remeshing).
"""

from __future__ import annotations

import os
import struct

import numpy as np

from .errors import InputError

READ_EXTENSIONS = (".obj", ".off", ".ply", ".stl")


def read_mesh_file(path: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Read a mesh file by its extension; raise InputError with the file name on any problem."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in READ_EXTENSIONS:
        raise InputError(f"{path}: unsupported mesh format {ext or '(none)'!r}; "
                         f"expected one of {', '.join(READ_EXTENSIONS)}")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a mesh file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    if not data.strip():
        raise InputError(f"{path}: the file is empty")
    reader = {".obj": _read_obj, ".off": _read_off, ".ply": _read_ply, ".stl": _read_stl}[ext]
    try:
        return reader(data)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a valid {ext[1:].upper()} file ({e})") from None


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
            verts.append([float(p) for p in parts[1:4]])
        elif parts[0] == "f":
            idx = []
            for p in parts[1:]:
                i = int(p.split("/", 1)[0])
                if i == 0:
                    raise InputError(f"line {lineno}: OBJ indices start at 1, got 0")
                idx.append(i - 1 if i > 0 else len(verts) + i)
            if len(idx) < 3:
                raise InputError(f"line {lineno}: face needs at least 3 vertices")
            faces.append(np.asarray(idx, dtype=np.int64))
    return np.asarray(verts, dtype=np.float64).reshape(-1, 3), faces


# ----------------------------------------------------------------------------- OFF
def _read_off(data: bytes):
    lines = [ln.split("#", 1)[0].split() for ln in data.decode("utf-8", errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    head = lines[0][0]
    if head not in ("OFF", "COFF", "NOFF", "CNOFF"):
        raise InputError(f"OFF header expected, got {head[:20]!r}")
    counts = lines[0][1:] if len(lines[0]) > 1 else lines[1]
    body = lines[1:] if len(lines[0]) > 1 else lines[2:]
    nv, nf = int(counts[0]), int(counts[1])
    if nv < 0 or nf < 0:
        raise InputError(f"negative counts in the OFF header ({nv} vertices, {nf} faces)")
    if len(body) < nv + nf:
        raise InputError(f"file ends early: {nv} vertices and {nf} faces announced, "
                         f"{len(body)} records found")
    V = np.asarray([row[:3] for row in body[:nv]], dtype=np.float64).reshape(-1, 3)
    faces = []
    for k, row in enumerate(body[nv:nv + nf]):
        n = int(row[0])
        if n < 3 or len(row) < 1 + n:
            raise InputError(f"face {k}: bad vertex count {n}")
        faces.append(np.asarray(row[1:1 + n], dtype=np.int64))   # trailing colour values ignored
    return V, faces


# ----------------------------------------------------------------------------- PLY
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _read_ply(data: bytes):
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise InputError("PLY header ('ply' ... 'end_header') not found")
    header = data[:end].decode("ascii", errors="replace").splitlines()
    body_start = data.index(b"\n", end) + 1
    fmt, elements = None, []
    for line in header[1:]:
        p = line.split()
        if not p or p[0] in ("comment", "obj_info"):
            continue
        if p[0] == "format":
            fmt = p[1]
        elif p[0] == "element":
            elements.append({"name": p[1], "count": int(p[2]), "props": []})
        elif p[0] == "property":
            if not elements:
                raise InputError("property before any element in the PLY header")
            if p[1] == "list":
                elements[-1]["props"].append((p[4], "list", _ply_type(p[2]), _ply_type(p[3])))
            else:
                elements[-1]["props"].append((p[2], "scalar", _ply_type(p[1]), None))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise InputError(f"unsupported PLY format {fmt!r}")
    if fmt == "ascii":
        return _read_ply_ascii(data[body_start:], elements)
    return _read_ply_binary(data[body_start:], elements, "<" if fmt.endswith("little_endian") else ">")


def _ply_type(name):
    if name not in _PLY_TYPES:
        raise InputError(f"unknown PLY property type {name!r}")
    return _PLY_TYPES[name]


def _read_ply_ascii(body: bytes, elements):
    tokens = body.decode("ascii", errors="replace").split()
    pos, V, faces = 0, None, []
    for el in elements:
        rows = []
        for _ in range(el["count"]):
            row = {}
            for name, kind, t, t2 in el["props"]:
                if kind == "scalar":
                    row[name] = float(tokens[pos]); pos += 1
                else:
                    n = int(tokens[pos]); pos += 1
                    row[name] = [int(float(x)) for x in tokens[pos:pos + n]]; pos += n
            rows.append(row)
        V, faces = _ply_collect(el, rows, V, faces)
    if V is None:
        raise InputError("no 'vertex' element in the PLY file")
    return V, faces


def _ply_collect(el, rows, V, faces):
    if el["name"] == "vertex":
        try:
            V = np.asarray([[r["x"], r["y"], r["z"]] for r in rows], dtype=np.float64).reshape(-1, 3)
        except KeyError:
            raise InputError("PLY vertex element lacks x, y or z") from None
    elif el["name"] == "face":
        key = _face_key(el)
        faces = [np.asarray(r[key], dtype=np.int64) for r in rows]
    return V, faces


def _face_key(el):
    for name, kind, _, _ in el["props"]:
        if kind == "list" and name in ("vertex_indices", "vertex_index"):
            return name
    raise InputError("PLY face element lacks a vertex_indices list")


def _read_ply_binary(body: bytes, elements, endian):
    pos, V, faces = 0, None, []
    for el in elements:
        scalar_only = all(kind == "scalar" for _, kind, _, _ in el["props"])
        if scalar_only:
            dt = np.dtype([(name, endian + t) for name, _, t, _ in el["props"]])
            n = el["count"] * dt.itemsize
            if pos + n > len(body):
                raise InputError(f"file ends inside element {el['name']!r}")
            arr = np.frombuffer(body, dtype=dt, count=el["count"], offset=pos)
            pos += n
            if el["name"] == "vertex":
                try:
                    V = np.stack([arr["x"], arr["y"], arr["z"]], axis=1).astype(np.float64)
                except (KeyError, ValueError):
                    raise InputError("PLY vertex element lacks x, y or z") from None
            continue
        rows = []
        for _ in range(el["count"]):
            row = {}
            for name, kind, t, t2 in el["props"]:
                if kind == "scalar":
                    size = np.dtype(t).itemsize
                    row[name] = np.frombuffer(body, endian + t, 1, pos)[0]; pos += size
                else:
                    cs = np.dtype(t).itemsize
                    n = int(np.frombuffer(body, endian + t, 1, pos)[0]); pos += cs
                    isz = np.dtype(t2).itemsize
                    row[name] = np.frombuffer(body, endian + t2, n, pos).astype(np.int64); pos += n * isz
            rows.append(row)
        if el["name"] == "face":
            faces = [r[_face_key(el)] for r in rows]
    if V is None:
        raise InputError("no 'vertex' element in the PLY file")
    return V, faces


# ----------------------------------------------------------------------------- STL
def _read_stl(data: bytes):
    if len(data) >= 84:
        n = struct.unpack("<I", data[80:84])[0]
        if 84 + 50 * n == len(data):
            return _read_stl_binary(data, n)
    head = data[:512].lstrip().lower()
    if head.startswith(b"solid") and b"facet" in data[:4096].lower() or head.startswith(b"solid"):
        return _read_stl_ascii(data)
    raise InputError("neither a binary STL (size does not match the triangle count) nor an ASCII STL")


def _read_stl_binary(data: bytes, n: int):
    dt = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    tri = np.frombuffer(data, dtype=dt, count=n, offset=84)["v"].astype(np.float64)
    V = tri.reshape(-1, 3)
    return V, list(np.arange(len(V), dtype=np.int64).reshape(-1, 3))


def _read_stl_ascii(data: bytes):
    verts = []
    for raw in data.decode("utf-8", errors="replace").splitlines():
        p = raw.split()
        if p and p[0].lower() == "vertex":
            if len(p) < 4:
                raise InputError("vertex line needs 3 coordinates")
            verts.append([float(x) for x in p[1:4]])
    if len(verts) % 3:
        raise InputError(f"{len(verts)} vertices is not a whole number of triangles")
    V = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    return V, list(np.arange(len(V), dtype=np.int64).reshape(-1, 3))


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
