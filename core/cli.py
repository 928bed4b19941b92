"""The command line: ``python -m core <command> ...``.

Every command takes ``--json`` and then prints exactly one JSON object on stdout. On a terminal,
progress goes to stderr as a bar. Bad input ends with a one-line message and a non-zero exit code,
never a traceback (bugs still show theirs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import fields

import numpy as np

from . import jsonsafe
from .errors import Cancelled, InputError
from .outputs import check_output
from .units import format_fraction
from .progress import Progress
from .settings import ConversionSettings

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

DEMO_MESH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "spot.obj")


# ----------------------------------------------------------------------------- output helpers
class ProgressBar:
    """Draws core.progress.Progress records as a one-line bar on stderr (only on a terminal)."""

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
        extra = []
        if p.epoch is not None:
            extra.append(f"epoch {p.epoch}/{p.epochs}")
        if p.loss is not None:
            extra.append(f"loss {p.loss:.5f}")
        if p.eta is not None:
            extra.append(f"ETA {p.eta:5.1f}s")
        if p.message:
            extra.append(p.message)
        sys.stderr.write(f"\r{p.stage:>10} [{'#' * done}{'.' * (width - done)}] "
                         f"{100 * p.fraction:5.1f}%  {'  '.join(extra)}\033[K")
        sys.stderr.flush()

    def close(self):
        if self.enabled and self._stage is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._stage = None


def _emit(args, result: dict, lines: list[str]):
    """Print the result: one strict JSON object (no NaN/Infinity) with --json, else the lines."""
    if args.json:
        sys.stdout.write(jsonsafe.dumps(result) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")


def _warn(warnings) -> None:
    """Warnings go to stderr on every output mode (they are also in the JSON object)."""
    for w in warnings:
        sys.stderr.write(f"warning: {' '.join(str(w).split())}\n")


def accuracy_lines(result) -> list[str]:
    """How close the network is to its source, each figure with its unit (a share of the size)."""
    lines = []
    if result.verification is not None:
        v = result.verification
        lines.append(f"checked against the source: {v.summary()}")
    lines.append(f"surface error {format_fraction(result.surface_error)} of size "
                 f"({result.surface_error:.5f} in the unit-sphere frame), final loss {result.final_loss:.5f}")
    return lines


# ----------------------------------------------------------------------------- settings flags
def add_settings_arguments(p: argparse.ArgumentParser):
    """One flag per ConversionSettings field (defaults and help from the dataclass)."""
    g = p.add_argument_group("conversion settings")
    for f in fields(ConversionSettings):
        flag = "--" + f.name.replace("_", "-")
        kw = {"default": None, "help": f"{f.metadata['help']} (default {f.default})"}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        kw["type"] = type(f.default)
        g.add_argument(flag, dest=f"setting_{f.name}", **kw)


def settings_from_args(args) -> ConversionSettings:
    changes = {f.name: getattr(args, f"setting_{f.name}") for f in fields(ConversionSettings)
               if getattr(args, f"setting_{f.name}", None) is not None}
    return ConversionSettings().replace(**changes)


# ----------------------------------------------------------------------------- commands
def cmd_convert(args) -> int:
    from .convert import convert_checked
    from .fileformat import save
    from .mesh import load_mesh
    from .shell import describe

    settings = settings_from_args(args)
    check_output(args.output, [args.mesh, args.importance], kind="implicit", overwrite=args.overwrite)
    weights = None
    if args.importance:
        try:
            weights = np.load(args.importance, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"{args.importance}: cannot read importance weights ({e})") from None
    mesh = load_mesh(args.mesh, vertex_weights=weights)
    bar = ProgressBar(not args.json and sys.stderr.isatty())
    try:
        result = convert_checked(mesh, settings, target_error=args.target_error,
                                 budget_bytes=args.budget_bytes, progress=bar)
    finally:
        bar.close()
    size = save(result.implicit, args.output)
    out = {"output": args.output, "bytes": size, **result.summary()}
    a = result.implicit.architecture
    lines = [
        f"wrote {args.output} ({size:,} bytes; weights {result.implicit.weight_bytes:,} bytes, "
        f"{result.implicit.parameters:,} parameters, {a.layers} x {a.hidden} "
        f"{result.implicit.storage})"]
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
    _warn(result.warnings)
    _emit(args, out, lines + accuracy_lines(result) + [
        f"time {result.seconds_total:.1f}s (sampling {result.seconds_sampling:.1f}s, "
        f"training {result.seconds_training:.1f}s on {result.device}), "
        f"peak memory {result.peak_memory_mb or float('nan'):.0f} MB",
    ])
    return 0


def cmd_info(args) -> int:
    from .fileformat import FORMAT_VERSION, load

    imp = load(args.file)
    d = {"file": args.file, "bytes": os.path.getsize(args.file), "format_version": FORMAT_VERSION,
         **imp.describe(), "metadata": imp.metadata}
    a = imp.architecture
    lines = [f"{args.file}: {a.layers} x {a.hidden} {a.activation}"
             + (f", positional encoding L={a.encoding_frequencies}" if a.encoding_frequencies else "")
             + f", {a.parameters:,} parameters, {imp.storage} weights ({imp.weight_bytes:,} bytes)"]
    for key in ("source", "surface_error", "final_loss"):
        if key in imp.metadata:
            lines.append(f"  {key}: {imp.metadata[key]}")
    check = imp.metadata.get("verification")
    if isinstance(check, dict):
        lines.append(f"  checked against the source: Chamfer {format_fraction(check.get('chamfer'))} "
                     f"of size, sign agreement {100 * (check.get('sign_agreement') or 0):.1f}%"
                     + ("" if check.get("passed", True) else " (FAILED: "
                        + "; ".join(map(str, check.get("problems", []))) + ")"))
    _emit(args, d, lines)
    return 0


def cmd_remesh(args) -> int:
    from .fileformat import load
    from .mesh_io import write_mesh_file
    from .remesh import remesh

    check_output(args.output, [args.file], kind="mesh", overwrite=args.overwrite)
    imp = load(args.file)
    bar = ProgressBar(not args.json and sys.stderr.isatty())
    try:
        r = remesh(imp, resolution=args.resolution, progress=bar)
    finally:
        bar.close()
    write_mesh_file(args.output, r.V, r.F)
    d = {"output": args.output, "vertices": int(len(r.V)), "faces": int(len(r.F)), **r.stats}
    _emit(args, d, [f"wrote {args.output}: {len(r.V):,} vertices, {len(r.F):,} faces in "
                    f"{r.stats['seconds']:.2f}s ({r.stats['evaluations']:,} network evaluations, "
                    f"{r.stats['dense_evaluations'] / max(r.stats['evaluations'], 1):.1f}x fewer than dense)"])
    return 0


def measure(imp, mesh, resolution: int) -> dict:
    """Surface error, Chamfer and Hausdorff of an implicit against its source mesh."""
    from .metrics import inside_agreement, surface_distances, surface_error
    from .remesh import remesh

    r = remesh(imp, resolution=resolution)
    dist = surface_distances(mesh, r.V, r.F)
    return {"surface_error": surface_error(imp, mesh), **dist.to_dict(),
            "inside_agreement": inside_agreement(imp, mesh), "resolution": resolution}


def cmd_error(args) -> int:
    from .fileformat import load
    from .mesh import load_mesh

    imp = load(args.file)
    mesh = load_mesh(args.mesh)
    d = measure(imp, mesh, args.resolution)
    _emit(args, d, [f"surface error {format_fraction(d['surface_error'])}, Chamfer L1 "
                    f"{format_fraction(d['chamfer_l1'])}, Hausdorff {format_fraction(d['hausdorff'])} "
                    f"of the shape's size (unit-sphere frame: {d['surface_error']:.5f}, "
                    f"{d['chamfer_l1']:.5f}, {d['hausdorff']:.4f}; Chamfer L2 {d['chamfer_l2']:.2e}; "
                    f"marching cubes {args.resolution}^3), inside agreement {100 * d['inside_agreement']:.2f}%"])
    return 0


def cmd_import_paper(args) -> int:
    from .fileformat import save
    from .mesh import load_mesh
    from .paper_import import load_paper_weights
    from .verify import verify

    check_output(args.output, [args.file, args.mesh], kind="implicit", overwrite=args.overwrite)
    mesh = load_mesh(args.mesh) if args.mesh else None
    imp = load_paper_weights(args.file, mesh)
    d = {"output": args.output, "parameters": imp.parameters, "warnings": []}
    lines = []
    if mesh is not None:
        from .metrics import surface_error
        d["surface_error"] = imp.metadata["surface_error"] = surface_error(imp, mesh)
        v = verify(imp, mesh)
        d["verification"] = imp.metadata["verification"] = v.to_dict()
        d["warnings"] = v.problems + v.warnings
        lines.append(f"checked against {mesh.name}: {v.summary()}; surface error "
                     f"{format_fraction(d['surface_error'])} of size")
    else:
        lines.append("no --mesh given: transform is the identity (coordinates of the paper's frame); "
                     "the network was not checked against a source")
    d["bytes"] = save(imp, args.output)
    _warn(d["warnings"])
    _emit(args, d, [f"wrote {args.output} ({d['bytes']:,} bytes, {imp.parameters:,} parameters)"]
          + lines)
    return 0


def cmd_demo(args) -> int:
    """Convert the bundled spot.obj with default settings, remesh it, print what it cost."""
    import tempfile

    from .convert import convert_checked
    from .fileformat import save
    from .mesh import load_mesh
    from .mesh_io import write_mesh_file
    from .metrics import surface_distances
    from .remesh import remesh

    path = os.path.normpath(args.mesh or DEMO_MESH)
    out_dir = args.output_dir or tempfile.mkdtemp(prefix="neural-implicit-demo-")
    os.makedirs(out_dir, exist_ok=True)
    mesh = load_mesh(path)
    settings = settings_from_args(args)
    bar = ProgressBar(not args.json and sys.stderr.isatty())
    try:
        result = convert_checked(mesh, settings, progress=bar)
        h5 = os.path.join(out_dir, os.path.splitext(mesh.name)[0] + ".h5")
        size = save(result.implicit, h5)
        r = remesh(result.implicit, resolution=args.resolution, progress=bar)
    finally:
        bar.close()
    obj = os.path.join(out_dir, os.path.splitext(mesh.name)[0] + "_remeshed.obj")
    write_mesh_file(obj, r.V, r.F)
    dist = surface_distances(mesh, r.V, r.F)
    d = {"mesh": path, "output": h5, "remeshed": obj, "bytes": size, **result.summary(),
         "seconds_remesh": r.stats["seconds"], **dist.to_dict()}
    _warn(result.warnings)
    _emit(args, d, [
        f"converted {mesh.name} ({len(mesh.V):,} vertices, {len(mesh.F):,} faces) in "
        f"{result.seconds_total:.1f}s (sampling {result.seconds_sampling:.1f}s, training "
        f"{result.seconds_training:.1f}s on {result.device})",
        *accuracy_lines(result),
        "(paper: 93% of Thingi10K below surface error 0.003 = 0.3% of size)",
        f"remeshed at {args.resolution}^3 in {r.stats['seconds']:.1f}s: Chamfer L1 "
        f"{format_fraction(dist.chamfer_l1)} of size, Hausdorff {format_fraction(dist.hausdorff)} "
        f"({dist.chamfer_l1:.5f} and {dist.hausdorff:.4f} in the unit-sphere frame)",
        f"file {h5}: {size:,} bytes ({result.implicit.weight_bytes:,} bytes of weights)",
        f"mesh {obj}",
    ])
    return 0


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Neural Implicit: meshes to "
                                "weight-encoded neural implicits (signed distance MLPs) and back.")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name, help, func):
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        c.set_defaults(func=func)
        return c

    c = command("convert", "convert a mesh (OBJ, OFF, PLY, STL) into a neural implicit .h5", cmd_convert)
    c.add_argument("mesh")
    c.add_argument("-o", "--output", required=True, help="output .h5 file")
    c.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file that is not a neural implicit (never an input)")
    c.add_argument("--importance", help=".npy file with one importance weight per vertex of the file")
    c.add_argument("--target-error", type=float, metavar="E",
                   help="error-driven sizing (paper A.2): the smallest network of a ladder of sizes "
                        "whose surface error (unit-sphere frame) is at most E; overrides --layers "
                        "and --hidden")
    c.add_argument("--budget-bytes", type=int, metavar="N",
                   help="budget mode: the most accurate network whose stored weights fit in N bytes "
                        "(chooses architecture, storage and training recipe)")
    add_settings_arguments(c)

    c = command("info", "describe a neural implicit .h5 file", cmd_info)
    c.add_argument("file")

    c = command("remesh", "extract a triangle mesh with marching cubes", cmd_remesh)
    c.add_argument("file")
    c.add_argument("-o", "--output", required=True, help="output mesh (.obj, .off, .ply, .stl)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing mesh file (never the input)")
    c.add_argument("--resolution", type=int, default=256, help="grid cells per axis (default 256)")

    c = command("error", "surface error, Chamfer and Hausdorff against a mesh", cmd_error)
    c.add_argument("file")
    c.add_argument("mesh")
    c.add_argument("--resolution", type=int, default=256, help="marching cubes resolution for Chamfer")

    c = command("import-paper", "convert a network of the paper's release (Keras .h5)", cmd_import_paper)
    c.add_argument("file")
    c.add_argument("--mesh", help="the source mesh, to recover the transform (minimum enclosing ball)")
    c.add_argument("-o", "--output", required=True, help="output .h5 file")
    c.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file that is not a neural implicit (never an input)")

    c = command("demo", "convert the bundled spot.obj, remesh it and print the figures", cmd_demo)
    c.add_argument("--mesh", help="another mesh instead of spot.obj")
    c.add_argument("--output-dir", help="where to write the .h5 and the remeshed .obj")
    c.add_argument("--resolution", type=int, default=256)
    add_settings_arguments(c)

    from .dataset_cli import add_convert_dir_command
    add_convert_dir_command(command)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "resolution", 256) is not None and not (8 <= getattr(args, "resolution", 256) <= 2048):
            raise InputError(f"--resolution must be in 8..2048, got {args.resolution}")
        # a hostile network overflows float32 on purpose: the overflow is reported as one clear
        # error by the code that finds it, not as numpy's RuntimeWarning lines around it
        with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return args.func(args)
    except InputError as e:
        return _fail(args, str(e), EXIT_BAD_INPUT)
    except Cancelled:
        return _fail(args, "cancelled", EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", EXIT_INTERRUPTED)


def _fail(args, message: str, code: int) -> int:
    message = " ".join(message.split())        # one line
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps({"error": message}) + "\n")
    sys.stderr.write(f"error: {message}\n")
    return code
