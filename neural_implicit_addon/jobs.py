"""Long core work (conversion, remeshing) off Blender's UI thread, with progress and cancellation.

A :class:`Job` is a list of :class:`Task` records (one per object), each a plain function of
``(progress, cancel)`` that touches no Blender data: the operator reads everything the task needs
on the main thread before, and applies the result on the main thread after, looking objects up
again by name. The job runs the tasks one after another in a daemon thread (torch and numpy release
the GIL, so Blender stays responsive) and posts :class:`Event` records to a queue that the
operator's modal timer drains (:meth:`Job.events`). In background mode there is no event loop, so
the operator calls :meth:`Job.run` on the main thread instead: the same code, blocking.

A job may instead run all its tasks at once with a ``batch`` function (several meshes trained
together as one stack, ``core.conversion.batch_train.convert_many``); it returns one result or
exception per task, and each becomes the same "done" or "error" event as in the one-at-a-time case.
Its progress records name the object they are about (``Progress.shape``): the status line gives the
stack's epoch with each object's loss and the ETA, and the bar counts each object's own progress.

Conversions do not train in this thread: the task starts a child process
(``core.conversion.child_process.convert_in_child``) and the thread supervises it, forwarding its
progress, killing it on cancel, and turning its death (a native crash, out of memory) into an
"error" event, so torch can never take Blender and the unsaved scene down. The running child's
process id is :attr:`Job.child_pid` (:func:`note_child`).

Only one job runs at a time (:func:`active`); :func:`cancel_active` sets its cancel token (Esc, the
panel's Cancel button, unregistering the add-on, loading another file).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .core.common.errors import Cancelled, InputError
from .core.common.progress import CancelToken, Progress, describe as describe_progress
from .core.conversion.child_process import ChildDied, ChildError

log = logging.getLogger(__name__)


@dataclass
class Task:
    """One unit of work: ``run(progress, cancel) -> result``; ``name`` is the object it is for."""

    name: str
    run: Callable[[Callable[[Progress], None], CancelToken], Any]
    context: dict = field(default_factory=dict)   # plain data the operator needs to apply the result


@dataclass
class Event:
    """What the worker tells the main thread.

    kind : "progress", "done" (``result`` set), "error" (``message`` set) or "cancelled";
    index : the task it is about.
    """

    kind: str
    index: int
    progress: Optional[Progress] = None
    result: Any = None
    message: str = ""


def error_message(exc: BaseException) -> str:
    """The message a user sees for an exception raised by core work."""
    if isinstance(exc, InputError):
        return str(exc)
    if isinstance(exc, ChildDied):
        return f"{exc}; Blender and your scene are unaffected"
    if isinstance(exc, ChildError):
        return f"internal error in the training process ({exc}); the system console has the details"
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == "torch":
        return ("PyTorch is not installed: install it in Preferences > Add-ons > Neural Implicit "
                "(conversion needs it)")
    if isinstance(exc, MemoryError):
        return "out of memory: lower the pool and sample counts, or the network size"
    return f"internal error ({type(exc).__name__}: {exc}); the system console has the details"


class Job:
    """Tasks run one after another with one cancel token; see the module docstring."""

    def __init__(self, title: str, tasks: list[Task],
                 batch: Optional[Callable[[Callable[[Progress], None], CancelToken], list]] = None):
        self.title = title
        self.tasks = tasks
        self.batch = batch                 # batch(progress, cancel) -> [result or exception per task]
        self.cancel_token = CancelToken()
        self.started = None
        self.current = 0                   # index of the task running now
        self.latest: Optional[Progress] = None
        self.shapes: dict[str, Progress] = {}   # the latest record of each object (by name)
        self.child_pid: Optional[int] = None   # the training process running now, if any
        self.done = threading.Event()
        self._queue: "queue.Queue[Event]" = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._on_progress = None

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        """Run in a daemon thread; poll :meth:`events` until :attr:`finished`."""
        _set_active(self)
        self._thread = threading.Thread(target=self._work, name=f"neural-implicit {self.title}",
                                        daemon=True)
        self._thread.start()

    def run(self, on_progress: Optional[Callable[["Job"], None]] = None) -> list[Event]:
        """Run on this thread (scripts, background mode) and return every event.

        on_progress : called with the job after each progress record (on this thread).
        """
        self._on_progress = on_progress
        _set_active(self)
        self._work()
        return self.events()

    def _work(self) -> None:
        self.started = time.monotonic()
        try:
            if self.batch is not None:
                self._work_batch()
                return
            for i, task in enumerate(self.tasks):
                self.current = i
                if self.cancel_token.cancelled:
                    self._queue.put(Event("cancelled", i))
                    break
                try:
                    result = task.run(lambda p, i=i: self._progress(i, p), self.cancel_token)
                except Cancelled:
                    self._queue.put(Event("cancelled", i))
                    break
                except Exception as exc:  # every failure becomes a message; bugs are logged too
                    self._queue.put(self._error_event(i, exc))
                else:
                    self._queue.put(Event("done", i, result=result))
        finally:
            self.done.set()
            _clear_active(self)

    def _work_batch(self) -> None:
        try:
            outcomes = self.batch(lambda p: self._progress(0, p), self.cancel_token)
        except Cancelled:
            self._queue.put(Event("cancelled", 0))
            return
        except Exception as exc:
            outcomes = [exc] * len(self.tasks)
        for i, outcome in enumerate(outcomes):
            self._queue.put(self._error_event(i, outcome) if isinstance(outcome, BaseException)
                            else Event("done", i, result=outcome))

    def _error_event(self, index: int, exc: BaseException) -> Event:
        task = self.tasks[index]
        if not isinstance(exc, (InputError, ModuleNotFoundError, MemoryError, ChildDied, ChildError)):
            log.error("neural implicit: %s of %s failed", self.title, task.name, exc_info=exc)
        message = error_message(exc)
        if not message.startswith(task.name):
            message = f"{task.name}: {message}"
        return Event("error", index, message=message)

    def _progress(self, index: int, progress: Progress) -> None:
        self.latest = progress
        self.shapes[progress.shape or self.tasks[index].name] = progress
        self._queue.put(Event("progress", index, progress))
        if self._on_progress is not None:
            self._on_progress(self)

    # ------------------------------------------------------------------ main thread
    def events(self) -> list[Event]:
        """Every event posted since the last call (never blocks)."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    @property
    def finished(self) -> bool:
        return self.done.is_set()

    def cancel(self) -> None:
        self.cancel_token.cancel()

    @property
    def cancelling(self) -> bool:
        return self.cancel_token.cancelled and not self.finished

    def status(self) -> str:
        """One line for the status bar and the panel: object, stage, epoch, loss, ETA. Several
        objects trained together as a stack: the stack's epoch with each object's loss."""
        n = len(self.tasks)
        p = self.latest
        together = self.batch is not None and n > 1
        if together:
            parts = [f"{self.title} {n} objects together"]
        else:
            name = self.tasks[min(self.current, n - 1)].name if n else ""
            parts = [f"{self.title} {min(self.current + 1, n)}/{n}: {name}" if n > 1
                     else f"{self.title}: {name}"]
        if self.cancelling:
            parts.append("cancelling...")
        elif p is not None and together and p.stage == "training" and p.epoch:
            parts.extend(self._stack_epoch(p))
        elif p is not None:
            parts.extend(([p.shape] if together and p.shape else []) + describe(p))
        return " · ".join(parts)

    def _stack_epoch(self, p: Progress) -> list:
        """The stack's epoch, each object's loss in it (the first STACK_NAMES) and the ETA."""
        same = [(name, q) for name, q in dict(self.shapes).items()
                if q.stage == "training" and q.epoch == p.epoch]
        losses = [f"{name} {q.loss:.5f}" for name, q in same[:STACK_NAMES] if q.loss is not None]
        if len(same) > STACK_NAMES:
            losses.append(f"{len(same) - STACK_NAMES} more")
        parts = [f"epoch {p.epoch}/{p.epochs}", "loss " + ", ".join(losses)]
        etas = [q.eta for _, q in same if q.eta is not None]
        if etas:
            parts.append(f"ETA {format_seconds(max(etas))}")
        return parts

    def fraction(self) -> float:
        """Share of the whole job done, for a progress bar (each task counts equally; in a stack,
        each object by its own latest record)."""
        n = max(len(self.tasks), 1)
        if self.batch is not None:
            shapes = dict(self.shapes)
            return min(sum(stage_fraction(shapes.get(t.name)) for t in self.tasks) / n, 1.0)
        return min((self.current + stage_fraction(self.latest)) / n, 1.0)


