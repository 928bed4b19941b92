"""Hostile meshes (issue 14): every crafted file fails with one clear InputError in bounded time and
memory, degenerate geometry is refused before it reaches sampling, sampling cannot loop forever, and
the same geometry in any vertex or face order gives the same mesh, samples and network."""

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from core.common.errors import InputError
from core.meshes.mesh import canonical_order, load_mesh, mesh_from_arrays
from core.samples.sampling import SignedDistance, importance_sample, surface_set, uniform_ball
from helpers import ROOT, icosphere, mesh_path
from hostile.meshes import TET_F, TET_V, cases

#: Address-space limit of the child that reads hostile files: the issue's bound for files < 1 MB.
MEMORY_LIMIT = 2 << 30


def _run_child(code: str, timeout: float) -> str:
    """Run ``code`` in a fresh interpreter limited to MEMORY_LIMIT bytes of address space, one
    thread, with the repository and tests/ importable; return its stdout. A hang fails the test."""
    prelude = ("import resource, sys\n"
               f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))\n"
               f"sys.path[:0] = [{str(ROOT)!r}, {os.path.join(str(ROOT), 'tests')!r}]\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-"], input=prelude + code, capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


_LOAD_ALL = """
import json
from core.common.errors import InputError
from core.meshes.mesh import load_mesh
for path in {paths!r}:
    try:
        load_mesh(path)
        print(json.dumps([path, "ok", ""]))
    except InputError as e:
        print(json.dumps([path, "error", str(e)]))
    except BaseException as e:          # anything else is the bug these tests look for
        print(json.dumps([path, type(e).__name__, str(e)[:300]]))
"""


def _load_in_child(paths: list[str], timeout: float = 120) -> dict:
    out = _run_child(_LOAD_ALL.format(paths=paths), timeout)
    return {p: (kind, msg) for p, kind, msg in map(json.loads, out.splitlines())}


def test_hostile_files_fail_cleanly(tmp_path):
    """Count bombs, malformed files and degenerate geometry: one InputError line naming the file and
    the problem, under a 2 GiB address-space limit; the valid oddities still load."""
    all_cases = cases(tmp_path)
    assert {c.class_name for c in all_cases} == {"counts", "malformed", "degenerate", "valid"}
    assert all(os.path.getsize(c.path) < 1 << 20 for c in all_cases)
    results = _load_in_child([c.path for c in all_cases])
    for c in all_cases:
        kind, msg = results[c.path]
        assert kind == c.expected, f"{c.name}: expected {c.expected}, got {kind}: {msg}"
        if c.expected == "error":
            assert msg.startswith(c.path) and "\n" not in msg, f"{c.name}: {msg}"
            assert c.needle in msg.lower(), f"{c.name}: {msg!r} lacks {c.needle!r}"


#: Values put in place of a number of a text file (counts, indices, coordinates).
HOSTILE_NUMBERS = (b"-1", b"-3", b"0", b"2000000000", b"99999999999999999999999", b"3.5", b"nan",
                   b"1e308", b"x")


def _byte_corruptions(data: bytes, rng: np.random.Generator, n: int) -> list[bytes]:
    """Truncations of ``data`` (at every byte of its first 256, where headers and counts are, and at
    ``n`` random places after) plus ``n`` copies with 1 to 8 random bytes replaced."""
    cuts = list(range(1, min(len(data), 256))) + list(rng.integers(1, len(data), n))
    out = [data[:k] for k in cuts]
    for _ in range(n):
        b = bytearray(data)
        for i in rng.integers(0, len(b), rng.integers(1, 9)):
            b[i] = int(rng.integers(0, 256))
        out.append(bytes(b))
    return out


