"""Worker processes that each run one task at a time, with a time limit per task (convert-dir's
local engine, core.dataset.local).

Why a pool of its own and not concurrent.futures.ProcessPoolExecutor: that one cannot stop one task,
and it loses every task in flight when one worker dies. Here every task runs in a known process from
a known time, so a task over its limit is killed with its process alone, which is replaced; and a
worker dies with the process that started it (core.common.parent_death plus a watchdog), so no hung
input keeps a core busy for nobody.
"""

import logging
import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

log = logging.getLogger(__name__)

#: Environment for worker processes: one thread each, so workers and the trainer do not oversubscribe
#: the cores (spinning OpenMP/BLAS threads on a busy machine slow everything down many times).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "IGL_NUM_THREADS": "1"}
#: Seconds between checks (of the cancel token and time limits by the coordinator, of the parent by
#: a worker's watchdog).
POLL_SECONDS = 0.5


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


def _worker_init(parent_pid: int) -> None:
    """Set up a worker process: it dies with the run and leaves quietly on Ctrl-C.

    Ctrl-C reaches the workers too (one process group): they leave at once, and the coordinating
    process reports the interruption; a file being written keeps its temporary name. When the run's
    process dies in any way (SIGKILL included) its workers die too, so none is left running hung
    inputs for nobody: on Linux the kernel kills them (PR_SET_PDEATHSIG); everywhere a watchdog
    thread ends the process once the parent is gone.
    """
    import signal

    from ..common.parent_death import die_with_parent
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    die_with_parent(parent_pid, 1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="neural-implicit-watchdog",
                     daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    """Exit this worker as soon as the process that started it is gone."""
    import multiprocessing
    from multiprocessing.connection import wait
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        wait([parent.sentinel])                 # readable when the parent's end of the pipe closes
    else:
        while os.getppid() == parent_pid:
            time.sleep(POLL_SECONDS)
    os._exit(1)


def _worker_main(conn, parent_pid: int) -> None:
    """A worker process: run tasks (task id, function, arguments) from ``conn`` one at a time and
    send back ("stage", id, name) while running, then ("done", id, value) or ("error", id, text)."""
    _worker_init(parent_pid)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        task_id, fn, args = task
        try:
            message = ("done", task_id, fn(*args, stage=lambda name: conn.send(("stage", task_id,
                                                                                name))))
        except Exception as e:  # the coordinator records it as the shape's failure
            log.exception("worker task %s", getattr(fn, "__name__", fn))
            message = ("error", task_id, f"{type(e).__name__}: {e}")
        conn.send(message)


@dataclass
class Task:
    """A worker step for one job: kind "prepare" or "finish", the function and its arguments.
    started (time.monotonic) and stage are set while a worker runs it."""

    kind: str
    fn: object
    args: tuple
    job: object
    id: int = 0
    started: Optional[float] = None
    stage: str = "starting"


class _Worker:
    """One worker process, its pipe, the task it runs, and a thread that forwards what the process
    sends (and its end) to the coordinator's event queue as ("worker", self, message or None)."""

    def __init__(self, ctx, events):
        here, there = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(there, os.getpid()), daemon=True,
                                   name="neural-implicit-worker")
        self.process.start()
        there.close()                 # so this side sees EOF when the process dies
        self.conn = here
        self.task: Optional[Task] = None
        threading.Thread(target=self._forward, args=(events,), daemon=True,
                         name="neural-implicit-worker-reader").start()

    def _forward(self, events) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                break
            events.put(("worker", self, message))
        self.conn.close()
        events.put(("worker", self, None))

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=1.0)   # a process stuck in the kernel (D state) is left behind


class WorkerPool:
    """Worker processes that each run one task at a time, with a time limit per task.

    A task over ``limit`` seconds is killed with its process alone, which is replaced (module
    docstring); a worker that dies takes only its own task with it. Tasks wait in order.

    :meth:`receive` turns the workers' events (from ``events``) into results (status, Task, value):
    "done" (value: what the function returned), "error" (value: the exception as text) or "died";
    :meth:`expired` returns the tasks over their limit, already killed.
    """

    def __init__(self, size: int, ctx, events, limit: float):
        self.size, self.ctx, self.events, self.limit = size, ctx, events, limit
        self.workers: list[_Worker] = []
        self.waiting: deque = deque()
        self._ids = 0

    def submit(self, task: Task) -> None:
        self._ids += 1
        task.id, task.started, task.stage = self._ids, None, "starting"
        self.waiting.append(task)
        self._dispatch()

    def _dispatch(self) -> None:
        while self.waiting:
            worker = next((w for w in self.workers if w.task is None), None)
            if worker is None:
                if len(self.workers) >= self.size:
                    return
                worker = _Worker(self.ctx, self.events)
                self.workers.append(worker)
            task = self.waiting.popleft()
            worker.task, task.started = task, time.monotonic()
            try:
                worker.conn.send((task.id, task.fn, task.args))
            except (OSError, ValueError):   # it just died: "died" comes with its end event
                pass

    def receive(self, event) -> Optional[tuple]:
        """The result carried by a worker event, or None (a stage report, or news of a worker that
        was already killed or whose task was already settled)."""
        _, worker, message = event
        task = worker.task
        if message is None:                            # the process ended
            if worker in self.workers:
                self.workers.remove(worker)
            worker.task = None
            self._dispatch()
            return ("died", task, worker.process.exitcode) if task is not None else None
        status, task_id, value = message
        if task is None or task.id != task_id or worker not in self.workers:
            return None
        if status == "stage":
            task.stage = value
            return None
        worker.task = None
        self._dispatch()
        return (status, task, value)

    def expired(self) -> list[Task]:
        """Tasks that ran longer than the limit: their processes are killed (and replaced)."""
        now = time.monotonic()
        late = [w for w in self.workers if w.task is not None and now - w.task.started > self.limit]
        tasks = []
        for worker in late:
            tasks.append(worker.task)
            self.workers.remove(worker)
            worker.task = None
            worker.kill()
        if late:
            self._dispatch()
        return tasks

    def busy(self, kind: str) -> int:
        """Tasks of this kind waiting or running."""
        return (sum(1 for t in self.waiting if t.kind == kind)
                + sum(1 for w in self.workers if w.task is not None and w.task.kind == kind))

    def close(self) -> None:
        """Stop every worker: idle ones leave when told, busy ones are killed."""
        for worker in self.workers:
            if worker.task is None:
                try:
                    worker.conn.send(None)
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + 2.0
        for worker in self.workers:
            if worker.task is None:
                worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.kill()
        self.workers = []
        self.waiting.clear()
