"""Sampling while torch loads: the two slow starts of a conversion, side by side.

Why: ``import torch`` takes 1.4-2 s and the training set (numpy and libigl only) 2-3 s; one after
the other they were a quarter of a default conversion's wall time on a 2-core CPU. On Linux the
sampler runs in a forked child, on the second core, while this process imports torch; forking is
safe because torch, whose threads do not survive a fork, is not loaded yet. Elsewhere (Windows has
no fork; macOS's system libraries are not fork-safe) torch imports on a thread beside the sampler,
which overlaps only where numpy and libigl release the GIL.

The result is the same either way: the sampler is deterministic in its inputs, and a child that
dies without a result is replaced by sampling here (never a lost conversion).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import sys
import threading
from typing import Callable

from ..common.progress import check

log = logging.getLogger(__name__)

#: Seconds between looks at the child's pipe and the cancel token.
POLL_SECONDS = 0.05


def sample_beside_torch(make: Callable, progress=None, cancel=None, meanwhile: Callable | None = None):
    """``make(progress, cancel)`` (numpy and libigl only, no torch) run while torch imports;
    returns what ``make`` returns, and torch is imported afterwards.

    ``meanwhile()``, when given, runs once in this process while the forked sampler still works
    (after torch's import: work that would otherwise wait until after training, e.g. the source's
    half of the check); elsewhere it runs after ``make``. Its failures are logged, never raised: it
    may only compute what would otherwise be computed later.

    ``make`` runs in a forked child where that is possible, so it must not leave state that the
    caller reads afterwards (a random generator it advances is advanced in the child only); its
    result must pickle. Progress records reach ``progress`` here; ``cancel`` stops the child.
    """
    if "torch" not in sys.modules and _fork_is_safe():
        return _forked(make, progress, cancel, meanwhile)
    loader = None
    if "torch" not in sys.modules:
        loader = threading.Thread(target=_import_torch, name="import torch", daemon=True)
        loader.start()
    try:
        result = make(progress, cancel)
    finally:
        if loader is not None:
            loader.join()
    _run(meanwhile)
    return result


def _run(meanwhile) -> None:
    if meanwhile is None:
        return
    try:
        meanwhile()
    except Exception:           # noqa: BLE001 - an optimisation; the work is redone where needed
        log.warning("work beside sampling failed; it is done later instead", exc_info=True)


def _fork_is_safe() -> bool:
    """Linux, and not inside a daemonic process (which may not have children)."""
    return sys.platform.startswith("linux") and not multiprocessing.current_process().daemon


def _import_torch() -> None:
    """Import torch, leaving any failure to the caller's own ``import torch`` (which says why)."""
    try:
        importlib.import_module("torch")
    except Exception:           # noqa: BLE001 - reported by the import that needs it
        pass


def _forked(make, progress, cancel, meanwhile=None):
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(make, send), name="sampling", daemon=True)
    child.start()
    send.close()
    try:
        _import_torch()
        _run(meanwhile)
        while True:
            check(cancel)
            if receive.poll(POLL_SECONDS):
                try:
                    kind, value = receive.recv()
                except (EOFError, OSError):
                    break
                if kind == "progress":
                    if progress is not None:
                        progress(value)
                elif kind == "done":
                    return value
                else:
                    raise value
            elif not child.is_alive() and not receive.poll():
                break
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()
    log.warning("the sampling process ended without a result (exit code %s); sampling here",
                child.exitcode)
    return make(progress, cancel)


def _child(make, send) -> None:
    """The forked sampler: progress records, then ("done", result) or ("error", exception)."""
    try:
        send.send(("done", make(lambda p: send.send(("progress", p)), None)))
    except BaseException as exc:     # noqa: BLE001 - every failure goes back to the caller
        try:
            send.send(("error", exc))
        except Exception:            # noqa: BLE001 - an exception that does not pickle
            send.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        send.close()
