"""The Geometry Nodes bridge: implicit objects <-> OpenVDB level sets on Volume objects.

* **Bake Neural Implicit to Volume** (Object > Convert, the object context menu) writes the active
  implicit as a narrow-band level set (``core.geometry.volume_grid.implicit_band``) into a .vdb
  file: one float grid named :data:`GRID_NAME`, grid class LEVEL_SET, background ``half_width *
  voxel_size``, linear transform of the voxel size, in the implicit object's local frame. A new
  Volume object references the file and takes the implicit's ``matrix_world``, so Blender's SDF grid
  nodes (Get Named Grid "distance" -> SDF Grid Boolean / Fillet / Offset / Mean, Grid to Mesh) work
  on it where the implicit is. The file goes next to the .blend (``//neural_implicit_volumes/``), or
  into the extension's user folder while the file is unsaved.
* **Convert Volume to Neural Implicit** reads a level set from the active Volume object (its
  evaluated grids, so grids made by Geometry Nodes count too, saved to a temporary .vdb with
  ``Volume.grids.save`` because the Python API gives no voxel values), extracts its zero level set
  (marching cubes at its voxels, ``core.geometry.volume_grid.grid_mesh``) and converts that surface
  like any
  mesh: in a child process (``core.conversion.child_process``), with the scene's conversion settings
  and the result check against the grid's surface; then adds an implicit object. Blender waits for
  it.

The .vdb side uses OpenVDB's Python module, which Blender ships (:func:`openvdb_module`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile

import numpy as np

import bpy
from bpy.props import FloatProperty, IntProperty

from . import bridge
from .core.common.errors import InputError
from .core.common.units import format_fraction

#: Name of the baked grid (Get Named Grid's "Name" in a node tree).
GRID_NAME = "distance"
#: Folder of baked files, next to the .blend ("//" = the .blend's folder).
VOLUME_FOLDER = "neural_implicit_volumes"


# ============================================================================ OpenVDB files

def openvdb_module():
    """OpenVDB's Python module. Blender ships it in its own site-packages, which a Blender build
    has on ``sys.path`` and the bpy module does not: add it there. Raises InputError when absent."""
    try:
        import openvdb
        return openvdb
    except ImportError:
        pass
    path = os.path.join(bpy.utils.system_resource('PYTHON'), "lib",
                        "python%d.%d" % sys.version_info[:2], "site-packages")
    if os.path.isdir(path) and path not in sys.path:
        sys.path.append(path)
    try:
        import openvdb
    except ImportError:
        raise InputError("this Blender has no OpenVDB Python module (openvdb); volumes cannot be "
                         "written or read") from None
    return openvdb


def write_band(band, path: str) -> None:
    """Write a core.geometry.volume_grid.NarrowBand as a level-set .vdb file (module docstring)."""
    vdb = openvdb_module()
    bg = np.float32(band.background)
    grid = vdb.FloatGrid(float(bg))
    for origin, block in zip(band.origins, band.values):
        inactive = ~(np.abs(block) < bg)
        if inactive.all():
            continue
        # voxels outside the band are written as the background (inactive); the signed flood fill
        # below gives those inside the shape their negative sign
        values = np.ascontiguousarray(np.where(inactive, bg, block), dtype=np.float32)
        grid.copyFromArray(values, ijk=tuple(int(x) for x in origin), tolerance=0.0)
    grid.signedFloodFill()
    grid.transform = vdb.createLinearTransform(band.voxel_size)
    grid.gridClass = vdb.GridClass.LEVEL_SET
    grid.name = GRID_NAME
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    vdb.write(path, grids=[grid])


def read_level_set(path: str, prefer: str = ""):
    """The level set of a .vdb file as a core.geometry.volume_grid.DenseGrid (its active box,
    padded).

    Takes the float level-set grid named ``prefer`` when there is one, else the first float level
    set, else a float grid named like a distance ("distance", "sdf", "surface"). Raises InputError
    when the file has none or it is too large to read."""
    from .core.geometry.volume_grid import MAX_DENSE_VOXELS, DenseGrid

    vdb = openvdb_module()
    try:
        grids, _ = vdb.readAll(path)
    except Exception as exc:  # OpenVDB raises its own IoError/KeyError/etc.; all mean "unreadable"
        raise InputError(f"{path}: not a readable OpenVDB file ({exc})") from None
    floats = [g for g in grids if isinstance(g, vdb.FloatGrid)]
    level_sets = [g for g in floats if g.gridClass == vdb.GridClass.LEVEL_SET]
    named = [g for g in floats if g.name.lower() in ("distance", "sdf", "surface")]
    choice = ([g for g in level_sets if g.name == prefer] or level_sets or named)
    if not choice:
        found = ", ".join(f"{g.name or '(unnamed)'} ({g.valueTypeName}, {g.gridClass})"
                          for g in grids) or "no grids"
        raise InputError(f"no signed distance grid (a float level set); found {found}")
    grid = choice[0]
    if grid.activeVoxelCount() == 0:
        raise InputError(f"grid {grid.name!r} has no active voxels: no surface")
    lo, hi = grid.evalActiveVoxelBoundingBox()
    lo = np.array(lo) - 2
    hi = np.array(hi) + 2
    shape = tuple(int(x) for x in hi - lo + 1)
    if int(np.prod(shape)) > MAX_DENSE_VOXELS:
        raise InputError(f"grid {grid.name!r} spans {' x '.join(map(str, shape))} voxels, more than "
                         f"the {MAX_DENSE_VOXELS:,} a conversion reads; resample it to larger voxels")
    values = np.empty(shape, dtype=np.float32)
    grid.copyToArray(values, ijk=tuple(int(x) for x in lo))
    T = grid.transform
    o = np.array(T.indexToWorld(tuple(int(x) for x in lo)))
    M = np.eye(4)
    M[:3, 3] = o
    for axis in range(3):
        step = [int(x) for x in lo]
        step[axis] += 1
        M[:3, axis] = np.array(T.indexToWorld(tuple(step))) - o
    return DenseGrid(values, M, float(grid.background), grid.name or "grid").validate()


def volume_folder() -> str:
    """Where baked files go: next to the saved .blend, else the extension's user folder."""
    if bpy.data.filepath:
        return os.path.join(os.path.dirname(bpy.data.filepath), VOLUME_FOLDER)
    try:
        return bpy.utils.extension_path_user(__package__, path=VOLUME_FOLDER, create=True)
    except ValueError:      # loaded as a legacy add-on, not as an extension
        return os.path.join(tempfile.gettempdir(), VOLUME_FOLDER)


