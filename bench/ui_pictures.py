"""Schematic pictures of the extension's user interface for docs/user-guide.md, drawn from the real
layout: menus, the CSG stack panel and a Geometry Nodes tree using a baked implicit.

Usage (inside .venv)::

    python -m bench.ui_pictures [--out docs/images]

Why schematic: the ``bpy`` module has no window, so Blender's UI cannot be screenshotted. Instead
the extension is built and installed into a temporary Blender user folder (bench/gpu_context.py, as
a user does with Install from Disk), a scene is made through ``bpy.ops`` (two meshes converted, a CSG
stack, Bake to Volume), and each menu's and panel's real ``draw()`` is called with
:class:`Recorder`, a stand-in for ``UILayout`` that keeps what is drawn (operators with their labels,
properties with their current values, labels, boxes, rows, columns). That recorded structure is
drawn with matplotlib in Blender's colours: the entries, their order, texts and values are Blender's
and the extension's own; fonts, spacing and icons (a few as symbols, the rest as grey dots) are
approximations. The node tree is read from ``bpy.data`` (nodes, locations, sockets, values, links)
after Blender evaluated it; the mesh it gave is drawn below the tree.
About 30 s on two CPU cores (two small conversions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: Conversion settings of the scene: smaller than the defaults (the pictures show the UI), large
#: enough for a smooth result of the node tree.
PICTURE = dict(layers=6, hidden=32, pool=1_000_000, samples=200_000, epochs=10, batch_size=1024,
               threads=0, seed=0)
#: Blender's default theme, approximately.
BG, PANEL, BOX, WIDGET, TEXT, DIM, HIGHLIGHT, LINE = ("#303030", "#3d3d3d", "#353535", "#545454",
                                                      "#e6e6e6", "#8c8c8c", "#4772b3", "#5a5a5a")
#: A few icons as symbols (DejaVu Sans); any other icon is drawn as a grey dot.
GLYPHS = {"X": "✕", "TRIA_UP": "▲", "TRIA_DOWN": "▼", "DOWNARROW_HLT": "▾", "HIDE_OFF": "◉",
          "HIDE_ON": "○", "ADD": "+", "CHECKMARK": "✓", "ERROR": "⚠", "INFO": "ℹ", "CANCEL": "✕"}
ROW = 22          # pixels per row
ICON = 22         # width of an icon-only button
MISSING = object()


# ============================================================================ recording

class Item:
    """One thing a draw function put into a layout: ``kind`` (operator, prop, label, menu,
    separator, progress) with its resolved ``text``, ``value`` (properties), ``icon``, whether it
    opens a submenu, and the state of the layout it is in (``active``, ``alert``, ``split``)."""

    def __init__(self, kind, text="", value=None, icon="NONE", submenu=False, idname="", **state):
        self.kind, self.text, self.value, self.icon = kind, text, value, icon
        self.submenu, self.idname, self.state = submenu, idname, state


class Recorder:
    """A UILayout stand-in: containers (row, column, box, split) become nested Recorders, drawing
    calls become :class:`Item` records; anything else (context_pointer_set, operator_context, ...)
    is accepted and ignored."""

    def __init__(self, bpy, kind="column", parent=None):
        object.__setattr__(self, "bpy", bpy)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "children", [])
        object.__setattr__(self, "flags", dict(parent.flags) if parent else
                           {"active": True, "enabled": True, "alert": False,
                            "use_property_split": False})

    def __setattr__(self, name, value):
        self.flags[name] = value

    def __getattr__(self, name):
        if name in self.flags:
            return self.flags[name]
        return lambda *args, **kwargs: None

    # containers
    def _sub(self, kind):
        sub = Recorder(self.bpy, kind, self)
        self.children.append(sub)
        return sub

    def row(self, *args, **kwargs):
        return self._sub("row")

    def column(self, *args, **kwargs):
        return self._sub("column")

    def box(self):
        return self._sub("box")

    split = grid_flow = column_flow = column

    def panel(self, *args, default_closed=False, **kwargs):
        return self._sub("column"), None if default_closed else self._sub("column")

    # items
    def _add(self, kind, **kw):
        state = {k: self.flags[k] for k in ("active", "enabled", "alert", "use_property_split")}
        self.children.append(Item(kind, **kw, **state))

    def operator(self, operator, text=MISSING, icon="NONE", **kwargs):
        self._add("operator", text=self._op_label(operator) if text is MISSING else text,
                  icon=icon, idname=operator)
        return OperatorProperties()

    def operator_menu_enum(self, operator, property, text=MISSING, icon="NONE", **kwargs):
        self._add("menu", text=self._op_label(operator) if text is MISSING else text, icon=icon,
                  submenu=True, idname=operator)

    def operator_enum(self, operator, property, **kwargs):
        for item in self._op_rna(operator).properties[property].enum_items:
            self._add("operator", text=item.name, icon=item.icon, idname=operator)

    def menu(self, menu, text=MISSING, icon="NONE", **kwargs):
        cls = getattr(self.bpy.types, menu, None)         # None: a menu defined in C
        fallback = menu.split("_MT_", 1)[-1].replace("_", " ").title()
        label = getattr(cls, "bl_label", fallback) if text is MISSING else text
        self._add("menu", text=label, icon=icon, submenu=True, idname=menu)

    def prop(self, data, property, text=MISSING, icon="NONE", icon_only=False, **kwargs):
        rna = data.bl_rna.properties[property]
        label = rna.name if text is MISSING else text
        value = prop_value(data, property, rna)
        if icon_only and rna.type == 'ENUM':      # the item's icon instead of its name
            icon = next(i.icon for i in rna.enum_items if i.name == value)
            value = None
        self._add("prop", text="" if icon_only else label, value=value, icon=icon,
                  idname=rna.type)

    def prop_menu_enum(self, data, property, text=MISSING, icon="NONE", **kwargs):
        label = data.bl_rna.properties[property].name if text is MISSING else text
        self._add("menu", text=label, icon=icon, submenu=True)

    def label(self, text="", icon="NONE", **kwargs):
        self._add("label", text=text, icon=icon)

    def separator(self, *args, **kwargs):
        self._add("separator")

    separator_spacer = separator

    def progress(self, factor=0.0, text="", **kwargs):
        self._add("progress", text=text, value=factor)

    def _op_rna(self, idname):
        mod, name = idname.split(".")
        return getattr(getattr(self.bpy.ops, mod), name).get_rna_type()

    def _op_label(self, idname):
        try:
            return self._op_rna(idname).name
        except (AttributeError, KeyError, ValueError):
            return idname

    def items(self):
        """Every Item, depth first."""
        for child in self.children:
            yield from child.items() if isinstance(child, Recorder) else (child,)


class OperatorProperties:
    """What ``layout.operator`` returns: takes any property the draw code sets."""

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)


def prop_value(data, name, rna):
    """A property's current value as the UI shows it (enum item name, object name, number)."""
    value = getattr(data, name)
    if rna.type == 'ENUM':
        items = {i.identifier: i.name for i in rna.enum_items}
        return items.get(value, str(value))
    if rna.type == 'POINTER':
        return getattr(value, "name", "")
    if rna.type == 'FLOAT':
        return f"{value:.3f}" + (" m" if rna.subtype == 'DISTANCE' else "")
    return value


