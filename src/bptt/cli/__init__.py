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
import warnings
from types import ModuleType
from typing import Sequence

from ..validation import BPTTError
from ._common import (EXIT_BAD_INPUT, EXIT_CLOSED_PIPE, GuardedStdout, OutputError, Parser, note_first_compile,
                      survive_any_encoding)


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

    parser = Parser(prog="bptt", description="Exact backpropagation through time for the seed's sigmoid RNN.",
                    epilog="Documentation: docs/index.md in the bptt source tree; each command's options: "
                           "bptt COMMAND --help.")
    parser.add_argument("--version", action="version", version=f"bptt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in SUBCOMMANDS:
        command.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    survive_any_encoding(sys.stdout, sys.stderr)
    if sys.stdout is None:  # started with stdout closed (`bptt seed >&-`): nothing could be shown
        print("error: standard output is closed; run bptt with its output going to a terminal, file or pipe",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    real = sys.stdout
    sys.stdout = GuardedStdout(real)  # type: ignore[assignment]
    try:
        return _main(argv)
    finally:
        sys.stdout = real


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    # Warnings (numpy's RuntimeWarnings, a library's notices) are held until the command ends: after a
    # success they are shown; before a refusal they are dropped, so the error stays the one line printed.
    with warnings.catch_warnings(record=True) as held:
        try:
            args = parser.parse_args(argv)
            if not getattr(args, "run", None):
                parser.print_help()
                return EXIT_BAD_INPUT
            if args.command in COMPILING:
                note_first_compile()
            code = int(args.run(args) or 0)
            sys.stdout.flush()  # a full device fails here, inside the handlers, not in the interpreter's exit
        except BPTTError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except OutputError as e:
            _stdout_to_devnull()
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `bptt ... | head`: the reader has gone; stop quietly, as Unix tools do
            _stdout_to_devnull()
            return EXIT_CLOSED_PIPE
    for w in held:  # shown now, through the filters as they were
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return code


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what is left does not fail again."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # not a real descriptor (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
