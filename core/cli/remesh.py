"""``python -m core remesh``: a triangle mesh from a neural implicit (marching cubes)."""

from ..common.outputs import check_output
from .flags import add_resolution_argument
from .output import emit, progress_bar, warn

NAME = "remesh"
HELP = "extract a triangle mesh with marching cubes"


def arguments(c) -> None:
    c.add_argument("file")
    c.add_argument("-o", "--output", required=True, help="output mesh (.obj, .off, .ply, .stl)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing mesh file (never the input)")
    add_resolution_argument(c, "marching cubes cells per axis of the network's bounding cube")
    c.add_argument("--sheet", action="store_true",
                   help="for a network trained as a shell: the open sheet it was trained around "
                        "(the shell's two sides moved onto it) instead of the closed shell")


def run(args) -> int:
    from ..geometry.remesh import remesh
    from ..meshes.mesh_io import write_mesh_file
    from ..representation.fileformat import load
    from ..samples.shell import sheet_of

    check_output(args.output, [args.file], kind="mesh", overwrite=args.overwrite)
    imp = load(args.file)
    with progress_bar(args) as bar:
        r = remesh(imp, resolution=args.resolution, progress=bar)
    V = sheet_of(imp, r.V, r.F)[0] if args.sheet else r.V
    write_mesh_file(args.output, V, r.F)
    warn(r.stats["warnings"])
    d = {"output": args.output, "vertices": int(len(r.V)), "faces": int(len(r.F)), **r.stats}
    emit(args, d, [f"wrote {args.output}: {len(r.V):,} vertices, {len(r.F):,} faces in "
                   f"{r.stats['seconds']:.2f}s ({r.stats['evaluations']:,} network evaluations, "
                   f"{r.stats['dense_evaluations'] / max(r.stats['evaluations'], 1):.1f}x fewer than dense)"])
    return 0
