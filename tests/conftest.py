"""Shared pytest setup: the repository root importable, markers, test order and ``build_script``.

Tests under tests/addon/ run inside Blender (the ``bpy`` module) and are marked ``blender`` here, so
``pytest -m "not blender"`` runs the Blender-free tests alone; tests that use ``gpu_ready`` are also
marked ``gpu``. Blender tests run last: bpy changes process-wide state (sys.path, HOME) once
imported, and the quick core tests should fail first. Nothing here imports bpy.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADDON_TESTS = Path(__file__).resolve().parent / "addon"

if str(ROOT) not in sys.path:  # `import core` also under a bare `pytest`
    sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    config.addinivalue_line("markers", "blender: runs inside Blender, the bpy module (all of tests/addon/)")
    config.addinivalue_line("markers", "gpu: draws with Blender's gpu module (uses the gpu_ready fixture)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if ADDON_TESTS in Path(item.path).parents:
            item.add_marker(pytest.mark.blender)
        if "gpu_ready" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gpu)
    items.sort(key=lambda item: item.get_closest_marker("blender") is not None)  # stable


@pytest.fixture(scope="session")
def build_script():
    """build.py loaded as a module (it runs nothing on import): staging, building, validating."""
    spec = importlib.util.spec_from_file_location("neural_implicit_build_script", ROOT / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