def _file_name(obj, voxel_size: float, half_width: int) -> str:
    """``<object>_<digest>.vdb``, the digest of the network and the bake's settings: Blender caches
    a volume file's grids by path, so a bake with other settings must not reuse the path (the
    Volume would show the old grid); the same bake again writes the same file."""
    digest = hashlib.sha256(f"{obj.neural_implicit.key}|{voxel_size!r}|{half_width}".encode())
    return f"{bpy.path.clean_name(obj.name)}_{digest.hexdigest()[:10]}.vdb"


def _object_scale(obj) -> float:
    M = bridge.matrix_to_numpy(obj.matrix_world)
    return float(np.cbrt(abs(np.linalg.det(M[:3, :3]))))


# ============================================================================ operators

class OBJECT_OT_neural_implicit_bake_volume(bpy.types.Operator):
    """Write the active neural implicit as an OpenVDB level set (.vdb) and add a Volume object using
    it, for Geometry Nodes' SDF grid nodes (Get Named Grid "distance", Grid to Mesh, SDF Boolean)"""

    bl_idname = "object.neural_implicit_bake_volume"
    bl_label = "Bake Neural Implicit to Volume"
    bl_options = {'REGISTER', 'UNDO'}

    voxel_size: FloatProperty(
        name="Voxel Size", default=0.0, min=0.0, soft_max=1.0, subtype='DISTANCE', precision=4,
        description="Edge of one voxel in scene units (0: automatic, 1/128 of the implicit's "
                    "bounding sphere's diameter, the lattice of a remesh at resolution 128)")
    half_width: IntProperty(
        name="Band Width", default=3, min=1, max=8,
        description="Voxels stored on each side of the surface (OpenVDB's default is 3); SDF Offset "
                    "and Fillet reach at most this far")

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        if not bridge.is_implicit(obj):
            cls.poll_message_set("The active object is no neural implicit")
            return False
        return True

    def execute(self, context):
        from .core.geometry.volume_grid import default_voxel_size, implicit_band

        obj = context.active_object
        try:
            implicit = bridge.implicit_from_object(obj)
            scale = _object_scale(obj)
            h = self.voxel_size / scale if self.voxel_size > 0 else default_voxel_size(implicit)
            band = implicit_band(implicit, h, self.half_width)
            path = os.path.join(volume_folder(), _file_name(obj, h, self.half_width))
            write_band(band, path)
        except (InputError, OSError) as exc:
            self.report({'ERROR'}, f"{obj.name}: {exc}")
            return {'CANCELLED'}
        volume = bpy.data.volumes.new(obj.name + " Volume")
        volume.filepath = bpy.path.relpath(path) if bpy.data.filepath else path
        vobj = bpy.data.objects.new(obj.name + " Volume", volume)
        vobj.matrix_world = obj.matrix_world.copy()
        for collection in obj.users_collection or (context.scene.collection,):
            collection.objects.link(vobj)
        bridge.make_active(context.view_layer, vobj, deselect=context.selected_objects)
        if any(entry.show for entry in obj.neural_implicit.csg):
            self.report({'WARNING'}, f"{obj.name}: its CSG stack is not baked, only its own network")
        self.report({'INFO'}, f"Baked {obj.name} to {path}: voxel size "
                              f"{bridge.scene_length(context.scene, h * scale)}, "
                              f"{band.active_voxels:,} voxels in a band of {self.half_width} each side")
        return {'FINISHED'}


