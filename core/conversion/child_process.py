"""A conversion in a child Python process: a native crash or out-of-memory in torch ends the child,
never the caller (the Blender add-on, whose unsaved scene lives in the calling process).

Why a process and not a thread: torch's native code can abort, segfault or be killed by the kernel's
OOM killer, and a thread takes its whole process with it. A child started with the caller's own
interpreter (``sys.executable``; in Blender >= 2.92 Blender's bundled Python) and the caller's
``sys.path`` finds the same numpy, torch and core; only the child dies when something goes wrong,
and the caller gets a message instead (:class:`ChildDied`).

Protocol (one child per call, files in a temporary folder that is deleted afterwards)
-------------------------------------------------------------------------------------
* in: ``shapes.npz`` (``V<i>`` (n, 3) float64, ``F<i>`` (m, 3) int64, optional ``W<i>`` (n,) float64
  vertex importance) and ``job.json`` (names, ``ConversionSettings.to_dict()``, size mode: target
  error or byte budget, whether the shapes train together as one stack, attempts);
* out, one JSON object per line on the child's stdout (anything else the child prints goes to its
  stderr): ``{"progress": {Progress fields}, "index": i}``, its ``shape`` naming the shape it is
  about (a stack's records too, whose index is null); ``{"result": i, "file": "result_<i>.h5",
  "summary": {...}, "warnings": [...]}`` for each finished shape, its network written with
  ``core.representation.fileformat.save``; ``{"error": message, "kind": "InputError" |
  "ConversionFailed" | ..., "index": i}`` for a shape that failed (index null: every shape without
  an outcome);
* cancel: the caller terminates the child (SIGTERM), then kills it after a grace period;
* the caller's death ends the child: the child reads its stdin, which the caller never writes, so
  end-of-file means the caller is gone; on Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` as well.

Inside the Blender extension this package is ``bl_ext.<repo>.neural_implicit.core``; the child loads
the very same folder as the top-level package ``core`` straight from its path
(``importlib.util.spec_from_file_location``), so no other ``core`` on ``sys.path`` can shadow it and
the add-on's own modules (siblings of ``core``) never become importable top-level modules.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from ..common.errors import Cancelled, FileFormatError, InputError
from ..common.parent_death import die_with_parent
from ..common.progress import CancelToken, Progress, ProgressCallback, for_shape
from ..common.settings import ConversionSettings

log = logging.getLogger(__name__)

#: Seconds between SIGTERM and SIGKILL when cancelling (torch stops at once on SIGTERM: it installs
#: no handler for it, so the default action ends the process).
GRACE_SECONDS = 2.0
#: Seconds the supervising loop waits for a line before it looks at the cancel token again.
POLL_SECONDS = 0.05
#: Exit status of a child whose caller has gone away.
PARENT_GONE_EXIT = 75
#: Lines of the child's stderr kept in the message and the log when it fails without a message.
STDERR_TAIL_LINES = 20

#: Started with ``python -c``: load this package's folder (argv[1]) as the top-level package ``core``
#: and hand over to :func:`main`. ``''`` (the working directory) is dropped from sys.path first.
_BOOT = (
    "import sys, os, importlib.util as u\n"
    "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
    "d = sys.argv[1]\n"
    "s = u.spec_from_file_location('core', os.path.join(d, '__init__.py'),"
    " submodule_search_locations=[d])\n"
    "m = u.module_from_spec(s); sys.modules['core'] = m; s.loader.exec_module(m)\n"
    "from core.conversion.child_process import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


@dataclass
class ShapeInput:
    """One mesh to convert, as raw arrays (validated in the child by
    ``core.meshes.mesh.mesh_from_arrays``).

    V : (n, 3) float64 vertices (mesh frame); F : (m, 3) int64 triangles; weights : optional (n,)
    float64 vertex importance; name : for messages and the file's metadata.
    """

    name: str
    V: np.ndarray
    F: np.ndarray
    weights: Optional[np.ndarray] = None


@dataclass
class ChildResult:
    """A shape converted in the child: its network (loaded from the child's file, metadata included),
    ``ConversionResult.summary()``, the check's warnings (e.g. an open mesh whose inside is ambiguous)
    and the check itself as ``Verification.to_dict()`` (None where the conversion made none)."""

    implicit: object
    summary: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    verification: Optional[dict] = None


class ChildDied(Exception):
    """The child ended without an outcome for a shape: killed by a signal (out of memory, a native
    crash) or exited with an error status without saying why. The message is meant for the user."""


class ChildError(Exception):
    """An unexpected exception inside the child (a bug): ``kind`` is its type name; the child's
    traceback went to the log."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


# ============================================================================ caller side

def convert_in_child(shapes: list[ShapeInput], settings: ConversionSettings | None = None, *,
                     target_error: float | None = None, budget_bytes: int | None = None,
                     together: bool = False, attempts: int = 3,
                     progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelToken] = None,
                     on_start: Optional[Callable[[int], None]] = None,
                     python: Optional[str] = None,
                     grace_seconds: float = GRACE_SECONDS) -> list:
    """Convert ``shapes`` in a child process; one outcome per shape, in order: a :class:`ChildResult`
    or the exception that shape failed with (InputError and its kinds, MemoryError, ChildDied,
    ChildError).

    target_error / budget_bytes : the size mode (at most one; neither = the settings' layers x hidden);
    together : train every shape at once as one stack (``core.conversion.batch_train.convert_many``,
        fixed size only), else one after another;
    attempts : conversions tried per shape before a closed mesh counts as failed (the result check);
    on_start : called with the child's process id once it runs (tests kill it through this);
    python : the interpreter to start (default ``sys.executable``).
    Raises Cancelled (the child is stopped first) when ``cancel`` is set, InputError for bad settings.
    """
    settings = (settings or ConversionSettings()).validate()
    if target_error is not None and budget_bytes is not None:
        raise InputError("give a target error or a byte budget, not both")
    if together and (target_error is not None or budget_bytes is not None):
        raise InputError("shapes train together only at a fixed size (no target error or budget)")
    job = {"names": [s.name for s in shapes], "settings": settings.to_dict(),
           "target_error": target_error, "budget_bytes": budget_bytes, "together": bool(together),
           "attempts": int(attempts)}
    with tempfile.TemporaryDirectory(prefix="neural_implicit_child_") as workdir:
        _write_inputs(workdir, shapes, job)
        with open(os.path.join(workdir, "stderr.txt"), "wb") as err:
            proc = _start(workdir, python or sys.executable, err)
            try:
                if on_start is not None:
                    on_start(proc.pid)
                outcomes = _supervise(proc, workdir, len(shapes), progress, cancel, grace_seconds)
            finally:
                if proc.poll() is None:
                    _stop(proc, grace_seconds)
                for pipe in (proc.stdin, proc.stdout):
                    pipe.close()
        return _fill_missing(outcomes, proc.returncode, os.path.join(workdir, "stderr.txt"))


