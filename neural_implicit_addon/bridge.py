"""The one place that translates between Blender data and core types.

Frames: the object convention
-----------------------------
An implicit object is an Empty whose **local frame is the implicit's mesh frame**: the stored
``Implicit.transform`` maps object-local coordinates to the network frame, and the object's
``matrix_world`` maps local coordinates to the world. So

    world -> network  =  implicit.transform @ inverse(matrix_world)

which is what the viewport draws, what remeshing uses (its vertices come out in the mesh frame, i.e.
object-local, and the new mesh object gets the implicit's ``matrix_world``) and what an exported file
gets as its transform (:func:`world_transform`: the file's mesh frame is the world).

Where the object is placed (``core.representation.frames.placement``): conversion normalises the
*world-space* mesh, giving a world -> network similarity ``s R x + t``. The Empty gets ``location``
= the shape's centre (the world point at the network origin), the rotation ``R^T`` and scale 1, and
the stored transform becomes the pure uniform scale ``diag(s, s, s)``. Object units therefore are
scene units, moving, rotating and scaling the object moves the shape, and the Empty's sphere display
(radius ``BOUND_RADIUS / s``) is exactly the ball where the network is defined. Importing a file
places the object the same way from the file's transform, so the shape lands where the file says its
mesh was.

CSG (:func:`csg_tree`): an implicit object's CSG stack (``neural_implicit.csg``) becomes a
``core.geometry.csg.CSGShape`` evaluated in the world: the object's network at its ``matrix_world``,
then each shown entry's operand object, *with its own stack applied* (like a Boolean modifier's
operand with its modifiers), at its ``matrix_world``. Entries whose operand was deleted, is no
implicit or cannot be read are skipped with a warning; a cycle (A uses B uses A, only possible from
scripts: the operand picker hides such objects) is refused with an error. The viewport draws a CSG
result as one item and does not draw the objects it uses as operands on their own (they work like
Blender's Boolean cutters; their Empty stays visible to select and move them).

Storage: the network is kept as the exact bytes of our .h5 file, base64 in ``obj.neural_implicit.data``
with their SHA-256 in ``.key``; decoded networks are cached by key (duplicates share one entry).
Stored bytes are untrusted (a .blend from anywhere, a script): they are decoded lazily, when
something first needs the network (drawing, the panel, an operator), never on file open; their size
is checked before decoding; every decode goes through ``core.representation.fileformat.from_bytes``;
and a failure is remembered by the SHA-256 of the stored text (:func:`read_problem`), logged once,
and answered from memory afterwards, so a bad object costs one decode, not one per redraw.
Blender data is read and written here on the main thread only.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import numpy as np

import bpy
from mathutils import Matrix

from .core.common.constants import BOUND_RADIUS, MESH_RADIUS
from .core.common.errors import FileFormatError, InputError
from .core.geometry.csg import CSGShape, CSGStep
from .core.representation.fileformat import MAX_FILE_BYTES, from_bytes, to_bytes
from .core.representation.frames import mean_scale, placement
from .core.representation.implicit import Implicit

log = logging.getLogger(__name__)

#: Decoded networks kept in memory (by content key).
CACHE_SIZE = 64
_cache: "OrderedDict[str, Implicit]" = OrderedDict()
#: Stored networks that could not be read: SHA-256 of the stored text -> the message (bounded; a
#: forgotten entry only costs one more decode).
FAILED_SIZE = 256
_failed: "OrderedDict[str, str]" = OrderedDict()
#: Longest stored text that can hold a valid file (base64 of
#: core.representation.fileformat.MAX_FILE_BYTES).
MAX_STORED_CHARS = 4 * ((MAX_FILE_BYTES + 2) // 3)


# ============================================================================ frames

def matrix_to_numpy(matrix) -> np.ndarray:
    return np.array([tuple(row) for row in matrix], dtype=np.float64)


def world_transform(obj, implicit: Implicit) -> np.ndarray:
    """(4, 4) world -> network transform of an implicit object: ``transform @ inverse(matrix_world)``."""
    return implicit.transform @ np.linalg.inv(matrix_to_numpy(obj.matrix_world))


def in_world(obj, implicit: Implicit) -> Implicit:
    """A copy of the object's implicit whose mesh frame is the world (what files get)."""
    out = implicit.copy()
    out.transform = world_transform(obj, implicit)
    out.validate()
    return out


