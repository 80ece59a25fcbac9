"""Sequence tasks for training the seed's network, and the one registry of them.

Every task is one ``Task`` record in ``TASKS`` (a dict keyed by name, in the order the
CLI lists them).  The record holds everything the rest of the library asks about a
task: its description, its loader and options (with the CLI flags), its training
defaults, its test metrics and what its predictions plot shows.  Adding a task is
adding one record (and its tests); ``bptt train``, ``train.config_for``/``load_task``,
``tasks.metrics`` and ``plots.predictions`` read it from here.

    get(name) -> Task                  the record (unknown name: one-line BPTTError)
    load(name, seed=0, **options)      the task's data; options checked against the record
    metrics(data, model)               test metrics (the record's metrics function)
    prediction_view(data, model, m)    what plots.predictions draws (the record's view)

Every split holds time-major arrays, as the engine wants them:

    x     (T, N, D)   inputs, N sequences of T steps
    y     (T, N, O)   targets, in [0, 1] for the sigmoid output
    mask  (T, N)      which steps are scored (None: every step)

The tasks:

binary-addition   two `bits`-bit numbers a, b, least significant bit first:
                  x_t = (a_t, b_t), y_t = (a + b)_t, T = bits + 1 (the last step
                  outputs the final carry).  Train/val/test pairs are disjoint.
sine              next-value prediction of noisy sine waves: o_t = sin(ω t + φ) + ε_t,
                  ε ~ N(0, noise²), ω ∈ [0.1, 0.5] rad/step, φ ∈ [0, 2π);
                  x_t = o_t, y_t = o_{t+1}, scaled by (v + 1.5) / 3.
adding            the adding problem (Hochreiter & Schmidhuber 1997): x_t = (v_t, m_t),
                  v_t ~ U(0, 1), m_t = 1 at one step in the first half and one in
                  the second half; the target, scored at the last step only, is
                  the mean of the two marked values (so it lies in [0, 1]).
sunspots          yearly sunspot numbers 1700-2008 (``data/sunspots.csv``, from the
                  statsmodels package, which cites NOAA's National Geophysical Data
                  Center; see ``data/SUNSPOTS_SOURCE.txt``).  One-step-ahead:
                  windows of `window` years predict the next year at every step.
                  The last `n_test` years are the test targets, the `n_val` before
                  them the validation targets; val/test score only each window's
                  last step.  Scaled to [0, 1] by the training years' min and max.
csv               the same for any numeric column of a CSV file with a header row.
"""

from __future__ import annotations

import csv as _csv
import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .validation import BPTTError, check_int, check_number

@dataclass(frozen=True)
class Split:
    """x (T, N, D), y (T, N, O), mask (T, N) bool or None (every step scored)."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.x.shape[1]


@dataclass(frozen=True)
class Scaling:
    """scaled = (v - lo) / (hi - lo); v = lo + scaled (hi - lo)."""

    lo: float
    hi: float

    def to_unit(self, v: np.ndarray) -> np.ndarray:
        return (np.asarray(v, dtype=np.float64) - self.lo) / (self.hi - self.lo)

    def from_unit(self, s: np.ndarray) -> np.ndarray:
        return self.lo + np.asarray(s, dtype=np.float64) * (self.hi - self.lo)

    def to_json(self) -> dict[str, float]:
        return {"lo": self.lo, "hi": self.hi}


@dataclass(frozen=True)
class TaskData:
    """One task's data: three splits, sizes, and the scaling back to user units (series)."""

    name: str
    train: Split
    val: Split
    test: Split
    input_size: int
    output_size: int
    scaling: Scaling | None = None
    info: dict[str, Any] = field(default_factory=dict)
    series: np.ndarray | None = None  # the whole series in user units (series tasks)


@dataclass(frozen=True)
class Option:
    """One option of a task's loader: its keyword ``name``, the CLI ``flag`` (default ``--`` + name
    with dashes), ``type`` (converts the command-line text), ``default`` (what ``load`` passes when
    it is left out; None: the loader decides, see ``help``), ``help`` (one line, no default in it)
    and ``required`` (the loader refuses to run without it)."""

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str
    flag: str = ""
    metavar: str = ""
    required: bool = False

    def __post_init__(self) -> None:
        if not self.flag:
            object.__setattr__(self, "flag", "--" + self.name.replace("_", "-"))
        if not self.metavar:
            object.__setattr__(self, "metavar", self.flag[2:].upper().replace("-", "_"))


