"""Classic marching cubes (Lorensen & Cline 1987) vectorised over cells with numpy alone.

Why our own: remeshing must run inside Blender, where only numpy exists (no scikit-image, no
PyMCubes). Why the classic 256-case table and not Lewiner's topology-resolving variant: the classic
table is small, well known and, applied with one fixed rule per face, gives closed meshes; every case
and the crack-free joins between neighbouring cells are checked by ``tests/test_marching_cubes.py``.

Conventions
-----------
* A grid of ``(nx, ny, nz)`` sample points; point ``(i, j, k)`` sits at
  ``origin + spacing * (i, j, k)``.
  Cell ``(i, j, k)`` is the cube between points ``(i, j, k)`` and ``(i + 1, j + 1, k + 1)``.
* Negative values are inside, zero and positive outside (the project's sign convention).
* Corners and edges are numbered as in Paul Bourke's "Polygonising a scalar field" (1994): corner
  offsets ``CORNERS``; edge ``e`` joins corners ``EDGES[e]``. Bit ``k`` of a cell's case index is set
  when corner ``k`` is inside.
* Every grid edge crossed by the surface gets **one** vertex, keyed by a unique edge id
  ``3 * point_index + axis`` of its lower end, so triangles of neighbouring cells share vertices and a
  closed surface comes out watertight. The crossing is placed by linear interpolation.
* Triangles are oriented counter-clockwise seen from outside: normals point towards increasing
  values (outwards for a signed distance that is negative inside).

Tables: ``EDGE_TABLE`` and ``TRI_TABLE`` are copied verbatim (``-1`` padding dropped) from Bourke's
tables as distributed in PyMCubes (``mcubes/src/marchingcubes.cpp``, pmneila/PyMCubes).
"""

from __future__ import annotations

import numpy as np

from ..common.errors import InputError

#: Bytes of memory a mesh being built may take by default (``core.geometry.remesh``'s
#: ``max_bytes``). A field whose zero set fills space crosses nearly every cell (27 M triangles and
#: 7 GB at 256^3); real shapes make far fewer triangles, measured on the paper's five networks
#: (tracemalloc): at 256^3 at most 686 k and 290 MB peak, at 512^3 at most 2.76 M (100173_sf.h5, 745
#: MB at :data:`BYTES_PER_TRIANGLE`). 900 MB holds 3.3 M triangles: real shapes at 512^3 pass, and a
#: hostile field is refused before its triangles are built, with the process well below 2 GB.
MESH_MEMORY_BUDGET = 900_000_000

#: Peak bytes per triangle from the crossed cells to the returned mesh: the cells and their corner
#: values, the triangle table lookups, vertex welding and V, F. Measured with tracemalloc on
#: 679615_sf.h5 at 512^3 (530.7 MB for 2.05 M triangles: 259 bytes each), rounded up; a ReLU
#: sawtooth with 2.8 triangles a cell (3.9 M triangles) peaked at 1.02 GB, 260 bytes each.
BYTES_PER_TRIANGLE = 270

#: Corner k of a cell sits at the cell's lower point plus CORNERS[k] (Bourke's numbering).
CORNERS = np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0),
                    (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)], dtype=np.int64)

