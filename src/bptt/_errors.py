"""The one exception users see, and the checks that raise it."""

from __future__ import annotations


import numpy as np


class BPTTError(ValueError):
    """Bad input. Its message is one line: what was found, what is required, how to fix it.

    The CLI prints it as ``error: <message>`` and exits with status 2.
    """


def check_positive_int(name: str, value: object, what: str = "a positive integer") -> int:
    """value as an int >= 1 (booleans refused), else one BPTTError line."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise BPTTError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_sizes(input_size: object, hidden_size: object, output_size: object) -> tuple[int, int, int]:
    """(D, H, O) of a network, each a positive integer."""
    return (check_positive_int("input_size", input_size), check_positive_int("hidden_size", hidden_size),
            check_positive_int("output_size", output_size))


def check_truncate(truncate: object) -> int | None:
    """None (full BPTT) or k >= 1 steps."""
    if truncate is None:
        return None
    return check_positive_int("truncate", truncate, "a positive number of steps or None (full BPTT)")
