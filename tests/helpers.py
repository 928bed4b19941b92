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
    """A closed, outward-oriented sphere mesh built in code (core.meshes.mesh.icosphere)."""
    from core.meshes.mesh import icosphere as make
    return make(subdivisions, radius)


def trained_ball(n: int, radius: float = 0.5):
    """A 3 x 32 ReLU network fitted to |x| - radius in a few seconds (network frame = mesh frame):
    ``n`` uniform points in the ball plus ``n`` points near the sphere, 30 epochs, one torch thread
    (two threads on a busy 2-core machine spin-wait)."""
    import torch

    from core.representation.implicit import Architecture
    from core.samples.sampling import uniform_ball
    from core.training.model import StackedMLP
    from core.training.train import TrainConfig, train

    rng = np.random.default_rng(0)
    d = rng.standard_normal((n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    X = np.concatenate([uniform_ball(n, rng), d * (radius + 0.03 * rng.standard_normal((n, 1)))])
    X = X.astype(np.float32)
    y = (np.linalg.norm(X, axis=1) - radius).astype(np.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = StackedMLP(Architecture(layers=3, hidden=32), 1, torch.Generator().manual_seed(0))
        train(model, torch.from_numpy(X)[None], torch.from_numpy(y)[None],
              TrainConfig(epochs=30, lr=3e-3, batch_size=1024), seed=0)
    finally:
        torch.set_num_threads(threads)
    return model.to_implicit(0)
