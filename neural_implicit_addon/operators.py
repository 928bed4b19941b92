"""Operators: convert selected meshes, turn implicits back into meshes, cancel the running job,
show/hide the source.

Convert carries every conversion setting as an operator property (derived, like the scene's
settings, by ``properties.conversion_properties``), each one not given explicitly seeded from the
scene's settings when it runs, so Adjust Last Operation (F9) shows the values used and re-runs with
changes. Convert to Mesh (``neural_implicit_remesh``) replaces each implicit by its mesh as
Blender's Apply / Convert do (``bridge.replace_with_mesh``; ``keep_original`` keeps it). Started from
Edit Mode or a paint mode, a job goes to Object Mode and comes back to that mode when it ends.

Convert and Remesh share :class:`JobOperator`: ``execute`` runs the job to completion on the main
thread (scripts and background mode: ``bpy.ops.object.neural_implicit_convert()`` returns when the
objects exist), ``invoke`` in a UI session starts it in a thread and follows it with a modal timer
(status bar, panel progress, Esc to cancel), applying each object's result on the main thread as
soon as it is ready. The scene is only changed when results are applied, so a cancelled or failed
job leaves it as it was; when some objects were done before a cancel, the operator finishes (one
undo step) and says how many. Errors from core arrive as ``self.report({'ERROR'}, message)``.

Conversion trains in a child process (``core.conversion.child_process``, supervised by the job's
thread), which runs ``core.conversion.checked.convert_checked``: every network is checked against
its mesh (core.conversion.verify) and retried with the next seed when it fails. A failure, or the
child's death, is an ERROR report with the scene untouched; each applied object gets an INFO report
with its check (errors as a share of the shape's size and in scene units) and a WARNING per warning
of the check (e.g. an open mesh).
"""

from __future__ import annotations

from dataclasses import fields

import bpy
from bpy.props import BoolProperty

from . import bridge, jobs, properties
from .core.common.errors import InputError
from .core.common.settings import ConversionSettings
from .core.conversion.checked import SizeMode
from .preferences import MISSING_TORCH, torch_available


def blocking() -> bool:
    """Whether ``invoke`` must run the job to completion (no event loop in background mode).
    A function so that tests can drive the modal path in background mode."""
    return bpy.app.background


def tag_redraw(context) -> None:
    """Redraw the 3D views and the properties editor (the implicit's panels)."""
    bridge.tag_view3d_redraw(context, {'VIEW_3D', 'PROPERTIES'})


class JobOperator:
    """Mixin: run a :class:`jobs.Job` blocking (``execute``) or modal (``invoke``)."""

    _job = None
    _timer = None
    _applied = 0
    _errors = None
    _notes = None     # (kind, message) reports of applied results: the check's figures, warnings
    _restore = None   # (object name, mode) to go back to when the job ends (Edit Mode, ...)

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
        self._restore = None
        if jobs.active() is not None:
            self.report({'ERROR'}, "A neural implicit job is already running")
            return None
        try:
            return self.make_job(context)
        except InputError as exc:
            self.report({'ERROR'}, str(exc))
            self._restore_mode(context)
            return None

    def _leave_mode(self, context) -> None:
        """Go to Object Mode (flushing Edit Mode's selection into the mesh) and remember the mode to
        come back to when the job ends."""
        active = context.active_object
        if active is not None and active.mode != 'OBJECT':
            self._restore = (active.name, active.mode)
            bpy.ops.object.mode_set(mode='OBJECT')

    def _restore_mode(self, context) -> None:
        """Back into the mode the job was started from (Edit Mode, Weight Paint, ...), on the object
        that was active then, if it is still there and nothing else changed the mode meanwhile."""
        restore, self._restore = self._restore, None
        if restore is None:
            return
        name, mode = restore
        obj = bpy.data.objects.get(name)
        view_layer = context.view_layer
        if obj is None or obj.name not in view_layer.objects or context.mode != 'OBJECT':
            return
        view_layer.objects.active = obj
        try:
            obj.select_set(True, view_layer=view_layer)
            bpy.ops.object.mode_set(mode=mode)
        except RuntimeError as exc:    # hidden meanwhile, or a mode this object cannot enter
            self.report({'WARNING'}, f"Could not return to {mode.replace('_', ' ').title()} "
                                     f"on {name}: {exc}")

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
        self._restore_mode(context)
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

def size_from(owner) -> SizeMode:
    """The core.conversion.checked.SizeMode held by ``owner`` (the scene's settings or the
    operator's)."""
    return SizeMode(owner.size_mode.lower(), float(f"{owner.target_error:.7g}"),
                    int(owner.budget_bytes))


def _shape(arrays: bridge.MeshArrays):
    from .core.conversion.child_process import ShapeInput
    return ShapeInput(arrays.name, arrays.V, arrays.F, arrays.weights)