def _token_corruptions(data: bytes, limit: int = 60) -> list[bytes]:
    """Copies of a text file (or a binary PLY's header) with one of its numbers replaced by each of
    HOSTILE_NUMBERS: the first 20 numbers (header counts, first records) and ``limit - 20`` spread
    over the rest (coordinates, face sizes, indices)."""
    import re
    text_end = data.find(b"end_header") if data.startswith(b"ply") else len(data)
    spans = [m.span() for m in re.finditer(rb"-?[0-9][0-9.e+-]*", data[:text_end])]
    rest = spans[20:]
    spans = spans[:20] + rest[::max(1, len(rest) // (limit - 20))]
    return [data[:a] + v + data[b:] for a, b in spans for v in HOSTILE_NUMBERS]


def _stl_count_corruptions(data: bytes) -> list[bytes]:
    """A binary STL with its triangle count replaced (and the size kept, or cut to match)."""
    counts = (0, 1, 2, 0x7FFFFFFF, 0xFFFFFFFF)
    return [data[:80] + struct.pack("<I", c) + data[84:] for c in counts] + \
        [b"solid x".ljust(80) + struct.pack("<I", c) + data[84:] for c in counts]


def test_corrupted_files_never_escape_as_other_errors(tmp_path):
    """Truncating a valid file anywhere, overwriting random bytes, or putting hostile numbers
    (negative, huge, fractional, NaN, overflowing) in place of any count, index or coordinate in
    every format gives a mesh or an InputError, never another exception nor a memory blow-up."""
    from hostile.meshes import _tet_binary_ply, obj_text, ply_header
    from core.meshes.mesh_io import write_mesh_file
    V, F = icosphere(1, 1.0)
    sources = {".obj": obj_text(V, F), ".ply": _tet_binary_ply("<"), ".bply": _tet_binary_ply(">")}
    for ext in (".off", ".stl"):
        write_mesh_file(tmp_path / f"src{ext}", V, F)
        sources[ext] = (tmp_path / f"src{ext}").read_bytes()
    ascii_ply = ply_header("ascii", "element vertex 4\nproperty float x\nproperty float y\n"
                           "property float z\nelement face 4\nproperty list uchar int vertex_indices\n")
    sources[".aply"] = ascii_ply + b"0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"
    rng = np.random.default_rng(14)
    paths = []
    for ext, data in sources.items():
        real_ext = {".bply": ".ply", ".aply": ".ply"}.get(ext, ext)
        variants = _byte_corruptions(data, rng, 150) + (
            _stl_count_corruptions(data) if ext == ".stl" else _token_corruptions(data))
        for k, variant in enumerate(variants):
            p = tmp_path / f"c{ext[1:]}{k}{real_ext}"
            p.write_bytes(variant)
            paths.append(str(p))
    results = _load_in_child(paths, timeout=300)
    escaped = {p: r for p, r in results.items() if r[0] not in ("ok", "error")}
    assert len(results) == len(paths) and not escaped, list(escaped.items())[:5]


@pytest.mark.parametrize("V,F,needle", [
    (TET_V * 1e-300, TET_F, "float32"),
    (TET_V * 1e300, TET_F, "float32"),
    (np.array([[-1e308, 0, 0], [1e308, 0, 0], [0, 1e308, 0], [0, 0, 1e308]]), TET_F, "overflow"),
    (TET_V, np.array([[0, 0, 1], [2, 2, 3]]), "zero area"),
    (np.outer(np.arange(4.0), [1, -2, 0.5]), TET_F, "zero area"),
    (1e10 + TET_V * 1e-5, TET_F, "resolve"),
], ids=["1e-300", "1e300", "overflow", "zero-area", "colinear", "detail-at-1e10"])
def test_degenerate_arrays_are_refused(V, F, needle):
    """The Blender path (arrays, not files) gets the same checks, before any sampling."""
    with pytest.raises(InputError, match=needle):
        mesh_from_arrays(V, F, name="hostile")


def test_representable_extremes_are_accepted():
    """Tiny, huge and offset shapes that float64 resolves keep working, normalised exactly: the
    transform is applied in float64, so a georeferenced scan (10 m at 5,000 km) converts."""
    for V in (TET_V * 1e-20, TET_V * 1e20, 1000 + TET_V, -3e4 + TET_V * 10, 5e6 + TET_V * 10,
              1e-20 + TET_V * 1e-30):
        m = mesh_from_arrays(V, TET_F)
        Vn = m.transformed(m.normalization()).V
        assert np.isclose(np.linalg.norm(Vn, axis=1).max(), 0.9)


def test_bad_array_input_is_an_input_error():
    with pytest.raises(InputError, match="numbers"):
        mesh_from_arrays([["a", "b", "c"]] * 3, [[0, 1, 2]])
    with pytest.raises(InputError, match="integers"):
        mesh_from_arrays(TET_V, [[0, 1, 2.5]])
    with pytest.raises(InputError, match="integers"):
        mesh_from_arrays(TET_V, np.array([[0, 1, np.nan]]))
    with pytest.raises(InputError, match="0..3"):
        mesh_from_arrays(TET_V, np.array([[0, 1, 2 ** 40]], dtype=np.uint64))


_SAMPLING_HOSTILE = """
import numpy as np
from core.common.errors import InputError
from core.meshes.mesh import icosphere
from core.samples.sampling import SignedDistance, importance_sample, surface_set
V, F = icosphere(2, 0.5)
w = np.zeros(len(V)); w[0] = 1.0
calls = {
    # weights exp(-beta d) underflow to zero at every pool point: nothing can ever be accepted
    "beta_1e9": lambda: importance_sample(SignedDistance(V, F), beta=1e9, pool=2000, samples=1000,
                                          rng=np.random.default_rng(0)),
    "beta_nan": lambda: importance_sample(SignedDistance(V, F), beta=float("nan"), pool=2000,
                                          samples=1000, rng=np.random.default_rng(0)),
    "strength_inf": lambda: importance_sample(SignedDistance(V, F, w), beta=30, pool=2000,
                                              samples=1000, rng=np.random.default_rng(0),
                                              importance_strength=float("inf")),
    "weights_overflow": lambda: importance_sample(SignedDistance(V, F, w * 1e308), beta=30,
                                                  pool=2000, samples=1000,
                                                  rng=np.random.default_rng(0), importance_strength=10),
    "surface_strength_inf": lambda: surface_set(SignedDistance(V, F, w), 1000,
                                                np.random.default_rng(0),
                                                importance_strength=float("inf")),
    "pool_zero": lambda: importance_sample(SignedDistance(V, F), beta=30, pool=0, samples=10,
                                           rng=np.random.default_rng(0)),
}
for name, call in calls.items():
    try:
        call()
        print(name, "ok")
    except InputError as e:
        print(name, "InputError", str(e).replace(chr(10), " "))
"""


def test_sampling_never_loops_forever():
    """Weights that are all zero or not finite give an InputError quickly, never an endless loop."""
    out = _run_child(_SAMPLING_HOSTILE, timeout=60)
    rows = dict(line.split(" ", 1) for line in out.splitlines())
    assert len(rows) == 6 and all(r.startswith("InputError") for r in rows.values()), rows
    assert "all zero" in rows["beta_1e9"] and "not finite" in rows["weights_overflow"]


def test_low_acceptance_falls_back_to_exact_draws(monkeypatch):
    """When rejection rounds run out, the rest is drawn by direct resampling of the whole pool:
    the same distribution (|d| histogram against the reweighted pool, as in test_sampling)."""
    import core.samples.sampling as sampling
    monkeypatch.setattr(sampling, "MAX_REJECTION_ROUNDS", 0)
    V, F = icosphere(3, 0.5)
    sd = SignedDistance(V, F)
    beta, pool = 30.0, 200_000
    S = importance_sample(sd, beta=beta, pool=pool, samples=100_000, rng=np.random.default_rng(3))
    assert len(S) == 100_000 and S.stats["pool_fraction_queried"] == 1.0
    d = sd.unsigned(uniform_ball(pool, np.random.default_rng(4)).astype(np.float64))
    bins = np.linspace(0, 0.4, 21)
    ref, _ = np.histogram(d, bins, weights=np.exp(-beta * d))
    got, _ = np.histogram(np.abs(S.sdf), bins)
    assert np.abs(got / got.sum() - ref / ref.sum()).sum() < 0.02
    assert np.allclose(np.abs(S.sdf[:500]), sd.unsigned(S.points[:500]), atol=1e-6)


def test_painted_surface_density_with_a_huge_strength():
    """Strength 1000 on one painted vertex: surface points concentrate around it without a rejection
    loop (the old sampler needed ~1000 proposals per kept point). Fraction within the vertex's
    fan = its mass share, computed from the mixture's masses."""
    V, F = icosphere(2, 0.5)
    w = np.zeros(len(V))
    w[0] = 1.0
    S = surface_set(SignedDistance(V, F, w), 20_000, np.random.default_rng(0), importance_strength=1000)
    A = 0.5 * np.linalg.norm(np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]]), axis=1)
    fan = (F == 0).any(axis=1)
    share = (A[fan].sum() * (1 + 1000 / 3)) / (A.sum() + A[fan].sum() * 1000 / 3)
    _, _, C = SignedDistance(V, F).closest(S.points.astype(np.float64))
    near = np.linalg.norm(C - V[0], axis=1) < np.linalg.norm(V[F[fan]] - V[0], axis=2).max()
    assert len(S) == 20_000 and near.mean() >= share - 0.02