def child_path() -> list[str]:
    """The child's ``sys.path`` (through PYTHONPATH): the caller's, folders that exist, in order
    (Blender's add-on folders, the extension's wheels and the torch folder added by the add-on)."""
    return [p for p in sys.path if p and os.path.isdir(p)]


def _write_inputs(workdir: str, shapes: list[ShapeInput], job: dict) -> None:
    arrays = {}
    for i, s in enumerate(shapes):
        arrays[f"V{i}"] = np.ascontiguousarray(s.V, dtype=np.float64)
        arrays[f"F{i}"] = np.ascontiguousarray(s.F, dtype=np.int64)
        if s.weights is not None:
            arrays[f"W{i}"] = np.ascontiguousarray(s.weights, dtype=np.float64)
    np.savez(os.path.join(workdir, "shapes.npz"), **arrays)
    with open(os.path.join(workdir, "job.json"), "w", encoding="utf-8") as fh:
        json.dump(job, fh)


def _start(workdir: str, python: str, stderr) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(child_path())
    env["PYTHONNOUSERSITE"] = "1"          # the user's own site-packages must not shadow ours
    env["PYTHONSAFEPATH"] = "1"            # nor the working directory
    core_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        return subprocess.Popen(
            [python, "-c", _BOOT, core_dir, workdir, str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=workdir, env=env,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except OSError as exc:
        raise ChildDied(f"the training process could not be started ({python}: {exc})") from None


def _read_lines(stream, lines: "queue.Queue") -> None:
    """Reader thread: every line of the child's stdout, then None at end of file."""
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):   # the pipe was closed under us (cancel)
        pass
    lines.put(None)


def _supervise(proc, workdir, n, progress, cancel, grace_seconds) -> list:
    """Forward the child's lines until it ends; stop it and raise Cancelled on cancel."""
    outcomes = [None] * n
    lines: "queue.Queue" = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True,
                     name="neural-implicit child output").start()
    while True:
        if cancel is not None and cancel.cancelled:
            _stop(proc, grace_seconds)
            raise Cancelled("cancelled by the user")
        try:
            line = lines.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
        if line is None:
            break
        _handle_line(line, workdir, outcomes, progress)
    while proc.poll() is None:       # stdout closed: the child is exiting
        if cancel is not None and cancel.cancelled:
            _stop(proc, grace_seconds)
            raise Cancelled("cancelled by the user")
        time.sleep(POLL_SECONDS)
    return outcomes


