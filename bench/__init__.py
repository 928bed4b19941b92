"""Benchmarks that print figures (docs/results.md and the other pages say which made what).

Run each from the repository root as a module, e.g. ``.venv/bin/python -m bench.dataset``: the root
is then on the import path, so scripts import ``core``, ``bench.x`` and ``tests.hostile`` as they
are, with no ``sys.path`` edits (tests/test_bench.py keeps it so).
"""
