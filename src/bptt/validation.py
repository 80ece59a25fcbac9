"""The one exception users see, and the one family of checks that raise it.

Every door (``RNN``, ``bptt.torch.SigmoidRNN``, tasks, training, the command line)
validates through these functions, so the same mistake gets the same message
whichever way it comes in.  A message is one line: what was found, what is
required, and how to fix it (scikit-learn's ``check_scalar`` style).

    check_int(name, value, minimum=1, ...)       integers (booleans refused), bounded
    check_number(name, value, minimum=..., ...)  finite real numbers, bounded
    check_choice(name, value, choices)           one of a fixed set of names
    check_dtype(value)                           float32 or float64, as a numpy dtype
    check_reduction(value)                       "mean" or "sum"
    check_sizes(D, H, O), check_truncate(k), check_checkpoint(c), check_seed(s)
    check_float_array(value, name, dtype)        finite float array, no needless copy
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np


class BPTTError(ValueError):
    """Bad input. Its message is one line: what was found, what is required, how to fix it.

    The CLI prints it as ``error: <message>`` and exits with status 2.
    """


# Integers beyond this are refused everywhere: they would overflow the int64 the
# compiled kernels and numpy use (and no sequence, batch or epoch count is that big).
MAX_INT = 2**62
# The largest network dimension accepted: bigger ones cannot be allocated (H^2 float64 > 100 TB).
MAX_SIZE = 2**22
DTYPES = ("float32", "float64")
REDUCTIONS = ("mean", "sum")
CHECKPOINT_TRUNCATE_MESSAGE = (
    "checkpoint={checkpoint!r} cannot be combined with truncate={truncate!r}; use checkpointing for exact "
    "gradients of long sequences, or truncation, not both"
)


def short_repr(value: Any, limit: int = 60) -> str:
    """repr(value), cut to ``limit`` characters: messages stay one readable line."""
    s = repr(value)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def check_int(name: str, value: Any, minimum: int = 1, maximum: int = MAX_INT, *, none_ok: bool = False,
              what: str | None = None) -> int | None:
    """value as an int in [minimum, maximum] (booleans refused); None passes when none_ok."""
    if value is None and none_ok:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer)) and minimum <= value <= maximum
    if not ok:
        if what is None:
            what = f"an integer >= {minimum}" if maximum >= MAX_INT else f"an integer in [{minimum}, {maximum}]"
            if none_ok:
                what += " or None"
        raise BPTTError(f"{name} must be {what}, got {short_repr(value)}")
    return int(value)


def check_positive_int(name: str, value: Any, what: str = "a positive integer") -> int:
    """value as an int >= 1 (booleans refused)."""
    return check_int(name, value, 1, what=what)  # type: ignore[return-value]


def check_number(name: str, value: Any, minimum: float | None = None, maximum: float | None = None, *,
                 low_open: bool = False, high_open: bool = False, none_ok: bool = False) -> float | None:
    """value as a finite float in the given interval (booleans and complex refused)."""
    if value is None and none_ok:
        return None
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    v = float(value) if real else math.nan
    ok = real and math.isfinite(v)
    if ok and minimum is not None:
        ok = v > minimum if low_open else v >= minimum
    if ok and maximum is not None:
        ok = v < maximum if high_open else v <= maximum
    if not ok:
        if minimum is not None and maximum is not None:
            req = f"in {'(' if low_open else '['}{minimum:g}, {maximum:g}{')' if high_open else ']'}"
        elif minimum is not None:
            req = f"{'>' if low_open else '>='} {minimum:g}"
        elif maximum is not None:
            req = f"{'<' if high_open else '<='} {maximum:g}"
        else:
            req = ""
        req = f"a finite number {req}".rstrip() + (" or None" if none_ok else "")
        raise BPTTError(f"{name} must be {req}, got {short_repr(value)}")
    return v


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """value, one of ``choices`` (strings)."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise BPTTError(f"{name} {short_repr(value)} is not supported; choose one of {', '.join(choices)}")
    return value


def check_dtype(value: Any, name: str = "dtype") -> np.dtype:
    """float32 or float64 (names, numpy types or dtypes), as a numpy dtype."""
    try:
        dt = np.dtype(value) if value is not None else None
    except (TypeError, ValueError):
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise BPTTError(f"{name} must be float32 or float64, got {short_repr(value)}")
    return dt


