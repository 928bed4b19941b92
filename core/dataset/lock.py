"""One run at a time per output folder: an OS lock on OUT_DIR/.convert-dir.lock."""

import logging
import os
import sys
from typing import Optional

from ..common.errors import InputError

log = logging.getLogger(__name__)

#: The lock file of an output folder: held (flock / msvcrt.locking) by the run writing into it.
LOCK_NAME = ".convert-dir.lock"


class OutputLock:
    """Exclusive right to write into an output folder, for one run: OUT_DIR/.convert-dir.lock.

    Why: two runs on one folder would convert every shape twice and delete each other's in-flight
    ``.part`` files. The lock is an OS file lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on
    Windows), which the OS releases when the process ends in any way, so a crash leaves no stale
    lock; the file stays behind, holding the pid of the last run that took it (after a space, the
    byte Windows locks). Usable as a context manager.
    """

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.path = os.path.join(out_dir, LOCK_NAME)
        self._fd = None

    def acquire(self) -> "OutputLock":
        """Take the lock or raise InputError naming the folder and the pid holding it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        except OSError as e:
            raise InputError(f"{self.path}: cannot create the lock file ({e.strerror or e})") from None
        try:
            if not _try_lock(fd, self.path):
                holder = _read_pid(fd)
                raise InputError(f"{self.out_dir}: another convert-dir run "
                                 f"{f'(pid {holder}) ' if holder else ''}is writing into this "
                                 "folder; wait for it to end, or use another output folder")
            os.lseek(fd, 0, os.SEEK_SET)       # fixed width: no truncation under a Windows lock
            os.write(fd, f" {os.getpid():<20}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)          # closing releases the lock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _try_lock(fd: int, path: str) -> bool:
    """True when this process now holds the lock on ``fd``; False when another one holds it."""
    if sys.platform == "win32":
        import msvcrt
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import errno
    import fcntl
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        # a file system without locks (some network mounts): run unprotected rather than never
        log.warning("%s: the file system cannot lock files (%s); make sure no other run writes "
                    "into this folder", path, e.strerror)
    return True


def _read_pid(fd: int) -> Optional[int]:
    """The pid written into the lock file by its holder, if it can be read."""
    try:
        os.lseek(fd, 1, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
