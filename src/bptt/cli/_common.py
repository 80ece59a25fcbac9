"""What every subcommand shares: the parser, number lists, the scalar model's options, file output."""

from __future__ import annotations

import argparse
import codecs
import math
import os
import re
import stat
import sys
from typing import Any, TextIO

import numpy as np

from .. import losses
from ..activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from ..derive import SCALAR_LOSSES
from ..engine import PARAM_NAMES
from ..validation import BPTTError, check_choice

EXIT_BAD_INPUT = 2
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a Unix tool whose reader went away
MIN_WIDTH = 80  # tables are laid out at least this wide: narrower, rich blanks cells and the numbers are lost


# A value that starts like a negative number (-1, -.5, -1,0, -0.3:1, -1e-3) is a value, never an
# option: no bptt option name starts with a digit or a dot.
NEGATIVE_VALUE = re.compile(r"^-\.?\d")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump, and ``--x -1,0`` is a value."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # argparse's own rule accepts -1 and -.5 but not a list such as -1,0 ("expected one argument")
        self._negative_number_matcher = NEGATIVE_VALUE

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BPTTError(f"{self.prog}: {message} (see '{self.prog} --help')")


# ------------------------------------------------------------------ text any terminal can show
# What a symbol becomes on a stream that cannot encode it (an ASCII terminal, PYTHONIOENCODING=ascii).
ASCII_FALLBACK = {"θ": "theta", "∂": "d", "Σ": "sum", "Π": "prod", "δ": "delta", "·": "*", "∈": "in", "−": "-",
                  "≤": "<=", "≥": ">=", "≠": "!=", "×": "x", "…": "...", "´": "'", "‖": "||", "²": "^2", "½": "1/2",
                  "—": "--", "–": "-", "÷": "/", "≈": "~", "√": "sqrt", "′": "'", "→": "->", "µ": "u", "μ": "u",
                  "⁻": "^-", "¹": "1", "’": "'"}
_FALLBACK_TABLE = str.maketrans(ASCII_FALLBACK)


def printable(text: str, encoding: str | None) -> str:
    """text as a stream with this encoding can write it: unchanged when it can, else with the symbols
    of ASCII_FALLBACK spelled out ('θ' -> 'theta') and anything else left as '?'."""
    enc = encoding or "utf-8"
    try:
        text.encode(enc)
        return text
    except UnicodeEncodeError:
        return text.translate(_FALLBACK_TABLE).encode(enc, errors="replace").decode(enc)
    except LookupError:  # an encoding Python does not know: leave the stream to it
        return text