class OBJECT_OT_neural_implicit_from_volume(bpy.types.Operator):
    """Train a neural implicit on the signed distance grid (level set) of the active Volume object,
    with the scene's conversion settings (in a child process; Blender waits for it)"""

    bl_idname = "object.neural_implicit_from_volume"
    bl_label = "Convert Volume to Neural Implicit"
    bl_options = {'REGISTER', 'UNDO'}

    grid_name: bpy.props.StringProperty(
        name="Grid", default="",
        description="Name of the level-set grid to read (empty: the first float level set)")

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        if obj is None or obj.type != 'VOLUME':
            cls.poll_message_set("The active object is no Volume")
            return False
        return True

    def execute(self, context):
        from .preferences import torch_available
        from .properties import settings_from

        obj = context.active_object
        if not torch_available():
            self.report({'ERROR'}, "PyTorch is not installed (Preferences > Add-ons > Neural Implicit)")
            return {'CANCELLED'}
        try:
            settings = settings_from(context.scene.neural_implicit_settings)
            grid = self._read(context, obj)
            implicit, verification, warnings = _train_on_grid(grid, settings, obj.name)
        except InputError as exc:
            self.report({'ERROR'}, f"{obj.name}: {exc}")
            return {'CANCELLED'}
        world = implicit.copy()
        world.transform = implicit.transform @ np.linalg.inv(bridge.matrix_to_numpy(obj.matrix_world))
        new = bridge.new_implicit_object(obj.name + " Implicit", world, obj.users_collection)
        bridge.make_active(context.view_layer, new, deselect=context.selected_objects)
        for warning in warnings:
            self.report({'WARNING'}, f"{obj.name}: {warning}")
        self.report({'INFO'}, f"Converted {obj.name}: Chamfer "
                              f"{format_fraction(verification.get('chamfer'))} of size, sign agreement "
                              f"{100 * (verification.get('sign_agreement') or 0):.1f}%")
        return {'FINISHED'}

    def _read(self, context, obj):
        """The evaluated grids (Geometry Nodes included) saved to a temporary .vdb, then read."""
        evaluated = obj.evaluated_get(context.evaluated_depsgraph_get())
        grids = evaluated.data.grids
        if not grids.load():
            raise InputError(f"its grids could not be loaded: {grids.error_message or 'no grids'}")
        active = grids.active_index
        prefer = self.grid_name or (grids[active].name if 0 <= active < len(grids) else "")
        with tempfile.TemporaryDirectory(prefix="neural_implicit_") as tmp:
            path = os.path.join(tmp, "grids.vdb")
            if not grids.save(path):
                raise InputError(f"its grids could not be saved: {grids.error_message}")
            return read_level_set(path, prefer)


