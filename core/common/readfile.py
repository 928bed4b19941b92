"""Reading a user's file: a regular file only, never more than a bound, never blocking.

Why: a path given as a mesh or a network may name a FIFO (``open`` waits forever for a writer), a
device (``/dev/zero`` never ends) or a file far larger than any valid input. Both readers (meshes,
core.meshes.mesh_io; networks, core.representation.fileformat and core.representation.paper_import)
read through :func:`read_regular_file` so each of those becomes one clear error before any parsing.
"""

from __future__ import annotations

import os
import stat

from .errors import InputError


def read_regular_file(path: str, name: str, limit: int, error: type = InputError) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; else ``error``.

    Opened without blocking, so a FIFO or device given as the file is refused instead of waited on.
    ``name`` starts every message (the path as the user wrote it).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{name}: no such file") from None
    except IsADirectoryError:
        raise error(f"{name}: is a directory, not a file") from None
    except OSError as e:
        raise error(f"{name}: cannot be opened ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{name}: is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{name}: not a regular file (a pipe, socket or device cannot be read)")
        if st.st_size > limit:
            raise error(f"{name}: {st.st_size:,} bytes is larger than this reader accepts "
                        f"(at most {limit:,})")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{name}: larger than this reader accepts (at most {limit:,} bytes)")
    return data
