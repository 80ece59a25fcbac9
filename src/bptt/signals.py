"""Ctrl-C that is never lost.

Python turns SIGINT into KeyboardInterrupt wherever the interpreter happens to be.  When that is
inside a callback called from C (numba and llvmlite compiling, a weakref's finaliser), the
exception is printed as "ignored" and dropped, and the program goes on: a Ctrl-C during the
kernels' first compile (tens of seconds on a new machine) did nothing.  The command line installs
``on_sigint``, which also records the signal; long loops call ``check`` between steps, so a
dropped KeyboardInterrupt is raised again there.  A library user's own SIGINT handling is left as
it is: nothing here runs unless the command line installs it.
"""

from __future__ import annotations

_pending = False


def on_sigint(signum, frame) -> None:
    """A SIGINT handler: remember the interrupt, then raise KeyboardInterrupt as Python's own does."""
    global _pending
    _pending = True
    raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt if a SIGINT arrived and its KeyboardInterrupt was swallowed on the way."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


def clear() -> None:
    """The interrupt was handled (its KeyboardInterrupt reached the command line)."""
    global _pending
    _pending = False
