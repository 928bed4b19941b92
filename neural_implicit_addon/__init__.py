"""Neural Implicit: meshes to small neural signed distance fields and back, inside Blender.

Placeholder for packaging: registration only. The extension's metadata is blender_manifest.toml;
the Blender-free library is this package's ``core`` subpackage (``from .core import ...``).
"""

import importlib.util

import bpy


def torch_available() -> bool:
    """Whether torch can be imported, checked without importing it (enabling must stay fast)."""
    return importlib.util.find_spec("torch") is not None


class NI_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    def draw(self, context):
        if torch_available():
            self.layout.label(text="PyTorch is installed: conversion is available", icon='CHECKMARK')
        else:
            self.layout.label(text="PyTorch is not installed: conversion is unavailable", icon='ERROR')


classes = (NI_AddonPreferences,)
register, unregister = bpy.utils.register_classes_factory(classes)