def record_menu(bpy, menu, context):
    """The Items a Blender menu draws in ``context`` (its own draw and every appended one)."""
    layout = Recorder(bpy)
    getattr(bpy.types, menu).draw(_Self(layout), context)
    return list(layout.items())


def record_panel(bpy, panel, context):
    layout = Recorder(bpy)
    getattr(bpy.types, panel).draw(_Self(layout), context)
    return layout


class _Self:
    """The ``self`` a menu's or panel's draw function gets: its layout."""

    def __init__(self, layout):
        self.layout = layout


# ============================================================================ drawing

def _figure(width, height):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    fig.patch.set_facecolor(BG)
    return fig, ax


def _rect(ax, x, y, w, h, color, edge=None, radius=3.0):
    from matplotlib.patches import FancyBboxPatch
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle=f"round,pad=0,rounding_size={radius}",
                                facecolor=color, edgecolor=edge or color, linewidth=0.8))


def _text(ax, x, y, text, color=TEXT, size=8.5, ha="left", **kw):
    ax.text(x, y, text, color=color, fontsize=size, ha=ha, va="center", family="DejaVu Sans", **kw)


def _icon(ax, x, y, icon, color=TEXT):
    """An icon centred at (x, y): a symbol for the few in GLYPHS, else a grey dot."""
    if icon in (None, "NONE", ""):
        return
    if icon in GLYPHS:
        _text(ax, x, y, GLYPHS[icon], color=color, size=9, ha="center")
    else:
        ax.plot(x, y, marker="o", markersize=5, color=DIM)


