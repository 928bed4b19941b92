"""Hostile .h5 files (issue 14): one FileFormatError line, bounded memory, nothing outside the file.

The crafted files come from tests/hostile/files.py. They are loaded in a child process under a 2 GiB
address-space limit and a timeout, so a regression that allocates gigabytes, follows a link to a
FIFO or makes HDF5 loop fails the test instead of taking the test run down.
"""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from core.common.errors import FileFormatError, InputError
from core.representation.fileformat import (MAX_FILE_BYTES, checksum, legacy_checksum, load, from_bytes, save,
                                            similarity_problem)
from core.representation.implicit import MAX_PARAMETERS, Architecture, Implicit
from helpers import PAPER_WEIGHTS, ROOT
from hostile.files import tiny_implicit

TESTS = os.path.dirname(os.path.abspath(__file__))
ADDRESS_LIMIT = 2 << 30
CHILD_TIMEOUT = 120

RUN_CASES = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
from hostile.files import cases
from core.common.errors import FileFormatError
from core.representation.fileformat import load
from core.representation.paper_import import load_paper_weights
rows = []
for c in cases(sys.argv[1]):
    t = time.perf_counter()
    try:
        (load if c.reader == "load" else load_paper_weights)(c.path)
        kind, message = "ok", ""
    except FileFormatError as e:
        kind, message = "FileFormatError", str(e)
    except BaseException as e:
        kind, message = type(e).__name__, str(e)
    rows.append({"name": c.name, "class_name": c.class_name, "path": c.path, "expected": c.expected,
                 "needle": c.needle, "kind": kind, "message": message,
                 "seconds": time.perf_counter() - t})
from peak_memory import peak_mb
print(json.dumps({"rows": rows, "maxrss_mb": peak_mb()}))
"""

FUZZ = r"""
import json, sys
import numpy as np
from hostile.files import tiny_implicit
from core.common.errors import FileFormatError
from core.representation.fileformat import from_bytes, save
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
save(tiny_implicit(), path)
base = open(path, "rb").read()
rng = np.random.default_rng(seed)
Q = rng.uniform(-1, 1, (64, 3))
counts, bad = {"ok": 0, "error": 0}, []
for i in range(n):
    data, op, pos = bytearray(base), int(rng.integers(5)), int(rng.integers(len(base)))
    if op == 0:
        data[pos] ^= 1 << int(rng.integers(8))
    elif op == 1:
        data[pos] = 0
    elif op == 2:
        data[pos] = 0xFF
    elif op == 3:
        data = data[:pos]
    else:
        data[pos:pos + 16] = bytes(len(data[pos:pos + 16]))
    try:
        values = from_bytes(bytes(data), f"variant {i}").evaluate(Q)
        counts["ok"] += 1
        if not np.isfinite(values).all():
            bad.append([i, op, pos, "non-finite values"])
    except FileFormatError as e:
        counts["error"] += 1
        if "\n" in str(e) or f"variant {i}" not in str(e):
            bad.append([i, op, pos, "message: " + str(e)])
    except BaseException as e:
        bad.append([i, op, pos, f"{type(e).__name__}: {e}"])
