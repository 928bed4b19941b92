"""Child processes that end when the process that started them ends.

Why: a worker (convert-dir) or a training child (the Blender add-on) left running after its parent
was killed would go on using cores and memory for nobody. Each caller also watches its parent in
its own way (a pipe that closes); this module holds the part they share.
"""

from __future__ import annotations

import os
import signal
import sys

#: prctl option: the signal a Linux process gets when the thread that started it ends.
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, exit_code: int) -> None:
    """Ask the kernel (Linux) to SIGKILL this process when its parent dies; exit at once with
    ``exit_code`` if the parent ``parent_pid`` is already gone (it died before the signal was armed).
    Elsewhere only the check is made: callers keep a watcher of their own."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        except (OSError, AttributeError):        # no prctl: the caller's watcher still works
            pass
    if os.getppid() != parent_pid:
        os._exit(exit_code)
