"""Error-driven sizing (core/training/sizing.py): the search stops at the first size that reaches
the target, keeps the best when none does, and records what it tried."""

import json

import numpy as np
import pytest

from core.cli import main
from core.common.errors import Cancelled, InputError
from core.common.progress import CancelToken
from core.common.settings import ConversionSettings
from core.meshes.mesh import mesh_from_arrays
from core.training.sizing import convert_to_target_error
from helpers import icosphere

FAST = ConversionSettings(pool=100_000, samples=20_000, epochs=4, batch_size=1024, lr=1e-2,
                          threads=1)
LADDER = ((1, 4), (3, 16), (4, 32))


def sphere_mesh():
    V, F = icosphere(3, 1.0)
    return mesh_from_arrays(V, F, name="sphere")


def test_a_loose_target_stops_at_the_first_size():
    r = convert_to_target_error(sphere_mesh(), 0.5, FAST, ladder=LADDER)
    s = r.implicit.metadata["sizing"]
    assert s["reached"] and len(s["tried"]) == 1
    assert (r.implicit.architecture.layers, r.implicit.architecture.hidden) == LADDER[0]
    assert s["tried"][0]["error"] == pytest.approx(r.surface_error)


def test_an_unreachable_target_keeps_the_most_accurate_size():
    r = convert_to_target_error(sphere_mesh(), 1e-9, FAST, ladder=LADDER[:2])
    s = r.implicit.metadata["sizing"]
    assert not s["reached"] and [(t["layers"], t["hidden"]) for t in s["tried"]] == list(LADDER[:2])
    best = min(s["tried"], key=lambda t: t["error"])
    assert r.surface_error == pytest.approx(best["error"])
    assert all(t["weight_bytes"] > 0 for t in s["tried"])
    sizes = [t["weight_bytes"] for t in s["tried"]]
    assert sizes == sorted(sizes)
    assert len(json.dumps(r.implicit.metadata)) < 4_000


def test_chamfer_metric_is_measured_on_the_remeshed_surface():
    r = convert_to_target_error(sphere_mesh(), 0.5, FAST, metric="chamfer", ladder=LADDER[1:2])
    t = r.implicit.metadata["sizing"]["tried"][0]
    assert t["error"] != t["surface_error"] and np.isfinite(t["error"])


@pytest.mark.parametrize("target", [0, -1e-3, float("nan"), "0.1", True])
def test_bad_targets_are_rejected(target):
    with pytest.raises(InputError, match="target error"):
        convert_to_target_error(sphere_mesh(), target, FAST)


def test_bad_metric_and_ladder_are_rejected():
    with pytest.raises(InputError, match="metric"):
        convert_to_target_error(sphere_mesh(), 0.01, FAST, metric="hausdorff")
    with pytest.raises(InputError, match="ladder"):
        convert_to_target_error(sphere_mesh(), 0.01, FAST, ladder=[])


def test_cancel_stops_the_search():
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        convert_to_target_error(sphere_mesh(), 0.01, FAST, cancel=token, ladder=LADDER)


def test_progress_messages_name_the_size_being_trained():
    seen = []
    convert_to_target_error(sphere_mesh(), 0.5, FAST, progress=seen.append, ladder=LADDER[:1])
    assert any(p.stage == "training" and p.message.startswith("size 1 of 1: 1 x 4") for p in seen)


def test_cli_target_error(tmp_path, capsys):
    from core.meshes.mesh_io import write_mesh_file
    out, src = tmp_path / "t.h5", tmp_path / "sphere.obj"
    V, F = icosphere(3, 1.0)
    write_mesh_file(str(src), V, F)        # a shape a small rung learns in a few epochs
    code = main(["convert", str(src), "-o", str(out), "--json",
                 "--target-error", "0.02", "--pool", "200000", "--samples", "30000", "--epochs", "5",
                 "--lr", "0.01", "--batch-size", "512", "--threads", "1"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0 and d["sizing"]["reached"] and d["sizing"]["target"] == 0.02
    assert d["verification"]["passed"]
    main(["info", str(out), "--json"])
    assert json.loads(capsys.readouterr().out)["metadata"]["sizing"]["tried"]


def test_a_network_without_surface_never_counts_as_accurate():
    """A collapsed network (field positive everywhere) can have a small surface error; the search
    must rank it below every network that has a surface."""
    from core.representation.implicit import Architecture, Implicit
    from core.training.convert import ConversionResult
    from core.training.sizing import _measure

    arch = Architecture(1, 4)
    shapes = arch.layer_shapes()
    Ws = [np.zeros(s) for s in shapes]
    bs = [np.zeros(s[0]) for s in shapes]
    bs[-1][:] = 0.001                                   # f = tanh(0.001) everywhere: tiny, never zero
    flat = Implicit(arch, Ws, bs, np.eye(4))
    r = ConversionResult(flat, 0.001, 0.0, 0.0, 0.0, 0.0, 1, "cpu", None, {}, [])
    assert _measure(r, sphere_mesh(), "surface_error") == float("inf")
