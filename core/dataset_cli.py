"""``python -m core convert-dir``: the command line of core.dataset (registered by core.cli)."""

from __future__ import annotations

import sys


def add_convert_dir_command(command) -> None:
    """Register convert-dir; ``command(name, help, func)`` is core.cli's sub-command factory."""
    from .cli import add_settings_arguments
    from .dataset import DEFAULT_SHAPES_PER_BATCH

    c = command("convert-dir", "convert every mesh under a folder (recursively) into .h5 files, "
                "resumably, many shapes trained at once", cmd_convert_dir)
    c.add_argument("input_dir", metavar="IN_DIR")
    c.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="output folder: OUT_DIR/<relative path>.h5 and OUT_DIR/manifest.jsonl")
    c.add_argument("--shapes-per-batch", type=int, default=DEFAULT_SHAPES_PER_BATCH, metavar="K",
                   help=f"shapes trained together in one stacked model (default "
                        f"{DEFAULT_SHAPES_PER_BATCH}; a few hundred on a GPU)")
    c.add_argument("--workers", type=int, default=None, metavar="N",
                   help="sampling worker processes (default: CPU cores - 1); with --ray, sampling "
                        "tasks kept ahead of the trainers (default: the cluster's CPUs - 1)")
    c.add_argument("--trainers", type=int, default=None, metavar="T",
                   help="batched trainers of K shapes each (default: one per CPU core on a CPU, one "
                        "on a GPU; with --ray, one per GPU of the cluster, else half its CPUs)")
    c.add_argument("--shape-timeout", type=float, default=None, metavar="SECONDS",
                   help="time limit of each worker step of a shape (loading and sampling; measuring, "
                        "checking and writing): a step over it is killed and the shape recorded as "
                        "failed (default: ten times the estimated cost of one conversion at these "
                        "settings, at least 300)")
    c.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: alone, a local Ray instance; with ADDRESS (auto, "
                        "ray://host:port), an existing cluster. Put it after IN_DIR")
    add_settings_arguments(c)


def cmd_convert_dir(args) -> int:
    from .cli import ProgressBar, _emit, settings_from_args
    from .dataset import convert_dir

    settings = settings_from_args(args)
    bar = ProgressBar(not args.json and sys.stderr.isatty())
    try:
        s = convert_dir(args.input_dir, args.output, settings, shapes_per_batch=args.shapes_per_batch,
                        workers=args.workers, trainers=args.trainers,
                        engine="local" if args.ray is None else "ray",
                        ray_address=args.ray or None, shape_timeout=args.shape_timeout,
                        progress=bar)
    finally:
        bar.close()
    _emit(args, s.to_dict(), [
        f"{s.total} meshes: {s.converted} converted, {s.skipped} skipped (up to date), "
        f"{s.failed} failed, in {s.seconds:.1f}s ({s.shapes_per_hour:.0f} shapes/hour, {s.engine})",
        f"outputs and manifest in {s.output_dir}" + (f"; failures are listed in {s.manifest}"
                                                     if s.failed else ""),
    ])
    return 0
