"""Draco-compressed mesh at a byte budget, through Blender's glTF exporter (the ``bpy`` module).

    .venv/bin/python -m bench.draco_baseline MESH BUDGET OUT.npz [--bits 14]

Why a script of its own: it imports ``bpy`` (Blender as a Python module), which core must never
need; bench/equal_bytes.py runs it in a child process. The mesh is decimated with libigl's qslim
(as core/geometry/baselines.py) to the most faces whose Draco encoding fits ``BUDGET`` bytes (the
whole mesh when it fits), exported as .glb with ``export_draco_mesh_compression_enable=True``
(position quantisation ``--bits``, compression level 6, no normals, UVs or materials), imported
back, and the decoded vertices and faces are written to OUT.npz with ``bytes`` (the Draco bitstream:
the bufferView that KHR_draco_mesh_compression points to, the analogue of ``weight_bytes``) and
``glb_bytes`` (the whole file, JSON header included).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile

import numpy as np



def draco_bytes(glb_path: str) -> int:
    """Length of the Draco bitstream(s) in a .glb (sum over the primitives' extension views)."""
    with open(glb_path, "rb") as fh:
        data = fh.read()
    length = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20:20 + length])
    views = doc.get("bufferViews", [])
    total = 0
    for mesh in doc.get("meshes", []):
        for prim in mesh["primitives"]:
            ext = prim.get("extensions", {}).get("KHR_draco_mesh_compression")
            if ext is None:
                raise RuntimeError("the exporter wrote no Draco extension")
            total += views[ext["bufferView"]]["byteLength"]
    return total


def encode(bpy, V, F, bits: int, path: str):
    """Export (V, F) as a Draco .glb and read it back: (bytes, glb_bytes, V', F')."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    me = bpy.data.meshes.new("shape")
    me.from_pydata(V.tolist(), [], F.tolist())
    me.update()
    ob = bpy.data.objects.new("shape", me)
    bpy.context.scene.collection.objects.link(ob)
    bpy.ops.export_scene.gltf(filepath=path, export_format="GLB", use_selection=False,
                              export_draco_mesh_compression_enable=True,
                              export_draco_mesh_compression_level=6,
                              export_draco_position_quantization=bits,
                              export_normals=False, export_materials="NONE")
    nbytes, glb = draco_bytes(path), os.path.getsize(path)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=path)
    obs = [o for o in bpy.data.objects if o.type == "MESH"]
    Vs, Fs, off = [], [], 0
    for o in obs:
        M = np.array(o.matrix_world)
        P = np.array([v.co[:] for v in o.data.vertices])
        Vs.append(P @ M[:3, :3].T + M[:3, 3])
        T = np.array([p.vertices[:] for p in o.data.polygons])
        Fs.append(T + off)
        off += len(P)
    return nbytes, glb, np.concatenate(Vs), np.concatenate(Fs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mesh")
    ap.add_argument("budget", type=int)
    ap.add_argument("out")
    ap.add_argument("--bits", type=int, default=14, help="position quantisation bits (Blender's default 14)")
    args = ap.parse_args()

    from core.geometry.baselines import _qslim
    from core.meshes.mesh import load_mesh
    import bpy

    mesh = load_mesh(args.mesh)
    path = os.path.join(tempfile.mkdtemp(prefix="draco-"), "shape.glb")
    cache = {}

    def at(m):
        if m not in cache:
            V, F = (mesh.V, mesh.F) if m >= len(mesh.F) else _qslim(mesh.V, mesh.F, m)
            cache[m] = (*encode(bpy, V, F, args.bits, path), m) if len(F) else None
        return cache[m]

    best = None
    full = at(len(mesh.F))
    if full[0] <= args.budget:
        best = full
    else:
        lo, hi = 4, len(mesh.F) - 1
        while lo <= hi:
            m = (lo + hi) // 2
            r = at(m)
            if r is not None and r[0] <= args.budget:
                if best is None or len(r[3]) > len(best[3]):
                    best = r
                lo = m + 1
            else:
                hi = m - 1
    if best is None:
        sys.exit(f"no Draco encoding of {args.mesh} fits {args.budget} bytes")
    nbytes, glb, V, F, m = best
    np.savez(args.out, V=V, F=F, bytes=nbytes, glb_bytes=glb, faces_target=m, bits=args.bits,
             lossless_topology=m >= len(mesh.F))


if __name__ == "__main__":
    main()
