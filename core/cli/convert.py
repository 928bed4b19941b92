"""``python -m core convert``: a mesh into a neural implicit .h5 (fixed size, target error or byte budget)."""

import sys

import numpy as np

from ..common.errors import InputError
from ..common.outputs import check_output
from .flags import add_settings_arguments, add_size_arguments, settings_from_args, size_from_args
from .output import accuracy_lines, emit, progress_bar, warn

NAME = "convert"
HELP = "convert a mesh (OBJ, OFF, PLY, STL) into a neural implicit .h5"


def arguments(c) -> None:
    c.add_argument("mesh")
    c.add_argument("-o", "--output", required=True, help="output .h5 file")
    c.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file that is not a neural implicit (never an input)")
    c.add_argument("--importance", help=".npy file with one importance weight per vertex of the file")
    add_size_arguments(c)
    add_settings_arguments(c)


def run(args) -> int:
    from ..conversion.checked import convert_checked
    from ..meshes.mesh import load_mesh
    from ..representation.fileformat import save
    from ..samples.shell import describe

    settings = settings_from_args(args)
    check_output(args.output, [args.mesh, args.importance], kind="implicit", overwrite=args.overwrite)
    weights = None
    if args.importance:
        try:
            weights = np.load(args.importance, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"{args.importance}: cannot read importance weights ({e})") from None
    mesh = load_mesh(args.mesh, vertex_weights=weights)
    with progress_bar(args) as bar:
        result = convert_checked(mesh, settings, **size_from_args(args).arguments(), progress=bar)
    size = save(result.implicit, args.output)
    out = {"output": args.output, "bytes": size, **result.summary()}
    a = result.implicit.architecture
    lines = [
        f"wrote {args.output} ({size:,} bytes; weights {result.implicit.weight_bytes:,} bytes, "
        f"{result.implicit.parameters:,} parameters, {a.layers} x {a.hidden} "
        f"{result.implicit.storage})"]
    if isinstance(result.implicit.metadata.get("parts"), dict):
        out["parts"] = result.implicit.metadata["parts"]      # the note is among the warnings
    if "sizing" in result.implicit.metadata:
        sz = result.implicit.metadata["sizing"]
        out["sizing"] = sz
        lines.append(f"target {sz['metric'].replace('_', ' ')} {sz['target']} "
                     + ("reached" if sz["reached"] else "NOT reached (kept the most accurate size)")
                     + " after trying " + ", ".join(f"{t['layers']}x{t['hidden']} ({t['error']:.5f})"
                                                     for t in sz["tried"]))
    if "budget" in result.implicit.metadata:
        out["budget"] = result.implicit.metadata["budget"]
        lines.append(f"budget {args.budget_bytes:,} bytes: used {result.implicit.weight_bytes:,}")
    surface = result.implicit.metadata.get("surface")
    out["surface"] = surface
    if describe(surface):
        sys.stderr.write(describe(surface) + "\n")
    warn(result.warnings)
    emit(args, out, lines + accuracy_lines(result) + [
        f"time {result.seconds_total:.1f}s (sampling {result.seconds_sampling:.1f}s, "
        f"training {result.seconds_training:.1f}s on {result.device}), "
        f"peak memory {result.peak_memory_mb or float('nan'):.0f} MB",
    ])
    return 0
