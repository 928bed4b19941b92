"""No import cycle in core: every module's imports, those inside functions included, form a DAG.

Why: an import inside a function hides a cycle from Python (it runs after both modules loaded) but
not from the reader, and a module that needs its own importer cannot be read, tested or moved
alone. A package's __init__ re-exporting its submodules is not a cycle (Python runs the package
first); a submodule importing a name its package's __init__ defines is one.
"""

import ast
import os

from helpers import ROOT

def module_names(top: str, package: str = "core") -> dict[str, str]:
    """Dotted name -> file of every module of the package at ``top``."""
    names = {}
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = os.path.relpath(folder, top)
        parts = [package] + ([] if rel == "." else rel.split(os.sep))
        for f in files:
            if f.endswith(".py"):
                name = parts if f == "__init__.py" else parts + [f[:-3]]
                names[".".join(name)] = os.path.join(folder, f)
    return names


def imports(name: str, path: str, modules: dict[str, str]) -> set[str]:
    """The modules of ``modules`` that ``name`` imports, anywhere in its file."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:      # `import core.x.y` needs core.x.y
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]):
    """One cycle of ``graph`` as a list of names (first = last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def import_graph(top: str) -> dict[str, set[str]]:
    modules = module_names(top)
    return {name: imports(name, path, modules) for name, path in modules.items()}


def test_core_has_no_import_cycle():
    graph = import_graph(os.path.join(ROOT, "core"))
    assert {"core.cli", "core.dataset.run", "core.representation.fileformat",
            "core.conversion.checked"} <= set(graph)
    assert "core.dataset.steps" in graph["core.dataset.run"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in core: " + " -> ".join(cycle)


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    """The check itself: a cycle through a function-level relative import, and one through a
    name of the package's __init__, are found; a re-exporting __init__ alone is not a cycle."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text("def f():\n    from .b import g\n")
    (tmp_path / "b.py").write_text("from . import a\n")
    (tmp_path / "pkg" / "__init__.py").write_text("from .x import X\n")
    (tmp_path / "pkg" / "x.py").write_text("X = 1\n")
    (tmp_path / "pkg" / "y.py").write_text("from .x import X\n")
    graph = import_graph(str(tmp_path))
    assert graph["core.a"] == {"core.b"} and graph["core.b"] == {"core.a"}
    assert find_cycle(graph) in (["core.a", "core.b", "core.a"], ["core.b", "core.a", "core.b"])
    (tmp_path / "b.py").unlink()
    assert find_cycle(import_graph(str(tmp_path))) is None
    (tmp_path / "pkg" / "x.py").write_text("def f():\n    from . import helper\n")
    assert find_cycle(import_graph(str(tmp_path))) == ["core.pkg", "core.pkg.x", "core.pkg"]
