"""``python -m core demo``: convert the bundled spot.obj, remesh it and print what it cost."""

import os

from ..common.units import format_fraction
from .flags import add_resolution_argument, add_settings_arguments, settings_from_args
from .output import accuracy_lines, emit, progress_bar, warn

NAME = "demo"
HELP = "convert the bundled spot.obj, remesh it and print the figures"
DEMO_MESH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "data",
                         "spot.obj")


def arguments(c) -> None:
    c.add_argument("--mesh", help="another mesh instead of spot.obj")
    c.add_argument("--output-dir", help="where to write the .h5 and the remeshed .obj")
    add_resolution_argument(c, "marching cubes cells per axis of the remesh")
    add_settings_arguments(c)


def run(args) -> int:
    """Convert the bundled spot.obj with default settings, remesh it, print what it cost."""
    import tempfile

    from ..conversion.checked import convert_checked
    from ..geometry.metrics import surface_distances
    from ..geometry.remesh import remesh
    from ..meshes.mesh import load_mesh
    from ..meshes.mesh_io import write_mesh_file
    from ..representation.fileformat import save

    path = os.path.normpath(args.mesh or DEMO_MESH)
    out_dir = args.output_dir or tempfile.mkdtemp(prefix="neural-implicit-demo-")
    os.makedirs(out_dir, exist_ok=True)
    mesh = load_mesh(path)
    settings = settings_from_args(args)
    with progress_bar(args) as bar:
        result = convert_checked(mesh, settings, progress=bar)
        h5 = os.path.join(out_dir, os.path.splitext(mesh.name)[0] + ".h5")
        size = save(result.implicit, h5)
        r = remesh(result.implicit, resolution=args.resolution, progress=bar)
    obj = os.path.join(out_dir, os.path.splitext(mesh.name)[0] + "_remeshed.obj")
    write_mesh_file(obj, r.V, r.F)
    dist = surface_distances(mesh, r.V, r.F)
    d = {"mesh": path, "output": h5, "remeshed": obj, "bytes": size, **result.summary(),
         "seconds_remesh": r.stats["seconds"], **dist.to_dict()}
    warn(result.warnings)
    emit(args, d, [
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
