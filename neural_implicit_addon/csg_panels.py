"""The "Neural CSG" panel: an implicit's CSG stack as a list like Blender's modifier stack.

Shown in the Properties editor's **Object** tab (implicit objects are Empties, and Blender gives
Empties no Modifier tab) and, with the same drawing, under the 3D View sidebar's *Implicit* panel.
Drawn like the modifier stack: *Add Neural CSG Operation* and *Apply* on top, then one box per entry
(show toggle, operation, operand, move up/down, a drop-down menu with Apply and Duplicate, remove in
its header; the blend radius of smooth operations and why the entry is skipped below), then problems
of the whole tree (cycles, nested warnings, viewport errors).
"""

from __future__ import annotations

import bpy

from . import bridge, jobs, viewport
from .core.common.errors import InputError
from .csg_operators import (OBJECT_OT_neural_implicit_csg_add, OBJECT_OT_neural_implicit_csg_apply,
                            OBJECT_OT_neural_implicit_csg_apply_entry,
                            OBJECT_OT_neural_implicit_csg_distill,
                            OBJECT_OT_neural_implicit_csg_duplicate,
                            OBJECT_OT_neural_implicit_csg_move,
                            OBJECT_OT_neural_implicit_csg_remove)
from .panels import draw_job

SMOOTH = {'SMOOTH_UNION', 'SMOOTH_INTERSECTION', 'SMOOTH_DIFFERENCE'}


class NI_MT_csg_entry(bpy.types.Menu):
    """An entry's drop-down menu, as a modifier's: Apply (into the object's network), Duplicate.
    The entry comes from the context pointer ``neural_csg_entry`` its header sets."""

    bl_idname = "NI_MT_csg_entry"
    bl_label = "Neural CSG Operation"

    def draw(self, context):
        entry = getattr(context, "neural_csg_entry", None)
        if entry is None:
            return
        index = int(entry.path_from_id().rsplit("[", 1)[1].rstrip("]"))
        layout = self.layout
        layout.operator(OBJECT_OT_neural_implicit_csg_apply_entry.bl_idname, text="Apply",
                        icon='CHECKMARK').index = index
        layout.operator(OBJECT_OT_neural_implicit_csg_duplicate.bl_idname, text="Duplicate",
                        icon='DUPLICATE').index = index


def draw_entry(layout, obj, index: int, entry) -> None:
    """One stack entry as Blender draws a modifier: a box whose header holds the show toggle, the
    operation, the operand, move up/down, the drop-down menu (Apply, Duplicate) and remove; below,
    the blend radius of smooth operations and why the entry is skipped."""
    problem = bridge.csg_entry_problem(obj, entry)
    box = layout.box()
    row = box.row(align=True)
    row.prop(entry, "show", text="", emboss=False, icon='HIDE_OFF' if entry.show else 'HIDE_ON')
    sub = row.row(align=True)
    sub.active = entry.show
    sub.alert = problem is not None and entry.show
    sub.prop(entry, "operation", text="", icon_only=True)
    sub.prop(entry, "operand", text="", icon='ERROR' if problem else 'META_BALL')
    buttons = row.row(align=True)
    for direction, icon in (('UP', 'TRIA_UP'), ('DOWN', 'TRIA_DOWN')):
        op = buttons.operator(OBJECT_OT_neural_implicit_csg_move.bl_idname, text="", icon=icon)
        op.direction = direction
        op.index = index
    buttons.context_pointer_set("neural_csg_entry", entry)
    buttons.menu(NI_MT_csg_entry.bl_idname, text="", icon='DOWNARROW_HLT')
    buttons.operator(OBJECT_OT_neural_implicit_csg_remove.bl_idname, text="", icon='X',
                     emboss=False).index = index
    col = bridge.property_column(box)
    col.active = entry.show
    col.prop(entry, "operation")
    if entry.operation in SMOOTH:
        col.prop(entry, "blend")
    if problem:
        box.label(text=problem, icon='ERROR')


def draw_csg(layout, context, obj, list_id: str) -> None:
    """The stack of ``obj`` (an implicit) into ``layout``, shaped like the modifier stack; never
    raises for bad operands. ``list_id`` tells the places it is drawn apart (Properties, sidebar)."""
    props = obj.neural_implicit
    running = draw_job(layout) if jobs.active() is not None else False
    row = layout.row(align=True)
    row.operator_menu_enum(OBJECT_OT_neural_implicit_csg_add.bl_idname, "operation",
                           text="Add Neural CSG Operation", icon='ADD')
    if not len(props.csg):
        layout.label(text="Combine with other implicits (Add)", icon='INFO')
        return

    try:
        tree = bridge.csg_tree(obj)
    except InputError as exc:
        tree = None
        layout.label(text=str(exc), icon='ERROR')
    settings = context.scene.neural_implicit_settings
    row = layout.row(align=True)
    row.enabled = not running and tree is not None and tree.active
    row.prop(settings, "remesh_resolution")
    op = row.operator(OBJECT_OT_neural_implicit_csg_apply.bl_idname, text="Apply",
                      icon='CHECKMARK')
    op.resolution = settings.remesh_resolution
    row = layout.row()
    row.enabled = not running and tree is not None and tree.active
    row.operator(OBJECT_OT_neural_implicit_csg_distill.bl_idname, text="Distill to One Implicit",
                 icon='SHADERFX')

    for index, entry in enumerate(props.csg):
        draw_entry(layout, obj, index, entry)

    if tree is None:
        return
    for message in tree.warnings:
        if not message.startswith(f"{obj.name}, entry"):   # this stack's own entries show those
            layout.label(text=message, icon='ERROR')
    renderer = viewport.renderer()
    error = renderer.errors.get(tree.key) if renderer is not None else None
    if error:
        layout.label(text=error, icon='ERROR')
    if tree.active and tree.operands:
        names = ", ".join(sorted({o.name for o in tree.operands}))
        layout.label(text=f"Operands drawn only in the result: {names}", icon='INFO')


class NI_PT_csg(bpy.types.Panel):
    """Neural CSG in the Properties editor's Object tab."""

    bl_label = "Neural CSG"
    bl_space_type = 'PROPERTIES'
    bl_region_type = 'WINDOW'
    bl_context = "object"
    bl_order = 0

    @classmethod
    def poll(cls, context):
        return bridge.is_implicit(context.object)

    def draw(self, context):
        draw_csg(self.layout, context, context.object, "properties")


class NI_PT_csg_sidebar(bpy.types.Panel):
    """Neural CSG under the sidebar's Implicit panel."""

    bl_label = "CSG"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Neural"
    bl_parent_id = "NI_PT_implicit"

    @classmethod
    def poll(cls, context):
        return bridge.is_implicit(context.object)

    def draw(self, context):
        draw_csg(self.layout, context, context.object, "sidebar")


classes = (NI_MT_csg_entry, NI_PT_csg, NI_PT_csg_sidebar)