def _convert_task(arrays: bridge.MeshArrays, settings, size: SizeMode = SizeMode()):
    """The worker's part of converting one mesh: a child process trains and checks it
    (core.conversion.child_process; no Blender data inside)."""

    def run(progress, cancel):
        from .core.conversion import child_process
        [outcome] = child_process.convert_in_child(
            [_shape(arrays)], settings, **size.arguments(), progress=progress, cancel=cancel,
            on_start=jobs.note_child)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return jobs.Task(arrays.name, run, {"importance": arrays.importance})


def _convert_batch(arrays_list: list, settings):
    """The worker's part of converting several meshes as one stack of networks trained together in
    one child process (core.conversion.batch_train.convert_many there: the same result per mesh as
    converting it alone, faster; each network is then checked alone). A mesh that fails fails
    alone."""

    def run(progress, cancel):
        from .core.conversion import child_process
        return child_process.convert_in_child(
            [_shape(a) for a in arrays_list], settings, together=True, progress=progress,
            cancel=cancel, on_start=jobs.note_child)

    return run


def conversion_options(op, context):
    """What a conversion reads its options from: the Convert operator's properties, each one not
    given explicitly (by a script, or F9) first set from the scene's settings, so that Adjust Last
    Operation shows the values used and re-runs with the user's changes. The operator's logic run
    outside Blender's machinery (tests of the modal path) has no properties: the scene's settings."""
    scene = context.scene.neural_implicit_settings
    props = getattr(op, "properties", None)
    if props is None:
        return scene
    for name in properties.CONVERSION_OPTIONS:
        if not props.is_property_set(name):
            setattr(op, name, getattr(scene, name))
    return op


def draw_conversion_options(layout, owner) -> None:
    """The main conversion options of ``owner`` (the scene's settings or the Convert operator): the
    size mode and the settings the panel shows first, less those the mode decides itself."""
    layout.prop(owner, "size_mode")
    if owner.size_mode == 'TARGET_ERROR':
        layout.prop(owner, "target_error")
    elif owner.size_mode == 'BUDGET':
        layout.prop(owner, "budget_bytes")
    decided = size_from(owner).decides
    for name in properties.MAIN_SETTINGS:
        if name not in decided:
            layout.prop(owner, name)


def draw_advanced_options(layout, owner) -> None:
    """The other conversion options of ``owner``: hiding the source and every remaining setting."""
    layout.prop(owner, "hide_source")
    decided = size_from(owner).decides
    for f in fields(ConversionSettings):
        if f.name not in properties.MAIN_SETTINGS and f.name not in decided:
            layout.prop(owner, f.name)


class OBJECT_OT_neural_implicit_convert(JobOperator, bpy.types.Operator):
    """Convert every selected mesh (with modifiers, in world space) into a neural implicit object"""

    bl_idname = "object.neural_implicit_convert"
    bl_label = "Convert to Neural Implicit"
    bl_options = {'REGISTER', 'UNDO'}
    noun = "object"

    # one property per conversion setting (core.common.settings.ConversionSettings, via
    # properties.py), seeded from the scene's settings: Adjust Last Operation (F9) shows and re-runs
    # them
    __annotations__ = properties.conversion_properties(options={'SKIP_SAVE'})

    @classmethod
    def poll(cls, context):
        return cls.poll_job()

    def draw(self, context):
        layout = bridge.property_column(self.layout)
        draw_conversion_options(layout.column(), self)
        header, body = layout.panel("NI_convert_advanced", default_closed=True)
        header.label(text="Advanced")
        if body is not None:
            draw_advanced_options(body.column(), self)

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
        options = conversion_options(self, context)
        settings = properties.settings_from(options)
        size = size_from(options)
        self._leave_mode(context)        # Edit Mode's selection is read from the mesh
        # started from Edit Mode (or a paint mode) the user goes on working on the source: it stays
        # visible and active, and the mode comes back when the job ends
        self._hide_source = bool(options.hide_source) and self._restore is None
        self._device = settings.device
        depsgraph = context.evaluated_depsgraph_get()
        arrays = [bridge.evaluated_mesh_arrays(o, depsgraph) for o in meshes]
        tasks = [_convert_task(a, settings, size) for a in arrays]
        # several meshes of one fixed architecture train together as one stack (the status bar
        # shows the stack's epoch with each one's loss, and the ETA); other sizes one at a time
        together = len(arrays) > 1 and size.mode == "fixed"
        batch = _convert_batch(arrays, settings) if together else None
        return jobs.Job("Converting", tasks, batch=batch)

    def apply(self, context, task, result):
        source = bpy.data.objects.get(task.name)
        collections = tuple(source.users_collection) if source is not None else ()
        obj = bridge.new_implicit_object(f"{task.name}_implicit", result.implicit, collections)
        self._notes.append(({'INFO'}, f"{obj.name}: "
                            + bridge.verification_summary(context.scene, obj)))
        self._notes.extend(({'WARNING'}, f"{task.name}: {w}") for w in result.warnings)
        used = str(result.implicit.metadata.get("device", ""))
        if getattr(self, "_device", "") == "mps" and used and not used.startswith("mps"):
            self._notes.append(({'WARNING'}, f"{task.name}: Apple's MPS was not usable here "
                                             "(core.training.train.pick_device); trained on the "
                                             f"{used.upper()}"))
        obj.neural_implicit.source = source
        view_layer = context.view_layer
        deselect = ()
        if source is not None:
            obj.color = source.color
            deselect = (source,)
            if getattr(self, "_hide_source", True):
                try:
                    source.hide_set(True, view_layer=view_layer)
                except RuntimeError:  # not in this view layer: nothing to hide
                    pass
        if self._restore is None:
            bridge.make_active(view_layer, obj, deselect)