def _handle_line(line: bytes, workdir: str, outcomes: list, progress) -> None:
    try:
        msg = json.loads(line)
    except ValueError:
        log.warning("neural implicit child: %s", line.decode("utf-8", "replace").rstrip())
        return
    if "progress" in msg:
        if progress is not None:
            progress(Progress(**msg["progress"]))
    elif "result" in msg:
        i = int(msg["result"])
        outcomes[i] = _load_result(workdir, msg)
    elif "error" in msg:
        exc = _exception(msg.get("kind", ""), str(msg["error"]))
        index = msg.get("index")
        for i in (range(len(outcomes)) if index is None else (int(index),)):
            if outcomes[i] is None:
                outcomes[i] = exc


def _load_result(workdir: str, msg: dict):
    from ..representation.fileformat import load

    try:
        implicit = load(os.path.join(workdir, os.path.basename(msg["file"])))
    except InputError as exc:
        return exc
    return ChildResult(implicit, msg.get("summary") or {}, list(msg.get("warnings") or []),
                       implicit.metadata.get("verification"))


def _exception(kind: str, message: str) -> BaseException:
    """The caller-side exception for an error line of the child."""
    if kind == "ConversionFailed":
        from .checked import ConversionFailed
        return ConversionFailed(message)
    known = {"InputError": InputError, "FileFormatError": FileFormatError, "Cancelled": Cancelled,
             "MemoryError": MemoryError}
    if kind in known:
        return known[kind](message)
    if kind == "ModuleNotFoundError":
        return ModuleNotFoundError(message, name=message.split("'")[1] if "'" in message else None)
    return ChildError(kind, message)


def _stop(proc: subprocess.Popen, grace_seconds: float) -> None:
    """Terminate the child, then kill it if it is still there after ``grace_seconds``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _fill_missing(outcomes: list, returncode: int, stderr_path: str) -> list:
    """Shapes the child gave no outcome for fail with :class:`ChildDied` (why it ended, stderr)."""
    missing = [i for i, o in enumerate(outcomes) if o is None]
    tail = _tail(stderr_path)
    if tail and (missing or returncode != 0 or any(isinstance(o, ChildError) for o in outcomes)):
        log.error("neural implicit training process (exit status %s):\n%s", returncode, tail)
    if not missing:
        return outcomes
    died = ChildDied(describe_exit(returncode, tail))
    return [died if o is None else o for o in outcomes]


def describe_exit(returncode: int, stderr_tail: str = "") -> str:
    """Why a child that gave no outcome ended, for the user."""
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        hint = ", e.g. out of memory" if -returncode == getattr(signal, "SIGKILL", 9) else ""
        return f"the training process died (killed by signal {-returncode}, {name}{hint})"
    last = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else ""
    detail = f": {last}" if last else ""
    return f"the training process died (exit status {returncode} without a result{detail})"


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-STDERR_TAIL_LINES:])


# ============================================================================ child side

def main(argv: list[str]) -> int:
    """The child's entry point: ``argv`` = [working folder, the caller's process id]."""
    workdir, parent = argv[0], int(argv[1])
    out = _protocol_stream()
    _exit_with_parent(parent)
    try:
        job, shapes = _read_inputs(workdir)
        settings = ConversionSettings.from_dict(job["settings"])
    except Exception as exc:          # every failure becomes a line; bugs also get a traceback
        _emit_error(out, None, exc)
        return 1
    if job["together"] and len(shapes) > 1:
        _run_together(out, workdir, shapes, settings, job)
    else:
        for i, shape in enumerate(shapes):
            _run_one(out, workdir, i, shape, settings, job)
    return 0


def _protocol_stream():
    """The real stdout, for protocol lines only; fd 1 and ``sys.stdout`` then point at stderr, so a
    library that prints cannot corrupt the protocol."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", encoding="utf-8", buffering=1)


