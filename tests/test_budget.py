"""Budget mode (core/training/budget.py) and its refinements (core/training/refine.py): the bytes
fit, the network is as wide as fits, quantisation-aware training computes exactly what the file will
hold."""

import json

import numpy as np
import pytest
import torch

from core.cli import main
from core.common.errors import InputError
from core.common.settings import ConversionSettings
from core.meshes.mesh import mesh_from_arrays
from core.representation.implicit import Architecture
from core.representation.quantize import with_storage
from core.samples.sampling import SampleSet, SignedDistance
from core.training import budget
from core.training.budget import architecture_bytes, convert_to_budget, plan, widest
from core.training.convert import convert_mesh
from core.training.convert import training_set
from core.training.model import StackedMLP
from core.training.refine import ErrorResampler, Refinements, quantizer
from helpers import icosphere

FAST = ConversionSettings(pool=100_000, samples=20_000, batch_size=1024, threads=1)


def sphere_mesh():
    V, F = icosphere(3, 1.0)
    return mesh_from_arrays(V, F, name="sphere")


@pytest.mark.parametrize("storage", ["float32", "float16", "int8"])
@pytest.mark.parametrize("arch", [Architecture(4, 16), Architecture(2, 7, "relu", 3),
                                  Architecture(3, 10, "sine")])
def test_architecture_bytes_equal_the_stored_size(arch, storage):
    gen = torch.Generator().manual_seed(0)
    imp = with_storage(StackedMLP(arch, 1, gen).to_implicit(0), storage)
    assert architecture_bytes(arch, storage) == imp.weight_bytes


@pytest.mark.parametrize("n", [900, 5_000, 30_000, 100_000])
def test_plan_fits_and_is_the_widest(n):
    a = plan(n)
    assert architecture_bytes(a, budget.STORAGE) <= n
    wider = Architecture(a.layers, a.hidden + 1, a.activation, a.encoding_frequencies)
    assert architecture_bytes(wider, budget.STORAGE) > n
    assert a.layers == budget.DEPTH


def test_small_budgets_get_fewer_layers_then_an_error():
    a = plan(300)
    assert a.layers < budget.DEPTH and architecture_bytes(a, budget.STORAGE) <= 300
    with pytest.raises(InputError, match="too small"):
        plan(100)                    # the 128-byte transform alone does not fit
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="budget"):
            plan(bad)


def test_widest_returns_none_when_nothing_fits():
    assert widest(10, 4) is None


def test_convert_to_budget_fits_and_records_the_choice():
    r = convert_to_budget(sphere_mesh(), 4_000, FAST)
    imp = r.implicit
    assert imp.weight_bytes <= 4_000 and imp.storage == budget.STORAGE
    meta = imp.metadata["budget"]
    assert meta["budget_bytes"] == 4_000 and meta["weight_bytes"] == imp.weight_bytes
    assert (meta["layers"], meta["hidden"]) == (imp.architecture.layers, imp.architecture.hidden)
    assert imp.metadata["refinements"]["qat_epochs"] == budget.REFINEMENTS["qat_epochs"]
    assert len(json.dumps(imp.metadata)) < 4_000          # metadata stays small
    assert r.surface_error < 0.02


def test_quantizer_rounds_as_the_file_stores():
    """The weights quantisation-aware training computes with are exactly those with_storage keeps."""
    gen = torch.Generator().manual_seed(3)
    arch = Architecture(3, 24, "relu", 2)
    model = StackedMLP(arch, 1, gen)
    X = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (1, 500, 3)).astype(np.float32))
    assert quantizer("float32") is None
    for storage in ("int8", "float16"):
        q = quantizer(storage)
        rounded = StackedMLP(arch, 1)
        with torch.no_grad():
            for dst, src in zip(rounded.weights, model.weights):
                dst.copy_(q(src, False))
            for dst, src in zip(rounded.biases, model.biases):
                dst.copy_(q(src, True))
        imp = with_storage(model.to_implicit(0), storage)
        assert np.allclose(imp.evaluate(X[0].numpy()), rounded(X)[0].detach().numpy(), atol=2e-5)


def test_quantisation_aware_fine_tuning_runs_and_is_recorded():
    """(Its accuracy gain is measured on real meshes by bench/budget_levers.py.)"""
    s = FAST.replace(layers=3, hidden=16, epochs=2, dtype="int8")
    r = convert_mesh(sphere_mesh(), s, refinements=Refinements(qat_epochs=1))
    assert r.implicit.metadata["refinements"]["qat_epochs"] == 1
    assert len(r.history) == 3 and r.implicit.storage == "int8"