def evaluate_world(obj, P) -> np.ndarray:
    """Signed distance (negative inside) at world points P (n, 3), in world units.

    Exact for objects scaled uniformly (the usual case); under non-uniform object scale the value is
    scaled by the mean scale and only its sign and zero set are exact.
    """
    implicit = implicit_from_object(obj)
    M = matrix_to_numpy(obj.matrix_world)
    P = np.asarray(P, dtype=np.float64)
    inv = np.linalg.inv(M)
    local = P @ inv[:3, :3].T + inv[:3, 3]
    return implicit.evaluate_mesh_frame(local) * np.float32(mean_scale(M))


# ============================================================================ errors in scene units

def source_radius(obj, implicit: Implicit) -> float:
    """Radius of the shape the object's network was made from, in scene units: the unit of the
    unit-sphere frame every error figure is measured in (``MESH_RADIUS / scale`` in the object's
    frame, times the object's mean scale)."""
    return MESH_RADIUS / implicit.scale * mean_scale(matrix_to_numpy(obj.matrix_world))


def scene_length(scene, value: float) -> str:
    """A length in Blender units written in the scene's unit system ("0.4 mm", "16 thou", or
    "0.0004 units" where the scene has none)."""
    us = scene.unit_settings
    text = bpy.utils.units.to_string(us.system, 'LENGTH', value * us.scale_length, precision=3).strip()
    return f"{text} units" if us.system == 'NONE' else text


def format_error(scene, fraction, radius: float) -> str:
    """An error figure measured in the unit-sphere frame with both its units: a share of the shape's
    size and scene units, e.g. "0.21% of size (0.4 mm)"; "n/a" where there is none (no surface)."""
    from .core.common.units import format_fraction

    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not np.isfinite(fraction):
        return "n/a"   # no surface (stored as null), or metadata from elsewhere
    return f"{format_fraction(float(fraction))} of size ({scene_length(scene, float(fraction) * radius)})"


def verification_summary(scene, obj) -> str:
    """One line for reports: the check of the object's network (core.conversion.verify, recorded in
    its file), or the surface error of files made before the check existed."""
    implicit = implicit_from_object(obj)
    radius = source_radius(obj, implicit)
    v = implicit.metadata.get("verification")
    if not isinstance(v, dict):
        error = implicit.metadata.get("surface_error")
        return (f"surface error {format_error(scene, error, radius)} (not checked)"
                if isinstance(error, (int, float)) else "not checked")
    line = f"Chamfer {format_error(scene, v.get('chamfer'), radius)}"
    if isinstance(v.get("sign_agreement"), (int, float)):
        line += f", sign agreement {100 * v['sign_agreement']:.1f}%"
    return line


# ============================================================================ storage

