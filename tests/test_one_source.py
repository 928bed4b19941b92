"""Every rule is defined once: the command line, the file's metadata, the training knobs, budget
mode's and sizing's overrides and the remesh resolutions are all derived from core's descriptions
(ConversionSettings, core.conversion.checked.SizeMode, core.geometry.remesh's constants); a
hand-made copy fails here. The add-on's side is checked in real Blender
(tests/addon/test_addon_menus.py)."""

import argparse
import ast
import os
from dataclasses import fields

import pytest

from core.cli import build_parser
from core.common.settings import ConversionSettings
from core.conversion.checked import SizeMode
from core.geometry.remesh import DEFAULT_RESOLUTION, INTERACTIVE_RESOLUTION, MAX_RESOLUTION, MIN_RESOLUTION
from core.meshes.mesh import mesh_from_arrays
from core.training import budget, sizing
from core.training.convert import conversion_metadata
from core.training.train import TrainConfig
from helpers import ROOT

SETTINGS = {f.name: f for f in fields(ConversionSettings)}


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _options(name: str) -> dict:
    return {a.dest: a for a in _subparser(name)._actions if a.option_strings}


def test_convert_flags_are_the_settings_and_the_size_mode():
    opts = _options("convert")
    settings = {d[len("setting_"):]: a for d, a in opts.items() if d.startswith("setting_")}
    assert set(settings) == set(SETTINGS)
    for name, action in settings.items():
        f = SETTINGS[name]
        assert action.default is None and action.type is type(f.default)
        assert action.choices == f.metadata.get("choices")
        assert str(f.default) in action.help
    size = [f.name for f in fields(SizeMode) if f.name != "mode"]
    for name in size:
        assert opts[name].type is type(SizeMode.__dataclass_fields__[name].default)
    assert SizeMode.of(None, None).mode == "fixed"
    with pytest.raises(Exception, match="must be in"):
        SizeMode.of(target_error=0.0)


def test_the_file_records_every_setting():
    mesh = mesh_from_arrays([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]],
                            [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    meta = conversion_metadata(mesh, ConversionSettings(), 0.0, 0.0, 1, False, "cpu", {}, {})
    assert set(meta["settings"]) == set(SETTINGS)


def test_training_knobs_come_from_the_settings():
    s = ConversionSettings().replace(epochs=7, lr=0.01, batch_size=256, schedule="cosine",
                                     patience=2, init="uniform")
    cfg = TrainConfig.of(s)
    for f in fields(TrainConfig):
        if f.name in SETTINGS:
            assert getattr(cfg, f.name) == getattr(s, f.name), f.name
    assert {f.name for f in fields(TrainConfig)} - set(SETTINGS) == {"min_improvement"}


def test_what_the_size_modes_decide_are_settings():
    assert set(budget.DECIDES) <= set(SETTINGS) and set(budget.RECIPE) <= set(SETTINGS)
    assert set(sizing.DECIDES) <= set(SETTINGS)
    s, _ = budget.budget_settings(30_000)
    changed = {n for n in SETTINGS if getattr(s, n) != getattr(ConversionSettings(), n)}
    assert changed <= set(budget.DECIDES)
    assert SizeMode("budget").decides == budget.DECIDES and SizeMode().decides == ()


def test_remesh_resolutions_come_from_core_remesh():
    for command in ("remesh", "error", "demo"):
        action = _options(command)["resolution"]
        assert action.default == DEFAULT_RESOLUTION
        assert f"{MIN_RESOLUTION}..{MAX_RESOLUTION}" in action.help
        with pytest.raises(argparse.ArgumentTypeError):
            action.type(str(MIN_RESOLUTION - 1))
    assert INTERACTIVE_RESOLUTION < DEFAULT_RESOLUTION


def test_no_literal_resolution_elsewhere():
    """No module sets a resolution default of its own: keyword arguments and properties named
    like a resolution take core.geometry.remesh's constants."""
    bad = []
    for top in ("core", "neural_implicit_addon"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if not f.endswith(".py") or f == "remesh.py":
                    continue
                path = os.path.join(folder, f)
                tree = ast.parse(open(path, encoding="utf-8").read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.FunctionDef):
                        args = node.args.args[-len(node.args.defaults):] if node.args.defaults else []
                        for a, d in zip(args, node.args.defaults):
                            if "resolution" in a.arg and isinstance(d, ast.Constant):
                                bad.append(f"{path}:{node.lineno} {a.arg}={d.value}")
    assert not bad, bad
