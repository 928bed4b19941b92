"""Trust in real Blender: training runs in a child process whose death (here a real SIGKILL) leaves
Blender running and the scene untouched; every conversion is checked and reported with units; a
stored network that cannot be read is decoded once, not on every redraw.

An ERROR report makes ``bpy.ops`` raise RuntimeError("Error: <message>") in scripts; INFO and WARNING
reports are printed, so the tests read them from the captured output.
"""

import base64
import hashlib
import importlib
import logging
import os
import re
import signal
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from .scenes import SMALL, new_scene, scene_state

#: Small but passing the check on Suzanne (as in test_addon_convert.py).


@pytest.fixture(scope="module")
def ni(blender):
    pkg = blender.package
    return SimpleNamespace(bpy=blender.bpy, pkg=pkg, **{
        "core_" * ("." in name) + name.rpartition(".")[2]: importlib.import_module(f"{pkg}.{name}")
        for name in ("bridge", "jobs", "operators", "panels", "core.conversion.verify")})


def wait_for_child_training(ni, timeout=120.0):
    """The running job, once its child process reports a training epoch."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = ni.jobs.active()
        if (job is not None and job.child_pid is not None and job.latest is not None
                and job.latest.stage == "training"):
            return job
        time.sleep(0.02)
    raise AssertionError("the job never reached training")


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_killing_the_training_process_leaves_blender_and_the_scene(ni, capfd):
    bpy = ni.bpy
    new_scene(bpy, epochs=400)
    bpy.ops.mesh.primitive_monkey_add()
    before = scene_state(bpy)
    seen = {}

    def killer():
        job = wait_for_child_training(ni)
        seen["pid"], seen["epoch"] = job.child_pid, job.latest.epoch
        assert job.child_pid != os.getpid()
        os.kill(job.child_pid, signal.SIGKILL)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        with pytest.raises(RuntimeError) as excinfo:
            bpy.ops.object.neural_implicit_convert()
    finally:
        thread.join(120)
    message = str(excinfo.value)
    assert ("Suzanne: the training process died (killed by signal 9, SIGKILL, e.g. out of memory); "
            "Blender and your scene are unaffected") in message, message
    assert "Traceback" not in message and seen["epoch"] < 400
    assert scene_state(bpy) == before and not bpy.data.objects["Suzanne"].hide_get()
    assert ni.jobs.active() is None
    # Blender is alive and converts again
    bpy.context.scene.neural_implicit_settings.epochs = SMALL["epochs"]
    assert bpy.ops.object.neural_implicit_convert() == {'FINISHED'}
    assert bpy.data.objects["Suzanne_implicit"].neural_implicit.is_implicit
    assert "Traceback" not in "".join(capfd.readouterr())


def test_conversion_reports_its_check_with_units(ni, capfd):
    bpy = ni.bpy
    new_scene(bpy)
    bpy.ops.mesh.primitive_monkey_add(location=(1.0, 2.0, 3.0))
    src = bpy.context.active_object
    V = np.array([src.matrix_world @ v.co for v in src.data.vertices])
    assert bpy.ops.object.neural_implicit_convert() == {'FINISHED'}
    obj = bpy.data.objects["Suzanne_implicit"]
    implicit = ni.bridge.implicit_from_object(obj)
    check = implicit.metadata["verification"]
    assert check["passed"] and 0 < check["chamfer"] < 0.05
    # the unit of every error figure: the source's radius (bounding-box centre to farthest vertex)
    radius = np.linalg.norm(V - 0.5 * (V.min(0) + V.max(0)), axis=1).max()
    assert ni.bridge.source_radius(obj, implicit) == pytest.approx(radius, rel=1e-5)
    percent = ni.core_verify.format_fraction(check["chamfer"])
    millimetres = check["chamfer"] * radius * 1000
    line = f"Chamfer {percent} of size ({millimetres:.3g} mm)"
    if millimetres >= 10:
        line = f"Chamfer {percent} of size ({millimetres / 10:.3g} cm)"
    out = "".join(capfd.readouterr())
    assert f"Suzanne_implicit: {line}, sign agreement" in out, out
    rows = dict(ni.panels.check_rows(bpy.context.scene, obj, implicit))
    assert rows["Chamfer"] == line.removeprefix("Chamfer ") and rows["Check"].startswith("passed")
    assert re.fullmatch(r"\d+\.\d% \(\d+\.\d% near\)", rows["Sign Agreement"])
    bpy.context.scene.unit_settings.system = 'NONE'
    assert ni.panels.check_rows(bpy.context.scene, obj, implicit)[0][1].endswith(" units)")
    obj.scale = (2.0, 2.0, 2.0)                                 # the shape doubles in the scene
    bpy.context.view_layer.update()
    assert ni.bridge.source_radius(obj, implicit) == pytest.approx(2 * radius, rel=1e-5)


def test_a_conversion_failing_its_check_is_an_error_and_changes_nothing(ni):
    bpy = ni.bpy
    new_scene(bpy, layers=1, hidden=2, epochs=1, samples=20_000)   # cannot fit a sphere
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=2)
    before = scene_state(bpy)
    with pytest.raises(RuntimeError, match=r"Icosphere: the conversion failed its check 3 time\(s\)"):
        bpy.ops.object.neural_implicit_convert()
    assert scene_state(bpy) == before


def corrupt_object(bpy, name, payload: bytes):
    """An implicit object whose stored bytes are ``payload`` (their key matches, so they get decoded)."""
    obj = bpy.data.objects.new(name, None)
    bpy.context.scene.collection.objects.link(obj)
    props = obj.neural_implicit
    props.data = base64.b64encode(payload).decode("ascii")
    props.key = hashlib.sha256(payload).hexdigest()
    props.is_implicit = True
    return obj


class Layout:
    """Records what a panel draws (labels); everything else is accepted and ignored."""

    def __init__(self):
        self.labels = []

    def label(self, text="", icon='NONE'):
        self.labels.append((icon, text))

    def __getattr__(self, name):
        return lambda *args, **kwargs: self


def test_unreadable_stored_bytes_are_decoded_once_and_shown(ni, monkeypatch, caplog):
    bpy, bridge = ni.bpy, ni.bridge
    new_scene(bpy)
    bridge.clear_cache()
    calls = []
    decode = bridge.implicit_from_bytes
    monkeypatch.setattr(bridge, "implicit_from_bytes", lambda *a: calls.append(1) or decode(*a))
    obj = corrupt_object(bpy, "Broken", b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    bpy.context.view_layer.objects.active = obj
    caplog.set_level(logging.WARNING)
    panel = SimpleNamespace(layout=None)
    for _ in range(5):                                    # redraws: viewport items and the panel
        assert bridge.draw_items(bpy.context) == []
        panel.layout = Layout()
        ni.panels.NI_PT_implicit.draw(panel, bpy.context)
        with pytest.raises(ni.bridge.FileFormatError, match="Broken: the stored network"):
            bridge.evaluate_world(obj, np.zeros((1, 3)))
    assert len(calls) == 1
    [(icon, text)] = panel.layout.labels
    assert icon == 'ERROR' and text.startswith("Cannot read: Broken: the stored network: ")
    assert sum("cannot read Broken" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(RuntimeError, match="Broken: the stored network"):   # operators say it too
        bpy.ops.object.neural_implicit_remesh()
    assert len(calls) == 1
    # other bytes are other bytes: decoded once more; a duplicate with the same bytes is not
    twin = corrupt_object(bpy, "Twin", b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(ni.bridge.FileFormatError, match="Twin: the stored network"):
        bridge.implicit_from_object(twin)
    assert len(calls) == 1
    obj.neural_implicit.data = base64.b64encode(b"something else").decode("ascii")
    obj.neural_implicit.key = hashlib.sha256(b"something else").hexdigest()
    for _ in range(3):
        bridge.draw_items(bpy.context)
    assert len(calls) == 2


def test_oversized_stored_text_is_refused_before_decoding(ni, monkeypatch):
    bpy, bridge = ni.bpy, ni.bridge
    new_scene(bpy)
    bridge.clear_cache()
    calls = []
    monkeypatch.setattr(bridge, "stored_bytes", lambda obj: calls.append(1) or b"")
    monkeypatch.setattr(bridge, "MAX_STORED_CHARS", 1_000)
    obj = corrupt_object(bpy, "Huge", b"\0" * 1_500)
    with pytest.raises(bridge.FileFormatError, match="Huge: the stored network is 2,000 characters"):
        bridge.implicit_from_object(obj)
    assert bridge.draw_items(bpy.context) == [] and calls == []