@dataclass(frozen=True)
class TrainDefaults:
    """Training settings that make a task learn out of the box (fields of ``bptt.train.TrainConfig``)."""

    hidden_size: int
    lr: float
    epochs: int
    batch_size: int
    checkpoint_every: int
    chunk: int | None = None  # None: whole sequences (TrainConfig's default)
    # what --optimizer hf changes (TrainConfig fields): one epoch is one HF iteration, so its budget differs
    hf: dict[str, Any] = field(default_factory=dict)

    def settings(self, optimizer: str | None = None) -> dict[str, Any]:
        """The settings as TrainConfig keywords for ``optimizer`` (None: the default optimizer); unset
        (None) ones are left to TrainConfig."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None and k != "hf"}
        if optimizer == "hf":
            out.update(self.hf)
        return out


@dataclass(frozen=True)
class Curve:
    """One line or set of points of a predictions plot: x (n,), y (n,), a matplotlib format string."""

    x: np.ndarray  # (n,)
    y: np.ndarray  # (n,)
    style: str = "-"
    label: str | None = None
    marker_size: float = 3.0


@dataclass(frozen=True)
class PredictionView:
    """What ``plots.predictions`` draws for a task: curves, axis labels (with units), a title naming
    what is shown (which sequence, years or steps), a y = x line or not, integer x ticks or not."""

    curves: tuple[Curve, ...]
    x_label: str
    y_label: str
    diagonal: bool = False  # the y = x reference line (target against prediction)
    title: str = ""  # "" : "<task>: test set"
    integer_x: bool = False  # x is a step, index or year: integer ticks only


def _positive_int(name: str, v: Any, minimum: int = 1) -> int:
    return check_int(name, v, minimum)  # type: ignore[return-value]


def _train_val_test(split, n_train: int, n_val: int, n: int) -> tuple[Split, Split, Split]:
    """The three splits of N = n sequences taken in order: train, validation, test."""
    return split(0, n_train), split(n_train, n_train + n_val), split(n_train + n_val, n)


# ---------------------------------------------------------------- binary addition
def binary_addition(
    bits: int = 8, n_train: int = 1000, n_val: int = 200, n_test: int = 1000, seed: int = 0
) -> TaskData:
    """Pairs (a, b) of `bits`-bit numbers; x (bits+1, N, 2), y (bits+1, N, 1), LSB first."""
    bits = _positive_int("bits", bits)
    if bits > 20:
        raise BPTTError(f"bits must be <= 20 (2^(2 bits) pairs are enumerated), got {bits}")
    n_train, n_val, n_test = (_positive_int(k, v) for k, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)))
    total = 1 << (2 * bits)
    if n_train + n_val + n_test > total:
        raise BPTTError(
            f"{bits}-bit operands give only {total} distinct pairs but n_train + n_val + n_test = "
            f"{n_train + n_val + n_test}; ask for fewer pairs or more bits"
        )
    rng = np.random.default_rng([seed, 1])
    codes = rng.choice(total, size=n_train + n_val + n_test, replace=False)  # distinct pairs: disjoint splits
    a, b = codes >> bits, codes & ((1 << bits) - 1)

    def make(a: np.ndarray, b: np.ndarray) -> Split:
        return Split(*addition_sequences(a, b, bits))

    s1, s2 = n_train, n_train + n_val
    return TaskData(
        "binary-addition",
        make(a[:s1], b[:s1]),
        make(a[s1:s2], b[s1:s2]),
        make(a[s2:], b[s2:]),
        input_size=2,
        output_size=1,
        info={"bits": bits, "steps": bits + 1, "pairs": {"train": n_train, "val": n_val, "test": n_test}},
    )


def addition_sequences(a: Any, b: Any, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """x (bits+1, N, 2) and y (bits+1, N, 1): the bits of a, b and a + b, least significant first."""
    a = np.atleast_1d(np.asarray(a, dtype=np.int64))
    b = np.atleast_1d(np.asarray(b, dtype=np.int64))
    t = np.arange(bits + 1)[:, None]  # (T, 1)
    x = np.stack([(a[None] >> t) & 1, (b[None] >> t) & 1], axis=-1).astype(np.float64)  # (T, N, 2)
    y = (((a + b)[None] >> t) & 1)[..., None].astype(np.float64)  # (T, N, 1)
    return x, y


def bits_to_int(bits_lsb_first: np.ndarray) -> np.ndarray:
    """(T, N) of 0/1 -> (N,) integers, bit t weighted 2^t."""
    b = np.asarray(bits_lsb_first, dtype=np.int64)
    return (b << np.arange(b.shape[0])[:, None]).sum(axis=0)


# ---------------------------------------------------------------- sine
SINE_SCALING = Scaling(-1.5, 1.5)


def sine(length: int = 100, n_train: int = 200, n_val: int = 50, n_test: int = 50, noise: float = 0.05, seed: int = 0) -> TaskData:
    """Noisy sine waves; x (length, N, 1) = o_t, y = o_{t+1}, scaled by (v + 1.5) / 3."""
    length = _positive_int("length", length, 2)
    n_train, n_val, n_test = (_positive_int(k, v) for k, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)))
    check_number("noise (the standard deviation)", noise, 0, 1)
    rng = np.random.default_rng([seed, 2])
    n = n_train + n_val + n_test
    omega = rng.uniform(0.1, 0.5, size=n)  # (N,)
    phase = rng.uniform(0, 2 * np.pi, size=n)  # (N,)
    t = np.arange(length + 1)[:, None]  # (T+1, 1)
    obs = np.sin(omega * t + phase) + noise * rng.standard_normal((length + 1, n))  # (T+1, N)
    s = SINE_SCALING.to_unit(obs)[..., None]  # (T+1, N, 1)

    def split(lo: int, hi: int) -> Split:
        return Split(s[:-1, lo:hi], s[1:, lo:hi])

    return TaskData(
        "sine",
        *_train_val_test(split, n_train, n_val, n),
        input_size=1,
        output_size=1,
        scaling=SINE_SCALING,
        info={"length": length, "noise": noise, "sequences": {"train": n_train, "val": n_val, "test": n_test}},
    )


# ---------------------------------------------------------------- adding problem
def adding(length: int = 50, n_train: int = 2000, n_val: int = 500, n_test: int = 1000, seed: int = 0) -> TaskData:
    """x (length, N, 2) = (value, marker); y (length, N, 1), scored at the last step only."""
    length = _positive_int("length", length, 2)
    n_train, n_val, n_test = (_positive_int(k, v) for k, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)))
    rng = np.random.default_rng([seed, 3])
    n = n_train + n_val + n_test
    half = length // 2
    v = rng.uniform(0, 1, size=(length, n))  # (T, N)
    i = rng.integers(0, half, size=n)  # first marker in the first half
    j = rng.integers(half, length, size=n)  # second in the second half
    m = np.zeros((length, n))  # (T, N)
    cols = np.arange(n)
    m[i, cols] = 1.0
    m[j, cols] = 1.0
    x = np.stack([v, m], axis=-1)  # (T, N, 2)
    y = np.zeros((length, n, 1))  # (T, N, 1)
    y[-1, :, 0] = 0.5 * (v[i, cols] + v[j, cols])
    mask = np.zeros((length, n), dtype=bool)  # (T, N)
    mask[-1] = True

    def split(lo: int, hi: int) -> Split:
        return Split(x[:, lo:hi], y[:, lo:hi], mask[:, lo:hi])

    return TaskData(
        "adding",
        *_train_val_test(split, n_train, n_val, n),
        input_size=2,
        output_size=1,
        info={"length": length, "sequences": {"train": n_train, "val": n_val, "test": n_test}},
    )


# ---------------------------------------------------------------- series: sunspots, csv
def series_task(
    values: Any, name: str, window: int = 20, n_val: int | None = None, n_test: int | None = None, first_index: int = 0
) -> TaskData:
    """One-step-ahead windows over a 1-D series (user units), scaled to [0, 1] by the training part.

    With L values, the last n_test are test targets, the n_val before them validation
    targets, the rest (n_train = L - n_val - n_test) training.  Training windows
    x = s[i:i+W], y = s[i+1:i+W+1] have every target in the training part;
    a val/test window for target s[j] is x = s[j-W:j], y = s[j-W+1:j+1], scored at its last step.
    Defaults: n_val = n_test = 15 % of L (at least 1).
    """
    s = np.asarray(values, dtype=np.float64).ravel()  # (L,)
    L = len(s)
    window = _positive_int("window", window, 1)
    n_val = max(1, round(0.15 * L)) if n_val is None else _positive_int("n_val", n_val)
    n_test = max(1, round(0.15 * L)) if n_test is None else _positive_int("n_test", n_test)
    n_train = L - n_val - n_test
    need = window + 1 + n_val + n_test
    if n_train < window + 1:
        raise BPTTError(
            f"the series has {L} values but a window of {window} with {n_val} validation and {n_test} test values "
            f"needs at least {need}; use a smaller --window or a longer series"
        )
    if not np.all(np.isfinite(s)):
        raise BPTTError(f"the series contains a non-finite value at index {int(np.argmax(~np.isfinite(s)))}; every value must be finite")
    lo, hi = float(s[:n_train].min()), float(s[:n_train].max())
    if hi == lo:
        raise BPTTError(f"the training part of the series is constant ({lo}); nothing to learn and no [0, 1] scaling exists")
    scaling = Scaling(lo, hi)
    u = scaling.to_unit(s)  # (L,)

    starts = np.arange(0, n_train - window)  # windows whose targets lie in the training part
    idx = starts[None, :] + np.arange(window)[:, None]  # (W, N)
    train = Split(u[idx][..., None], u[idx + 1][..., None])

    def scored(first: int, count: int) -> Split:
        targets = np.arange(first, first + count)  # indices j of the targets s[j]
        idx = targets[None, :] - window + np.arange(window)[:, None]  # (W, N): s[j-W..j-1]
        mask = np.zeros((window, count), dtype=bool)
        mask[-1] = True
        return Split(u[idx][..., None], u[idx + 1][..., None], mask)

    return TaskData(
        name,
        train,
        scored(n_train, n_val),
        scored(n_train + n_val, n_test),
        input_size=1,
        output_size=1,
        scaling=scaling,
        info={
            "window": window,
            "values": L,
            "split": {"train": n_train, "val": n_val, "test": n_test},
            "first_index": first_index,
            "scaling": scaling.to_json(),
        },
        series=s,
    )


def sunspots_series() -> tuple[np.ndarray, np.ndarray]:
    """(years (309,), yearly sunspot numbers (309,)), 1700-2008, from the shipped CSV."""
    ref = resources.files("bptt") / "data" / "sunspots.csv"
    with resources.as_file(ref) as p:
        years, values = read_csv_columns(p, ["YEAR", "SUNACTIVITY"])
    return years.astype(np.int64), values


def sunspots(window: int = 20, n_val: int = 20, n_test: int = 30) -> TaskData:
    """Sunspots one-step-ahead; default: test 1979-2008, validation 1959-1978, training 1700-1958."""
    years, values = sunspots_series()
    d = series_task(values, "sunspots", window, n_val, n_test)
    n_train = d.info["split"]["train"]
    info = dict(d.info)
    info["years"] = {
        "train": [int(years[0]), int(years[n_train - 1])],
        "val": [int(years[n_train]), int(years[n_train + n_val - 1])],
        "test": [int(years[-n_test]), int(years[-1])],
    }
    info["source"] = "data/SUNSPOTS_SOURCE.txt"
    return TaskData(d.name, d.train, d.val, d.test, 1, 1, d.scaling, info, d.series)


def read_csv_columns(path: str | Path, columns: list[str]) -> tuple[np.ndarray, ...]:
    """The named columns of a CSV file with a header row, as float arrays."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(_csv.reader(f))
    except FileNotFoundError:
        raise BPTTError(f"{path}: no such file; give the path of a CSV file with a header row") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BPTTError(f"{path}: cannot be read as a text CSV file ({type(e).__name__})") from None
    except _csv.Error as e:
        raise BPTTError(f"{path}: not a valid CSV file ({e})") from None
    if not rows:
        raise BPTTError(f"{path}: the file is empty; it needs a header row and numeric rows")
    header = [h.strip() for h in rows[0]]
    out = []
    for col in columns:
        if col not in header:
            raise BPTTError(f"{path}: no column {col!r}; the header has {', '.join(repr(h) for h in header)}; name one with --column")
        k = header.index(col)
        vals = []
        for line, row in enumerate(rows[1:], start=2):
            if not row or all(c.strip() == "" for c in row):
                continue  # blank line
            cell = row[k].strip() if k < len(row) else ""
            try:
                v = float(cell)
            except ValueError:
                v = float("nan")
            if not math.isfinite(v):
                raise BPTTError(f"{path}: line {line}, column {col!r} holds {cell!r}, not a finite number; fix or remove that row")
            vals.append(v)
        out.append(np.array(vals, dtype=np.float64))
    return tuple(out)


