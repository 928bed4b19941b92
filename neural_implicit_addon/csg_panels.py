"""The "Neural CSG" panel: an implicit's CSG stack as a list like Blender's modifier stack.

Shown in the Properties editor's **Object** tab (implicit objects are Empties, and Blender gives
Empties no Modifier tab) and, with the same drawing, under the 3D View sidebar's *Implicit* panel.
Each row: the show toggle, the operand, the operation and a warning icon when the entry is skipped;
below the list, the active entry in full (blend radius for smooth operations, why it is skipped),
problems of the whole tree (cycles, nested warnings, viewport errors) and *Apply*.
"""

from __future__ import annotations

import bpy

from . import bridge, jobs, viewport
from .core.errors import InputError
from .csg_operators import (OBJECT_OT_neural_implicit_csg_add, OBJECT_OT_neural_implicit_csg_apply,
                            OBJECT_OT_neural_implicit_csg_distill,
                            OBJECT_OT_neural_implicit_csg_duplicate,
                            OBJECT_OT_neural_implicit_csg_move,
                            OBJECT_OT_neural_implicit_csg_remove)
from .panels import draw_job

SMOOTH = {'SMOOTH_UNION', 'SMOOTH_INTERSECTION', 'SMOOTH_DIFFERENCE'}


class NI_UL_csg(bpy.types.UIList):
    """One row per stack entry (the object owning the stack is ``data.id_data``)."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        owner = data.id_data
        problem = bridge.csg_entry_problem(owner, item)
        row = layout.row(align=True)
        row.prop(item, "show", text="", emboss=False,
                 icon='HIDE_OFF' if item.show else 'HIDE_ON')
        sub = row.row(align=True)
        sub.active = item.show
        sub.alert = problem is not None and item.show
        sub.prop(item, "operand", text="", icon='ERROR' if problem else 'META_BALL')
        sub.prop(item, "operation", text="", icon_only=True)


def draw_csg(layout, context, obj, list_id: str) -> None:
    """The stack of ``obj`` (an implicit) into ``layout``; never raises for bad operands."""
    props = obj.neural_implicit
    row = layout.row()
    row.template_list("NI_UL_csg", list_id, props, "csg", props, "csg_index", rows=3)
    col = row.column(align=True)
    col.operator_menu_enum(OBJECT_OT_neural_implicit_csg_add.bl_idname, "operation", text="",
                           icon='ADD')
    col.operator(OBJECT_OT_neural_implicit_csg_remove.bl_idname, text="", icon='REMOVE')
    col.separator()
    col.operator(OBJECT_OT_neural_implicit_csg_duplicate.bl_idname, text="", icon='DUPLICATE')
    col.separator()
    col.operator(OBJECT_OT_neural_implicit_csg_move.bl_idname, text="", icon='TRIA_UP').direction = 'UP'
    col.operator(OBJECT_OT_neural_implicit_csg_move.bl_idname, text="",
                 icon='TRIA_DOWN').direction = 'DOWN'

    if not len(props.csg):
        layout.label(text="Add operations with other implicits (+)", icon='INFO')
        return
    if 0 <= props.csg_index < len(props.csg):
        entry = props.csg[props.csg_index]
        box = layout.box()
        col = box.column()
        col.use_property_split = True
        col.use_property_decorate = False
        col.prop(entry, "operand")
        col.prop(entry, "operation")
        sub = col.row()
        sub.active = entry.operation in SMOOTH
        sub.prop(entry, "blend")
        problem = bridge.csg_entry_problem(obj, entry)
        if problem:
            box.label(text=problem, icon='ERROR')

    try:
        tree = bridge.csg_tree(obj)
    except InputError as exc:
        layout.label(text=str(exc), icon='ERROR')
        return
    for message in tree.warnings:
        if not message.startswith(f"{obj.name}, entry"):   # this stack's own rows show those
            layout.label(text=message, icon='ERROR')
    renderer = viewport.renderer()
    error = renderer.errors.get(tree.key) if renderer is not None else None
    if error:
        layout.label(text=error, icon='ERROR')
    if tree.active and tree.operands:
        names = ", ".join(sorted({o.name for o in tree.operands}))
        layout.label(text=f"Operands drawn only in the result: {names}", icon='INFO')

    running = draw_job(layout) if jobs.active() is not None else False
    row = layout.row(align=True)
    row.enabled = not running and tree.active
    settings = context.scene.neural_implicit_settings
    row.prop(settings, "remesh_resolution")
    op = row.operator(OBJECT_OT_neural_implicit_csg_apply.bl_idname, text="Apply",
                      icon='MESH_DATA')
    op.resolution = settings.remesh_resolution
    row = layout.row()
    row.enabled = not running and tree.active
    row.operator(OBJECT_OT_neural_implicit_csg_distill.bl_idname, text="Distill to One Implicit",
                 icon='SHADERFX')


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


classes = (NI_UL_csg, NI_PT_csg, NI_PT_csg_sidebar)
