"""Neural Implicit: meshes to small neural signed distance fields and back, inside Blender.

Registration only. The modules, one job each: ``properties`` (PropertyGroups), ``bridge`` (Blender
data <-> core types, the object convention), ``jobs`` (core work off the UI thread; conversions
train in a child process, ``core.conversion.child_process``), ``operators`` (convert, remesh),
``file_io`` (import/export, drag and drop), ``panels`` (the sidebar's "Neural" tab), ``menus``
(entries in Object > Convert / Apply, the context menu, Add and File > Import / Export),
``csg_operators`` / ``csg_panels`` (the CSG stack), ``volume_ops`` (OpenVDB volumes, registering its
own operators and menu entries), ``preferences`` (PyTorch), ``viewport`` (the GPU draw handler). The
Blender-free library is the subpackage ``core``. Scripting contract:
``Object.neural_implicit`` (``is_implicit``, ``csg``), ``Scene.neural_implicit_settings``,
``bpy.ops.object.neural_implicit_convert`` / ``_remesh`` / ``_csg_apply`` (blocking from scripts
and in background mode).
"""

import bpy

from . import (bridge, csg_operators, csg_panels, file_io, jobs, menus, operators, panels,
               preferences, properties, viewport, volume_ops)
from .preferences import NI_AddonPreferences, torch_available  # noqa: F401  (tests, scripts)

classes = (*properties.classes, *preferences.classes, *operators.classes, *csg_operators.classes,
           *file_io.classes, *panels.classes, *csg_panels.classes)

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


@bpy.app.handlers.persistent
def _on_load_pre(*_args):
    """Loading another file: stop the running job (its objects belong to the old file)."""
    jobs.shutdown()


def register():
    _register_classes()
    bpy.types.Object.neural_implicit = bpy.props.PointerProperty(type=properties.NI_ObjectProperties)
    bpy.types.Scene.neural_implicit_settings = bpy.props.PointerProperty(
        type=properties.NI_SceneSettings)
    menus.register()
    volume_ops.register()      # its operators and menu entries (the Geometry Nodes bridge)
    bpy.app.handlers.load_pre.append(_on_load_pre)
    preferences.add_torch_paths()
    viewport.register_draw_handler(bridge.draw_items, bridge.viewport_settings)


def unregister():
    jobs.shutdown()
    viewport.unregister_draw_handler()
    preferences.remove_torch_paths()
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    volume_ops.unregister()
    menus.unregister()
    del bpy.types.Scene.neural_implicit_settings
    del bpy.types.Object.neural_implicit
    bridge.clear_cache()
    _unregister_classes()