def csv_task(path: str | Path | None = None, column: str | None = None, window: int = 20,
             n_val: int | None = None, n_test: int | None = None) -> TaskData:
    """A numeric column of a CSV file as a one-step-ahead series task (see ``series_task``)."""
    if path is None or column is None:
        raise BPTTError("the csv task needs a file and a column: --csv FILE --column NAME")
    (values,) = read_csv_columns(path, [str(column)])
    d = series_task(values, "csv", window, n_val, n_test)
    info = dict(d.info)
    info.update({"csv": str(Path(path).resolve()), "column": str(column)})
    return TaskData(d.name, d.train, d.val, d.test, 1, 1, d.scaling, info, d.series)


# ---------------------------------------------------------------- metrics and baselines
def masked_mse(pred: np.ndarray, y: np.ndarray, mask: np.ndarray | None) -> float:
    """Mean of (y' - y)^2 over scored steps, sequences and outputs.  pred, y (T, N, O)."""
    r2 = (pred - y) ** 2  # (T, N, O)
    if mask is None:
        return float(r2.mean())
    return float(r2[mask].mean())


def ar_fit(s: np.ndarray, p: int, last_target: int) -> np.ndarray:
    """Least-squares AR(p) with intercept on targets s[p..last_target-1].  Returns (p + 1,) coefficients.

    s_j ≈ c_0 + sum_{i=1..p} c_i s_{j-i}.
    """
    rows = np.arange(p, last_target)
    A = np.column_stack([np.ones(len(rows))] + [s[rows - i] for i in range(1, p + 1)])  # (n, p+1)
    coef, *_ = np.linalg.lstsq(A, s[rows], rcond=None)
    return coef


