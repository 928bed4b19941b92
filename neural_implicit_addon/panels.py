"""The "Neural" tab of the 3D View's sidebar: convert (settings, progress), importance, the active
implicit (information, remesh, export, source) and viewport drawing options."""

from __future__ import annotations

import os

import bpy

from . import bridge, jobs, viewport
from .core.common.errors import InputError
from .file_io import EXPORT_SCENE_OT_neural_implicit
from .operators import (OBJECT_OT_neural_implicit_cancel, OBJECT_OT_neural_implicit_convert,
                        OBJECT_OT_neural_implicit_remesh, OBJECT_OT_neural_implicit_show_source,
                        draw_advanced_options, draw_conversion_options)
from .preferences import torch_available


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
    row.operator(OBJECT_OT_neural_implicit_cancel.bl_idname, text="Cancel", icon='CANCEL')
    return True


class NI_PT_convert(NeuralPanel, bpy.types.Panel):
    bl_label = "Convert"
    bl_order = 0

    def draw(self, context):
        layout = self.layout
        settings = context.scene.neural_implicit_settings
        running = draw_job(layout)
        col = bridge.property_column(layout)
        col.enabled = not running
        draw_conversion_options(col, settings)
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
        col = bridge.property_column(self.layout)
        col.enabled = jobs.active() is None
        draw_advanced_options(col, settings)


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
        col = bridge.property_column(layout)
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


def check_rows(scene, obj, implicit) -> list:
    """(label, value) rows of the result check recorded in the file (core.conversion.verify), every
    distance with its units; files from before the check show their surface error, also with
    units."""
    v = implicit.metadata.get("verification")
    radius = bridge.source_radius(obj, implicit)
    if not isinstance(v, dict):
        error = implicit.metadata.get("surface_error")
        return [("Surface Error", bridge.format_error(scene, error, radius)
                 if isinstance(error, (int, float)) else "-"), ("Check", "not checked")]
    sign = v.get("sign_agreement")
    near = v.get("sign_agreement_near")
    state = "passed" if v.get("passed") else "failed"
    if v.get("passed") and v.get("warnings"):
        state = "passed, with warnings"
    if isinstance(v.get("attempts"), int) and v["attempts"] > 1:
        state += f" (attempt {v['attempts']})"
    return [("Chamfer", bridge.format_error(scene, v.get("chamfer"), radius)),
            ("Sign Agreement", "-" if not isinstance(sign, (int, float)) else f"{100 * sign:.1f}%"
             + (f" ({100 * near:.1f}% near)" if isinstance(near, (int, float)) else "")),
            ("Check", state)]


def check_notes(implicit) -> list:
    """(icon, text) lines under the rows: the check's problems and warnings (e.g. an open mesh)."""
    v = implicit.metadata.get("verification")
    if not isinstance(v, dict):
        return []
    return ([('ERROR', str(p)) for p in v.get("problems") or ()]
            + [('INFO', str(w)) for w in v.get("warnings") or ()])


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
        except InputError as exc:   # decoded once, then remembered (bridge): no retry per redraw
            layout.label(text=f"Cannot read: {exc}", icon='ERROR')
            return
        a = implicit.architecture
        meta = implicit.metadata
        timings = meta.get("timings") or {}
        col = layout.column(align=True)
        rows = [
            ("Network", f"{a.layers} x {a.hidden} {a.activation}"
                        + (f", encoding {a.encoding_frequencies}" if a.encoding_frequencies else "")),
            ("Parameters", f"{implicit.parameters:,}" + (
                f" ({implicit.network_count} networks)" if implicit.members else "")),
            ("Weights", f"{_fmt_bytes(implicit.weight_bytes)} ({implicit.storage})"),
            ("Stored", _fmt_bytes(len(props.data) * 3 // 4)),
            *check_rows(context.scene, obj, implicit),
            ("Training", f"{jobs.format_seconds(timings['training'])}" if "training" in timings else "-"),
            ("Device", str(meta.get("device", "-"))),
        ]
        if isinstance(meta.get("sizing"), dict):
            sz = meta["sizing"]
            radius = bridge.source_radius(obj, implicit)
            target = bridge.format_error(context.scene, sz.get('target'), radius)
            rows.append(("Target Error", f"{target} "
                         + ("reached" if sz.get("reached")
                            else f"not reached ({len(sz.get('tried') or ())} sizes)")))
        if isinstance(meta.get("budget"), dict):
            rows.append(("Byte Budget", f"{meta['budget'].get('weight_bytes', 0):,} of "
                                        f"{meta['budget'].get('budget_bytes', 0):,} B"))
        for label, value in rows:
            split = col.split(factor=0.4)
            split.label(text=label)
            split.label(text=value)
        for kind, text in check_notes(implicit):
            layout.label(text=text, icon=kind)
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
        op = row.operator(OBJECT_OT_neural_implicit_remesh.bl_idname, text="Convert to Mesh",
                          icon='MESH_DATA')
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
        col = bridge.property_column(self.layout)
        col.prop(settings, "viewport_resolution_scale")
        col.prop(settings, "viewport_max_steps")
        col.prop(settings, "viewport_epsilon")
        col.prop(settings, "viewport_step_factor")
        error = viewport.last_error()
        if error:
            self.layout.label(text=error, icon='ERROR')


classes = (NI_PT_convert, NI_PT_convert_advanced, NI_PT_importance, NI_PT_implicit, NI_PT_viewport)