class _Printable:
    """A text stream that writes ``printable`` text to the stream it wraps."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    @property
    def encoding(self) -> str | None:
        return getattr(self._stream, "encoding", None)

    def write(self, text: str) -> int:
        return self._stream.write(printable(text, self.encoding))

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, ...
        return getattr(self._stream, name)


class OutputError(Exception):
    """Standard output could not be written (a full disk, a closed descriptor): one line, not a traceback."""

    def __init__(self, err: OSError):
        super().__init__(f"cannot write to standard output: {err.strerror or err} (errno {err.errno}); "
                         "free space on the device it goes to, or send the output elsewhere")


class GuardedStdout:
    """sys.stdout, with any write error but a closed pipe raised as ``OutputError`` (main prints it as one line).

    A closed pipe stays ``BrokenPipeError``: `bptt seed | head -2` stops quietly with status 141.
    """

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(e) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(e) from None

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, ...
        return getattr(self._stream, name)


def stdout() -> TextIO:
    """sys.stdout, or a wrapper writing it symbols it cannot encode in ASCII (θ -> theta)."""
    out = sys.stdout
    return out if printable("θ", getattr(out, "encoding", None)) == "θ" else _Printable(out)  # type: ignore[return-value]


def console(wide: bool = True):
    """A rich console on ``stdout()`` that never breaks what the user copies.

    Text is soft-wrapped (rich inserts no newlines: a long path or command stays one line and the
    terminal wraps it); tables fit the real terminal width, or 120 columns into files and pipes
    (``wide``; else 80).  Where stdout cannot encode θ, every string is made ``printable`` before
    rich lays it out (so tables stay aligned), and rich draws its boxes in ASCII.
    """
    from rich.console import Console

    class QuietConsole(Console):
        def on_broken_pipe(self) -> None:  # rich would exit with status 1; main stops quietly with 141
            self.quiet = True
            raise BrokenPipeError

    class PrintableConsole(QuietConsole):
        def render_str(self, text: str, **kwargs: Any):
            return super().render_str(printable(text, self.encoding), **kwargs)

    out = stdout()
    cls = QuietConsole if out is sys.stdout else PrintableConsole
    con = cls(file=out, highlight=False, soft_wrap=True)
    if not con.is_terminal:
        con = cls(file=out, highlight=False, soft_wrap=True, width=120 if wide else 80)
    elif con.width < MIN_WIDTH:  # COLUMNS=10: rich would blank every cell; lay out at MIN_WIDTH, the terminal wraps
        con = cls(file=out, highlight=False, soft_wrap=True, width=MIN_WIDTH)
    return con


def _transliterate(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeEncodeError):
        raise err
    bad = err.object[err.start : err.end]
    return "".join(ASCII_FALLBACK.get(c, "?") for c in bad), err.end


codecs.register_error("bptt-ascii", _transliterate)


def survive_any_encoding(*streams) -> None:
    """Let text output reach a terminal whose encoding lacks θ, ‖, ∂ ...: those become theta, ||, d."""
    for stream in streams:
        if hasattr(stream, "reconfigure") and getattr(stream, "errors", "strict") == "strict":
            stream.reconfigure(errors="bptt-ascii")


def numbers(text: str, option: str) -> list[float]:
    """'1,0' -> [1.0, 0.0]; one clear error for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    if not text.strip() or any(p == "" for p in parts):
        raise BPTTError(f"{option}: {text!r} is not a comma-separated list of numbers; write e.g. {option} 1,0")
    out = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise BPTTError(f"{option}: {p!r} is not a number; write e.g. {option} 1,0") from None
        if not math.isfinite(v):
            raise BPTTError(f"{option}: {p!r} is not finite; every value must be a finite number")
        out.append(v)
    return out


def number(text: str, option: str) -> float:
    vals = numbers(text, option)
    if len(vals) != 1:
        raise BPTTError(f"{option}: expected one number, got {text!r}")
    return vals[0]


def fmt(v: float, digits: int = 6) -> str:
    return f"{v:.{digits}g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.{digits}e}"
