"""Hostile inputs crafted in code, one module per kind (issue 14): ``files`` (.h5 for the two
readers), ``meshes`` (mesh files), ``networks`` (networks to remesh), ``folders`` (convert-dir).
Each module's ``cases(tmpdir)`` writes its inputs and returns :class:`Case` records; the tests in
tests/test_*_hostile.py and ``bench/hostile.py`` run them."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """One crafted input: ``expected`` is "error" (one clear line containing ``needle``) or "ok";
    ``reader`` says which .h5 reader a file is for ("load" or "paper")."""

    name: str
    class_name: str
    path: str
    expected: str
    needle: str = ""
    reader: str = "load"
