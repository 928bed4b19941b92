"""PropertyGroups: the scene's conversion settings and the per-object data (stored network, importance).

The conversion settings are *derived* from ``core.common.settings.ConversionSettings``: one Blender
property per dataclass field, with the field's default, range, choices and help text, so defaults
live in core only. ``NI_SceneSettings.to_core()`` turns the properties back into a validated
ConversionSettings. A few add-on-only options (hide the source, remesh resolution, viewport quality)
sit beside them.

``Object.neural_implicit`` (``NI_ObjectProperties``) serves both kinds of objects:

* implicit objects (``is_implicit``): the network as the exact bytes of our .h5 file, base64 in
  ``data`` (a string property, so no NUL bytes), ``key`` the SHA-256 of those bytes (caches use it),
  ``filepath`` an optional link to an .h5 file, ``source`` the mesh it was converted from;
* mesh objects: where conversion takes the user importance from (``importance_source``,
  ``importance_group``);
* the CSG stack of an implicit object (``csg``, a collection of ``NI_CSGEntry``, and ``csg_index``,
  the active entry), applied in order like Blender's modifier stack (``core.geometry.csg``;
  bridge.py turns it into a ``core.geometry.csg.CSGShape``).

The bytes are written and read only by bridge.py.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, fields

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from . import bridge
from .core.common.settings import ConversionSettings
from .core.conversion.checked import SizeMode
from .core.geometry.csg import OPERATIONS
from .core.geometry.remesh import INTERACTIVE_RESOLUTION, MAX_RESOLUTION, MIN_RESOLUTION
from .core.geometry.trace import ViewportSettings

#: Largest value an IntProperty can hold (the seed's core range is larger).
INT_MAX = 2 ** 31 - 1

#: UI names where the field name is not readable as is.
LABELS = {"lr": "Learning Rate", "beta": "Beta", "dtype": "Storage", "encoding_frequencies": "Encoding",
          "surface_fraction": "Surface Share", "far_fraction": "Far Share",
          "importance_strength": "Strength"}
CHOICE_LABELS = {"relu": "ReLU", "sine": "Sine (SIREN)", "auto": "Auto", "cpu": "CPU", "cuda": "CUDA",
                 "mps": "MPS (Apple)",
                 "onecycle": "One-Cycle", "cosine": "Cosine", "constant": "Constant",
                 "float32": "Float32", "float16": "Float16", "int8": "Int8"}

#: The size modes (core.conversion.checked.SizeMode), their fields, and their UI names and
#: descriptions.
SIZE_FIELDS = {f.name: f for f in fields(SizeMode)}
SIZE_MODES = SIZE_FIELDS["mode"].metadata["choices"]
SIZE_MODE_LABELS = {
    "fixed": ("Fixed", "Layers and Hidden as set below"),
    "target_error": ("Target Error", "The smallest network of a ladder of sizes that reaches the "
                                     "target surface error (the paper's error-driven sizing)"),
    "budget": ("Byte Budget", "The most accurate network whose stored numbers fit the budget "
                              "(chooses size, storage and training recipe)")}
LABELS.update(target_error="Target Error", budget_bytes="Byte Budget")

#: The scene's viewport options: core.geometry.trace.ViewportSettings' fields (default, range,
#: help), with how Blender shows them.
VIEWPORT_FIELDS = {f.name: f for f in fields(ViewportSettings)}
VIEWPORT_PROPERTIES = {"resolution_scale": {"subtype": 'FACTOR'}, "max_steps": {},
                       "epsilon": {"precision": 4, "step": 0.01},
                       "step_factor": {"subtype": 'FACTOR'}}
LABELS.update(resolution_scale="Navigation Scale")

#: The settings the panel shows first (the issue's list); every other field goes to "Advanced".
MAIN_SETTINGS = ("layers", "hidden", "activation", "beta", "pool", "samples", "epochs", "lr",
                 "device", "seed")


def _label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").title())


def _description(help_text: str) -> str:
    return help_text[:1].upper() + help_text[1:]


def _precision(default: float) -> int:
    """Digits shown for a float property: enough for its default (3e-3 -> 5, 30.0 -> 2)."""
    if default <= 0:
        return 3
    return int(min(6, max(2, 2 - math.floor(math.log10(default)))))


def property_for(f, options=None, **extra):
    """The bpy property of one field of a core settings description (ConversionSettings,
    core.conversion.checked.SizeMode: default, range, choices, help from core); ``options`` the
    property's bpy options (e.g. {'SKIP_SAVE'} for operator properties); ``extra`` more bpy
    keywords."""
    m = f.metadata
    default = f.default if f.default is not MISSING else f.default_factory()
    common = {"name": _label(f.name), "description": _description(m["help"]), **extra}
    if options is not None:
        common["options"] = set(options)
    if isinstance(default, bool):
        return BoolProperty(default=default, **common)
    if isinstance(default, int):
        return IntProperty(default=default, min=int(m["min"]), max=int(min(m["max"], INT_MAX)),
                           **common)
    if isinstance(default, float):
        common.setdefault("precision", _precision(default))
        return FloatProperty(default=default, min=float(m["min"]), max=float(m["max"]), **common)
    if isinstance(default, str) and "choices" in m:
        items = [(c, CHOICE_LABELS.get(c, c.title()), "") for c in m["choices"]]
        return EnumProperty(items=items, default=default, **common)
    raise TypeError(f"ConversionSettings.{f.name}: no Blender property for {type(default).__name__}")


def _float32_to_float(value: float) -> float:
    """A FloatProperty holds float32: 3e-3 reads back as 0.0030000000260770321. Take the shortest
    decimal that float32 value stands for, which is what the user typed."""
    return float(f"{value:.7g}")


def settings_from(owner) -> ConversionSettings:
    """The validated ConversionSettings held by ``owner``: the scene's settings or the Convert
    operator's properties (both derived by :func:`conversion_properties`)."""
    values = {}
    for f in fields(ConversionSettings):
        v = getattr(owner, f.name)
        values[f.name] = _float32_to_float(v) if isinstance(v, float) else v
    return ConversionSettings(**values).validate()