def draw_menus(menus, ours, path, width=250):
    """Menus side by side: (title, items) each; entries whose operator is in ``ours`` highlighted."""
    heights = [ROW * (1.6 + sum(0.45 if i.kind == "separator" else 1 for i in items))
               for _, items in menus]
    fig, ax = _figure(len(menus) * (width + 20) + 20, max(heights) + 20)
    for k, (title, items) in enumerate(menus):
        x0, y = 20 + k * (width + 20), 10
        _rect(ax, x0, y, width, heights[k], PANEL, LINE, radius=5)
        _text(ax, x0 + 10, y + ROW * 0.7, title, color=DIM, size=8.5)
        y += ROW * 1.4
        for item in items:
            if item.kind == "separator":
                ax.plot([x0 + 8, x0 + width - 8], [y + 5, y + 5], color=LINE, linewidth=0.8)
                y += ROW * 0.45
                continue
            if item.idname in ours:
                _rect(ax, x0 + 3, y, width - 6, ROW - 2, HIGHLIGHT, radius=3)
            color = TEXT if item.kind != "label" and item.state["enabled"] else DIM
            _icon(ax, x0 + 16, y + ROW / 2 - 1, item.icon)
            _text(ax, x0 + 30, y + ROW / 2 - 1, item.text, color=color)
            if item.submenu:
                _text(ax, x0 + width - 14, y + ROW / 2 - 1, "▸", color=DIM)
            y += ROW
    _save(fig, path)


def _save(fig, path):
    fig.savefig(path, facecolor=fig.get_facecolor())
    import matplotlib.pyplot as plt
    plt.close(fig)


def _fixed(node):
    """Width of an icon-only item in a row, or None when it shares the row's width."""
    if (isinstance(node, Item) and not node.text and node.kind in ("operator", "prop", "menu")
            and (node.value is None or node.idname == 'BOOLEAN')):
        return ICON
    return None


def height(node, width) -> float:
    if isinstance(node, Item):
        return ROW * 0.5 if node.kind == "separator" else ROW
    if node.kind == "row":
        return max([height(c, width) for c in node.children] or [0])
    pad = 12 if node.kind == "box" else 0
    return sum(height(c, width - pad) for c in node.children) + pad


def draw_layout(ax, node, x, y, width):
    """Draw a recorded layout at (x, y) (top left), ``width`` wide; returns its height."""
    if isinstance(node, Item):
        _draw_item(ax, node, x, y, width)
        return height(node, width)
    if node.kind == "row":
        fixed = [_fixed(c) for c in node.children]
        flexible = sum(f is None for f in fixed)
        share = (width - sum(f for f in fixed if f)) / max(flexible, 1)
        for child, f in zip(node.children, fixed):
            draw_layout(ax, child, x, y, f or share)
            x += f or share
        return height(node, width)
    if node.kind == "box":
        h = height(node, width)
        _rect(ax, x, y + 2, width, h - 4, BOX, LINE, radius=4)
        x, y, width = x + 6, y + 6, width - 12
    top = y
    for child in node.children:
        y += draw_layout(ax, child, x, y, width)
    return y - top + (12 if node.kind == "box" else 0)


