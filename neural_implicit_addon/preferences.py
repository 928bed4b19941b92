"""Add-on preferences: where PyTorch comes from, and installing it on request.

Torch is too large to bundle with the extension (200 MB for CPU builds, several GB with CUDA), and
only training needs it: loading, drawing, remeshing, import and export run on numpy alone. Two ways
to provide it:

* **Install PyTorch**: Blender's own Python runs ``pip install --target <extension user folder>/
  site-packages torch==TORCH_VERSION`` (``bpy.utils.extension_path_user``: kept across upgrades of the
  extension, removed with it), in a child process with ``PYTHONNOUSERSITE=1``, off the UI thread,
  its output shown as progress. The version is pinned to the one the project is tested with, from
  PyTorch's own index: the CPU build by default (every platform, about 200 MB), or the CUDA build
  (Linux and Windows with an NVIDIA GPU, about 3 GB). macOS wheels come from PyPI (CPU and Metal).
  Refused when Blender's "Allow Online Access" is off.
* **Python site-packages**: a folder of an existing Python 3.11 environment that has torch.

:func:`add_torch_paths` is the one function that extends ``sys.path`` for this, appending (never
prepending) so Blender's bundled numpy and the extension's wheels keep precedence; unregistering
takes the paths away again.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import queue
import re
import subprocess
import sys
import threading
from typing import Optional

import bpy
from bpy.props import EnumProperty, StringProperty

#: The PyTorch the add-on is tested with (requirements.txt): the same numbers on every machine.
TORCH_VERSION = "2.13.0"
#: Package indexes per variant (PyTorch's own, so the CPU build is not the 3 GB CUDA one).
INDEX_URLS = {
    'CPU': "https://download.pytorch.org/whl/cpu",
    'CUDA': "https://download.pytorch.org/whl/cu128",
}
#: pip gives up on an unreachable index after this many seconds per attempt.
PIP_TIMEOUT = 30

_added_paths: list[str] = []


def _package() -> str:
    return __package__


def preferences():
    """This add-on's preferences (None while it is not enabled)."""
    addon = bpy.context.preferences.addons.get(_package())
    return addon.preferences if addon else None


def user_site_packages(create: bool = False) -> str:
    """Where "Install PyTorch" installs: a folder of the extension's user directory."""
    return bpy.utils.extension_path_user(_package(), path="site-packages", create=create)


def add_torch_paths() -> list[str]:
    """Append the torch folders (installed one, configured one) to ``sys.path``; idempotent.

    The only place that edits ``sys.path``; a folder configured before and since cleared is removed.
    Returns the folders added by the add-on.
    """
    wanted = []
    try:
        installed = user_site_packages()
    except (ValueError, RuntimeError):  # not enabled as an extension (no user folder)
        installed = ""
    if installed and os.path.isdir(installed):
        wanted.append(installed)
    prefs = preferences()
    configured = bpy.path.abspath(prefs.site_packages).rstrip("/\\") if prefs and prefs.site_packages else ""
    if configured and os.path.isdir(configured):
        wanted.append(configured)
    changed = False
    for path in list(_added_paths):
        if path not in wanted:
            _added_paths.remove(path)
            if path in sys.path:
                sys.path.remove(path)
            changed = True
    for path in wanted:
        if path not in _added_paths and path not in sys.path:
            sys.path.append(path)
            _added_paths.append(path)
            changed = True
    if changed:
        importlib.invalidate_caches()
    return list(_added_paths)


def remove_torch_paths() -> None:
    for path in _added_paths:
        if path in sys.path:
            sys.path.remove(path)
    _added_paths.clear()


def torch_spec():
    """The import spec of torch, or None; never imports torch (enabling must stay fast)."""
    add_torch_paths()
    try:
        return importlib.util.find_spec("torch")
    except (ValueError, ImportError):
        return None


def torch_available() -> bool:
    """Whether torch can be imported (``sys.modules['torch'] = None`` simulates a missing torch)."""
    return torch_spec() is not None


def torch_version() -> Optional[str]:
    spec = torch_spec()
    if spec is None:
        return None
    module = sys.modules.get("torch")
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


MISSING_TORCH = ("PyTorch is not installed: conversion needs it. Install it in Preferences > Add-ons > "
                 "Neural Implicit, or point that page at a Python environment that has it")


def online_access() -> bool:
    """Blender's "Allow Online Access" (a function so tests can stand in for it)."""
    return bool(getattr(bpy.app, "online_access", True))


# ============================================================================ installing

def _pip_supports_raw_progress() -> bool:
    try:
        version = importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        return False
    numbers = [int(x) for x in re.findall(r"\d+", version)[:2]]
    return numbers >= [24, 1]


def pip_command(variant: str, target: str) -> list[str]:
    """The pip command line that installs torch into ``target``."""
    cmd = [sys.executable, "-m", "pip", "install", "--target", target, "--upgrade", "--no-input",
           "--disable-pip-version-check", "--no-warn-script-location",
           "--timeout", str(PIP_TIMEOUT), "--retries", "2",
           "--progress-bar", "raw" if _pip_supports_raw_progress() else "off"]
    if sys.platform != "darwin":
        cmd += ["--index-url", INDEX_URLS[variant]]
    return cmd + [f"torch=={TORCH_VERSION}"]


_PROGRESS = re.compile(r"Progress (\d+) of (\d+)")


