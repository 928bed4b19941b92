#!/usr/bin/env python3
"""Build, test and run the demo of the Neural Implicit Blender extension.

    python build.py [build]            stage the extension, build dist/*.zip with Blender's own
                                       builder (one zip per platform) and validate every zip
    python build.py build --platform linux-x64 --single-zip
    python build.py wheels             download the wheels blender_manifest.toml lists into wheels/
    python build.py test [pytest args] run the test suite, e.g. ``python build.py test -k remesh``
    python build.py demo [args]        run ``python -m core demo``
    python build.py gpu-check [args]   run bench/gpu_check.py (the figures that need an NVIDIA GPU)

Every command first makes sure ``.venv`` holds requirements.txt (pip runs only when the file's hash
differs from ``.venv/requirements.sha256``) and then runs itself again inside it, so a fresh clone
needs nothing but Python 3.11 and network access. Blender's builder and validator come from the
``bpy`` wheel installed there. Except ``gpu-check``: it runs with the Python that runs build.py,
because the GPU machines lent for it have no network and no .venv (bench/gpu_check.py says what is
missing there, and installs it only with ``--install``).

The extension zip holds the manifest, the add-on package (neural_implicit_addon/) at its root, a
copy of the Blender-free ``core`` package as its subpackage ``core`` and the wheels of libigl, scipy
and h5py. Zips are split per platform by default: one platform's wheels weigh 45-62 MB, all four
about 200 MB, which every user would otherwise download.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements.txt"
STAMP = VENV / "requirements.sha256"
MANIFEST = ROOT / "blender_manifest.toml"
STAGING = ROOT / "build" / "staging"
DIST = ROOT / "dist"
PYTHON = (3, 11)  # Blender 4.2 to 5.0 and the bpy 5.0.1 wheel
EXCLUDE = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "bench")


class BuildError(Exception):
    """A step of the build failed; the message says which and why, in one line."""


# ---------------------------------------------------------------------------------------------------
# The virtual environment

def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def requirements_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def base_python() -> str:
    """A Python 3.11 to create the venv with: the one running this script, else python3.11."""
    if sys.version_info[:2] == PYTHON:
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise BuildError("needs Python 3.11 (the bpy 5.0.1 wheel is built for it); "
                         "none found, run this script with python3.11")
    return found


def ensure_venv() -> None:
    """Create .venv if missing; install requirements.txt unless the stamp says it is installed.

    A venv made by hand (no stamp) gets a pip run, a no-op when everything is there already.
    """
    if not venv_python().exists():
        print(f"creating {VENV}", flush=True)
        run([base_python(), "-m", "venv", VENV])
    want = requirements_hash()
    if STAMP.exists() and STAMP.read_text().strip() == want:
        return
    print("installing requirements.txt into .venv", flush=True)
    run([venv_python(), "-m", "pip", "install", "-r", REQUIREMENTS])
    STAMP.write_text(want + "\n")


def run(cmd: list, capture: bool = False) -> str:
    """Run a command; raise BuildError naming it (and the end of its output) if it fails."""
    cmd = [str(c) for c in cmd]
    result = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=capture)
    if result.returncode:
        tail = (result.stdout or "") + (result.stderr or "")
        tail = tail.strip().splitlines()[-1] if tail.strip() else f"exit status {result.returncode}"
        raise BuildError(f"{' '.join(cmd[:4])} ... failed: {tail}")
    return result.stdout or ""


# ---------------------------------------------------------------------------------------------------
# Manifest, platforms and wheels

def manifest() -> dict:
    import tomllib  # 3.11+; build.py may start under an older Python, which only re-runs it

    with open(MANIFEST, "rb") as fh:
        return tomllib.load(fh)


def this_platform() -> str:
    """This machine as Blender names platforms: ``linux-x64``, ``windows-x64``, ``macos-arm64``..."""
    system = {"darwin": "macos"}.get(platform.system().lower(), platform.system().lower())
    machine = platform.machine().lower()
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(machine, machine)
    return f"{system}-{machine}"


def wheel_platform_tags(wheel: str) -> list[str]:
    """``scipy-1.17.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl`` -> both tags."""
    return Path(wheel).name[:-len(".whl")].split("-")[-1].split(".")


def wheel_blender_platform(wheel: str) -> str:
    """The Blender platform a wheel is for: ``...-macosx_12_0_arm64.whl`` -> ``macos-arm64``."""
    tag = wheel_platform_tags(wheel)[0]
    system = {"manylinux": "linux", "win": "windows", "macosx": "macos"}.get(tag.split("_")[0])
    for suffix, machine in (("x86_64", "x64"), ("amd64", "x64"), ("arm64", "arm64"), ("aarch64", "arm64")):
        if system and tag.endswith(suffix):
            return f"{system}-{machine}"
    raise BuildError(f"wheel platform tag {tag!r} of {Path(wheel).name} is not one build.py knows")


def wheel_requirement(wheel: str) -> str:
    """``libigl-2.6.3-cp311-...whl`` -> ``libigl==2.6.3``."""
    name, version = Path(wheel).name.split("-")[:2]
    return f"{name}=={version}"


def ensure_wheels(wheels: list[str]) -> None:
    """Download into wheels/ each listed wheel (manifest-relative path) that is not there yet.

    pip is asked for exactly that file's name, version, ABI and platform tags; if it picks another
    file (a newer build tag, say) the wheel still counts as missing and the build stops.
    """
    for wheel in wheels:
        path = ROOT / wheel
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        abi = Path(wheel).name.split("-")[-2]
        platforms = [f"--platform={tag}" for tag in wheel_platform_tags(wheel)]
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
               "--retries", "1", "--timeout", "30", "--python-version", "%d.%d" % PYTHON,
               "--implementation", "cp", f"--abi={abi}", *platforms, "--dest", path.parent,
               wheel_requirement(wheel)]
        result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
        if result.returncode:
            last = (result.stderr.strip() or result.stdout.strip() or "pip failed").splitlines()[-1]
            raise BuildError(f"cannot download {path.name} (network unavailable? pip: {last}); "
                             "rerun `python build.py wheels` online or copy it into wheels/")
        if not path.exists():
            raise BuildError(f"pip did not fetch {path.name}; is the name in blender_manifest.toml right?")


def set_toml_list(text: str, key: str, values: list[str]) -> str:
    """Replace the top-level ``key = [...]`` array of a TOML text by ``values`` (one per line)."""
    body = "".join(f'  "{v}",\n' for v in values)
    new, count = re.subn(rf"^{key}\s*=\s*\[.*?\]", f"{key} = [\n{body}]", text, count=1,
                         flags=re.MULTILINE | re.DOTALL)
    if count != 1:
        raise BuildError(f"no top-level {key} = [...] in the manifest")
    return new


# ---------------------------------------------------------------------------------------------------
# Staging, building and validating

def blender_ext() -> Path:
    """Blender's extension builder/validator, shipped inside the bpy wheel (bpy is not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        raise BuildError("bpy is not installed; run `python build.py` (it sets up .venv)")
    found = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise BuildError(f"blender_ext.py not found under {Path(spec.origin).parent}")
    return found[-1]


