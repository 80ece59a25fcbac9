"""The one exception users see, and the checks that raise it."""

from __future__ import annotations


class BPTTError(ValueError):
    """Bad input. Its message is one line: what was found, what is required, how to fix it.

    The CLI prints it as ``error: <message>`` and exits with status 2.
    """
