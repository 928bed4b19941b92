"""The Ray engine of convert-dir: the local engine's steps as Ray tasks and actors.

* Sampling: :func:`core.dataset.steps.prepare_job` as a task (1 CPU). The mesh file's bytes travel with it,
  so worker nodes need no shared file system; the samples stay in Ray's object store.
* Training: a :class:`core.conversion.batch_train.BatchTrainer` inside an actor, one per GPU of the
  cluster (1 GPU each) when the settings' device allows one, else one per two CPUs. The driver hands
  each actor new shapes between its epochs; if an actor's process dies, Ray restarts it and the
  shapes it held are handed out again.
* Finishing: :func:`core.dataset.steps.finish_job` as a task returning the checked network (a
  closed mesh that fails converted again alone); the driver writes it into OUT_DIR as the local
  engine's workers do (core.representation.fileformat.save: a temporary name, renamed) and records
  the row.
* Time limit: a sampling or finishing task running longer than the run's ``shape_timeout`` (counted
  from its submission, so time spent queued in Ray counts too) is cancelled with ``force=True``,
  which kills its worker process (Ray starts another), and the shape is a failed row.
* Inputs: the driver reads only regular files (core.dataset.steps.read_input): a FIFO would block
  it and a device such as /dev/zero would fill its memory.

Ray does the scheduling, placement, data movement and task retries (``max_retries``); this module
only keeps the stacks full; what each result means is the run's bookkeeping (core.dataset.run.Run),
as for the local engine. Ray is an optional dependency of the command line, imported here only.
"""

import logging
import os
import time
from collections import deque

from ..common.errors import InputError
from ..common.settings import ConversionSettings
from .plan import MAX_ATTEMPTS
from .steps import finish_job, prepare_job, read_input
from .worker_pool import POLL_SECONDS

log = logging.getLogger(__name__)

#: The folder of the core package, shipped to the cluster's workers (runtime_env py_modules).
CORE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_ray():
    """The ray module, or InputError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray, an optional dependency of the command line (not of the "
                         "Blender extension): pip install 'ray==2.60.0'") from None
    return ray


# ----------------------------------------------------------------------------- remote side
def _prepare(rel, data, settings_dict, skip_if_hash):
    """prepare_job, with the samples returned as a second object (kept apart in the object store)."""
    out = prepare_job(rel, data, settings_dict, skip_if_hash)
    if out.status != "ready":
        return out, None
    samples = (out.prepared.data.points, out.prepared.data.sdf)
    out.prepared = out.prepared.without_data()
    return out, samples


def _finish(rel, outcome, trained, settings_dict, stat, notes):
    return finish_job(rel, outcome.prepared, trained, settings_dict, stat, None, notes)


class TrainerActor:
    """A BatchTrainer in a Ray actor: :meth:`epoch` adds shapes, trains one epoch, returns the
    shapes that finished (core.conversion.batch_steps.TrainedShape)."""

    def __init__(self, settings_dict: dict, capacity: int):
        import torch

        from ..conversion.batch_train import BatchTrainer, train_config
        from ..training.train import pick_device

        settings = ConversionSettings.from_dict(settings_dict)
        torch.set_num_threads(settings.threads or 1)       # Ray gives this actor one CPU
        self.seed = settings.seed
        self.trainer = BatchTrainer(settings.architecture, train_config(settings), capacity,
                                    pick_device(settings.device))

    def epoch(self, keys, *samples):
        for key, (points, sdf) in zip(keys, samples):
            self.trainer.add(key, points, sdf, self.seed)
        return self.trainer.train_epoch()


# ----------------------------------------------------------------------------- driver
def run_ray(jobs, run, address=None) -> None:
    """Convert ``jobs`` (core.dataset.plan.Job) on Ray, recording every result through ``run``
    (core.dataset.run.Run).

    address: as ray.init accepts it ("auto", "ray://host:port"); None starts a local instance. A Ray
    instance this process already started is used as it is, and left running.
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        kwargs = {"runtime_env": {"py_modules": [CORE_DIR]}, "logging_level": logging.WARNING,
                  "log_to_driver": False}
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(include_dashboard=False, **kwargs)
        except ConnectionError as e:
            raise InputError(f"--ray {address}: cannot connect to the Ray cluster ({e})") from None
        started = True
    try:
        _drive(ray, jobs, run)
    finally:
        if started:
            ray.shutdown()