def _to_core(self) -> ConversionSettings:
    return settings_from(self)


def _from_core(self, settings: ConversionSettings) -> None:
    for f in fields(ConversionSettings):
        setattr(self, f.name, getattr(settings, f.name))


def conversion_properties(options=None) -> dict:
    """Name -> bpy property of everything that decides a conversion: one per ConversionSettings
    field (:func:`property_for`), then how the network's size is chosen and whether the source is
    hidden. The scene's settings and the Convert operator (its F9 panel; ``options``
    {'SKIP_SAVE'}, so each run starts from the scene's values) are both built from this, so the two
    never disagree."""
    common = {} if options is None else {"options": set(options)}
    annotations = {f.name: property_for(f, options) for f in fields(ConversionSettings)}
    annotations.update(
        size_mode=EnumProperty(
            name="Network Size", default=SizeMode().mode.upper(),
            items=[(m.upper(), *SIZE_MODE_LABELS[m]) for m in SIZE_MODES],
            description="How the network's size is chosen", **common),
        target_error=property_for(SIZE_FIELDS["target_error"], options, precision=4, step=0.01),
        budget_bytes=property_for(SIZE_FIELDS["budget_bytes"], options),
        hide_source=BoolProperty(
            name="Hide Source", default=True,
            description="Hide each converted mesh afterwards (not deleted: Alt+H or the implicit's "
                        "Show Source button brings it back)", **common),
    )
    return annotations


#: Names of :func:`conversion_properties` (what the Convert operator seeds from the scene).
CONVERSION_OPTIONS = tuple(conversion_properties())


def resolution_property(description: str, default: int = INTERACTIVE_RESOLUTION):
    """A marching-cubes resolution, with core.geometry.remesh's range and defaults (one definition
    for the panel and every operator that meshes)."""
    return IntProperty(name="Resolution", default=default, min=MIN_RESOLUTION, max=MAX_RESOLUTION,
                       description=description)


def _settings_class():
    annotations = conversion_properties()
    annotations.update(
        remesh_resolution=resolution_property("Marching cubes cells per axis of the implicit's "
                                              "bounding cube"),
        **{f"viewport_{name}": property_for(VIEWPORT_FIELDS[name], **extra)
           for name, extra in VIEWPORT_PROPERTIES.items()},
    )
    return type("NI_SceneSettings", (bpy.types.PropertyGroup,), {
        "__annotations__": annotations,
        "__doc__": ("Conversion settings (derived from core.common.settings.ConversionSettings) and "
                    "add-on options"),
        "to_core": _to_core,
        "from_core": _from_core,
    })


NI_SceneSettings = _settings_class()


