"""Progress reports and cooperative cancellation for long work.

Why: library code never prints. Long steps call a ``progress`` callback with a :class:`Progress`
record and poll a :class:`CancelToken`; the command line draws bars from the records, the add-on
shows them in Blender's status bar, and either can cancel from another thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Callable, Optional

from .errors import Cancelled


@dataclass
class Progress:
    """One progress report. ``fraction`` is the share of the current stage that is done (0..1)."""

    stage: str                     # "sampling", "training", "remeshing", ...
    fraction: float
    elapsed: float = 0.0           # seconds since the stage started
    eta: Optional[float] = None    # seconds left in the stage, when it can be estimated
    epoch: Optional[int] = None
    epochs: Optional[int] = None
    loss: Optional[float] = None
    message: str = ""
    shape: str = ""                # the shape the record is about, where work covers several


ProgressCallback = Callable[[Progress], None]


class CancelToken:
    """Thread-safe flag: set by the caller, polled by the worker between small units of work."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def report(progress: Optional[ProgressCallback], **kw) -> None:
    """Call ``progress`` with a Progress record if a callback was given."""
    if progress is not None:
        progress(Progress(**kw))


def for_shape(progress: Optional[ProgressCallback], name: str) -> Optional[ProgressCallback]:
    """``progress`` with every record marked as about the shape ``name`` (work on several shapes:
    a stack, a child process converting a list)."""
    if progress is None:
        return None
    return lambda p: progress(replace(p, shape=name))


def check(cancel: Optional[CancelToken]) -> None:
    """Raise Cancelled if ``cancel`` is set; no-op without a token."""
    if cancel is not None:
        cancel.check()


def describe(p: Progress, seconds: Callable[[float], str], message_with_eta: bool = True) -> list:
    """A progress record as the short parts of a status line, for the command line's bar and
    Blender's status bar alike: epoch i/n, loss, ETA (``seconds`` formats it) and the message
    (also beside an ETA unless ``message_with_eta`` is false), each only when the record has it."""
    parts = []
    if p.epoch is not None and p.epochs:
        parts.append(f"epoch {p.epoch}/{p.epochs}")
    if p.loss is not None:
        parts.append(f"loss {p.loss:.5f}")
    if p.eta is not None:
        parts.append(f"ETA {seconds(p.eta)}")
    if p.message and (message_with_eta or p.eta is None):
        parts.append(p.message)
    return parts
