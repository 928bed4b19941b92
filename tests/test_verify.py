"""Every conversion checks its own result: collapsed, inverted, NaN and open results never pass."""

import json

import numpy as np
import pytest

from core.common.errors import InputError
from core.common.jsonsafe import dumps, finite_or_none
from core.common.settings import ConversionSettings
from core.common.units import format_fraction
from core.conversion.checked import ConversionFailed, SizeMode, convert_checked
from core.conversion.verify import boundary_edge_count, source_side, verify
from core.meshes.mesh import mesh_from_arrays
from helpers import icosphere, trained_ball
from hostile.networks import constant, negated, overflow_relu

TINY = ConversionSettings(layers=3, hidden=32, pool=200_000, samples=40_000, epochs=6,
                          batch_size=1024, lr=1e-2, threads=1)


@pytest.fixture(scope="module")
def ball():
    """A network of |x| - 0.5 (identity transform) and its source sphere."""
    V, F = icosphere(4, 0.5)
    return trained_ball(20_000), mesh_from_arrays(V, F)


def test_healthy_network_passes(ball):
    imp, mesh = ball
    v = verify(imp, mesh)
    assert v.passed, v.problems
    assert v.has_surface and not v.open_input
    assert v.sign_agreement > 0.99 and v.sign_agreement_near > 0.97
    assert v.chamfer < 0.01
    assert "of size" in v.summary()
    json.loads(dumps(v.to_dict()))


@pytest.mark.parametrize("value", [0.0008, -0.0055])
def test_constant_network_has_no_surface(ball, value):
    _, mesh = ball
    v = verify(constant(value), mesh)
    assert not v.passed and not v.has_surface
    assert "no surface" in v.problems[0]
    assert v.to_dict()["chamfer"] is None          # infinite distance is written as null
    assert v.summary() == "no surface"


def test_inverted_network_fails(ball):
    imp, mesh = ball
    v = verify(negated(imp), mesh)
    assert not v.passed
    assert any("disagree" in p for p in v.problems)
    assert v.sign_agreement < 0.1


def test_overflowing_network_is_reported_not_read_as_inside(ball):
    _, mesh = ball
    v = verify(overflow_relu(), mesh)
    assert not v.passed and "NaN or infinity" in v.problems[0]


def test_open_input_is_detected_and_only_warned_about(ball):
    imp, _ = ball
    V, F = icosphere(4, 0.5)
    bowl = mesh_from_arrays(V, F[V[F].mean(axis=1)[:, 2] < 0])     # an open sheet
    v = verify(imp, bowl)
    assert v.open_input and v.passed and v.ambiguous_share > 0.2
    assert "open" in v.warnings[0]
    assert any("disagree" in w or "far from" in w for w in v.warnings)
    holed = mesh_from_arrays(V, F[V[F].mean(axis=1)[:, 2] < 0.45])  # a small hole: inside still clear
    v = verify(imp, holed)
    assert boundary_edge_count(holed.F) > 0 and not v.open_input and v.passed


def test_format_fraction_states_a_share():
    assert format_fraction(0.0021) == "0.21%"
    assert format_fraction(float("inf")) == "n/a"


def test_json_is_strict():
    d = finite_or_none({"a": float("inf"), "b": [np.float32("nan"), np.int64(3)], "c": np.ones(2)})
    assert d == {"a": None, "b": [None, 3], "c": [1.0, 1.0]}
    with pytest.raises(ValueError):
        json.dumps(float("nan"), allow_nan=False)
    assert "NaN" not in dumps({"x": float("nan")})


def test_checked_conversion_passes_and_records_the_check():
    V, F = icosphere(3, 1.0)
    r = convert_checked(mesh_from_arrays(V, F), TINY)
    assert r.verification.passed
    meta = r.implicit.metadata["verification"]
    assert meta["passed"] and meta["attempts"] == 1
    assert r.summary()["verification"]["chamfer"] == pytest.approx(r.verification.chamfer)


