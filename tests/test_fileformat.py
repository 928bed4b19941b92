"""The .h5 format: bit-exact round trips, every storage, and clear rejection of bad files."""

import json

import h5py
import numpy as np
import pytest
import torch

from core.common.errors import FileFormatError, InputError
from core.representation.fileformat import FORMAT_VERSION, from_bytes, load, save, to_bytes
from core.representation.implicit import Architecture
from core.representation.quantize import with_storage
from core.training.model import StackedMLP


def _implicit(arch=Architecture(), seed=0):
    imp = StackedMLP(arch, 1, torch.Generator().manual_seed(seed)).to_implicit()
    imp.transform = np.diag([2.0, 2.0, 2.0, 1.0])
    imp.transform[:3, 3] = [0.1, -0.2, 0.3]
    imp.metadata = {"source": "test", "surface_error": 0.001}
    return imp


@pytest.mark.parametrize("arch", [Architecture(), Architecture(3, 20, "sine", 3)], ids=str)
def test_float32_round_trip_is_bit_exact(tmp_path, arch):
    imp = _implicit(arch)
    save(imp, tmp_path / "a.h5")
    back = load(tmp_path / "a.h5")
    assert back.architecture == imp.architecture
    for W, W2, b, b2 in zip(imp.weights, back.weights, imp.biases, back.biases):
        assert np.array_equal(W, W2) and np.array_equal(b, b2)
    assert np.array_equal(back.transform, imp.transform)
    assert back.metadata == imp.metadata


@pytest.mark.parametrize("storage,tol", [("float16", 2e-3), ("int8", 2e-2)])
def test_reduced_precision(tmp_path, storage, tol):
    imp = _implicit()
    q = with_storage(imp, storage)
    save(q, tmp_path / "q.h5")
    back = load(tmp_path / "q.h5")
    Q = np.random.default_rng(0).uniform(-1, 1, (2000, 3))
    assert np.array_equal(back.evaluate(Q), q.evaluate(Q))       # reader sees what writer evaluated
    assert np.abs(back.evaluate(Q) - imp.evaluate(Q)).max() < tol
    assert back.storage == storage and back.weight_bytes < imp.weight_bytes


def test_weight_bytes_counts_every_number():
    imp = _implicit()
    assert imp.weight_bytes == 7553 * 4 + 128      # float32 parameters + 4x4 float64 transform


def test_save_is_atomic(tmp_path):
    save(_implicit(), tmp_path / "a.h5")
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]


def _corrupt(tmp_path, edit):
    p = tmp_path / "x.h5"
    save(_implicit(), p)
    with h5py.File(p, "r+") as f:
        edit(f)
    return p


@pytest.mark.parametrize("edit,needle", [
    (lambda f: f.attrs.__setitem__("format_version", FORMAT_VERSION + 1), "newer version"),
    (lambda f: f.attrs.__setitem__("format", "something-else"), "not a neural implicit"),
    (lambda f: f.attrs.__setitem__("architecture", "{not json"), "not valid JSON"),
    (lambda f: f.attrs.__setitem__("architecture", json.dumps({"layers": 3, "hidden": 32,
                                   "activation": "relu", "encoding_frequencies": 0})), "layers"),
    (lambda f: f.attrs.__setitem__("architecture", json.dumps({"layers": 8, "hidden": 32,
                                   "activation": "gelu", "encoding_frequencies": 0})), "activation"),
    (lambda f: f.attrs.__setitem__("storage", "int4"), "unknown storage"),
    (lambda f: f["layers/3/W"].__setitem__((0, 0), 123.0), "checksum"),
    (lambda f: f.__delitem__("transform"), "transform"),
    (lambda f: f.__delitem__("layers/8"), "need 9 stored layers"),
    (lambda f: f.attrs.__delitem__("checksum"), "checksum"),
])
def test_bad_files_are_rejected(tmp_path, edit, needle):
    p = _corrupt(tmp_path, edit)
    with pytest.raises(FileFormatError, match=needle):
        load(p)
    with pytest.raises(FileFormatError, match=needle):      # the same boundary for bytes
        from_bytes(p.read_bytes(), "stored")


@pytest.mark.parametrize("storage", ["float32", "int8"])
def test_bytes_round_trip(tmp_path, storage):
    """to_bytes/from_bytes: no file involved, the same network and metadata as save/load."""
    imp = with_storage(_implicit(), storage)
    save(imp, tmp_path / "a.h5")
    a, b = load(tmp_path / "a.h5"), from_bytes(to_bytes(imp))
    assert (a.architecture, a.storage, a.metadata) == (b.architecture, b.storage, b.metadata)
    assert np.array_equal(a.transform, b.transform)
    assert all(np.array_equal(x, y) for x, y in zip(a.weights + a.biases, b.weights + b.biases))
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]
    imp.transform = np.diag([1.0, 2.0, 1.0, 1.0])
    with pytest.raises(InputError, match="similarity"):
        to_bytes(imp)


def test_truncated_file(tmp_path):
    p = tmp_path / "t.h5"
    save(_implicit(), p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="truncated"):
        load(p)


def test_not_hdf5(tmp_path):
    p = tmp_path / "n.h5"
    p.write_text("hello")
    with pytest.raises(FileFormatError, match="not an HDF5"):
        load(p)


def test_paper_file_is_recognised():
    from helpers import PAPER_WEIGHTS
    with pytest.raises(FileFormatError, match="import-paper"):
        load(f"{PAPER_WEIGHTS}/50736_sf.h5")


def test_the_documented_reader_evaluates_a_file_of_several_networks(tmp_path, monkeypatch):
    """docs/file-format.md's Python reader (h5py and numpy only) gives the reference's values on a
    version 2 file (two networks, the shape their union), so the page cannot drift from the code."""
    import os

    from core.representation.fileformat import save
    from core.representation.implicit import Implicit
    from core.representation.layout import Architecture

    doc = open(os.path.join(os.path.dirname(__file__), os.pardir, "docs", "file-format.md")).read()
    code = doc.split("Python without this project:")[1].split("```python")[1].split("```")[0]
    arch = Architecture(3, 16, "relu", 0)
    rng = np.random.default_rng(0)

    def network():
        return ([rng.normal(size=s).astype(np.float32) * 0.5 for s in arch.layer_shapes()],
                [rng.normal(size=s[0]).astype(np.float32) * 0.1 for s in arch.layer_shapes()])

    imp = Implicit(arch, *network(), np.diag([2.0, 2.0, 2.0, 1.0]), members=[network()])
    save(imp, tmp_path / "bunny.h5")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(code, namespace)
    P = rng.uniform(-0.5, 0.5, (200, 3))
    assert np.allclose(namespace["sdf"](P), imp.evaluate_mesh_frame(P) * 2.0, atol=1e-6)
    assert not np.allclose(imp.network(0).evaluate_mesh_frame(P), imp.evaluate_mesh_frame(P))
