"""Paths and small builders shared by the core tests (no fixtures with hidden state)."""

import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, os.pardir, "shared"))
MESHES = os.path.join(SHARED, "meshes")
PAPER_WEIGHTS = os.path.join(SHARED, "paper-weights")
MESH_EXTENSIONS = (".obj", ".off", ".ply", ".stl")


def shared_meshes():
    """Every mesh file in ../shared/meshes, sorted."""
    return sorted(os.path.join(MESHES, f) for f in os.listdir(MESHES)
                  if f.lower().endswith(MESH_EXTENSIONS))


def mesh_path(name):
    return os.path.join(MESHES, name)


def tetrahedron():
    """A closed, outward-oriented tetrahedron (V, F), libigl's smoke-test mesh."""
    V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return V, F


def icosphere(subdivisions=3, radius=1.0):
    """A closed, outward-oriented sphere mesh built in code."""
    t = (1 + 5 ** 0.5) / 2
    V = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t],
         [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]
    F = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
         [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    V = np.array(V, dtype=float)
    F = np.array(F)
    for _ in range(subdivisions):
        edges = {}
        newF = []
        Vl = list(V)

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in edges:
                edges[key] = len(Vl)
                Vl.append((Vl[a] + Vl[b]) / 2)
            return edges[key]
        for a, b, c in F:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            newF += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        V = np.array(Vl)
        F = np.array(newF)
    V = V / np.linalg.norm(V, axis=1, keepdims=True) * radius
    return V, F