def _draw_item(ax, item, x, y, w):
    s = item.state
    color = TEXT if s["active"] and s["enabled"] else DIM
    color = "#ff6666" if s["alert"] else color
    cy, bx, bw = y + ROW / 2, x + 1, w - 2
    if item.kind == "separator":
        return
    if item.kind == "label":
        _icon(ax, x + 10, cy, item.icon, color)
        _text(ax, x + (22 if item.icon not in ("NONE", "") else 4), cy, item.text, color)
        return
    if item.kind == "progress":
        _rect(ax, bx, y + 3, bw, ROW - 6, WIDGET)
        _rect(ax, bx, y + 3, bw * float(item.value), ROW - 6, HIGHLIGHT)
        _text(ax, bx + bw / 2, cy, item.text, size=7.5, ha="center")
        return
    label, value = item.text, item.value
    if item.kind == "prop" and s["use_property_split"] and label:
        _text(ax, x + 0.4 * w - 6, cy, label, DIM, ha="right")
        bx, bw, label = x + 0.4 * w, 0.6 * w - 1, ""
    if item.kind == "prop" and item.idname == 'BOOLEAN' and not label:
        _icon(ax, bx + bw / 2, cy, item.icon or "CHECKMARK", color)
        return
    _rect(ax, bx, y + 2, bw, ROW - 4, WIDGET if item.kind != "prop" else "#282828", LINE)
    if not label and value is None:
        _icon(ax, bx + bw / 2, cy, item.icon, color)
        return
    left = bx + 6
    if item.icon not in ("NONE", ""):
        _icon(ax, bx + 10, cy, item.icon, color)
        left += 14
    if item.kind == "prop" and item.idname == 'BOOLEAN':
        text = f"{'☑' if value else '☐'} {label}"
    elif item.kind == "prop":
        text = f"{label}: {value}" if label else f"{value}"
    else:
        text = label
    centre = item.kind == "operator" and item.icon in ("NONE", "")
    _text(ax, bx + bw / 2 if centre else left, cy, text, color, ha="center" if centre else "left",
          clip_on=True)
    if item.kind == "prop" and item.idname == 'ENUM' or item.kind == "menu":
        _text(ax, bx + bw - 8, cy, "▾", DIM, ha="center")


def draw_panel(layout, title, path, width=500):
    h = height(layout, width - 20) + ROW * 1.6 + 16
    fig, ax = _figure(width, h)
    _rect(ax, 4, 4, width - 8, h - 8, PANEL, LINE, radius=5)
    _text(ax, 14, 4 + ROW * 0.7, "▾  " + title, size=9)
    draw_layout(ax, layout, 10, 4 + ROW * 1.4, width - 20)
    _save(fig, path)


# ============================================================================ the node tree

SOCKET_COLORS = {"GEOMETRY": "#00d6a3", "VALUE": "#a1a1a1", "INT": "#598c5c", "BOOLEAN": "#cca6d6",
                 "VECTOR": "#6363c7", "STRING": "#70b2ff", "OBJECT": "#ed9e5c", "MENU": "#4d4d4d",
                 "MATRIX": "#ff9ecc", "ROTATION": "#a663c7"}
HEADER_COLORS = {"Input": "#83314a", "Output": "#4d0017", "Geometry": "#00c48e"}
NODE_ROW = 20


def socket_value(socket):
    """The value shown next to an unlinked input (None when the UI shows none)."""
    if socket.is_linked or not hasattr(socket, "default_value") or socket.hide_value:
        return None
    v = socket.default_value
    if socket.type == 'OBJECT':
        return v.name if v else ""
    if socket.type == 'VALUE':
        return f"{v:.3f}"
    if isinstance(v, (str, int, bool)):
        return str(v)
    return None


