"""The "Neural" tab of the 3D View's sidebar: convert (settings, progress), importance, the active
implicit (information, remesh, export, source) and viewport drawing options."""

from __future__ import annotations

import os
from dataclasses import fields

import bpy

from . import bridge, jobs, viewport
from .core.errors import InputError
from .core.settings import ConversionSettings
from .file_io import EXPORT_SCENE_OT_neural_implicit
from .operators import (OBJECT_OT_neural_implicit_cancel, OBJECT_OT_neural_implicit_convert,
                        OBJECT_OT_neural_implicit_remesh, OBJECT_OT_neural_implicit_show_source)
from .preferences import torch_available
from .properties import MAIN_SETTINGS


class NeuralPanel:
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Neural"


def draw_job(layout) -> bool:
    """Progress and Cancel of the running job; False when none runs."""
    job = jobs.active()
    if job is None:
        return False
    box = layout.box()
    box.progress(factor=job.fraction(), type='BAR', text=job.status())
    row = box.row()
    row.enabled = not job.cancelling
    row.operator(OBJECT_OT_neural_implicit_cancel.bl_idname, icon='CANCEL')
    return True


#: Settings chosen by the Target Error and Byte Budget modes (hidden in those modes).
SIZE_SETTINGS = ("layers", "hidden")


class NI_PT_convert(NeuralPanel, bpy.types.Panel):
    bl_label = "Convert"
    bl_order = 0

    def draw(self, context):
        layout = self.layout
        settings = context.scene.neural_implicit_settings
        running = draw_job(layout)
        col = layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        col.enabled = not running
        col.prop(settings, "size_mode")
        if settings.size_mode == 'TARGET_ERROR':
            col.prop(settings, "target_error")
        elif settings.size_mode == 'BUDGET':
            col.prop(settings, "budget_bytes")
        for name in MAIN_SETTINGS:
            if settings.size_mode == 'FIXED' or name not in SIZE_SETTINGS:
                col.prop(settings, name)
        meshes = [o for o in context.selected_objects if o.type == 'MESH']
        if running:
            return
        if not torch_available():
            layout.label(text="PyTorch is not installed", icon='ERROR')
            layout.label(text="Preferences > Add-ons > Neural Implicit")
        row = layout.row()
        row.scale_y = 1.4
        row.enabled = bool(meshes) and torch_available()
        text = f"Convert {len(meshes)} Selected" if len(meshes) > 1 else "Convert Selected"
        row.operator(OBJECT_OT_neural_implicit_convert.bl_idname, text=text, icon='MOD_REMESH')
        if not meshes:
            layout.label(text="Select mesh objects to convert", icon='INFO')


class NI_PT_convert_advanced(NeuralPanel, bpy.types.Panel):
    bl_label = "Advanced"
    bl_parent_id = "NI_PT_convert"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        settings = context.scene.neural_implicit_settings
        col = self.layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        col.enabled = jobs.active() is None
        col.prop(settings, "hide_source")
        for f in fields(ConversionSettings):
            if f.name not in MAIN_SETTINGS:
                col.prop(settings, f.name)


class NI_PT_importance(NeuralPanel, bpy.types.Panel):
    bl_label = "Importance"
    bl_order = 1

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == 'MESH'

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        props = obj.neural_implicit
        col = layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        col.prop(props, "importance_source")
        if props.importance_source == 'VERTEX_GROUP':
            col.prop_search(props, "importance_group", obj, "vertex_groups", text="Group")
        sub = col.column()
        sub.active = props.importance_source != 'NONE'
        sub.prop(context.scene.neural_implicit_settings, "importance_strength")
        label, count, total, problem = bridge.importance_summary(obj)
        box = layout.box()
        if problem:
            box.label(text=problem, icon='ERROR')
        elif props.importance_source == 'NONE':
            box.label(text="No importance: uniform accuracy", icon='INFO')
        else:
            box.label(text=f"Source: {label} of {obj.name}", icon='CHECKMARK' if count else 'INFO')
            box.label(text=f"{count:,} of {total:,} vertices carry weight")
            if not count:
                hint = ("select vertices in Edit Mode" if props.importance_source == 'SELECTION'
                        else "paint the group in Weight Paint mode")
                box.label(text=f"Nothing weighted yet: {hint}")


