"""Fill the generated blocks of docs/results.md from the benchmarks' JSON output (no hand-typed numbers).

    .venv/bin/python -m bench.make_results [--out bench/out] [--doc docs/results.md]

Every block ``<!-- BEGIN name -->`` ... ``<!-- END name -->`` of the document is replaced by what the
generator ``name`` below makes of ``OUT/<file>.json`` (the files the commands in docs/results.md
write); a block whose input is missing is left as it is and reported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys

from bench.variants import format_table

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _load(out, name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    with open(path) as fh:
        return json.load(fh)


def accuracy(out):
    from bench import accuracy as bench
    d = _load(out, "accuracy.json")
    s = d["summary"]
    return (bench.table(d["rows"]) + "\n\n"
            f"**{s['meshes'] - s['failed']} of {s['meshes']} meshes converted; "
            f"{100 * s['share_below_0.003']:.0f} % below the paper's 0.003 surface error** (paper: "
            f"{100 * s['paper']['share_below_0.003']:.0f} % of Thingi10K); median "
            f"{s['median_surface_error']:.5f}, worst {s['worst_surface_error']:.5f} ({s['worst_mesh']}; "
            f"paper's worst {s['paper']['worst']}).")


def _equal_rows(out, budget=30_000):
    """The equal-bytes rows at ``budget``. The default network's column is taken from accuracy.json
    when it exists: bench/accuracy.py converts every mesh with exactly the default settings
    (threads=1, seed 0) and measures it the same way, so one run serves both tables and the column
    always shows the current defaults."""
    from bench import equal_bytes as bench
    d = _load(out, "equal_bytes.json")
    rows = [r for r in d["rows"] if r["budget"] == budget]
    try:
        acc = {r["mesh"]: r for r in _load(out, "accuracy.json")["rows"] if "chamfer" in r}
    except FileNotFoundError:
        acc = {}
    for r in rows:
        if r["mesh"] in acc:
            a = acc[r["mesh"]]
            r["default_net"] = {"bytes": a["weight_bytes"], "seconds": a["seconds"],
                                "load_average": a["load_average"],
                                **{k: a[k] for k in ("chamfer", "hausdorff", "p99")}}
        r["verdict"] = bench.verdict(r)
    return rows, bench.summary(rows)


def equal_bytes(out):
    from bench import equal_bytes as bench
    rows, s = _equal_rows(out)
    fits = [r["mesh"] for r in rows if r["original_bytes"] <= r["budget"]]
    return (bench.table(rows) + "\n\n"
            f"At 30,000 bytes the budget-mode implicit has a lower Chamfer distance than qslim on "
            f"**{s['beats_qslim_chamfer']}** meshes ({s['beats_qslim_chamfer_where_decimation_is_needed']} "
            f"of those that must be decimated to fit) and a lower Hausdorff distance on "
            f"**{s['beats_qslim_hausdorff']}**; it beats the int8 SDF grid on both metrics on "
            f"**{s['beats_grid_both_metrics']}**. Meshes whose float32/int32 storage already fits "
            f"30,000 bytes (qslim keeps them whole, error 0): {', '.join(fits) or 'none'}.")


def equal_bytes_bytes(out):
    rows, _ = _equal_rows(out)
    head = ["mesh", "implicit", "bytes", "8x32 float32 bytes", "qslim faces / vertices / bytes",
            "grid int8 points / bytes", "grid float32 points", "Draco bytes (.glb file)"]
    cells = []
    for r in rows:
        i, q, g, g32, d = (r.get(k, {}) for k in ("implicit", "qslim", "grid_int8", "grid_float32", "draco"))
        cells.append([
            r["mesh"], f"{i.get('layers')}x{i.get('hidden')} {i.get('storage')} PE{i.get('encoding_frequencies')}",
            f"{i.get('bytes', 0):,}", f"{r.get('default_net', {}).get('bytes', 0):,}",
            f"{q.get('faces', '-')} / {q.get('vertices', '-')} / {q.get('bytes', 0):,}"
            + (" (whole)" if q.get("method") == "original" else ""),
            f"{'x'.join(map(str, g.get('shape', [])))} / {g.get('bytes', 0):,}",
            'x'.join(map(str, g32.get('shape', []))),
            f"{d.get('bytes', 0):,} ({d.get('glb_bytes', 0):,})" if "bytes" in d else "-"])
    return format_table(head, cells)


#: Seeds of the bunny.off budget-mode runs: seed 0 is the equal-bytes run over all meshes.
BUNNY_SEEDS = (0, 1, 2, 3, 4)


def bunny_seed_rows(out):
    """(seed, equal-bytes row of bunny.off at 30,000 bytes) for every seed whose run exists."""
    found = []
    for seed in BUNNY_SEEDS:
        try:
            d = _load(out, "equal_bytes.json" if seed == 0 else f"equal_bytes_seed{seed}.json")
        except FileNotFoundError:
            continue
        r = next((r for r in d["rows"] if r["mesh"] == "bunny.off" and r["budget"] == 30_000), None)
        if r:
            found.append((seed, r))
    return found


def equal_bytes_seeds(out):
    if not bunny_seed_rows(out):
        raise FileNotFoundError("no equal_bytes run of bunny.off")
    rows = []
    for seed, r in bunny_seed_rows(out):
        i, q = r["implicit"], r["qslim"]
        rows.append([seed, f"{i['chamfer']:.5f}", f"{i['hausdorff']:.4f}", f"{i['p99']:.4f}",
                     f"{q['chamfer']:.5f}", f"{q['hausdorff']:.4f}", f"{q['p99']:.4f}",
                     f"{i['seconds']:.0f} (sampling {i['seconds_sampling']:.0f}, training "
                     f"{i['seconds_training']:.0f}; load {i['load_average']:.1f})"])
    return format_table(["seed", "implicit Chamfer", "implicit Hausdorff", "implicit p99", "qslim Chamfer",
                         "qslim Hausdorff", "qslim p99", "budget-mode seconds"], rows)


def rate_distortion(out):
    from bench import equal_bytes as bench
    d = _load(out, "rate_distortion.json")
    return bench.table(d["rows"])


def _simple(module, file, table="table"):
    def gen(out):
        mod = importlib.import_module(f"bench.{module}")
        return getattr(mod, table)(_load(out, file))
    return gen


def sizing(out):
    rows = []
    for f in sorted(os.listdir(out)):
        if not (f.startswith("sizing_") and f.endswith(".json")):
            continue
        d = _load(out, f)
        s = d["sizing"]
        tried = ", ".join(f"{t['layers']}x{t['hidden']}: {t['error']:.5f} ({t['weight_bytes']:,} B, "
                          f"{t['seconds']:.0f} s)" for t in s["tried"])
        rows.append([d.get("mesh", f[7:-5]), s["target"], "yes" if s["reached"] else "**no**", tried,
                     f"{d['seconds_total']:.0f}"])
    return format_table(["mesh", "target surface error", "reached", "sizes tried: surface error", "total s"],
                        rows)


def headline(out):
    """The page's summary of accuracy at default settings (section 3's JSON)."""
    lines = []
    try:
        a = _load(out, "accuracy.json")["summary"]
        from core.common.settings import ConversionSettings
        d = ConversionSettings()
        lines.append(f"* **Accuracy at default settings** ({d.layers} × {d.hidden}, {d.epochs} epochs): "
                     f"{100 * a['share_below_0.003']:.0f} % of the {a['meshes'] - a['failed']} real meshes "
                     f"below the paper's 0.003 surface error (paper: {100 * a['paper']['share_below_0.003']:.0f} % "
                     f"of Thingi10K), median {a['median_surface_error']:.5f}, worst {a['worst_surface_error']:.5f} "
                     f"({a['worst_mesh']}); section 3.")
    except (FileNotFoundError, KeyError):
        pass
    if not lines:
        raise FileNotFoundError("no benchmark output yet")
    return "\n".join(lines)


def headline_bytes(out):
    """The page's summary of the comparison at equal bytes (section 1's JSON)."""
    lines = []
    try:
        rows, sm = _equal_rows(out)
        b = next(r for r in rows if r["mesh"] == "bunny.off")
        i, q, g, d = b["implicit"], b["qslim"], b["grid_int8"], b.get("draco", {})
        seeds = [r["implicit"] for _, r in bunny_seed_rows(out)]
        spread = ""
        if len(seeds) > 1:
            cds, hds = [x["chamfer"] for x in seeds], [x["hausdorff"] for x in seeds]
            def wins(xs, ref):
                n = sum(x < ref for x in xs)
                return "every seed" if n == len(xs) else f"{n} of {len(xs)} seeds"
            spread = (f" (over {len(seeds)} seeds Chamfer {min(cds):.5f}–{max(cds):.5f}, Hausdorff "
                      f"{min(hds):.4f}–{max(hds):.4f}: below qslim's Chamfer at {wins(cds, q['chamfer'])}, "
                      f"its Hausdorff at {wins(hds, q['hausdorff'])})")
        lines.append(
            f"* **bunny.off at 30,000 bytes**: budget-mode implicit Chamfer {i['chamfer']:.5f} / Hausdorff "
            f"{i['hausdorff']:.4f} against qslim {q['chamfer']:.5f} / {q['hausdorff']:.4f} and the int8 SDF grid "
            f"{g['chamfer']:.5f} / {g['hausdorff']:.4f}{spread}, in {i['seconds']:.0f} s on one core"
            + (f"; Draco stores the whole mesh in {d['bytes']:,} bytes at Chamfer {d['chamfer']:.6f}" if "bytes" in d
               else "") + "; section 1.")
        lines.append(
            f"* **Over all {sm['meshes']} meshes at 30,000 bytes**: lower Chamfer than qslim on "
            f"{sm['beats_qslim_chamfer']} ({sm['beats_qslim_chamfer_where_decimation_is_needed']} of the meshes "
            f"that must be decimated to fit), lower Hausdorff on {sm['beats_qslim_hausdorff']}, better than the "
            f"SDF grid on both metrics on {sm['beats_grid_both_metrics']}; section 1.")
    except (FileNotFoundError, KeyError, StopIteration):
        pass
    if not lines:
        raise FileNotFoundError("no benchmark output yet")
    return "\n".join(lines)


def core_targets(out):
    """Issue 2's targets from bench/convert.py: bunny end to end, and ours against the paper's networks."""
    parts = []
    rows = []
    for name, label in (("convert_bunny_threads_all.json", "2 (--threads 2)"),
                        ("convert_bunny_threads1.json", "1 (the default on 2 cores: all but one)")):
        try:
            b = next(r for r in _load(out, name) if r["mesh"] == "bunny.off")
        except (FileNotFoundError, StopIteration):
            continue
        rows.append([label, f"{b['wall_seconds']:.1f}" if "wall_seconds" in b else "-",
                     f"{b['seconds_total']:.1f}", f"{b['seconds_sampling']:.1f}",
                     f"{b['seconds_training']:.1f}", f"{b['peak_memory_mb']:.0f}", f"{b['remesh_seconds']:.2f}",
                     f"{b['remesh_saving']:.0f}x", f"{b['surface_error']:.5f}", f"{b['bytes']:,}"])
    if rows:
        parts.append(format_table(["threads", "wall s (the command)", "total s", "sampling s",
                                   "training s", "peak MB",
                                   "remesh 256³ s", "evaluations saved", "surface error", "file bytes"], rows))
    paper_dir = os.path.join(ROOT, os.pardir, "shared", "paper-weights")
    try:
        prow = [r for r in _load(out, "convert_paper_meshes.json") if "paper_surface_error" in r]
    except FileNotFoundError:
        prow = []
    try:       # budget mode at 30,000 bytes (section 1): the paper's network has 30,340 bytes of weights
        budget = {r["mesh"]: r["implicit"] for r in _load(out, "equal_bytes.json")["rows"]
                  if r["budget"] == 30_000 and "surface_error" in r["implicit"]}
    except FileNotFoundError:
        budget = {}
    if prow:
        cells = []
        for r in prow:
            pf = os.path.join(paper_dir, os.path.splitext(r["mesh"])[0] + "_sf.h5")
            psize = os.path.getsize(pf) if os.path.exists(pf) else 0
            b = budget.get(r["mesh"], {})
            cells.append([r["mesh"], f"{r['paper_surface_error']:.5f}", f"{r['surface_error']:.5f}",
                          "ours" if r["surface_error"] < r["paper_surface_error"] else "**paper**",
                          *([f"{b['surface_error']:.5f}" if b else "-"] if budget else []),
                          f"{psize:,}", f"{r['bytes']:,}", f"{r['seconds_total']:.0f}"])
        parts.append(format_table(["mesh", "paper's network: surface error", "ours, default", "lower",
                                   *(["ours, budget mode 30,000 B"] if budget else []),
                                   "paper's file bytes", "our file bytes",
                                   "our seconds (default, 1 thread)"], cells))
    try:
        r = _load(out, "convert_679615_idle.json")[0]
        parts.append(f"Remeshing at 256³ is slowest where the sparse scheme saves least: 679615.stl "
                     f"({r['remesh_saving']:.0f}x fewer evaluations than dense) remeshed in "
                     f"{r['remesh_seconds']:.2f} s on the idle machine (end to end {r['seconds_total']:.0f} s, "
                     f"surface error {r['surface_error']:.5f}).")
    except (FileNotFoundError, IndexError, KeyError):
        pass
    if not parts:
        raise FileNotFoundError("no bench/convert.py output")
    return "\n\n".join(parts)


def extraction(out):
    with open(os.path.join(out, "extraction.md")) as fh:
        return fh.read().strip()


# ----------------------------------------------------------------------------- GPU figures (issue 15)

#: The GPU check's JSON, committed next to the page: bench/out/ is git-ignored and scratch, but a GPU
#: machine is lent rarely and for minutes, so its one run cannot be redone at will; the file that
#: backs the figures must be kept with them. Copy ``python build.py gpu-check``'s output here.
GPU_CHECK_JSON = os.path.join(ROOT, "docs", "gpu_check.json")
GPU_NOT_MEASURED = "Not measured yet: no GPU was available."


def _num(x, fmt):
    return format(x, fmt) if isinstance(x, (int, float)) else "-"


def _gpu_failures(steps):
    return [f"{name}: {r['status']} ({r.get('error')})" for name, r in steps.items()
            if r.get("status") != "ok"]


def gpu_tables(d):
    """Markdown tables of one bench/gpu_check.py run, any device (the caller decides what to show)."""
    steps = d.get("steps", {})
    parts = []
    conv = [(label, steps[n]) for n, label in (("convert", "default settings"),
                                                ("budget", f"budget mode, {steps.get('budget', {}).get('budget_bytes', 30_000):,} B"))
            if n in steps and "seconds_total" in steps[n]]
    if conv:
        parts.append(format_table(
            ["conversion", "mesh", "network", "total s", "sampling s", "training s", "surface error",
             "Chamfer", "Hausdorff", "p99", "remesh s", "weight bytes", "GPU peak MB"],
            [[label, r.get("mesh"), r.get("architecture"), _num(r["seconds_total"], ".1f"),
              _num(r.get("seconds_sampling"), ".1f"), _num(r.get("seconds_training"), ".1f"),
              _num(r.get("surface_error"), ".5f"), _num(r.get("chamfer"), ".5f"),
              _num(r.get("hausdorff"), ".4f"), _num(r.get("p99"), ".4f"),
              _num(r.get("remesh_seconds"), ".2f"), _num(r.get("weight_bytes"), ",d"),
              _num(r.get("gpu_peak_mb"), ".0f")] for label, r in conv]))
    runs = steps.get("stacked", {}).get("runs", [])
    if runs:
        parts.append(format_table(
            ["shapes per stack", "shapes", "converted", "failed", "seconds", "shapes per hour", "recipe"],
            [[r["shapes_per_batch"], r["shapes"], r.get("converted", "-"), r.get("failed", "-"),
              _num(r.get("seconds"), ".1f"),
              _num(r.get("shapes_per_hour"), ",.0f") if r.get("status") == "ok" else
              f"{_num(r.get('shapes_per_hour_partial'), ',.0f')} (stopped: {r.get('error')})",
              f"{r['recipe']['samples']:,} samples, pool {r['recipe']['pool']:,}, {r['recipe']['epochs']} epochs"]
             for r in runs]))
    vp = steps.get("viewport", {})
    tracers = [(name, vp[key]) for key, name in (("gpu_tracer", "viewport shader (Blender GPU)"),
                                                 ("numpy_tracer",
                                                  "core.geometry.trace (numpy, CPU)")) if key in vp]
    if tracers:
        parts.append(format_table(
            ["tracer", "size", "ms per frame", "evaluations per s", "steps per traced pixel", "renderer"],
            [[name, f"{t['width']}x{t['height']}", _num(t["ms_per_frame"], ".1f"),
              _num(t.get("evaluations_per_s"), ",.0f"), _num(t.get("steps_per_traced_pixel"), ".1f"),
              t.get("renderer", "-")] if "ms_per_frame" in t else
             [name, "-", f"not measured: {t.get('error')}", "-", "-", "-"] for name, t in tracers]))
    failures = _gpu_failures(steps)
    if failures:
        parts.append("Steps that did not finish: " + "; ".join(failures) + ".")
    if not parts:
        raise KeyError("the GPU check's JSON holds no finished step")
    return "\n\n".join(parts)


def gpu_check_section(path=GPU_CHECK_JSON):
    """The GPU section: the tables of a full run on CUDA, else the sentence saying there is none
    (a --quick or --device cpu run tests plumbing; its figures are never shown as GPU figures)."""
    if not os.path.exists(path):
        return GPU_NOT_MEASURED
    with open(path) as fh:
        d = json.load(fh)
    if not d.get("available") or d.get("device") != "cuda" or d.get("mode") != "full":
        why = d.get("reason") or f"the JSON is a {d.get('mode')} run on {d.get('device')}"
        return f"{GPU_NOT_MEASURED} ({why})"
    env = d.get("environment", {})
    head = (f"Measured {d.get('finished_at', '?')} on {env.get('device_name', '?')} with "
            f"{env.get('cpu_count', '?')} CPU cores, torch {env.get('torch', '?')}, CUDA "
            f"{env.get('torch_cuda', '?')}, in {_num(d.get('wall_seconds'), '.0f')} s "
            f"(`python build.py gpu-check`; JSON: docs/gpu_check.json).")
    return head + "\n\n" + gpu_tables(d)


def gpu_check(out):
    """Generator of the ``gpu_check`` block; reads the committed docs/gpu_check.json, not ``out``."""
    return gpu_check_section(GPU_CHECK_JSON)


GENERATORS = {
    "accuracy": accuracy, "equal_bytes": equal_bytes, "equal_bytes_bytes": equal_bytes_bytes,
    "equal_bytes_seeds": equal_bytes_seeds, "rate_distortion": rate_distortion,
    "budget_levers": _simple("budget_levers", "budget_levers.json"),
    "size_sweep": _simple("size_sweep", "size_sweep.json"),
    "sampling_ablation": _simple("sampling_ablation", "sampling_ablation.json"),
    "sampling_far": _simple("sampling_ablation", "sampling_far.json"),
    "activations": _simple("activations", "activations.json"),
    "time_to_accuracy": _simple("time_to_accuracy", "time_to_accuracy.json"),
    "time_to_accuracy_thin": _simple("time_to_accuracy", "time_to_accuracy_thin.json"),
    "step_rate": _simple("time_to_accuracy", "step_rate.json", "step_table"),
    "budget_recipe": _simple("budget_recipe", "budget_recipe.json"),
    "parts": _simple("parts", "parts_split.json"),
    "sizing": sizing, "extraction": extraction, "headline": headline,
    "headline_bytes": headline_bytes,
    "core_targets": core_targets, "gpu_check": gpu_check,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "results.md"))
    args = ap.parse_args()
    with open(args.doc) as fh:
        doc = fh.read()
    for name in re.findall(r"<!-- BEGIN (\w+) -->", doc):
        try:
            body = GENERATORS[name](args.out)
        except (FileNotFoundError, KeyError) as e:
            print(f"{name}: left as it is ({type(e).__name__}: {e})", file=sys.stderr)
            continue
        doc = re.sub(rf"<!-- BEGIN {name} -->.*?<!-- END {name} -->",
                     lambda m: f"<!-- BEGIN {name} -->\n{body}\n<!-- END {name} -->", doc, flags=re.S)
        print(f"{name}: filled", file=sys.stderr)
    with open(args.doc, "w") as fh:
        fh.write(doc)


if __name__ == "__main__":
    main()