def _drive(ray, jobs, run) -> None:
    settings = run.settings
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if settings.device in ("auto", "cuda") else 0
    if settings.device == "cuda" and not gpus:
        raise InputError("device 'cuda' was asked for but the Ray cluster has no GPU; use --device cpu")
    cpus = int(resources.get("CPU", 1))
    trainers = run.trainers or (gpus if gpus else max(1, cpus // 2))
    ahead = run.workers or max(1, cpus - (0 if gpus else trainers))
    K = run.shapes_per_batch

    prepare = ray.remote(num_cpus=1, num_returns=2, max_retries=MAX_ATTEMPTS - 1)(_prepare)
    finish = ray.remote(num_cpus=1, max_retries=MAX_ATTEMPTS - 1)(_finish)
    actor_class = ray.remote(TrainerActor).options(num_cpus=1, num_gpus=1 if gpus else 0,
                                                   max_restarts=-1, max_task_retries=0)
    actors = [{"handle": actor_class.remote(run.settings_dict, K), "held": {}, "call": None}
              for _ in range(trainers)]

    queue = deque(jobs)
    preparing = {}   # outcome ref -> (job, samples ref)
    ready = deque()  # (job, outcome ref, samples ref)
    finishing = {}   # ref -> job
    calls = {}       # epoch call ref -> actor record
    submitted = {}   # sampling or finishing ref -> time.monotonic() at submission

    def held():
        return sum(len(a["held"]) for a in actors)

    def failed_remote(job, e):
        run.failed(job, f"{job.rel}: {type(e).__name__}: {str(e).strip().splitlines()[-1]}")

    def expire():
        """Cancel (force: kill the worker process) the tasks over the run's time limit."""
        now = time.monotonic()
        for ref, t in list(submitted.items()):
            if now - t <= run.shape_timeout:
                continue
            del submitted[ref]
            ray.cancel(ref, force=True)
            if ref in preparing:
                run.timed_out(preparing.pop(ref)[0], "sampling")
            else:
                run.timed_out(finishing.pop(ref), "finishing")

    try:
        while queue or preparing or ready or finishing or calls or held():
            run.check()
            while queue and len(preparing) + len(ready) < trainers * K - held() + ahead:
                job = queue.popleft()
                try:
                    data = read_input(job.path, job.rel)
                except InputError as e:
                    run.failed(job, str(e))
                    continue
                o_ref, s_ref = prepare.remote(job.rel, data, run.settings_dict, job.skip_if_hash)
                preparing[o_ref] = (job, s_ref)
                submitted[o_ref] = time.monotonic()
            for a in actors:
                if a["call"] is not None:
                    continue
                new = []
                while ready and len(a["held"]) + len(new) < K:
                    new.append(ready.popleft())
                for item in new:
                    a["held"][item[0].rel] = item
                if a["held"]:
                    a["call"] = a["handle"].epoch.remote([j.rel for j, _, _ in new],
                                                         *[s for _, _, s in new])
                    calls[a["call"]] = a
            pending = list(preparing) + list(finishing) + list(calls)
            if not pending:
                continue
            done, _ = ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
            if done:
                done, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
            for ref in done:
                submitted.pop(ref, None)
                if ref in preparing:
                    job, s_ref = preparing.pop(ref)
                    try:
                        out = ray.get(ref)
                    except ray.exceptions.RayError as e:      # retries used up
                        failed_remote(job, e)
                        continue
                    what = run.prepared(job, out)
                    if what == "again":
                        queue.appendleft(job)
                    elif what == "ready":
                        ready.append((job, ref, s_ref))
                elif ref in calls:
                    a = calls.pop(ref)
                    a["call"] = None
                    try:
                        finished = ray.get(ref)
                    except ray.exceptions.RayActorError:
                        # the actor's process died: Ray restarts it; its shapes start again
                        log.warning("a trainer actor died: Ray restarts it, its %d shapes start "
                                    "again", len(a["held"]))
                        for job, o_ref, s_ref in a["held"].values():
                            if run.retry(job, "the trainer", "with this mesh in its stack"):
                                ready.appendleft((job, o_ref, s_ref))
                        a["held"] = {}
                        continue
                    for trained in finished:
                        job, o_ref, _ = a["held"].pop(trained.key)
                        f_ref = finish.remote(job.rel, o_ref, trained, run.settings_dict, job.stat,
                                              list(job.notes))
                        finishing[f_ref] = job
                        submitted[f_ref] = time.monotonic()
                elif ref in finishing:
                    job = finishing.pop(ref)
                    try:
                        row, implicit = ray.get(ref)
                    except ray.exceptions.RayError as e:
                        failed_remote(job, e)
                        continue
                    run.finished(job, row, implicit)
            expire()
    finally:
        for a in actors:
            ray.kill(a["handle"])
        for ref in list(preparing) + list(finishing):
            ray.cancel(ref, force=True)
