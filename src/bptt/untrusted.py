"""Reading files bptt did not write: checked before a byte is read, bounded while it is read.

    open_regular      a regular file (never a FIFO, device, socket or folder: refused at once, never waited on)
                      of at most a given size; links followed, what they lead to checked
    read_bounded      at most that many bytes (a file that grows while it is read is refused)
    read_csv_columns  the named columns of a CSV file, read strictly (decimal commas, thousands separators,
                      duplicate columns, blank rows between numbers, other digits, values beyond +-1e150:
                      one line naming the line and column)

``io`` reads model and checkpoint files with the first two; the series tasks (``tasks``) and
``bptt predict --csv`` read CSV files with the third.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import stat
from pathlib import Path

import numpy as np

from .validation import MAX_SERIES_VALUE, BPTTError, check_scaling, format_bytes


_KINDS = ((stat.S_ISLNK, "symbolic link"), (stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO (named pipe)"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"),
          (stat.S_ISREG, "regular file"))


def file_kind(mode: int) -> str:
    """'regular file', 'folder', 'symbolic link', 'FIFO (named pipe)', 'character device', ... of an lstat mode."""
    return next((name for test, name in _KINDS if test(mode)), "special file")


def open_regular(path: str | os.PathLike, what: str, max_bytes: int, fix: str):
    """``path`` opened for binary reading, checked before any byte is read: a regular file (a FIFO, a device such as
    /dev/zero or /dev/urandom, a socket or a folder is refused, never read or waited on) of at most ``max_bytes``.
    Links are followed (a model may be a link); what they lead to is checked."""
    p = os.fspath(path)
    try:  # O_NONBLOCK: opening a FIFO nobody writes to returns at once instead of waiting for a writer
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise BPTTError(f"{p}: no such file; {fix}") from None
    except OSError as e:
        raise BPTTError(f"{p}: cannot be opened ({e.strerror or type(e).__name__}); {fix}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BPTTError(f"{p}: is a {file_kind(st.st_mode)}, not a regular file; {what} is read only from a "
                            f"regular file: {fix}")
        if st.st_size > max_bytes:
            raise BPTTError(f"{p}: holds {format_bytes(st.st_size)}, more than the {format_bytes(max_bytes)} {what} "
                            f"may hold; {fix}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(f, max_bytes: int, path: str | os.PathLike, what: str) -> bytes:
    """At most ``max_bytes`` of an opened file; a file that grew past them since it was checked is refused."""
    data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BPTTError(f"{os.fspath(path)}: grew past {format_bytes(max_bytes)} while being read; {what} must not "
                        "change while bptt reads it")
    return data


# ---------------------------------------------------------------- CSV files
CSV_MAX_BYTES = 256 << 20  # a series of millions of values; past it, keep only the column (and rows) you need
# A number as a CSV cell holds it: ASCII digits, one decimal point, an exponent. No decimal comma, no thousands
# separator (50,126 or 50.126,5 or 1_000 or 1'000), no other digits (float() would read '٣' as 3).
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_SEPARATED = re.compile(r"[+-]?\d{1,3}(?:[,'_ .]\d{3})+(?:[.,]\d*)?|[+-]?\d*,\d+", re.ASCII)


def read_csv_columns(path: str | Path, columns: list[str]) -> tuple[np.ndarray, ...]:
    """The named columns of a CSV file with a header row, as float64 arrays, read strictly: a regular UTF-8 file
    of at most CSV_MAX_BYTES; each named column once in the header; every row as many fields as the header (a
    decimal comma splits a row); no blank row between numbers (it would splice the series; trailing blank lines
    are allowed); every cell a plain finite number within +-MAX_SERIES_VALUE (no decimal comma, thousands
    separator or other digits); a column whose values span less than MIN_SERIES_SPAN (but are not constant) is
    refused.  Anything else is one BPTTError line naming the line and column."""
    fix = "give the path of a CSV file with a header row"
    with open_regular(path, "a CSV file", CSV_MAX_BYTES, fix) as f:
        data = read_bounded(f, CSV_MAX_BYTES, path, "a CSV file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BPTTError(f"{path}: byte {e.start} is not UTF-8; save the file as UTF-8 text (CSV)") from None
    if "\0" in text:
        raise BPTTError(f"{path}: holds NUL bytes, so it is not a text CSV file; give a CSV file")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as e:
        raise BPTTError(f"{path}: line {reader.line_num} is not valid CSV ({e})") from None
    if not rows:
        raise BPTTError(f"{path}: the file is empty; it needs a header row and numeric rows")
    header = [h.strip() for h in rows[0][1]]
    blank = [not row or all(c.strip() == "" for c in row) for _, row in rows]
    last = max((i for i, b in enumerate(blank) if not b), default=0)
    body = rows[1 : last + 1]  # trailing blank lines dropped
    for (line, row), b in zip(body, blank[1 : last + 1]):
        if b:
            raise BPTTError(f"{path}: line {line} is blank, between rows of numbers: dropping it would splice the "
                            "series; remove the line or fill in its values")
        if len(row) != len(header):
            raise BPTTError(f"{path}: line {line} has {len(row)} fields but the header has {len(header)}: a decimal "
                            "comma or thousands separator (50,126) splits a number; write numbers with a decimal "
                            "point and no separators (50126 or 50.126)")
    out = []
    for col in columns:
        where = [k for k, h in enumerate(header) if h == col]
        if not where:
            names = ", ".join(repr(h) for h in header)
            raise BPTTError(f"{path}: no column {col!r}; the header has {_short(names)}; name one with --column")
        if len(where) > 1:
            raise BPTTError(f"{path}: the header names column {col!r} {len(where)} times (fields "
                            f"{', '.join(str(k + 1) for k in where)}); rename all but one so the column is unambiguous")
        k = where[0]
        vals = np.empty(len(body), dtype=np.float64)
        for i, (line, row) in enumerate(body):
            vals[i] = _cell(row[k].strip(), path, line, col)
        if vals.size:
            lo, hi = float(vals.min()), float(vals.max())
            if hi > lo:
                check_scaling(lo, hi, f"{path}: column {col!r}")
        out.append(vals)
    return tuple(out)


def _cell(cell: str, path: str | Path, line: int, col: str) -> float:
    shown = _short(repr(cell))
    if not _NUMBER.fullmatch(cell):
        if _SEPARATED.fullmatch(cell):
            raise BPTTError(f"{path}: line {line}, column {col!r} holds {shown}, a number with a decimal comma or a "
                            "thousands separator; write it with a decimal point and no separators (50126 or 50.126)")
        raise BPTTError(f"{path}: line {line}, column {col!r} holds {shown}, not a finite number; fix or remove that row")
    v = float(cell)
    if not math.isfinite(v) or abs(v) > MAX_SERIES_VALUE:
        raise BPTTError(f"{path}: line {line}, column {col!r} holds {shown}, beyond +-{MAX_SERIES_VALUE:g}: errors in "
                        "these units would overflow; divide the column by a power of ten")
    return v


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
