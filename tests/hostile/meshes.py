"""Hostile mesh files for the mesh readers and mesh validation (issue 14).

``cases(tmpdir)`` writes every file into ``tmpdir`` and returns a list of :class:`Case`:

* ``name``: short id, unique (also the file's stem);
* ``class_name``: the class of problem the file belongs to:
  ``counts`` (a small file whose header or records announce counts it cannot hold: element, list,
  vertex, face and triangle counts that are huge, negative or beyond the polygon bound),
  ``malformed`` (unknown types, broken headers, truncated bodies, numbers that are no numbers or
  overflow), ``degenerate`` (finite coordinates that cannot be normalised or sampled: extents of
  1e-300 or 1e300, all faces of zero area, colinear vertices, a shape too far from its origin for
  its own coordinates to resolve) or ``valid`` (unusual files that must still load: mixed polygons, big-endian PLY,
  extra elements, tiny and huge but representable extents);
* ``path``: the crafted file;
* ``expected``: ``"error"`` (``core.meshes.mesh.load_mesh`` must raise InputError, one line naming
  the file, fast and with bounded memory) or ``"ok"`` (it must load);
* ``needle``: a word the error message must contain (lowercase), or "" for none.

Every file is under 1 MB. ``counts`` files used to exhaust memory and ``degenerate`` ones to loop
forever in sampling: run them in a subprocess with an address-space limit and a timeout.
Numpy only.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from . import Case


#: A closed tetrahedron, the base shape of the geometric cases.
TET_V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
TET_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])

_XYZ = "property float x\nproperty float y\nproperty float z\n"
_FACE = "element face {n}\nproperty list {ct} {it} vertex_indices\n"


def ply_header(fmt: str, elements: str) -> bytes:
    return f"ply\nformat {fmt} 1.0\n{elements}end_header\n".encode()


def obj_text(V, F) -> bytes:
    """OBJ with coordinates written exactly (repr), so extreme values survive the round trip."""
    lines = [f"v {x!r} {y!r} {z!r}" for x, y, z in np.asarray(V, dtype=float).tolist()]
    lines += ["f " + " ".join(str(i + 1) for i in f) for f in np.asarray(F).tolist()]
    return ("\n".join(lines) + "\n").encode()


def _tet_binary_ply(endian: str = "<") -> bytes:
    fmt = "binary_little_endian" if endian == "<" else "binary_big_endian"
    head = ply_header(fmt, "element vertex 4\n" + _XYZ + _FACE.format(n=4, ct="uchar", it="int"))
    rec = np.zeros(4, dtype=[("n", "u1"), ("i", endian + "i4", 3)])
    rec["n"], rec["i"] = 3, TET_F
    return head + TET_V.astype(endian + "f4").tobytes() + rec.tobytes()


def _count_cases() -> list[tuple]:
    tet_xyz = TET_V.astype("<f4").tobytes()
    verts_ascii = "0 0 0\n1 0 0\n0 1 0\n0 0 1\n"
    big_corner = 100_000
    return [
        # the 142-byte PLY: 2e9 vertices announced
        ("ply_ascii_vertex_2e9", ply_header("ascii", "element vertex 2000000000\n" + _XYZ
                                            + _FACE.format(n=1, ct="uchar", it="int"))
         + b"0 0 0\n", "announces"),
        ("ply_binary_vertex_2e9", ply_header("binary_little_endian", "element vertex 2000000000\n"
                                             + _XYZ) + tet_xyz, "announces"),
        ("ply_binary_face_2e9", ply_header("binary_little_endian", "element vertex 4\n" + _XYZ
                                           + _FACE.format(n=2_000_000_000, ct="uchar", it="int"))
         + tet_xyz + b"\x03" + b"\0" * 12, "announces"),
        ("ply_negative_count", ply_header("ascii", "element vertex -5\n" + _XYZ) + b"0 0 0\n",
         "negative"),
        # a negative list count used to walk backwards over the same bytes until memory ran out
        ("ply_ascii_negative_list_2e9_faces", ply_header("ascii", "element vertex 4\n" + _XYZ
                                                         + _FACE.format(n=2_000_000_000, ct="int",
                                                                        it="int"))
         + (verts_ascii + "-3 0 1 2\n").encode(), "announces"),
        ("ply_binary_negative_list_2e9_faces", ply_header("binary_little_endian", "element vertex 4\n"
                                                          + _XYZ + _FACE.format(n=2_000_000_000,
                                                                                ct="int", it="int"))
         + tet_xyz + struct.pack("<i", -3) + b"\0" * 12, "announces"),
        # records without properties take no bytes: nothing in the file bounds their count
        ("ply_ascii_propertyless_2e9", ply_header("ascii", "element vertex 4\n" + _XYZ
                                                  + _FACE.format(n=1, ct="uchar", it="int")
                                                  + "element junk 2000000000\n")
         + (verts_ascii + "3 0 1 2\n").encode(), "no properties"),
        ("ply_binary_propertyless_2e9", ply_header("binary_little_endian", "element junk 2000000000\n"
                                                   + "element vertex 4\n" + _XYZ) + tet_xyz,
         "no properties"),
        ("ply_count_1e30", ply_header("ascii", "element vertex " + "9" * 30 + "\n" + _XYZ)
         + b"0 0 0\n", "announces"),
        ("ply_binary_list_count_4e9", ply_header("binary_little_endian", "element vertex 4\n" + _XYZ
                                                 + _FACE.format(n=1, ct="uint", it="int"))
         + tet_xyz + struct.pack("<I", 4_000_000_000) + b"\0" * 12, "entries"),
        ("ply_binary_list_count_negative", ply_header("binary_little_endian", "element vertex 4\n"
                                                      + _XYZ + _FACE.format(n=1, ct="int", it="int"))
         + tet_xyz + struct.pack("<i", -1) + b"\0" * 12, "entries"),
        ("ply_ascii_list_count_2e9", ply_header("ascii", "element vertex 4\n" + _XYZ
                                                + _FACE.format(n=1, ct="uint", it="int"))
         + (verts_ascii + "2000000000 0 1 2\n").encode(), "entries"),
        ("ply_ascii_list_count_negative", ply_header("ascii", "element vertex 4\n" + _XYZ
                                                     + _FACE.format(n=1, ct="int", it="int"))
         + (verts_ascii + "-3 0 1 2\n").encode(), "entries"),
        # a face whose 100,000 corners are really there: bounded by the polygon limit, not the size
        ("ply_binary_100k_corner_face", ply_header("binary_little_endian", "element vertex 4\n"
                                                   + _XYZ + _FACE.format(n=1, ct="uint", it="int"))
         + tet_xyz + struct.pack("<I", big_corner) + np.resize(np.arange(4, dtype="<i4"),
                                                                  big_corner).tobytes(), "entries"),
        ("obj_100k_corner_face", ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf" + " 1 2 3" * (big_corner // 3)
                                  + "\n").encode(), "entries"),
        ("off_vertex_count_2e9", ("OFF\n2000000000 1 0\n" + verts_ascii + "3 0 1 2\n").encode(),
         "ends early"),
        ("off_negative_counts", b"OFF\n-4 -1 0\n0 0 0\n", "negative"),
        ("off_corner_count_2e9", ("OFF\n4 1 0\n" + verts_ascii + "2000000000 0 1 2\n").encode(),
         "entries"),
        # binary STL: the count must match the size exactly
        ("stl_binary_count_bomb", b"\0" * 80 + struct.pack("<I", 0xFFFFFFFF) + b"\0" * 100,
         "announces"),
        ("stl_solid_header_count_bomb", b"solid bomb".ljust(80, b" ") + struct.pack("<I", 0xFFFFFFFF)
         + b"\0" * 100, "announces"),
    ]


def _malformed_cases() -> list[tuple]:
    tet_ascii = "0 0 0\n1 0 0\n0 1 0\n0 0 1\n"
    faces_ascii = "3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"
    face_head = _FACE.format(n=4, ct="uchar", it="int")
    good = "element vertex 4\n" + _XYZ + face_head
    return [
        ("ply_unknown_type", ply_header("ascii", "element vertex 4\nproperty float128 x\n"
                                        "property float y\nproperty float z\n" + face_head)
         + (tet_ascii + faces_ascii).encode(), "unknown ply property type"),
        ("ply_float_list_count", ply_header("ascii", "element vertex 4\n" + _XYZ
                                            + _FACE.format(n=4, ct="float", it="int"))
         + (tet_ascii + faces_ascii).encode(), "integer type"),
        ("ply_no_end_header", b"ply\nformat ascii 1.0\nelement vertex 4\n" + _XYZ.encode(),
         "header"),
        ("ply_element_without_count", ply_header("ascii", "element vertex\n" + _XYZ), "element"),
        ("ply_fractional_count", ply_header("ascii", "element vertex 3.5\n" + _XYZ), "whole number"),
        ("ply_bad_property_line", ply_header("ascii", "element vertex 4\nproperty list uchar\n"),
         "property"),
        ("ply_unsupported_format", b"ply\nformat binary_middle_endian 1.0\nend_header\n", "format"),
        ("ply_ascii_bad_number", ply_header("ascii", good)
         + ("0 0 zero\n1 0 0\n0 1 0\n0 0 1\n" + faces_ascii).encode(), "not a valid ply"),
        ("ply_ascii_truncated", ply_header("ascii", good) + b"0 0 0\n1 0 0\n", "announces"),
        ("ply_ascii_index_fraction", ply_header("ascii", good)
         + (tet_ascii + "3 0 2 1.5\n3 0 1 3\n3 0 3 2\n3 1 2 3\n").encode(), "whole numbers"),
        ("ply_ascii_index_nan", ply_header("ascii", good)
         + (tet_ascii + "3 0 2 nan\n3 0 1 3\n3 0 3 2\n3 1 2 3\n").encode(), "whole numbers"),
        ("ply_binary_truncated_mixed", ply_header("binary_little_endian", "element vertex 4\n" + _XYZ
                                                  + _FACE.format(n=3, ct="uchar", it="int"))
         + TET_V.astype("<f4").tobytes() + b"\x03" + np.array([0, 1, 2], "<i4").tobytes()
         + b"\x04" + np.array([0, 1, 2, 3], "<i4").tobytes() + b"\x03\0\0", "ends"),
        ("ply_vertex_without_z", ply_header("ascii", "element vertex 4\nproperty float x\n"
                                            "property float y\n" + face_head)
         + ("0 0\n1 0\n0 1\n0 0\n" + faces_ascii).encode(), "x, y or z"),
        ("ply_duplicate_property", ply_header("binary_little_endian", "element vertex 4\n" + _XYZ
                                              + "property float x\n" + face_head)
         + b"\0" * 200, "not a valid ply"),
        ("off_bad_header", b"OFX\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "header"),
        ("off_count_not_number", b"OFF\nthree 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "whole number"),
        ("off_only_header", b"OFF\n", "counts"),
        ("off_index_overflow", b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 99999999999999999999999\n",
         "whole numbers"),
        ("off_short_vertex", b"OFF\n3 1 0\n0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "3 coordinates"),
        ("obj_bad_float", b"v 1.0.0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "must be numbers"),
        ("obj_index_overflow", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99999999999999999999999\n",
         "out of range"),
        ("obj_index_garbage", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 x\n", "whole number"),
        ("obj_huge_float", b"v 1e999 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "non-finite"),
        ("stl_ascii_bad_float", b"solid s\nfacet normal 0 0 1\nouter loop\nvertex 0 0 abc\n"
                                b"vertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid s\n",
         "must be numbers"),
        ("stl_ascii_incomplete", b"solid s\nvertex 0 0 0\nvertex 1 0 0\nendsolid s\n",
         "whole number of triangles"),
    ]


def _degenerate_cases() -> list[tuple]:
    tet = TET_V - 0.25
    return [
        ("tiny_1e-300", obj_text(tet * 1e-300, TET_F), "float32"),
        ("below_float32_1e-42", obj_text(tet * 1e-42, TET_F), "float32"),
        ("huge_1e300", obj_text(tet * 1e300, TET_F), "float32"),
        ("extent_overflows", obj_text(np.array([[-1e308, 0, 0], [1e308, 0, 0], [0, 1e308, 0],
                                                [0, 0, 1e308]]), TET_F), "overflow"),
        ("all_faces_zero_area", obj_text(TET_V, [[0, 0, 1], [1, 2, 2], [3, 3, 3]]), "zero area"),
        ("colinear", obj_text(np.outer(np.arange(4.0), [1.0, 2.0, 3.0]), TET_F), "zero area"),
        ("detail_1e-5_at_1e10", obj_text(1e10 + tet * 1e-5, TET_F), "resolve"),
        ("detail_1e-30_at_1e10", obj_text(1e10 + tet * 1e-30, TET_F), "zero extent"),
    ]


def _valid_cases() -> list[tuple]:
    tet = TET_V - 0.25
    mixed = ply_header("binary_little_endian", "element vertex 5\n" + _XYZ
                       + _FACE.format(n=3, ct="uchar", it="uint"))
    V5 = np.vstack([TET_V, [[1, 1, 0]]]).astype("<f4")
    mixed += V5.tobytes()
    for poly in ([0, 2, 1], [0, 1, 4, 2], [0, 3, 2]):
        mixed += bytes([len(poly)]) + np.array(poly, "<u4").tobytes()
    extra = ply_header("ascii", "element vertex 4\n" + _XYZ + "property list uchar float uv\n"
                       "element edge 1\nproperty int a\nproperty int b\n"
                       + _FACE.format(n=4, ct="uchar", it="int")
                       + "property list uchar float texcoord\nelement empty 0\n")
    extra += ("0 0 0 2 0 0\n1 0 0 0\n0 1 0 1 5\n0 0 1 0\n0 1\n"
              "3 0 2 1 0\n3 0 1 3 2 0.5 0.5\n3.0 0 3 2 0\n3 1 2 3 0\n").encode()
    return [
        ("tiny_1e-20", obj_text(tet * 1e-20, TET_F)),
        ("huge_1e20", obj_text(tet * 1e20, TET_F)),
        ("size_1_at_1000", obj_text(1000 + tet, TET_F)),
        ("georeferenced_size_10_at_5e6", obj_text(5e6 + 10 * tet, TET_F)),   # a UTM-placed scan
        ("ply_binary_mixed_polygons", mixed),
        ("ply_binary_big_endian", _tet_binary_ply(">")),
        ("ply_ascii_extra_elements_and_lists", extra),
        ("off_with_colours", b"OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1 255 0 0\n"
                             b"3 0 1 3 0 255 0\n3 0 3 2 0 0 255\n3 1 2 3 9 9 9\n"),
        ("obj_slashes_and_negative_indices", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nvt 0 0\n"
                                             b"f 1/1 3/1 2/1\nf -4//1 -3//1 -1//1\nf 1 4 3\nf 2 3 4\n"),
    ]


_EXT = {"ply": ".ply", "obj": ".obj", "off": ".off", "stl": ".stl"}


def _path(tmpdir, name: str) -> str:
    prefix = name.split("_", 1)[0]
    return os.path.join(os.fspath(tmpdir), name + _EXT.get(prefix, ".obj"))


def cases(tmpdir) -> list[Case]:
    """Write every hostile mesh file into ``tmpdir``; return their cases (module docstring)."""
    out = []
    groups = [("counts", _count_cases(), "error"), ("malformed", _malformed_cases(), "error"),
              ("degenerate", _degenerate_cases(), "error")]
    for class_name, rows, expected in groups:
        for name, data, needle in rows:
            out.append(_write(tmpdir, name, data, class_name, expected, needle))
    for name, data in _valid_cases():
        out.append(_write(tmpdir, name, data, "valid", "ok", ""))
    return out


def _write(tmpdir, name, data: bytes, class_name, expected, needle) -> Case:
    path = _path(tmpdir, name)
    with open(path, "wb") as fh:
        fh.write(data)
    return Case(name, class_name, path, expected, needle)
