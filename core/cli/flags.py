"""Flags shared by commands: one per ConversionSettings field (defaults and help from the dataclass)."""

import argparse
from dataclasses import fields

from ..common.settings import ConversionSettings


def add_settings_arguments(p: argparse.ArgumentParser):
    """One flag per ConversionSettings field (defaults and help from the dataclass)."""
    g = p.add_argument_group("conversion settings")
    for f in fields(ConversionSettings):
        flag = "--" + f.name.replace("_", "-")
        kw = {"default": None, "help": f"{f.metadata['help']} (default {f.default})"}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        kw["type"] = type(f.default)
        g.add_argument(flag, dest=f"setting_{f.name}", **kw)


def add_size_arguments(p: argparse.ArgumentParser):
    """--target-error and --budget-bytes, from core.conversion.checked.SizeMode (neither: a fixed
    size)."""
    from ..conversion.checked import SizeMode
    for f in fields(SizeMode):
        if f.name != "mode":
            p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None,
                           metavar=f.name.split("_")[0][0].upper(),
                           help=f"{f.metadata['help']} ({f.metadata['min']:,}..{f.metadata['max']:,})")


def add_resolution_argument(p: argparse.ArgumentParser, help: str):
    """--resolution, with core.geometry.remesh's default and range (checked before any work)."""
    from ..geometry.remesh import DEFAULT_RESOLUTION, MAX_RESOLUTION, MIN_RESOLUTION

    def resolution(text: str) -> int:
        value = int(text)
        if not MIN_RESOLUTION <= value <= MAX_RESOLUTION:
            raise argparse.ArgumentTypeError(f"must be in {MIN_RESOLUTION}..{MAX_RESOLUTION}, "
                                             f"got {value}")
        return value
    p.add_argument("--resolution", type=resolution, default=DEFAULT_RESOLUTION,
                   help=f"{help} ({MIN_RESOLUTION}..{MAX_RESOLUTION}, default {DEFAULT_RESOLUTION})")


def size_from_args(args):
    """The core.conversion.checked.SizeMode the size flags ask for."""
    from ..conversion.checked import SizeMode
    return SizeMode.of(args.target_error, args.budget_bytes)


def settings_from_args(args) -> ConversionSettings:
    changes = {f.name: getattr(args, f"setting_{f.name}") for f in fields(ConversionSettings)
               if getattr(args, f"setting_{f.name}", None) is not None}
    return ConversionSettings().replace(**changes)