def ar_predict(s: np.ndarray, coef: np.ndarray, targets: np.ndarray) -> np.ndarray:
    p = len(coef) - 1
    A = np.column_stack([np.ones(len(targets))] + [s[targets - i] for i in range(1, p + 1)])
    return A @ coef


def metrics(data: TaskData, model) -> dict[str, Any]:
    """Test metrics of a trained ``bptt.RNN``: the scaled test MSE, then the task's own (its record's ``metrics``)."""
    te = data.test
    pred = model.predict(te.x.astype(model.dtype)).astype(np.float64)  # (T, N, O)
    out: dict[str, Any] = {"test_mse_scaled": masked_mse(pred, te.y, te.mask)}
    out.update(get(data.name).metrics(data, pred))
    return out


def no_metrics(data: TaskData, pred: np.ndarray) -> dict[str, Any]:
    """A task without metrics of its own: only ``test_mse_scaled``."""
    return {}


def addition_metrics(data: TaskData, pred: np.ndarray) -> dict[str, Any]:
    """Exact sums and correct bits on the test pairs.  pred (T, N, 1)."""
    te = data.test
    bits_pred = (pred[..., 0] > 0.5).astype(np.int64)  # (T, N)
    bits_true = te.y[..., 0].astype(np.int64)  # (T, N)
    exact = np.all(bits_pred == bits_true, axis=0)  # (N,)
    return {
        "test_pairs": int(te.n),
        "test_pairs_exact": int(exact.sum()),
        "test_accuracy": float(exact.mean()),
        "test_bit_accuracy": float((bits_pred == bits_true).mean()),
    }


