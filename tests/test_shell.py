"""Shell mode: open sheets become thin closed shells; closed meshes convert exactly as before."""

import json
import subprocess
import sys

import numpy as np
import pytest

from core.common.errors import InputError
from core.common.settings import ConversionSettings
from core.conversion.checked import convert_checked
from core.conversion.verify import verify
from core.geometry.metrics import surface_distances
from core.geometry.remesh import remesh
from core.meshes.mesh import mesh_from_arrays
from core.representation.implicit import Implicit
from core.samples.openness import boundary_edge_count, component_count, detect
from core.samples.sampling import SignedDistance, importance_sample
from core.samples.shell import ShellDistance, sheet_of, trained_thickness
from helpers import ROOT, icosphere

TINY = ConversionSettings(layers=3, hidden=32, samples=30_000, pool=200_000, epochs=5, lr=0.01,
                          batch_size=512, threads=1)
T = 0.02            # half thickness of the tests' shells (a 2 % shell is resolved by a 3 x 32 net)


def triangle():
    return mesh_from_arrays(np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0.2]]), np.array([[0, 1, 2]]),
                            name="triangle")


def plane(n=6):
    """An n x n quad grid on the unit square, split into triangles: an open sheet."""
    g = np.linspace(0.0, 1.0, n + 1)
    X, Y = np.meshgrid(g, g, indexing="ij")
    V = np.stack([X.ravel(), Y.ravel(), np.zeros(X.size)], 1)
    i = np.arange(n)[:, None] * (n + 1) + np.arange(n)[None]
    a, b, c, d = i.ravel(), i.ravel() + 1, i.ravel() + n + 1, i.ravel() + n + 2
    F = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    return mesh_from_arrays(V, F, name="plane")


def test_openness_of_sheets_soups_and_closed_meshes():
    V, F = icosphere(3, 0.9)
    closed = detect(V, F)
    assert (closed.boundary_edges, closed.ambiguous_share, closed.components) == (0, 0.0, 1)
    assert not closed.ambiguous
    p = plane()
    o = detect(p.V - 0.5, p.F)
    assert o.boundary_edges == 4 * 6 and o.ambiguous and o.ambiguous_share > 0.2 and o.components == 1
    soup = np.concatenate([F, F + len(V)])                     # two disjoint spheres
    assert component_count(soup) == 2 and boundary_edge_count(soup) == 0


def test_shell_target_and_importance_weights():
    p = plane()
    V = p.V - [0.5, 0.5, 0.0]
    sd = ShellDistance(V, p.F, 0.05)
    Q = np.array([[0.0, 0, 0], [0.0, 0, 0.05], [0.0, 0, -0.2]])
    assert np.allclose(sd.signed(Q), [-0.05, 0.0, 0.15])
    assert sd.inside(Q).tolist() == [True, False, False]
    S = importance_sample(sd, beta=30, pool=100_000, samples=20_000, rng=np.random.default_rng(0))
    assert np.allclose(S.sdf, SignedDistance(V, p.F).unsigned(S.points) - 0.05, atol=1e-6)
    # the weight peaks at |d| = t, the shell's surface, not on the sheet: most samples lie outside
    assert 0.3 < (S.sdf > 0).mean() < 0.9 and np.abs(S.sdf).mean() < np.abs(S.sdf + 0.05).mean()


@pytest.mark.parametrize("make", [triangle, plane])
def test_sheets_convert_to_a_checked_shell_in_auto_mode(make):
    mesh = make()
    result = convert_checked(mesh, TINY.replace(shell_thickness=T), attempts=1)
    surface = result.implicit.metadata["surface"]
    assert surface["mode"] == "shell" and surface["requested"] == "auto"
    assert surface["thickness"] == T and surface["openness"]["ambiguous"]
    assert trained_thickness(result.implicit) == T
    assert result.verification.passed and result.verification.shell_thickness == T
    r = remesh(result.implicit, resolution=128)
    assert boundary_edge_count(r.F) == 0                       # a closed shell, not a sheet
    d = surface_distances(mesh, r.V, r.F, n=20_000)
    assert d.chamfer_l1 < 2 * T, d
    V, F = sheet_of(result.implicit, r.V, r.F)                 # remesh --sheet
    sheet = surface_distances(mesh, V, F, n=20_000)
    assert np.array_equal(F, r.F) and sheet.chamfer_l1 < d.chamfer_l1 - T / 2, (sheet, d)  # offset gone