def check_reduction(value: Any) -> str:
    if not isinstance(value, str) or value not in REDUCTIONS:
        raise BPTTError(f"reduction must be 'mean' or 'sum', got {short_repr(value)}")
    return value


def check_sizes(input_size: Any, hidden_size: Any, output_size: Any) -> tuple[int, int, int]:
    """(D, H, O) of a network, each a positive integer no larger than MAX_SIZE."""
    return tuple(  # type: ignore[return-value]
        check_int(name, v, 1, MAX_SIZE, what=f"a positive integer <= {MAX_SIZE}")
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("output_size", output_size))
    )


def check_truncate(truncate: Any) -> int | None:
    """None (full BPTT) or k >= 1 steps."""
    return check_int("truncate", truncate, 1, none_ok=True,
                     what="a positive number of steps or None (full BPTT)")


def check_checkpoint(checkpoint: Any, truncate: Any = None) -> Any:
    """None (store every state), 'sqrt' (True means 'sqrt') or k >= 1 steps between stored states.

    Refuses combining it with truncation: its windows cross segment boundaries.
    """
    if checkpoint is False:
        checkpoint = None
    if checkpoint is True:
        checkpoint = "sqrt"
    if checkpoint is not None and checkpoint != "sqrt":
        checkpoint = check_int(
            "checkpoint", checkpoint, 1,
            what="None (store every state), 'sqrt' or a positive number of steps between stored states")
    if checkpoint is not None and truncate is not None:
        raise BPTTError(CHECKPOINT_TRUNCATE_MESSAGE.format(checkpoint=checkpoint, truncate=truncate))
    return checkpoint


def check_seed(seed: Any, none_ok: bool = True) -> int | None:
    """A random seed: None or an integer in [0, 2^63)."""
    return check_int("seed", seed, 0, 2**63 - 1, none_ok=none_ok,
                     what="a non-negative integer" + (" or None" if none_ok else ""))


def check_float_array(value: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """value as a finite array of ``dtype``; float32/float64 arrays are not copied to float64 first.

    A masked array is refused (its masked values would be used as numbers), as is anything numpy cannot read
    as numbers (a tensor that requires grad, on the meta device): one line, never the library's traceback."""
    if isinstance(value, np.ma.MaskedArray):
        raise BPTTError(f"{name} is a masked array; its masked values would be used as numbers: fill them "
                        f"({name}.filled(value)) or drop those steps, and give a plain array")
    try:
        complex_ = not (isinstance(value, np.ndarray) and value.dtype.name in DTYPES) and np.iscomplexobj(value)
    except (TypeError, ValueError, AttributeError, RuntimeError, NotImplementedError):
        complex_ = False  # ragged or not numeric: np.asarray below says so
    if complex_:
        raise BPTTError(f"{name} is complex; give real numbers (take .real if the imaginary part is 0)")
    try:
        if isinstance(value, np.ndarray) and value.dtype.name in DTYPES:
            a = value  # already float32/64: no float64 copy (long sequences would pay T numbers)
        else:
            a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise BPTTError(f"{name} must be numeric; could not read {short_repr(value)} as numbers") from None
    except (RuntimeError, NotImplementedError) as e:  # e.g. torch: a tensor that requires grad
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BPTTError(f"{name} could not be read as numbers ({short_repr(why, 100)}); give a numpy array "
                        "(for a torch tensor: tensor.detach().cpu().numpy())") from None
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        where = f" at index {tuple(int(i) for i in bad)}" if a.ndim else ""
        raise BPTTError(f"{name} contains {a[tuple(bad)] if a.ndim else a}{where}; every value must be finite (no NaN or inf)")
    return a.astype(dtype, copy=False)


# ------------------------------------------------------------------ what this machine can do
def memory_available() -> int:
    """Bytes of memory a new allocation can use now: MemAvailable of /proc/meminfo (Linux), else the physical
    memory (sysconf), else 4 GiB.  Sizes are checked against it before the work starts."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'; for messages."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" or n >= 1000 else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover


def check_state_values(owner: str, arrays: dict[str, np.ndarray], rules: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]]) -> None:
    """An optimizer's saved state: each array named in ``rules`` holds only values its rule allows (e.g. a
    damping > 0); the first that does not is one line, "<owner> state <name> = <value>, which must be <rule>"."""
    for name, (ok, need) in rules.items():
        if name in arrays:
            good = ok(arrays[name])
            if not np.all(good):
                bad = arrays[name].ravel()[~good.ravel()][0]
                raise BPTTError(f"{owner} state {name} = {bad:g}, which must be {need}")


def check_memory(what: str, nbytes: float, fix: str, available: int | None = None) -> None:
    """Refuse, in one line naming the limit and how to get under it, work whose memory exceeds what is available."""
    available = memory_available() if available is None else available
    if not nbytes <= available:  # also refuses NaN
        raise BPTTError(f"{what} needs about {format_bytes(nbytes)} of memory, more than the {format_bytes(available)} "
                        f"available on this machine; {fix}")


def network_bytes(input_size: int, hidden_size: int, output_size: int, itemsize: int = 8) -> int:
    """Bytes of one network's parameters (w_x H x D, w_h H x H, w O x H, b1 H, b2 O)."""
    D, H, O = input_size, hidden_size, output_size
    return (H * D + H * H + O * H + H + O) * itemsize