def _train_on_grid(grid, settings, name: str):
    """Train and check a network of ``grid`` (core.geometry.volume_grid.DenseGrid, the Volume's
    local frame) in a child process, like every conversion (a crash there leaves Blender alive): the
    grid's zero level set (marching cubes at its voxels) is converted as a mesh, so its exact
    distance is the target and the result is checked against that surface. Returns ``(implicit,
    verification dict, warnings)``; raises InputError (ConversionFailed, ChildDied ...) when it
    fails."""
    from .core.conversion.child_process import ShapeInput, convert_in_child
    from .core.geometry.volume_grid import grid_mesh

    grid.name = name
    mesh = grid_mesh(grid)
    [outcome] = convert_in_child([ShapeInput(name, mesh.V, mesh.F, None)], settings)
    if isinstance(outcome, BaseException):
        raise InputError(str(outcome)) from None
    outcome.implicit.metadata["source_grid"] = {"name": name, "voxels": list(grid.values.shape)}
    return outcome.implicit, outcome.verification or {}, outcome.warnings


# ============================================================================ node trees

def grid_to_mesh_group(volume_obj, name: str = "Neural Volume to Mesh"):
    """A Geometry Nodes group meshing a baked volume: Object Info (``volume_obj``, original
    space) -> Get Named Grid (:data:`GRID_NAME`) -> Grid to Mesh (threshold 0: the level set's zero
    surface) -> Group Output. Put it on a mesh object with the volume's ``matrix_world`` to get the
    surface where the implicit is; the docs' example tree and the bridge's measurement use it."""
    tree = bpy.data.node_groups.new(name, 'GeometryNodeTree')
    tree.interface.new_socket("Geometry", in_out='OUTPUT', socket_type='NodeSocketGeometry')
    nodes, links = tree.nodes, tree.links
    info = nodes.new('GeometryNodeObjectInfo')
    info.transform_space = 'ORIGINAL'
    info.inputs["Object"].default_value = volume_obj
    get = nodes.new('GeometryNodeGetNamedGrid')
    get.data_type = 'FLOAT'
    get.inputs["Name"].default_value = GRID_NAME
    to_mesh = nodes.new('GeometryNodeGridToMesh')
    to_mesh.inputs["Threshold"].default_value = 0.0
    to_mesh.inputs["Adaptivity"].default_value = 0.0
    out = nodes.new('NodeGroupOutput')
    links.new(info.outputs["Geometry"], get.inputs["Volume"])
    links.new(get.outputs["Grid"], to_mesh.inputs["Grid"])
    links.new(to_mesh.outputs["Mesh"], out.inputs["Geometry"])
    for i, node in enumerate((info, get, to_mesh, out)):
        node.location = (220 * i, 0)
    return tree


# ============================================================================ menus

def menu_convert(self, context):
    """Object > Convert."""
    layout = self.layout
    layout.separator()
    layout.operator(OBJECT_OT_neural_implicit_bake_volume.bl_idname, icon='VOLUME_DATA')
    layout.operator(OBJECT_OT_neural_implicit_from_volume.bl_idname, icon='OUTLINER_OB_VOLUME')


def menu_context(self, context):
    """The object context menu (right click): only for objects each operator works on."""
    obj = context.active_object
    if bridge.is_implicit(obj):
        self.layout.operator(OBJECT_OT_neural_implicit_bake_volume.bl_idname, icon='VOLUME_DATA')
    elif obj is not None and obj.type == 'VOLUME':
        self.layout.operator(OBJECT_OT_neural_implicit_from_volume.bl_idname,
                             icon='OUTLINER_OB_VOLUME')


classes = (OBJECT_OT_neural_implicit_bake_volume, OBJECT_OT_neural_implicit_from_volume)

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.types.VIEW3D_MT_object_convert.append(menu_convert)
    bpy.types.VIEW3D_MT_object_context_menu.append(menu_context)


def unregister():
    bpy.types.VIEW3D_MT_object_context_menu.remove(menu_context)
    bpy.types.VIEW3D_MT_object_convert.remove(menu_convert)
    _unregister_classes()
