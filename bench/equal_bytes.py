"""Equal-bytes comparison (paper Figure 8, issues 6 and 10): a neural implicit in budget mode against
classical representations of the same stored size.

    .venv/bin/python -m bench.equal_bytes MESH... [--budget 30000] [--json out.json]
        [--renders DIR --render-meshes bunny.off spot.obj] [--no-draco] [--default-net]

For each mesh (file paths, or names in ../shared/meshes; ``all`` for every shared mesh):

* **implicit**: ``core.training.budget.convert_to_budget(mesh, budget)`` (threads=1), remeshed with
  marching cubes at 256^3; bytes = ``Implicit.weight_bytes``. With ``--default-net`` also the
  default 8 x 32 float32 network (30,340 bytes, the paper's Figure 8 network).
* **qslim**: libigl quadric decimation to the most faces whose float32 vertices + int32 faces fit
  (``core.geometry.baselines.decimate_to_bytes``); a mesh that fits already is kept whole
  (lossless).
* **grid**: uniform SDF grid of the same bytes, int8 TSDF values (the strongest grid storage; the
  float32 grid of the paper is in the JSON too), meshed with marching cubes
  (``core.geometry.baselines.sdf_grid_to_bytes``).
* **draco**: Blender's glTF exporter with Draco compression (14-bit positions) on the mesh, decimated
  by qslim until the Draco bitstream fits (``bench/draco_baseline.py``, needs the ``bpy`` module).

Chamfer L1, Hausdorff and p99 distance to the source mesh, unit-sphere frame
(``core.geometry.baselines.measure_mesh``). Prints a table (Markdown with ``--markdown``) and, with
``--renders``, writes one side-by-side PNG per mesh named in ``--render-meshes``. Appends every row to
``--log`` (JSONL). Timings are in-process seconds with the load average next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench.variants import mesh_paths

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def draco(path, budget):
    """(V, F, bytes, glb_bytes) of the Draco baseline, or None when bpy is missing or it fails."""
    out = os.path.join(tempfile.mkdtemp(prefix="eqb-"), "d.npz")
    p = subprocess.run([sys.executable, "-m", "bench.draco_baseline", path, str(budget), out],
                       capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0 or not os.path.exists(out):
        return None, (p.stderr.strip().splitlines() or ["failed"])[-1]
    d = np.load(out)
    return (d["V"], d["F"], int(d["bytes"]), int(d["glb_bytes"])), None


def compare(path, budget, args):
    from core.common.errors import InputError
    from core.common.settings import ConversionSettings
    from core.geometry.baselines import (decimate_to_bytes, measure_implicit, measure_mesh, mesh_bytes,
                                         sdf_grid_to_bytes)
    from core.geometry.remesh import remesh
    from core.meshes.mesh import load_mesh
    from core.samples.sampling import SignedDistance
    from core.training.budget import convert_to_budget
    from core.training.convert import convert_mesh

    mesh = load_mesh(path)
    row = {"mesh": os.path.basename(path), "budget": budget,
           "original_bytes": mesh_bytes(len(mesh.V), len(mesh.F)),
           "vertices": int(len(mesh.V)), "faces": int(len(mesh.F))}
    shapes = {}
    sd = SignedDistance(mesh.V, mesh.F)

    try:
        q = decimate_to_bytes(mesh, budget)
        row["qslim"] = {"bytes": q.bytes, "method": q.method, **q.details, **measure_mesh(mesh, q.V, q.F)}
        shapes["qslim"] = ("mesh", q.V, q.F)
    except Exception as e:  # report, keep going: a baseline that cannot run is a result too
        row["qslim"] = {"error": str(e)}
    for storage in ("int8", "float32"):
        try:
            g = sdf_grid_to_bytes(mesh, budget, storage, sd=sd)
            row[f"grid_{storage}"] = {"bytes": g.bytes, **g.details, **measure_mesh(mesh, g.V, g.F)}
            if storage == "int8":
                shapes["grid"] = ("mesh", g.V, g.F)
        except Exception as e:
            row[f"grid_{storage}"] = {"error": str(e)}
    if not args.no_draco:
        d, err = draco(path, budget)
        if d is None:
            row["draco"] = {"error": err}
        else:
            V, F, b, glb = d
            row["draco"] = {"bytes": b, "glb_bytes": glb, **measure_mesh(mesh, V, F)}
            shapes["draco"] = ("mesh", V, F)

    settings = ConversionSettings(threads=1, seed=args.seed)
    if args.samples:
        settings = settings.replace(samples=args.samples, pool=10 * args.samples)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    r = convert_to_budget(mesh, budget, settings)
    seconds = time.perf_counter() - t
    imp = r.implicit
    try:
        m = measure_implicit(imp, mesh)
    except InputError as e:          # e.g. no surface: a result to report, not a crash
        m = {"error": str(e)}
    row["implicit"] = {"bytes": imp.weight_bytes, "storage": imp.storage,
                       "layers": imp.architecture.layers, "hidden": imp.architecture.hidden,
                       "encoding_frequencies": imp.architecture.encoding_frequencies,
                       "epochs": r.epochs_run, "seconds": seconds, "seconds_sampling": r.seconds_sampling,
                       "seconds_training": r.seconds_training, "load_average": load, **m}
    if "chamfer" in m:
        shapes["implicit"] = ("implicit", imp)
    if args.save:
        from core.representation.fileformat import save
        os.makedirs(args.save, exist_ok=True)
        save(imp, os.path.join(args.save, f"{os.path.splitext(row['mesh'])[0]}-{budget}.h5"))
    if args.default_net:
        load = os.getloadavg()[0]
        t = time.perf_counter()
        rd = convert_mesh(mesh, settings)
        seconds = time.perf_counter() - t
        try:
            m = measure_implicit(rd.implicit, mesh)
            shapes["default"] = ("implicit", rd.implicit)
        except InputError as e:
            m = {"error": str(e)}
        row["default_net"] = {"bytes": rd.implicit.weight_bytes, "seconds": seconds,
                              "load_average": load, **m}
    if args.renders and row["mesh"] in (args.render_meshes or []):
        render_row(mesh, shapes, row, args)
    return row


def render_row(mesh, shapes, row, args):
    from panels import MeshField, render, save_row

    T = mesh.normalization()
    images, titles = [render(MeshField(mesh.V, mesh.F, T), T)], [
        f"original\n{row['original_bytes']:,} B"]
    for key, label in (("qslim", "qslim"), ("grid", "SDF grid int8"), ("draco", "Draco"),
                       ("default", "8x32 float32"), ("implicit", "implicit (budget)")):
        if key not in shapes:
            continue
        kind, *data = shapes[key]
        shape = MeshField(data[0], data[1], T) if kind == "mesh" else data[0]
        info = row[{"grid": "grid_int8", "default": "default_net"}.get(key, key)]
        images.append(render(shape, T))
        titles.append(f"{label}\n{info['bytes']:,} B, CD {info['chamfer']:.5f}, HD {info['hausdorff']:.4f}")
    os.makedirs(args.renders, exist_ok=True)
    stem = os.path.splitext(row["mesh"])[0].replace(".", "_")
    save_row(images, titles, os.path.join(args.renders, f"results-equal-bytes-{stem}.png"))


def verdict(row):
    """Wins of the implicit against qslim (Chamfer, Hausdorff) and the grid (both)."""
    i, q, g = row["implicit"], row.get("qslim", {}), row.get("grid_int8", {})
    out = {"mesh_fits_budget": row["original_bytes"] <= row["budget"]}
    if "chamfer" not in i:
        i = {"chamfer": float("inf"), "hausdorff": float("inf")}
    if "chamfer" in q:
        out["beats_qslim_chamfer"] = i["chamfer"] < q["chamfer"]
        out["beats_qslim_hausdorff"] = i["hausdorff"] < q["hausdorff"]
    if "chamfer" in g:
        out["beats_grid_both"] = i["chamfer"] < g["chamfer"] and i["hausdorff"] < g["hausdorff"]
    elif "error" in g and np.isfinite(i["chamfer"]):
        out["beats_grid_both"] = True          # the grid resolves no surface at all (too thin)
    return out


def table(rows, markdown=True):
    from bench.variants import format_table

    cols = ["implicit", "default_net", "qslim", "grid_int8", "draco"]
    head = ["mesh", "budget", "orig. bytes"] + [f"{c} CD / HD / p99" for c in cols] + ["impl. s", "load"]
    out = []
    for r in rows:
        cells = [r["mesh"], f"{r['budget']:,}", f"{r['original_bytes']:,}"]
        for c in cols:
            x = r.get(c, {})
            if "chamfer" in x:
                mark = " (whole mesh)" if x.get("method") == "original" else ""
                cells.append(f"{x['chamfer']:.5f} / {x['hausdorff']:.4f} / {x['p99']:.4f}{mark}")
            elif c in r:
                cells.append("no surface" if "no surface" in x.get("error", "") else "failed")
            else:
                cells.append("-")
        cells += [f"{r['implicit']['seconds']:.0f}", f"{r['implicit']['load_average']:.1f}"]
        out.append(cells)
    return format_table(head, out, markdown)


def summary(rows):
    v = [verdict(r) for r in rows]
    compressed = [x for x in v if not x["mesh_fits_budget"] and "beats_qslim_chamfer" in x]
    qc = [x for x in v if "beats_qslim_chamfer" in x]
    g = [x for x in v if "beats_grid_both" in x]
    return {
        "meshes": len(rows),
        "beats_qslim_chamfer": f"{sum(x['beats_qslim_chamfer'] for x in qc)}/{len(qc)}",
        "beats_qslim_hausdorff": f"{sum(x['beats_qslim_hausdorff'] for x in qc)}/{len(qc)}",
        "beats_qslim_chamfer_where_decimation_is_needed":
            f"{sum(x['beats_qslim_chamfer'] for x in compressed)}/{len(compressed)}",
        "beats_grid_both_metrics": f"{sum(x['beats_grid_both'] for x in g)}/{len(g)}",
    }


def row_key(mesh, budget, args):
    """What makes two rows the same measurement (the log's older rows have no seed: seed 0)."""
    return (mesh, budget, args.seed, args.samples, args.default_net, not args.no_draco)


def logged_rows(args):
    """The latest row of --log for each measurement key."""
    out = {}
    if not os.path.exists(args.log):
        return out
    with open(args.log) as fh:
        for line in fh:
            r = json.loads(line)
            ns = argparse.Namespace(seed=r.get("seed", 0), samples=r.get("samples"),
                                    default_net="default_net" in r, no_draco="draco" not in r)
            out[row_key(r["mesh"], r["budget"], ns)] = r
    return out


def needs_render(row, args):
    """A reused row whose side-by-side image is asked for but missing must be measured again."""
    if not args.renders or row["mesh"] not in (args.render_meshes or []):
        return False
    stem = os.path.splitext(row["mesh"])[0].replace(".", "_")
    return not os.path.exists(os.path.join(args.renders, f"results-equal-bytes-{stem}.png"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("meshes", nargs="+", help="mesh files, names in ../shared/meshes, or 'all'")
    ap.add_argument("--budget", type=int, nargs="+", default=[30_000],
                    help="bytes (default 30000); several values give a rate-distortion curve")
    ap.add_argument("--curve", help="with several budgets: PNG of Chamfer and Hausdorff against bytes")
    ap.add_argument("--save", help="folder to save the budget-mode implicits (.h5) in")
    ap.add_argument("--json", help="write all rows to this file")
    ap.add_argument("--log", default=os.path.join(HERE, "out", "equal_bytes.jsonl"),
                    help="append rows to this JSONL log (default bench/out/equal_bytes.jsonl)")
    ap.add_argument("--renders", help="folder for side-by-side PNGs")
    ap.add_argument("--render-meshes", nargs="*", help="file names to render (default: none)")
    ap.add_argument("--no-draco", action="store_true", help="skip the Draco baseline (needs bpy)")
    ap.add_argument("--default-net", action="store_true", help="also the default 8x32 float32 network")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, help="training samples (smoke tests only; default as settings)")
    ap.add_argument("--resume", action="store_true",
                    help="reuse rows of --log measured with the same mesh, budget, seed and options "
                         "(an interrupted run continues where it stopped)")
    args = ap.parse_args()

    rows = []
    os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
    done = logged_rows(args) if args.resume else {}
    for path, budget in [(p, b) for p in mesh_paths(args.meshes) for b in args.budget]:
        row = done.get(row_key(os.path.basename(path), budget, args))
        if row is not None and not needs_render(row, args):
            print(f"# {row['mesh']} at {budget} B: reused from {args.log}", file=sys.stderr, flush=True)
            rows.append(row)
            continue
        row = compare(path, budget, args)
        row.update(seed=args.seed, samples=args.samples)
        row["verdict"] = verdict(row)
        rows.append(row)
        with open(args.log, "a") as fh:
            fh.write(json.dumps(row, default=float) + "\n")
        i = row["implicit"]
        print(f"# {row['mesh']} at {budget} B: implicit {i['layers']}x{i['hidden']} {i['storage']} {i['bytes']} B "
              f"CD {i.get('chamfer', float('nan')):.5f} HD {i.get('hausdorff', float('nan')):.4f} "
              f"({i['seconds']:.0f} s, load {i['load_average']:.1f}); {row['verdict']}",
              file=sys.stderr, flush=True)
    print(table(rows, args.markdown))
    s = summary(rows)
    print("\n" + json.dumps(s))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "summary": s}, fh, indent=1, default=float)
    if args.curve:
        plot_curve(rows, args.curve)


