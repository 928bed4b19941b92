"""Every hostile input the tests craft, run through the command line as a user would run it.

Usage::

    python -m bench.hostile [--json bench/out/hostile.json] [--classes files meshes networks folders]

The crafted inputs come from ``tests/hostile/`` (one module per kind: .h5 files, mesh files,
networks to remesh, folders for convert-dir). Each input runs in its own ``python -m core``
process with a time limit, and the table counts, per kind and class of problem:

* **clear errors**: exit status 2 and one line on stderr, no traceback;
* **ok**: exit status 0;
* **tracebacks**: any other ending with a Python traceback or an unexpected exit status;
* **hangs**: still running at the time limit (killed);
* **as expected**: the outcome the case asks for (a clear error where it expects one, success or a
  clear error of the result check where it expects success);
* **peak MB**: the largest resident memory of one command (``wait4``'s ``ru_maxrss``).

docs/trust.md records the table.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

from core.common import jsonsafe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Seconds one command may run before it counts as a hang.
TIME_LIMIT = 120
#: Small training settings that pass the result check on the crafted valid meshes (tetrahedra,
#: spheres); the same as tests/test_dataset_hostile.py's PASS_FLAGS.
SMALL = ["--layers", "3", "--hidden", "32", "--pool", "200000", "--samples", "30000", "--epochs", "5",
         "--lr", "0.01", "--batch-size", "512", "--threads", "1"]


def run_core(args: list[str], limit: float = TIME_LIMIT) -> dict:
    """Run ``python -m core ARGS``; classify its ending and measure its peak memory."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "core", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=limit)
        hung = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        _, err = proc.communicate()
        hung = True
    seconds = time.perf_counter() - t0
    peak = _peak_mb(proc)
    lines = [ln for ln in (err or "").splitlines() if ln.strip() and not ln.startswith("warning:")]
    if hung:
        outcome = "hang"
    elif "Traceback" in (err or ""):
        outcome = "traceback"
    elif proc.returncode == 0:
        outcome = "ok"
    elif proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "):
        outcome = "clear error"
    else:
        outcome = "traceback"          # another exit status or several lines: not the promise
    return {"outcome": outcome, "seconds": seconds, "peak_mb": peak,
            "message": lines[-1][:300] if lines else "", "exit": proc.returncode}


def _peak_mb(proc) -> float | None:
    """Peak memory of a finished child, from the rusage ``os.wait4`` returned when it was reaped
    (see :func:`_patch_popen_rusage`); RUSAGE_CHILDREN would give the largest of all children."""
    usage = getattr(proc, "_neural_rusage", None)
    return None if usage is None else usage.ru_maxrss / 1024


def _patch_popen_rusage() -> None:
    """Make Popen keep each child's rusage (Popen reaps with waitpid, which drops it)."""
    original = subprocess.Popen._try_wait

    def try_wait(self, wait_flags):
        try:
            pid, sts, usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            return original(self, wait_flags)
        if pid == self.pid:
            self._neural_rusage = usage
        return pid, sts
    subprocess.Popen._try_wait = try_wait


def _folder(tmp: str, name: str) -> str:
    path = os.path.join(tmp, name)
    os.makedirs(path, exist_ok=True)
    return path


def single_rows(tmp: str, kind: str, module: str, command) -> list[dict]:
    """One command per crafted input of ``tests/hostile/<module>.py``; ``command(case, out_stem)``
    gives its arguments (``out_stem``: a fresh output path without extension)."""
    cases = importlib.import_module(f"tests.hostile.{module}").cases
    out_dir = _folder(tmp, "out-" + module)
    return [_row(kind, c, run_core(command(c, os.path.join(out_dir, c.name))))
            for c in cases(_folder(tmp, module))]


def file_rows(tmp: str) -> list[dict]:
    return single_rows(tmp, "h5 file", "files", lambda c, out: (
        ["info", c.path] if c.reader == "load" else ["import-paper", c.path, "-o", out + ".h5"]))


def mesh_rows(tmp: str) -> list[dict]:
    return single_rows(tmp, "mesh file", "meshes",
                       lambda c, out: ["convert", c.path, "-o", out + ".h5", *SMALL])


