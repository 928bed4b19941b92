"""Separate parts (issue 18): the narrowest gap between parts is measured before training and
recorded; a remesh too coarse to keep them apart says so; touching or overlapping parts are no gap."""

import numpy as np
import pytest

from core.common.settings import ConversionSettings
from core.conversion.checked import convert_checked
from core.geometry.remesh import gap_warning, remesh
from core.meshes.mesh import mesh_from_arrays
from core.samples.openness import detect

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
    r = convert_checked(boxes(0.02), SMALL.replace(part_networks="one"), attempts=1)
    gap = r.implicit.metadata["surface"]["openness"]["finest_gap"]
    assert gap > 0
    coarse = remesh(r.implicit, 32)
    assert len(coarse.stats["warnings"]) == 1 and "may merge" in coarse.stats["warnings"][0]
    need = int(coarse.stats["warnings"][0].split("of ")[-1].split(" or more")[0])
    assert gap_warning(r.implicit, need) is None and gap_warning(r.implicit, need - 1) is not None
    one = convert_checked(mesh_from_arrays(*box([0, 0, 0], [1, 1, 1])), SMALL, attempts=1)
    assert remesh(one.implicit, 32).stats["warnings"] == []


# ---------------------------------------------------------------- gap samples
# (core/samples/gaps.py)

def _training_set(mesh, **changes):
    from core.training.convert import training_set

    m = mesh.transformed(mesh.normalization())
    return training_set(m, SMALL.replace(**changes), np.random.default_rng(0))


def test_gap_samples_fill_the_gap_and_keep_the_set_size():
    mesh = boxes(0.01)
    with_gaps = _training_set(mesh, gap_fraction=0.1)
    without = _training_set(mesh, gap_fraction=0.0)
    assert len(with_gaps) == len(without) == SMALL.samples
    info = with_gaps.stats["gaps"]
    assert info["points"] == round(0.1 * SMALL.samples) and info["parts"] == 3
    assert with_gaps.stats["surface"]["gap_samples"] == info["points"]
    assert "gaps" not in without.stats
    # points strictly between two cubes (outside both, nearer than the gap to each) are far more
    # frequent with gap samples: the network sees the gap
    _, _, scale = network_frame(mesh)
    T = mesh.normalization()

    def in_gap(data):
        X = (data.points.astype(np.float64) - T[:3, 3]) / scale        # back to the mesh frame
        x = X[:, 0]
        between = ((x > 1) & (x < 1.01)) | ((x > 2.01) & (x < 2.02))
        return int((between & (np.abs(X[:, 1:] - 0.5) < 0.5).all(1)).sum())

    assert in_gap(with_gaps) > 3 * max(in_gap(without), 1)
    # and their targets are exact: positive in the gap, below half of it
    X = (with_gaps.points.astype(np.float64) - T[:3, 3]) / scale
    mid = (np.abs(X[:, 0] - 1.005) < 0.002) & (np.abs(X[:, 1:] - 0.5) < 0.4).all(1)
    assert mid.any() and (with_gaps.sdf[mid] > 0).all()
    assert (with_gaps.sdf[mid] <= 0.0051 * scale).all()


def test_one_part_and_far_apart_parts_get_no_gap_samples():
    one = mesh_from_arrays(*box([0, 0, 0], [1, 1, 1]))
    a, b = _training_set(one, gap_fraction=0.1), _training_set(one, gap_fraction=0.0)
    assert "gaps" not in a.stats
    assert np.array_equal(a.points, b.points) and np.array_equal(a.sdf, b.sdf)
    far = boxes(0.5)                                # a gap of half a cube: no extra samples needed
    a, b = _training_set(far, gap_fraction=0.1), _training_set(far, gap_fraction=0.0)
    assert "gaps" not in a.stats and np.array_equal(a.points, b.points)


