"""Whole folders of meshes to neural implicits: resumable, with sampling beside batched training.

``convert_dir(IN_DIR, OUT_DIR, settings)`` converts every mesh under IN_DIR (recursively; the formats
core.mesh_io reads) to ``OUT_DIR/<relative path>.h5`` (``chairs/a.obj`` -> ``chairs/a.obj.h5``, so
``a.obj`` and ``a.stl`` never collide), with the file format, settings and metadata of ``convert``.

Pipeline (engine "local"): worker processes load and sample meshes (CPU, libigl) ahead of the
trainers; each trainer (a thread of this process, on the CPU or the GPU) trains up to
``shapes_per_batch`` shapes at once (core.batch_train.BatchTrainer); workers then measure the
surface error, check the network against its source (core.verify; a closed mesh that fails is
converted again alone with the next seeds) and write each file under a temporary name, renamed when
complete (core.fileformat.save). Engine "ray" (core.dataset_ray) runs the same steps as Ray tasks
and actors.

Trust (one bad input never stops or silently spoils a run): every worker step has a time limit
(:func:`default_shape_timeout`), after which its process is killed and replaced and the shape is a
failed row; workers die with the run (no orphans); an existing output that does not load, or is not
ours, is converted again; one run at a time may write into an output folder (OUT_DIR/.convert-dir.lock);
everything written as JSON is strict JSON (non-finite numbers become null).

Resuming: ``OUT_DIR/manifest.jsonl`` holds one JSON row per input mesh (the latest row of a path wins;
the file is compacted to one row per path at the end of a run, also an interrupted one). A mesh is
skipped when its output loads, was made with the same settings (ignoring RUNTIME_SETTINGS) and from
the same content hash: files whose size and modification time match their ok row are taken as
unchanged without being read (as make and rsync do); any other file is loaded and its content hash
compared with the one stored in the output's metadata, so outputs written just before a crash, with
no manifest row, are recognised too. Failed meshes are tried again on every run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue as queue_module
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Optional

from . import jsonsafe
from .errors import FileFormatError, InputError
from .mesh_io import READ_EXTENSIONS
from .progress import CancelToken, ProgressCallback, check, report
from .settings import ConversionSettings
from .worker_pool import POLL_SECONDS, Task, WorkerPool, worker_environment

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
OUTPUT_SUFFIX = ".h5"
#: The lock file of an output folder: held (flock / msvcrt.locking) by the run writing into it.
LOCK_NAME = ".convert-dir.lock"
#: Settings that decide how a conversion runs, not what it produces: ignored when deciding to skip.
RUNTIME_SETTINGS = ("device", "threads")
#: Metadata key of a file whose shape failed its check and was converted again with later seeds:
#: the seed the run asked for (the file's settings hold the seed that passed).
REQUESTED_SEED_KEY = "requested_seed"
#: A mesh whose worker process dies this many times (out of memory, a crash in native code) is
#: recorded as failed; the other meshes that were in flight are simply tried again.
MAX_ATTEMPTS = 3
#: Default stack size: on a 2-core CPU 16 stacked 8x32 networks gain most of what stacking gives;
#: on a GPU use a few hundred (docs/datasets.md).
DEFAULT_SHAPES_PER_BATCH = 16
#: Columns of a manifest row, in order (docs/datasets.md).
ROW_KEYS = ("path", "status", "error", "output", "content_hash", "surface_error", "chamfer",
            "sign_agreement", "parameters", "seconds", "source_bytes", "source_mtime_ns", "warnings")

# Time limits of the worker steps (docs/datasets.md, "Time limits"). Measured on the development
# machine (2 cores, one thread, load average below 1): loading and sampling 1,000,000 pool points
# plus 100,000 training samples took 1.1-1.6 s on the largest test meshes (fandisk, 12,946 faces);
# single-thread training of an 8x32 network (7,553 parameters) on 100,000 samples for 3 epochs took
# 2.18 s, i.e. 9.6e-10 s per sample, epoch and parameter; core.verify.verify took 1.7 s.
#: Seconds of sampling per million points (pool + samples), single thread.
SAMPLING_SECONDS_PER_MILLION = 1.5
#: Seconds of single-thread training per sample, epoch and network parameter.
TRAINING_SECONDS_PER_SAMPLE_PARAMETER = 1e-9
#: Seconds of measuring and checking a network against its source.
CHECK_SECONDS = 2.0
#: The limit is this many times the estimated cost of one whole conversion: the longest worker step
#: (a retry after a failed check) runs up to two conversions, on a machine that may be busy.
TIMEOUT_MARGIN = 10.0
#: No step is stopped sooner than this (seconds): loading a large mesh, starting a process.
TIMEOUT_FLOOR = 300.0


# ----------------------------------------------------------------------------- inputs and rows
def find_meshes(in_dir: str, exclude: Optional[str] = None) -> list[str]:
    """Relative paths ('/'-separated, sorted) of every mesh file under ``in_dir``, recursively.

    A file is a mesh file by its extension (core.mesh_io.READ_EXTENSIONS, any case); ``exclude`` is a
    folder left out (the output folder, when it lies inside the input folder).
    """
    in_dir = os.path.abspath(in_dir)
    exclude = os.path.abspath(exclude) if exclude else None
    found = []
    for root, dirs, files in os.walk(in_dir):
        dirs[:] = sorted(d for d in dirs if os.path.join(root, d) != exclude)
        for name in files:
            if name.lower().endswith(READ_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(root, name), in_dir).replace(os.sep, "/"))
    return sorted(found)


def output_name(rel: str) -> str:
    """Relative output path of the input ``rel``."""
    return rel + OUTPUT_SUFFIX


def recipe(settings: dict) -> dict:
    """The settings that decide the result (all but RUNTIME_SETTINGS)."""
    return {k: v for k, v in settings.items() if k not in RUNTIME_SETTINGS}


def make_row(rel: str, status: str, *, error=None, output=None, content_hash=None,
             surface_error=None, chamfer=None, sign_agreement=None, parameters=None, seconds=None,
             stat=(None, None), warnings=()) -> dict:
    """One manifest row (ROW_KEYS); stat = (size in bytes, modification time in ns) of the input."""
    if error is not None:
        error = _one_line(error)
    values = (rel, status, error, output, content_hash, surface_error, chamfer, sign_agreement,
              parameters, seconds, stat[0], stat[1], [_one_line(w) for w in warnings])
    return jsonsafe.finite_or_none(dict(zip(ROW_KEYS, values)))


def _one_line(text) -> str:
    return " ".join(str(text).split())


def ok_row_from_metadata(rel: str, metadata: dict, parameters: int, stat) -> dict:
    """The row of an existing output, rebuilt from its file's metadata."""
    timings = metadata.get("timings")
    verification = metadata.get("verification")
    verification = verification if isinstance(verification, dict) else {}
    warnings = metadata.get("warnings")
    return make_row(rel, "ok", output=output_name(rel), content_hash=metadata.get("content_hash"),
                    surface_error=_number(metadata.get("surface_error")),
                    chamfer=_number(verification.get("chamfer")),
                    sign_agreement=_number(verification.get("sign_agreement")),
                    parameters=parameters,
                    seconds=_number(timings.get("total")) if isinstance(timings, dict) else None,
                    stat=stat,
                    warnings=[w for w in warnings if isinstance(w, str)]
                    if isinstance(warnings, list) else ())


