"""Scene helpers shared by the add-on tests (plain functions; bpy comes from the ``blender`` fixture).

SMALL: the smallest conversion settings whose networks pass the conversion's own result check on
Suzanne and the primitives (core/conversion/verify.py), so a test's conversion is quick and really
"done".
"""

SMALL = dict(layers=3, hidden=32, pool=200_000, samples=30_000, epochs=5, lr=1e-2, batch_size=512,
             threads=1, seed=0)
#: The initialisation and sampling of the recipe before issue 15, for tests whose measured margins
#: were set with it (the importance-painting ratio).
OLD_START = dict(init="uniform", far_fraction=0.0)


def new_scene(bpy, **settings):
    """An empty file whose scene has the SMALL conversion settings (``settings`` override them)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    s = bpy.context.scene.neural_implicit_settings
    for key, value in {**SMALL, **settings}.items():
        setattr(s, key, value)
    return s


def saved(bpy, tmp_path_factory, name: str) -> str:
    """Save the open file as ``name`` in a new temporary folder; its path, for tests to reopen."""
    path = tmp_path_factory.mktemp(name.split(".")[0]) / name
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return str(path)


def scene_state(bpy):
    """What the user sees of the scene's objects: (name, type, hidden), sorted."""
    return sorted((o.name, o.type, o.hide_get()) for o in bpy.data.objects)


def add_suzanne(bpy, location=(0.0, 0.0, 0.0), rotation=(0.0, 0.0, 0.0)):
    bpy.ops.mesh.primitive_monkey_add(location=location, rotation=rotation)
    return bpy.context.active_object
