"""Output paths checked before any work: never overwrite an input or a file that is not ours.

Why: a conversion takes minutes, and a mistyped ``-o`` used to cost the user their source mesh
(``convert m.obj -o m.obj`` wrote HDF5 over it) or, after the minutes were spent, end in a traceback
because the folder was not writable. Every command that writes calls :func:`check_output` first.
"""

from __future__ import annotations

import os
import tempfile

from .errors import InputError

#: Extensions of neural implicit files (HDF5).
IMPLICIT_EXTENSIONS = (".h5", ".hdf5")


def check_output(path, inputs=(), *, kind: str, overwrite: bool = False) -> str:
    """Return ``path`` if writing it is safe, else raise InputError naming the problem.

    kind : ``"implicit"`` (an .h5 file: must end in .h5/.hdf5; an existing file is replaced only
        when it is a neural implicit file itself) or ``"mesh"`` (an existing file is replaced only
        with ``overwrite``: it may be somebody's source mesh).
    inputs : paths the command reads; the output may never be one of them (not even with
        ``overwrite``).
    The folder must exist and accept a new file (checked by creating and removing one).
    """
    path = os.fspath(path)
    if not path or path.endswith(("/", os.sep)):
        raise InputError(f"output {path!r} is not a file name")
    for source in inputs:
        if source is not None and _same_file(path, os.fspath(source)):
            raise InputError(f"output {path} is also an input of this command: it would be "
                             "overwritten; choose another output name")
    ext = os.path.splitext(path)[1].lower()
    if kind == "implicit" and ext not in IMPLICIT_EXTENSIONS:
        raise InputError(f"output {path}: a neural implicit is an HDF5 file and must end in .h5 "
                         f"(got {ext or 'no extension'!r})")
    if os.path.lexists(path):
        if not os.path.isfile(path) or os.path.islink(path):
            raise InputError(f"output {path} exists and is not a regular file")
        if not overwrite and not (kind == "implicit" and _is_neural_implicit(path)):
            what = ("is not a neural implicit file" if kind == "implicit" else "exists")
            raise InputError(f"output {path} {what}: it is not replaced without --overwrite; "
                             "choose another name or pass --overwrite")
    _check_writable(path)
    return path


def _same_file(a: str, b: str) -> bool:
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _is_neural_implicit(path: str) -> bool:
    """True when ``path`` is an HDF5 file whose ``format`` attribute is ours: read through the
    loader's bounded, in-memory open (core.representation.fileformat), so an existing output is
    inspected as safely as any input."""
    from ..representation.fileformat import FORMAT_NAME, open_in_memory, read_bounded
    try:
        with open_in_memory(read_bounded(path, path), path) as f:
            fmt = f.attrs.get("format")
        return (fmt.decode() if isinstance(fmt, bytes) else fmt) == FORMAT_NAME
    except Exception:  # noqa: BLE001 - an unreadable or foreign file is simply not ours
        return False


def _check_writable(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"output {path}: the folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".neural-implicit-", suffix=".probe", dir=folder)
    except OSError as e:
        raise InputError(f"output {path}: cannot write in {folder} ({e.strerror})") from None
    os.close(fd)
    os.remove(probe)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise InputError(f"output {path} is not writable")