def _exit_with_parent(parent: int) -> None:
    """End this process when the caller ends: end of file on stdin (every platform), and the kernel's
    parent-death signal on Linux (also covers a caller stuck with the pipe open)."""

    def wait_for_eof():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        os._exit(PARENT_GONE_EXIT)

    threading.Thread(target=wait_for_eof, daemon=True, name="parent watch").start()
    die_with_parent(parent, PARENT_GONE_EXIT)


def _read_inputs(workdir: str):
    with open(os.path.join(workdir, "job.json"), encoding="utf-8") as fh:
        job = json.load(fh)
    shapes = []
    with np.load(os.path.join(workdir, "shapes.npz"), allow_pickle=False) as z:
        for i, name in enumerate(job["names"]):
            shapes.append(ShapeInput(name, z[f"V{i}"], z[f"F{i}"],
                                     z[f"W{i}"] if f"W{i}" in z.files else None))
    return job, shapes


def _emit(out, msg: dict) -> None:
    out.write(json.dumps(msg) + "\n")
    out.flush()


def _progress_line(out, index: Optional[int], name: str = ""):
    """Progress records as protocol lines; those of one shape (``index``) name it (``shape``)."""
    def line(p):
        _emit(out, {"progress": asdict(p), "index": index})
    return for_shape(line, name) if name else line


def _emit_error(out, index: Optional[int], exc: BaseException) -> None:
    if not isinstance(exc, (InputError, MemoryError)):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    _emit(out, {"error": str(exc), "kind": type(exc).__name__, "index": index})


def _emit_result(out, workdir: str, index: int, result) -> None:
    from ..representation.fileformat import save

    name = f"result_{index}.h5"
    save(result.implicit, os.path.join(workdir, name))
    _emit(out, {"result": index, "file": name, "summary": result.summary(),
                "warnings": list(result.warnings)})


def _mesh(shape: ShapeInput):
    from ..meshes.mesh import mesh_from_arrays
    return mesh_from_arrays(shape.V, shape.F, name=shape.name, vertex_weights=shape.weights)


def _run_one(out, workdir: str, index: int, shape: ShapeInput, settings, job: dict) -> None:
    """Convert one shape with its check (core.training.convert.convert_checked); emit its result or
    error."""
    from .checked import convert_checked

    try:
        result = convert_checked(_mesh(shape), settings, target_error=job["target_error"],
                                 budget_bytes=job["budget_bytes"], attempts=job["attempts"],
                                 progress=_progress_line(out, index, shape.name))
        _emit_result(out, workdir, index, result)
    except Exception as exc:  # every failure becomes an error line; bugs also get a traceback
        _emit_error(out, index, exc)


def _run_together(out, workdir: str, shapes: list[ShapeInput], settings, job: dict) -> None:
    """Several shapes as one stack (core.conversion.batch_train.convert_many), then each checked
    alone (core.training.convert.convert_checked with the stacked network as its first attempt). A
    mesh that fails validation fails alone; when one cannot be sampled the rest convert one at a
    time."""
    from .batch_train import convert_many
    from .checked import convert_checked

    meshes, where = [], []
    for i, shape in enumerate(shapes):
        try:
            meshes.append(_mesh(shape))
            where.append(i)
        except InputError as exc:
            _emit_error(out, i, exc)
    if not meshes:
        return
    try:
        results = convert_many(meshes, settings, shapes_per_batch=len(meshes),
                               progress=_progress_line(out, None))
    except InputError:
        for i in where:
            _run_one(out, workdir, i, shapes[i], settings, job)
        return
    for i, mesh, result in zip(where, meshes, results):
        try:
            result = convert_checked(mesh, settings, attempts=job["attempts"], trained=result,
                                     progress=_progress_line(out, i, shapes[i].name))
            _emit_result(out, workdir, i, result)
        except Exception as exc:  # every failure becomes an error line; bugs also get a traceback
            _emit_error(out, i, exc)


__all__ = ["ShapeInput", "ChildResult", "ChildDied", "ChildError", "convert_in_child", "main",
           "describe_exit", "child_path"]