def network_rows(tmp: str) -> list[dict]:
    return single_rows(tmp, "network to remesh", "networks",
                       lambda c, out: ["remesh", c.path, "-o", out + ".obj"])


def folder_rows(tmp: str) -> list[dict]:
    """convert-dir once per folder pair; each case is judged by its manifest row."""
    from core.dataset import read_manifest
    from tests.hostile.folders import cases, row_matches
    groups = defaultdict(list)
    for c in cases(_folder(tmp, "folders")):
        groups[(c.in_dir, c.out_dir, c.shape_timeout)].append(c)
    rows = []
    for (in_dir, out_dir, timeout), group in groups.items():
        args = ["convert-dir", in_dir, "-o", out_dir, "--workers", "1", "--trainers", "1", *SMALL]
        if timeout:
            args += ["--shape-timeout", str(timeout)]
        result = run_core(args, limit=600)
        manifest = read_manifest(out_dir) if os.path.isdir(out_dir) else {}
        for c in group:
            problem = row_matches(c, manifest.get(c.rel))
            row = dict(result, message=(manifest.get(c.rel) or {}).get("error") or result["message"])
            row["as_expected"] = result["outcome"] == "ok" and problem is None
            rows.append({"kind": "folder for convert-dir", "name": c.name, "class": c.class_name,
                         "expected": c.expected, **row})
    return rows


def _row(kind: str, case, result: dict) -> dict:
    expected = case.expected
    if expected == "error":
        ok = result["outcome"] == "clear error" and getattr(case, "needle", "").lower() in \
            result["message"].lower()
    else:                              # success, or the result check's own clear refusal
        ok = result["outcome"] == "ok" or (result["outcome"] == "clear error"
                                           and "failed its check" in result["message"])
    return {"kind": kind, "name": case.name, "class": case.class_name, "expected": expected,
            "as_expected": ok, **result}


def table(rows: list[dict]) -> str:
    keys = sorted({(r["kind"], r["class"]) for r in rows})
    out = ["| input | class | tried | clear errors | ok | tracebacks | hangs | as expected | peak MB |",
           "|---|---|---|---|---|---|---|---|---|"]
    for kind, cls in keys:
        rs = [r for r in rows if (r["kind"], r["class"]) == (kind, cls)]
        count = {o: sum(r["outcome"] == o for r in rs) for o in ("clear error", "ok", "traceback", "hang")}
        peaks = [r["peak_mb"] for r in rs if r["peak_mb"] is not None]
        out.append(f"| {kind} | {cls} | {len(rs)} | {count['clear error']} | {count['ok']} | "
                   f"{count['traceback']} | {count['hang']} | {sum(r['as_expected'] for r in rs)} | "
                   f"{max(peaks) if peaks else float('nan'):.0f} |")
    total = {o: sum(r["outcome"] == o for r in rows) for o in ("clear error", "ok", "traceback", "hang")}
    peaks = [r["peak_mb"] for r in rows if r["peak_mb"] is not None]
    out.append(f"| **all** | | **{len(rows)}** | {total['clear error']} | {total['ok']} | "
               f"**{total['traceback']}** | **{total['hang']}** | {sum(r['as_expected'] for r in rows)} | "
               f"{max(peaks) if peaks else float('nan'):.0f} |")
    return "\n".join(out)


KINDS = {"files": file_rows, "meshes": mesh_rows, "networks": network_rows, "folders": folder_rows}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", default=os.path.join(ROOT, "bench", "out", "hostile.json"))
    p.add_argument("--classes", nargs="*", choices=sorted(KINDS), default=list(KINDS))
    args = p.parse_args()
    _patch_popen_rusage()
    rows = []
    with tempfile.TemporaryDirectory(prefix="neural-implicit-hostile-") as tmp:
        for kind in args.classes:
            t = time.perf_counter()
            rows += KINDS[kind](tmp)
            print(f"{kind}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    print(table(rows))
    for r in rows:
        if not r["as_expected"]:
            print(f"NOT AS EXPECTED: {r['kind']} {r['name']} ({r['class']}): {r['outcome']}, "
                  f"{r['message']}")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as fh:
        fh.write(jsonsafe.dumps({"rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
