"""The worker steps of one shape, run in worker processes (local engine) or Ray tasks: prepare (load,
validate, compare the content hash, sample) and finish (measure, check against the source, write).

Bad input becomes a 'failed' outcome or row with a one-line message, never an exception out of a
step; ``stage`` callbacks name the stage a step is in, so a step over its time limit can say where.
"""

import logging
import os
from dataclasses import dataclass
from typing import Optional

from ..common import jsonsafe
from ..common.errors import InputError
from ..common.settings import ConversionSettings
from .manifest import make_row, output_name
from .plan import REQUESTED_SEED_KEY

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a sampling task found: status 'ready' (prepared holds the samples), 'skipped' (output is
    current) or 'failed' (error holds the one-line message)."""

    rel: str
    status: str
    prepared: object = None
    error: Optional[str] = None


def _no_stage(name: str) -> None:
    """Stage reporter of steps run in-process (Ray tasks): nobody watches the stage there."""


def _load(rel: str, source):
    """Load a mesh from a path or from the file's bytes; messages name ``rel``, not the location."""
    from ..meshes.mesh import load_mesh
    if isinstance(source, (bytes, bytearray)):
        return load_mesh(rel, data=bytes(source))
    try:
        return load_mesh(source)
    except InputError as e:
        raise InputError(str(e).replace(source, rel)) from None


def prepare_job(rel: str, source, settings_dict: dict, skip_if_hash: Optional[str],
                stage=_no_stage) -> Outcome:
    """Worker step 1: load, validate, compare the content hash, sample
    (core.conversion.batch_steps.prepare_shape).

    source : the file's path or its bytes; stage : called with "loading", then "sampling" (the worker
    pool names the stage a shape timed out in). Bad input gives a 'failed' Outcome, never an exception.
    """
    from ..conversion.batch_steps import prepare_shape
    try:
        settings = ConversionSettings.from_dict(settings_dict)
        stage("loading")
        mesh = _load(rel, source)
        if skip_if_hash is not None and mesh.content_hash == skip_if_hash:
            return Outcome(rel, "skipped")
        stage("sampling")
        return Outcome(rel, "ready", prepare_shape(mesh, settings))
    except InputError as e:
        return Outcome(rel, "failed", error=str(e))
    except Exception as e:  # a bug or a crash in native code on one odd file: record it, go on
        log.exception("converting %s", rel)
        return Outcome(rel, "failed", error=f"internal error: {type(e).__name__}: {e}")


def finish_job(rel: str, prepared, trained, settings_dict: dict, stat, out_dir: Optional[str],
               notes=(), stage=_no_stage):
    """Worker step 3: surface error and metadata (core.conversion.batch_steps.finish_shape), the
    check against the source (core.conversion.batch_steps.check_shape: a closed mesh that fails is
    converted again alone), then the file.

    Returns (row, None) with the file written into ``out_dir`` (:func:`write_output`); without
    ``out_dir``, (row, implicit) for the caller to write (Ray: the driver owns OUT_DIR). A shape that
    fails its check again gives a 'failed' row and no network. notes : warnings of this run about the
    shape (a replaced output), put in the row. stage : as in :func:`prepare_job`.
    """
    from ..conversion.batch_steps import check_shape, finish_shape
    from ..conversion.checked import ConversionFailed
    settings = ConversionSettings.from_dict(settings_dict)
    mesh = prepared.mesh
    stage("measuring")
    first = finish_shape(prepared, trained, settings)
    stage("checking")
    try:
        checked = check_shape(first, mesh, settings, stage)
    except ConversionFailed as e:
        message = str(e)
        message = message[len(mesh.name) + 2:] if message.startswith(mesh.name + ": ") else message
        return make_row(rel, "failed", error=f"{rel}: {message}", content_hash=mesh.content_hash,
                        stat=stat, warnings=notes), None
    result, v = checked.result, checked.verification
    meta = result.implicit.metadata
    if checked.retried:
        meta[REQUESTED_SEED_KEY] = settings.seed
    meta["warnings"] = list(checked.warnings)
    result.implicit.metadata = jsonsafe.finite_or_none(meta)
    seconds = result.seconds_total + (first.seconds_total if checked.retried else 0.0)
    row = make_row(rel, "ok", output=output_name(rel), content_hash=mesh.content_hash,
                   surface_error=result.surface_error, chamfer=v.chamfer,
                   sign_agreement=v.sign_agreement, parameters=result.implicit.parameters,
                   seconds=seconds, stat=stat, warnings=[*notes, *checked.warnings])
    stage("writing")
    if out_dir is None:
        return row, result.implicit
    write_output(out_dir, rel, result.implicit)
    return row, None


def write_output(out_dir: str, rel: str, implicit) -> None:
    """Write the output of ``rel`` (core.representation.fileformat.save: a temporary name, renamed
    when complete)."""
    from ..representation.fileformat import save
    out = os.path.join(out_dir, output_name(rel))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    save(implicit, out)


def read_input(path: str, rel: str) -> bytes:
    """The bytes of an input mesh for the Ray driver, which reads every input itself: only a regular
    file, without blocking, bounded (core.common.readfile); InputError names ``rel``."""
    from ..common.readfile import read_regular_file
    from ..meshes.mesh_io import MAX_MESH_FILE_BYTES
    return read_regular_file(path, rel, MAX_MESH_FILE_BYTES)
