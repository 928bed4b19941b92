"""Menu entries where Blender users look for a tool, each naming "Neural" so that F3's menu search
finds it:

* Object > Convert: *Neural Implicit* (selected meshes -> implicits) and *Mesh from Neural Implicit*
  (an implicit -> its mesh, replacing it unless Keep Original);
* Object > Apply: *Neural Implicit to Mesh* and *Neural CSG* (the implicit's CSG stack);
* the object context menu (right click): the conversion that fits the active object;
* Add: *Neural Implicit* (load an .h5 file: this add-on's, or a network of the paper's release);
* File > Import: *Neural Implicit (.h5)* (file_io.menu_import, registered with the others here).

``MENU_ENTRIES`` pairs each Blender menu with its draw function; :func:`register` appends them and
:func:`unregister` removes them in reverse order.
"""

from __future__ import annotations

import bpy

from . import bridge, file_io
from .csg_operators import OBJECT_OT_neural_implicit_csg_apply
from .file_io import IMPORT_SCENE_OT_neural_implicit
from .operators import OBJECT_OT_neural_implicit_convert, OBJECT_OT_neural_implicit_remesh

CONVERT = OBJECT_OT_neural_implicit_convert.bl_idname
TO_MESH = OBJECT_OT_neural_implicit_remesh.bl_idname
CSG_APPLY = OBJECT_OT_neural_implicit_csg_apply.bl_idname
IMPORT = IMPORT_SCENE_OT_neural_implicit.bl_idname


def draw_convert(self, context):
    """Object > Convert."""
    layout = self.layout
    layout.separator()
    layout.operator(CONVERT, text="Neural Implicit", icon='META_BALL')
    layout.operator(TO_MESH, text="Mesh from Neural Implicit", icon='OUTLINER_OB_MESH')


def draw_apply(self, context):
    """Object > Apply."""
    layout = self.layout
    layout.separator()
    layout.operator(TO_MESH, text="Neural Implicit to Mesh", icon='MESH_DATA')
    layout.operator(CSG_APPLY, text="Neural CSG", icon='MOD_BOOLEAN')


def draw_context(self, context):
    """The object context menu: what fits the active object."""
    obj = context.active_object
    layout = self.layout
    if obj is not None and obj.type == 'MESH':
        layout.separator()
        layout.operator(CONVERT, text="Convert to Neural Implicit", icon='META_BALL')
    elif bridge.is_implicit(obj):
        layout.separator()
        layout.operator(TO_MESH, text="Convert Neural Implicit to Mesh", icon='OUTLINER_OB_MESH')
        if len(obj.neural_implicit.csg):
            layout.operator(CSG_APPLY, text="Apply Neural CSG", icon='MOD_BOOLEAN')


def draw_add(self, context):
    """Add (Shift+A): load a network as a new implicit object."""
    layout = self.layout
    layout.separator()
    layout.operator(IMPORT, text="Neural Implicit", icon='META_BALL')


#: (name of the Blender menu, draw function appended to it)
MENU_ENTRIES = (
    ("VIEW3D_MT_object_convert", draw_convert),
    ("VIEW3D_MT_object_apply", draw_apply),
    ("VIEW3D_MT_object_context_menu", draw_context),
    ("VIEW3D_MT_add", draw_add),
    ("TOPBAR_MT_file_import", file_io.menu_import),
    ("TOPBAR_MT_file_export", file_io.menu_export),
)


def register():
    for menu, draw in MENU_ENTRIES:
        getattr(bpy.types, menu).append(draw)


def unregister():
    for menu, draw in reversed(MENU_ENTRIES):
        getattr(bpy.types, menu).remove(draw)
