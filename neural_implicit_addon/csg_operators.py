"""Operators of the CSG stack: add, remove, move, duplicate entries, Apply (remesh the result) and
Distill (train one new implicit on the result).

They act on ``context.object`` (the Properties editor's object, or the active object in the 3D View),
which must be an implicit; remove and move act on the entry ``index`` (each entry's own buttons) or,
at -1, the active one. Stack edits are plain data changes with undo; Apply is a
:class:`operators.JobOperator` like Convert to Mesh (blocking from scripts and in background mode, in
the background with progress from a button) that replaces the implicit by the mesh of its CSG result,
as Blender's Apply does with a modifier stack (same name, place and collections; "Keep Original"
keeps the implicit and its stack). Distill runs the same way and adds a new implicit object
``<name>_distilled`` (core.csg.distill: remesh, then convert with the scene's conversion settings).
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty

from . import bridge, jobs
from .core.errors import InputError
from .core.remesh import MAX_RESOLUTION, MIN_RESOLUTION
from .operators import KEEP_ORIGINAL_DESCRIPTION, JobOperator, _remesh_task, apply_mesh
from .preferences import MISSING_TORCH, torch_available
from .properties import CSG_OPERATIONS


def _owner(context):
    obj = getattr(context, "object", None)
    return obj if bridge.is_implicit(obj) else None


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


class OBJECT_OT_neural_implicit_csg_add(CSGOperator, bpy.types.Operator):
    """Add an entry to the CSG stack (its operand: the other selected implicit, if there is one)"""

    bl_idname = "object.neural_implicit_csg_add"
    bl_label = "Add Neural CSG Operation"
    bl_options = {'REGISTER', 'UNDO'}

    operation: EnumProperty(name="Operation", items=CSG_OPERATIONS, default='UNION')

    def execute(self, context):
        obj = _owner(context)
        stack = obj.neural_implicit.csg
        entry = stack.add()
        entry.operation = self.operation
        candidates = [o for o in context.selected_objects
                      if o != obj and bridge.is_implicit(o) and not bridge.csg_uses(o, obj)]
        if len(candidates) == 1:
            entry.operand = candidates[0]
        obj.neural_implicit.csg_index = len(stack) - 1
        bridge.tag_view3d_redraw(context)
        return {'FINISHED'}


class OBJECT_OT_neural_implicit_csg_remove(CSGOperator, bpy.types.Operator):
    """Remove the active entry of the CSG stack"""

    bl_idname = "object.neural_implicit_csg_remove"
    bl_label = "Remove Neural CSG Operation"
    bl_options = {'REGISTER', 'UNDO'}
    needs_entry = True

    index: IntProperty(name="Index", default=-1, min=-1, options={'HIDDEN', 'SKIP_SAVE'},
                       description="The entry to remove (-1: the active one)")

    def execute(self, context):
        props = _owner(context).neural_implicit
        i = self.entry_index(props)
        if not 0 <= i < len(props.csg):
            return {'CANCELLED'}
        props.csg.remove(i)
        if props.csg_index > i:
            props.csg_index -= 1
        props.csg_index = max(0, min(props.csg_index, len(props.csg) - 1))
        bridge.tag_view3d_redraw(context)
        return {'FINISHED'}


class OBJECT_OT_neural_implicit_csg_move(CSGOperator, bpy.types.Operator):
    """Move the active entry of the CSG stack up or down (entries apply from top to bottom)"""

    bl_idname = "object.neural_implicit_csg_move"
    bl_label = "Move Neural CSG Operation"
    bl_options = {'REGISTER', 'UNDO'}
    needs_entry = True

    direction: EnumProperty(name="Direction", items=[('UP', "Up", ""), ('DOWN', "Down", "")],
                            default='UP')
    index: IntProperty(name="Index", default=-1, min=-1, options={'HIDDEN', 'SKIP_SAVE'},
                       description="The entry to move (-1: the active one)")

    def execute(self, context):
        props = _owner(context).neural_implicit
        i = self.entry_index(props)
        j = i - 1 if self.direction == 'UP' else i + 1
        if not 0 <= j < len(props.csg):
            return {'CANCELLED'}
        props.csg.move(i, j)
        props.csg_index = j
        bridge.tag_view3d_redraw(context)
        return {'FINISHED'}


class OBJECT_OT_neural_implicit_csg_duplicate(CSGOperator, bpy.types.Operator):
    """Duplicate the active entry of the CSG stack below it"""

    bl_idname = "object.neural_implicit_csg_duplicate"
    bl_label = "Duplicate Neural CSG Operation"
    bl_options = {'REGISTER', 'UNDO'}
    needs_entry = True

    index: IntProperty(name="Index", default=-1, min=-1, options={'HIDDEN', 'SKIP_SAVE'},
                       description="The entry to duplicate (-1: the active one)")

    def execute(self, context):
        props = _owner(context).neural_implicit
        i = self.entry_index(props)
        if not 0 <= i < len(props.csg):
            return {'CANCELLED'}
        src = props.csg[i]
        new = props.csg.add()
        for name in ("operand", "operation", "blend", "show"):
            setattr(new, name, getattr(src, name))
        props.csg.move(len(props.csg) - 1, i + 1)
        props.csg_index = i + 1
        bridge.tag_view3d_redraw(context)
        return {'FINISHED'}


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

    resolution: IntProperty(
        name="Resolution", default=128, min=MIN_RESOLUTION, max=MAX_RESOLUTION,
        description="Marching cubes cells per axis of the cube around the CSG result")
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


def _distill_task(name: str, shape, settings, resolution: int):
    def run(progress, cancel):
        from .core.csg import distill
        return distill(shape, settings, resolution, progress=progress, cancel=cancel)

    return jobs.Task(name, run)


class OBJECT_OT_neural_implicit_csg_distill(CSGOperator, JobOperator, bpy.types.Operator):
    """Train one new implicit on the CSG result (the object with its stack), so the stack becomes a
    single compact network; the implicit and its stack stay as they are"""

    bl_idname = "object.neural_implicit_csg_distill"
    bl_label = "Distill Neural CSG"
    bl_options = {'REGISTER', 'UNDO'}
    noun = "object"

    resolution: IntProperty(
        name="Resolution", default=256, min=MIN_RESOLUTION, max=MAX_RESOLUTION,
        description="Marching cubes cells per axis used to extract the CSG surface before training")

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
           OBJECT_OT_neural_implicit_csg_apply, OBJECT_OT_neural_implicit_csg_distill)
