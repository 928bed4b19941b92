"""Planning a run: which meshes are converted (:class:`Job`), which are up to date (rows rebuilt
from their outputs) and which cannot be written (failed rows); how resuming decides is in the
core.dataset docstring ("Resuming"). An output that does not load, or is not ours, is converted
again and replaced."""

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

from ..common.errors import FileFormatError
from ..common.settings import ConversionSettings
from .manifest import Manifest, find_meshes, make_row, ok_row_from_metadata, output_name

log = logging.getLogger(__name__)

#: Settings that decide how a conversion runs, not what it produces: ignored when deciding to skip.
RUNTIME_SETTINGS = ("device", "threads")
#: Metadata key of a file whose shape failed its check and was converted again with later seeds:
#: the seed the run asked for (the file's settings hold the seed that passed).
REQUESTED_SEED_KEY = "requested_seed"
#: A mesh whose worker process dies this many times (out of memory, a crash in native code) is
#: recorded as failed; the other meshes that were in flight are simply tried again.
MAX_ATTEMPTS = 3


def recipe(settings: dict) -> dict:
    """The settings that decide the result (all but RUNTIME_SETTINGS)."""
    return {k: v for k, v in settings.items() if k not in RUNTIME_SETTINGS}


@dataclass
class Job:
    """One mesh to (maybe) convert. skip_if_hash: content hash of a valid existing output made with
    these settings; the worker skips the mesh when the file's hash equals it. notes: what this run
    did about the shape's old output (a file that did not load, replaced), for the row's warnings."""

    rel: str
    path: str
    stat: tuple
    skip_if_hash: Optional[str] = None
    attempts: int = 0
    notes: list = field(default_factory=list)


def _stat(path):
    try:
        st = os.stat(path)
    except OSError:            # e.g. a broken link: the worker reports it as a failed row
        return (None, None)
    return (int(st.st_size), int(st.st_mtime_ns))


@dataclass
class ExistingOutput:
    """What lies at a shape's output path.

    current : (metadata, parameters) of a loadable output made with the same recipe, else None;
    note : why a file found there is converted again and replaced (it does not load, is foreign);
    blocked : why no output can be written there at all (a folder in the way): a failed row.
    """

    current: Optional[tuple] = None
    note: Optional[str] = None
    blocked: Optional[str] = None


def inspect_output(out_dir: str, rel: str, settings: ConversionSettings) -> ExistingOutput:
    """Look at the output of ``rel``: current, to be replaced (with a note), or blocked. Never raises
    for what a file contains: a corrupt or foreign output is converted again, not fatal."""
    from ..representation.fileformat import load
    name = output_name(rel)
    out = os.path.join(out_dir, name)
    blocked = _blocker(out_dir, rel)
    if blocked:
        return ExistingOutput(blocked=blocked)
    if not os.path.lexists(out):
        return ExistingOutput()
    if not os.path.isfile(out):
        return ExistingOutput(note=f"replaced {name}, which was not a regular file")
    try:
        imp = load(out)
    except FileFormatError as e:
        return ExistingOutput(note=f"replaced {name}, which did not load "
                                   f"({str(e).replace(out + ': ', '')})")
    except Exception as e:  # noqa: BLE001 - h5py on a damaged file may raise nearly anything
        return ExistingOutput(note=f"replaced {name}, which did not load ({type(e).__name__}: {e})")
    meta = imp.metadata
    if not (isinstance(meta, dict) and isinstance(meta.get("settings"), dict)
            and isinstance(meta.get("content_hash"), str)):
        return ExistingOutput(note=f"replaced {name}, which was not written by a conversion (no "
                                   "settings or content hash in its metadata)")
    if _file_recipe(meta) != recipe(settings.to_dict()):
        return ExistingOutput()                    # other settings: converted again, as asked
    return ExistingOutput(current=(meta, imp.parameters))


def _file_recipe(meta: dict) -> dict:
    """The recipe a file answers: its settings, with the seed the run asked for when the shape was
    converted again with later seeds after a failed check (REQUESTED_SEED_KEY)."""
    settings = dict(meta["settings"])
    if REQUESTED_SEED_KEY in meta:
        settings["seed"] = meta[REQUESTED_SEED_KEY]
    return recipe(settings)


def _blocker(out_dir: str, rel: str) -> Optional[str]:
    """Why the output of ``rel`` cannot be written (None when it can): a folder where the file or its
    temporary name must go, or a file where a folder of its path must go."""
    parts = output_name(rel).split("/")
    here = out_dir
    for part in parts[:-1]:
        here = os.path.join(here, part)
        if os.path.lexists(here) and not os.path.isdir(here):
            return f"{rel}: cannot write the output: {here} is a file where a folder must be; move it away"
    out = os.path.join(here, parts[-1])
    for p in (out, out + ".part"):
        if os.path.isdir(p):
            return f"{rel}: cannot write the output: a folder is in the way ({p}); move it away"
    return None


def _remove_stale_part(path: str) -> None:
    """Remove a temporary file a killed run left (only the run holding the folder lock does this)."""
    if os.path.lexists(path) and not os.path.isdir(path):
        try:
            os.remove(path)
        except OSError as e:       # the write will fail and say so in the shape's row
            log.warning("%s: cannot remove a stale temporary file (%s)", path, e.strerror)


def plan(in_dir: str, out_dir: str, settings: ConversionSettings, manifest: Manifest):
    """Split the meshes under in_dir into jobs, rows of outputs already done (skipped) and rows of
    outputs that cannot be written (failed). Call it holding the folder lock: it removes the
    ``.part`` files of killed runs."""
    jobs, skipped, failed = [], [], []
    for rel in find_meshes(in_dir, exclude=out_dir):
        path = os.path.join(in_dir, rel)
        stat = _stat(path)
        out = os.path.join(out_dir, output_name(rel))
        existing = inspect_output(out_dir, rel, settings)
        if existing.blocked:
            failed.append(make_row(rel, "failed", error=existing.blocked, stat=stat))
            continue
        _remove_stale_part(out + ".part")         # left by a killed run: never a final name
        if existing.current is None:
            jobs.append(Job(rel, path, stat, notes=[existing.note] if existing.note else []))
            continue
        meta, parameters = existing.current
        row = manifest.rows.get(rel)
        if (row and row.get("status") == "ok" and row.get("content_hash") == meta.get("content_hash")
                and (row.get("source_bytes"), row.get("source_mtime_ns")) == stat):
            skipped.append(ok_row_from_metadata(rel, meta, parameters, stat))
        else:
            jobs.append(Job(rel, path, stat, skip_if_hash=meta.get("content_hash")))
    return jobs, skipped, failed