def node_rows(node):
    """What a node shows: its enum settings, outputs, then inputs (with values when unlinked)."""
    base = set(node.bl_rna.base.properties.keys()) if node.bl_rna.base else set()
    rows = [("setting", p.name, p.enum_items[getattr(node, p.identifier)].name)
            for p in node.bl_rna.properties
            if p.type == 'ENUM' and p.identifier not in base and not p.is_readonly]
    rows += [("out", s, None) for s in node.outputs
             if s.enabled and not s.hide and s.bl_idname != "NodeSocketVirtual"]
    rows += [("in", s, socket_value(s)) for s in node.inputs
             if s.enabled and not s.hide and s.bl_idname != "NodeSocketVirtual"]
    return rows


def draw_node_tree(tree, mesh, caption, path):
    """``tree``'s nodes (at their locations) and links, and below its right half the evaluated
    ``mesh`` (V, F)."""
    nodes = list(tree.nodes)
    x0 = min(n.location.x for n in nodes) - 20
    y0 = max(n.location.y for n in nodes) + 40
    boxes = {n.name: (n.location.x - x0, y0 - n.location.y, n.width) for n in nodes}
    sockets = {}
    tree_w = max(x + w for x, _, w in boxes.values()) + 20
    tree_h = max(y + NODE_ROW * (len(node_rows(n)) + 1.6) for n, (_, y, _) in
                 zip(nodes, boxes.values())) + 50
    fig, ax = _figure(tree_w, max(tree_h, 300))
    for node in nodes:
        x, y, w = boxes[node.name]
        rows = node_rows(node)
        h = NODE_ROW * (len(rows) + 1.4)
        _rect(ax, x, y, w, h, "#3c3c3c", "#1a1a1a", radius=5)
        header = HEADER_COLORS.get(_category(node), "#3b5959")
        _rect(ax, x, y, w, NODE_ROW, header, header, radius=5)
        _text(ax, x + 8, y + NODE_ROW / 2, node.bl_label if not node.label else node.label, size=8)
        for i, (kind, s, value) in enumerate(rows):
            cy = y + NODE_ROW * (i + 1.7)
            if kind == "setting":
                _rect(ax, x + 8, cy - 8, w - 16, 16, WIDGET, radius=3)
                _text(ax, x + 14, cy, f"{value}", size=7.5)
                continue
            sx = x + w if kind == "out" else x
            sockets[(node.name, kind, s.identifier)] = (sx, cy)
            grid = s.display_shape.startswith("DIAMOND") or s.display_shape == "VOLUME_GRID"
            shape = "D" if grid else "o"
            ax.plot(sx, cy, marker=shape, markersize=6, color=SOCKET_COLORS.get(s.type, "#a1a1a1"),
                    markeredgecolor="#111111", zorder=5)
            text = s.name if value is None else f"{s.name}: {value}"
            _text(ax, sx - 10 if kind == "out" else sx + 10, cy, text, size=7.5,
                  ha="right" if kind == "out" else "left")
    for link in tree.links:
        a = sockets.get((link.from_node.name, "out", link.from_socket.identifier))
        b = sockets.get((link.to_node.name, "in", link.to_socket.identifier))
        if a and b:
            t = np.linspace(0, 1, 40)[:, None]
            c1, c2 = np.array(a) + (60, 0), np.array(b) - (60, 0)
            curve = ((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t ** 2 * c2
                     + t ** 3 * b)
            ax.plot(curve[:, 0], curve[:, 1], color="#b3b3b3", linewidth=1.2, zorder=4)
    _draw_mesh(fig, mesh, (0.4, 0.06, 0.45, 0.55))         # below the tree's right half
    _text(ax, 14, max(tree_h, 300) - 14, caption, color=DIM, size=7.5)
    _save(fig, path)


def _category(node):
    if node.bl_idname in ("GeometryNodeObjectInfo", "GeometryNodeGetNamedGrid"):
        return "Input"
    if node.bl_idname == "NodeGroupOutput":
        return "Output"
    return "Geometry"


def _draw_mesh(fig, mesh, rect):
    """The evaluated mesh (V, F), flat shaded, in an inset axes at ``rect`` (figure fractions)."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    V, F = mesh
    ax = fig.add_axes(rect, projection="3d")
    ax.set_facecolor(BG)
    T = V[F]
    n = np.cross(T[:, 1] - T[:, 0], T[:, 2] - T[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    shade = 0.35 + 0.6 * np.clip(n @ np.array([0.3, -0.5, 0.8]) / 1.0, 0, 1)
    ax.add_collection3d(Poly3DCollection(T, facecolors=np.outer(shade, [0.8, 0.8, 0.82]),
                                         edgecolors="none"))
    lo, hi = V.min(0), V.max(0)
    c, r = (lo + hi) / 2, (hi - lo).max() / 2
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_zlim(c[2] - r, c[2] + r)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=28, azim=-70)
    ax.axis("off")


# ============================================================================ the scene

def build_scene(bpy, ni):
    """Suzanne and an icosphere converted (PICTURE settings); Suzanne's implicit with a CSG stack of
    two entries (smooth union with the ball, difference with a copy of it)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    s = bpy.context.scene.neural_implicit_settings
    for key, value in PICTURE.items():
        setattr(s, key, value)
    bpy.ops.mesh.primitive_monkey_add(location=(-0.5, 0.0, 0.0))
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=4, radius=0.6, location=(0.5, 0.0, 0.3))
    bpy.ops.object.select_all(action='SELECT')
    assert bpy.ops.object.neural_implicit_convert() == {'FINISHED'}
    suzanne, ball = bpy.data.objects["Suzanne_implicit"], bpy.data.objects["Icosphere_implicit"]
    cutter = ball.copy()
    cutter.name = "Cutter_implicit"
    bpy.context.scene.collection.objects.link(cutter)
    cutter.location = (0.0, -0.9, 0.0)
    bpy.ops.object.select_all(action='DESELECT')
    bpy.context.view_layer.objects.active = suzanne
    suzanne.select_set(True)
    bpy.ops.object.neural_implicit_csg_add(operation='SMOOTH_UNION')
    bpy.ops.object.neural_implicit_csg_add(operation='DIFFERENCE')
    stack = suzanne.neural_implicit.csg
    stack[0].operand, stack[0].blend = ball, 0.15
    stack[1].operand = cutter
    return suzanne