def test_the_resolution_for_a_gap_is_the_one_the_warning_accepts():
    from types import SimpleNamespace

    from core.geometry.remesh import resolution_for, resolution_for_gap

    for gap in (0.0045, 0.009, 0.02, 0.1):
        shape = SimpleNamespace(metadata={"surface": {"openness": {"finest_gap": gap}}})
        need = resolution_for(shape, 256)
        assert need >= 256 and gap_warning(shape, need) is None
        if need > 256:
            assert gap_warning(shape, need - 1) is not None
    assert resolution_for_gap(None, 300) == 300
    assert resolution_for(SimpleNamespace(metadata={}), 128) == 128
    assert resolution_for_gap(1e-6, 256) == 2048                     # capped at MAX_RESOLUTION


class _ExactField:
    """A stand-in network: the exact signed distance of a mesh (mesh frame)."""

    def __init__(self, mesh):
        from core.samples.sampling import SignedDistance

        self.sd = SignedDistance(mesh.V, mesh.F)

    def evaluate_mesh_frame(self, P):
        return self.sd.signed(P).astype(np.float32)


def test_a_network_that_joins_parts_is_reported():
    from core.samples.gaps import joined_parts

    mesh = boxes(0.02)
    apart = joined_parts(_ExactField(mesh), mesh)
    assert apart["parts"] == 3 and apart["pairs"] == 2
    assert apart["joined"] == [] and apart["warning"] is None
    bridged = joined_parts(_ExactField(mesh_from_arrays(*box([0, 0, 0], [3.04, 1, 1]))), mesh)
    assert len(bridged["joined"]) == 2 and "joins 2 of 2 pairs" in bridged["warning"]
    assert joined_parts(_ExactField(mesh), mesh_from_arrays(*box([0, 0, 0], [1, 1, 1]))) is None


def test_the_check_reports_parts_the_network_joins():
    """Three cubes 0.5 % of their size apart, small settings, one network: it bridges the gaps, and
    the conversion's check says so instead of passing silently."""
    r = convert_checked(boxes(0.005), SMALL.replace(part_networks="one"))
    assert any("joins" in w and "neighbouring separate parts" in w for w in r.verification.warnings)


def test_parts_closer_than_narrow_train_longer_and_the_file_says_so():
    """Three cubes 2 % of a side apart: samples, pool and epochs doubled (gap_factor 2, the default)
    and recorded; with gap_factor 1, or for one cube, the settings run as given."""
    from core.training.convert import convert_mesh

    one = SMALL.replace(part_networks="one")
    close = convert_mesh(boxes(0.02), one).implicit.metadata
    assert close["narrow_gaps"]["factor"] == 2.0 and 0 < close["narrow_gaps"]["finest_gap"] < 0.05
    assert (close["settings"]["samples"], close["settings"]["pool"], close["settings"]["epochs"]) == \
        (2 * SMALL.samples, 2 * SMALL.pool, 2 * SMALL.epochs)
    assert close["epochs_run"] == 2 * SMALL.epochs
    for mesh, settings in ((boxes(0.02), one.replace(gap_factor=1.0)), (boxes(0.02, n=1), one)):
        meta = convert_mesh(mesh, settings).implicit.metadata
        assert "narrow_gaps" not in meta and meta["settings"]["epochs"] == SMALL.epochs


def test_a_stack_gives_parts_that_nearly_touch_what_converting_alone_gives():
    """In a stack every shape has the stack's recipe; a shape whose parts nearly touch is converted
    again alone by the check (its first attempt), so it gets the narrow-gap recipe as it would
    alone, and says so; a one-part shape keeps its stacked network."""
    from core.conversion.batch_train import convert_many

    close, single = boxes(0.02), boxes(0.02, n=1)
    for settings in (SMALL, SMALL.replace(part_networks="one")):
        stacked = convert_many([close, single], settings, shapes_per_batch=2)
        assert "narrow_gaps" not in stacked[0].implicit.metadata       # the stack's own recipe
        assert stacked[0].implicit.network_count == 1
        checked = [convert_checked(m, settings, trained=r, attempts=1)
                   for m, r in zip((close, single), stacked)]
        assert "converted again alone" in checked[0].warnings[0]
        alone = convert_checked(close, settings, attempts=1)
        assert checked[0].implicit.network_count == alone.implicit.network_count
        for a, b in zip(checked[0].implicit.networks(), alone.implicit.networks()):
            assert all(np.array_equal(x, y) for x, y in zip(a.weights, b.weights))
        assert checked[1] is stacked[1] and not any("alone" in w for w in checked[1].warnings)
    assert checked[0].implicit.metadata["narrow_gaps"]["factor"] == 2.0    # one network: longer


