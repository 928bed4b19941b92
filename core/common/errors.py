"""Error types of the core library.

Why: callers (the command line, the Blender add-on) must tell *bad input* apart from bugs. Every
problem that a user can cause and fix (a broken mesh file, a corrupt .h5, a bad argument) raises
:class:`InputError` with a message that names the problem; anything else is a bug and may crash.
"""


class InputError(ValueError):
    """Bad input from the user: a mesh, a file or an argument. The message is meant for the user."""


class FileFormatError(InputError):
    """A weight file that cannot be read: truncated, corrupt, foreign or from a future version."""


class Cancelled(Exception):
    """Raised inside long work when the caller's cancel token was set; the work left no partial result."""