def implicit_from_bytes(data: bytes, name: str = "stored network") -> Implicit:
    """Decode stored bytes (core.representation.fileformat.from_bytes, in memory); raises
    FileFormatError, naming ``name``, for bad bytes."""
    return from_bytes(data, name)


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_bytes(obj) -> bytes:
    """The exact .h5 bytes stored in the object (FileFormatError when there are none or corrupt)."""
    props = obj.neural_implicit
    if not props.is_implicit or not props.data:
        raise FileFormatError(f"{obj.name}: carries no neural implicit")
    try:
        return base64.b64decode(props.data.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise FileFormatError(f"{obj.name}: the stored network is corrupt (not base64)") from None


def store_implicit(obj, implicit: Implicit, filepath: Optional[str] = None) -> str:
    """Store ``implicit`` (mesh frame = object-local) in ``obj``; return its content key.

    Also sets the Empty's display to the bounding sphere of the network.
    """
    data = to_bytes(implicit)
    key = content_key(data)
    props = obj.neural_implicit
    props.data = base64.b64encode(data).decode("ascii")
    props.key = key
    props.is_implicit = True
    if filepath is not None:
        props.filepath = filepath
    _remember(key, implicit)
    if obj.type == 'EMPTY':
        obj.empty_display_type = 'SPHERE'
        obj.empty_display_size = BOUND_RADIUS / implicit.scale
    return key


def implicit_from_object(obj) -> Implicit:
    """The object's network (cached by content key; do not modify it, ``.copy()`` first).

    Raises FileFormatError when the object carries no network or the stored bytes cannot be read;
    the same stored bytes are decoded once, their failure is remembered (module docstring).
    """
    props = obj.neural_implicit
    key = props.key
    if key and key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    text = props.data
    if len(text) > MAX_STORED_CHARS:
        raise FileFormatError(f"{obj.name}: the stored network is {len(text):,} characters, larger "
                              f"than any valid file ({MAX_FILE_BYTES:,} bytes); not decoded")
    fingerprint = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    known = _failed.get(fingerprint)
    if known is not None:
        raise FileFormatError(f"{obj.name}: {known}")
    try:
        implicit = _decode(obj, key)
    except InputError as exc:
        message = str(exc).split(": ", 1)[1] if str(exc).startswith(f"{obj.name}: ") else str(exc)
        _remember_failure(fingerprint, message, obj.name)
        raise FileFormatError(f"{obj.name}: {message}") from None
    _remember(key, implicit)
    return implicit


def _decode(obj, key: str) -> Implicit:
    """Decode the object's stored bytes and check them against their content key."""
    data = stored_bytes(obj)
    if content_key(data) != key:
        raise FileFormatError("the stored network does not match its content key (edited by hand?)")
    return implicit_from_bytes(data, "the stored network")


def _remember(key: str, implicit: Implicit) -> None:
    _cache[key] = implicit
    _cache.move_to_end(key)
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)


def _remember_failure(fingerprint: str, message: str, name: str) -> None:
    """Keep a decode failure and say it once in the log (the panel shows it from then on)."""
    log.warning("neural implicit: cannot read %s: %s", name, message)
    _failed[fingerprint] = message
    while len(_failed) > FAILED_SIZE:
        _failed.popitem(last=False)


def clear_cache() -> None:
    _cache.clear()
    _failed.clear()
    _importance_cache.clear()


def is_implicit(obj) -> bool:
    return obj is not None and obj.neural_implicit.is_implicit and bool(obj.neural_implicit.key)


def new_implicit_object(name: str, implicit_world: Implicit, collections=(), filepath=None):
    """A new Empty carrying ``implicit_world`` (whose mesh frame is the world), placed by
    ``core.representation.frames.placement`` and linked to ``collections`` (the scene's collection
    when empty)."""
    M, T_local = placement(implicit_world.transform)
    local = implicit_world.copy()
    local.transform = T_local
    local.validate()
    obj = bpy.data.objects.new(name, None)
    obj.empty_display_type = 'SPHERE'
    obj.matrix_world = Matrix(M.tolist())
    store_implicit(obj, local, filepath)
    for collection in collections or (bpy.context.scene.collection,):
        collection.objects.link(obj)
    return obj


def new_mesh_object(name: str, V: np.ndarray, F: np.ndarray, matrix_world, collections=()):
    """A new mesh object from vertices V (n, 3) in object coordinates and triangles F (m, 3)."""
    V = np.ascontiguousarray(V, dtype=np.float32)
    F = np.ascontiguousarray(F, dtype=np.int32)
    me = bpy.data.meshes.new(name)
    me.vertices.add(len(V))
    me.vertices.foreach_set("co", V.ravel())
    me.loops.add(F.size)
    me.loops.foreach_set("vertex_index", F.ravel())
    me.polygons.add(len(F))
    me.polygons.foreach_set("loop_start", np.arange(0, F.size, 3, dtype=np.int32))
    me.update()
    me.validate(clean_customdata=False)
    me.shade_smooth()
    obj = bpy.data.objects.new(name, me)
    obj.matrix_world = matrix_world
    for collection in collections or (bpy.context.scene.collection,):
        collection.objects.link(obj)
    return obj


