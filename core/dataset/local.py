"""The local engine of convert-dir: sampling and finishing in worker processes (worker_pool,
with the run's time limit per step), batched trainers in threads of this process.

Why threads for the trainers: torch releases the GIL inside its operations, so on a CPU one trainer
thread per core (one torch thread each) keeps the cores busy; on a GPU one trainer feeds it. This
thread hands work around; what each result means is the run's bookkeeping (core.dataset.run.Run).
"""

import logging
import os
import queue as queue_module
import threading
from collections import deque

from ..common.progress import CancelToken
from .steps import finish_job, prepare_job
from .worker_pool import POLL_SECONDS, Task, WorkerPool, worker_environment

log = logging.getLogger(__name__)


def _train_loop(index, settings, capacity, device, inbox, events, stop) -> None:
    """A trainer thread: shapes arrive on ``inbox`` as (key, points, sdf) between epochs (None ends
    the thread); finished shapes leave as ("trained", index, TrainedShape) events; any exception
    (Cancelled included) as ("error", index, exception)."""
    from ..conversion.batch_train import BatchTrainer, train_config
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


def run_local(jobs, run) -> None:
    """Convert ``jobs`` (core.dataset.plan.Job) here (module docstring), recording every result
    through ``run`` (core.dataset.run.Run)."""
    import multiprocessing

    import torch

    from ..training.train import pick_device

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
        log.warning("a worker process died (out of memory or killed? exit code %s) on %s: starting "
                    "a new one, the mesh is tried again", exitcode, task.job.rel)
        if run.retry(task.job, "a worker process", "on this mesh (out of memory, or a crash in "
                                                   "native code)"):
            pool.submit(task)

    def settle(status, task, value):
        job = task.job
        if status == "died":
            died(task, value)
        elif status == "error":      # finish_job raised: e.g. the output folder became unwritable
            run.failed(job, f"{job.rel}: cannot {task.kind} ({value})")
        elif task.kind == "finish":
            run.finished(job, *value)
        else:
            what = run.prepared(job, value)
            if what == "again":
                jobs_left.appendleft(job)
            elif what == "ready":
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
