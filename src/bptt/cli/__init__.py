"""The ``bptt`` command line: one module per subcommand, each with ``add(subparsers)`` and ``run(args)``.

Domain modules compute and return data; the modules here parse options and present results.
Bad input: one line ``error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from types import ModuleType
from typing import Sequence

from ..validation import BPTTError
from ._common import EXIT_BAD_INPUT, Parser, note_first_compile, survive_any_encoding


def _subcommands() -> tuple[ModuleType, ...]:
    """Every public module of this package is a subcommand (its ``add``, ``run``, ``ORDER``, ``COMPILES``):
    adding a command is adding its module, nothing else."""
    found = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
             if not m.name.startswith("_")]
    return tuple(sorted(found, key=lambda mod: mod.ORDER))


SUBCOMMANDS = _subcommands()
COMPILING = tuple(mod.__name__.rsplit(".", 1)[1] for mod in SUBCOMMANDS if mod.COMPILES)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(prog="bptt", description="Exact backpropagation through time for the seed's sigmoid RNN.")
    parser.add_argument("--version", action="version", version=f"bptt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in SUBCOMMANDS:
        command.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    survive_any_encoding(sys.stdout, sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return EXIT_BAD_INPUT
        if args.command in COMPILING:
            note_first_compile()
        return int(args.run(args) or 0)
    except BPTTError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bptt ... | head`: the reader has gone; stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
