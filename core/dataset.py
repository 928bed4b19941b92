"""Whole folders of meshes to neural implicits: resumable, with sampling beside batched training.

``convert_dir(IN_DIR, OUT_DIR, settings)`` converts every mesh under IN_DIR (recursively; the formats
core.mesh_io reads) to ``OUT_DIR/<relative path>.h5`` (``chairs/a.obj`` -> ``chairs/a.obj.h5``, so
``a.obj`` and ``a.stl`` never collide), with the file format, settings and metadata of ``convert``.

Pipeline (engine "local"): worker processes load and sample meshes (CPU, libigl) ahead of the
trainers; each trainer (a thread of this process, on the CPU or the GPU) trains up to
``shapes_per_batch`` shapes at once (core.batch_train.BatchTrainer); workers then measure the
surface error and write each file under a temporary name, renamed when complete
(core.fileformat.save). Engine "ray" (core.dataset_ray) runs the same steps as Ray tasks and actors.

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
import os
import queue as queue_module
import tempfile
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Optional

from .errors import FileFormatError, InputError
from .mesh_io import READ_EXTENSIONS
from .progress import CancelToken, ProgressCallback, check, report
from .settings import ConversionSettings

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
OUTPUT_SUFFIX = ".h5"
#: Settings that decide how a conversion runs, not what it produces: ignored when deciding to skip.
RUNTIME_SETTINGS = ("device", "threads")
#: A mesh whose worker process dies this many times (out of memory, a crash in native code) is
#: recorded as failed; the other meshes that were in flight are simply tried again.
MAX_ATTEMPTS = 3
#: Default stack size: on a 2-core CPU 16 stacked 8x32 networks gain most of what stacking gives;
#: on a GPU use a few hundred (docs/datasets.md).
DEFAULT_SHAPES_PER_BATCH = 16
#: Environment for worker processes: one thread each, so workers and the trainer do not oversubscribe
#: the cores (spinning OpenMP/BLAS threads on a busy machine slow everything down many times).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "IGL_NUM_THREADS": "1"}
#: Seconds between checks of the cancel token while the coordinating thread waits.
POLL_SECONDS = 0.5
#: Columns of a manifest row, in order (docs/datasets.md).
ROW_KEYS = ("path", "status", "error", "output", "content_hash", "surface_error", "parameters",
            "seconds", "source_bytes", "source_mtime_ns")


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
             surface_error=None, parameters=None, seconds=None, stat=(None, None)) -> dict:
    """One manifest row (ROW_KEYS); stat = (size in bytes, modification time in ns) of the input."""
    if error is not None:
        error = " ".join(str(error).split())            # one line
    return dict(zip(ROW_KEYS, (rel, status, error, output, content_hash, surface_error, parameters,
                               seconds, stat[0], stat[1])))


def ok_row_from_metadata(rel: str, metadata: dict, parameters: int, stat) -> dict:
    """The row of an existing output, rebuilt from its file's metadata."""
    return make_row(rel, "ok", output=output_name(rel), content_hash=metadata.get("content_hash"),
                    surface_error=metadata.get("surface_error"), parameters=parameters,
                    seconds=metadata.get("timings", {}).get("total"), stat=stat)


class Manifest:
    """OUT_DIR/manifest.jsonl: rows appended as meshes finish (flushed at once), latest row per path
    wins, compacted to one row per path (sorted) by :meth:`compact`. Unreadable lines (a run killed
    in the middle of a write) are skipped with a warning."""

    def __init__(self, out_dir: str):
        self.path = os.path.join(out_dir, MANIFEST_NAME)
        self.rows: dict[str, dict] = read_manifest(out_dir)
        self._fh = None
        self.compact()          # also ends a line a killed run left half-written

    def record(self, row: dict) -> None:
        self.rows[row["path"]] = row
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()

    def compact(self) -> None:
        """Rewrite the file with one row per path (temporary name, then renamed)."""
        if self._fh is not None:
            self._fh.close()
        tmp = self.path + ".part"
        with open(tmp, "w", encoding="utf-8") as fh:
            for rel in sorted(self.rows):
                fh.write(json.dumps(self.rows[rel]) + "\n")
        os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        self._fh.close()