IMPORTANCE_SOURCES = [
    ('NONE', "None", "Uniform accuracy over the whole surface"),
    ('SELECTION', "Selection", "Selected vertices (Edit Mode) are reproduced more accurately"),
    ('VERTEX_GROUP', "Vertex Group",
     "A vertex group's weights (paint them in Weight Paint mode) raise the accuracy where they are high"),
]


#: The CSG operations (identifiers are core.geometry.csg.OPERATIONS in upper case), with the icons
#: of Blender's Boolean modifier where it has them.
CSG_OPERATIONS = [
    ('UNION', "Union", "Everything inside either shape", 'SELECT_EXTEND', 0),
    ('INTERSECTION', "Intersection", "Only what is inside both shapes", 'SELECT_INTERSECT', 1),
    ('DIFFERENCE', "Difference", "The shape so far minus the operand", 'SELECT_SUBTRACT', 2),
    ('SMOOTH_UNION', "Smooth Union", "Union with a rounded seam of the blend radius",
     'SELECT_EXTEND', 3),
    ('SMOOTH_INTERSECTION', "Smooth Intersection", "Intersection with rounded edges of the blend "
     "radius", 'SELECT_INTERSECT', 4),
    ('SMOOTH_DIFFERENCE', "Smooth Difference", "Difference with rounded edges of the blend radius",
     'SELECT_SUBTRACT', 5),
]
if [item[0].lower() for item in CSG_OPERATIONS] != list(OPERATIONS):  # a bug, not bad input
    raise RuntimeError("CSG_OPERATIONS disagree with core.geometry.csg.OPERATIONS")


def _csg_operand_poll(self, obj) -> bool:
    """Operand choices: other implicit objects that do not use this entry's object (no cycles)."""
    owner = self.id_data
    return bridge.is_implicit(obj) and obj != owner and not bridge.csg_uses(obj, owner)


def _csg_changed(self, context) -> None:
    """Redraw the 3D views: the viewport draws the CSG result from these properties."""
    bridge.tag_view3d_redraw(context)


class NI_CSGEntry(bpy.types.PropertyGroup):
    """One entry of an implicit's CSG stack."""

    operand: PointerProperty(
        type=bpy.types.Object, name="Operand", poll=_csg_operand_poll, update=_csg_changed,
        description="The implicit object combined with the result so far (its own CSG stack "
                    "included); objects that use this one are not offered (no cycles)")
    operation: EnumProperty(
        name="Operation", items=CSG_OPERATIONS, default='UNION', update=_csg_changed,
        description="How the operand is combined with the result of the entries above")
    blend: FloatProperty(
        name="Blend", default=0.1, min=0.0, soft_max=1.0, subtype='DISTANCE', unit='LENGTH',
        precision=3, update=_csg_changed,
        description="Radius of the rounded seam of smooth operations, in scene units")
    show: BoolProperty(
        name="Show", default=True, update=_csg_changed,
        description="Use this entry in the viewport and when applying (like a modifier's "
                    "visibility toggle)")


class NI_ObjectProperties(bpy.types.PropertyGroup):
    """Per-object data: the stored network of implicit objects, the importance source of meshes."""

    is_implicit: BoolProperty(
        name="Is Implicit", default=False,
        description="This object carries a neural implicit (set by conversion and import)")
    data: StringProperty(
        name="Network", default="", options={'HIDDEN'},
        description="The network as base64 of its .h5 file (written by the add-on only)")
    key: StringProperty(
        name="Content Key", default="", options={'HIDDEN'},
        description="SHA-256 of the stored .h5 bytes")
    filepath: StringProperty(
        name="File", default="", subtype='FILE_PATH',
        description=".h5 file this implicit was imported from or last exported to")
    source: PointerProperty(
        type=bpy.types.Object, name="Source",
        description="The mesh object this implicit was converted from")
    importance_source: EnumProperty(
        name="Importance", items=IMPORTANCE_SOURCES, default='NONE',
        description="Where conversion reads per-vertex importance from")
    importance_group: StringProperty(
        name="Vertex Group", default="",
        description="Vertex group whose weights are the importance")
    csg: CollectionProperty(
        type=NI_CSGEntry, name="CSG Stack",
        description="Operations with other implicits, applied in order (Neural CSG panel)")
    csg_index: IntProperty(
        name="Active CSG Entry", default=0, min=0,
        description="The selected entry of the CSG stack")


classes = (NI_SceneSettings, NI_CSGEntry, NI_ObjectProperties)
