"""Blender's ``gpu`` module in a plain Python process, for the viewport benchmark and doc images.

Why: bench/render.py and bench/viewport_images.py draw through the add-on's real viewport code
(``neural_implicit_addon/viewport.py``) without installing the extension. Two things are needed:

* a GPU context: the ``bpy`` module runs in background mode, where ``gpu`` refuses to draw until
  Blender has made one; a single 8 x 8 EEVEE render makes it (also on Mesa's llvmpipe);
* the add-on's relative imports (``from .core import ...``): a package ``neural_implicit_dev`` is
  declared whose search path is the add-on folder followed by the repository root, so
  ``neural_implicit_dev.viewport`` and ``neural_implicit_dev.core`` are this working tree's files.

HOME points at a temporary folder before bpy is imported, so the user's Blender preferences are
neither read nor written.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PACKAGE = "neural_implicit_dev"


def start_blender():
    """Import bpy with a temporary HOME and create the GPU context; returns the bpy module."""
    if "bpy" not in sys.modules:
        os.environ["HOME"] = tempfile.mkdtemp(prefix="ni-bench-home-")
    import bpy

    scene = bpy.context.scene
    camera = bpy.data.objects.new("gpu_context", bpy.data.cameras.new("gpu_context"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.engine = "BLENDER_EEVEE"
    scene.render.resolution_x = scene.render.resolution_y = 8
    scene.render.resolution_percentage = 100
    scene.render.filepath = os.path.join(tempfile.mkdtemp(prefix="ni-bench-"), "gpu_context.png")
    bpy.ops.render.render()
    return bpy


def addon_modules() -> types.SimpleNamespace:
    """The add-on's viewport module and core modules, imported from this working tree."""
    if PACKAGE not in sys.modules:
        pkg = types.ModuleType(PACKAGE)
        pkg.__path__ = [str(ROOT / "neural_implicit_addon"), str(ROOT)]
        sys.modules[PACKAGE] = pkg
    names = ("viewport", "core.geometry.trace", "core.representation.implicit", "core.meshes.mesh",
             "core.representation.paper_import",
             "core.representation.fileformat")
    mods = {n.split(".")[-1]: importlib.import_module(f"{PACKAGE}.{n}") for n in names}
    return types.SimpleNamespace(**mods)


def install_extension(modules: tuple[str, ...], gpu: bool = False):
    """bpy with this working tree's extension built (build.py), installed and enabled in a temporary
    user folder, as a user does with Install from Disk; with ``gpu`` the GPU context is made
    (:func:`start_blender`) before the add-on's modules are imported. Returns ``(bpy, modules)``, the
    add-on's ``modules`` (e.g. "bridge", "core.geometry.trace") by their last name. Used by scripts
    that drive the installed extension (bench/ui_images.py, bench/volume_bridge.py)."""
    home = tempfile.mkdtemp(prefix="ni-bench-home-")
    os.environ["HOME"] = home
    os.environ["BLENDER_USER_RESOURCES"] = os.path.join(home, "blender")
    spec = importlib.util.spec_from_file_location("ni_build", ROOT / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    out = Path(tempfile.mkdtemp(prefix="ni-bench-build-"))
    [zip_path] = build.build([build.this_platform()], staging=out / "staging", dist=out / "dist")
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                             enable_on_install=True)
    package = f"bl_ext.user_default.{build.manifest()['id']}"
    if gpu:
        start_blender()
    return bpy, types.SimpleNamespace(**{n.split(".")[-1]: importlib.import_module(f"{package}.{n}")
                                          for n in modules})

