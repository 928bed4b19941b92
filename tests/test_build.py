"""build.py and the manifest, without Blender: wheels agree with requirements.txt and with Blender's
own reading of wheel names, and the manifest narrowing for one platform stays valid TOML."""

import importlib.util
import re
import tomllib
from collections import Counter

import pytest


@pytest.fixture(scope="module")
def blender_ext(build_script):
    """Blender's extension builder as a module (a plain script in the bpy wheel; bpy is not imported)."""
    spec = importlib.util.spec_from_file_location("blender_ext", build_script.blender_ext())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def requirement_pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        if match := re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;#]+)\s*(#.*)?", line.strip()):
            pins[match[1].lower()] = match[2]
    return pins


def test_manifest_wheels_match_requirements_one_per_package_and_platform(build_script):
    manifest = build_script.manifest()
    pins = requirement_pins(build_script.REQUIREMENTS)
    for wheel in manifest["wheels"]:
        name, version = build_script.wheel_requirement(wheel).split("==")
        assert pins.get(name.lower()) == version, f"{wheel} disagrees with requirements.txt"
        assert "-cp311-cp311-" in wheel, f"{wheel} is not for CPython 3.11 (Blender 4.2 to 5.0)"
    pairs = Counter((build_script.wheel_requirement(w), build_script.wheel_blender_platform(w))
                    for w in manifest["wheels"])
    packages = {requirement for requirement, _ in pairs}
    assert packages == {f"{n}=={pins[n]}" for n in ("libigl", "scipy", "h5py")}
    assert set(pairs.values()) == {1}
    assert {(r, p) for r in packages for p in manifest["platforms"]} == set(pairs)


def test_platform_names_agree_with_blenders_builder(build_script, blender_ext):
    assert build_script.this_platform() == blender_ext.platform_from_this_system()
    for wheel in build_script.manifest()["wheels"]:
        tag = wheel[:-len(".whl")].split("-")[-1]
        assert blender_ext.blender_platforms_from_wheel_platform(tag) == [
            build_script.wheel_blender_platform(wheel)]


def test_set_toml_list_narrows_the_manifest_to_one_platform(build_script):
    text = build_script.MANIFEST.read_text()
    wheels = [w for w in build_script.manifest()["wheels"] if "win_amd64" in w]
    narrowed = build_script.set_toml_list(text, "platforms", ["windows-x64"])
    narrowed = build_script.set_toml_list(narrowed, "wheels", wheels)
    data = tomllib.loads(narrowed)
    assert data["platforms"] == ["windows-x64"]
    assert data["wheels"] == wheels
    assert data["permissions"] == tomllib.loads(text)["permissions"]
    with pytest.raises(build_script.BuildError, match="no top-level nothing"):
        build_script.set_toml_list(text, "nothing", [])


def test_unknown_platform_is_refused_before_any_work(build_script, tmp_path):
    with pytest.raises(build_script.BuildError, match="linux-riscv"):
        build_script.stage(["linux-riscv"], staging=tmp_path / "staging")
    assert not (tmp_path / "staging").exists()