def read_manifest(out_dir: str) -> dict[str, dict]:
    """The latest row of every path in OUT_DIR/manifest.jsonl (empty when there is none)."""
    path = os.path.join(out_dir, MANIFEST_NAME)
    rows = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    rows[row["path"]] = row
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s:%d: unreadable manifest row skipped", path, lineno)
    return rows


# ----------------------------------------------------------------------------- planning
@dataclass
class Job:
    """One mesh to (maybe) convert. skip_if_hash: content hash of a valid existing output made with
    these settings; the worker skips the mesh when the file's hash equals it."""

    rel: str
    path: str
    stat: tuple
    skip_if_hash: Optional[str] = None
    attempts: int = 0


def _stat(path):
    try:
        st = os.stat(path)
    except OSError:            # e.g. a broken link: the worker reports it as a failed row
        return (None, None)
    return (int(st.st_size), int(st.st_mtime_ns))


def _existing_output(out_path: str, settings: ConversionSettings):
    """(metadata, parameters) of a loadable output made with the same recipe, else None."""
    from .fileformat import load
    if not os.path.isfile(out_path):
        return None
    try:
        imp = load(out_path)
    except FileFormatError:
        return None
    meta = imp.metadata
    if recipe(meta.get("settings", {})) != recipe(settings.to_dict()):
        return None
    return meta, imp.parameters


def plan(in_dir: str, out_dir: str, settings: ConversionSettings, manifest: Manifest):
    """Split the meshes under in_dir into jobs and rows of outputs already done (skipped)."""
    jobs, skipped = [], []
    for rel in find_meshes(in_dir, exclude=out_dir):
        path = os.path.join(in_dir, rel)
        stat = _stat(path)
        out = os.path.join(out_dir, output_name(rel))
        if os.path.exists(out + ".part"):           # left by a killed run: never a final name
            os.remove(out + ".part")
        existing = _existing_output(out, settings)
        if existing is None:
            jobs.append(Job(rel, path, stat))
            continue
        meta, parameters = existing
        row = manifest.rows.get(rel)
        if (row and row.get("status") == "ok" and row.get("content_hash") == meta.get("content_hash")
                and (row.get("source_bytes"), row.get("source_mtime_ns")) == stat):
            skipped.append(ok_row_from_metadata(rel, meta, parameters, stat))
        else:
            jobs.append(Job(rel, path, stat, skip_if_hash=meta.get("content_hash")))
    return jobs, skipped


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


def prepare_job(rel: str, source, settings_dict: dict, skip_if_hash: Optional[str]) -> Outcome:
    """Worker step 1: load, validate, compare the content hash, sample (core.batch_steps.prepare_shape).

    source : the file's path or its bytes. Bad input gives a 'failed' Outcome, never an exception.
    """
    from .batch_steps import prepare_shape
    try:
        settings = ConversionSettings.from_dict(settings_dict)
        mesh = _load(rel, source)
        if skip_if_hash is not None and mesh.content_hash == skip_if_hash:
            return Outcome(rel, "skipped", content_hash=skip_if_hash)
        return Outcome(rel, "ready", prepare_shape(mesh, settings), content_hash=mesh.content_hash)
    except InputError as e:
        return Outcome(rel, "failed", error=str(e))
    except Exception as e:  # a bug or a crash in native code on one odd file: record it, go on
        log.exception("converting %s", rel)
        return Outcome(rel, "failed", error=f"internal error: {type(e).__name__}: {e}")