def make_active(view_layer, obj, deselect=()) -> bool:
    """Deselect ``deselect``, select ``obj`` and make it active, as Blender does with new objects.
    False when ``obj`` is not in ``view_layer`` (an excluded collection)."""
    for other in deselect:
        try:
            other.select_set(False, view_layer=view_layer)
        except RuntimeError:
            pass
    try:
        obj.select_set(True, view_layer=view_layer)
    except RuntimeError:  # not in this view layer
        return False
    view_layer.objects.active = obj
    return True


# ============================================================================ meshes -> arrays

@dataclass
class MeshArrays:
    """A Blender object's evaluated mesh, as core wants it.

    name : the object's name; V : (n, 3) float64 world-space vertices; F : (m, 3) int64 triangles;
    weights : (n,) float64 importance in 0..1, or None; importance : what the weights came from (text).
    """

    name: str
    V: np.ndarray
    F: np.ndarray
    weights: Optional[np.ndarray]
    importance: str


def evaluated_mesh_arrays(obj, depsgraph) -> MeshArrays:
    """World-space vertices, triangles and importance of ``obj`` with its modifiers applied.

    The importance is the object's ``neural_implicit.importance_source``: the vertex selection (1 for
    selected vertices) or a vertex group's weights, read from the evaluated mesh; where a modifier
    dropped them they are carried over from the original mesh by nearest vertex. Raises InputError
    for a missing vertex group. Never modifies the object.
    """
    ob_eval = obj.evaluated_get(depsgraph)
    me = ob_eval.to_mesh()
    try:
        n = len(me.vertices)
        co = np.empty(3 * n, dtype=np.float32)
        me.vertices.foreach_get("co", co)
        M = matrix_to_numpy(ob_eval.matrix_world)
        V = co.reshape(n, 3).astype(np.float64) @ M[:3, :3].T + M[:3, 3]
        me.calc_loop_triangles()
        tris = np.empty(3 * len(me.loop_triangles), dtype=np.int32)
        me.loop_triangles.foreach_get("vertices", tris)
        F = tris.reshape(-1, 3).astype(np.int64)
        weights, what = _importance(obj, me, V)
    finally:
        ob_eval.to_mesh_clear()
    return MeshArrays(obj.name, V, F, weights, what)


def _vertex_selection(me) -> np.ndarray:
    sel = np.zeros(len(me.vertices), dtype=bool)
    me.vertices.foreach_get("select", sel)
    return sel.astype(np.float64)


def _group_weights(me, index: int) -> np.ndarray:
    w = np.zeros(len(me.vertices), dtype=np.float64)
    for v in me.vertices:
        for g in v.groups:
            if g.group == index:
                w[v.index] = g.weight
                break
    return w


def _group_index(obj) -> int:
    name = obj.neural_implicit.importance_group
    group = obj.vertex_groups.get(name) if name else None
    if group is None:
        raise InputError(f"{obj.name}: importance vertex group "
                         f"{name!r} does not exist" if name else
                         f"{obj.name}: choose the vertex group that holds the importance")
    return group.index


def _importance(obj, me_eval, V_world):
    source = obj.neural_implicit.importance_source
    if source == 'NONE':
        return None, "none"
    if source == 'SELECTION':
        read = _vertex_selection
        what = "vertex selection"
    else:
        index = _group_index(obj)
        read = lambda me: _group_weights(me, index)  # noqa: E731
        what = f"vertex group {obj.neural_implicit.importance_group!r}"
    w = read(me_eval)
    if not w.any():
        original = read(obj.data)
        if original.any():
            w = _transfer(obj, original, V_world)
    w = np.clip(w, 0.0, None)
    return (w if w.any() else None), what


