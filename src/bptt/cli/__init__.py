"""The ``bptt`` command line: one module per subcommand, each with ``add(subparsers)`` and ``run(args)``.

Domain modules compute and return data; the modules here parse options and present results.
Bad input: one line ``error: ...`` on stderr and exit status 2, never a traceback.
"""

# Ctrl-C and SIGTERM are taken over before anything else is imported (no `from __future__` either): until a command
# runs, either ends the process at once with one line (status 130 / 143).  Before this line, only the interpreter's
# start and the `bptt` script's own `import re` (10-30 ms in all, measured) can still print Python's traceback.
import os
import signal
import sys


def _stop_at_once(signum, frame) -> None:
    # Nothing has been written yet, and an exception raised here could land inside a library's bare `except:` around
    # an optional import and be swallowed (seen: the run went on and ended with status 0), so the process ends now.
    try:
        os.write(2, b"error: terminated\n" if signum == signal.SIGTERM else b"error: interrupted\n")
    finally:
        os._exit(128 + signum)


def _ours(signum: int) -> bool:
    """Nobody else handles ``signum`` here: it has Python's default disposition, or ours from start-up."""
    handler = signal.getsignal(signum)
    default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
    return handler is _stop_at_once or handler == default


def _take_over(signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> dict:
    """These signals, where nobody else handles them, to _stop_at_once; {signal: the handler before}."""
    taken = {}
    for signum in signums:
        if _ours(signum):
            try:
                taken[signum] = signal.signal(signum, _stop_at_once)
            except ValueError:  # not the main thread: signals are the main thread's business
                return taken
    return taken


def _started_as_bptt() -> bool:
    """This process is the `bptt` command (its script, or ``python -m bptt``), not a program importing bptt.cli."""
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    if spec is not None and spec.name == "bptt.__main__":
        return True
    script = getattr(main_module, "__file__", None)  # a spawned rank's __main__ has none: it keeps its own signals
    return script is not None and os.path.basename(script).split(".")[0].removesuffix("-script") == "bptt"


# The command keeps _stop_at_once until main() hands over.  A program importing bptt.cli has it for Ctrl-C while the
# subcommands load, and its own handlers back after (a spawned rank's SIGTERM stays its own: silent, as its parent asks).
_AS_COMMAND = _started_as_bptt()
_AT_START = _take_over() if _AS_COMMAND else _take_over((signal.SIGINT,))

import argparse  # noqa: E402
import importlib  # noqa: E402
import pkgutil  # noqa: E402
import warnings  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Sequence  # noqa: E402

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
# command -> the modules its first run on a machine compiles (its COMPILES: file stems of bptt's numba code)
COMPILING = {mod.__name__.rsplit(".", 1)[1]: tuple(mod.COMPILES) for mod in SUBCOMMANDS if mod.COMPILES}
if not _AS_COMMAND:
    for _signum, _handler in _AT_START.items():
        signal.signal(_signum, _handler)


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
    # Until the command runs, Ctrl-C or SIGTERM ends the process at once with one line (building the parser imports
    # the subcommands' modules); while it runs, they unwind it (checkpoints finished) to the one line of _run_command.
    taken = _take_over()
    try:
        survive_any_encoding(sys.stdout, sys.stderr)
        if sys.stdout is None:  # started with stdout closed (`bptt seed >&-`): nothing could be shown
            print("error: standard output is closed; run bptt with its output going to a terminal, file or pipe",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        real = sys.stdout
        sys.stdout = GuardedStdout(real)  # type: ignore[assignment]
        try:
            return _main(argv, tuple(taken))
        finally:
            sys.stdout = real
    finally:
        for signum, handler in taken.items():
            signal.signal(signum, handler)
        signals.clear()


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwound as Ctrl-C is (checkpoints finished, data-parallel ranks stopped), exit status 143."""


# While a command runs: Ctrl-C raises KeyboardInterrupt and SIGTERM Terminated, both recorded, so long loops and the
# command's end see them even when the exception is dropped inside a callback from C (bptt.signals).
_WHILE_RUNNING = {signal.SIGINT: signals.on_sigint, signal.SIGTERM: signals.raising(Terminated)}


def _main(argv: Sequence[str] | None, taken: tuple[int, ...]) -> int:
    try:
        check_environment()  # before the parser: building it imports numba
    except BPTTError as e:
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    parser = build_parser()  # a subcommand's parser may import its module
    return _run_command(parser, argv, taken)


def _run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None, taken: tuple[int, ...] = ()) -> int:
    # Warnings (numpy's RuntimeWarnings, a library's notices) are held until the command ends: after a
    # success they are shown; before a refusal they are dropped, so the error stays the one line printed.
    with warnings.catch_warnings(record=True) as held:
        unraisable = sys.unraisablehook
        try:
            for signum in taken:
                signal.signal(signum, _WHILE_RUNNING[signum])
            sys.unraisablehook = signals.quiet_when_dropped(unraisable)
            try:
                args = parser.parse_args(argv)
                if not getattr(args, "run", None):  # `bptt` alone: the help on stdout, status 0 (as git does)
                    parser.print_help()
                    return 0
                if args.command in COMPILING:
                    note_first_compile(COMPILING[args.command])
                code = int(args.run(args) or 0)
                signals.check()  # a Ctrl-C dropped on the way (inside numba's compiling) is one line and 130 here
                sys.stdout.flush()  # a full device fails here, inside the handlers, not in the interpreter's exit
            finally:  # a signal from here on, while the one line is written, ends the process at once
                for signum in taken:
                    signal.signal(signum, _stop_at_once)
                sys.unraisablehook = unraisable
        except BaseException as e:
            code = _ending(e)
            if code is None:
                raise
            if isinstance(e, KeyboardInterrupt):
                _release_quietly(e)
            return code
    for w in held:  # shown now, through the filters as they were
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return code


def _release_quietly(e: BaseException) -> None:
    """Free the frames an interrupt stopped, saying nothing of what their objects' __del__ raise: an object the
    interrupt caught half-built (a ZipFile inside np.savez, interrupted before its __init__ set _writing) fails
    in __del__, and freed later, at exit, printed a traceback after the one line."""
    import gc

    hook = sys.unraisablehook
    sys.unraisablehook = lambda info: None
    try:
        seen = set()
        while e is not None and id(e) not in seen:  # the chain too: a re-raised interrupt keeps the first's frames
            seen.add(id(e))
            e.__traceback__ = None
            e = e.__cause__ or e.__context__
        gc.collect()
    finally:
        sys.unraisablehook = hook


def _ending(e: BaseException) -> int | None:
    """The one line for how a command ended, and its status; None for what goes on up (SystemExit, a bug)."""
    if isinstance(e, Exception) and not isinstance(e, (OutputError, BrokenPipeError)):
        kind = signals.take()  # an interrupt that a library turned into another exception on the way
        if kind is not None:
            e = kind()
    if isinstance(e, KeyboardInterrupt):  # Ctrl-C (130) or SIGTERM (143); what was stopped and how to resume, if said
        why = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"error: {why}" + (f"; {e}" if str(e) else ""), file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    if isinstance(e, BPTTError):
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(e, OutputError):
        _stdout_to_devnull()
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(e, BrokenPipeError):  # `bptt ... | head`: the reader has gone; stop quietly, as Unix tools do
        _stdout_to_devnull()
        return EXIT_CLOSED_PIPE
    return None


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
