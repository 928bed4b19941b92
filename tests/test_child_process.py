"""core.conversion.child_process: a conversion in a child process gives the same network as in this
process, and whatever happens to the child (killed, cancelled, orphaned, failing) the caller gets a
clear outcome.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from core.common.errors import Cancelled, InputError
from core.common.settings import ConversionSettings
from core.conversion.checked import convert_checked
from core.conversion.child_process import (PARENT_GONE_EXIT, ChildDied, ChildResult, ShapeInput, _start,
                                           _write_inputs, convert_in_child)
from core.meshes.mesh import mesh_from_arrays
from helpers import ROOT, icosphere

#: Small but passing the result check on a sphere (about 4 s in this process, 7 s in a child).
#: (Tuned with PyTorch's initialisation and no far-field samples, the defaults then: these tests
#: exercise the plumbing; the default recipe is measured in bench/time_to_accuracy.py.)
SMALL = ConversionSettings(layers=3, hidden=32, pool=200_000, samples=30_000, epochs=5, lr=1e-2,
                           batch_size=512, threads=1, seed=0,
                           init="uniform", far_fraction=0.0)
#: Training long enough to be interrupted (the tests stop it within the first epochs).
LONG = SMALL.replace(epochs=400)

posix_only = pytest.mark.skipif(os.name != "posix", reason="signals and /proc")


def sphere(name="ball"):
    V, F = icosphere(2, 1.0)
    return ShapeInput(name, V, F)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def test_child_gives_the_same_network_as_this_process():
    seen = []
    [r] = convert_in_child([sphere()], SMALL, progress=seen.append)
    assert isinstance(r, ChildResult), r
    reference = convert_checked(mesh_from_arrays(sphere().V, sphere().F, name="ball"), SMALL)
    assert all(np.array_equal(a, b) for a, b in zip(r.implicit.weights, reference.implicit.weights))
    assert np.array_equal(r.implicit.transform, reference.implicit.transform)
    assert r.verification == reference.implicit.metadata["verification"]
    assert r.verification["passed"] and r.warnings == []
    assert r.summary["epochs"] == 5
    stages = [p.stage for p in seen]
    assert "sampling" in stages and "training" in stages and stages[-1] == "checking"
    assert [p.epoch for p in seen if p.stage == "training"] == [1, 2, 3, 4, 5]
    assert {p.shape for p in seen} == {"ball"}          # every record names its shape


def test_a_stack_reports_each_shapes_epoch_loss_and_eta():
    """Shapes trained together: after each epoch of the stack, one record per shape with its epoch,
    loss and ETA; its sampling and checking records name it too."""
    seen = []
    outcomes = convert_in_child([sphere("ball"), sphere("other")], SMALL, together=True,
                                progress=seen.append)
    assert all(isinstance(o, ChildResult) for o in outcomes), outcomes
    for name, outcome in zip(("ball", "other"), outcomes):
        mine = [p for p in seen if p.shape == name]
        assert {"sampling", "training", "checking"} <= {p.stage for p in mine}
        training = [p for p in mine if p.stage == "training"]
        assert [(p.epoch, p.epochs) for p in training] == [(e, 5) for e in range(1, 6)]
        assert [p.fraction for p in training] == [e / 5 for e in range(1, 6)]
        assert training[-1].loss == pytest.approx(outcome.summary["final_loss"])
        assert training[0].eta > 0 and training[-1].eta == 0
        assert all(p.loss > 0 for p in training)
    assert all(p.shape for p in seen)


def test_bad_input_comes_back_as_the_core_error():
    V, _ = icosphere(1, 1.0)
    [r] = convert_in_child([ShapeInput("no faces", V, np.zeros((0, 3), dtype=np.int64))], SMALL)
    assert isinstance(r, InputError) and str(r) == "no faces: the mesh has no faces"


def test_shapes_trained_together_fail_alone():
    """A stack of two where one mesh is invalid: that one fails, the other converts and is checked."""
    V, _ = icosphere(1, 1.0)
    bad = ShapeInput("no faces", V, np.zeros((0, 3), dtype=np.int64))
    first, second = convert_in_child([bad, sphere()], SMALL, together=True)
    assert isinstance(first, InputError) and "no faces" in str(first)
    assert isinstance(second, ChildResult) and second.verification["passed"]


def test_another_core_first_on_sys_path_does_not_shadow_this_one(tmp_path, monkeypatch):
    shadow = tmp_path / "core"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('the wrong core was imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    V, _ = icosphere(1, 1.0)
    [r] = convert_in_child([ShapeInput("no faces", V, np.zeros((0, 3), dtype=np.int64))], SMALL)
    assert isinstance(r, InputError) and "the mesh has no faces" in str(r)


@posix_only
def test_a_child_killed_mid_training_becomes_a_clear_error():
    pids, epochs = [], []

    def progress(p):
        if p.stage == "training":
            epochs.append(p.epoch)
            if len(epochs) == 1:
                os.kill(pids[0], signal.SIGKILL)

    [r] = convert_in_child([sphere()], LONG, progress=progress, on_start=pids.append)
    assert isinstance(r, ChildDied)
    assert str(r) == "the training process died (killed by signal 9, SIGKILL, e.g. out of memory)"
    assert max(epochs) < 400 and not alive(pids[0])


def test_a_child_that_exits_without_a_word_becomes_a_clear_error(tmp_path):
    script = tmp_path / "fake_python"
    script.write_text("#!/bin/sh\necho 'Fatal Python error: something native' >&2\nexit 3\n")
    script.chmod(0o755)
    if os.name != "posix":
        pytest.skip("a shell script as the interpreter")
    [r] = convert_in_child([sphere()], SMALL, python=str(script))
    assert isinstance(r, ChildDied)
    assert str(r) == ("the training process died (exit status 3 without a result: "
                      "Fatal Python error: something native)")


def test_cancel_stops_the_child():
    from core.common.progress import CancelToken

    token, pids, epochs = CancelToken(), [], []

    def progress(p):
        if p.stage == "training":
            epochs.append(p.epoch)
            token.cancel()

    with pytest.raises(Cancelled):
        convert_in_child([sphere()], LONG, progress=progress, cancel=token, on_start=pids.append)
    assert epochs and max(epochs) < 400
    assert not alive(pids[0])          # stopped and reaped before convert_in_child returned


def test_the_child_exits_at_end_of_file_on_stdin(tmp_path):
    """Every platform's way of noticing that the caller is gone: its stdin closes."""
    _write_inputs(str(tmp_path), [sphere()], {
        "names": ["ball"], "settings": LONG.to_dict(), "target_error": None, "budget_bytes": None,
        "together": False, "attempts": 1})
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = _start(str(tmp_path), sys.executable, err)
        try:
            for line in proc.stdout:                     # wait until it trains
                if json.loads(line).get("progress", {}).get("stage") == "training":
                    break
            proc.stdin.close()
            assert proc.wait(30) == PARENT_GONE_EXIT
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()


@posix_only
def test_the_child_exits_when_its_parent_is_killed(tmp_path):
    """A parent process killed with SIGKILL (no cleanup of its own) takes its child with it."""
    parent_code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        sys.path.insert(0, {os.path.join(ROOT, 'tests')!r})
        from core.conversion.child_process import ShapeInput, convert_in_child
        from core.common.settings import ConversionSettings
        from helpers import icosphere
        V, F = icosphere(2, 1.0)
        settings = ConversionSettings.from_dict({LONG.to_dict()!r})
        def started(pid):
            print(pid, flush=True)
        def progress(p):
            if p.stage == "training":
                print("training", flush=True)
        convert_in_child([ShapeInput("ball", V, F)], settings, progress=progress, on_start=started)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "training"
        assert alive(child)
        parent.kill()
        parent.wait()
        end = time.monotonic() + 30
        while alive(child) and time.monotonic() < end:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()