print(json.dumps({"counts": counts, "bad": bad}))
"""


def _child(script, *args, timeout=CHILD_TIMEOUT):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, TESTS]), OMP_NUM_THREADS="1")
    try:
        p = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True,
                           text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child process did not finish in {timeout} s: a reader hangs")
    assert p.returncode == 0, f"child process died (rc {p.returncode}): {p.stderr[-2000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return _child(RUN_CASES, tmp_path_factory.mktemp("hostile"), ADDRESS_LIMIT)


@pytest.mark.parametrize("class_name", ["memory", "outside", "traceback", "hang", "spec", "valid"])
def test_every_crafted_file_is_refused_in_one_line_or_loads(outcomes, class_name):
    rows = [r for r in outcomes["rows"] if r["class_name"] == class_name]
    assert rows
    wrong = []
    for r in rows:
        if r["expected"] == "ok":
            ok = r["kind"] == "ok"
        else:
            m = r["message"]
            ok = (r["kind"] == "FileFormatError" and "\n" not in m and m.startswith(r["path"])
                  and r["needle"] in m.lower())
        if not ok:
            wrong.append(f'{r["name"]}: {r["kind"]}: {r["message"]}')
    assert not wrong, "\n".join(wrong)


def test_memory_stays_bounded(outcomes):
    # every case ran under a 2 GiB address-space limit; the whole run peaks at about 60 MB
    assert outcomes["maxrss_mb"] < 400, outcomes["maxrss_mb"]


def test_byte_flip_fuzz_loads_or_refuses(tmp_path):
    """300 seeded flips, zeroed runs and truncations of a valid file: each loads a network with
    finite values or raises one FileFormatError line; no other exception, no hang, no crash."""
    out = _child(FUZZ, tmp_path / "base.h5", 300, 1)
    assert not out["bad"], out["bad"][:10]
    assert out["counts"]["error"] > 50 and out["counts"]["ok"] > 50      # both outcomes exercised


def test_keyboard_interrupt_is_not_swallowed(tmp_path, monkeypatch):
    import core.representation.fileformat as ff
    path = tmp_path / "a.h5"
    save(tiny_implicit(), path)

    def interrupted(f, name):
        raise KeyboardInterrupt
    monkeypatch.setattr(ff, "_read", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load(path)


def test_memory_error_becomes_one_line(tmp_path, monkeypatch):
    import core.representation.fileformat as ff
    path = tmp_path / "a.h5"
    save(tiny_implicit(), path)

    def exhausted(f, name):
        raise MemoryError
    monkeypatch.setattr(ff, "_read", exhausted)
    with pytest.raises(FileFormatError, match="not enough memory") as e:
        load(path)
    assert str(e.value).startswith(str(path))


def test_checksum_covers_architecture_and_storage(tmp_path):
    path = tmp_path / "a.h5"
    save(tiny_implicit(), path)
    with h5py.File(path, "r") as f:
        layers = [{k: f[f"layers/{i}/{k}"][()] for k in ("W", "b")} for i in range(3)]
        arch, storage, T = f.attrs["architecture"], f.attrs["storage"], f["transform"][()]
        stored = f.attrs["checksum"]
    assert stored == checksum(arch, storage, T, layers)
    assert stored != legacy_checksum(T, layers)
    assert checksum(arch.replace("relu", "sine"), storage, T, layers) != stored
    assert checksum(arch, "float16", T, layers) != stored


def test_from_bytes_matches_load(tmp_path):
    path = tmp_path / "a.h5"
    save(tiny_implicit(), path)
    a, b = load(path), from_bytes(path.read_bytes(), "x")
    assert all(np.array_equal(x, y) for x, y in zip(a.weights, b.weights))
    with pytest.raises(FileFormatError, match="larger than any valid file"):
        from_bytes(bytes(MAX_FILE_BYTES + 1), "big")


@pytest.mark.parametrize("A,needle", [(np.diag([-1.0, 1.0, 1.0]), "mirror"),
                                      (np.array([[1.0, 0.3, 0], [0, 1, 0], [0, 0, 1]]), "similarity"),
                                      (np.diag([1.0, 1.0, 2.0]), "similarity")])
def test_save_refuses_what_load_refuses_but_memory_allows(tmp_path, A, needle):
    """An object's world matrix may scale non-uniformly in Blender (bridge.in_world), so an Implicit
    may hold such a transform; a file may not."""
    imp = tiny_implicit()
    imp.transform[:3, :3] = A
    imp.validate()
    with pytest.raises(InputError, match=needle):
        save(imp, tmp_path / "a.h5")
    assert not list(tmp_path.iterdir())


def test_similarity_tolerates_float32_rotations():
    c, s = np.float32(np.cos(1.0)), np.float32(np.sin(1.0))
    T = np.eye(4)
    T[:3, :3] = 0.25 * np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)
    assert similarity_problem(T) is None


def test_architecture_cap():
    assert Architecture(12, 128).parameters == 182_273 < MAX_PARAMETERS
    with pytest.raises(InputError, match="parameters"):
        Architecture(64, 4096)
    with pytest.raises(InputError, match="layers"):
        Architecture(True, 8)
    from core.common.settings import ConversionSettings
    with pytest.raises(InputError, match="parameters"):
        ConversionSettings(layers=16, hidden=1024).validate().architecture


def test_paper_release_files_still_import():
    from core.representation.paper_import import load_paper_weights
    names = sorted(f for f in os.listdir(PAPER_WEIGHTS) if f.endswith(".h5"))
    assert len(names) == 5
    for name in names:
        imp = load_paper_weights(os.path.join(PAPER_WEIGHTS, name))
        assert isinstance(imp, Implicit) and imp.parameters == 7553
