"""Bench scripts run as modules from the repository root (``python -m bench.x``) and never edit
``sys.path`` to find ``core``, each other or the tests (bench/__init__.py)."""

import ast
import os

from helpers import ROOT

BENCH = os.path.join(ROOT, "bench")
#: The one place allowed to: packages ``--install`` put into build/gpu-deps on a lent GPU machine,
#: which has no .venv (third-party code, not this repository's).
ALLOWED = {("gpu_check.py", "use_deps_folder")}


def path_edits(source: str) -> list[tuple[str, int]]:
    """(enclosing function or "<module>", line) of every use of ``sys.path`` in ``source``."""
    found = []

    def visit(node, where):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            if (isinstance(child, ast.Attribute) and child.attr == "path"
                    and isinstance(child.value, ast.Name) and child.value.id == "sys"):
                found.append((where, child.lineno))
            visit(child, inner)

    visit(ast.parse(source), "<module>")
    return found


def test_no_bench_script_edits_sys_path():
    assert os.path.isfile(os.path.join(BENCH, "__init__.py"))
    bad = []
    for name in sorted(os.listdir(BENCH)):
        if name.endswith(".py"):
            with open(os.path.join(BENCH, name), encoding="utf-8") as fh:
                bad += [f"bench/{name}:{line} ({where})" for where, line in path_edits(fh.read())
                        if (name, where) not in ALLOWED]
    assert not bad, "sys.path edited (run bench scripts with python -m bench.NAME): " + ", ".join(bad)


def test_the_check_finds_an_edit():
    assert path_edits("import sys\nsys.path.insert(0, 'x')\n") == [("<module>", 2)]
    assert path_edits("def f():\n    if 1:\n        sys.path[:0] = ['x']\n") == [("f", 3)]
    assert path_edits("import os\nos.path.join('a')\n") == []
