"""The ``bptt`` command line: one module per subcommand, each with ``add(subparsers)`` and ``run(args)``.

Domain modules compute and return data; the modules here parse options and present results.
Bad input: one line ``error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading
import warnings
from types import ModuleType
from typing import Sequence


def _interrupted_while_loading(signum, frame) -> None:
    # Ctrl-C while the subcommands' modules load: one line, no traceback.  Nothing has been written yet, and an
    # exception raised here could land inside a library's bare `except:` around an optional import and be
    # swallowed (seen: the run went on and ended with status 0), so the process ends here and now.
    sys.stderr.write("error: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


_LOADING = (signal.signal(signal.SIGINT, _interrupted_while_loading)
            if threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler else None)

from .. import signals  # noqa: E402
from ..validation import BPTTError  # noqa: E402
from ._common import (EXIT_BAD_INPUT, EXIT_CLOSED_PIPE, GuardedStdout, OutputError, Parser,  # noqa: E402
                      note_first_compile, survive_any_encoding)


def _subcommands() -> tuple[ModuleType, ...]:
    """Every public module of this package is a subcommand (its ``add``, ``run``, ``ORDER``, ``COMPILES``):
    adding a command is adding its module, nothing else."""
    found = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
             if not m.name.startswith("_")]
    return tuple(sorted(found, key=lambda mod: mod.ORDER))


SUBCOMMANDS = _subcommands()
COMPILING = tuple(mod.__name__.rsplit(".", 1)[1] for mod in SUBCOMMANDS if mod.COMPILES)
if _LOADING is not None:  # loaded: Ctrl-C is KeyboardInterrupt again, which main turns into its one line
    signal.signal(signal.SIGINT, _LOADING)


def _while_loading(build):
    """build(), with Ctrl-C one line and status 130 (no traceback) while it imports; then Ctrl-C as before."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return build()
    before = signal.signal(signal.SIGINT, _interrupted_while_loading)
    try:
        return build()
    finally:
        signal.signal(signal.SIGINT, before)


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
    sigterm = _catch_sigterm()
    try:
        return _main(argv)
    finally:
        sys.stdout = real
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwound as Ctrl-C is (checkpoints finished, data-parallel ranks stopped), exit status 143."""


def _catch_sigint():
    """Ctrl-C that long loops see even when its KeyboardInterrupt is dropped (bptt.signals); the old handler, or None."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return None
    return signal.signal(signal.SIGINT, signals.on_sigint)


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _catch_sigterm():
    """SIGTERM raises Terminated while the command runs (where nothing else handles it); the old handler, or None."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _main(argv: Sequence[str] | None) -> int:
    try:
        check_environment()  # before the parser: building it imports numba
    except BPTTError as e:
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    parser = _while_loading(build_parser)  # a subcommand's parser may import its module
    sigint = _catch_sigint()
    try:
        return _run_command(parser, argv)
    finally:
        if sigint is not None:
            signal.signal(signal.SIGINT, sigint)
        signals.clear()


def _run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    # Warnings (numpy's RuntimeWarnings, a library's notices) are held until the command ends: after a
    # success they are shown; before a refusal they are dropped, so the error stays the one line printed.
    with warnings.catch_warnings(record=True) as held:
        try:
            args = parser.parse_args(argv)
            if not getattr(args, "run", None):  # `bptt` alone: the help on stdout, status 0 (as git does)
                parser.print_help()
                return 0
            if args.command in COMPILING:
                note_first_compile()
            code = int(args.run(args) or 0)
            sys.stdout.flush()  # a full device fails here, inside the handlers, not in the interpreter's exit
        except BPTTError as e:
            print(f"error: {one_line(str(e))}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except OutputError as e:
            _stdout_to_devnull()
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt as e:  # Ctrl-C (130) or SIGTERM (143); what was stopped and how to resume, if said
            why = "terminated" if isinstance(e, Terminated) else "interrupted"
            print(f"error: {why}" + (f"; {e}" if str(e) else ""), file=sys.stderr)
            return 143 if isinstance(e, Terminated) else 130
        except BrokenPipeError:  # `bptt ... | head`: the reader has gone; stop quietly, as Unix tools do
            _stdout_to_devnull()
            return EXIT_CLOSED_PIPE
    for w in held:  # shown now, through the filters as they were
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return code


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127]} | {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def one_line(message: str) -> str:
    """The message with every control character escaped (a path holding a newline or an escape sequence stays
    one line, and nothing in it reaches the terminal as a command)."""
    return message.translate(_CONTROL)


def check_environment() -> None:
    """Settings of the environment that would fail deep inside a library: one line here instead."""
    threads = os.environ.get("NUMBA_NUM_THREADS")
    if threads is not None:
        try:
            bad = int(threads) <= 0
        except ValueError:
            bad = False  # numba ignores what is not an integer
        if bad:
            raise BPTTError(f"NUMBA_NUM_THREADS={threads}: numba needs a positive number of threads; unset it or "
                            "set e.g. NUMBA_NUM_THREADS=2")


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
