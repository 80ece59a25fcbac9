"""Ctrl-C (and SIGTERM) that is never lost.

Python turns SIGINT into KeyboardInterrupt wherever the interpreter happens to be.  When that is
inside a callback called from C (numba and llvmlite compiling, a weakref's finaliser), the
exception is printed as "ignored" and dropped, and the program goes on: a Ctrl-C during the
kernels' first compile (tens of seconds on a new machine) did nothing.  The command line installs
``on_sigint`` (and ``raising(Terminated)`` for SIGTERM), which also record the signal; long loops
call ``check`` between steps, and the command line once more when a command returns, so a dropped
interrupt is raised again there; ``quiet_when_dropped`` keeps the "ignored" report off the terminal
(the one line comes when it is raised again).  A library user's own signal handling is left as it
is: nothing here runs unless the command line installs it.
"""

from __future__ import annotations

from typing import Callable

_pending: type[KeyboardInterrupt] | None = None


def raising(kind: type[KeyboardInterrupt]) -> Callable[[int, object], None]:
    """A signal handler: remember the signal, then raise ``kind`` (KeyboardInterrupt or a subclass)."""

    def handler(signum, frame) -> None:
        global _pending
        _pending = kind
        raise kind()

    return handler


on_sigint = raising(KeyboardInterrupt)
on_sigint.__doc__ = "A SIGINT handler: remember the interrupt, then raise KeyboardInterrupt as Python's own does."


def check() -> None:
    """Raise the recorded interrupt if a signal arrived and its exception was swallowed on the way."""
    kind = take()
    if kind is not None:
        raise kind()


def take() -> type[KeyboardInterrupt] | None:
    """The recorded interrupt's exception type (None if none), now taken: a library that turned the interrupt into
    another exception (Python 3.11 wraps one raised in ``__set_name__`` in a RuntimeError) is still stopped by it."""
    global _pending
    kind, _pending = _pending, None
    return kind


def clear() -> None:
    """The interrupt was handled (its exception reached the command line)."""
    global _pending
    _pending = None


def quiet_when_dropped(hook: Callable) -> Callable:
    """A ``sys.unraisablehook`` that says nothing of a recorded interrupt dropped in a callback (``check`` raises it
    again) and passes anything else to ``hook``."""

    def unraisable(info) -> None:
        if _pending is not None and isinstance(info.exc_value, _pending):
            return
        hook(info)

    return unraisable