def adding_metrics(data: TaskData, pred: np.ndarray) -> dict[str, Any]:
    """MSE at the scored last step against predicting the training targets' mean.  pred (T, N, 1)."""
    scored = pred[-1, :, 0]  # (N,)
    target = data.test.y[-1, :, 0]  # (N,)
    mean_train = float(data.train.y[-1, :, 0].mean())
    base = float(np.mean((target - mean_train) ** 2))
    return {
        "test_mse": float(np.mean((scored - target) ** 2)),
        "baseline_mse": base,
        "baseline": "predict the training targets' mean",
        "mse_ratio": float(np.mean((scored - target) ** 2) / base),
        "test_within_0_04": float(np.mean(np.abs(scored - target) < 0.04)),
    }


def sine_metrics(data: TaskData, pred: np.ndarray) -> dict[str, Any]:
    """Test MSE in the sine's units beside persistence (o_t for o_{t+1}) and the noise floor.  pred (T, N, 1)."""
    te, sc = data.test, data.scaling
    p_u, y_u, x_u = sc.from_unit(pred), sc.from_unit(te.y), sc.from_unit(te.x)  # (T, N, 1) each
    return {
        "test_mse": masked_mse(p_u, y_u, None),
        "persistence_mse": masked_mse(x_u, y_u, None),
        "noise_floor": float(data.info["noise"]) ** 2,
    }


