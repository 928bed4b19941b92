"""``python -m core error``: surface error, Chamfer and Hausdorff of a neural implicit against a mesh."""

from ..common.units import format_fraction
from .flags import add_resolution_argument
from .output import emit

NAME = "error"
HELP = "surface error, Chamfer and Hausdorff against a mesh"


def arguments(c) -> None:
    c.add_argument("file")
    c.add_argument("mesh")
    add_resolution_argument(c, "marching cubes cells per axis of the mesh the Chamfer distance uses")


def measure(imp, mesh, resolution: int) -> dict:
    """Surface error, Chamfer and Hausdorff of an implicit against its source mesh."""
    from ..geometry.metrics import inside_agreement, surface_distances, surface_error
    from ..geometry.remesh import remesh

    r = remesh(imp, resolution=resolution)
    dist = surface_distances(mesh, r.V, r.F)
    return {"surface_error": surface_error(imp, mesh), **dist.to_dict(),
            "inside_agreement": inside_agreement(imp, mesh), "resolution": resolution}


def run(args) -> int:
    from ..meshes.mesh import load_mesh
    from ..representation.fileformat import load

    imp = load(args.file)
    mesh = load_mesh(args.mesh)
    d = measure(imp, mesh, args.resolution)
    emit(args, d, [f"surface error {format_fraction(d['surface_error'])}, Chamfer L1 "
                   f"{format_fraction(d['chamfer_l1'])}, Hausdorff {format_fraction(d['hausdorff'])} "
                   f"of the shape's size (unit-sphere frame: {d['surface_error']:.5f}, "
                   f"{d['chamfer_l1']:.5f}, {d['hausdorff']:.4f}; Chamfer L2 {d['chamfer_l2']:.2e}; "
                   f"marching cubes {args.resolution}^3), inside agreement {100 * d['inside_agreement']:.2f}%"])
    return 0