# ---------------------------------------------------------------- one network per group of parts
# (core/samples/parts.py)

def test_parts_that_nearly_touch_get_networks_of_their_own_and_stay_apart():
    """Three cubes 0.5 % of a side apart (0.0027 network units, less than a cell of 512^3): the
    outer two share a network, the middle one has its own; meshed at a grid far coarser than the
    gap they are still three pieces, the file keeps both networks, and the check finds no join."""
    from core.representation.fileformat import from_bytes, to_bytes
    from core.samples.openness import face_components

    mesh = boxes(0.005)
    r = convert_checked(mesh, SMALL, attempts=1)
    imp = from_bytes(to_bytes(r.implicit))
    assert imp.network_count == 2 and imp.parameters == 2 * SMALL.architecture.parameters
    parts = imp.metadata["parts"]
    assert parts["networks"] == 2 and parts["narrow_pairs"] == 2 and parts["finest_gap_within"] is None
    assert imp.metadata["narrow_gaps"]["factor"] == 2.0            # each network trains longer
    assert imp.metadata["settings"]["epochs"] == 2 * SMALL.epochs   # what ran, as recorded
    assert all(p["epochs_run"] == 2 * SMALL.epochs for p in parts["per_network"])
    assert sorted(parts["group_of_part"]) == [0, 0, 1] or sorted(parts["group_of_part"]) == [0, 1, 1]
    assert not any("joins" in w for w in r.warnings)
    assert any("converted as 2 networks" in w for w in r.warnings)      # said, not silent
    Q = np.random.default_rng(0).uniform(-1, 1, (2000, 3))
    assert np.array_equal(imp.evaluate(Q), np.minimum(imp.network(0).evaluate(Q),
                                                      imp.network(1).evaluate(Q)))
    for R in (64, 128):
        m = remesh(imp, R)
        assert face_components(m.F)[0] == 3 and m.stats["networks"] == 2 and m.stats["warnings"] == []
    # one network, as asked: the parts merge (and the check says so)
    one = convert_checked(mesh, SMALL.replace(part_networks="one"), attempts=1)
    assert one.implicit.network_count == 1 and "parts" not in one.implicit.metadata


def test_parts_far_apart_touching_or_nested_share_one_network():
    from core.samples.parts import part_groups

    for mesh in (boxes(0.5), mesh_from_arrays(*box([0, 0, 0], [1, 1, 1]))):
        V, F, _ = network_frame(mesh)
        assert part_groups(V, F) is None
    V1, F1 = box([0, 0, 0], [1, 1, 1])
    V2, F2 = box([0.05, 0.05, 0.05], [0.95, 0.95, 0.95])         # nested, 5 % from the walls
    V3, F3 = box([1.0, 0.1, 0.1], [2, 0.9, 0.9])                  # touching the first
    V4, F4 = box([2.01, 0, 0], [3, 1, 1])                         # 1 % from the third
    m = mesh_from_arrays(np.concatenate([V1, V2, V3, V4]), np.concatenate([F1, F2 + 8, F3 + 16, F4 + 24]))
    V, F, _ = network_frame(m)
    g = part_groups(V, F)
    assert g.parts == 4 and g.solids == 2 and g.groups == 2 and g.narrow_pairs == 1