def add_model_options(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """--w --w-x --w-h --b1 --b2 --h0 --x --y and the activation/reduction options."""
    g = p.add_argument_group("model (the seed's scalar network)")
    for name in PARAM_NAMES:
        g.add_argument(f"--{name.replace('_', '-')}", dest=name, default="1", metavar="NUM", help=f"{name} (default 1)")
    g.add_argument("--h0", default="0", metavar="NUM", help="initial hidden state h_0 (default 0)")
    g.add_argument("--hidden-activation", default="sigmoid", metavar="{" + ",".join(HIDDEN_ACTIVATIONS) + "}", help=f"one of {', '.join(HIDDEN_ACTIVATIONS)} (default sigmoid)")
    g.add_argument("--output-activation", default="sigmoid", metavar="{" + ",".join(OUTPUT_ACTIVATIONS) + "}", help=f"one of {', '.join(OUTPUT_ACTIVATIONS)} (default sigmoid)")
    g.add_argument("--reduction", default="mean", metavar="{mean,sum}", help="mean (Loss = 1/T sum E_t, the seed's) or sum")
    g.add_argument("--loss", default=losses.DEFAULT, metavar="{" + ",".join(SCALAR_LOSSES) + "}",
                   help="E_t from the loss table (bptt.losses): " + "; ".join(
                       f"{n}: {losses.LOSSES[n].formula}" + ("" if losses.LOSSES[n].outputs is None else
                                                           f" (with a {' or '.join(losses.LOSSES[n].outputs)} output)")
                       for n in SCALAR_LOSSES) + f" (default {losses.DEFAULT}, the seed's)")


def model_from_args(args: argparse.Namespace):
    from ..derive import scalar_loss
    from ..model import RNN

    values = {name: number(getattr(args, name), f"--{name.replace('_', '-')}") for name in PARAM_NAMES}
    loss = getattr(args, "loss", losses.DEFAULT)
    if loss not in losses.LOSSES:
        check_choice("--loss", loss, SCALAR_LOSSES)
    if args.output_activation in OUTPUT_ACTIVATIONS:  # else RNN.scalar names the activation that is wrong
        scalar_loss(loss, args.output_activation)  # cross_entropy: one line on what the scalar network takes
    return RNN.scalar(**values, hidden_activation=args.hidden_activation, output_activation=args.output_activation,
                      loss=loss)


def sequence_from_args(args: argparse.Namespace) -> tuple[list[float], list[float], float]:
    x = numbers(args.x, "--x")
    y = numbers(args.y, "--y")
    if len(x) != len(y):
        raise BPTTError(f"--x has {len(x)} steps but --y has {len(y)}; give one target per input step")
    return x, y, number(args.h0, "--h0")
def check_out_file(path: str | os.PathLike, force: bool) -> None:
    """An --out FILE that may be written: new in an existing folder, or (``force``) an existing regular file.

    Checked with os.lstat before anything is written: a symbolic link, folder, FIFO, device or socket is
    refused even with --force (an atomic write would put a file in its place: ``--out /dev/null --force``
    must never replace /dev/null).
    """
    from ..io import file_kind

    path = os.fspath(path)
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is None:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise BPTTError(f"--out {path}: the folder {parent} does not exist; create it or choose another path")
        return
    if stat.S_ISDIR(st.st_mode):
        raise BPTTError(f"--out {path}: is a directory; give a file name")
    if not stat.S_ISREG(st.st_mode):
        raise BPTTError(f"--out {path}: is a {file_kind(st.st_mode)}, not a regular file; bptt writes and overwrites "
                        "only regular files, even with --force: give another name")
    if not force:
        raise BPTTError(f"--out {path}: the file exists; add --force to overwrite it or choose another name")


def write_out(path: str, text: str, force: bool) -> None:
    """Atomic write that never overwrites an existing file unless asked, and never anything but a regular file."""
    from ..io import atomic_write_text

    check_out_file(path, force)
    atomic_write_text(path, text)




def steps(text: str, d: int) -> np.ndarray:
    """'0.3:0,0.7:1' -> (T, d).  Steps by commas, a step's inputs by colons."""
    rows = []
    for i, step in enumerate(str(text).split(",")):
        parts = step.split(":")
        if len(parts) != d:
            raise BPTTError(f"--x: step {i + 1} ({step!r}) has {len(parts)} inputs but the model takes {d}; "
                            f"write each step as {':'.join(['v'] * d)}")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise BPTTError(f"--x: step {i + 1} ({step!r}) is not numeric") from None
        if not all(math.isfinite(v) for v in vals):
            raise BPTTError(f"--x: step {i + 1} ({step!r}) is not finite")
        rows.append(vals)
    return np.array(rows, dtype=np.float64)  # (T, d)


def kernels_cached(modules: tuple[str, ...]) -> bool:
    """Whether numba's cache holds each of bptt's ``modules`` (file stems, e.g. "kernels"); else the first
    call compiles them."""
    from pathlib import Path

    here = Path(__file__).resolve().parents[1]  # the bptt package
    places = [here / "__pycache__"]
    if os.environ.get("NUMBA_CACHE_DIR"):
        places.append(Path(os.environ["NUMBA_CACHE_DIR"]))
    places = [p for p in places if p.is_dir()]
    return all(any(any(p.rglob(f"{m}.*.nbi")) for p in places) for m in modules)


def note_first_compile(modules: tuple[str, ...]) -> None:
    """One line on stderr before ``modules`` compile for the first time, so a wait is not taken for a hang."""
    if not kernels_cached(modules):
        print("bptt: compiling the numba kernels (once per machine, up to a minute; later runs load them)",
              file=sys.stderr, flush=True)
