"""Progress reports and cooperative cancellation for long work.

Why: library code never prints. Long steps call a ``progress`` callback with a :class:`Progress`
record and poll a :class:`CancelToken`; the command line draws bars from the records, the add-on
shows them in Blender's status bar, and either can cancel from another thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
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


def check(cancel: Optional[CancelToken]) -> None:
    """Raise Cancelled if ``cancel`` is set; no-op without a token."""
    if cancel is not None:
        cancel.check()