def select_only(bpy, obj):
    bpy.ops.object.select_all(action='DESELECT')
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


def node_tree_scene(bpy, ni, implicit):
    """Bake ``implicit`` to a Volume (the real operator), then a Geometry Nodes tree on a new mesh
    object: the baked grid (Object Info -> Get Named Grid "distance", the extension's
    volume_ops.grid_to_mesh_group) drilled through by a cylinder (Mesh to SDF Grid, SDF Grid Boolean
    Difference), the edges rounded by SDF Grid Fillet, then Grid to Mesh. Returns the tree and the
    evaluated mesh."""
    select_only(bpy, implicit)
    assert bpy.ops.object.neural_implicit_bake_volume(voxel_size=0.02, half_width=4) == {'FINISHED'}
    volume = bpy.context.active_object
    tree = ni.volume_ops.grid_to_mesh_group(volume, "Neural Implicit in Geometry Nodes")
    nodes, links = tree.nodes, tree.links
    get = next(n for n in nodes if n.bl_idname == "GeometryNodeGetNamedGrid")
    to_mesh = next(n for n in nodes if n.bl_idname == "GeometryNodeGridToMesh")
    out = next(n for n in nodes if n.bl_idname == "NodeGroupOutput")
    cylinder = nodes.new("GeometryNodeMeshCylinder")
    cylinder.inputs["Radius"].default_value = 0.25
    cylinder.inputs["Depth"].default_value = 2.4
    sdf = nodes.new("GeometryNodeMeshToSDFGrid")
    sdf.inputs["Voxel Size"].default_value = 0.02
    drill = nodes.new("GeometryNodeSDFGridBoolean")
    drill.operation = 'DIFFERENCE'
    fillet = nodes.new("GeometryNodeSDFGridFillet")
    links.new(cylinder.outputs["Mesh"], sdf.inputs["Mesh"])
    links.new(get.outputs["Grid"], drill.inputs["Grid 1"])
    links.new(sdf.outputs["SDF Grid"], drill.inputs["Grid 2"])
    links.new(drill.outputs["Grid"], fillet.inputs["Grid"])
    links.new(fillet.outputs["Grid"], to_mesh.inputs["Grid"])
    for node, (x, y) in {cylinder: (0, -300), sdf: (200, -300), drill: (440, -60),
                         fillet: (640, -60), to_mesh: (840, -60), out: (1040, -60)}.items():
        node.location = (x, y)
    holder = bpy.data.objects.new("Neural GN", bpy.data.meshes.new("Neural GN"))
    bpy.context.scene.collection.objects.link(holder)
    holder.matrix_world = volume.matrix_world.copy()
    holder.modifiers.new("Neural Implicit in Geometry Nodes", 'NODES').node_group = tree
    evaluated = holder.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()
    evaluated.calc_loop_triangles()
    V = np.array([v.co[:] for v in evaluated.vertices])
    F = np.array([t.vertices[:] for t in evaluated.loop_triangles])
    return tree, (V, F)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from bench.gpu_context import install_extension
    bpy, ni = install_extension(("bridge", "volume_ops", "operators", "csg_operators", "file_io"))
    ours = {cls.bl_idname for m in (ni.operators, ni.csg_operators, ni.volume_ops, ni.file_io)
            for cls in m.classes if hasattr(cls, "bl_idname") and "." in cls.bl_idname}
    suzanne = build_scene(bpy, ni)
    mesh = bpy.data.objects["Suzanne"]
    bpy.data.objects["Suzanne"].hide_set(False)
    select_only(bpy, mesh)
    ctx = bpy.context
    draw_menus([("Object ▸ Convert", record_menu(bpy, "VIEW3D_MT_object_convert", ctx)),
                ("Object ▸ Apply", record_menu(bpy, "VIEW3D_MT_object_apply", ctx)),
                ("Add (Shift A)", record_menu(bpy, "VIEW3D_MT_add", ctx)),
                ("File ▸ Import", record_menu(bpy, "TOPBAR_MT_file_import", ctx))],
               ours, out / "ui-menus.png")
    on_mesh = record_menu(bpy, "VIEW3D_MT_object_context_menu", ctx)
    select_only(bpy, suzanne)
    draw_menus([("Right click on a mesh", on_mesh),
                ("Right click on an implicit", record_menu(bpy, "VIEW3D_MT_object_context_menu",
                                                          bpy.context))],
               ours, out / "ui-context-menu.png")
    print("ui-menus.png, ui-context-menu.png", flush=True)
    draw_panel(record_panel(bpy, "NI_PT_csg", bpy.context), "Neural CSG",
               out / "ui-csg-stack.png")
    print("ui-csg-stack.png", flush=True)
    tree, result = node_tree_scene(bpy, ni, bpy.data.objects["Icosphere_implicit"])
    caption = (f"evaluated by Blender: Grid to Mesh gave {len(result[0]):,} vertices, "
               f"{len(result[1]):,} triangles (drawn above)")
    draw_node_tree(tree, result, caption, out / "ui-geometry-nodes.png")
    print(f"ui-geometry-nodes.png ({caption})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