def _transfer(obj, values: np.ndarray, V_world: np.ndarray) -> np.ndarray:
    """Per-vertex values of the original mesh carried to the evaluated vertices (nearest vertex)."""
    if len(values) == len(V_world):
        return values
    from scipy.spatial import cKDTree
    n = len(obj.data.vertices)
    co = np.empty(3 * n, dtype=np.float32)
    obj.data.vertices.foreach_get("co", co)
    M = matrix_to_numpy(obj.matrix_world)
    orig = co.reshape(n, 3).astype(np.float64) @ M[:3, :3].T + M[:3, 3]
    _, nearest = cKDTree(orig).query(V_world)
    return values[nearest]


#: Panel summaries are recomputed at most this often per object (reading a vertex group is a loop).
SUMMARY_SECONDS = 1.0
_importance_cache: dict = {}


def importance_summary(obj) -> tuple[str, int, int, Optional[str]]:
    """(source label, vertices carrying weight, vertices, problem or None) of a mesh object, read from
    its original mesh (in Edit Mode the selection count is live, group weights as last stored)."""
    props = obj.neural_implicit
    me = obj.data
    n = len(me.vertices)
    if props.importance_source == 'NONE':
        return "None", 0, n, None
    if props.importance_source == 'SELECTION' and obj.mode == 'EDIT':
        return "Selection", me.total_vert_sel, n, None
    cache_key = (obj.name, props.importance_source, props.importance_group, obj.mode, n)
    hit = _importance_cache.get(obj.name)
    now = time.monotonic()
    if hit is not None and hit[0] == cache_key and now - hit[1] < SUMMARY_SECONDS:
        return hit[2]
    if props.importance_source == 'SELECTION':
        result = ("Selection", int(_vertex_selection(me).astype(bool).sum()), n, None)
    else:
        try:
            w = _group_weights(me, _group_index(obj))
            result = (f"Vertex group {props.importance_group}", int((w > 0).sum()), n, None)
        except InputError as exc:
            result = ("Vertex group", 0, n, str(exc).split(": ", 1)[-1])
    _importance_cache[obj.name] = (cache_key, now, result)
    return result


# ============================================================================ CSG

@dataclass
class CSGTree:
    """An implicit object's CSG stack as core wants it.

    shape : core.geometry.csg.CSGShape in world coordinates (no steps when nothing usable is in the
    stack)
    key : changes when any network of the tree changes (the viewport's weight texture key)
    operands : the objects used as operands, at any depth
    warnings : what was skipped and why (the panel shows them)
    """

    shape: CSGShape
    key: str
    operands: list
    warnings: list

    @property
    def active(self) -> bool:
        """Whether the stack changes anything (at least one usable step)."""
        return bool(self.shape.steps)


def csg_entry_problem(owner, entry) -> Optional[str]:
    """Why one stack entry cannot be used, or None (also for entries turned off)."""
    operand = entry.operand
    if operand is None:
        return "No operand (pick an implicit, or it was deleted)"
    if not is_implicit(operand):
        return f"{operand.name} is not a neural implicit: skipped"
    if operand == owner or csg_uses(operand, owner):
        return f"{operand.name} uses {owner.name}: a cycle, refused"
    return None


def csg_uses(obj, target) -> bool:
    """Whether ``obj``'s CSG stack uses ``target`` at any depth (every entry, shown or not)."""
    seen, todo = set(), [obj]
    while todo:
        o = todo.pop()
        if o.as_pointer() in seen or not hasattr(o, "neural_implicit"):
            continue
        seen.add(o.as_pointer())
        for entry in o.neural_implicit.csg:
            if entry.operand is None:
                continue
            if entry.operand == target:
                return True
            todo.append(entry.operand)
    return False


