"""Hostile input and output folders for convert-dir, crafted in code (issue 14).

``cases(tmpdir)`` builds the folders under ``tmpdir`` and returns a list of :class:`Case`:

* ``name``: short id, unique;
* ``class_name``: the class of problem: ``hang`` (an input that outlasts the time limit, or a
  FIFO whose opening would never end),
  ``corrupt_output`` (an existing output that does not load or is not ours: it must be converted
  again and replaced, noted in the row), ``blocked_output`` (a folder or file in the way of the
  output: a failed row naming it, never a fatal error), ``manifest`` (a damaged manifest from an
  earlier run: its bad lines are skipped, rows with NaN rewritten as strict JSON);
* ``path``: the input mesh (or FIFO) the case is about;
* ``expected``: the status of that input's manifest row after a run, ``"ok"`` or ``"failed"``;
* ``in_dir``, ``out_dir``, ``rel``: the folders to run ``convert_dir(in_dir, out_dir)`` on and the
  row's path; cases sharing ``(in_dir, out_dir)`` are meant for one run together;
* ``needle``: lowercase words the row's error (failed) or one of its warnings (ok) must contain;
* ``shape_timeout``: the ``--shape-timeout`` the group needs (seconds), or None for the default.

The meshes are small spheres (core.meshes.mesh.icosphere(2)); with settings that pass the result
check (tests/test_dataset_hostile.py: ``PASS``) every ``ok`` case converts in seconds. ``hang``
cases include a FIFO on POSIX only. Nothing here imports torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from core.dataset import MANIFEST_NAME, output_name
from core.meshes.mesh import icosphere
from core.meshes.mesh_io import write_mesh_file

#: Time limit for the group with a slow input: long enough for a small sphere's steps on a busy
#: 2-core machine (loading and sampling took about 1 s, the check about 2 s), well below the
#: slow sphere's loading.
HANG_TIMEOUT = 6.0
#: Rings of the slow sphere (1.4 M triangles).
SLOW_RINGS = 600


@dataclass
class Case:
    name: str
    class_name: str
    path: str
    expected: str
    in_dir: str
    out_dir: str
    rel: str
    needle: str = ""
    shape_timeout: Optional[float] = None


def write_sphere(path: str) -> None:
    """A closed unit sphere (162 vertices) as a mesh file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    V, F = icosphere(2)
    write_mesh_file(path, V, F)


def _output(out_dir: str, rel: str) -> str:
    path = os.path.join(out_dir, output_name(rel))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def _foreign_hdf5(path: str) -> None:
    """An HDF5 file of someone else's (no format attribute, a random dataset)."""
    import h5py
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=list(range(10)))
        f.attrs["creator"] = "another program"


def output_cases(tmpdir: str) -> list[Case]:
    """One folder pair: spheres whose outputs are damaged or blocked, and a damaged manifest."""
    in_dir, out_dir = os.path.join(tmpdir, "outputs", "in"), os.path.join(tmpdir, "outputs", "out")
    os.makedirs(out_dir, exist_ok=True)
    cases = []

    def case(name, class_name, rel, expected, needle, damage):
        path = os.path.join(in_dir, rel)
        write_sphere(path)
        damage(_output(out_dir, rel))
        cases.append(Case(name, class_name, path, expected, in_dir, out_dir, rel, needle))

    def garbage(p):
        with open(p, "wb") as fh:
            fh.write(b"\x89HDF\r\n\x1a\n" + b"\xff" * 100)      # HDF5 signature, then nothing valid

    def truncated_text(p):
        with open(p, "w") as fh:
            fh.write("this is not an h5 file")

    def mkdir(p):
        os.makedirs(p)

    def mkdir_part(p):
        os.makedirs(p + ".part")

    def stale_part(p):
        with open(p + ".part", "wb") as fh:
            fh.write(b"half a file from a killed run")

    case("garbage-output", "corrupt_output", "garbage.obj", "ok", "did not load", garbage)
    case("text-output", "corrupt_output", "text.obj", "ok", "did not load", truncated_text)
    case("foreign-hdf5-output", "corrupt_output", "foreign.obj", "ok", "replaced", _foreign_hdf5)
    case("folder-at-output", "blocked_output", "dir.obj", "failed", "folder is in the way", mkdir)
    case("folder-at-part", "blocked_output", "dirpart.obj", "failed", "folder is in the way",
         mkdir_part)
    case("stale-part-file", "corrupt_output", "stale.obj", "ok", "", stale_part)

    # a file where the output's folder must go: OUT/sub is a file, the input is sub/a.obj
    rel = "sub/a.obj"
    write_sphere(os.path.join(in_dir, rel))
    with open(os.path.join(out_dir, "sub"), "w") as fh:
        fh.write("a file where a folder must be")
    cases.append(Case("file-at-output-folder", "blocked_output", os.path.join(in_dir, rel), "failed",
                      in_dir, out_dir, rel, "where a folder must be"))

    # a manifest damaged in every way a reader can trip on; its NaN row must come back as null
    rel = "nan-row.obj"
    write_sphere(os.path.join(in_dir, rel))
    with open(os.path.join(out_dir, MANIFEST_NAME), "wb") as fh:
        fh.write(b"\xff\xfe not utf-8 \x80\n[1, 2, 3]\n\"a string\"\n{\"path\": 5}\n{\"no path\": 1}\n")
        fh.write(b'{"path": "gone.obj", "status": "ok", "surface_error": NaN, '
                 b'"seconds": Infinity}\n')
        fh.write(b'{"path": "nan-row.obj", "status": "ok", "surface_error": NaN}\n{"path": "half')
    cases.append(Case("damaged-manifest", "manifest", os.path.join(in_dir, rel), "ok", in_dir,
                      out_dir, rel, ""))
    return cases


