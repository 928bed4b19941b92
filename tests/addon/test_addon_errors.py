"""What users get when things go wrong: a report with the core's message and no traceback, and a scene
left as it was. Also cancelling (blocking and modal) and the PyTorch preferences.

An ERROR report makes ``bpy.ops`` raise RuntimeError("Error: <message>") in scripts: that is how a
report reaches a script, so the tests check the exception's message.
"""

import importlib
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from .scenes import new_scene, scene_state


@pytest.fixture(scope="module")
def ni(blender):
    pkg = blender.package
    return SimpleNamespace(bpy=blender.bpy, pkg=pkg, **{
        name: importlib.import_module(f"{pkg}.{name}")
        for name in ("bridge", "jobs", "operators", "preferences")})


def no_traceback(excinfo):
    text = str(excinfo.value)
    assert "Traceback" not in text and "Python:" not in text, text
    return text


def test_nothing_selected_reports(ni):
    bpy = ni.bpy
    new_scene(bpy)
    bpy.ops.mesh.primitive_monkey_add()
    bpy.ops.object.select_all(action='DESELECT')
    before = scene_state(bpy)
    with pytest.raises(RuntimeError, match="Nothing is selected") as excinfo:
        bpy.ops.object.neural_implicit_convert()
    no_traceback(excinfo)
    assert scene_state(bpy) == before


def test_non_mesh_object_reports(ni):
    bpy = ni.bpy
    new_scene(bpy)
    bpy.ops.object.camera_add()
    before = scene_state(bpy)
    with pytest.raises(RuntimeError, match=r"No mesh object is selected \(Camera \(camera\)\)") as excinfo:
        bpy.ops.object.neural_implicit_convert()
    no_traceback(excinfo)
    assert scene_state(bpy) == before


def test_empty_mesh_reports_the_core_message(ni):
    bpy = ni.bpy
    new_scene(bpy)
    obj = bpy.data.objects.new("Empty Mesh", bpy.data.meshes.new("Empty Mesh"))
    bpy.context.scene.collection.objects.link(obj)
    obj.select_set(True)
    before = scene_state(bpy)
    with pytest.raises(RuntimeError, match="Empty Mesh: the mesh has no faces") as excinfo:
        bpy.ops.object.neural_implicit_convert()
    no_traceback(excinfo)
    assert scene_state(bpy) == before


def test_a_bad_object_does_not_stop_the_others(ni):
    bpy = ni.bpy
    new_scene(bpy)
    bpy.ops.mesh.primitive_monkey_add()
    obj = bpy.data.objects.new("Empty Mesh", bpy.data.meshes.new("Empty Mesh"))
    bpy.context.scene.collection.objects.link(obj)
    obj.select_set(True)
    with pytest.raises(RuntimeError, match="Empty Mesh: the mesh has no faces"):
        bpy.ops.object.neural_implicit_convert()
    assert bpy.data.objects["Suzanne_implicit"].neural_implicit.is_implicit
    assert "Empty Mesh_implicit" not in bpy.data.objects


def test_missing_torch_reports_and_everything_else_still_works(ni, monkeypatch, tmp_path):
    bpy = ni.bpy
    new_scene(bpy)
    bpy.ops.mesh.primitive_monkey_add()
    assert bpy.ops.object.neural_implicit_convert() == {'FINISHED'}
    implicit = bpy.data.objects["Suzanne_implicit"]
    bpy.data.objects["Suzanne"].select_set(True)
    monkeypatch.setitem(sys.modules, "torch", None)      # `import torch` fails, find_spec says None
    assert not ni.preferences.torch_available()
    before = scene_state(bpy)
    with pytest.raises(RuntimeError, match="PyTorch is not installed") as excinfo:
        bpy.ops.object.neural_implicit_convert()
    no_traceback(excinfo)
    assert scene_state(bpy) == before
    # without torch: remesh, export, import
    bpy.ops.object.select_all(action='DESELECT')
    implicit.select_set(True)
    bpy.context.view_layer.objects.active = implicit
    assert bpy.ops.object.neural_implicit_remesh(resolution=24, keep_original=True) == {'FINISHED'}
    bpy.context.view_layer.objects.active = implicit
    path = tmp_path / "s.h5"
    assert bpy.ops.export_scene.neural_implicit(filepath=str(path)) == {'FINISHED'}
    assert bpy.ops.import_scene.neural_implicit(filepath=str(path)) == {'FINISHED'}


