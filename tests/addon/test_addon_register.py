"""Registration: everything the add-on adds to Blender goes away on disable and comes back on enable;
the scene settings are derived from core's ConversionSettings; the sidebar panels draw."""

import importlib
import re
import sys
from dataclasses import fields

import pytest

from .scenes import new_scene

#: Small but passing the result check on Suzanne (2 epochs fail it since conversions are checked).


def module(blender, name):
    return importlib.import_module(f"{blender.package}.{name}")


def registered_names(bpy):
    """Our classes as Blender lists them (operators appear as bpy.types.OBJECT_OT_...)."""
    return sorted(n for n in dir(bpy.types)
                  if n.startswith("NI_") or "neural_implicit" in n.lower())


def menu_funcs(menu):
    return list(getattr(menu.draw, "_draw_funcs", []))


def test_disable_leaves_nothing_behind_and_enable_restores(blender):
    bpy = blender.bpy
    init = blender.module
    viewport = module(blender, "viewport")
    preferences = module(blender, "preferences")
    file_io = module(blender, "file_io")
    names = registered_names(bpy)
    assert all(cls.is_registered for cls in init.classes)  # PropertyGroups and preferences too
    assert {"NI_PT_convert", "NI_PT_importance", "NI_PT_implicit", "NI_FH_neural_implicit", "OBJECT_OT_neural_implicit_convert",
            "OBJECT_OT_neural_implicit_remesh", "IMPORT_SCENE_OT_neural_implicit",
            "EXPORT_SCENE_OT_neural_implicit"} <= set(names)
    assert hasattr(bpy.types.Object, "neural_implicit") and hasattr(bpy.types.Scene,
                                                                     "neural_implicit_settings")
    assert viewport.is_registered()
    assert file_io.menu_import in menu_funcs(bpy.types.TOPBAR_MT_file_import)
    handlers_before = {h.__name__ for h in bpy.app.handlers.load_pre}
    paths_added = list(preferences.add_torch_paths())
    try:
        assert bpy.ops.preferences.addon_disable(module=blender.package) == {'FINISHED'}
        assert registered_names(bpy) == []
        assert not any(cls.is_registered for cls in init.classes)
        assert not hasattr(bpy.types.Object, "neural_implicit")
        assert not hasattr(bpy.types.Scene, "neural_implicit_settings")
        assert not viewport.is_registered()
        assert file_io.menu_import not in menu_funcs(bpy.types.TOPBAR_MT_file_import)
        assert file_io.menu_export not in menu_funcs(bpy.types.TOPBAR_MT_file_export)
        assert "_on_load_pre" not in {h.__name__ for h in bpy.app.handlers.load_pre}
        assert preferences._added_paths == [] and not set(paths_added) & set(sys.path)
    finally:
        assert bpy.ops.preferences.addon_enable(module=blender.package) == {'FINISHED'}
    init = sys.modules[blender.package]
    assert set(registered_names(bpy)) == set(names)
    assert all(cls.is_registered for cls in init.classes)
    assert module(blender, "viewport").is_registered()
    assert {h.__name__ for h in bpy.app.handlers.load_pre} == handlers_before
    bpy.ops.wm.read_homefile(use_empty=True)
    defaults = module(blender, "core.common.settings").ConversionSettings()
    assert bpy.context.scene.neural_implicit_settings.to_core() == defaults


def test_scene_settings_are_derived_from_core_conversion_settings(blender):
    bpy = blender.bpy
    core_settings = module(blender, "core.common.settings")
    bpy.ops.wm.read_homefile(use_empty=True)
    scene_settings = bpy.context.scene.neural_implicit_settings
    rna = scene_settings.bl_rna.properties
    for f in fields(core_settings.ConversionSettings):
        prop = rna[f.name]
        assert prop.description.lower().startswith(f.metadata["help"][:20].lower()), f.name
        if "choices" in f.metadata:
            assert [item.identifier for item in prop.enum_items] == list(f.metadata["choices"])
            assert prop.default == f.default
        else:
            assert prop.default == pytest.approx(f.default, rel=1e-6), f.name
            assert prop.hard_min == pytest.approx(f.metadata["min"])
            assert prop.hard_max == pytest.approx(min(f.metadata["max"], 2 ** 31 - 1))
    assert scene_settings.to_core() == core_settings.ConversionSettings()
    scene_settings.lr = 0.003
    assert scene_settings.to_core().lr == 0.003                    # not 0.0030000000260770321
    for name in ("layers", "hidden", "activation", "beta", "pool", "samples", "epochs", "lr", "device",
                 "seed"):
        assert name in rna


class FakeLayout:
    """Accepts every UILayout call and records the texts shown."""

    def __init__(self, texts):
        self.texts = texts

    def __getattr__(self, name):
        def call(*args, **kwargs):
            if "text" in kwargs:
                self.texts.append(str(kwargs["text"]))
            return FakeLayout(self.texts)
        return call

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)


def draw_panels(blender):
    bpy = blender.bpy
    panels = module(blender, "panels")
    texts = []
    for cls in panels.classes:
        if hasattr(cls, "poll") and not cls.poll(bpy.context):
            continue
        cls.draw(FakeLayoutPanel(texts), bpy.context)
    return texts


class FakeLayoutPanel:
    def __init__(self, texts):
        self.layout = FakeLayout(texts)


def test_panels_draw_for_a_mesh_and_for_an_implicit(blender):
    bpy = blender.bpy
    new_scene(bpy)
    bpy.ops.mesh.primitive_monkey_add()
    suzanne = bpy.context.active_object
    suzanne.neural_implicit.importance_source = 'SELECTION'
    texts = draw_panels(blender)
    assert "Convert Selected" in texts
    assert any(f"of {len(suzanne.data.vertices):,} vertices carry weight" in t for t in texts), texts
    assert bpy.ops.object.neural_implicit_convert() == {'FINISHED'}
    texts = draw_panels(blender)
    assert any("Show Source (Suzanne)" == t for t in texts), texts
    assert "Convert to Mesh" in texts and "Export .h5" in texts
    assert "Chamfer" in texts and any(re.fullmatch(r"[\d.]+% of size \([\d.]+ c?m\)", t)
                                      for t in texts), texts