def slow_sphere(path: str, rings: int = SLOW_RINGS) -> None:
    """A UV sphere of 4 * rings^2 triangles written as OBJ (60 MB at 600 rings): a real mesh whose
    loading alone takes longer than HANG_TIMEOUT (13 s at 600 rings on one core, 0.8 GB)."""
    th = np.linspace(0, np.pi, rings + 1)[1:-1]
    ph = np.linspace(0, 2 * np.pi, 2 * rings, endpoint=False)
    V = np.stack([np.outer(np.sin(th), np.cos(ph)).ravel(), np.outer(np.sin(th), np.sin(ph)).ravel(),
                  np.repeat(np.cos(th), 2 * rings)], axis=1)
    m = 2 * rings
    i, j = np.arange(rings - 2)[:, None] * m, np.arange(m)[None, :]
    a, b = (i + j).ravel(), (i + (j + 1) % m).ravel()
    c, d = (i + m + j).ravel(), (i + m + (j + 1) % m).ravel()
    write_mesh_file(path, V, np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)]))


def hang_cases(tmpdir: str) -> list[Case]:
    """One folder pair: a mesh whose loading outlasts the time limit (a.obj), a FIFO named b.obj
    (open() would block forever: refused at once, since mesh files are opened without blocking)
    and a sphere (c.obj), so with one worker the sphere only converts if the slow worker is killed
    and replaced."""
    in_dir, out_dir = os.path.join(tmpdir, "hang", "in"), os.path.join(tmpdir, "hang", "out")
    os.makedirs(in_dir, exist_ok=True)
    slow_sphere(os.path.join(in_dir, "a.obj"))
    out = [Case("slow-input", "hang", os.path.join(in_dir, "a.obj"), "failed", in_dir, out_dir,
                "a.obj", "timed out after", HANG_TIMEOUT)]
    if hasattr(os, "mkfifo"):
        os.mkfifo(os.path.join(in_dir, "b.obj"))
        out.append(Case("fifo-input", "hang", os.path.join(in_dir, "b.obj"), "failed", in_dir,
                        out_dir, "b.obj", "not a regular file", HANG_TIMEOUT))
    write_sphere(os.path.join(in_dir, "c.obj"))
    out.append(Case("after-slow", "hang", os.path.join(in_dir, "c.obj"), "ok", in_dir, out_dir,
                    "c.obj", "", HANG_TIMEOUT))
    return out


def cases(tmpdir: str) -> list[Case]:
    """Every hostile folder case (module docstring), built under ``tmpdir``."""
    return output_cases(tmpdir) + hang_cases(tmpdir)


def row_matches(case: Case, row: Optional[dict]) -> Optional[str]:
    """Why the manifest row of ``case`` is not what the case expects (None when it is)."""
    if row is None:
        return f"{case.name}: no manifest row for {case.rel}"
    if row.get("status") != case.expected:
        return f"{case.name}: status {row.get('status')!r}, expected {case.expected!r} ({row.get('error')})"
    texts = [row.get("error") or ""] if case.expected == "failed" else list(row.get("warnings") or [])
    if case.needle and not any(case.needle in t.lower() for t in texts):
        return f"{case.name}: {case.needle!r} not in {texts}"
    return None


__all__ = ["Case", "cases", "hang_cases", "output_cases", "row_matches", "write_sphere"]