def series_metrics(data: TaskData, pred: np.ndarray) -> dict[str, Any]:
    """Test MSE in user units of the RNN, persistence and AR(p) (p = min(9, window)), on the same targets."""
    s = data.series  # (L,)
    n_train, n_val, n_test = (data.info["split"][k] for k in ("train", "val", "test"))
    targets = np.arange(len(s) - n_test, len(s))  # (n_test,)
    rnn = data.scaling.from_unit(pred[-1, :, 0])  # (n_test,)
    truth = s[targets]
    p = min(9, data.info["window"])
    out: dict[str, Any] = {
        "test_targets": [float(v) for v in truth],
        "test_pred_rnn": [float(v) for v in rnn],
        "test_mse": float(np.mean((rnn - truth) ** 2)),
        "persistence_mse": float(np.mean((s[targets - 1] - truth) ** 2)),
        "test_pred_persistence": [float(v) for v in s[targets - 1]],
    }
    fit_end = n_train + n_val  # AR fitted on every target before the test part
    if fit_end - p >= 2 * (p + 1):
        coef = ar_fit(s, p, fit_end)
        ar = ar_predict(s, coef, targets)
        out.update({f"ar{p}_mse": float(np.mean((ar - truth) ** 2)), f"test_pred_ar{p}": [float(v) for v in ar],
                    "ar_order": p, "ar_fit": f"least squares with intercept on the {fit_end - p} one-step targets before the test part"})
    else:
        out["ar_order"] = None
        out["ar_note"] = f"too few values before the test part to fit AR({p})"
    return out


# ---------------------------------------------------------------- what the predictions plot shows
def scored_view(data: TaskData, model, metrics: dict[str, Any]) -> PredictionView:
    """Target against prediction at every scored test step (first output); the adding problem's last step."""
    te = data.test
    pred = model.predict(te.x.astype(model.dtype))[..., 0]  # (T, N)
    keep = np.ones(pred.shape, dtype=bool) if te.mask is None else te.mask  # (T, N)
    scaled = " (scaled to [0, 1])" if data.scaling is not None else ""
    return PredictionView((Curve(te.y[..., 0][keep], pred[keep], ".", f"{int(keep.sum())} scored test steps"),),
                          "target" + scaled, "prediction" + scaled, diagonal=True,
                          title=f"{data.name}: {te.n} test sequences of {te.x.shape[0]} steps")


def adding_view(data: TaskData, model, metrics: dict[str, Any]) -> PredictionView:
    v = scored_view(data, model, metrics)
    curve = dataclasses.replace(v.curves[0], label=f"{data.test.n} test sequences")
    return dataclasses.replace(v, curves=(curve,), x_label="target: mean of the two marked values",
                               y_label="prediction at the last step",
                               title=f"adding: {data.test.n} test sequences of {data.test.x.shape[0]} steps, the answer at the last step")


def addition_view(data: TaskData, model, metrics: dict[str, Any]) -> PredictionView:
    """The network's sum (bits thresholded at 0.5) against a + b, exact ones apart from wrong ones."""
    te = data.test
    pred = model.predict(te.x.astype(model.dtype))[..., 0]  # (T, N)
    got, want = bits_to_int(pred > 0.5), bits_to_int(te.y[..., 0])  # (N,) each
    ok = got == want  # (N,)
    curves = [Curve(want[ok], got[ok], "g.", f"exact ({ok.sum()} of {ok.size})")]
    if (~ok).any():
        curves.append(Curve(want[~ok], got[~ok], "rx", f"wrong ({(~ok).sum()})", 4.0))
    bits = data.info["bits"]
    return PredictionView(tuple(curves), "a + b (true sum)", "network's sum (bits thresholded at 0.5)",
                          title=f"binary-addition: {te.n} test pairs a + b of {bits}-bit numbers", integer_x=True)


def sine_view(data: TaskData, model, metrics: dict[str, Any], last: int = 200) -> PredictionView:
    """The first test wave's last ``last`` steps (all of a short one): the next noisy values and the predictions."""
    te, sc = data.test, data.scaling
    T = te.x.shape[0]
    pred = model.predict(te.x[:, :1].astype(model.dtype))[:, 0, 0]  # (T,)
    keep = slice(max(0, T - last), T)
    t = np.arange(1, T + 1)[keep]  # (n,): the step whose next value is predicted
    shown = f"t = {t[0]}..{t[-1]}" if t.size == T else f"the last {t.size} of {T} steps, t = {t[0]}..{t[-1]}"
    return PredictionView(
        (Curve(t, sc.from_unit(te.y[keep, 0, 0]), "k.", "target (next noisy value)", 4.0),
         Curve(t, sc.from_unit(pred[keep]), "-", "RNN's prediction")),
        "t (step of the wave; the prediction is for t + 1)", "sin(ω t + φ) + noise (unscaled)",
        title=f"sine: the first of {te.n} test waves, {shown}", integer_x=True,
    )