def csg_tree(obj, last: Optional[int] = None) -> CSGTree:
    """The CSG result of ``obj`` (module docstring); with ``last``, of its stack's entries up to
    that index only (applying one entry). Raises InputError when ``obj`` itself carries no
    readable network, or for a cycle; a bad operand is skipped and reported in ``warnings``."""
    keys, operands, warnings = [], [], []
    shape = _csg_node(obj, [obj], keys, operands, warnings, last)
    return CSGTree(shape, "csg:" + "+".join(keys), operands, warnings)


def _csg_node(obj, path, keys, operands, warnings, last=None) -> CSGShape:
    """One node of the tree: ``obj`` with its shown entries (up to index ``last``); ``path`` the
    objects above it."""
    implicit = implicit_from_object(obj)
    keys.append(obj.neural_implicit.key)
    steps = []
    for i, entry in enumerate(obj.neural_implicit.csg):
        if last is not None and i > last:
            break
        if not entry.show:
            continue
        operand = entry.operand
        where = f"{obj.name}, entry {i + 1}"
        if operand is not None and (operand == obj or csg_uses(operand, obj)):
            chain = " -> ".join(o.name for o in path)
            raise InputError(f"CSG cycle refused: {chain} uses {operand.name}, which uses "
                             f"{obj.name}")
        problem = csg_entry_problem(obj, entry)
        if problem is not None:
            warnings.append(f"{where}: {problem}")
            continue
        mark = (len(keys), len(operands), len(warnings))
        try:
            sub = _csg_node(operand, path + [operand], keys, operands, warnings)
        except FileFormatError as exc:              # a corrupt operand: skip it, not the tree
            del keys[mark[0]:], operands[mark[1]:]
            warnings.append(f"{where}: {exc}")
            continue
        operands.append(operand)
        steps.append(CSGStep(entry.operation.lower(), sub, entry.blend))
    try:
        return CSGShape(implicit, matrix_to_numpy(obj.matrix_world), steps)
    except InputError as exc:                       # e.g. an object scaled to zero
        raise InputError(f"{obj.name}: {exc}") from None


