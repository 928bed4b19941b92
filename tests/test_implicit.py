"""Numpy evaluation equals torch; gradients are right; loading and evaluating never import torch."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from core.representation.implicit import Architecture
from core.training.model import StackedMLP
from helpers import ROOT

ARCHS = [Architecture(), Architecture(4, 16, "sine"), Architecture(3, 24, "relu", 4),
         Architecture(2, 64, "sine", 2)]


@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_numpy_equals_torch(arch):
    model = StackedMLP(arch, 1, torch.Generator().manual_seed(1))
    imp = model.to_implicit()
    Q = np.random.default_rng(0).uniform(-1, 1, (5000, 3)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(Q)[None])[0].numpy()
    assert np.abs(imp.evaluate(Q) - ref).max() < 1e-5


@pytest.mark.parametrize("arch", ARCHS, ids=str)
def test_gradient_equals_autograd(arch):
    model = StackedMLP(arch, 1, torch.Generator().manual_seed(2))
    imp = model.to_implicit()
    Q = np.random.default_rng(1).uniform(-1, 1, (500, 3)).astype(np.float32)
    X = torch.from_numpy(Q)[None].requires_grad_(True)
    model(X).sum().backward()
    ref = X.grad[0].numpy()
    scale = max(np.abs(ref).max(), 1e-3)
    assert np.abs(imp.gradient(Q) - ref).max() / scale < 1e-4


def test_stack_round_trip():
    a = StackedMLP(Architecture(3, 8), 2, torch.Generator().manual_seed(3))
    imps = [a.to_implicit(0), a.to_implicit(1)]
    b = StackedMLP.from_implicits(imps)
    Q = np.random.default_rng(2).uniform(-1, 1, (100, 3)).astype(np.float32)
    for j in range(2):
        assert np.allclose(b.to_implicit(j).evaluate(Q), imps[j].evaluate(Q), atol=1e-6)


def test_parameter_count_matches_the_paper():
    assert Architecture(8, 32).parameters == 7553


def test_frames_round_trip():
    from core.meshes.mesh import normalization_transform
    V = np.random.default_rng(3).normal(size=(50, 3)) * 7 + 3
    imp = StackedMLP(Architecture(2, 8), 1).to_implicit(transform=normalization_transform(V))
    assert np.allclose(imp.to_mesh(imp.to_network(V)), V)
    assert np.linalg.norm(imp.to_network(V), axis=1).max() == pytest.approx(0.9)


def test_load_evaluate_and_remesh_without_torch(tmp_path):
    """Torch blocked in a subprocess: loading, evaluating, gradients and remeshing still work."""
    from core.representation.fileformat import save
    path = tmp_path / "net.h5"
    save(StackedMLP(Architecture(2, 16)).to_implicit(), path)
    code = f"""
import sys
sys.modules['torch'] = None
from core.representation.fileformat import load
import numpy as np
imp = load({str(path)!r})
Q = np.zeros((4, 3))
imp.evaluate(Q); imp.gradient(Q)
import core.geometry.remesh, core.geometry.trace, core.geometry.metrics, core.cli
assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
