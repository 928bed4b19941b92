"""Separate parts (issue 18): the narrowest gap between parts is measured before training and
recorded; a remesh too coarse to keep them apart says so; touching or overlapping parts are no gap."""

import numpy as np
import pytest

from core.checked import convert_checked
from core.mesh import mesh_from_arrays
from core.openness import detect
from core.remesh import gap_warning, remesh
from core.settings import ConversionSettings

SMALL = ConversionSettings(layers=3, hidden=32, pool=200_000, samples=40_000, epochs=6,
                           batch_size=1024, lr=1e-2, threads=1)


def box(lo, hi):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    V = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    F = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return V, F


def boxes(gap, n=3):
    """n unit cubes in a row, ``gap`` apart (as a fraction of one cube's side)."""
    Vs, Fs = [], []
    for i in range(n):
        V, F = box([i * (1 + gap), 0, 0], [i * (1 + gap) + 1, 1, 1])
        Fs.append(F + sum(len(v) for v in Vs))
        Vs.append(V)
    return mesh_from_arrays(np.concatenate(Vs), np.concatenate(Fs))


def network_frame(mesh):
    m = mesh.transformed(mesh.normalization())
    return m.V, m.F, mesh.normalization()[0, 0]


@pytest.mark.parametrize("gap", [0.01, 0.05])
def test_the_narrowest_gap_is_measured(gap):
    V, F, scale = network_frame(boxes(gap))
    o = detect(V, F)
    assert o.components == 3
    assert o.finest_gap == pytest.approx(gap * scale, rel=0.05)


def test_touching_and_overlapping_parts_have_no_gap():
    for offset in (1.0, 0.5):                       # face to face, then half inside
        V1, F1 = box([0, 0, 0], [1, 1, 1])
        V2, F2 = box([offset, 0.2, 0.2], [offset + 1, 0.8, 0.8])
        m = mesh_from_arrays(np.concatenate([V1, V2]), np.concatenate([F1, F2 + 8]))
        V, F, _ = network_frame(m)
        assert detect(V, F).finest_gap is None


def test_a_remesh_too_coarse_for_the_gap_warns():
    r = convert_checked(boxes(0.02), SMALL, attempts=1)
    gap = r.implicit.metadata["surface"]["openness"]["finest_gap"]
    assert gap > 0
    coarse = remesh(r.implicit, 32)
    assert len(coarse.stats["warnings"]) == 1 and "may merge" in coarse.stats["warnings"][0]
    need = int(coarse.stats["warnings"][0].split("of ")[-1].split(" or more")[0])
    assert gap_warning(r.implicit, need) is None and gap_warning(r.implicit, need - 1) is not None
    one = convert_checked(mesh_from_arrays(*box([0, 0, 0], [1, 1, 1])), SMALL, attempts=1)
    assert remesh(one.implicit, 32).stats["warnings"] == []