#: Edge e of a cell joins corners EDGES[e] (Bourke's numbering).
EDGES = np.array([(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
                  (0, 4), (1, 5), (2, 6), (3, 7)], dtype=np.int64)

#: Bit e of EDGE_TABLE[case] is set when edge e joins an inside and an outside corner.
EDGE_TABLE = np.array([
    0x000, 0x109, 0x203, 0x30a, 0x406, 0x50f, 0x605, 0x70c,
    0x80c, 0x905, 0xa0f, 0xb06, 0xc0a, 0xd03, 0xe09, 0xf00,
    0x190, 0x099, 0x393, 0x29a, 0x596, 0x49f, 0x795, 0x69c,
    0x99c, 0x895, 0xb9f, 0xa96, 0xd9a, 0xc93, 0xf99, 0xe90,
    0x230, 0x339, 0x033, 0x13a, 0x636, 0x73f, 0x435, 0x53c,
    0xa3c, 0xb35, 0x83f, 0x936, 0xe3a, 0xf33, 0xc39, 0xd30,
    0x3a0, 0x2a9, 0x1a3, 0x0aa, 0x7a6, 0x6af, 0x5a5, 0x4ac,
    0xbac, 0xaa5, 0x9af, 0x8a6, 0xfaa, 0xea3, 0xda9, 0xca0,
    0x460, 0x569, 0x663, 0x76a, 0x066, 0x16f, 0x265, 0x36c,
    0xc6c, 0xd65, 0xe6f, 0xf66, 0x86a, 0x963, 0xa69, 0xb60,
    0x5f0, 0x4f9, 0x7f3, 0x6fa, 0x1f6, 0x0ff, 0x3f5, 0x2fc,
    0xdfc, 0xcf5, 0xfff, 0xef6, 0x9fa, 0x8f3, 0xbf9, 0xaf0,
    0x650, 0x759, 0x453, 0x55a, 0x256, 0x35f, 0x055, 0x15c,
    0xe5c, 0xf55, 0xc5f, 0xd56, 0xa5a, 0xb53, 0x859, 0x950,
    0x7c0, 0x6c9, 0x5c3, 0x4ca, 0x3c6, 0x2cf, 0x1c5, 0x0cc,
    0xfcc, 0xec5, 0xdcf, 0xcc6, 0xbca, 0xac3, 0x9c9, 0x8c0,
    0x8c0, 0x9c9, 0xac3, 0xbca, 0xcc6, 0xdcf, 0xec5, 0xfcc,
    0x0cc, 0x1c5, 0x2cf, 0x3c6, 0x4ca, 0x5c3, 0x6c9, 0x7c0,
    0x950, 0x859, 0xb53, 0xa5a, 0xd56, 0xc5f, 0xf55, 0xe5c,
    0x15c, 0x055, 0x35f, 0x256, 0x55a, 0x453, 0x759, 0x650,
    0xaf0, 0xbf9, 0x8f3, 0x9fa, 0xef6, 0xfff, 0xcf5, 0xdfc,
    0x2fc, 0x3f5, 0x0ff, 0x1f6, 0x6fa, 0x7f3, 0x4f9, 0x5f0,
    0xb60, 0xa69, 0x963, 0x86a, 0xf66, 0xe6f, 0xd65, 0xc6c,
    0x36c, 0x265, 0x16f, 0x066, 0x76a, 0x663, 0x569, 0x460,
    0xca0, 0xda9, 0xea3, 0xfaa, 0x8a6, 0x9af, 0xaa5, 0xbac,
    0x4ac, 0x5a5, 0x6af, 0x7a6, 0x0aa, 0x1a3, 0x2a9, 0x3a0,
    0xd30, 0xc39, 0xf33, 0xe3a, 0x936, 0x83f, 0xb35, 0xa3c,
    0x53c, 0x435, 0x73f, 0x636, 0x13a, 0x033, 0x339, 0x230,
    0xe90, 0xf99, 0xc93, 0xd9a, 0xa96, 0xb9f, 0x895, 0x99c,
    0x69c, 0x795, 0x49f, 0x596, 0x29a, 0x393, 0x099, 0x190,
    0xf00, 0xe09, 0xd03, 0xc0a, 0xb06, 0xa0f, 0x905, 0x80c,
    0x70c, 0x605, 0x50f, 0x406, 0x30a, 0x203, 0x109, 0x000,
], dtype=np.int64)

# Triangles of each case as triples of edge numbers, Bourke's order (counter-clockwise seen from the
# *inside* with our corner order; ``_TRI`` below reverses them to face outwards).
_TRI_ROWS = (
    (),
    (0, 8, 3),
    (0, 1, 9),
    (1, 8, 3, 9, 8, 1),
    (1, 2, 10),
    (0, 8, 3, 1, 2, 10),
    (9, 2, 10, 0, 2, 9),
    (2, 8, 3, 2, 10, 8, 10, 9, 8),
    (3, 11, 2),
    (0, 11, 2, 8, 11, 0),
    (1, 9, 0, 2, 3, 11),
    (1, 11, 2, 1, 9, 11, 9, 8, 11),
    (3, 10, 1, 11, 10, 3),
    (0, 10, 1, 0, 8, 10, 8, 11, 10),
    (3, 9, 0, 3, 11, 9, 11, 10, 9),
    (9, 8, 10, 10, 8, 11),
    (4, 7, 8),
    (4, 3, 0, 7, 3, 4),
    (0, 1, 9, 8, 4, 7),
    (4, 1, 9, 4, 7, 1, 7, 3, 1),
    (1, 2, 10, 8, 4, 7),
    (3, 4, 7, 3, 0, 4, 1, 2, 10),
    (9, 2, 10, 9, 0, 2, 8, 4, 7),
    (2, 10, 9, 2, 9, 7, 2, 7, 3, 7, 9, 4),
    (8, 4, 7, 3, 11, 2),
    (11, 4, 7, 11, 2, 4, 2, 0, 4),
    (9, 0, 1, 8, 4, 7, 2, 3, 11),
    (4, 7, 11, 9, 4, 11, 9, 11, 2, 9, 2, 1),
    (3, 10, 1, 3, 11, 10, 7, 8, 4),
    (1, 11, 10, 1, 4, 11, 1, 0, 4, 7, 11, 4),
    (4, 7, 8, 9, 0, 11, 9, 11, 10, 11, 0, 3),
    (4, 7, 11, 4, 11, 9, 9, 11, 10),
    (9, 5, 4),
    (9, 5, 4, 0, 8, 3),
    (0, 5, 4, 1, 5, 0),
    (8, 5, 4, 8, 3, 5, 3, 1, 5),
    (1, 2, 10, 9, 5, 4),
    (3, 0, 8, 1, 2, 10, 4, 9, 5),
    (5, 2, 10, 5, 4, 2, 4, 0, 2),
    (2, 10, 5, 3, 2, 5, 3, 5, 4, 3, 4, 8),
    (9, 5, 4, 2, 3, 11),
    (0, 11, 2, 0, 8, 11, 4, 9, 5),
    (0, 5, 4, 0, 1, 5, 2, 3, 11),
    (2, 1, 5, 2, 5, 8, 2, 8, 11, 4, 8, 5),
    (10, 3, 11, 10, 1, 3, 9, 5, 4),
    (4, 9, 5, 0, 8, 1, 8, 10, 1, 8, 11, 10),
    (5, 4, 0, 5, 0, 11, 5, 11, 10, 11, 0, 3),
    (5, 4, 8, 5, 8, 10, 10, 8, 11),
    (9, 7, 8, 5, 7, 9),
    (9, 3, 0, 9, 5, 3, 5, 7, 3),
    (0, 7, 8, 0, 1, 7, 1, 5, 7),
    (1, 5, 3, 3, 5, 7),
    (9, 7, 8, 9, 5, 7, 10, 1, 2),
    (10, 1, 2, 9, 5, 0, 5, 3, 0, 5, 7, 3),
    (8, 0, 2, 8, 2, 5, 8, 5, 7, 10, 5, 2),
    (2, 10, 5, 2, 5, 3, 3, 5, 7),
    (7, 9, 5, 7, 8, 9, 3, 11, 2),
    (9, 5, 7, 9, 7, 2, 9, 2, 0, 2, 7, 11),
    (2, 3, 11, 0, 1, 8, 1, 7, 8, 1, 5, 7),
    (11, 2, 1, 11, 1, 7, 7, 1, 5),
    (9, 5, 8, 8, 5, 7, 10, 1, 3, 10, 3, 11),
    (5, 7, 0, 5, 0, 9, 7, 11, 0, 1, 0, 10, 11, 10, 0),
    (11, 10, 0, 11, 0, 3, 10, 5, 0, 8, 0, 7, 5, 7, 0),
    (11, 10, 5, 7, 11, 5),
    (10, 6, 5),
    (0, 8, 3, 5, 10, 6),
    (9, 0, 1, 5, 10, 6),
    (1, 8, 3, 1, 9, 8, 5, 10, 6),
    (1, 6, 5, 2, 6, 1),
    (1, 6, 5, 1, 2, 6, 3, 0, 8),
    (9, 6, 5, 9, 0, 6, 0, 2, 6),
    (5, 9, 8, 5, 8, 2, 5, 2, 6, 3, 2, 8),
    (2, 3, 11, 10, 6, 5),
    (11, 0, 8, 11, 2, 0, 10, 6, 5),
    (0, 1, 9, 2, 3, 11, 5, 10, 6),
    (5, 10, 6, 1, 9, 2, 9, 11, 2, 9, 8, 11),
    (6, 3, 11, 6, 5, 3, 5, 1, 3),
    (0, 8, 11, 0, 11, 5, 0, 5, 1, 5, 11, 6),
    (3, 11, 6, 0, 3, 6, 0, 6, 5, 0, 5, 9),
    (6, 5, 9, 6, 9, 11, 11, 9, 8),
    (5, 10, 6, 4, 7, 8),
    (4, 3, 0, 4, 7, 3, 6, 5, 10),
    (1, 9, 0, 5, 10, 6, 8, 4, 7),
    (10, 6, 5, 1, 9, 7, 1, 7, 3, 7, 9, 4),
    (6, 1, 2, 6, 5, 1, 4, 7, 8),
    (1, 2, 5, 5, 2, 6, 3, 0, 4, 3, 4, 7),
    (8, 4, 7, 9, 0, 5, 0, 6, 5, 0, 2, 6),
    (7, 3, 9, 7, 9, 4, 3, 2, 9, 5, 9, 6, 2, 6, 9),
    (3, 11, 2, 7, 8, 4, 10, 6, 5),
    (5, 10, 6, 4, 7, 2, 4, 2, 0, 2, 7, 11),
    (0, 1, 9, 4, 7, 8, 2, 3, 11, 5, 10, 6),
    (9, 2, 1, 9, 11, 2, 9, 4, 11, 7, 11, 4, 5, 10, 6),
    (8, 4, 7, 3, 11, 5, 3, 5, 1, 5, 11, 6),
    (5, 1, 11, 5, 11, 6, 1, 0, 11, 7, 11, 4, 0, 4, 11),
    (0, 5, 9, 0, 6, 5, 0, 3, 6, 11, 6, 3, 8, 4, 7),
    (6, 5, 9, 6, 9, 11, 4, 7, 9, 7, 11, 9),
    (10, 4, 9, 6, 4, 10),
    (4, 10, 6, 4, 9, 10, 0, 8, 3),
    (10, 0, 1, 10, 6, 0, 6, 4, 0),
    (8, 3, 1, 8, 1, 6, 8, 6, 4, 6, 1, 10),
    (1, 4, 9, 1, 2, 4, 2, 6, 4),
    (3, 0, 8, 1, 2, 9, 2, 4, 9, 2, 6, 4),
    (0, 2, 4, 4, 2, 6),
    (8, 3, 2, 8, 2, 4, 4, 2, 6),
    (10, 4, 9, 10, 6, 4, 11, 2, 3),
    (0, 8, 2, 2, 8, 11, 4, 9, 10, 4, 10, 6),
    (3, 11, 2, 0, 1, 6, 0, 6, 4, 6, 1, 10),
    (6, 4, 1, 6, 1, 10, 4, 8, 1, 2, 1, 11, 8, 11, 1),
    (9, 6, 4, 9, 3, 6, 9, 1, 3, 11, 6, 3),
    (8, 11, 1, 8, 1, 0, 11, 6, 1, 9, 1, 4, 6, 4, 1),
    (3, 11, 6, 3, 6, 0, 0, 6, 4),
    (6, 4, 8, 11, 6, 8),
    (7, 10, 6, 7, 8, 10, 8, 9, 10),
    (0, 7, 3, 0, 10, 7, 0, 9, 10, 6, 7, 10),
    (10, 6, 7, 1, 10, 7, 1, 7, 8, 1, 8, 0),
    (10, 6, 7, 10, 7, 1, 1, 7, 3),
    (1, 2, 6, 1, 6, 8, 1, 8, 9, 8, 6, 7),
    (2, 6, 9, 2, 9, 1, 6, 7, 9, 0, 9, 3, 7, 3, 9),
    (7, 8, 0, 7, 0, 6, 6, 0, 2),
    (7, 3, 2, 6, 7, 2),
    (2, 3, 11, 10, 6, 8, 10, 8, 9, 8, 6, 7),
    (2, 0, 7, 2, 7, 11, 0, 9, 7, 6, 7, 10, 9, 10, 7),
    (1, 8, 0, 1, 7, 8, 1, 10, 7, 6, 7, 10, 2, 3, 11),
    (11, 2, 1, 11, 1, 7, 10, 6, 1, 6, 7, 1),
    (8, 9, 6, 8, 6, 7, 9, 1, 6, 11, 6, 3, 1, 3, 6),
    (0, 9, 1, 11, 6, 7),
    (7, 8, 0, 7, 0, 6, 3, 11, 0, 11, 6, 0),
    (7, 11, 6),
    (7, 6, 11),
    (3, 0, 8, 11, 7, 6),
    (0, 1, 9, 11, 7, 6),
    (8, 1, 9, 8, 3, 1, 11, 7, 6),
    (10, 1, 2, 6, 11, 7),
    (1, 2, 10, 3, 0, 8, 6, 11, 7),
    (2, 9, 0, 2, 10, 9, 6, 11, 7),
    (6, 11, 7, 2, 10, 3, 10, 8, 3, 10, 9, 8),
    (7, 2, 3, 6, 2, 7),
    (7, 0, 8, 7, 6, 0, 6, 2, 0),
    (2, 7, 6, 2, 3, 7, 0, 1, 9),
    (1, 6, 2, 1, 8, 6, 1, 9, 8, 8, 7, 6),
    (10, 7, 6, 10, 1, 7, 1, 3, 7),
    (10, 7, 6, 1, 7, 10, 1, 8, 7, 1, 0, 8),
    (0, 3, 7, 0, 7, 10, 0, 10, 9, 6, 10, 7),
    (7, 6, 10, 7, 10, 8, 8, 10, 9),
    (6, 8, 4, 11, 8, 6),
    (3, 6, 11, 3, 0, 6, 0, 4, 6),
    (8, 6, 11, 8, 4, 6, 9, 0, 1),
    (9, 4, 6, 9, 6, 3, 9, 3, 1, 11, 3, 6),
    (6, 8, 4, 6, 11, 8, 2, 10, 1),
    (1, 2, 10, 3, 0, 11, 0, 6, 11, 0, 4, 6),
    (4, 11, 8, 4, 6, 11, 0, 2, 9, 2, 10, 9),
    (10, 9, 3, 10, 3, 2, 9, 4, 3, 11, 3, 6, 4, 6, 3),
    (8, 2, 3, 8, 4, 2, 4, 6, 2),
    (0, 4, 2, 4, 6, 2),
    (1, 9, 0, 2, 3, 4, 2, 4, 6, 4, 3, 8),
    (1, 9, 4, 1, 4, 2, 2, 4, 6),
    (8, 1, 3, 8, 6, 1, 8, 4, 6, 6, 10, 1),
    (10, 1, 0, 10, 0, 6, 6, 0, 4),
    (4, 6, 3, 4, 3, 8, 6, 10, 3, 0, 3, 9, 10, 9, 3),
    (10, 9, 4, 6, 10, 4),
    (4, 9, 5, 7, 6, 11),
    (0, 8, 3, 4, 9, 5, 11, 7, 6),
    (5, 0, 1, 5, 4, 0, 7, 6, 11),
    (11, 7, 6, 8, 3, 4, 3, 5, 4, 3, 1, 5),
    (9, 5, 4, 10, 1, 2, 7, 6, 11),
    (6, 11, 7, 1, 2, 10, 0, 8, 3, 4, 9, 5),
    (7, 6, 11, 5, 4, 10, 4, 2, 10, 4, 0, 2),
    (3, 4, 8, 3, 5, 4, 3, 2, 5, 10, 5, 2, 11, 7, 6),
    (7, 2, 3, 7, 6, 2, 5, 4, 9),
    (9, 5, 4, 0, 8, 6, 0, 6, 2, 6, 8, 7),
    (3, 6, 2, 3, 7, 6, 1, 5, 0, 5, 4, 0),
    (6, 2, 8, 6, 8, 7, 2, 1, 8, 4, 8, 5, 1, 5, 8),
    (9, 5, 4, 10, 1, 6, 1, 7, 6, 1, 3, 7),
    (1, 6, 10, 1, 7, 6, 1, 0, 7, 8, 7, 0, 9, 5, 4),
    (4, 0, 10, 4, 10, 5, 0, 3, 10, 6, 10, 7, 3, 7, 10),
    (7, 6, 10, 7, 10, 8, 5, 4, 10, 4, 8, 10),
    (6, 9, 5, 6, 11, 9, 11, 8, 9),
    (3, 6, 11, 0, 6, 3, 0, 5, 6, 0, 9, 5),
    (0, 11, 8, 0, 5, 11, 0, 1, 5, 5, 6, 11),
    (6, 11, 3, 6, 3, 5, 5, 3, 1),
    (1, 2, 10, 9, 5, 11, 9, 11, 8, 11, 5, 6),
    (0, 11, 3, 0, 6, 11, 0, 9, 6, 5, 6, 9, 1, 2, 10),
    (11, 8, 5, 11, 5, 6, 8, 0, 5, 10, 5, 2, 0, 2, 5),
    (6, 11, 3, 6, 3, 5, 2, 10, 3, 10, 5, 3),
    (5, 8, 9, 5, 2, 8, 5, 6, 2, 3, 8, 2),
    (9, 5, 6, 9, 6, 0, 0, 6, 2),
    (1, 5, 8, 1, 8, 0, 5, 6, 8, 3, 8, 2, 6, 2, 8),
    (1, 5, 6, 2, 1, 6),
    (1, 3, 6, 1, 6, 10, 3, 8, 6, 5, 6, 9, 8, 9, 6),
    (10, 1, 0, 10, 0, 6, 9, 5, 0, 5, 6, 0),
    (0, 3, 8, 5, 6, 10),
    (10, 5, 6),
    (11, 5, 10, 7, 5, 11),
    (11, 5, 10, 11, 7, 5, 8, 3, 0),
    (5, 11, 7, 5, 10, 11, 1, 9, 0),
    (10, 7, 5, 10, 11, 7, 9, 8, 1, 8, 3, 1),
    (11, 1, 2, 11, 7, 1, 7, 5, 1),
    (0, 8, 3, 1, 2, 7, 1, 7, 5, 7, 2, 11),
    (9, 7, 5, 9, 2, 7, 9, 0, 2, 2, 11, 7),
    (7, 5, 2, 7, 2, 11, 5, 9, 2, 3, 2, 8, 9, 8, 2),
    (2, 5, 10, 2, 3, 5, 3, 7, 5),
    (8, 2, 0, 8, 5, 2, 8, 7, 5, 10, 2, 5),
    (9, 0, 1, 5, 10, 3, 5, 3, 7, 3, 10, 2),
    (9, 8, 2, 9, 2, 1, 8, 7, 2, 10, 2, 5, 7, 5, 2),
    (1, 3, 5, 3, 7, 5),
    (0, 8, 7, 0, 7, 1, 1, 7, 5),
    (9, 0, 3, 9, 3, 5, 5, 3, 7),
    (9, 8, 7, 5, 9, 7),
    (5, 8, 4, 5, 10, 8, 10, 11, 8),
    (5, 0, 4, 5, 11, 0, 5, 10, 11, 11, 3, 0),
    (0, 1, 9, 8, 4, 10, 8, 10, 11, 10, 4, 5),
    (10, 11, 4, 10, 4, 5, 11, 3, 4, 9, 4, 1, 3, 1, 4),
    (2, 5, 1, 2, 8, 5, 2, 11, 8, 4, 5, 8),
    (0, 4, 11, 0, 11, 3, 4, 5, 11, 2, 11, 1, 5, 1, 11),
    (0, 2, 5, 0, 5, 9, 2, 11, 5, 4, 5, 8, 11, 8, 5),
    (9, 4, 5, 2, 11, 3),
    (2, 5, 10, 3, 5, 2, 3, 4, 5, 3, 8, 4),
    (5, 10, 2, 5, 2, 4, 4, 2, 0),
    (3, 10, 2, 3, 5, 10, 3, 8, 5, 4, 5, 8, 0, 1, 9),
    (5, 10, 2, 5, 2, 4, 1, 9, 2, 9, 4, 2),
    (8, 4, 5, 8, 5, 3, 3, 5, 1),
    (0, 4, 5, 1, 0, 5),
    (8, 4, 5, 8, 5, 3, 9, 0, 5, 0, 3, 5),
    (9, 4, 5),
    (4, 11, 7, 4, 9, 11, 9, 10, 11),
    (0, 8, 3, 4, 9, 7, 9, 11, 7, 9, 10, 11),
    (1, 10, 11, 1, 11, 4, 1, 4, 0, 7, 4, 11),
    (3, 1, 4, 3, 4, 8, 1, 10, 4, 7, 4, 11, 10, 11, 4),
    (4, 11, 7, 9, 11, 4, 9, 2, 11, 9, 1, 2),
    (9, 7, 4, 9, 11, 7, 9, 1, 11, 2, 11, 1, 0, 8, 3),
    (11, 7, 4, 11, 4, 2, 2, 4, 0),
    (11, 7, 4, 11, 4, 2, 8, 3, 4, 3, 2, 4),
    (2, 9, 10, 2, 7, 9, 2, 3, 7, 7, 4, 9),
    (9, 10, 7, 9, 7, 4, 10, 2, 7, 8, 7, 0, 2, 0, 7),
    (3, 7, 10, 3, 10, 2, 7, 4, 10, 1, 10, 0, 4, 0, 10),
    (1, 10, 2, 8, 7, 4),
    (4, 9, 1, 4, 1, 7, 7, 1, 3),
    (4, 9, 1, 4, 1, 7, 0, 8, 1, 8, 7, 1),
    (4, 0, 3, 7, 4, 3),
    (4, 8, 7),
    (9, 10, 8, 10, 11, 8),
    (3, 0, 9, 3, 9, 11, 11, 9, 10),
    (0, 1, 10, 0, 10, 8, 8, 10, 11),
    (3, 1, 10, 11, 3, 10),
    (1, 2, 11, 1, 11, 9, 9, 11, 8),
    (3, 0, 9, 3, 9, 11, 1, 2, 9, 2, 11, 9),
    (0, 2, 11, 8, 0, 11),
    (3, 2, 11),
    (2, 3, 8, 2, 8, 10, 10, 8, 9),
    (9, 10, 2, 0, 9, 2),
    (2, 3, 8, 2, 8, 10, 0, 1, 8, 1, 10, 8),
    (1, 10, 2),
    (1, 3, 8, 9, 1, 8),
    (0, 9, 1),
    (0, 3, 8),
    (),
)

#: (256, 16) int64: Bourke's triangle table, edge triples per case, padded with -1.
TRI_TABLE = np.full((256, 16), -1, dtype=np.int64)
for _case, _row in enumerate(_TRI_ROWS):
    TRI_TABLE[_case, :len(_row)] = _row
del _case, _row

# Derived lookup arrays (computed once from the tables above).
# For each edge: the corner at its lower end (smaller coordinates), the one at its upper end, and the
# axis it runs along; the welded vertex of a grid edge is keyed by its lower point and axis.
_LOWER = np.where(CORNERS[EDGES[:, 0]].sum(1) < CORNERS[EDGES[:, 1]].sum(1), EDGES[:, 0], EDGES[:, 1])
_UPPER = np.where(_LOWER == EDGES[:, 0], EDGES[:, 1], EDGES[:, 0])
_AXIS = np.argmax(CORNERS[_UPPER] - CORNERS[_LOWER], axis=1)
# Triangles per case, reversed (c, b, a) so that normals point from negative towards positive values;
# slots past the case's triangle count are -1. Shape (256, 5, 3).
_TRI = TRI_TABLE[:, :15].reshape(256, 5, 3)[:, :, ::-1].copy()
#: (256,) int64: triangles of each case.
TRIANGLES_PER_CASE = (_TRI[:, :, 0] >= 0).sum(1)


def case_index(corner_values: np.ndarray) -> np.ndarray:
    """Case index of each cell: bit k set when corner k is inside (value < 0).

    corner_values : (c, 8) values at the cells' corners in ``CORNERS`` order. Returns (c,) int64.
    """
    inside = np.asarray(corner_values).reshape(-1, 8) < 0
    return np.packbits(inside, axis=1, bitorder="little").reshape(-1).astype(np.int64)


def triangulate_cells(cells: np.ndarray, corner_values: np.ndarray, shape
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on a given set of cells of a grid; the building block of dense and sparse meshing.

    Parameters
    ----------
    cells : (c, 3) int, the lower point index ``(i, j, k)`` of each cell; each cell at most once.
    corner_values : (c, 8) float, the values at the cells' corners in ``CORNERS`` order. Cells that
        share a grid edge must carry the same values at its ends (they come from one grid), so the
        welded vertex has one position.
    shape : (nx, ny, nz), point counts of the grid, used only to number grid edges uniquely.

    Returns
    -------
    V : (n, 3) float64, vertices in grid index units (add ``origin``/multiply ``spacing`` yourself).
        One vertex per crossed grid edge, ordered by edge id, so equal inputs give equal outputs
        whatever subset of empty cells was passed in.
    F : (m, 3) int64, outward triangles, ordered as the cells were given, then by table order.
        Empty arrays when no cell is crossed.
    """
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 3)
    values = np.asarray(corner_values, dtype=np.float64).reshape(-1, 8)
    if len(cells) != len(values):
        raise InputError(f"cells and corner_values must have the same length, got {len(cells)} "
                         f"and {len(values)}")
    nx, ny, nz = (int(s) for s in shape)
    case = case_index(values)
    counts = TRIANGLES_PER_CASE[case]
    cell_of = np.repeat(np.arange(len(case)), counts)           # by cell, then table order
    if len(cell_of) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    slot = np.arange(len(cell_of)) - np.repeat(np.cumsum(counts) - counts, counts)
    E = _TRI[case[cell_of], slot]                               # (m, 3) local edge numbers
    corner_id = CORNERS @ np.array([ny * nz, nz, 1], dtype=np.int64)   # point index offset per corner
    cell_id = cells @ np.array([ny * nz, nz, 1], dtype=np.int64)
    edge_id = (cell_id[cell_of][:, None] + corner_id[_LOWER[E]]) * 3 + _AXIS[E]
    uid, first, inverse = unique_keys(edge_id.ravel())
    F = inverse.reshape(-1, 3)
    # crossing on each distinct edge, from any one cell that holds it (all agree)
    owner = cell_of[first // 3]
    local = E.ravel()[first]
    f0 = values[owner, _LOWER[local]]
    f1 = values[owner, _UPPER[local]]
    t = f0 / (f0 - f1)                                          # signs differ, so f0 != f1
    point, axis = np.divmod(uid, 3)
    V = np.stack(np.unravel_index(point, (nx, ny, nz)), axis=1).astype(np.float64)
    V[np.arange(len(V)), axis] += t
    return V, F


def argsort_keys(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for non-negative int64 keys (m,), about twice as fast as
    numpy's unstable argsort: each key is packed with its index into one int64 (key in the high bits)
    and the packed values sorted, which numpy does with SIMD; ties come out in index order. Falls
    back to numpy's stable argsort when key and index do not fit in 63 bits together."""
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    m = len(keys)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    bits = max(1, int(m - 1).bit_length())
    if int(keys.max()).bit_length() + bits > 63 or int(keys.min()) < 0:
        return np.argsort(keys, kind="stable")
    packed = (keys << bits) | np.arange(m, dtype=np.int64)
    packed.sort()
    return packed & ((1 << bits) - 1)


def unique_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(keys, return_index=True, return_inverse=True)`` for non-negative int64 keys (the
    index of each key's first occurrence), with :func:`argsort_keys`'s faster sort."""
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    order = argsort_keys(keys)
    ordered = keys[order]
    new = np.empty(len(keys), dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    inverse = np.empty(len(keys), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], order[new], inverse


def grid_cells(values: np.ndarray, crossed_only: bool = True, max_bytes: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Cells of a dense grid with their corner values: those the surface crosses, or all of them.

    values : (nx, ny, nz) float. Returns cells (c, 3) int64 (lower point index) in C order and
    corner_values (c, 8) in ``CORNERS`` order. With ``max_bytes``, the triangles of the crossed
    cells are counted first and an InputError is raised when they (:data:`BYTES_PER_TRIANGLE` each)
    would take more, before anything per cell is built.
    """
    nx, ny, nz = values.shape
    if crossed_only:
        inside = values < 0
        case = np.zeros((nx - 1, ny - 1, nz - 1), dtype=np.uint8)
        for k, (a, b, c) in enumerate(CORNERS):
            case |= inside[a:nx - 1 + a, b:ny - 1 + b, c:nz - 1 + c].astype(np.uint8) << k
        crossed = (case != 0) & (case != 255)
        if max_bytes is not None:
            check_mesh_size(int(TRIANGLES_PER_CASE[case[crossed]].sum()), values.shape, max_bytes)
        del case
        cells = np.argwhere(crossed)
    else:
        cells = np.argwhere(np.ones((nx - 1, ny - 1, nz - 1), dtype=bool))
    corner_values = np.stack([values[cells[:, 0] + a, cells[:, 1] + b, cells[:, 2] + c]
                              for a, b, c in CORNERS], axis=1)
    return cells.astype(np.int64), corner_values


def triangle_count(corner_values: np.ndarray) -> int:
    """Triangles marching cubes makes for cells with these (c, 8) corner values, without making
    them: what the memory checks count."""
    return int(TRIANGLES_PER_CASE[case_index(corner_values)].sum())


def check_mesh_size(triangles: int, shape, max_bytes: int | None) -> None:
    """Refuse a mesh of ``triangles`` on a grid of ``shape`` points when it would take more than
    ``max_bytes`` (None: no limit)."""
    need = triangles * BYTES_PER_TRIANGLE
    if max_bytes is not None and need > max_bytes:
        grid = " x ".join(str(int(s) - 1) for s in shape)
        raise InputError(f"the surface makes {triangles:,} triangles on the {grid} grid: about "
                         f"{need / 1e9:.1f} GB of mesh, over the {max_bytes / 1e9:.1f} GB budget; "
                         "lower the resolution (a zero set this large fills space)")


def marching_cubes(values: np.ndarray, origin=(0.0, 0.0, 0.0), spacing: float = 1.0,
                   max_bytes: int | None = MESH_MEMORY_BUDGET) -> tuple[np.ndarray, np.ndarray]:
    """Triangle mesh of the zero level set of a dense grid of values.

    Parameters
    ----------
    values : (nx, ny, nz) float, samples of a field that is negative inside; each size >= 2.
    origin : (3,) position of point (0, 0, 0); spacing : distance between neighbouring points.
    max_bytes : memory the mesh may take (:data:`MESH_MEMORY_BUDGET`; None: no limit).

    Returns
    -------
    V : (n, 3) float64 in the frame of ``origin``/``spacing``; F : (m, 3) int64, counter-clockwise seen
    from outside (normals towards positive values). Watertight when the level set is closed inside
    the grid (no negative value on the grid's boundary).

    Raises
    ------
    InputError
        if ``values`` is not a finite 3-D array of at least 2 points per axis, it never changes
        sign (no surface: an empty mesh is never returned silently), or the mesh would take more
        than ``max_bytes``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or min(values.shape) < 2:
        raise InputError(f"values must be a 3-D grid with at least 2 points per axis, got shape "
                         f"{values.shape}")
    bad = values.size - int(np.count_nonzero(np.isfinite(values)))
    if bad:
        raise InputError(f"values contain NaN or infinity at {bad:,} of {values.size:,} grid points")
    origin = np.asarray(origin, dtype=np.float64).reshape(3)
    cells, corner_values = grid_cells(values, max_bytes=max_bytes)
    if len(cells) == 0:
        raise InputError("marching cubes found no surface: the values never change sign")
    V, F = triangulate_cells(cells, corner_values, values.shape)
    return origin + float(spacing) * V, F
