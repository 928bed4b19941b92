"""Operators of the CSG stack: add, remove, move, duplicate entries, Apply (remesh the result), an
entry's Apply (fold it into the object's network) and Distill (train one new implicit on the result).

They act on ``context.object`` (the Properties editor's object, or the active object in the 3D View),
which must be an implicit; remove and move act on the entry ``index`` (each entry's own buttons) or,
at -1, the active one. Stack edits are plain data changes with undo; Apply is a
:class:`operators.JobOperator` like Convert to Mesh (blocking from scripts and in background mode, in
the background with progress from a button) that replaces the implicit by the mesh of its CSG result,
as Blender's Apply does with a modifier stack (same name, place and collections; "Keep Original"
keeps the implicit and its stack). An entry's Apply is what a modifier's own Apply is to its mesh:
the object stays an implicit, its network is trained again on itself combined with the shown
entries up to that one, which leave the stack; the entries below keep working. Distill runs the
same way and adds a new implicit object ``<name>_distilled`` (core.geometry.csg.distill: remesh,
then convert with the scene's conversion settings).
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, IntProperty
from mathutils import Matrix

from . import bridge, jobs
from .core.common.errors import InputError
from .core.geometry.remesh import DEFAULT_RESOLUTION
from .operators import KEEP_ORIGINAL_DESCRIPTION, JobOperator, _remesh_task, apply_mesh
from .preferences import MISSING_TORCH, torch_available
from .properties import CSG_OPERATIONS, resolution_property


def _owner(context):
    obj = getattr(context, "object", None)
    return obj if bridge.is_implicit(obj) else None


def entry_index_property(verb: str):
    """The ``index`` property of an operator on one entry (the panel's per-entry buttons set it)."""
    return IntProperty(name="Index", default=-1, min=-1, options={'HIDDEN', 'SKIP_SAVE'},
                       description=f"The entry to {verb} (-1: the active one)")


class CSGOperator:
    """Mixin: poll for an implicit ``context.object`` (and, with ``needs_entry``, an active entry)."""

    needs_entry = False

    def entry_index(self, props) -> int:
        """The entry this operator acts on: its ``index`` property, or the active entry at -1."""
        index = getattr(self, "index", -1)
        return props.csg_index if index < 0 else index

    @classmethod
    def poll(cls, context):
        return cls.poll_owner(context)

    @classmethod
    def poll_owner(cls, context) -> bool:
        obj = _owner(context)
        if obj is None:
            cls.poll_message_set("The object is no neural implicit")
            return False
        if cls.needs_entry and not 0 <= obj.neural_implicit.csg_index < len(obj.neural_implicit.csg):
            cls.poll_message_set("The CSG stack has no active entry")
            return False
        return True


class CSGStackEdit(CSGOperator):
    """Mixin of the quick stack edits: ``edit(context, props, i)`` (``props`` the object's
    neural_implicit, ``i`` the entry acted on) changes the stack, returning False to cancel;
    :meth:`execute` checks the entry first and redraws after."""

    def execute(self, context):
        props = _owner(context).neural_implicit
        i = self.entry_index(props)
        if self.needs_entry and not 0 <= i < len(props.csg):
            return {'CANCELLED'}
        if self.edit(context, props, i) is False:
            return {'CANCELLED'}
        bridge.tag_view3d_redraw(context)
        return {'FINISHED'}


class OBJECT_OT_neural_implicit_csg_add(CSGStackEdit, bpy.types.Operator):
    """Add an entry to the CSG stack (its operand: the other selected implicit, if there is one)"""

    bl_idname = "object.neural_implicit_csg_add"
    bl_label = "Add Neural CSG Operation"
    bl_options = {'REGISTER', 'UNDO'}

    operation: EnumProperty(name="Operation", items=CSG_OPERATIONS, default='UNION')

    def edit(self, context, props, i):
        obj = _owner(context)
        entry = props.csg.add()
        entry.operation = self.operation
        candidates = [o for o in context.selected_objects
                      if o != obj and bridge.is_implicit(o) and not bridge.csg_uses(o, obj)]
        if len(candidates) == 1:
            entry.operand = candidates[0]
        props.csg_index = len(props.csg) - 1


class OBJECT_OT_neural_implicit_csg_remove(CSGStackEdit, bpy.types.Operator):
    """Remove the active entry of the CSG stack"""

    bl_idname = "object.neural_implicit_csg_remove"
    bl_label = "Remove Neural CSG Operation"
    bl_options = {'REGISTER', 'UNDO'}
    needs_entry = True

    index: entry_index_property("remove")

    def edit(self, context, props, i):
        props.csg.remove(i)
        if props.csg_index > i:
            props.csg_index -= 1
        props.csg_index = max(0, min(props.csg_index, len(props.csg) - 1))


class OBJECT_OT_neural_implicit_csg_move(CSGStackEdit, bpy.types.Operator):
    """Move the active entry of the CSG stack up or down (entries apply from top to bottom)"""

    bl_idname = "object.neural_implicit_csg_move"
    bl_label = "Move Neural CSG Operation"
    bl_options = {'REGISTER', 'UNDO'}
    needs_entry = True

    direction: EnumProperty(name="Direction", items=[('UP', "Up", ""), ('DOWN', "Down", "")],
                            default='UP')
    index: entry_index_property("move")

    def edit(self, context, props, i):
        j = i - 1 if self.direction == 'UP' else i + 1
        if not 0 <= j < len(props.csg):
            return False
        props.csg.move(i, j)
        props.csg_index = j


class OBJECT_OT_neural_implicit_csg_duplicate(CSGStackEdit, bpy.types.Operator):
    """Duplicate the active entry of the CSG stack below it"""

    bl_idname = "object.neural_implicit_csg_duplicate"
    bl_label = "Duplicate Neural CSG Operation"
    bl_options = {'REGISTER', 'UNDO'}
    needs_entry = True

    index: entry_index_property("duplicate")

    def edit(self, context, props, i):
        src = props.csg[i]
        new = props.csg.add()
        for name in ("operand", "operation", "blend", "show"):
            setattr(new, name, getattr(src, name))
        props.csg.move(len(props.csg) - 1, i + 1)
        props.csg_index = i + 1


def _usable_tree(operator, obj):
    """The object's CSG tree with its warnings reported; InputError when nothing is usable."""
    tree = bridge.csg_tree(obj)                     # InputError (a cycle) -> reported
    for message in tree.warnings:
        operator.report({'WARNING'}, message)
    if not tree.active:
        raise InputError(f"{obj.name}: no usable CSG entry (every operand is missing, turned "
                         "off or skipped)")
    return tree


class OBJECT_OT_neural_implicit_csg_apply(CSGOperator, JobOperator, bpy.types.Operator):
    """Replace the implicit by the mesh of its CSG result (the object with its stack), as Blender's
    Apply does with modifiers; Keep Original keeps the implicit and its stack"""

    bl_idname = "object.neural_implicit_csg_apply"
    bl_label = "Apply Neural CSG"
    bl_options = {'REGISTER', 'UNDO'}
    noun = "object"

    resolution: resolution_property("Marching cubes cells per axis of the cube around the CSG result")
    keep_original: BoolProperty(name="Keep Original", default=False,
                                description=KEEP_ORIGINAL_DESCRIPTION)

    @classmethod
    def poll(cls, context):
        if not cls.poll_owner(context):
            return False
        if not len(_owner(context).neural_implicit.csg):
            cls.poll_message_set("The CSG stack is empty: add an operation first")
            return False
        return cls.poll_job()

    def make_job(self, context):
        obj = _owner(context)
        tree = _usable_tree(self, obj)
        self._leave_mode(context)
        surface = bridge.Surface(tree.shape, True, list(tree.warnings))
        return jobs.Job("Applying CSG", [_remesh_task(obj.name, surface, self.resolution)])

    def apply(self, context, task, result):
        apply_mesh(self, context, task, result)


def _fold_task(name: str, shape, settings, resolution: int, context: dict):
    """The worker's part of applying entries: remesh their result (world frame, no torch), then
    train and check one network on it in a child process (core.conversion.child_process)."""

    def run(progress, cancel):
        from .core.conversion.child_process import ShapeInput, convert_in_child
        from .core.geometry.remesh import remesh
        surface = remesh(shape, resolution, progress=progress, cancel=cancel)
        [outcome] = convert_in_child([ShapeInput(name, surface.V, surface.F)], settings,
                                     progress=progress, cancel=cancel, on_start=jobs.note_child)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return jobs.Task(name, run, context)


def _entry_signature(props, indices) -> list:
    """What entries ``indices`` of a stack are (to notice a stack edited while a job runs):
    (index, operand name, operation, blend, show) each, None past the end."""
    entries = [props.csg[j] if j < len(props.csg) else None for j in indices]
    return [None if e is None else (j, e.operand.name if e.operand else "", e.operation,
                                    float(f"{e.blend:.6g}"), e.show)
            for j, e in zip(indices, entries)]


class OBJECT_OT_neural_implicit_csg_apply_entry(CSGOperator, JobOperator, bpy.types.Operator):
    """Apply this entry to the object's own network, as a modifier's Apply does to its mesh: one new
    network is trained on the object combined with the shown entries up to this one (the entries
    above are what this one applies to), those entries leave the stack and the entries below keep
    working on the new network; the result does not change. Needs PyTorch"""

    bl_idname = "object.neural_implicit_csg_apply_entry"
    bl_label = "Apply Neural CSG Operation"
    bl_options = {'REGISTER', 'UNDO'}
    noun = "object"
    needs_entry = True

    index: entry_index_property("apply")
    resolution: resolution_property("Marching cubes cells per axis used to extract the result "
                                    "before training", DEFAULT_RESOLUTION)

    @classmethod
    def poll(cls, context):
        return cls.poll_owner(context) and cls.poll_job()

    def make_job(self, context):
        if not torch_available():
            raise InputError(MISSING_TORCH)
        obj = _owner(context)
        props = obj.neural_implicit
        i = self.entry_index(props)
        if not 0 <= i < len(props.csg):
            raise InputError(f"{obj.name}: the CSG stack has no entry {i + 1}")
        where = f"{obj.name}, entry {i + 1}"
        if not props.csg[i].show:
            raise InputError(f"{where} is turned off: turn it on to apply it")
        tree = bridge.csg_tree(obj, last=i)
        skipped = {w.split(":")[0] for w in tree.warnings}
        if where in skipped:
            raise InputError(next(w for w in tree.warnings if w.startswith(where + ":")))
        for message in tree.warnings:
            self.report({'WARNING'}, message)
        used = [j for j in range(i + 1)
                if props.csg[j].show and f"{obj.name}, entry {j + 1}" not in skipped]
        settings = context.scene.neural_implicit_settings.to_core()
        facts = {"used": used, "signature": _entry_signature(props, used), "key": props.key,
                 "matrix_world": bridge.matrix_to_numpy(obj.matrix_world)}
        return jobs.Job("Applying CSG operation",
                        [_fold_task(obj.name, tree.shape, settings, self.resolution, facts)])

    def apply(self, context, task, result):
        obj = bpy.data.objects.get(task.name)
        facts = task.context
        if obj is None or not bridge.is_implicit(obj):
            raise InputError("the implicit object was deleted while applying")
        props = obj.neural_implicit
        same = _entry_signature(props, facts["used"]) == facts["signature"]
        if props.key != facts["key"] or not same:
            raise InputError("the object or its CSG stack changed while applying: nothing was "
                             "changed")
        # the network's mesh frame is the world of when the job started: make it the object's own,
        # with the origin moved to the centre of the new network's ball (its sphere)
        implicit = result.implicit.copy()
        T = implicit.transform @ facts["matrix_world"]
        shift = np.eye(4)
        shift[:3, 3] = -np.linalg.solve(T[:3, :3], T[:3, 3])
        implicit.transform = T @ shift
        implicit.transform[:3, 3] = 0.0
        implicit.metadata["applied_csg"] = [
            {"operand": name, "operation": op.lower(), "blend": blend}
            for _, name, op, blend, _ in facts["signature"]]
        implicit.validate()
        children = [(c, c.matrix_world.copy()) for c in obj.children]
        obj.matrix_world = obj.matrix_world @ Matrix(shift.tolist())
        for child, world in children:
            child.matrix_world = world
        bridge.store_implicit(obj, implicit)
        for j in reversed(facts["used"]):
            props.csg.remove(j)
        props.csg_index = max(0, min(props.csg_index - len(facts["used"]), len(props.csg) - 1))
        n = len(facts["used"])
        check = bridge.verification_summary(context.scene, obj)
        self._notes.append(({'INFO'}, f"{obj.name}: {n} CSG entr{'ies' if n > 1 else 'y'} applied "
                                      f"to its network: {check}"))
        self._notes.extend(({'WARNING'}, f"{obj.name}: {w}") for w in result.warnings)
        bridge.tag_view3d_redraw(context)


def _distill_task(name: str, shape, settings, resolution: int):
    def run(progress, cancel):
        from .core.geometry.csg import distill
        return distill(shape, settings, resolution, progress=progress, cancel=cancel)

    return jobs.Task(name, run)


class OBJECT_OT_neural_implicit_csg_distill(CSGOperator, JobOperator, bpy.types.Operator):
    """Train one new implicit on the CSG result (the object with its stack), so the stack becomes a
    single compact network; the implicit and its stack stay as they are"""

    bl_idname = "object.neural_implicit_csg_distill"
    bl_label = "Distill Neural CSG"
    bl_options = {'REGISTER', 'UNDO'}
    noun = "object"

    resolution: resolution_property("Marching cubes cells per axis used to extract the CSG surface "
                                    "before training", DEFAULT_RESOLUTION)

    @classmethod
    def poll(cls, context):
        return OBJECT_OT_neural_implicit_csg_apply.poll.__func__(cls, context)

    def make_job(self, context):
        if not torch_available():
            raise InputError(MISSING_TORCH)
        obj = _owner(context)
        tree = _usable_tree(self, obj)
        settings = context.scene.neural_implicit_settings.to_core()
        return jobs.Job("Distilling CSG", [_distill_task(obj.name, tree.shape, settings,
                                                         self.resolution)])

    def apply(self, context, task, result):
        source = bpy.data.objects.get(task.name)
        collections = tuple(source.users_collection) if source is not None else ()
        obj = bridge.new_implicit_object(f"{task.name}_distilled", result.implicit, collections)
        bridge.make_active(context.view_layer, obj, tuple(context.selected_objects))


classes = (OBJECT_OT_neural_implicit_csg_add, OBJECT_OT_neural_implicit_csg_remove,
           OBJECT_OT_neural_implicit_csg_move, OBJECT_OT_neural_implicit_csg_duplicate,
           OBJECT_OT_neural_implicit_csg_apply, OBJECT_OT_neural_implicit_csg_apply_entry,
           OBJECT_OT_neural_implicit_csg_distill)