#: Share of one object's bar per stage (start, span): training gets most; a retry of a failed
#: check starts the bar again.
STAGE_SPANS = {"sampling": (0.0, 0.2), "training": (0.2, 0.7), "measuring": (0.9, 0.03),
               "checking": (0.93, 0.07), "remeshing": (0.0, 1.0)}
#: Objects of a stack named with their loss in the status line (the rest are counted).
STACK_NAMES = 4


def stage_fraction(p: Optional[Progress]) -> float:
    """Share of one object's work done at progress record ``p`` (0 before the first)."""
    if p is None:
        return 0.0
    lo, span = STAGE_SPANS.get(p.stage, (0.0, 1.0))
    return lo + span * min(max(float(p.fraction), 0.0), 1.0)


def describe(p: Progress) -> list:
    """One object's progress as status parts: epoch (or stage), loss, ETA (or the message)."""
    parts = describe_progress(p, format_seconds, message_with_eta=False)
    return parts if p.epoch is not None and p.epochs else [p.stage, *parts]


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


_active: Optional[Job] = None
_lock = threading.Lock()


def _set_active(job: Job) -> None:
    global _active
    with _lock:
        if _active is not None and not _active.finished and _active is not job:
            raise RuntimeError("a neural implicit job is already running")
        _active = job


def _clear_active(job: Job) -> None:
    global _active
    with _lock:
        if _active is job:
            _active = None


def active() -> Optional[Job]:
    """The job running now, or None."""
    return _active


def note_child(pid: int) -> None:
    """Record the child process the running job's task has started (status, tests)."""
    job = _active
    if job is not None:
        job.child_pid = pid


def cancel_active() -> bool:
    """Ask the running job to stop; True when there was one."""
    job = _active
    if job is None:
        return False
    job.cancel()
    return True


def shutdown(timeout: float = 5.0) -> None:
    """Cancel the running job and wait a little for its thread (unregister, file load)."""
    job = _active
    if job is None:
        return
    job.cancel()
    job.done.wait(timeout)
