"""The extension as users get it: the built zip validates, installs into Blender, enables, carries
``core`` as its own subpackage, disables cleanly, and its wheels work beside Blender's numpy."""

import importlib
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Run in a Python that sees only the standard library, a folder holding nothing but numpy (as
# Blender bundles it) and the site-packages Blender installed the extension's wheels into.
WHEELS_CHECK = """
import sys
sys.path[:0] = sys.argv[1:3]
import numpy, igl, h5py, scipy.sparse
V = numpy.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
F = numpy.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
W = igl.winding_number(V, F, numpy.array([[0.1, 0.1, 0.1], [2.0, 2.0, 2.0]]))
with h5py.File(sys.argv[3], "w") as f:
    f["W"] = W
with h5py.File(sys.argv[3], "r") as f:
    print(numpy.__version__, *f["W"][()])
for module in (igl, h5py, scipy):
    print(module.__file__)
"""


def test_zip_validates_and_holds_manifest_addon_core_and_this_platforms_wheels(extension_zip, build_script):
    build_script.validate(extension_zip)  # raises BuildError with Blender's message
    names = set(zipfile.ZipFile(extension_zip).namelist())
    core_files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "core").rglob("*.py")
                  if "__pycache__" not in p.parts}
    assert {"blender_manifest.toml", "__init__.py", "core/__init__.py"} <= names
    assert core_files <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")
                or n.startswith(("tests/", "bench/"))]
    platform = build_script.this_platform()
    wheels = {w[2:] for w in build_script.manifest()["wheels"]
              if build_script.wheel_blender_platform(w) == platform}
    assert {n for n in names if n.endswith(".whl")} == wheels


def test_installing_enables_the_addon_from_the_user_repository(blender):
    bpy = blender.bpy
    module = blender.module
    assert blender.package in bpy.context.preferences.addons
    assert Path(module.__file__).parent == blender.user_dir / "extensions" / "user_default" / "neural_implicit"
    preferences = bpy.context.preferences.addons[blender.package].preferences
    assert type(preferences) is module.NI_AddonPreferences
    assert module.torch_available() == (importlib.util.find_spec("torch") is not None)


def test_core_is_the_extensions_subpackage_not_a_top_level_module(blender):
    core = importlib.import_module(blender.package + ".core")
    extension_dir = Path(blender.module.__file__).parent
    assert Path(core.__file__).parent == extension_dir / "core"
    assert core.__version__
    assert "core" not in blender.modules_added
    if "core" in sys.modules:  # the repository's core, imported by the core tests
        assert extension_dir not in Path(sys.modules["core"].__file__).parents
    assert str(extension_dir) not in sys.path and str(extension_dir.parent) not in sys.path


def test_disabling_unregisters_and_enabling_again_works(blender):
    bpy = blender.bpy
    preferences_class = blender.module.NI_AddonPreferences
    assert preferences_class.is_registered
    try:
        assert bpy.ops.preferences.addon_disable(module=blender.package) == {"FINISHED"}
        assert blender.package not in bpy.context.preferences.addons
        assert not preferences_class.is_registered
    finally:
        assert bpy.ops.preferences.addon_enable(module=blender.package) == {"FINISHED"}
    assert blender.package in bpy.context.preferences.addons
    assert blender.module.NI_AddonPreferences.is_registered


def test_wheels_are_installed_into_blenders_extension_site_packages(blender):
    # Blender adds this folder to sys.path. Under the bpy module in a venv it comes *after* the
    # venv's own site-packages, so in this process `import igl` finds the venv's copy; the next
    # test imports the installed wheels with nothing else around.
    assert str(blender.site_packages) in sys.path
    for name in ("igl", "scipy", "h5py"):
        assert (blender.site_packages / name / "__init__.py").exists(), f"{name} not installed"
    for module in ("igl", "h5py"):
        importlib.import_module(module)


def test_installed_wheels_import_and_work_with_blenders_numpy_alone(blender, tmp_path):
    numpy_spec = importlib.util.find_spec("numpy")
    numpy_dir = Path(numpy_spec.origin).parent
    only_numpy = tmp_path / "only_numpy"
    only_numpy.mkdir()
    try:
        for path in (numpy_dir, numpy_dir.with_name("numpy.libs")):
            if path.exists():
                os.symlink(path, only_numpy / path.name, target_is_directory=True)
    except OSError as ex:
        pytest.skip(f"cannot make symbolic links here: {ex}")
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", WHEELS_CHECK, str(blender.site_packages), str(only_numpy),
         str(tmp_path / "w.h5")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    first, *files = result.stdout.split("\n")
    assert first.split() == ["1.26.4", "1.0", "0.0"]
    for file in filter(None, files):
        assert blender.site_packages in Path(file).parents, file