def test_error_resampler_picks_where_the_network_errs():
    rng = np.random.default_rng(0)
    P = rng.uniform(-1, 1, (4000, 3)).astype(np.float32)
    S = np.zeros(4000, np.float32)
    S[:200] = 0.5                                         # the network (f = 0) is wrong only here
    pool = SampleSet(P, S)
    base = SampleSet(P[:1000].copy(), S[:1000].copy())

    class Zero(torch.nn.Module):
        def forward(self, X):
            return torch.zeros(X.shape[:2])

    r = ErrorResampler(base, pool, Refinements(resample_every=1, resample_start=0.0,
                                               resample_share=0.5), 10, rng, torch.device("cpu"))
    Pn, Sn = r(1, Zero())
    assert Pn.shape == (1, 1000, 3) and Sn.shape == (1, 1000)
    assert (Sn.numpy() == 0.5).sum() >= 500                # every new point comes from the bad region
    assert r.history[0]["picked_error_mean"] == pytest.approx(0.5)


def test_far_field_share_of_the_training_set_is_uniform_with_exact_distances():
    """far_fraction replaces that share of the samples by uniform points in the ball: at beta 30
    importance samples almost never land beyond 0.3 of the surface, far samples do as often as
    volume says; the rest of the set is the set drawn without far points."""
    V, F = icosphere(3, 0.5)
    mesh = mesh_from_arrays(V, F)
    s = FAST.replace(far_fraction=0.2, surface_fraction=0.1)
    data = training_set(mesh, s, np.random.default_rng(1))
    assert len(data) == s.samples and data.stats["far_points"] == 4000
    r = np.linalg.norm(data.points, axis=1)
    far = np.abs(r - 0.5) > 0.3                         # shell 0.8..1: 49 % of the ball's volume
    assert 0.2 * 0.40 < far.mean() < 0.2 * 0.58
    assert np.allclose(data.sdf[far], r[far] - 0.5, atol=0.01)
    none = training_set(mesh, s.replace(far_fraction=0.0), np.random.default_rng(1))
    assert (np.abs(np.linalg.norm(none.points, axis=1) - 0.5) > 0.3).mean() < 0.002
    kept = np.all(data.points == none.points, axis=1)
    assert kept.sum() == s.samples - 4000


def test_resampling_candidates_include_surface_points():
    """resample_surface draws that share of the candidates on the surface, moved by a Gaussian of
    resample_sigma, with exact signed distances: on a sphere of radius 0.5 they lie in a shell a
    few sigma thick and their targets are |x| - 0.5."""
    from core.training.convert import _resampler

    V, F = icosphere(3, 0.5)
    mesh = mesh_from_arrays(V, F)
    s = FAST.replace(epochs=4)
    data = training_set(mesh, s, np.random.default_rng(0))
    ref = Refinements(resample_every=1, resample_pool=20_000, resample_surface=0.5,
                      resample_sigma=0.004).validate()
    pool = _resampler(mesh, s, ref, data, torch.device("cpu"), None, None).pool
    assert len(pool) == 20_000
    r = np.linalg.norm(pool.points, axis=1)
    near = np.abs(r - 0.5) < 0.02
    # icosphere facets sit up to 0.0063 inside the ideal sphere, so distances are to the facets
    assert near.mean() > 0.5
    assert np.allclose(pool.sdf, SignedDistance(mesh.V, mesh.F).signed(pool.points), atol=1e-6)
    plain = _resampler(mesh, s, Refinements(resample_every=1, resample_pool=20_000), data,
                       torch.device("cpu"), None, None).pool
    assert (np.abs(np.linalg.norm(plain.points, axis=1) - 0.5) < 0.02).mean() < near.mean() - 0.2


def test_refinements_are_validated():
    with pytest.raises(InputError, match="qat_epochs"):
        Refinements(qat_epochs=-1).validate()
    with pytest.raises(InputError, match="resample_surface"):
        Refinements(resample_surface=1.5).validate()


def test_cli_budget_bytes_reports_weight_bytes(tmp_path, capsys):
    from helpers import mesh_path
    out = tmp_path / "b.h5"
    code = main(["convert", mesh_path("decimated-knight.off"), "-o", str(out), "--json",
                 "--budget-bytes", "3000", "--pool", "100000", "--samples", "10000",
                 "--threads", "1"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0 and d["weight_bytes"] <= 3000 and d["budget"]["budget_bytes"] == 3000
    main(["info", str(out), "--json"])
    info = json.loads(capsys.readouterr().out)
    assert info["weight_bytes"] == d["weight_bytes"] and info["storage"] == "int8"


def test_cli_rejects_budget_and_target_together(tmp_path, capsys):
    from helpers import mesh_path
    code = main(["convert", mesh_path("decimated-knight.off"), "-o", str(tmp_path / "x.h5"),
                 "--json", "--budget-bytes", "3000", "--target-error", "0.01"])
    assert code == 2 and "give one of them" in json.loads(capsys.readouterr().out)["error"]