# ----------------------------------------------------------------------------- canonical order
def _permuted(V, F, weights, seed):
    """The same geometry with vertices permuted, faces shuffled and each face's corners rotated."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(V))
    new_index = np.empty_like(perm)
    new_index[perm] = np.arange(len(V))
    G = new_index[F][rng.permutation(len(F))]
    shift = rng.integers(0, 3, len(G))
    G = np.stack([np.roll(g, s) for g, s in zip(G, shift)])
    return V[perm], G, weights[perm]


def _knight():
    m = load_mesh(mesh_path("decimated-knight.off"))
    w = np.random.default_rng(1).random(len(m.V))
    return m.V, m.F, w


def test_permuted_input_gives_the_same_mesh():
    V, F, w = _knight()
    a = mesh_from_arrays(V, F, vertex_weights=w)
    for seed in (0, 1):
        Vp, Fp, wp = _permuted(V, F, w, seed)
        assert not np.array_equal(Vp, V)
        b = mesh_from_arrays(Vp, Fp, vertex_weights=wp)
        assert np.array_equal(a.V, b.V) and np.array_equal(a.F, b.F)
        assert np.array_equal(a.vertex_weights, b.vertex_weights)
        assert a.content_hash == b.content_hash


def test_canonical_order_keeps_geometry_and_orientation():
    """Same oriented triangles (as coordinate triples, up to rotation), weights on their vertices."""
    V, F, w = _knight()
    C, G, cw = canonical_order(V, F, w)

    def oriented(V, F):
        tri = [tuple(map(tuple, V[f])) for f in F]
        return sorted(min(t[r:] + t[:r] for r in range(3)) for t in tri)
    assert oriented(V, F) == oriented(C, G)
    assert dict(zip(map(tuple, V), w)) == dict(zip(map(tuple, C), cw))
    assert (np.diff(C[:, 0]) >= 0).all() and (G[:, 0] < G[:, 1]).all() and (G[:, 0] < G[:, 2]).all()


def test_permuted_input_gives_the_same_samples_and_network():
    """Samples (with painted importance) and a tiny conversion are bit-identical for a permuted copy."""
    from core.common.settings import ConversionSettings
    from core.training.convert import convert_mesh, training_set
    V, F, w = _knight()
    s = ConversionSettings(samples=20_000, pool=200_000, epochs=2, layers=2, hidden=16, threads=1,
                           importance_strength=5.0)
    meshes = [mesh_from_arrays(V, F, vertex_weights=w)]
    Vp, Fp, wp = _permuted(V, F, w, 2)
    meshes.append(mesh_from_arrays(Vp, Fp, vertex_weights=wp))
    sets = [training_set(m.transformed(m.normalization()), s, np.random.default_rng(0)) for m in meshes]
    assert np.array_equal(sets[0].points, sets[1].points) and np.array_equal(sets[0].sdf, sets[1].sdf)
    nets = [convert_mesh(m, s).implicit for m in meshes]
    for wa, wb in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        assert np.array_equal(wa, wb)
