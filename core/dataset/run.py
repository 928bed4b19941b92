"""A convert-dir run: its arguments and time limit, the folder lock, the plan, an engine, and the
bookkeeping both engines share (:class:`Run`: what each step's result means for the manifest, the
counts and the progress reports)."""

import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

from ..common import jsonsafe
from ..common.errors import InputError
from ..common.progress import CancelToken, ProgressCallback, check, report
from ..common.settings import ConversionSettings
from .local import run_local
from .lock import OutputLock
from .manifest import Manifest, make_row, ok_row_from_metadata
from .plan import MAX_ATTEMPTS, Job, inspect_output, plan
from .ray_engine import import_ray, run_ray
from .steps import write_output

log = logging.getLogger(__name__)

#: Default stack size: on a 2-core CPU 16 stacked 8x32 networks gain most of what stacking gives;
#: on a GPU use a few hundred (docs/datasets.md).
DEFAULT_SHAPES_PER_BATCH = 16

# Time limits of the worker steps (docs/datasets.md, "Time limits"). Measured on the development
# machine (2 cores, one thread, load average below 1): loading and sampling 1,000,000 pool points
# plus 100,000 training samples took 1.1-1.6 s on the largest test meshes (fandisk, 12,946 faces);
# single-thread training of an 8x32 network (7,553 parameters) on 100,000 samples for 3 epochs took
# 2.18 s, i.e. 9.6e-10 s per sample, epoch and parameter; core.conversion.verify.verify took 1.7 s.
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
    """Bookkeeping shared by the engines: what each step's result means (manifest rows, counts,
    retries) and progress reports. The engines only move work around and hand results here."""

    def __init__(self, out_dir, settings, shapes_per_batch, workers, trainers, manifest, total,
                 progress, cancel, shape_timeout):
        self.out_dir, self.settings = out_dir, settings
        self.settings_dict = settings.to_dict()
        self.shapes_per_batch, self.workers, self.trainers = shapes_per_batch, workers, trainers
        self.manifest, self.total = manifest, total
        self.progress, self.cancel = progress, cancel
        self.shape_timeout = shape_timeout
        self.counts = {"converted": 0, "skipped": 0, "failed": 0}
        self.t0 = time.perf_counter()

    def record(self, row: dict, kind: str) -> None:
        self.manifest.record(row)
        self.counts[kind] += 1
        self.report()

    def prepared(self, job: Job, outcome) -> str:
        """Settle what a sampling step found (core.dataset.steps.Outcome): "ready" (train it),
        "again" (sample it again: found unchanged, but its output is gone meanwhile, so it no
        longer skips) or "done" (recorded: failed, or skipped with its row rebuilt from the output)."""
        if outcome.status == "failed":
            self.failed(job, outcome.error)
            return "done"
        if outcome.status == "ready":
            return "ready"
        existing = inspect_output(self.out_dir, job.rel, self.settings)
        if existing.current is None:
            job.skip_if_hash = None
            return "again"
        self.record(ok_row_from_metadata(job.rel, *existing.current, job.stat), "skipped")
        return "done"

    def finished(self, job: Job, row: dict, implicit=None) -> None:
        """Record what a finishing step returned: converted, or failed (its check failed again).
        ``implicit``: the network, for a step that did not write its file itself (Ray)."""
        if implicit is not None:
            try:
                write_output(self.out_dir, job.rel, implicit)
            except OSError as e:
                self.failed(job, f"{job.rel}: cannot write the output ({e.strerror or e})")
                return
        self.record(row, "converted" if row["status"] == "ok" else "failed")

    def retry(self, job: Job, who: str, where: str) -> bool:
        """A process died with ``job`` in it: True when the job is tried again, False (and a failed
        row) once that happened MAX_ATTEMPTS times."""
        job.attempts += 1
        if job.attempts < MAX_ATTEMPTS:
            return True
        self.failed(job, f"{job.rel}: {who} died {job.attempts} times {where}")
        return False

    def failed(self, job: Job, message: str) -> None:
        self.record(make_row(job.rel, "failed", error=message, stat=job.stat, warnings=job.notes),
                    "failed")

    def timed_out(self, job: Job, stage: str) -> None:
        log.warning("%s: timed out after %g s in %s; its worker process was killed", job.rel,
                    self.shape_timeout, stage)
        self.failed(job, f"{job.rel}: timed out after {self.shape_timeout:g} s in {stage} "
                         "(--shape-timeout)")

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
    """Convert every mesh under ``in_dir`` into ``out_dir`` (core.dataset), resuming earlier runs.

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
            run = Run(out_dir, settings, shapes_per_batch, workers, trainers, manifest,
                      len(jobs) + len(skipped) + len(blocked), progress, cancel, shape_timeout)
            for row in skipped:
                run.record(row, "skipped")
            for row in blocked:
                run.record(row, "failed")
            run.report()
            if jobs:
                if engine == "ray":
                    run_ray(jobs, run, ray_address)
                else:
                    run_local(jobs, run)
            return run.summary(engine)
        finally:
            manifest.compact()
            manifest.close()