def _fmt_bytes(n: int) -> str:
    return f"{n:,} B" if n < 10_000 else f"{n / 1024:,.1f} KiB"


class NI_PT_implicit(NeuralPanel, bpy.types.Panel):
    bl_label = "Implicit"
    bl_order = 2

    @classmethod
    def poll(cls, context):
        return bridge.is_implicit(context.active_object)

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        props = obj.neural_implicit
        try:
            implicit = bridge.implicit_from_object(obj)
        except InputError as exc:
            layout.label(text=str(exc), icon='ERROR')
            return
        a = implicit.architecture
        meta = implicit.metadata
        timings = meta.get("timings") or {}
        col = layout.column(align=True)
        rows = [
            ("Network", f"{a.layers} x {a.hidden} {a.activation}"
                        + (f", encoding {a.encoding_frequencies}" if a.encoding_frequencies else "")),
            ("Parameters", f"{a.parameters:,}"),
            ("Weights", f"{_fmt_bytes(implicit.weight_bytes)} ({implicit.storage})"),
            ("Stored", _fmt_bytes(len(props.data) * 3 // 4)),
            ("Surface Error", f"{meta['surface_error']:.5f}" if "surface_error" in meta else "-"),
            ("Training", f"{jobs.format_seconds(timings['training'])}" if "training" in timings else "-"),
            ("Device", str(meta.get("device", "-"))),
        ]
        if "sizing" in meta:
            sz = meta["sizing"]
            rows.append(("Target Error", f"{sz['target']:g} "
                         + ("reached" if sz["reached"] else f"not reached ({len(sz['tried'])} sizes)")))
        if "budget" in meta:
            rows.append(("Byte Budget", f"{meta['budget']['weight_bytes']:,} of "
                                        f"{meta['budget']['budget_bytes']:,} B"))
        for label, value in rows:
            split = col.split(factor=0.4)
            split.label(text=label)
            split.label(text=value)
        if props.filepath:
            layout.label(text=f"File: {os.path.basename(props.filepath)}", icon='FILE')
        error = viewport.renderer().errors.get(props.key) if viewport.renderer() else None
        if error:
            layout.label(text=error, icon='ERROR')

        layout.separator()
        running = draw_job(layout) if jobs.active() is not None else False
        row = layout.row(align=True)
        row.enabled = not running
        settings = context.scene.neural_implicit_settings
        row.prop(settings, "remesh_resolution")
        op = row.operator(OBJECT_OT_neural_implicit_remesh.bl_idname, text="Remesh", icon='MESH_DATA')
        op.resolution = settings.remesh_resolution
        layout.operator(EXPORT_SCENE_OT_neural_implicit.bl_idname, text="Export .h5", icon='EXPORT')
        source = props.source
        if source is not None:
            hidden = source.name in context.view_layer.objects and source.hide_get()
            op = layout.operator(OBJECT_OT_neural_implicit_show_source.bl_idname,
                                 text=f"{'Show' if hidden else 'Hide'} Source ({source.name})",
                                 icon='HIDE_OFF' if hidden else 'HIDE_ON')
            op.show = hidden


class NI_PT_viewport(NeuralPanel, bpy.types.Panel):
    bl_label = "Viewport"
    bl_order = 3
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        settings = context.scene.neural_implicit_settings
        col = self.layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        col.prop(settings, "viewport_resolution_scale")
        col.prop(settings, "viewport_max_steps")
        col.prop(settings, "viewport_epsilon")
        col.prop(settings, "viewport_step_factor")
        error = viewport.last_error()
        if error:
            self.layout.label(text=error, icon='ERROR')


classes = (NI_PT_convert, NI_PT_convert_advanced, NI_PT_importance, NI_PT_implicit, NI_PT_viewport)