def wait_for_training(ni, timeout=60.0):
    """The running job, once it reports a training epoch."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = ni.jobs.active()
        if job is not None and job.latest is not None and job.latest.stage == "training":
            return job
        time.sleep(0.02)
    raise AssertionError("the job never reached training")


def test_cancel_mid_training_leaves_the_scene_as_before(ni, capfd):
    bpy = ni.bpy
    new_scene(bpy, epochs=400)
    bpy.ops.mesh.primitive_monkey_add()
    before = scene_state(bpy)
    seen = {}

    def canceller():
        job = wait_for_training(ni)
        seen["epoch"] = job.latest.epoch
        ni.jobs.cancel_active()

    thread = threading.Thread(target=canceller)
    thread.start()
    try:
        result = bpy.ops.object.neural_implicit_convert()
    finally:
        thread.join(60)
    assert result == {'CANCELLED'} and seen["epoch"] < 400
    assert scene_state(bpy) == before and not bpy.data.objects["Suzanne"].hide_get()
    assert ni.jobs.active() is None
    out = capfd.readouterr()
    assert "cancelled: the scene is unchanged" in out.out + out.err
    assert "Traceback" not in out.out + out.err


class FakeContext:
    """bpy.context with a window manager and workspace that record what the modal path does."""

    def __init__(self, bpy):
        self._real = bpy.context
        self.status = []
        self.timers = []
        self.window = None
        self.window_manager = SimpleNamespace(
            windows=[], event_timer_add=lambda *a, **k: self.timers.append("timer") or "timer",
            event_timer_remove=lambda t: self.timers.remove(t),
            modal_handler_add=lambda op: None)
        self.workspace = SimpleNamespace(status_text_set=self.status.append)

    def __getattr__(self, name):
        return getattr(self._real, name)


def modal_operator(ni, cls):
    """An instance of the operator's Python logic outside Blender's operator machinery."""

    class Op(ni.operators.JobOperator):
        make_job = cls.make_job
        apply = cls.apply
        noun = cls.noun

        def __init__(self):
            self.reports = []

        def report(self, kind, message):
            self.reports.append((set(kind), message))

    return Op()


def run_modal(op, context, until=None, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if until is not None and until():
            return None
        result = op.modal(context, SimpleNamespace(type='TIMER', value='NOTHING'))
        if result != {'PASS_THROUGH'}:
            return result
        time.sleep(0.05)
    raise AssertionError("the modal operator did not finish")


def test_modal_convert_runs_in_a_thread_reports_progress_and_applies(ni, monkeypatch):
    """The UI path (invoke + timer), driven by hand: background mode has no event loop."""
    bpy = ni.bpy
    monkeypatch.setattr(ni.operators, "blocking", lambda: False)
    new_scene(bpy, epochs=4)
    bpy.ops.mesh.primitive_monkey_add()
    context = FakeContext(bpy)
    op = modal_operator(ni, ni.operators.OBJECT_OT_neural_implicit_convert)
    assert op.invoke(context, SimpleNamespace(type='LEFTMOUSE', value='PRESS')) == {'RUNNING_MODAL'}
    job = ni.jobs.active()
    assert job is not None and job._thread is not None and job._thread is not threading.current_thread()
    assert not ni.operators.OBJECT_OT_neural_implicit_convert.poll(bpy.context)  # one job at a time
    assert run_modal(op, context) == {'FINISHED'}
    assert bpy.data.objects["Suzanne_implicit"].neural_implicit.is_implicit
    assert bpy.data.objects["Suzanne"].hide_get()
    statuses = [s for s in context.status if s]
    assert any("epoch" in s and "loss" in s and "ETA" in s and "Suzanne" in s for s in statuses), statuses
    assert context.status[-1] is None and context.timers == []          # status bar and timer cleared
    assert ({'INFO'}, "Converting: 1 object done") in op.reports


def test_modal_convert_escape_cancels_cleanly(ni, monkeypatch):
    bpy = ni.bpy
    monkeypatch.setattr(ni.operators, "blocking", lambda: False)
    new_scene(bpy, epochs=400)
    bpy.ops.mesh.primitive_monkey_add()
    before = scene_state(bpy)
    context = FakeContext(bpy)
    op = modal_operator(ni, ni.operators.OBJECT_OT_neural_implicit_convert)
    assert op.invoke(context, SimpleNamespace(type='LEFTMOUSE', value='PRESS')) == {'RUNNING_MODAL'}
    job = ni.jobs.active()
    run_modal(op, context, until=lambda: job.latest is not None and job.latest.stage == "training")
    assert op.modal(context, SimpleNamespace(type='ESC', value='PRESS')) == {'RUNNING_MODAL'}
    assert "cancelling" in context.status[-1]
    assert run_modal(op, context) == {'CANCELLED'}
    assert job.latest.epoch < 400
    assert scene_state(bpy) == before
    assert ({'WARNING'}, "Converting cancelled: the scene is unchanged") in op.reports
    assert ni.jobs.active() is None and context.timers == []


def test_importing_a_broken_file_reports(ni, tmp_path):
    bpy = ni.bpy
    new_scene(bpy)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(RuntimeError, match="bad.h5") as excinfo:
        bpy.ops.import_scene.neural_implicit(filepath=str(bad))
    no_traceback(excinfo)
    with pytest.raises(RuntimeError, match="no such file"):
        bpy.ops.import_scene.neural_implicit(filepath=str(tmp_path / "missing.h5"))
    assert len(bpy.data.objects) == 0


def test_remesh_without_an_implicit_reports(ni):
    bpy = ni.bpy
    new_scene(bpy)
    bpy.ops.mesh.primitive_monkey_add()
    with pytest.raises(RuntimeError, match="No neural implicit is selected") as excinfo:
        bpy.ops.object.neural_implicit_remesh()
    no_traceback(excinfo)


def test_install_torch_is_refused_without_online_access(ni, monkeypatch):
    monkeypatch.setattr(ni.preferences, "online_access", lambda: False)
    with pytest.raises(RuntimeError, match="Online access is disabled") as excinfo:
        ni.bpy.ops.preferences.neural_implicit_install_torch()
    no_traceback(excinfo)


def test_install_torch_offline_gives_a_clear_error(ni, monkeypatch):
    """pip against an index nobody serves (port 9, discard): fails fast with a readable reason."""
    prefs = ni.preferences
    monkeypatch.setattr(prefs, "online_access", lambda: True)
    monkeypatch.setitem(prefs.INDEX_URLS, "CPU", "http://127.0.0.1:9/simple")
    monkeypatch.setattr(prefs, "PIP_TIMEOUT", 2)
    cmd = prefs.pip_command("CPU", "/target")
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--target" in cmd and f"torch=={prefs.TORCH_VERSION}" == cmd[-1]
    with pytest.raises(RuntimeError, match="Could not install PyTorch: the package index could not "
                                           "be reached") as excinfo:
        ni.bpy.ops.preferences.neural_implicit_install_torch(variant='CPU')
    no_traceback(excinfo)
    assert prefs.installing() is None


def test_site_packages_preference_extends_sys_path_for_torch_only_and_reversibly(ni, blender, tmp_path):
    prefs = ni.bpy.context.preferences.addons[blender.package].preferences
    fake = tmp_path / "env" / "site-packages"
    (fake / "torch_like").mkdir(parents=True)
    try:
        prefs.site_packages = str(fake)
        added = ni.preferences.add_torch_paths()
        assert str(fake) in added and sys.path[-len(added):] == added     # appended, not prepended
        prefs.site_packages = ""
        assert str(fake) not in ni.preferences.add_torch_paths() and str(fake) not in sys.path
    finally:
        prefs.site_packages = ""
        ni.preferences.add_torch_paths()