def valid_tags_file() -> Path:
    """Blender's list of extension tags, so that a misspelt tag fails the build."""
    return blender_ext().parents[3] / "modules" / "_bpy_internal" / "extensions" / "tags.py"


def stage(platforms: list[str], staging: Path = STAGING) -> Path:
    """Lay out the extension in ``staging`` (emptied first) for ``platforms``; return ``staging``.

    The add-on package becomes the root, ``core`` its subpackage (core imports only relatively),
    wheels/ only the given platforms' wheels; the manifest is narrowed to those platforms.
    """
    data = manifest()
    unknown = sorted(set(platforms) - set(data["platforms"]))
    if unknown:
        raise BuildError(f"platform(s) {unknown} not in the manifest's {data['platforms']}")
    wheels = [w for w in data["wheels"] if wheel_blender_platform(w) in platforms]
    ensure_wheels(wheels)

    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(ROOT / "neural_implicit_addon", staging, ignore=EXCLUDE)
    shutil.copytree(ROOT / "core", staging / "core", ignore=EXCLUDE)
    for wheel in wheels:
        target = staging / wheel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(ROOT / wheel, target)
        except OSError:
            shutil.copy2(ROOT / wheel, target)

    text = MANIFEST.read_text(encoding="utf-8")
    if platforms != data["platforms"]:
        text = set_toml_list(set_toml_list(text, "platforms", platforms), "wheels", wheels)
    (staging / MANIFEST.name).write_text(text, encoding="utf-8")
    return staging


