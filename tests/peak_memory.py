"""Peak memory of the current process, for the hostile-input tests' child processes.

Why not ``resource.getrusage(RUSAGE_SELF).ru_maxrss``: on Linux a child started by fork + exec
inherits its parent's high-water mark, so a child of a large pytest process (torch, bpy loaded)
would report the parent's peak. ``VmHWM`` in /proc/self/status belongs to the new program alone.
"""

import resource
import sys


def peak_mb() -> float:
    """Peak resident memory of this process in MB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