def series_view(data: TaskData, metrics: dict[str, Any], x0: int, x_label: str, y_label: str,
                title: str = "") -> PredictionView:
    """The test targets, the RNN's and the baselines' one-step forecasts (``series_metrics``), x from x0."""
    n = len(metrics["test_targets"])
    xs = np.arange(n) + x0  # (n,)
    curves = [Curve(xs, np.asarray(metrics["test_targets"]), "k-o", "target"),
              Curve(xs, np.asarray(metrics["test_pred_rnn"]), "-o", f"RNN (MSE {metrics['test_mse']:.4g})"),
              Curve(xs, np.asarray(metrics["test_pred_persistence"]), "--",
                    f"persistence (MSE {metrics['persistence_mse']:.4g})")]
    p = metrics.get("ar_order")
    if p:
        curves.append(Curve(xs, np.asarray(metrics[f"test_pred_ar{p}"]), ":", f"AR({p}) (MSE {metrics[f'ar{p}_mse']:.4g})"))
    return PredictionView(tuple(curves), x_label, y_label, title=title, integer_x=True)


def sunspots_view(data: TaskData, model, metrics: dict[str, Any]) -> PredictionView:
    first, last = data.info["years"]["test"]
    return series_view(data, metrics, first, "year", "sunspot number (yearly mean)",
                       f"sunspots: one-year-ahead forecasts of the test years {first}–{last}")


def csv_view(data: TaskData, model, metrics: dict[str, Any]) -> PredictionView:
    n = len(metrics["test_targets"])
    first = len(data.series) - n + 1  # 1-based
    column = data.info["column"]
    return series_view(data, metrics, first, "t (value number in the column, 1 = the first)",
                       f"{column} (the file's units)",
                       f"{column}: one-step-ahead forecasts of the test values t = {first}..{len(data.series)}")


def sunspots_last_window(task_info: dict[str, Any]) -> np.ndarray:
    """The last `window` years of the shipped series (window, 1): the input that forecasts the year after."""
    _, series = sunspots_series()
    return series[-int(task_info["window"]):, None]  # (W, 1)


# ---------------------------------------------------------------- the registry
def _resolved_path(text: str) -> str:
    """A file given on the command line, made absolute: resume and gradflow --model work from any folder."""
    return str(Path(text).resolve())


def _sizes(what: str, train: int | None, val: int | None, test: int | None, note: str = "") -> tuple[Option, ...]:
    """--n-train/--n-val/--n-test (train None: no --n-train, the series' training part is the rest)."""
    opts = () if train is None else (Option("n_train", int, train, f"training {what}"),)
    return opts + (Option("n_val", int, val, f"validation {what}{note}"), Option("n_test", int, test, f"test {what}{note}"))


@dataclass(frozen=True)
class Task:
    """Everything about one task.  ``loader(**options[, seed=])`` returns its TaskData;
    ``metrics(data, pred (T, N, O))`` its own test metrics; ``view(data, model, metrics)`` what its
    predictions plot shows; ``default_input(task_info)`` the input (T, D), in the data's units, that
    ``bptt predict`` uses when given none (None: the input is required)."""

    name: str
    description: str
    loader: Callable[..., TaskData]
    options: tuple[Option, ...]
    defaults: TrainDefaults
    metrics: Callable[[TaskData, np.ndarray], dict[str, Any]] = no_metrics
    view: Callable[[TaskData, Any, dict[str, Any]], PredictionView] = scored_view
    seeded: bool = True  # the loader takes seed= (random data)
    default_input: Callable[[dict[str, Any]], np.ndarray] | None = None
    scaled: bool = False  # the data is scaled to [0, 1]: a model file must carry the scaling back
    info_fields: tuple[str, ...] = ()  # what a model file's task_info must hold for `bptt predict`

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    @property
    def flags(self) -> str:
        return ", ".join(o.flag for o in self.options)