def validate(zip_path: Path) -> None:
    """Run Blender's validator on a built zip; raise BuildError with its complaint."""
    run([sys.executable, blender_ext(), "validate", f"--valid-tags={valid_tags_file()}", zip_path],
        capture=True)


def build(platforms: list[str] | None = None, split: bool = True,
          staging: Path = STAGING, dist: Path = DIST) -> list[Path]:
    """Build and validate the extension; return the zip(s) written to ``dist``.

    platforms : Blender platform names (default: all the manifest lists).
    split : one zip per platform (``<id>-<version>-linux_x64.zip``) or one zip with all wheels.
    staging, dist : work and output folders (tests pass temporary ones).
    """
    data = manifest()
    platforms = list(platforms or data["platforms"])
    stage(platforms, staging)
    dist.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, blender_ext(), "build", f"--source-dir={staging}", f"--output-dir={dist}",
           f"--valid-tags={valid_tags_file()}"]
    stem = f"{data['id']}-{data['version']}"
    if split:
        cmd.append("--split-platforms")
        zips = [dist / f"{stem}-{p.replace('-', '_')}.zip" for p in platforms]
    else:
        zips = [dist / f"{stem}.zip"]
    run(cmd, capture=True)
    for zip_path in zips:
        if not zip_path.exists():
            raise BuildError(f"Blender's builder did not write {zip_path}")
        validate(zip_path)
    return zips


# ---------------------------------------------------------------------------------------------------
# GPU check

def gpu_check(args: list[str]) -> int:
    """Run bench/gpu_check.py with the current interpreter: a lent GPU machine has no .venv and no
    network to build one, so this command never calls ensure_venv()."""
    return subprocess.call([sys.executable, "-m", "bench.gpu_check", *args], cwd=ROOT)


# ---------------------------------------------------------------------------------------------------
# Command line

def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="\n\n".join(__doc__.split("\n\n")[:2]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="{build,wheels,test,demo,gpu-check}")
    p_build = sub.add_parser("build", help="build and validate dist/*.zip (the default)")
    p_build.add_argument("--platform", action="append", dest="platforms", metavar="NAME",
                         help="only this Blender platform, e.g. linux-x64 (repeatable; 'this' = %s)"
                         % this_platform())
    p_build.add_argument("--single-zip", action="store_true",
                         help="one zip holding every platform's wheels instead of one per platform")
    sub.add_parser("wheels", help="download the wheels the manifest lists into wheels/")
    sub.add_parser("test", add_help=False, help="run pytest on tests/ (extra arguments go to pytest)")
    sub.add_parser("demo", add_help=False, help="run `python -m core demo` (extra arguments go to it)")
    sub.add_parser("gpu-check", add_help=False,
                   help="run bench/gpu_check.py with this Python, no .venv (extra arguments go to it)")
    parser.set_defaults(platforms=None, single_zip=False)
    args, extra = parser.parse_known_args(argv)
    command = args.command or "build"
    if extra and command not in ("test", "demo", "gpu-check"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if command == "gpu-check":
        return gpu_check(extra)

    ensure_venv()
    if not in_venv():
        return subprocess.call([str(venv_python()), str(Path(__file__).resolve()), *argv])

    if command == "test":
        return subprocess.call([sys.executable, "-m", "pytest", "tests", "-q", *extra], cwd=ROOT)
    if command == "demo":
        return subprocess.call([sys.executable, "-m", "core", "demo", *extra], cwd=ROOT)
    if command == "wheels":
        wheels = manifest()["wheels"]
        ensure_wheels(wheels)
        total = sum((ROOT / w).stat().st_size for w in wheels)
        print(f"{len(wheels)} wheels in {ROOT / 'wheels'} ({total / 1e6:.0f} MB)")
        return 0
    platforms = [this_platform() if p == "this" else p for p in args.platforms or []]
    for zip_path in build(platforms or None, split=not args.single_zip):
        print(f"{zip_path.relative_to(ROOT)}  {zip_path.stat().st_size / 1e6:.1f} MB  (validated)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BuildError as ex:
        sys.exit(f"build.py: {ex}")
