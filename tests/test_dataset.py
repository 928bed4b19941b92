"""Datasets: batched training equals one-at-a-time conversion; convert-dir converts a folder, records
bad files, resumes after a rerun, a killed worker and a killed run; the Ray engine agrees."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from core.cli import main
from core.common.errors import InputError
from core.common.settings import ConversionSettings
from core.conversion.batch_train import BatchTrainer, convert_many, train_config
from core.dataset import (MANIFEST_NAME, ROW_KEYS, Manifest, convert_dir, find_meshes, make_row,
                          read_manifest)
from core.meshes.mesh import load_mesh
from core.representation.fileformat import load
from core.representation.implicit import Architecture
from core.training.convert import convert_mesh
from core.training.model import StackedMLP
from helpers import ROOT, mesh_path

SMALL = ConversionSettings(layers=4, hidden=16, pool=50_000, samples=10_000, epochs=4,
                           batch_size=1024, lr=1e-2, threads=1)
#: Small but passing convert-dir's check against the source (core.conversion.verify) on every GOOD
#: mesh: below this, networks collapse and every shape would be retried and fail.
CHECKED = ConversionSettings(layers=3, hidden=32, pool=200_000, samples=30_000, epochs=5,
                             batch_size=512, lr=1e-2, threads=1)
CHECKED_FLAGS = ["--layers", "3", "--hidden", "32", "--pool", "200000", "--samples", "30000",
                 "--batch-size", "512", "--lr", "0.01", "--threads", "1"]
#: relative path in the test folder -> shared mesh
GOOD = {"a/decimated-knight.off": "decimated-knight.off", "a/b/43859.stl": "43859.stl",
        "a/b/multibody.stl": "multibody.stl", "c/40921.stl": "40921.stl"}
#: relative path -> content, and the start of the message it must fail with
BAD = {"c/notes.obj": (b"these are my notes, not a mesh\n", "c/notes.obj: the mesh has no faces"),
       "empty.stl": (b"", "empty.stl: the file is empty")}
#: Batched and one-at-a-time training run the same arithmetic (core/conversion/batch_train.py); on
#: one machine the results are bit-identical. The stated tolerance leaves room for BLAS libraries
#: whose batched products round differently: far below the spread between seeds (tens of percent).
SAME_SURFACE_ERROR_RTOL = 1e-3


def make_dataset(root):
    for rel, name in GOOD.items():
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        shutil.copy(mesh_path(name), os.path.join(root, rel))
    for rel, (content, _) in BAD.items():
        with open(os.path.join(root, rel), "wb") as fh:
            fh.write(content)
    return str(root)


def without_seconds(rows):
    return {p: {k: v for k, v in r.items() if k != "seconds"} for p, r in rows.items()}


# ----------------------------------------------------------------------------- batched training
def test_batch_of_k_equals_k_single_conversions():
    """K = 2 slots for 4 shapes that stop early at different epochs (so slots are refilled mid-run):
    every shape ends where convert_mesh takes it alone, with the same seed."""
    s = SMALL.replace(epochs=12, lr=3e-2, schedule="constant", patience=1)
    meshes = [load_mesh(mesh_path(n)) for n in GOOD.values()]
    single = [convert_mesh(m, s) for m in meshes]
    batched = convert_many(meshes, s, shapes_per_batch=2)
    assert len({r.epochs_run for r in single}) > 1 and any(r.epochs_run < 12 for r in single)
    for a, b in zip(single, batched):
        assert b.epochs_run == a.epochs_run
        assert b.surface_error == pytest.approx(a.surface_error, rel=SAME_SURFACE_ERROR_RTOL)
        assert set(b.implicit.metadata) == set(a.implicit.metadata)
        assert b.implicit.metadata["settings"] == a.implicit.metadata["settings"]
        assert b.implicit.metadata["content_hash"] == a.implicit.metadata["content_hash"]
        assert np.allclose(b.implicit.transform, a.implicit.transform)


def test_a_stack_needs_equal_sample_counts():
    t = BatchTrainer(Architecture(2, 8), train_config(SMALL), 2)
    t.add("a", np.zeros((100, 3), np.float32), np.zeros(100, np.float32), 0)
    with pytest.raises(InputError, match="same number of samples"):
        t.add("b", np.zeros((50, 3), np.float32), np.zeros(50, np.float32), 0)


# ----------------------------------------------------------------------------- convert-dir
def test_convert_dir_records_good_and_bad_meshes_and_resumes(tmp_path, capsys):
    src = make_dataset(tmp_path / "in")
    (tmp_path / "in" / "README.txt").write_text("not a mesh extension: not an input")
    out = tmp_path / "out"
    args = ["convert-dir", src, "-o", str(out), "--shapes-per-batch", "3", "--workers", "1",
            "--json", *CHECKED_FLAGS, "--epochs", "5"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("total", "converted", "skipped", "failed", "engine")} == \
        {"total": 6, "converted": 4, "skipped": 0, "failed": 2, "engine": "local"}
    assert summary["seconds"] > 0 and summary["shapes_per_hour"] > 0

    lines = (out / MANIFEST_NAME).read_text().splitlines()
    rows = {r["path"]: r for r in map(json.loads, lines)}
    assert len(lines) == len(rows) == 6 and set(rows) == set(GOOD) | set(BAD)
    for rel, r in rows.items():
        assert tuple(r) == ROW_KEYS
    for rel, (_, message) in BAD.items():
        r = rows[rel]
        assert r["status"] == "failed" and r["error"] == message and r["output"] is None
    for rel in GOOD:
        r = rows[rel]
        assert r["status"] == "ok" and r["error"] is None and r["output"] == rel + ".h5"
        imp = load(out / r["output"])
        mesh = load_mesh(os.path.join(src, rel))
        assert r["content_hash"] == mesh.content_hash == imp.metadata["content_hash"]
        assert r["surface_error"] == imp.metadata["surface_error"] and 0 < r["surface_error"] < 0.1
        assert r["parameters"] == imp.parameters and r["seconds"] > 0
        assert imp.metadata["settings"] == CHECKED.to_dict()
        assert r["chamfer"] == imp.metadata["verification"]["chamfer"]
        assert r["warnings"] == imp.metadata["warnings"]
    assert not [f for _, _, fs in os.walk(out) for f in fs if f.endswith(".part")]

    # a rerun skips what is done (also a file touched but unchanged) and retries the failures
    os.utime(os.path.join(src, "a/decimated-knight.off"))
    mtimes = {rel: os.path.getmtime(out / (rel + ".h5")) for rel in GOOD}
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["converted"], again["skipped"], again["failed"]) == (0, 4, 2)
    assert mtimes == {rel: os.path.getmtime(out / (rel + ".h5")) for rel in GOOD}
    after = read_manifest(str(out))
    assert without_seconds(after) == {**without_seconds(rows), "a/decimated-knight.off": {
        **without_seconds(rows)["a/decimated-knight.off"],
        "source_mtime_ns": os.stat(os.path.join(src, "a/decimated-knight.off")).st_mtime_ns}}

    # other settings: everything is converted again
    assert main(args[:-1] + ["3"]) == 0
    assert json.loads(capsys.readouterr().out)["converted"] == 4


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


def _start(src, out, *extra):
    cmd = [sys.executable, "-m", "core", "convert-dir", src, "-o", out, "--json", "--workers", "1",
           "--trainers", "1",
           *CHECKED_FLAGS, *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True,   # a process group, as a terminal makes
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(predicate, proc, timeout=120):
    t0 = time.monotonic()
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout
        time.sleep(0.02)


def _outputs(out):
    return sorted(os.path.relpath(os.path.join(r, f), out) for r, _, fs in os.walk(out)
                  for f in fs if f.endswith(".h5"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds worker processes in /proc")
def test_killed_worker_and_killed_run(tmp_path):
    """A sampling worker killed mid-run is replaced and the run completes; a run interrupted with
    Ctrl-C, then one killed with SIGKILL, mid-way, leave only loadable outputs; a rerun completes."""
    src = make_dataset(tmp_path / "in")
    out = str(tmp_path / "out")
    proc = _start(src, out, "--epochs", "10", "--shapes-per-batch", "1")
    workers = []

    def worker_started():
        workers[:] = [c for c in _children(proc.pid)
                      if b"resource_tracker" not in open(f"/proc/{c}/cmdline", "rb").read()]
        return workers
    _wait_for(lambda: _outputs(out), proc)            # mid-run
    _wait_for(worker_started, proc)
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert b"a worker process died" in stderr
    summary = json.loads(stdout)
    assert (summary["converted"], summary["failed"]) == (4, 2)

    # Ctrl-C on a terminal (SIGINT to the process group): exit 130, the manifest compacted
    out2 = str(tmp_path / "out2")
    proc = _start(src, out2, "--epochs", "10", "--shapes-per-batch", "1")
    _wait_for(lambda: read_manifest(out2), proc)       # one row written (appended, not compacted)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and json.loads(stdout) == {"error": "interrupted"}
    assert stderr.decode().strip() == "error: interrupted"
    lines = open(os.path.join(out2, MANIFEST_NAME)).read().splitlines()
    assert len(lines) == len({json.loads(line)["path"] for line in lines}) >= 1
    interrupted = _outputs(out2)

    # killed outright (SIGKILL to the process group) one output later
    proc = _start(src, out2, "--epochs", "10", "--shapes-per-batch", "1")
    _wait_for(lambda: len(_outputs(out2)) > len(interrupted), proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    done = _outputs(out2)
    assert len(interrupted) < len(done) < len(GOOD), "the run was not killed mid-way"
    for rel in done:
        load(os.path.join(out2, rel))                  # nothing half-written under a final name
    summary = convert_dir(src, out2, CHECKED.replace(epochs=10), shapes_per_batch=1, workers=1)
    assert (summary.converted + summary.skipped, summary.failed) == (4, 2)
    assert summary.skipped == len(done)     # also one written just before the kill, with no row
    rows = read_manifest(out2)
    assert sorted(r["output"] for r in rows.values() if r["output"]) == _outputs(out2)
    for rel in _outputs(out2):
        load(os.path.join(out2, rel))
    assert not [f for _, _, fs in os.walk(out2) for f in fs if f.endswith(".part")]


def test_ray_engine_gives_the_same_manifest(tmp_path):
    ray = pytest.importorskip("ray")
    from core.dataset.ray_engine import CORE_DIR

    src = make_dataset(tmp_path / "in")
    local = convert_dir(src, str(tmp_path / "local"), CHECKED, shapes_per_batch=3, workers=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"py_modules": [CORE_DIR]})
    try:
        remote = convert_dir(src, str(tmp_path / "ray"), CHECKED, shapes_per_batch=3, engine="ray")
    finally:
        ray.shutdown()
    assert remote.engine == "ray"
    assert (remote.total, remote.converted, remote.failed) == (local.total, local.converted,
                                                               local.failed) == (6, 4, 2)
    a, b = read_manifest(str(tmp_path / "local")), read_manifest(str(tmp_path / "ray"))
    for rows in (a, b):
        for r in rows.values():
            for key in ("surface_error", "chamfer", "sign_agreement"):
                r[key] = r[key] and round(r[key], 6)
    assert without_seconds(a) == without_seconds(b)
    for rel in GOOD:
        assert load(tmp_path / "ray" / (rel + ".h5")).metadata["content_hash"] == a[rel]["content_hash"]


def test_ray_missing_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    src = make_dataset(tmp_path / "in")
    assert main(["convert-dir", src, "-o", str(tmp_path / "out"), "--ray"]) == 2
    assert "pip install" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


def test_inputs_outputs_and_bad_arguments(tmp_path):
    src = make_dataset(tmp_path / "in")
    (tmp_path / "in" / "out").mkdir()
    shutil.copy(mesh_path("43859.stl"), tmp_path / "in" / "out" / "x.STL")
    assert find_meshes(src) == sorted([*GOOD, *BAD, "out/x.STL"])
    assert find_meshes(src, exclude=str(tmp_path / "in" / "out")) == sorted([*GOOD, *BAD])
    with pytest.raises(InputError, match="not a folder"):
        convert_dir(str(tmp_path / "nothing"), str(tmp_path / "o"), SMALL)
    with pytest.raises(InputError, match="shapes-per-batch"):
        convert_dir(src, str(tmp_path / "o"), SMALL, shapes_per_batch=0)


def test_manifest_survives_a_half_written_row(tmp_path):
    """A run killed inside a write leaves half a line: it is skipped, and new rows stay readable."""
    a, b = make_row("a.obj", "failed", error="a.obj: bad\n  file"), make_row("b.obj", "ok")
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(a) + "\n" + json.dumps(b)[:20])
    m = Manifest(str(tmp_path))
    m.record(make_row("c.obj", "ok"))
    m.close()
    rows = read_manifest(str(tmp_path))
    assert set(rows) == {"a.obj", "c.obj"} and rows["a.obj"]["error"] == "a.obj: bad file"
