"""Fixtures for tests inside Blender: the extension built for this platform, installed and enabled.

bpy can be imported once per process and reads the user's preferences as it is imported, so the
``blender`` fixture points HOME and Blender's user folders at a temporary directory first, imports
bpy, resets to factory settings and installs the zip that build.py builds, the way a user installs
one (Get Extensions > Install from Disk). Test modules here must not import bpy at module level;
take it from ``blender.bpy``. Tests must not reset factory settings again (that disables the
extension); load an empty file with ``bpy.ops.wm.read_homefile(use_empty=True)`` instead.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

# Variables that would send Blender to other user folders than the temporary one.
USER_DIR_VARIABLES = ("BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS", "BLENDER_USER_EXTENSIONS",
                      "BLENDER_USER_DATAFILES")


@dataclass(frozen=True)
class Blender:
    """Blender with the extension installed and enabled."""

    bpy: ModuleType
    package: str             # "bl_ext.user_default.neural_implicit": the add-on's module name
    zip_path: Path           # the zip that was installed
    user_dir: Path           # BLENDER_USER_RESOURCES: config, scripts, extensions
    site_packages: Path      # where Blender installed the extension's wheels
    modules_added: frozenset  # names that installing and enabling added to sys.modules

    @property
    def module(self) -> ModuleType:
        return sys.modules[self.package]


@pytest.fixture(scope="session")
def extension_zip(build_script, tmp_path_factory):
    """The extension zip for this platform, built by build.py into a temporary folder."""
    platform = build_script.this_platform()
    if platform not in build_script.manifest()["platforms"]:
        pytest.skip(f"the extension ships no wheels for {platform}")
    out = tmp_path_factory.mktemp("extension")
    try:
        [zip_path] = build_script.build([platform], staging=out / "staging", dist=out / "dist")
    except build_script.BuildError as ex:
        pytest.fail(f"building the extension failed: {ex}", pytrace=False)
    return zip_path


@pytest.fixture(scope="session")
def blender(extension_zip, build_script, tmp_path_factory):
    """Blender (bpy) with a temporary user folder and the extension installed and enabled."""
    if "bpy" in sys.modules:
        pytest.fail("bpy was imported before the blender fixture (a test module importing it at "
                    "module level?) and has read the real user's preferences", pytrace=False)
    home = tmp_path_factory.mktemp("home")
    saved = {name: os.environ.get(name) for name in ("HOME", "BLENDER_USER_RESOURCES", *USER_DIR_VARIABLES)}
    for name in USER_DIR_VARIABLES:
        os.environ.pop(name, None)
    os.environ["HOME"] = str(home)
    os.environ["BLENDER_USER_RESOURCES"] = str(home / "blender")

    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    before = set(sys.modules)
    result = bpy.ops.extensions.package_install_files(
        filepath=str(extension_zip), repo="user_default", enable_on_install=True)
    package = f"bl_ext.user_default.{build_script.manifest()['id']}"
    if result != {"FINISHED"} or package not in bpy.context.preferences.addons:
        pytest.fail(f"installing {extension_zip.name} gave {result}; {package} is not enabled", pytrace=False)
    site_packages = Path(bpy.utils.user_resource("EXTENSIONS"), ".local", "lib",
                         "python%d.%d" % sys.version_info[:2], "site-packages")
    yield Blender(bpy=bpy, package=package, zip_path=extension_zip, user_dir=home / "blender",
                  site_packages=site_packages, modules_added=frozenset(set(sys.modules) - before))

    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def gpu_ready(blender):
    """Blender whose ``gpu`` module can draw offscreen in background mode.

    Without a window there is no GPU context until something renders; one EEVEE render at 8x8
    pixels creates it (about 10 s on a CPU-only machine, where Mesa's llvmpipe does the drawing).
    The scene is left as it was found.
    """
    bpy = blender.bpy
    scene = bpy.context.scene
    render = scene.render
    saved = (scene.camera, render.engine, render.resolution_x, render.resolution_y,
             render.resolution_percentage)
    camera_data = bpy.data.cameras.new("gpu_ready")
    camera = bpy.data.objects.new("gpu_ready", camera_data)
    scene.collection.objects.link(camera)
    try:
        scene.camera = camera
        render.engine = "BLENDER_EEVEE"
        render.resolution_x = render.resolution_y = 8
        render.resolution_percentage = 100
        bpy.ops.render.render()
    finally:
        (scene.camera, render.engine, render.resolution_x, render.resolution_y,
         render.resolution_percentage) = saved
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(camera_data)
    return blender