def finish_job(rel: str, prepared, trained, settings_dict: dict, stat, out_dir: Optional[str]):
    """Worker step 3: surface error and metadata (core.batch_steps.finish_shape), then the file.

    With ``out_dir`` the file is written there (temporary name, then renamed) and (row, None) is
    returned; without, (row, file bytes) for the caller to write (Ray: the driver owns OUT_DIR).
    """
    from .batch_steps import finish_shape
    from .fileformat import save
    settings = ConversionSettings.from_dict(settings_dict)
    result = finish_shape(prepared, trained, settings)
    row = make_row(rel, "ok", output=output_name(rel), content_hash=prepared.mesh.content_hash,
                   surface_error=result.surface_error, parameters=result.implicit.parameters,
                   seconds=result.seconds_total, stat=stat)
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
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
        return asdict(self)


class Run:
    """Bookkeeping shared by the engines: manifest rows, counts and progress reports."""

    def __init__(self, in_dir, out_dir, settings, shapes_per_batch, workers, trainers, manifest,
                 total, progress, cancel):
        self.in_dir, self.out_dir, self.settings = in_dir, out_dir, settings
        self.settings_dict = settings.to_dict()
        self.shapes_per_batch, self.workers, self.trainers = shapes_per_batch, workers, trainers
        self.manifest, self.total = manifest, total
        self.progress, self.cancel = progress, cancel
        self.counts = {"converted": 0, "skipped": 0, "failed": 0}
        self.t0 = time.perf_counter()
        self.jobs_total = 0

    def record(self, row: dict, kind: str) -> None:
        self.manifest.record(row)
        self.counts[kind] += 1
        self.report()

    def failed(self, job: Job, message: str) -> None:
        self.record(make_row(job.rel, "failed", error=message, stat=job.stat), "failed")

    def skipped_after_load(self, job: Job) -> bool:
        """The worker found the input unchanged: rebuild the row from the existing output. False
        (and the job must run again, without skipping) when the output is gone meanwhile."""
        existing = _existing_output(os.path.join(self.out_dir, output_name(job.rel)), self.settings)
        if existing is None:
            job.skip_if_hash = None
            return False
        self.record(ok_row_from_metadata(job.rel, existing[0], existing[1], job.stat), "skipped")
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
                ray_address: Optional[str] = None,
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
    Progress: stage "converting", fraction = meshes done / total, message with rate and failures.
    Raises InputError (bad folders or arguments, Ray missing), Cancelled and KeyboardInterrupt (the
    manifest is compacted first; finished outputs stay, nothing half-written has a final name).
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
    if engine == "ray":
        from .dataset_ray import import_ray
        import_ray()                       # fail before any work when Ray is missing
    in_dir, out_dir = os.path.abspath(in_dir), os.path.abspath(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out_dir}: cannot create the output folder ({e.strerror})") from None
    manifest = Manifest(out_dir)
    try:
        jobs, skipped = plan(in_dir, out_dir, settings, manifest)
        run = Run(in_dir, out_dir, settings, shapes_per_batch, workers, trainers, manifest,
                  len(jobs) + len(skipped), progress, cancel)
        for row in skipped:
            run.record(row, "skipped")
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