def plot_curve(rows, path):
    """Chamfer and Hausdorff against stored bytes, one line per method, one row of plots per mesh."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    meshes = sorted({r["mesh"] for r in rows})
    fig, axes = plt.subplots(len(meshes), 2, figsize=(9, 3.2 * len(meshes)), dpi=100, squeeze=False)
    for ax, mesh in zip(axes, meshes):
        rs = sorted((r for r in rows if r["mesh"] == mesh), key=lambda r: r["budget"])
        for key, label, style in (("implicit", "implicit (budget mode)", "o-"), ("qslim", "qslim", "s-"),
                                  ("grid_int8", "SDF grid int8", "^-"), ("draco", "Draco + qslim", "d-")):
            pts = [(r[key]["bytes"], r[key]["chamfer"], r[key]["hausdorff"]) for r in rs
                   if "chamfer" in r.get(key, {})]
            if pts:
                b, c, h = zip(*pts)
                ax[0].plot(b, c, style, label=label)
                ax[1].plot(b, h, style, label=label)
        budgets = sorted({r["budget"] for r in rs})
        for a, t in zip(ax, ("Chamfer L1", "Hausdorff")):
            a.set_xscale("log"); a.set_yscale("log"); a.set_xlabel("stored bytes")
            a.set_xticks(budgets, [f"{b // 1000}k" for b in budgets])
            a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            a.set_title(f"{mesh}: {t} (unit sphere)", fontsize=9)
        ax[0].legend(fontsize=7)
    fig.tight_layout(); fig.savefig(path); plt.close(fig)


if __name__ == "__main__":
    main()