# A network is trained with its parameters, gradients, optimizer moments (two for Adam), best parameters and
# the fused kernels' scratch: about this many copies of its parameters.
TRAINING_COPIES = 8


def check_network_size(input_size: int, hidden_size: int, output_size: int, itemsize: int = 8, copies: int = 1,
                       what: str = "the network", available: int | None = None) -> None:
    """A network (``copies`` of its parameters) that fits in memory; else one line with the largest hidden size that does.

    Call before allocating it: ``RNN(D, 2**22, O)`` would ask for 128 TiB of w_h."""
    D, H, O = check_sizes(input_size, hidden_size, output_size)
    need = copies * network_bytes(D, H, O, itemsize)
    available = memory_available() if available is None else available
    if need > available:
        # largest H with copies * (H^2 + H (D + O + 1) + O) * itemsize <= available
        a, b, c = copies * itemsize, copies * itemsize * (D + O + 1), copies * itemsize * O - available
        largest = max(0, int((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)))
        check_memory(f"{what} of hidden size {H} (w_h alone is {H} x {H})", need,
                     f"give a hidden size of at most {largest}", available)


# The largest value of a series (a CSV column, a model's scaling): a mean squared error in the series' units is its
# span squared times an error in [0, 1], so spans beyond 1e150 overflow it to inf and below 1e-150 underflow it to 0.
MAX_SERIES_VALUE = 1e150
MIN_SERIES_SPAN = 1e-150


def check_scaling(lo: Any, hi: Any, where: str) -> tuple[float, float]:
    """A series' [lo, hi] (its scaling to [0, 1]): finite, hi > lo, |lo|, |hi| <= MAX_SERIES_VALUE and
    hi - lo >= MIN_SERIES_SPAN, so predictions and errors in its units are finite and not rounded to 0."""
    lo = check_number(f"{where} lo", lo)
    hi = check_number(f"{where} hi", hi)
    if not hi > lo:  # type: ignore[operator]
        raise BPTTError(f"{where} needs hi > lo, got lo={lo}, hi={hi}")
    if max(abs(lo), abs(hi)) > MAX_SERIES_VALUE:  # type: ignore[arg-type]
        raise BPTTError(f"{where} spans [{lo:g}, {hi:g}], beyond +-{MAX_SERIES_VALUE:g}: errors in these units would "
                        "overflow to inf; divide the values by a power of ten")
    if hi - lo < MIN_SERIES_SPAN:  # type: ignore[operator]
        raise BPTTError(f"{where} spans only {hi - lo:g} (from {lo:g} to {hi:g}), below {MIN_SERIES_SPAN:g}: errors in "
                        "these units would round to 0; multiply the values by a power of ten")
    return lo, hi  # type: ignore[return-value]


def check_decomposition_size(steps: int, n_params: int, itemsize: int = 8, available: int | None = None) -> None:
    """RNN.decompose keeps a (T, T) block of path contributions per parameter entry (O(T^2 P) memory, teaching-size
    problems); refuse before computing when that exceeds memory, naming the longest sequence that fits.
    (Called by model.RNN.decompose with T = len(x), P = the number of parameter entries.)"""
    available = memory_available() if available is None else available
    per = 2 * n_params * itemsize  # paths and their temporaries
    need = steps * steps * per
    if need > available:
        longest = math.isqrt(max(0, available // max(per, 1)))
        check_memory(f"decomposing a {steps}-step sequence (a {steps} x {steps} block of paths for each of "
                     f"{n_params} parameter entries)", need,
                     f"decompose at most {longest} steps (it is for teaching-size problems); use loss_and_grad for "
                     "long sequences", available)
