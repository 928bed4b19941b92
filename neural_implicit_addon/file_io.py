"""File > Import / Export > Neural Implicit (.h5), and drag and drop of .h5 files into the 3D View.

The file format is core's (core/representation/fileformat.py). A file's transform maps its mesh
frame to the network; the add-on treats that mesh frame as the world: import places the object where
the file says the mesh was (core.representation.frames.placement), export writes ``transform @
inverse(matrix_world)``, so moving an implicit in Blender and exporting it moves the shape in the
file.

Import also reads the paper authors' released networks (Keras weight files,
core.representation.paper_import) in the same step: they store no transform, so they are placed in
the unit ball at the origin (the paper's
frame: the shape's minimum enclosing ball has radius 0.9), or, with a *Reference Mesh* object, on
that mesh (the minimum enclosing ball of its world-space vertices,
core.representation.paper_import.paper_transform) and checked against it (core.conversion.verify:
the figures go to the report and the sidebar, with units).
"""

from __future__ import annotations

import os

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper, poll_file_object_drop

from . import bridge
from .core.common.errors import FileFormatError, InputError
from .core.representation.fileformat import load, save
from .core.representation.paper_import import load_paper_weights
from .core.representation.quantize import STORAGES, with_storage


class IMPORT_SCENE_OT_neural_implicit(bpy.types.Operator, ImportHelper):
    """Load neural implicits (.h5: this add-on's files, or the paper's released Keras networks) as
    new implicit objects"""

    bl_idname = "import_scene.neural_implicit"
    bl_label = "Import Neural Implicit"
    bl_options = {'REGISTER', 'UNDO'}

    filename_ext = ".h5"
    filter_glob: StringProperty(default="*.h5", options={'HIDDEN'})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={'HIDDEN', 'SKIP_SAVE'})
    directory: StringProperty(subtype='DIR_PATH', options={'HIDDEN', 'SKIP_SAVE'})
    link: BoolProperty(name="Link to File", default=True,
                       description="Remember the file in the object (shown in the sidebar, the "
                                   "default path of a later export)")
    reference: StringProperty(
        name="Reference Mesh", default="",
        description="For networks of the paper's release (Keras .h5, which store no placement): the "
                    "mesh object they were made from; the network is placed on it (its minimum "
                    "enclosing ball) and checked against it. Empty: placed in the unit ball at the "
                    "origin")

    def draw(self, context):
        layout = bridge.property_column(self.layout)
        layout.prop(self, "link")
        layout.prop_search(self, "reference", bpy.data, "objects", icon='MESH_DATA')

    def paths(self) -> list[str]:
        if self.files and self.directory:
            return [os.path.join(self.directory, f.name) for f in self.files if f.name]
        return [self.filepath] if self.filepath else []

    def invoke(self, context, event):
        if self.directory and self.files:  # dropped on the 3D View: no file browser
            return self.execute(context)
        return super().invoke(context, event)

    def execute(self, context):
        paths = self.paths()
        if not paths:
            self.report({'ERROR'}, "No file given")
            return {'CANCELLED'}
        try:
            reference = self.reference_mesh(context)
        except InputError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        collection = context.collection or context.scene.collection
        created = []
        for path in paths:
            path = bpy.path.abspath(path)
            try:
                implicit, paper = read_network(path, reference)
            except InputError as exc:
                self.report({'ERROR'}, str(exc))
                continue
            name = os.path.splitext(os.path.basename(path))[0] or "implicit"
            # a paper network is not our file: linking would make export overwrite the release
            obj = bridge.new_implicit_object(name, implicit, (collection,),
                                             filepath=path if self.link and not paper else None)
            created.append(obj)
            if paper:
                where = (f"placed on {reference.name} and checked: "
                         + bridge.verification_summary(context.scene, obj)) if reference else \
                    "placed in the unit ball at the origin (no reference mesh given)"
                self.report({'INFO'}, f"{obj.name}: the paper's network, {where}")
        if not created:
            return {'CANCELLED'}
        deselect = tuple(context.selected_objects)
        for obj in created:
            bridge.make_active(context.view_layer, obj, deselect)
        self.report({'INFO'}, f"Imported {len(created)} neural implicit(s)")
        return {'FINISHED'}


    def reference_mesh(self, context):
        """The Reference Mesh as a core Mesh in world space, or None; InputError when the named
        object is missing or no mesh."""
        if not self.reference:
            return None
        obj = bpy.data.objects.get(self.reference)
        if obj is None or obj.type != 'MESH':
            what = "no object" if obj is None else f"a {obj.type.lower()}, not a mesh"
            raise InputError(f"Reference Mesh {self.reference!r} is {what}")
        from .core.meshes.mesh import mesh_from_arrays
        arrays = bridge.evaluated_mesh_arrays(obj, context.evaluated_depsgraph_get())
        return mesh_from_arrays(arrays.V, arrays.F, name=obj.name)