TASKS: dict[str, Task] = {t.name: t for t in (
    Task(name="binary-addition", description="add two numbers bit by bit, least significant first (T = bits + 1)",
         loader=binary_addition,
         options=(Option("bits", int, 8, "operand bits, so T = bits + 1"),) + _sizes("pairs", 1000, 200, 1000),
         defaults=TrainDefaults(hidden_size=8, lr=0.05, epochs=30, batch_size=32, checkpoint_every=5),
         metrics=addition_metrics, view=addition_view, info_fields=("bits",)),
    Task(name="sine", description="predict the next value of noisy sine waves",
         loader=sine,
         options=(Option("length", int, 100, "sequence length"),) + _sizes("sequences", 200, 50, 50)
         + (Option("noise", float, 0.05, "noise standard deviation"),),
         defaults=TrainDefaults(hidden_size=16, lr=0.01, epochs=30, batch_size=16, checkpoint_every=5, chunk=25),
         metrics=sine_metrics, view=sine_view, scaled=True),
    Task(name="adding", description="the adding problem: the mean of two marked values, answered at the last step",
         loader=adding,
         options=(Option("length", int, 50, "sequence length"),) + _sizes("sequences", 2000, 500, 1000),
         defaults=TrainDefaults(hidden_size=16, lr=0.01, epochs=30, batch_size=32, checkpoint_every=5,
                                hf={"epochs": 100, "checkpoint_every": 10}),  # HF breaks T = 100 in ~40 iterations
         metrics=adding_metrics, view=adding_view),
    Task(name="sunspots", description="forecast next year's sunspot number, 1700-2008",
         loader=sunspots, seeded=False,
         options=(Option("window", int, 20, "window length in years"),) + _sizes("years", None, 20, 30),
         defaults=TrainDefaults(hidden_size=8, lr=0.01, epochs=200, batch_size=16, checkpoint_every=20),
         metrics=series_metrics, view=sunspots_view, default_input=sunspots_last_window, scaled=True,
         info_fields=("window",)),
    Task(name="csv", description="forecast the next value of a numeric column of a CSV file",
         loader=csv_task, seeded=False,
         options=(Option("path", _resolved_path, None, "the CSV file (with a header row)", "--csv", "FILE", required=True),
                  Option("column", str, None, "the column (header name)", metavar="NAME", required=True),
                  Option("window", int, 20, "window length"))
         + _sizes("values", None, None, None, " (default 15 % of them)"),
         defaults=TrainDefaults(hidden_size=8, lr=0.01, epochs=200, batch_size=16, checkpoint_every=20),
         metrics=series_metrics, view=csv_view, scaled=True, info_fields=("window",)),
)}


def get(name: str) -> Task:
    """The record of task ``name``."""
    if not isinstance(name, str) or name not in TASKS:
        raise BPTTError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def option_flag(name: str) -> str:
    """The CLI flag of option ``name`` as the registry spells it (``path`` is ``--csv``)."""
    opt = next((o for t in TASKS.values() for o in t.options if o.name == name), None)
    return opt.flag if opt else "--" + str(name).replace("_", "-")


def check_options(name: str, options: dict[str, Any]) -> Task:
    """The record of task ``name``, after checking that every key of ``options`` is one of its options."""
    task = get(name)
    for k in options:
        if task.option(k) is None:
            raise BPTTError(f"{option_flag(k)} does not apply to task {name}; its options are {task.flags}")
    return task


def load(name: str, seed: int = 0, **options: Any) -> TaskData:
    """The task called ``name``: its record's defaults under ``options``; ``seed`` for the random tasks."""
    task = check_options(name, options)
    kwargs = {o.name: o.default for o in task.options if not o.required}
    kwargs.update(options)
    if task.seeded:
        kwargs["seed"] = seed
    return task.loader(**kwargs)


def prediction_view(data: TaskData, model, metrics: dict[str, Any]) -> PredictionView:
    """What the predictions plot of ``data``'s task shows (``metrics``: from ``metrics(data, model)``)."""
    return get(data.name).view(data, model, metrics)


def options_by_name() -> dict[str, list[tuple[Task, Option]]]:
    """Every option name in the registry -> the (task, option) pairs that take it, in registry order.

    Tasks sharing an option name share its flag and type (the CLI has one argument per name).
    """
    out: dict[str, list[tuple[Task, Option]]] = {}
    for task in TASKS.values():
        for opt in task.options:
            out.setdefault(opt.name, []).append((task, opt))
    for name, uses in out.items():
        first = uses[0][1]
        for task, opt in uses[1:]:
            if (opt.flag, opt.type) != (first.flag, first.type):
                raise BPTTError(f"task {task.name}: option {name!r} has flag {opt.flag} and type {opt.type.__name__} but task "
                                f"{uses[0][0].name} gives it {first.flag} and {first.type.__name__}; shared options must agree")
    return out
