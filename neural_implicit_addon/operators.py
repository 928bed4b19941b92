"""Operators: convert selected meshes, remesh implicits, cancel the running job, show/hide the source.

Convert and Remesh share :class:`JobOperator`: ``execute`` runs the job to completion on the main
thread (scripts and background mode: ``bpy.ops.object.neural_implicit_convert()`` returns when the
objects exist), ``invoke`` in a UI session starts it in a thread and follows it with a modal timer
(status bar, panel progress, Esc to cancel), applying each object's result on the main thread as
soon as it is ready. The scene is only changed when results are applied, so a cancelled or failed
job leaves it as it was; when some objects were done before a cancel, the operator finishes (one
undo step) and says how many. Errors from core arrive as ``self.report({'ERROR'}, message)``.

Conversion trains in a child process (``core.child_process``, supervised by the job's thread), which
runs ``core.convert.convert_checked``: every network is checked against its mesh (core.verify) and
retried with the next seed when it fails. A failure, or the child's death, is an ERROR report with the
scene untouched; each applied object gets an INFO report with its check (errors as a share of the
shape's size and in scene units) and a WARNING per warning of the check (e.g. an open mesh).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
from bpy.props import BoolProperty, IntProperty

from . import bridge, jobs
from .core.errors import InputError
from .core.remesh import MAX_RESOLUTION, MIN_RESOLUTION
from .preferences import MISSING_TORCH, torch_available


def blocking() -> bool:
    """Whether ``invoke`` must run the job to completion (no event loop in background mode).
    A function so that tests can drive the modal path in background mode."""
    return bpy.app.background


def tag_redraw(context) -> None:
    wm = context.window_manager
    for window in (wm.windows if wm else ()):
        for area in window.screen.areas:
            if area.type in {'VIEW_3D', 'PROPERTIES'}:
                area.tag_redraw()


class JobOperator:
    """Mixin: run a :class:`jobs.Job` blocking (``execute``) or modal (``invoke``)."""

    _job = None
    _timer = None
    _applied = 0
    _errors = None
    _notes = None     # (kind, message) reports of applied results: the check's figures, warnings

    # subclasses: make_job(context) -> Job | None (reports and returns None when nothing to do);
    # apply(context, task, result); title / noun for messages
    noun = "object"

    @classmethod
    def poll_job(cls) -> bool:
        if jobs.active() is not None:
            cls.poll_message_set("A neural implicit job is running (Esc or Cancel in the sidebar stops it)")
            return False
        return True

    def execute(self, context):
        job = self._prepare(context)
        if job is None:
            return {'CANCELLED'}
        wm = context.window_manager
        show = not bpy.app.background and wm is not None
        if show:
            wm.progress_begin(0.0, 1.0)
        try:
            for event in job.run((lambda j: wm.progress_update(j.fraction())) if show else None):
                self._handle(context, job, event)
        finally:
            if show:
                wm.progress_end()
        return self._finish(context, job)

    def invoke(self, context, event):
        if blocking():
            return self.execute(context)
        job = self._prepare(context)
        if job is None:
            return {'CANCELLED'}
        self._job = job
        job.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        self._status(context)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        job = self._job
        if event.type == 'ESC' and event.value == 'PRESS':
            job.cancel()
            self._status(context)
            return {'RUNNING_MODAL'}
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        for ev in job.events():
            self._handle(context, job, ev)
        if not job.finished:
            self._status(context)
            return {'PASS_THROUGH'}
        for ev in job.events():  # posted between the last drain and the end
            self._handle(context, job, ev)
        self._cleanup(context)
        return self._finish(context, job)

    def cancel(self, context):
        """Blender stops the modal operator (a file is loaded, the window closes)."""
        if self._job is not None:
            self._job.cancel()
            self._job.done.wait(5.0)
        self._cleanup(context)

    # ------------------------------------------------------------------ shared
    def _prepare(self, context):
        self._applied = 0
        self._errors = []
        self._notes = []
        self._cancelled = False
        if jobs.active() is not None:
            self.report({'ERROR'}, "A neural implicit job is already running")
            return None
        try:
            return self.make_job(context)
        except InputError as exc:
            self.report({'ERROR'}, str(exc))
            return None

    def _handle(self, context, job, event):
        if event.kind == "done":
            task = job.tasks[event.index]
            try:
                self.apply(context, task, event.result)
                self._applied += 1
            except InputError as exc:
                self._errors.append(f"{task.name}: {exc}")
        elif event.kind == "error":
            self._errors.append(event.message)
        elif event.kind == "cancelled":
            self._cancelled = True
        tag_redraw(context)

    def _status(self, context):
        job = self._job
        if context.workspace is not None:
            context.workspace.status_text_set(f"{job.status()}   (Esc to cancel)")
        tag_redraw(context)

    def _cleanup(self, context):
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        tag_redraw(context)

    def _finish(self, context, job) -> set:
        total = len(job.tasks)
        for kind, message in self._notes:
            self.report(kind, message)
        for message in self._errors:
            self.report({'ERROR'}, message)
        if self._cancelled:
            if self._applied:
                self.report({'WARNING'}, f"{job.title} cancelled after {self._applied} of {total} "
                                         f"{self.noun}s")
                return {'FINISHED'}
            self.report({'WARNING'}, f"{job.title} cancelled: the scene is unchanged")
            return {'CANCELLED'}
        if not self._applied:
            return {'CANCELLED'}
        if not self._errors:
            self.report({'INFO'}, f"{job.title}: {self._applied} {self.noun}"
                                  f"{'s' if self._applied > 1 else ''} done")
        return {'FINISHED'}


# ============================================================================ convert

@dataclass(frozen=True)
class SizeMode:
    """How the network's size is chosen: "FIXED" (the settings' layers x hidden), "TARGET_ERROR"
    (core.sizing, smallest size reaching ``target_error``) or "BUDGET" (core.budget, most accurate
    network fitting ``budget_bytes``)."""

    mode: str = "FIXED"
    target_error: float = 0.003
    budget_bytes: int = 30_000

    @classmethod
    def from_scene(cls, s) -> "SizeMode":
        return cls(s.size_mode, float(f"{s.target_error:.7g}"), int(s.budget_bytes))

    def arguments(self) -> dict:
        """The size arguments of core.convert.convert_checked for this mode."""
        return {"target_error": self.target_error if self.mode == "TARGET_ERROR" else None,
                "budget_bytes": self.budget_bytes if self.mode == "BUDGET" else None}


def _shape(arrays: bridge.MeshArrays):
    from .core.child_process import ShapeInput
    return ShapeInput(arrays.name, arrays.V, arrays.F, arrays.weights)


def _convert_task(arrays: bridge.MeshArrays, settings, size: SizeMode = SizeMode()):
    """The worker's part of converting one mesh: a child process trains and checks it
    (core.child_process; no Blender data inside)."""

    def run(progress, cancel):
        from .core import child_process
        [outcome] = child_process.convert_in_child(
            [_shape(arrays)], settings, **size.arguments(), progress=progress, cancel=cancel,
            on_start=jobs.note_child)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return jobs.Task(arrays.name, run, {"importance": arrays.importance})


def _convert_batch(arrays_list: list, settings):
    """The worker's part of converting several meshes as one stack of networks trained together in
    one child process (core.batch_train.convert_many there: the same result per mesh as converting it
    alone, faster; each network is then checked alone). A mesh that fails fails alone."""

    def run(progress, cancel):
        from .core import child_process
        return child_process.convert_in_child(
            [_shape(a) for a in arrays_list], settings, together=True, progress=progress,
            cancel=cancel, on_start=jobs.note_child)

    return run


class OBJECT_OT_neural_implicit_convert(JobOperator, bpy.types.Operator):
    """Convert every selected mesh (with modifiers, in world space) into a neural implicit object"""

    bl_idname = "object.neural_implicit_convert"
    bl_label = "Convert to Neural Implicit"
    bl_options = {'REGISTER', 'UNDO'}
    noun = "object"

    @classmethod
    def poll(cls, context):
        return cls.poll_job()

    def make_job(self, context):
        if not torch_available():
            raise InputError(MISSING_TORCH)
        selected = list(context.selected_objects)
        if not selected:
            raise InputError("Nothing is selected: select one or more mesh objects to convert")
        meshes = [o for o in selected if o.type == 'MESH']
        others = [o for o in selected if o.type != 'MESH']
        if not meshes:
            names = ", ".join(f"{o.name} ({o.type.lower()})" for o in others[:3])
            raise InputError(f"No mesh object is selected ({names}): only meshes can be converted")
        if others:
            self.report({'WARNING'}, f"Skipping {len(others)} object(s) that are not meshes: "
                                     + ", ".join(o.name for o in others[:3]))
        settings = context.scene.neural_implicit_settings.to_core()
        if context.mode != 'OBJECT' and context.active_object is not None:
            bpy.ops.object.mode_set(mode='OBJECT')   # flushes Edit Mode selection into the mesh
        depsgraph = context.evaluated_depsgraph_get()
        size = SizeMode.from_scene(context.scene.neural_implicit_settings)
        arrays = [bridge.evaluated_mesh_arrays(o, depsgraph) for o in meshes]
        tasks = [_convert_task(a, settings, size) for a in arrays]
        # several meshes of one fixed architecture train together as one stack
        batch = _convert_batch(arrays, settings) if len(arrays) > 1 and size.mode == "FIXED" else None
        return jobs.Job("Converting", tasks, batch=batch)

    def apply(self, context, task, result):
        source = bpy.data.objects.get(task.name)
        collections = tuple(source.users_collection) if source is not None else ()
        obj = bridge.new_implicit_object(f"{task.name}_implicit", result.implicit, collections)
        self._notes.append(({'INFO'}, f"{obj.name}: "
                            + bridge.verification_summary(context.scene, obj)))
        self._notes.extend(({'WARNING'}, f"{task.name}: {w}") for w in result.warnings)
        obj.neural_implicit.source = source
        view_layer = context.view_layer
        deselect = ()
        if source is not None:
            obj.color = source.color
            deselect = (source,)
            if context.scene.neural_implicit_settings.hide_source:
                try:
                    source.hide_set(True, view_layer=view_layer)
                except RuntimeError:  # not in this view layer: nothing to hide
                    pass
        bridge.make_active(view_layer, obj, deselect)


# ============================================================================ remesh

def _remesh_task(name: str, implicit, resolution: int):
    def run(progress, cancel):
        from .core.remesh import remesh
        return remesh(implicit, resolution, progress=progress, cancel=cancel)

    return jobs.Task(name, run)


class OBJECT_OT_neural_implicit_remesh(JobOperator, bpy.types.Operator):
    """Extract the surface of each selected neural implicit as a new mesh object (marching cubes)"""

    bl_idname = "object.neural_implicit_remesh"
    bl_label = "Remesh Neural Implicit"
    bl_options = {'REGISTER', 'UNDO'}
    noun = "object"

    resolution: IntProperty(
        name="Resolution", default=128, min=MIN_RESOLUTION, max=MAX_RESOLUTION,
        description="Marching cubes cells per axis of the implicit's bounding cube")

    @classmethod
    def poll(cls, context):
        return cls.poll_job()

    def make_job(self, context):
        targets = [o for o in context.selected_objects if bridge.is_implicit(o)]
        active = context.active_object
        if bridge.is_implicit(active) and active not in targets:
            targets.append(active)
        if not targets:
            raise InputError("No neural implicit is selected: select an implicit object to remesh")
        tasks = []
        for obj in targets:
            try:
                tasks.append(_remesh_task(obj.name, bridge.implicit_from_object(obj), self.resolution))
            except InputError as exc:
                self.report({'ERROR'}, str(exc))
        return jobs.Job("Remeshing", tasks) if tasks else None

    def apply(self, context, task, result):
        source = bpy.data.objects.get(task.name)
        if source is None:
            raise InputError("the implicit object was deleted while remeshing")
        obj = bridge.new_mesh_object(f"{task.name}_remesh", result.V, result.F,
                                     source.matrix_world.copy(), tuple(source.users_collection))
        bridge.make_active(context.view_layer, obj, tuple(context.selected_objects))


# ============================================================================ small ones

class OBJECT_OT_neural_implicit_cancel(bpy.types.Operator):
    """Stop the running conversion or remeshing (the scene stays as it was)"""

    bl_idname = "object.neural_implicit_cancel"
    bl_label = "Cancel"
    bl_options = {'INTERNAL'}

    @classmethod
    def poll(cls, context):
        return jobs.active() is not None

    def execute(self, context):
        jobs.cancel_active()
        return {'FINISHED'}


class OBJECT_OT_neural_implicit_show_source(bpy.types.Operator):
    """Show or hide the mesh the active implicit was converted from"""

    bl_idname = "object.neural_implicit_show_source"
    bl_label = "Show Source Mesh"
    bl_options = {'REGISTER', 'UNDO'}

    show: BoolProperty(name="Show", default=True)

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        if not bridge.is_implicit(obj) or obj.neural_implicit.source is None:
            cls.poll_message_set("The active object is no implicit with a source mesh")
            return False
        return True

    def execute(self, context):
        source = context.active_object.neural_implicit.source
        if source.name not in context.view_layer.objects:
            self.report({'ERROR'}, f"{source.name} is not in this view layer")
            return {'CANCELLED'}
        source.hide_set(not self.show)
        return {'FINISHED'}


classes = (OBJECT_OT_neural_implicit_convert, OBJECT_OT_neural_implicit_remesh,
           OBJECT_OT_neural_implicit_cancel, OBJECT_OT_neural_implicit_show_source)