@contextmanager
def worker_environment():
    """WORKER_ENV set in os.environ while worker processes start (they inherit it); restored after."""
    saved = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _worker_init() -> None:
    """Ctrl-C reaches the workers too (one process group): they leave at once and quietly, and the
    trainer's process reports the interruption. A file being written keeps its temporary name."""
    import signal
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


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
    """The local engine: sampling and finishing in a process pool; ``trainers`` batched trainers
    in threads of this process (torch releases the GIL inside its operations, so one thread per
    core keeps the cores busy on a CPU); this thread hands work around and records rows."""
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    import torch

    from .progress import CancelToken
    from .train import pick_device

    settings = run.settings
    cores = os.cpu_count() or 1
    device = pick_device(settings.device)
    workers = run.workers or max(1, cores - 1)
    trainers = run.trainers or (cores if device.type == "cpu" else 1)
    torch.set_num_threads(settings.threads or 1)    # threads of each trainer's operations
    K = run.shapes_per_batch
    ctx = multiprocessing.get_context("spawn")
    pool = {"executor": None, "generation": 0}
    events = queue_module.Queue()

    def executor():
        if pool["executor"] is None:
            pool["executor"] = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                                   initializer=_worker_init)
            pool["generation"] += 1
        return pool["executor"]

    def submit(kind, fn, *args):
        for _ in range(2):
            try:
                fut = executor().submit(fn, *args)
                break
            except BrokenProcessPool:         # a worker died while the pool was idle
                log.warning("a worker process died (out of memory or killed?): starting new "
                            "workers")
                pool["executor"].shutdown(wait=False, cancel_futures=True)
                pool["executor"] = None
        else:
            raise RuntimeError("cannot start worker processes")
        fut.add_done_callback(lambda f: events.put((kind, f)))
        return fut, pool["generation"]

    jobs_left = deque(jobs)
    preparing = {}     # future -> (job, generation)
    ready = deque()    # (job, PreparedShape)
    held = [{} for _ in range(trainers)]   # per trainer: job.rel -> (job, PreparedShape w/o samples)
    finishing = {}     # future -> (job, prepared, trained, generation)

    def died(job, generation):
        """A worker died under this job's task: restart the pool once per death, count the attempt."""
        if generation == pool["generation"] and pool["executor"] is not None:
            log.warning("a worker process died (out of memory or killed?): starting new workers, "
                        "the meshes in flight are tried again")
            pool["executor"].shutdown(wait=False, cancel_futures=True)
            pool["executor"] = None
        job.attempts += 1
        if job.attempts >= MAX_ATTEMPTS:
            run.failed(job, f"{job.rel}: a worker process died {job.attempts} times on this mesh "
                            "(out of memory, or a crash in native code)")
            return False
        return True

    def finish(job, prepared, trained):
        fut, gen = submit("finish", finish_job, job.rel, prepared, trained, run.settings_dict,
                          job.stat, run.out_dir)
        finishing[fut] = (job, prepared, trained, gen)

    def handle(event):
        kind = event[0]
        if kind == "prepare" and event[1] in preparing:
            fut = event[1]
            job, gen = preparing.pop(fut)
            try:
                out = fut.result()
            except BrokenProcessPool:
                if died(job, gen):
                    jobs_left.appendleft(job)
                return
            if out.status == "failed":
                run.failed(job, out.error)
            elif out.status == "skipped":
                if not run.skipped_after_load(job):
                    jobs_left.appendleft(job)
            else:
                ready.append((job, out.prepared))
        elif kind == "finish" and event[1] in finishing:
            fut = event[1]
            job, prepared, trained, gen = finishing.pop(fut)
            try:
                row, _ = fut.result()
            except BrokenProcessPool:
                if died(job, gen):           # the trained weights are here: only finishing again
                    finish(job, prepared, trained)
                return
            except Exception as e:        # e.g. the output folder became unwritable
                log.exception("writing %s", job.rel)
                run.failed(job, f"{job.rel}: cannot finish ({type(e).__name__}: {e})")
                return
            run.record(row, "converted")
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
            while jobs_left or preparing or ready or finishing or any(held):
                run.check()
                free = sum(K - len(h) for h in held)
                while jobs_left and len(preparing) + len(ready) < free + workers:
                    job = jobs_left.popleft()
                    fut, gen = submit("prepare", prepare_job, job.rel, job.path, run.settings_dict,
                                      job.skip_if_hash)
                    preparing[fut] = (job, gen)
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
        finally:
            stop.cancel()
            for inbox in inboxes:
                inbox.put(None)
            for t in threads:
                t.join(timeout=5.0)
            if pool["executor"] is not None:
                pool["executor"].shutdown(wait=False, cancel_futures=True)