def csg_to_object_frame(obj, V: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World vertices of a remeshed CSG result in ``obj``'s local frame, with triangles kept outward
    there (the new mesh object gets ``obj``'s ``matrix_world``, like Remesh)."""
    M = matrix_to_numpy(obj.matrix_world)
    inv = np.linalg.inv(M)
    V = np.asarray(V, dtype=np.float64) @ inv[:3, :3].T + inv[:3, 3]
    if np.linalg.det(M[:3, :3]) < 0:
        F = F[:, ::-1].copy()
    return V, F


@dataclass
class Surface:
    """What remeshing an implicit object extracts.

    shape : the CSG result (core.geometry.csg.CSGShape, world coordinates) when the object's stack
        has a usable entry, else its network alone (core Implicit, object coordinates)
    in_world : whether ``shape`` is in world coordinates (then :func:`csg_to_object_frame` brings
        the remeshed vertices into the object's frame)
    warnings : what the CSG stack skipped and why
    """

    shape: object
    in_world: bool
    warnings: list


def surface_of(obj) -> Surface:
    """The surface the viewport draws for the implicit ``obj`` (its CSG result, or the network).
    Raises InputError for an unreadable network or a CSG cycle."""
    if len(obj.neural_implicit.csg):
        tree = csg_tree(obj)
        if tree.active:
            return Surface(tree.shape, True, list(tree.warnings))
        return Surface(implicit_from_object(obj), False, list(tree.warnings))
    return Surface(implicit_from_object(obj), False, [])


def replace_with_mesh(view_layer, obj, V: np.ndarray, F: np.ndarray, keep_original: bool):
    """Put a mesh (V (n, 3) in ``obj``'s local frame, triangles F) where the implicit ``obj`` is, as
    Blender's Apply and Convert do: same name, transform, parent, children and collections, the
    materials of the mesh it was converted from; ``obj`` is deleted unless ``keep_original`` (then
    the mesh gets Blender's next free name, e.g. "Spot.001", and ``obj`` stays, deselected).
    The mesh becomes the active, selected object. Returns it."""
    name = obj.name
    collections = tuple(obj.users_collection)
    source = obj.neural_implicit.source
    if not keep_original:
        obj.name = f"{name} (applied)"       # frees the name for the mesh; the object goes below
    mesh_obj = new_mesh_object(name, V, F, obj.matrix_world.copy(), collections)
    if obj.parent is not None:
        mesh_obj.parent = obj.parent
        mesh_obj.parent_type = obj.parent_type
        mesh_obj.matrix_world = obj.matrix_world.copy()
    mesh_obj.color = obj.color
    if source is not None and source.type == 'MESH':
        for material in source.data.materials:
            mesh_obj.data.materials.append(material)
    if not keep_original:
        for child in list(obj.children):
            world = child.matrix_world.copy()
            child.parent = mesh_obj
            child.matrix_world = world
    make_active(view_layer, mesh_obj, (obj,))
    if not keep_original:
        bpy.data.objects.remove(obj)
    return mesh_obj


def property_column(layout):
    """A column laid out as Blender's Properties editor lays out settings: labels on the left,
    values on the right, no keyframe decorators (the settings are not animatable)."""
    col = layout.column()
    col.use_property_split = True
    col.use_property_decorate = False
    return col


def tag_view3d_redraw(context, kinds=frozenset({'VIEW_3D'})) -> None:
    """Ask every area of ``kinds`` (by default the 3D views) to redraw, after a change that their
    drawing reads (the draw handler, a panel)."""
    wm = getattr(context, "window_manager", None)
    for window in (wm.windows if wm else ()):
        for area in window.screen.areas:
            if area.type in kinds:
                area.tag_redraw()


# ============================================================================ viewport

def draw_items(context) -> list:
    """The visible implicit objects of the context's view layer as viewport.DrawItem records: a CSG
    result as one item; objects used as operands by a drawn CSG result are not drawn on their own."""
    from .viewport import DrawItem

    view_layer = context.view_layer
    space = context.space_data
    viewport = space if space is not None and space.type == 'VIEW_3D' else None
    active = view_layer.objects.active
    entries, used = [], set()
    for obj in view_layer.objects:
        if not is_implicit(obj):
            continue
        if not obj.visible_get(view_layer=view_layer, viewport=viewport):
            continue
        try:
            implicit = implicit_from_object(obj)
        except InputError:
            continue  # the panel shows the problem; the draw loop must not raise
        tree = None
        if len(obj.neural_implicit.csg):
            try:
                tree = csg_tree(obj)
            except InputError:
                tree = None   # a cycle: drawn alone, the panel says why
        if tree is not None and tree.active:
            used.update(o.as_pointer() for o in tree.operands)
            entries.append((obj, DrawItem(tree.key, tree.shape, np.eye(4))))
        elif implicit.members:          # several networks: drawn as their union (a CSG result)
            entries.append((obj, DrawItem("csg:" + obj.neural_implicit.key,
                                          CSGShape(implicit, matrix_to_numpy(obj.matrix_world)),
                                          np.eye(4))))
        else:
            entries.append((obj, DrawItem(obj.neural_implicit.key, implicit,
                                          matrix_to_numpy(obj.matrix_world))))
    items = []
    for obj, item in entries:
        if obj.as_pointer() in used:
            continue
        item.color = tuple(obj.color)
        item.selected = obj.select_get(view_layer=view_layer)
        item.active = obj == active
        items.append(item)
    return items


def viewport_settings(context):
    """The scene's viewport options as viewport.ViewportSettings (the draw handler's callback)."""
    from .viewport import ViewportSettings

    s = context.scene.neural_implicit_settings
    return ViewportSettings(max_steps=int(s.viewport_max_steps),
                            epsilon=float(s.viewport_epsilon),
                            step_factor=float(s.viewport_step_factor),
                            resolution_scale=float(s.viewport_resolution_scale))
