"""Does mesh extraction limit the accuracy of the mesh a user gets? (issue 10)

    .venv/bin/python -m bench.extraction IMPLICIT.h5 MESH [IMPLICIT.h5 MESH ...]
        [--resolutions 128 256 512] [--markdown]

Remeshes each implicit (e.g. a budget-mode network saved by ``bench/equal_bytes.py --save``) with
marching cubes at several resolutions and measures each mesh against the source (unit-sphere frame).
If the figures do not move with resolution, the network, not the extraction, sets the error, and a
feature-preserving extraction (dual contouring) would not change the comparison.

Each resolution also meshes the source's *exact* signed distance on the same grid (the network's
cube, same sparse marching cubes): the floor that no network can pass at that resolution. "worst at"
is where the Hausdorff distance is attained (unit-sphere frame) and whether the point lies on the
source (a part the mesh misses) or on the mesh (surface it adds).
"""

from __future__ import annotations

import argparse

import numpy as np


from core.geometry.remesh import Field
from core.samples.sampling import SignedDistance


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", nargs="+", metavar="IMPLICIT MESH")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    from core.geometry.metrics import surface_distances
    from core.geometry.remesh import remesh
    from core.meshes.mesh import load_mesh
    from core.representation.fileformat import load
    from bench.variants import mesh_path

    if len(args.pairs) % 2:
        ap.error("give implicits and meshes in pairs: IMPLICIT.h5 MESH ...")
    head = ["mesh", "field", "resolution", "faces", "Chamfer", "Hausdorff", "p99", "worst at", "seconds"]
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for path, mesh_name in zip(args.pairs[::2], args.pairs[1::2]):
        imp, mesh = load(path), load_mesh(mesh_path(mesh_name))
        for R in args.resolutions:
            for name, field in (("network", imp), ("exact SDF", ExactField(imp, mesh))):
                r = remesh(field, resolution=R)
                d = surface_distances(mesh, r.V, r.F)
                at = ("(" + ", ".join(f"{x:.3f}" for x in d.worst_point) + ") on "
                      + ("source" if d.worst_on == "reference" else "mesh"))
                cells = [mesh.name, name, f"{R}^3", f"{len(r.F):,}", f"{d.chamfer_l1:.5f}",
                         f"{d.hausdorff:.4f}", f"{d.p99:.4f}", at, f"{r.stats['seconds']:.1f}"]
                print(("| " + " | ".join(cells) + " |") if args.markdown
                      else "  ".join(f"{c:>10}" for c in cells), flush=True)


class ExactField(Field):
    """The source mesh's exact signed distance on the cube and grid ``implicit`` is meshed on (its
    network frame), output in the mesh frame: a core.geometry.remesh.Field."""

    name, region = "the exact signed distance", "the cube"

    def __init__(self, implicit, mesh):
        self.implicit = implicit
        net = mesh.transformed(np.asarray(implicit.transform))
        self.sd = SignedDistance(net.V, net.F)
        self.lower, self.size = np.full(3, -1.0), 2.0
        self.mirrored = bool(np.linalg.det(np.asarray(implicit.transform)[:3, :3]) < 0)

    def values(self, X, chunk):
        return self.sd.signed(X).astype(np.float64), np.ones(len(X), bool)

    def to_output(self, V):
        return self.implicit.to_mesh(V)


if __name__ == "__main__":
    main()