def _number(x):
    """x when it is a real number (metadata of a file written elsewhere may hold anything)."""
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


class Manifest:
    """OUT_DIR/manifest.jsonl: rows appended as meshes finish (flushed at once), latest row per path
    wins, compacted to one row per path (sorted) by :meth:`compact`. Unreadable lines (a run killed
    in the middle of a write, foreign or corrupt text) are skipped with a warning."""

    def __init__(self, out_dir: str):
        self.path = os.path.join(out_dir, MANIFEST_NAME)
        self.rows: dict[str, dict] = read_manifest(out_dir)
        self._fh = None
        self.compact()          # also ends a line a killed run left half-written

    def record(self, row: dict) -> None:
        self.rows[row["path"]] = row
        self._fh.write(jsonsafe.dumps(row) + "\n")
        self._fh.flush()

    def compact(self) -> None:
        """Rewrite the file with one row per path (temporary name, then renamed)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        tmp = self.path + ".part"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                for rel in sorted(self.rows):
                    fh.write(jsonsafe.dumps(self.rows[rel]) + "\n")
            os.replace(tmp, self.path)
            self._fh = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            raise InputError(f"{self.path}: cannot write the manifest ({e.strerror or e}): is "
                             "something else in the way?") from None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_manifest(out_dir: str) -> dict[str, dict]:
    """The latest row of every path in OUT_DIR/manifest.jsonl (empty when there is none).

    A row must be a JSON object whose "path" is a string; anything else (half-written lines,
    foreign text, bytes that are not UTF-8) is skipped with a warning, never fatal.
    """
    path = os.path.join(out_dir, MANIFEST_NAME)
    rows = {}
    if not os.path.lexists(path):
        return rows
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    row = None
                if isinstance(row, dict) and isinstance(row.get("path"), str):
                    rows[row["path"]] = row
                else:
                    log.warning("%s:%d: unreadable manifest row skipped", path, lineno)
    except OSError as e:
        raise InputError(f"{path}: cannot read the manifest ({e.strerror or e}); move it away to "
                         "start a new one") from None
    return rows


# ----------------------------------------------------------------------------- the folder lock
class OutputLock:
    """Exclusive right to write into an output folder, for one run: OUT_DIR/.convert-dir.lock.

    Why: two runs on one folder would convert every shape twice and delete each other's in-flight
    ``.part`` files. The lock is an OS file lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on
    Windows), which the OS releases when the process ends in any way, so a crash leaves no stale
    lock; the file stays behind, holding the pid of the last run that took it (after a space, the
    byte Windows locks). Usable as a context manager.
    """

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.path = os.path.join(out_dir, LOCK_NAME)
        self._fd = None

    def acquire(self) -> "OutputLock":
        """Take the lock or raise InputError naming the folder and the pid holding it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        except OSError as e:
            raise InputError(f"{self.path}: cannot create the lock file ({e.strerror or e})") from None
        try:
            if not _try_lock(fd, self.path):
                holder = _read_pid(fd)
                raise InputError(f"{self.out_dir}: another convert-dir run "
                                 f"{f'(pid {holder}) ' if holder else ''}is writing into this "
                                 "folder; wait for it to end, or use another output folder")
            os.lseek(fd, 0, os.SEEK_SET)       # fixed width: no truncation under a Windows lock
            os.write(fd, f" {os.getpid():<20}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)          # closing releases the lock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _try_lock(fd: int, path: str) -> bool:
    """True when this process now holds the lock on ``fd``; False when another one holds it."""
    if sys.platform == "win32":
        import msvcrt
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import errno
    import fcntl
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        # a file system without locks (some network mounts): run unprotected rather than never
        log.warning("%s: the file system cannot lock files (%s); make sure no other run writes "
                    "into this folder", path, e.strerror)
    return True


def _read_pid(fd: int) -> Optional[int]:
    """The pid written into the lock file by its holder, if it can be read."""
    try:
        os.lseek(fd, 1, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


# ----------------------------------------------------------------------------- planning
@dataclass
class Job:
    """One mesh to (maybe) convert. skip_if_hash: content hash of a valid existing output made with
    these settings; the worker skips the mesh when the file's hash equals it. notes: what this run
    did about the shape's old output (a file that did not load, replaced), for the row's warnings."""

    rel: str
    path: str
    stat: tuple
    skip_if_hash: Optional[str] = None
    attempts: int = 0
    notes: list = field(default_factory=list)


def _stat(path):
    try:
        st = os.stat(path)
    except OSError:            # e.g. a broken link: the worker reports it as a failed row
        return (None, None)
    return (int(st.st_size), int(st.st_mtime_ns))


@dataclass
class ExistingOutput:
    """What lies at a shape's output path.

    current : (metadata, parameters) of a loadable output made with the same recipe, else None;
    note : why a file found there is converted again and replaced (it does not load, is foreign);
    blocked : why no output can be written there at all (a folder in the way): a failed row.
    """

    current: Optional[tuple] = None
    note: Optional[str] = None
    blocked: Optional[str] = None


def inspect_output(out_dir: str, rel: str, settings: ConversionSettings) -> ExistingOutput:
    """Look at the output of ``rel``: current, to be replaced (with a note), or blocked. Never raises
    for what a file contains: a corrupt or foreign output is converted again, not fatal."""
    from .fileformat import load
    name = output_name(rel)
    out = os.path.join(out_dir, name)
    blocked = _blocker(out_dir, rel)
    if blocked:
        return ExistingOutput(blocked=blocked)
    if not os.path.lexists(out):
        return ExistingOutput()
    if not os.path.isfile(out):
        return ExistingOutput(note=f"replaced {name}, which was not a regular file")
    try:
        imp = load(out)
    except FileFormatError as e:
        return ExistingOutput(note=f"replaced {name}, which did not load "
                                   f"({str(e).replace(out + ': ', '')})")
    except Exception as e:  # noqa: BLE001 - h5py on a damaged file may raise nearly anything
        return ExistingOutput(note=f"replaced {name}, which did not load ({type(e).__name__}: {e})")
    meta = imp.metadata
    if not (isinstance(meta, dict) and isinstance(meta.get("settings"), dict)
            and isinstance(meta.get("content_hash"), str)):
        return ExistingOutput(note=f"replaced {name}, which was not written by a conversion (no "
                                   "settings or content hash in its metadata)")
    if _file_recipe(meta) != recipe(settings.to_dict()):
        return ExistingOutput()                    # other settings: converted again, as asked
    return ExistingOutput(current=(meta, imp.parameters))


def _file_recipe(meta: dict) -> dict:
    """The recipe a file answers: its settings, with the seed the run asked for when the shape was
    converted again with later seeds after a failed check (REQUESTED_SEED_KEY)."""
    settings = dict(meta["settings"])
    if REQUESTED_SEED_KEY in meta:
        settings["seed"] = meta[REQUESTED_SEED_KEY]
    return recipe(settings)


def _blocker(out_dir: str, rel: str) -> Optional[str]:
    """Why the output of ``rel`` cannot be written (None when it can): a folder where the file or its
    temporary name must go, or a file where a folder of its path must go."""
    parts = output_name(rel).split("/")
    here = out_dir
    for part in parts[:-1]:
        here = os.path.join(here, part)
        if os.path.lexists(here) and not os.path.isdir(here):
            return f"{rel}: cannot write the output: {here} is a file where a folder must be; move it away"
    out = os.path.join(here, parts[-1])
    for p in (out, out + ".part"):
        if os.path.isdir(p):
            return f"{rel}: cannot write the output: a folder is in the way ({p}); move it away"
    return None


def _remove_stale_part(path: str) -> None:
    """Remove a temporary file a killed run left (only the run holding the folder lock does this)."""
    if os.path.lexists(path) and not os.path.isdir(path):
        try:
            os.remove(path)
        except OSError as e:       # the write will fail and say so in the shape's row
            log.warning("%s: cannot remove a stale temporary file (%s)", path, e.strerror)


def plan(in_dir: str, out_dir: str, settings: ConversionSettings, manifest: Manifest):
    """Split the meshes under in_dir into jobs, rows of outputs already done (skipped) and rows of
    outputs that cannot be written (failed). Call it holding the folder lock: it removes the
    ``.part`` files of killed runs."""
    jobs, skipped, failed = [], [], []
    for rel in find_meshes(in_dir, exclude=out_dir):
        path = os.path.join(in_dir, rel)
        stat = _stat(path)
        out = os.path.join(out_dir, output_name(rel))
        existing = inspect_output(out_dir, rel, settings)
        if existing.blocked:
            failed.append(make_row(rel, "failed", error=existing.blocked, stat=stat))
            continue
        _remove_stale_part(out + ".part")         # left by a killed run: never a final name
        if existing.current is None:
            jobs.append(Job(rel, path, stat, notes=[existing.note] if existing.note else []))
            continue
        meta, parameters = existing.current
        row = manifest.rows.get(rel)
        if (row and row.get("status") == "ok" and row.get("content_hash") == meta.get("content_hash")
                and (row.get("source_bytes"), row.get("source_mtime_ns")) == stat):
            skipped.append(ok_row_from_metadata(rel, meta, parameters, stat))
        else:
            jobs.append(Job(rel, path, stat, skip_if_hash=meta.get("content_hash")))
    return jobs, skipped, failed


# ----------------------------------------------------------------------------- worker steps
@dataclass
class Outcome:
    """What a sampling task found: status 'ready' (prepared holds the samples), 'skipped' (output is
    current) or 'failed' (error holds the one-line message)."""

    rel: str
    status: str
    prepared: object = None
    error: Optional[str] = None
    content_hash: Optional[str] = None


def _no_stage(name: str) -> None:
    """Stage reporter of steps run in-process (Ray tasks): nobody watches the stage there."""


def _load(rel: str, source):
    """Load a mesh from a path or from the file's bytes; messages name ``rel``, not the location."""
    from .mesh import load_mesh
    if isinstance(source, (bytes, bytearray)):
        with tempfile.TemporaryDirectory(prefix="neural-implicit-") as tmp:
            where = os.path.join(tmp, os.path.basename(rel))
            with open(where, "wb") as fh:
                fh.write(source)
            return _load_named(load_mesh, where, rel)
    return _load_named(load_mesh, source, rel)


def _load_named(load_mesh, where, rel):
    try:
        return load_mesh(where)
    except InputError as e:
        raise InputError(str(e).replace(where, rel)) from None


def prepare_job(rel: str, source, settings_dict: dict, skip_if_hash: Optional[str],
                stage=_no_stage) -> Outcome:
    """Worker step 1: load, validate, compare the content hash, sample (core.batch_steps.prepare_shape).

    source : the file's path or its bytes; stage : called with "loading", then "sampling" (the worker
    pool names the stage a shape timed out in). Bad input gives a 'failed' Outcome, never an exception.
    """
    from .batch_steps import prepare_shape
    try:
        settings = ConversionSettings.from_dict(settings_dict)
        stage("loading")
        mesh = _load(rel, source)
        if skip_if_hash is not None and mesh.content_hash == skip_if_hash:
            return Outcome(rel, "skipped", content_hash=skip_if_hash)
        stage("sampling")
        return Outcome(rel, "ready", prepare_shape(mesh, settings), content_hash=mesh.content_hash)
    except InputError as e:
        return Outcome(rel, "failed", error=str(e))
    except Exception as e:  # a bug or a crash in native code on one odd file: record it, go on
        log.exception("converting %s", rel)
        return Outcome(rel, "failed", error=f"internal error: {type(e).__name__}: {e}")


def finish_job(rel: str, prepared, trained, settings_dict: dict, stat, out_dir: Optional[str],
               notes=(), stage=_no_stage):
    """Worker step 3: surface error and metadata (core.batch_steps.finish_shape), the check against
    the source (core.batch_steps.check_shape: a closed mesh that fails is converted again alone),
    then the file.

    With ``out_dir`` the file is written there (temporary name, then renamed) and (row, None) is
    returned; without, (row, file bytes) for the caller to write (Ray: the driver owns OUT_DIR). A
    shape that fails its check again gives a 'failed' row and no file. notes : warnings of this run
    about the shape (a replaced output), put in the row. stage : as in :func:`prepare_job`.
    """
    from .batch_steps import check_shape, finish_shape
    from .convert import ConversionFailed
    from .fileformat import save
    settings = ConversionSettings.from_dict(settings_dict)
    mesh = prepared.mesh
    stage("measuring")
    first = finish_shape(prepared, trained, settings)
    stage("checking")
    try:
        checked = check_shape(first, mesh, settings, stage)
    except ConversionFailed as e:
        message = str(e)
        message = message[len(mesh.name) + 2:] if message.startswith(mesh.name + ": ") else message
        return make_row(rel, "failed", error=f"{rel}: {message}", content_hash=mesh.content_hash,
                        stat=stat, warnings=notes), None
    result, v = checked.result, checked.verification
    meta = result.implicit.metadata
    if checked.retried:
        meta[REQUESTED_SEED_KEY] = settings.seed
    meta["warnings"] = list(checked.warnings)
    result.implicit.metadata = jsonsafe.finite_or_none(meta)
    seconds = result.seconds_total + (first.seconds_total if checked.retried else 0.0)
    row = make_row(rel, "ok", output=output_name(rel), content_hash=mesh.content_hash,
                   surface_error=result.surface_error, chamfer=v.chamfer,
                   sign_agreement=v.sign_agreement, parameters=result.implicit.parameters,
                   seconds=seconds, stat=stat, warnings=[*notes, *checked.warnings])
    stage("writing")
    if out_dir is not None:
        out = os.path.join(out_dir, output_name(rel))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        save(result.implicit, out)
        return row, None
    with tempfile.TemporaryDirectory(prefix="neural-implicit-") as tmp:
        where = os.path.join(tmp, "out.h5")
        save(result.implicit, where)
        with open(where, "rb") as fh:
            return row, fh.read()


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary name, renamed when complete (as fileformat.save)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".part"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp) and not os.path.isdir(tmp):
            os.remove(tmp)
        raise


def read_input(path: str, rel: str) -> bytes:
    """The bytes of an input mesh for the Ray driver, which reads every input itself: only a regular
    file, without blocking, bounded (core.readfile); InputError names ``rel``."""
    from .mesh_io import MAX_MESH_FILE_BYTES
    from .readfile import read_regular_file
    return read_regular_file(path, rel, MAX_MESH_FILE_BYTES)


# ----------------------------------------------------------------------------- time limits
def default_shape_timeout(settings: ConversionSettings) -> float:
    """Seconds a worker step (load and sample; measure, check, maybe retry and write) may run before
    it counts as hung: TIMEOUT_MARGIN times the estimated single-thread cost of one whole conversion
    at these settings, at least TIMEOUT_FLOOR (constants above, with their measurements)."""
    sampling = SAMPLING_SECONDS_PER_MILLION * (settings.pool + settings.samples) / 1e6
    training = (TRAINING_SECONDS_PER_SAMPLE_PARAMETER * settings.samples * settings.epochs
                * settings.architecture.parameters)
    return max(TIMEOUT_FLOOR, TIMEOUT_MARGIN * (sampling + training + CHECK_SECONDS))


def _validate_timeout(shape_timeout) -> Optional[float]:
    if shape_timeout is None:
        return None
    if isinstance(shape_timeout, bool) or not isinstance(shape_timeout, (int, float)) \
            or not math.isfinite(shape_timeout) or shape_timeout <= 0:
        raise InputError(f"--shape-timeout must be a positive number of seconds, got {shape_timeout!r}")
    return float(shape_timeout)


# ----------------------------------------------------------------------------- the run
@dataclass
class DatasetSummary:
    """What a convert_dir run did. seconds: wall time of the run; shapes_per_hour: converted shapes
    (not skipped) per hour of that time."""

    total: int
    converted: int
    skipped: int
    failed: int
    seconds: float
    shapes_per_hour: float
    engine: str
    output_dir: str
    manifest: str

    def to_dict(self) -> dict:
        return jsonsafe.finite_or_none(asdict(self))


class Run:
    """Bookkeeping shared by the engines: manifest rows, counts and progress reports."""

    def __init__(self, in_dir, out_dir, settings, shapes_per_batch, workers, trainers, manifest,
                 total, progress, cancel, shape_timeout):
        self.in_dir, self.out_dir, self.settings = in_dir, out_dir, settings
        self.settings_dict = settings.to_dict()
        self.shapes_per_batch, self.workers, self.trainers = shapes_per_batch, workers, trainers
        self.manifest, self.total = manifest, total
        self.progress, self.cancel = progress, cancel
        self.shape_timeout = shape_timeout
        self.counts = {"converted": 0, "skipped": 0, "failed": 0}
        self.t0 = time.perf_counter()
        self.jobs_total = 0

    def record(self, row: dict, kind: str) -> None:
        self.manifest.record(row)
        self.counts[kind] += 1
        self.report()

    def finished(self, row: dict) -> None:
        """Record the row a finishing step returned: converted, or failed (its check failed again)."""
        self.record(row, "converted" if row["status"] == "ok" else "failed")

    def failed(self, job: Job, message: str) -> None:
        self.record(make_row(job.rel, "failed", error=message, stat=job.stat, warnings=job.notes),
                    "failed")

    def timed_out(self, job: Job, stage: str) -> None:
        log.warning("%s: timed out after %g s in %s; its worker process was killed", job.rel,
                    self.shape_timeout, stage)
        self.failed(job, f"{job.rel}: timed out after {self.shape_timeout:g} s in {stage} "
                         "(--shape-timeout)")

    def skipped_after_load(self, job: Job) -> bool:
        """The worker found the input unchanged: rebuild the row from the existing output. False
        (and the job must run again, without skipping) when the output is gone meanwhile."""
        existing = inspect_output(self.out_dir, job.rel, self.settings)
        if existing.current is None:
            job.skip_if_hash = None
            return False
        self.record(ok_row_from_metadata(job.rel, *existing.current, job.stat), "skipped")
        return True

    def check(self) -> None:
        check(self.cancel)

    def report(self) -> None:
        c = self.counts
        done = sum(c.values())
        elapsed = time.perf_counter() - self.t0
        rate = c["converted"] / elapsed * 3600 if elapsed > 0 else 0.0
        processed = c["converted"] + c["failed"]     # jobs of this run finished (skips are instant)
        left = self.total - done
        eta = elapsed / processed * left if processed else None
        report(self.progress, stage="converting", fraction=done / self.total if self.total else 1.0,
               elapsed=elapsed, eta=eta,
               message=f"{done}/{self.total} meshes, {rate:.0f} shapes/h, {c['failed']} failed")

    def summary(self, engine: str) -> DatasetSummary:
        seconds = time.perf_counter() - self.t0
        c = self.counts
        return DatasetSummary(self.total, c["converted"], c["skipped"], c["failed"], seconds,
                              c["converted"] / seconds * 3600 if seconds > 0 else 0.0, engine,
                              self.out_dir, self.manifest.path)


def convert_dir(in_dir: str, out_dir: str, settings: ConversionSettings | None = None, *,
                shapes_per_batch: int = DEFAULT_SHAPES_PER_BATCH, workers: Optional[int] = None,
                trainers: Optional[int] = None, engine: str = "local",
                ray_address: Optional[str] = None, shape_timeout: Optional[float] = None,
                progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelToken] = None) -> DatasetSummary:
    """Convert every mesh under ``in_dir`` into ``out_dir`` (module docstring), resuming earlier runs.

    workers : sampling processes (local engine; default: CPU cores - 1, at least 1) or sampling
    tasks kept ahead of the trainers (Ray; default: the cluster's CPUs left by the trainers).
    trainers : batched trainers, each a stack of up to ``shapes_per_batch`` shapes: threads here
    (default: one per CPU core on a CPU, one on a GPU) or Ray actors (default: one per GPU of the
    cluster, else half its CPUs).
    engine : "local" or "ray"; ray_address : what ray.init accepts ("auto", "ray://host:port"), or
    None to start a local Ray instance (a Ray instance already started in this process is used as is).
    shape_timeout : seconds each worker step of a shape may take (default
    :func:`default_shape_timeout`); a step over it is killed and the shape is a failed row.
    Progress: stage "converting", fraction = meshes done / total, message with rate and failures.
    Raises InputError (bad folders or arguments, Ray missing, another run writing into ``out_dir``),
    Cancelled and KeyboardInterrupt (the manifest is compacted first; finished outputs stay, nothing
    half-written has a final name).
    """
    settings = (settings or ConversionSettings()).validate()
    if not os.path.isdir(in_dir):
        raise InputError(f"{in_dir}: not a folder")
    if shapes_per_batch < 1:
        raise InputError(f"--shapes-per-batch must be at least 1, got {shapes_per_batch}")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if trainers is not None and trainers < 1:
        raise InputError(f"--trainers must be at least 1, got {trainers}")
    if engine not in ("local", "ray"):
        raise InputError(f"engine must be local or ray, got {engine!r}")
    shape_timeout = _validate_timeout(shape_timeout) or default_shape_timeout(settings)
    if engine == "ray":
        from .dataset_ray import import_ray
        import_ray()                       # fail before any work when Ray is missing
    in_dir, out_dir = os.path.abspath(in_dir), os.path.abspath(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out_dir}: cannot create the output folder ({e.strerror})") from None
    with OutputLock(out_dir):
        manifest = Manifest(out_dir)
        try:
            jobs, skipped, blocked = plan(in_dir, out_dir, settings, manifest)
            run = Run(in_dir, out_dir, settings, shapes_per_batch, workers, trainers, manifest,
                      len(jobs) + len(skipped) + len(blocked), progress, cancel, shape_timeout)
            for row in skipped:
                run.record(row, "skipped")
            for row in blocked:
                run.record(row, "failed")
            run.report()
            if jobs:
                if engine == "ray":
                    from .dataset_ray import run_ray
                    run_ray(jobs, run, ray_address)
                else:
                    run_local(jobs, run)
            return run.summary(engine)
        finally:
            manifest.compact()
            manifest.close()


