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
    """A closed, outward-oriented sphere mesh built in code (core.mesh.icosphere)."""
    from core.mesh import icosphere as make
    return make(subdivisions, radius)
