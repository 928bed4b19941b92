"""``python -m core import-paper``: a network of the paper's release (Keras .h5) as our .h5."""

from ..common.outputs import check_output
from ..common.units import format_fraction
from .output import emit, warn

NAME = "import-paper"
HELP = "convert a network of the paper's release (Keras .h5)"


def arguments(c) -> None:
    c.add_argument("file")
    c.add_argument("--mesh", help="the source mesh, to recover the transform (minimum enclosing ball)")
    c.add_argument("-o", "--output", required=True, help="output .h5 file")
    c.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file that is not a neural implicit (never an input)")


def run(args) -> int:
    from ..conversion.verify import verify
    from ..meshes.mesh import load_mesh
    from ..representation.fileformat import save
    from ..representation.paper_import import load_paper_weights

    check_output(args.output, [args.file, args.mesh], kind="implicit", overwrite=args.overwrite)
    mesh = load_mesh(args.mesh) if args.mesh else None
    imp = load_paper_weights(args.file, mesh)
    d = {"output": args.output, "parameters": imp.parameters, "warnings": []}
    lines = []
    if mesh is not None:
        from ..geometry.metrics import surface_error
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
    warn(d["warnings"])
    emit(args, d, [f"wrote {args.output} ({d['bytes']:,} bytes, {imp.parameters:,} parameters)"]
        + lines)
    return 0