# ----------------------------------------------------------------------------- the local engine
def _train_loop(index, settings, capacity, device, inbox, events, stop) -> None:
    """A trainer thread: shapes arrive on ``inbox`` as (key, points, sdf) between epochs (None ends
    the thread); finished shapes leave as ("trained", index, TrainedShape) events; any exception
    (Cancelled included) as ("error", index, exception)."""
    from .batch_train import BatchTrainer, train_config
    try:
        trainer = BatchTrainer(settings.architecture, train_config(settings), capacity, device)
        while True:
            items = [inbox.get()] if trainer.active == 0 else []
            while True:
                try:
                    items.append(inbox.get_nowait())
                except queue_module.Empty:
                    break
            for item in items:
                if item is None:
                    return
                trainer.add(item[0], item[1], item[2], settings.seed)
            for trained in trainer.train_epoch(stop):
                events.put(("trained", index, trained))
    except BaseException as e:  # handed to the coordinating thread, which raises it
        events.put(("error", index, e))


def run_local(jobs: list[Job], run: Run) -> None:
    """The local engine: sampling and finishing in worker processes (WorkerPool, with the run's
    time limit per step); ``trainers`` batched trainers in threads of this process (torch releases
    the GIL inside its operations, so one thread per core keeps the cores busy on a CPU); this
    thread hands work around and records rows."""
    import multiprocessing

    import torch

    from .train import pick_device

    settings = run.settings
    cores = os.cpu_count() or 1
    device = pick_device(settings.device)
    workers = run.workers or max(1, cores - 1)
    trainers = run.trainers or (cores if device.type == "cpu" else 1)
    torch.set_num_threads(settings.threads or 1)    # threads of each trainer's operations
    K = run.shapes_per_batch
    events = queue_module.Queue()
    pool = WorkerPool(workers, multiprocessing.get_context("spawn"), events, run.shape_timeout)

    jobs_left = deque(jobs)
    ready = deque()    # (job, PreparedShape)
    held = [{} for _ in range(trainers)]   # per trainer: job.rel -> (job, PreparedShape w/o samples)

    def prepare(job):
        pool.submit(Task("prepare", prepare_job, (job.rel, job.path, run.settings_dict,
                                                  job.skip_if_hash), job))

    def finish(job, prepared, trained):
        pool.submit(Task("finish", finish_job, (job.rel, prepared, trained, run.settings_dict,
                                                job.stat, run.out_dir, list(job.notes)), job))

    def died(task, exitcode):
        """A worker died under this task: run it again (the trained weights, if any, are in its
        arguments) unless this mesh has killed MAX_ATTEMPTS workers."""
        job = task.job
        log.warning("a worker process died (out of memory or killed? exit code %s) on %s: starting "
                    "a new one, the mesh is tried again", exitcode, job.rel)
        job.attempts += 1
        if job.attempts >= MAX_ATTEMPTS:
            run.failed(job, f"{job.rel}: a worker process died {job.attempts} times on this mesh "
                            "(out of memory, or a crash in native code)")
        else:
            pool.submit(task)

    def settle(status, task, value):
        job = task.job
        if status == "died":
            died(task, value)
        elif status == "error":      # finish_job raised: e.g. the output folder became unwritable
            run.failed(job, f"{job.rel}: cannot {task.kind} ({value})")
        elif task.kind == "finish":
            run.finished(value[0])
        elif value.status == "failed":
            run.failed(job, value.error)
        elif value.status == "skipped":
            if not run.skipped_after_load(job):
                jobs_left.appendleft(job)
        else:
            ready.append((job, value.prepared))

    def handle(event):
        kind = event[0]
        if kind == "worker":
            result = pool.receive(event)
            if result is not None:
                settle(*result)
        elif kind == "trained":
            _, i, trained = event
            job, prepared = held[i].pop(trained.key)
            finish(job, prepared, trained)
        elif kind == "error":
            raise event[2]

    stop = CancelToken()
    inboxes = [queue_module.Queue() for _ in range(trainers)]
    threads = [threading.Thread(target=_train_loop, name=f"neural-implicit-trainer-{i}", daemon=True,
                                args=(i, settings, K, device, inboxes[i], events, stop))
               for i in range(trainers)]
    with worker_environment():
        try:
            for t in threads:
                t.start()
            while jobs_left or ready or any(held) or pool.busy("prepare") or pool.busy("finish"):
                run.check()
                free = sum(K - len(h) for h in held)
                while jobs_left and pool.busy("prepare") + len(ready) < free + workers:
                    prepare(jobs_left.popleft())
                while ready:
                    i = min(range(trainers), key=lambda j: len(held[j]))
                    if len(held[i]) >= K:
                        break
                    job, prepared = ready.popleft()
                    inboxes[i].put((job.rel, prepared.data.points, prepared.data.sdf))
                    held[i][job.rel] = (job, prepared.without_data())
                try:
                    handle(events.get(timeout=POLL_SECONDS))
                    while True:
                        handle(events.get_nowait())
                except queue_module.Empty:
                    pass
                for task in pool.expired():
                    run.timed_out(task.job, task.stage)
        finally:
            stop.cancel()
            for inbox in inboxes:
                inbox.put(None)
            for t in threads:
                t.join(timeout=5.0)
            pool.close()
