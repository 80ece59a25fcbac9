"""The ``bptt`` command line: one module per subcommand, each with ``add(subparsers)`` and ``run(args)``.

Domain modules compute and return data; the modules here parse options and present results.
Bad input: one line ``error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..validation import BPTTError
from . import bench, check, explain, grad, gradflow, predict, seed, train
from ._common import EXIT_BAD_INPUT, Parser, note_first_compile, survive_any_encoding

# The subcommands in the order `bptt --help` lists them; adding one is adding its module here.
SUBCOMMANDS = (seed, grad, train, predict, gradflow, explain, check, bench)
# Those whose first run on a machine compiles the numba kernels.
COMPILING = ("seed", "grad", "train", "bench")


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