# ============================================================================ remesh

def _remesh_task(name: str, surface: "bridge.Surface", resolution: int, sheet: bool = False):
    """``sheet``: the shape is a network trained as a shell; the mesh is its sheet
    (core.samples.shell)."""
    def run(progress, cancel):
        from .core.geometry.remesh import remesh
        result = remesh(surface.shape, resolution, progress=progress, cancel=cancel)
        if sheet:
            from .core.samples.shell import sheet_of
            result.V = sheet_of(surface.shape, result.V, result.F)[0]
        return result

    return jobs.Task(name, run, {"in_world": surface.in_world})


def apply_mesh(operator, context, task, result) -> None:
    """Put the remeshed surface of task's implicit in its place (bridge.replace_with_mesh), as
    Blender's Apply and Convert do; ``operator.keep_original`` keeps the implicit."""
    source = bpy.data.objects.get(task.name)
    if source is None:
        raise InputError("the implicit object was deleted while remeshing")
    V, F = result.V, result.F
    if task.context.get("in_world"):
        V, F = bridge.csg_to_object_frame(source, V, F)
    bridge.replace_with_mesh(context.view_layer, source, V, F, operator.keep_original)


KEEP_ORIGINAL_DESCRIPTION = ("Keep the neural implicit and add the mesh beside it (as Convert's Keep "
                             "Original); off, the mesh replaces it")


class OBJECT_OT_neural_implicit_remesh(JobOperator, bpy.types.Operator):
    """Replace each selected neural implicit by its surface as a mesh (marching cubes of what the
    viewport draws: the CSG result when its stack has entries), keeping name, place and collections"""

    bl_idname = "object.neural_implicit_remesh"
    bl_label = "Convert Neural Implicit to Mesh"
    bl_options = {'REGISTER', 'UNDO'}
    noun = "object"

    resolution: properties.resolution_property("Marching cubes cells per axis of the implicit's "
                                               "bounding cube")
    keep_original: BoolProperty(name="Keep Original", default=False,
                                description=KEEP_ORIGINAL_DESCRIPTION)
    sheet: BoolProperty(name="Sheet", default=False,
                        description="For an implicit converted in shell mode (open input): the open "
                                    "sheet it was trained around, both sides of the shell moved onto "
                                    "it, instead of the closed shell")

    @classmethod
    def poll(cls, context):
        return cls.poll_job()

    def make_job(self, context):
        from .core.geometry.remesh import gap_warning
        from .core.samples.shell import trained_thickness

        targets = [o for o in context.selected_objects if bridge.is_implicit(o)]
        active = context.active_object
        if bridge.is_implicit(active) and active not in targets:
            targets.append(active)
        if not targets:
            raise InputError("No neural implicit is selected: select an implicit object to remesh")
        self._leave_mode(context)
        tasks = []
        for obj in targets:
            try:
                surface = bridge.surface_of(obj)
            except InputError as exc:
                self.report({'ERROR'}, str(exc))
                continue
            sheet = self.sheet and not surface.in_world and trained_thickness(surface.shape) is not None
            messages = [*surface.warnings, gap_warning(surface.shape, self.resolution)]
            if self.sheet and not sheet:
                messages.append(f"{obj.name} is not a single network trained as a shell, so it has no "
                                "sheet: remeshed as its closed surface")
            for message in messages:
                if message:
                    self.report({'WARNING'}, message)
            tasks.append(_remesh_task(obj.name, surface, self.resolution, sheet))
        return jobs.Job("Remeshing", tasks) if tasks else None

    def apply(self, context, task, result):
        apply_mesh(self, context, task, result)


# ============================================================================ small ones

class OBJECT_OT_neural_implicit_cancel(bpy.types.Operator):
    """Stop the running conversion or remeshing (the scene stays as it was)"""

    bl_idname = "object.neural_implicit_cancel"
    bl_label = "Cancel Neural Implicit Job"
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
    bl_label = "Show Neural Implicit Source Mesh"
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
