"""The inputs of a folder and OUT_DIR/manifest.jsonl: one JSON row per input mesh, its latest state.

Rows are appended (and flushed) as meshes finish; the latest row of a path wins; the file is
compacted to one row per path, sorted, at the start and end of every run (an interrupted one too).
Everything is strict JSON (non-finite numbers become null); unreadable lines are skipped.
"""

import json
import logging
import os
from typing import Optional

from ..common import jsonsafe
from ..common.errors import InputError
from ..meshes.mesh_io import READ_EXTENSIONS

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
OUTPUT_SUFFIX = ".h5"
#: Columns of a manifest row, in order (docs/datasets.md).
ROW_KEYS = ("path", "status", "error", "output", "content_hash", "surface_error", "chamfer",
            "sign_agreement", "parameters", "seconds", "source_bytes", "source_mtime_ns", "warnings")


def find_meshes(in_dir: str, exclude: Optional[str] = None) -> list[str]:
    """Relative paths ('/'-separated, sorted) of every mesh file under ``in_dir``, recursively.

    A file is a mesh file by its extension (core.meshes.mesh_io.READ_EXTENSIONS, any case);
    ``exclude`` is a folder left out (the output folder, when it lies inside the input folder).
    """
    in_dir = os.path.abspath(in_dir)
    exclude = os.path.abspath(exclude) if exclude else None
    found = []
    for root, dirs, files in os.walk(in_dir):
        dirs[:] = sorted(d for d in dirs if os.path.join(root, d) != exclude)
        for name in files:
            if name.lower().endswith(READ_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(root, name), in_dir).replace(os.sep, "/"))
    return sorted(found)


def output_name(rel: str) -> str:
    """Relative output path of the input ``rel``."""
    return rel + OUTPUT_SUFFIX


def make_row(rel: str, status: str, *, error=None, output=None, content_hash=None,
             surface_error=None, chamfer=None, sign_agreement=None, parameters=None, seconds=None,
             stat=(None, None), warnings=()) -> dict:
    """One manifest row (ROW_KEYS); stat = (size in bytes, modification time in ns) of the input."""
    if error is not None:
        error = _one_line(error)
    values = (rel, status, error, output, content_hash, surface_error, chamfer, sign_agreement,
              parameters, seconds, stat[0], stat[1], [_one_line(w) for w in warnings])
    return jsonsafe.finite_or_none(dict(zip(ROW_KEYS, values)))


def _one_line(text) -> str:
    return " ".join(str(text).split())


def ok_row_from_metadata(rel: str, metadata: dict, parameters: int, stat) -> dict:
    """The row of an existing output, rebuilt from its file's metadata."""
    timings = metadata.get("timings")
    verification = metadata.get("verification")
    verification = verification if isinstance(verification, dict) else {}
    warnings = metadata.get("warnings")
    return make_row(rel, "ok", output=output_name(rel), content_hash=metadata.get("content_hash"),
                    surface_error=_number(metadata.get("surface_error")),
                    chamfer=_number(verification.get("chamfer")),
                    sign_agreement=_number(verification.get("sign_agreement")),
                    parameters=parameters,
                    seconds=_number(timings.get("total")) if isinstance(timings, dict) else None,
                    stat=stat,
                    warnings=[w for w in warnings if isinstance(w, str)]
                    if isinstance(warnings, list) else ())


def _number(x):
    """x when it is a real number (metadata of a file written elsewhere may hold anything)."""
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


class Manifest:
    """OUT_DIR/manifest.jsonl: rows appended as meshes finish (flushed at once), latest row per path
    wins, compacted to one row per path (sorted) by :meth:`compact`. Unreadable lines (a run killed
    in the middle of a write, foreign or corrupt text) are skipped with a warning."""

    def __init__(self, out_dir: str):
        self.path = os.path.join(out_dir, MANIFEST_NAME)
        self.rows: dict[str, dict] = read_manifest(out_dir)
        self._fh = None
        self.compact()          # also ends a line a killed run left half-written

    def record(self, row: dict) -> None:
        self.rows[row["path"]] = row
        self._fh.write(jsonsafe.dumps(row) + "\n")
        self._fh.flush()

    def compact(self) -> None:
        """Rewrite the file with one row per path (temporary name, then renamed)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        tmp = self.path + ".part"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                for rel in sorted(self.rows):
                    fh.write(jsonsafe.dumps(self.rows[rel]) + "\n")
            os.replace(tmp, self.path)
            self._fh = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            raise InputError(f"{self.path}: cannot write the manifest ({e.strerror or e}): is "
                             "something else in the way?") from None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_manifest(out_dir: str) -> dict[str, dict]:
    """The latest row of every path in OUT_DIR/manifest.jsonl (empty when there is none).

    A row must be a JSON object whose "path" is a string; anything else (half-written lines,
    foreign text, bytes that are not UTF-8) is skipped with a warning, never fatal.
    """
    path = os.path.join(out_dir, MANIFEST_NAME)
    rows = {}
    if not os.path.lexists(path):
        return rows
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    row = None
                if isinstance(row, dict) and isinstance(row.get("path"), str):
                    rows[row["path"]] = row
                else:
                    log.warning("%s:%d: unreadable manifest row skipped", path, lineno)
    except OSError as e:
        raise InputError(f"{path}: cannot read the manifest ({e.strerror or e}); move it away to "
                         "start a new one") from None
    return rows