def test_closed_mesh_in_auto_mode_is_bit_identical_to_closed():
    V, F = icosphere(3, 0.7)
    mesh = mesh_from_arrays(V, F, name="sphere")
    auto = convert_checked(mesh, TINY, attempts=1)
    closed = convert_checked(mesh, TINY.replace(surface="closed"), attempts=1)
    assert auto.implicit.metadata["surface"]["mode"] == "closed"
    assert all(np.array_equal(a, b) for a, b in zip(auto.implicit.weights, closed.implicit.weights))
    assert all(np.array_equal(a, b) for a, b in zip(auto.implicit.biases, closed.implicit.biases))
    with pytest.raises(InputError, match="trained as a shell"):
        sheet_of(closed.implicit, V, F)                        # no sheet inside a closed shape


def test_the_shell_check_fails_an_inverted_shell_that_the_closed_check_only_warns_about():
    mesh = plane()
    result = convert_checked(mesh, TINY.replace(surface="shell", shell_thickness=T), attempts=1)
    imp = result.implicit
    inverted = Implicit(imp.architecture, imp.weights[:-1] + [-imp.weights[-1]],
                        imp.biases[:-1] + [-imp.biases[-1]], imp.transform)
    v = verify(inverted, mesh, shell_thickness=T)
    assert not v.passed and any("disagree with the shell" in p for p in v.problems), v.problems
    closed = verify(inverted, mesh)            # no metadata: checked as a closed surface
    assert closed.shell_thickness is None and closed.open_input and closed.passed


@pytest.mark.parametrize("change, needle", [
    ({"shell_thickness": 0.0}, "shell_thickness must be in"),
    ({"shell_thickness": 0.5}, "shell_thickness must be in"),
    ({"shell_thickness": float("nan")}, "shell_thickness must be in"),
    ({"surface": "sheet"}, "surface must be one of auto, closed, shell"),
])
def test_settings_are_validated(change, needle):
    with pytest.raises(InputError, match=needle):
        ConversionSettings().replace(**change)


def test_cli_flags(tmp_path):
    p = plane(4)
    path = tmp_path / "plane.obj"
    path.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in p.V)
                    + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in p.F))
    out = tmp_path / "plane.h5"
    cmd = [sys.executable, "-m", "core", "convert", str(path), "-o", str(out), "--json",
           "--surface", "shell", "--shell-thickness", "0.02", "--layers", "3", "--hidden", "32",
           "--samples", "30000", "--pool", "200000", "--epochs", "5", "--lr", "0.01",
           "--batch-size", "512", "--threads", "1"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    d = json.loads(run.stdout)
    assert d["surface"]["mode"] == "shell" and d["surface"]["thickness"] == 0.02
    assert "open input: 16 boundary edges" in run.stderr and "using shell mode" in run.stderr
    for extra in ([], ["--sheet"]):
        obj = tmp_path / f"plane{len(extra)}.obj"
        run = subprocess.run([sys.executable, "-m", "core", "remesh", str(out), "-o", str(obj),
                              "--resolution", "64", *extra], cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, run.stderr
    z = [[abs(float(line.split()[3])) for line in open(tmp_path / f"plane{n}.obj") if line.startswith("v ")]
         for n in (0, 1)]
    assert np.mean(z[1]) < 0.5 * np.mean(z[0])                 # the sheet lies in the plane z = 0