def _fake_modes(monkeypatch, outcomes):
    """Make the trainer return the given implicits in turn (a collapsed net, then a healthy one)."""
    seeds = []
    real = SizeMode.convert

    def fake(self, mesh, settings, progress=None, cancel=None, **_):
        seeds.append(settings.seed)
        result = real(self, mesh, settings.replace(epochs=1, samples=2000, pool=20_000))
        result.implicit = outcomes[len(seeds) - 1]
        return result
    monkeypatch.setattr(SizeMode, "convert", fake)
    return seeds


def test_the_source_side_computed_early_gives_the_same_check(ball):
    """convert_checked computes the source's half of the check while the samples are drawn; used,
    or (made for another seed or frame) ignored, the check is the same."""
    imp, mesh = ball
    fresh = verify(imp, mesh).to_dict()
    assert verify(imp, mesh, source=source_side(mesh, imp.transform)).to_dict() == fresh
    assert verify(imp, mesh, source=source_side(mesh, imp.transform, seed=3)).to_dict() == fresh
    assert verify(imp, mesh, source=source_side(mesh, 2 * imp.transform)).to_dict() == fresh


def test_failed_check_retries_with_the_next_seed(monkeypatch, ball):
    imp, mesh = ball
    seeds = _fake_modes(monkeypatch, [constant(0.0008), imp])
    r = convert_checked(mesh, TINY.replace(seed=5))
    assert seeds == [5, 6]
    assert r.verification.passed
    assert "seed 5" in r.warnings[0] and "no surface" in r.warnings[0]
    assert r.implicit.metadata["verification"]["attempts"] == 2


def test_every_attempt_failing_is_an_error_never_done(monkeypatch, ball):
    imp, mesh = ball
    seeds = _fake_modes(monkeypatch, [constant(0.0008), negated(imp), constant(-0.3)])
    with pytest.raises(ConversionFailed, match="failed its check 3 time"):
        convert_checked(mesh, TINY)
    assert seeds == [0, 1, 2]


def test_single_open_triangle_becomes_a_checked_thin_shell():
    """Open input with no inside at all: auto picks shell mode, and the shell is checked against
    the triangle (issue 18: a single triangle converts to a visible thin shell)."""
    mesh = mesh_from_arrays([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])
    r = convert_checked(mesh, TINY, attempts=1)
    assert r.implicit.metadata["surface"]["mode"] == "shell"
    v = r.verification
    assert v.passed and v.has_surface and v.open_input and v.shell_thickness == pytest.approx(0.01)
    assert v.chamfer < 0.03 and v.sign_agreement_near > 0.9


def test_both_size_modes_at_once_are_refused(ball):
    with pytest.raises(InputError, match="give one of them"):
        convert_checked(ball[1], TINY, target_error=0.003, budget_bytes=30_000)


def test_a_part_the_network_lacks_is_named(ball):
    """Two separate spheres as the source, a network of only the first: the second part's points
    lie far from the result, and the check says so (the Chamfer distance averages it away)."""
    net, big = ball
    V2, F2 = icosphere(2, 0.12)
    two = mesh_from_arrays(np.concatenate([big.V, V2 + [0.75, 0.0, 0.0]]),
                           np.concatenate([big.F, F2 + len(big.V)]))
    v = verify(net, two)
    assert v.has_surface
    missing = [w for w in v.warnings if "separate parts are missing" in w]
    assert len(missing) == 1 and missing[0].startswith("1 of the source's 2 separate parts")
    assert not any("separate parts" in w for w in verify(net, big).warnings)   # one part
    both = mesh_from_arrays(np.concatenate([big.V, V2 * 2 + [0.0, 0.0, 0.2]]),
                            np.concatenate([big.F, F2 + len(big.V)]))    # the second inside
    assert not any("separate parts" in w for w in verify(net, both).warnings)