def test_more_parts_than_the_gap_measure_takes_are_grouped_too():
    """81 cubes 1 % of a side apart: the gap measured before training stops at 64 parts, the
    grouping goes on (a 9 x 9 array needs 4 networks: diagonal neighbours nearly touch too)."""
    from core.samples.openness import MAX_GAP_PARTS
    from core.samples.shell import resolve
    from core.training.convert import groups_for

    Vs, Fs = [], []
    for i in range(9):
        for j in range(9):
            V, F = box([i * 1.01, j * 1.01, 0], [i * 1.01 + 1, j * 1.01 + 1, 1])
            Fs.append(F + 8 * len(Vs))
            Vs.append(V)
    mesh = mesh_from_arrays(np.concatenate(Vs), np.concatenate(Fs))
    V, F, _ = network_frame(mesh)
    surface = resolve(V, F, SMALL)
    assert surface.openness.components == 81 > MAX_GAP_PARTS and surface.openness.finest_gap is None
    g = groups_for(mesh.transformed(mesh.normalization()), surface, SMALL)
    assert g.parts == 81 and g.groups == 4 and len(g.record()["group_of_part"]) == 81
    assert groups_for(mesh.transformed(mesh.normalization()), surface,
                      SMALL.replace(part_networks="one")) is None


# ---------------------------------------------------------------- small loose parts

def _sphere_and_speck(size):
    """A sphere (radius 1) and, 0.5 away, a cube of side ``size`` (0.02: 0.02 % of the area)."""
    n = 24
    th, ph = np.linspace(0, np.pi, n)[1:-1], np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
    V = [[0, 0, 1]] + [[np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)] for t in th for p in ph]
    V.append([0, 0, -1])
    m, F = len(ph), []
    F += [[0, 1 + j, 1 + (j + 1) % m] for j in range(m)]
    for i in range(len(th) - 1):
        for j in range(m):
            a, b = 1 + i * m + j, 1 + i * m + (j + 1) % m
            F += [[a, a + m, b], [b, a + m, b + m]]
    last, base = len(V) - 1, 1 + (len(th) - 1) * m
    F += [[last, base + (j + 1) % m, base + j] for j in range(m)]
    V2, F2 = box([1.5, 0, 0], [1.5 + size, size, size])
    return mesh_from_arrays(np.concatenate([np.array(V), V2]), np.concatenate([np.array(F), F2 + len(V)]))


def test_a_small_loose_part_gets_samples_of_its_own_and_a_lost_one_is_named(monkeypatch):
    """A cube 2 % of the size beside a sphere: area-proportional sampling gives it a few dozen
    points and the network drops it; the floor of samples per part keeps it (two pieces), and a
    network without it is named by the check (the part is too small for the check's own points)."""
    import core.samples.parts as parts
    from core.samples.openness import face_components
    from core.training.convert import training_set

    mesh = _sphere_and_speck(0.02)
    m = mesh.transformed(mesh.normalization())
    data = training_set(m, SMALL, np.random.default_rng(0))
    assert data.stats["small_parts"] == {"parts": 1, "points": 3000, "per_part": 3000}
    one = mesh_from_arrays(*box([0, 0, 0], [1, 1, 1]))            # one part: the set as before
    assert "small_parts" not in training_set(one.transformed(one.normalization()), SMALL,
                                             np.random.default_rng(0)).stats
    settings = ConversionSettings(threads=1)        # the defaults: SMALL's network is too small
    kept = convert_checked(mesh, settings, attempts=1)
    assert face_components(remesh(kept.implicit, 256).F)[0] == 2
    assert not any("missing" in w for w in kept.warnings)
    monkeypatch.setattr(parts, "PART_FLOOR", 0)
    lost = convert_checked(mesh, settings, attempts=1)
    assert face_components(remesh(lost.implicit, 256).F)[0] == 1
    assert any("too small for the check" in w and "missing from the network" in w for w in lost.warnings)
