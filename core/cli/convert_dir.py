"""``python -m core convert-dir``: the command line of core.dataset."""

from ..dataset import DEFAULT_SHAPES_PER_BATCH, convert_dir
from .flags import add_settings_arguments, settings_from_args
from .output import emit, progress_bar

NAME = "convert-dir"
HELP = ("convert every mesh under a folder (recursively) into .h5 files, resumably, many shapes "
        "trained at once")


def arguments(c) -> None:
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


def run(args) -> int:
    settings = settings_from_args(args)
    with progress_bar(args) as bar:
        s = convert_dir(args.input_dir, args.output, settings, shapes_per_batch=args.shapes_per_batch,
                        workers=args.workers, trainers=args.trainers,
                        engine="local" if args.ray is None else "ray",
                        ray_address=args.ray or None, shape_timeout=args.shape_timeout,
                        progress=bar)
    emit(args, s.to_dict(), [
        f"{s.total} meshes: {s.converted} converted, {s.skipped} skipped (up to date), "
        f"{s.failed} failed, in {s.seconds:.1f}s ({s.shapes_per_hour:.0f} shapes/hour, {s.engine})",
        f"outputs and manifest in {s.output_dir}" + (f"; failures are listed in {s.manifest}"
                                                     if s.failed else ""),
    ])
    return 0