class Installer:
    """pip in a child process; a reader thread turns its output into (fraction, line) updates."""

    def __init__(self, cmd: list[str]):
        env = dict(os.environ, PYTHONNOUSERSITE="1", PIP_NO_INPUT="1")
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.tail: list[str] = []
        self.fraction = 0.0
        self.status = "starting pip"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip())
        self.proc.stdout.close()

    def poll(self) -> Optional[int]:
        """Consume output; return pip's exit status once it has finished and its output is read."""
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            m = _PROGRESS.search(line)
            if m:
                self.fraction = int(m.group(1)) / max(int(m.group(2)), 1)
                continue
            if line.strip():
                self.tail = (self.tail + [line.strip()])[-30:]
                self.status = line.strip()[:120]
        code = self.proc.poll()
        if code is None or self._reader.is_alive():
            return None
        return code

    def cancel(self):
        if self.proc.poll() is None:
            self.proc.terminate()

    def failure(self) -> str:
        """A one-line reason from pip's output."""
        text = "\n".join(self.tail)
        if re.search(r"(NewConnectionError|Name or service not known|getaddrinfo failed|"
                     r"Temporary failure in name resolution|Network is unreachable|"
                     r"Connection refused|ConnectTimeout|Max retries exceeded|"
                     r"No matching distribution found|Could not find a version)", text):
            return ("the package index could not be reached or has no matching PyTorch "
                    "(offline? behind a proxy?); pip said: " + (self.tail[-1] if self.tail else ""))
        errors = [line for line in self.tail if line.startswith("ERROR")]
        return (errors or self.tail or ["pip failed without output"])[-1]


_installer: Optional[Installer] = None


def installing() -> Optional[Installer]:
    return _installer


class PREFERENCES_OT_neural_implicit_install_torch(bpy.types.Operator):
    """Download PyTorch with pip into this extension's user folder (needs online access)"""

    bl_idname = "preferences.neural_implicit_install_torch"
    bl_label = "Install PyTorch"
    bl_options = {'INTERNAL'}

    variant: EnumProperty(
        name="Build", default='CPU',
        items=[('CPU', "CPU", "Runs everywhere; about 200 MB"),
               ('CUDA', "CUDA (NVIDIA)", "Trains on an NVIDIA GPU; about 3 GB (Linux, Windows)")])

    _timer = None

    @classmethod
    def poll(cls, context):
        if _installer is not None:
            cls.poll_message_set("PyTorch is being installed")
            return False
        return True

    def _start(self) -> bool:
        global _installer
        if not online_access():
            self.report({'ERROR'}, "Online access is disabled: allow it in Preferences > System > "
                                   "Network, or install PyTorch yourself and set the Python "
                                   "site-packages folder here")
            return False
        target = user_site_packages(create=True)
        _installer = Installer(pip_command(self.variant, target))
        return True

    def _finish(self, context, code: int) -> set:
        global _installer
        installer, _installer = _installer, None
        if context.workspace is not None and not bpy.app.background:
            context.workspace.status_text_set(None)
        if code != 0:
            self.report({'ERROR'}, f"Could not install PyTorch: {installer.failure()}")
            return {'CANCELLED'}
        importlib.invalidate_caches()
        if torch_available():
            self.report({'INFO'}, f"PyTorch {torch_version()} installed")
            return {'FINISHED'}
        self.report({'ERROR'}, "pip finished but torch cannot be found; see the system console")
        return {'CANCELLED'}

    def execute(self, context):
        """Blocking (scripts, background mode)."""
        if not self._start():
            return {'CANCELLED'}
        _installer.proc.wait()
        while (code := _installer.poll()) is None:
            _installer._reader.join(0.1)
        return self._finish(context, code)

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        if not self._start():
            return {'CANCELLED'}
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type == 'ESC' and _installer is not None:
            _installer.cancel()
        if event.type != 'TIMER' or _installer is None:
            return {'PASS_THROUGH'}
        code = _installer.poll()
        from .bridge import tag_view3d_redraw
        tag_view3d_redraw(context, {'PREFERENCES'})
        if context.workspace is not None:
            context.workspace.status_text_set(f"Installing PyTorch: {_installer.status}")
        if code is None:
            return {'PASS_THROUGH'}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(context, code)

    def cancel(self, context):
        global _installer
        if _installer is not None:
            _installer.cancel()
            _installer = None
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)


class NI_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    site_packages: StringProperty(
        name="Python site-packages", subtype='DIR_PATH', default="",
        description="site-packages folder of an existing Python 3.11 environment that has PyTorch "
                    "(used when torch is not installed here)")

    def draw(self, context):
        layout = self.layout
        box = layout.box()
        spec = torch_spec()
        if spec is not None:
            box.label(text=f"PyTorch {torch_version()} is available: conversion works", icon='CHECKMARK')
            box.label(text=f"from {os.path.dirname(os.path.dirname(spec.origin or ''))}")
        else:
            box.label(text="PyTorch is not installed: conversion is unavailable "
                           "(everything else works)", icon='ERROR')
        installer = _installer
        if installer is not None:
            box.progress(factor=installer.fraction, type='BAR',
                         text=installer.status if installer.fraction == 0 else
                         f"{installer.fraction:.0%} downloaded")
            box.label(text="Esc cancels the installation")
        else:
            row = box.row(align=True)
            if not online_access():
                row.enabled = False
            for variant, label in (('CPU', "Install PyTorch (CPU)"), ('CUDA', "Install PyTorch (CUDA)")):
                if variant == 'CUDA' and sys.platform == "darwin":
                    continue
                op = row.operator(PREFERENCES_OT_neural_implicit_install_torch.bl_idname,
                                  text=label, icon='IMPORT')
                op.variant = variant
            if not online_access():
                box.label(text="Online access is disabled (Preferences > System > Network)",
                          icon='INFO')
            box.label(text=f"Installs torch {TORCH_VERSION} into {user_site_packages()}")
        layout.prop(self, "site_packages")


classes = (PREFERENCES_OT_neural_implicit_install_torch, NI_AddonPreferences)