def read_network(path: str, reference=None):
    """The network in ``path`` as ``(implicit, is_paper)``: our .h5 format, else a Keras weight file
    of the paper's release (core.representation.paper_import), placed on ``reference`` (a core Mesh,
    world space) and checked against it when given. When neither reads the file: the paper reader's
    error for a Keras file (it says what is wrong in it), else our format's (it says what the file
    is not)."""
    try:
        return load(path), False
    except FileFormatError as ours:
        try:
            implicit = load_paper_weights(path, reference)
        except FileFormatError as paper:
            raise (paper if "Keras" in str(ours) else ours) from None
    if reference is not None:
        from .core.conversion.verify import verify
        from .core.geometry.metrics import surface_error
        implicit.metadata["surface_error"] = surface_error(implicit, reference)
        implicit.metadata["verification"] = verify(implicit, reference).to_dict()
    return implicit, True


class EXPORT_SCENE_OT_neural_implicit(bpy.types.Operator, ExportHelper):
    """Save the active neural implicit as an .h5 file (world space)"""

    bl_idname = "export_scene.neural_implicit"
    bl_label = "Export Neural Implicit"
    bl_options = {'REGISTER', 'UNDO'}  # "Link to File" changes the object

    filename_ext = ".h5"
    filter_glob: StringProperty(default="*.h5", options={'HIDDEN'})
    storage: EnumProperty(
        name="Storage", default='KEEP',
        items=[('KEEP', "Keep", "The precision the implicit has now")]
        + [(s.upper(), s, f"Store weights as {s}") for s in STORAGES],
        description="Precision of the stored weights (lower is smaller and less exact)")
    link: BoolProperty(name="Link to File", default=True,
                       description="Remember the written file in the object")

    @classmethod
    def poll(cls, context):
        if not bridge.is_implicit(context.active_object):
            cls.poll_message_set("The active object is no neural implicit")
            return False
        return True

    def invoke(self, context, event):
        obj = context.active_object
        linked = obj.neural_implicit.filepath
        self.filepath = bpy.path.abspath(linked) if linked else bpy.path.clean_name(obj.name) + ".h5"
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    def execute(self, context):
        obj = context.active_object
        path = bpy.path.ensure_ext(bpy.path.abspath(self.filepath), self.filename_ext)
        try:
            implicit = bridge.in_world(obj, bridge.implicit_from_object(obj))
            if self.storage != 'KEEP':
                implicit = with_storage(implicit, self.storage.lower())
            size = save(implicit, path)
        except (InputError, OSError) as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        if self.link:
            obj.neural_implicit.filepath = path
        self.report({'INFO'}, f"Wrote {os.path.basename(path)} ({size / 1024:.1f} KiB)")
        return {'FINISHED'}


class NI_FH_neural_implicit(bpy.types.FileHandler):
    bl_idname = "NI_FH_neural_implicit"
    bl_label = "Neural Implicit"
    bl_import_operator = IMPORT_SCENE_OT_neural_implicit.bl_idname
    bl_export_operator = EXPORT_SCENE_OT_neural_implicit.bl_idname
    bl_file_extensions = ".h5"

    @classmethod
    def poll_drop(cls, context):
        return poll_file_object_drop(context)


def menu_import(self, context):
    self.layout.operator(IMPORT_SCENE_OT_neural_implicit.bl_idname, text="Neural Implicit (.h5)",
                         icon='META_BALL')


def menu_export(self, context):
    self.layout.operator(EXPORT_SCENE_OT_neural_implicit.bl_idname, text="Neural Implicit (.h5)")


classes = (IMPORT_SCENE_OT_neural_implicit, EXPORT_SCENE_OT_neural_implicit, NI_FH_neural_implicit)
