"""What every command prints: results (text, or one strict JSON object with --json), warnings,
errors and exit codes, and a progress bar on stderr."""

import json
import sys
import time

from ..common import jsonsafe
from ..common.progress import Progress, describe
from ..common.units import format_fraction

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class ProgressBar:
    """Draws core.common.progress.Progress records as a one-line bar on stderr (only on a
    terminal)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._last = 0.0
        self._stage = None

    def __call__(self, p: Progress):
        if not self.enabled:
            return
        now = time.monotonic()
        if p.stage == self._stage and p.fraction < 1.0 and now - self._last < 0.1:
            return
        if self._stage is not None and p.stage != self._stage:
            sys.stderr.write("\n")
        self._stage, self._last = p.stage, now
        width = 30
        done = int(round(width * min(max(p.fraction, 0.0), 1.0)))
        extra = describe(p, lambda s: f"{s:5.1f}s")
        sys.stderr.write(f"\r{p.stage:>10} [{'#' * done}{'.' * (width - done)}] "
                         f"{100 * p.fraction:5.1f}%  {'  '.join(extra)}\033[K")
        sys.stderr.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.enabled and self._stage is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._stage = None


def progress_bar(args) -> ProgressBar:
    """The bar of a command: drawn on a terminal, never with --json."""
    return ProgressBar(not args.json and sys.stderr.isatty())


def emit(args, result: dict, lines: list[str]):
    """Print the result: one strict JSON object (no NaN/Infinity) with --json, else the lines."""
    if args.json:
        sys.stdout.write(jsonsafe.dumps(result) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")


def warn(warnings) -> None:
    """Warnings go to stderr on every output mode (they are also in the JSON object)."""
    for w in warnings:
        sys.stderr.write(f"warning: {' '.join(str(w).split())}\n")


def fail(args, message: str, code: int) -> int:
    """Report an error (one line; also as {"error": ...} with --json) and return its exit code."""
    message = " ".join(message.split())        # one line
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps({"error": message}) + "\n")
    sys.stderr.write(f"error: {message}\n")
    return code


def accuracy_lines(result) -> list[str]:
    """How close the network is to its source, each figure with its unit (a share of the size)."""
    lines = []
    if result.verification is not None:
        v = result.verification
        lines.append(f"checked against the source: {v.summary()}")
    lines.append(f"surface error {format_fraction(result.surface_error)} of size "
                 f"({result.surface_error:.5f} in the unit-sphere frame), final loss {result.final_loss:.5f}")
    return lines
