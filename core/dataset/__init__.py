"""Whole folders of meshes to neural implicits: resumable, with sampling beside batched training.

``convert_dir(IN_DIR, OUT_DIR, settings)`` converts every mesh under IN_DIR (recursively; the formats
core.meshes.mesh_io reads) to ``OUT_DIR/<relative path>.h5`` (``chairs/a.obj`` ->
``chairs/a.obj.h5``, so ``a.obj`` and ``a.stl`` never collide), with the file format, settings and
metadata of ``convert``.

Pipeline (engine "local"): worker processes load and sample meshes (CPU, libigl) ahead of the
trainers; each trainer (a thread of this process, on the CPU or the GPU) trains up to
``shapes_per_batch`` shapes at once (core.conversion.batch_train.BatchTrainer); workers then measure
the surface error, check the network against its source (core.conversion.verify; a closed mesh that
fails is converted again alone with the next seeds) and write each file under a temporary name,
renamed when complete (core.representation.fileformat.save). Engine "ray" runs the same steps as Ray
tasks and actors.

Trust (one bad input never stops or silently spoils a run): every worker step has a time limit
(:func:`default_shape_timeout`), after which its process is killed and replaced and the shape is a
failed row; workers die with the run (no orphans); an existing output that does not load, or is not
ours, is converted again; one run at a time may write into an output folder (OUT_DIR/.convert-dir.lock);
everything written as JSON is strict JSON (non-finite numbers become null).

Resuming: ``OUT_DIR/manifest.jsonl`` holds one JSON row per input mesh (the latest row of a path wins;
the file is compacted to one row per path at the end of a run, also an interrupted one). A mesh is
skipped when its output loads, was made with the same settings (ignoring RUNTIME_SETTINGS) and from
the same content hash: files whose size and modification time match their ok row are taken as
unchanged without being read (as make and rsync do); any other file is loaded and its content hash
compared with the one stored in the output's metadata, so outputs written just before a crash, with
no manifest row, are recognised too. Failed meshes are tried again on every run.

One job per module: ``manifest`` (inputs, rows, manifest.jsonl), ``lock`` (one run per output
folder), ``plan`` (what to convert, skip or refuse), ``steps`` (the worker steps of a shape),
``run`` (``convert_dir``, time limits, the bookkeeping both engines share), ``local`` (worker
processes of ``worker_pool`` and trainer threads), ``ray_engine`` (Ray tasks and actors).
"""

from .lock import LOCK_NAME, OutputLock
from .manifest import (MANIFEST_NAME, ROW_KEYS, Manifest, find_meshes, make_row, output_name,
                       read_manifest)
from .run import DEFAULT_SHAPES_PER_BATCH, DatasetSummary, convert_dir, default_shape_timeout

__all__ = ["DEFAULT_SHAPES_PER_BATCH", "LOCK_NAME", "MANIFEST_NAME", "ROW_KEYS", "DatasetSummary",
           "Manifest", "OutputLock", "convert_dir", "default_shape_timeout", "find_meshes",
           "make_row", "output_name", "read_manifest"]
