"""The command line: ``python -m core <command> ...``.

Every command takes ``--json`` and then prints exactly one JSON object on stdout. On a terminal,
progress goes to stderr as a bar. Bad input ends with a one-line message and a non-zero exit code,
never a traceback (bugs still show theirs).

One module per command (``NAME``, ``HELP``, ``arguments(parser)``, ``run(args) -> exit code``),
listed in :data:`COMMANDS`; ``output`` prints for all of them and ``flags`` holds the settings flags.
"""

import argparse
import warnings

import numpy as np

from ..common.errors import Cancelled, InputError
from . import convert, convert_dir, demo, error, import_paper, info, remesh
from .output import EXIT_BAD_INPUT, EXIT_INTERRUPTED, fail

#: The sub-commands, in the order of ``--help``.
COMMANDS = (convert, info, remesh, error, import_paper, demo, convert_dir)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Neural Implicit: meshes to "
                                "weight-encoded neural implicits (signed distance MLPs) and back.")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        c = sub.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        c.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        c.set_defaults(func=command.run)
        command.arguments(c)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # a hostile network overflows float32 on purpose: the overflow is reported as one clear
        # error by the code that finds it, not as numpy's RuntimeWarning lines around it
        with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return args.func(args)
    except InputError as e:
        return fail(args, str(e), EXIT_BAD_INPUT)
    except Cancelled:
        return fail(args, "cancelled", EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        return fail(args, "interrupted", EXIT_INTERRUPTED)
