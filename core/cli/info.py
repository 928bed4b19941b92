"""``python -m core info``: describe a neural implicit .h5 file."""

import os

from ..common.units import format_fraction
from .output import emit

NAME = "info"
HELP = "describe a neural implicit .h5 file"


def arguments(c) -> None:
    c.add_argument("file")


def run(args) -> int:
    from ..representation.fileformat import FORMAT_VERSION, load

    imp = load(args.file)
    d = {"file": args.file, "bytes": os.path.getsize(args.file),
         "format_version": FORMAT_VERSION if imp.members else 1,
         **imp.describe(), "metadata": imp.metadata}
    a = imp.architecture
    lines = [f"{args.file}: {a.layers} x {a.hidden} {a.activation}"
             + (f", positional encoding L={a.encoding_frequencies}" if a.encoding_frequencies else "")
             + (f", {imp.network_count} networks (one per group of parts far apart; the shape is "
                f"their union)" if imp.members else "")
             + f", {imp.parameters:,} parameters, {imp.storage} weights ({imp.weight_bytes:,} bytes)"]
    for key in ("source", "surface_error", "final_loss"):
        if key in imp.metadata:
            lines.append(f"  {key}: {imp.metadata[key]}")
    check = imp.metadata.get("verification")
    if isinstance(check, dict):
        lines.append(f"  checked against the source: Chamfer {format_fraction(check.get('chamfer'))} "
                     f"of size, sign agreement {100 * (check.get('sign_agreement') or 0):.1f}%"
                     + ("" if check.get("passed", True) else " (FAILED: "
                        + "; ".join(map(str, check.get("problems", []))) + ")"))
    emit(args, d, lines)
    return 0
