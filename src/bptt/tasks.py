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
    y     (T, N, O)   targets, in [0, 1] for the sigmoid output; one-hot rows for the softmax
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
chars             a character-level language model in the style of Karpathy's min-char-rnn:
                  130,992 characters of Python's language reference (``data/python_reference.txt``,
                  PSF licence; see ``data/CHARS_SOURCE.txt``), cut into train/val/test parts
                  (80/10/10 %, contiguous, in order) and each part into sequences of `length`
                  characters: x_t one-hot c_i, y_t one-hot c_{i+1}; a softmax output and the
                  cross-entropy.  Test metric: bits per character, beside unigram and bigram
                  models of the training split.  `bptt predict` samples text from it.

The pathological long-range problems of Martens & Sutskever (ICML 2011), after Hochreiter &
Schmidhuber (1997); every one has `length` T steps, its answer at the end, a test error by the
literature's criterion (``test_error``) beside its trivial baseline's (``baseline_error``), and
``solved`` (test error below 1 %):

multiplication    x_t = (v_t, m_t), v ~ U(0, 1), two marked steps in [T/100, T/10) and [T/10, T/2);
                  the product of the marked values at the last step; right within 0.04.
xor               the same with random bits and marks in [T/50, T/5), [3T/10, T/2); their XOR, a
                  class of 2 (softmax output, cross-entropy).
temporal-order    one-hot symbols a-d, B first, E last, `bits` (2 or 3) symbols X/Y at marked spans;
                  their order, a class of 4 or 8.
random-permutation  one-hot of `symbols`: 0 or 1 first, then random symbols 2..K-1; the next symbol
                  at every step, the first one again at the end (only that one is predictable).
memorization      a string of 5 bits (5 binary characters) or 20 bits (10 of 4 symbols), blanks, a
                  trigger, then the string; blank predicted everywhere else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import floatmath
from .inits import init_field
from .untrusted import read_csv_columns  # strict and bounded: a CSV file is untrusted input
from .validation import BPTTError, check_int, check_number, check_scaling, short_repr

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
    ``required`` (the loader refuses to run without it) and ``training`` (an option of how the task is trained,
e.g. ``fresh``: the training loop reads it, ``load`` does not pass it to the loader)."""

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str
    flag: str = ""
    metavar: str = ""
    required: bool = False
    training: bool = False  # read by the training loop (bptt.train), not passed to the loader

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
    # None: TrainConfig's (a sigmoid output, the squared error); a loss needs its output (bptt.losses.pair)
    output_activation: str | None = None
    loss: str | None = None
    # what --optimizer hf changes (TrainConfig fields): one epoch is one HF iteration, so its budget differs;
    # its task_options are task options' defaults under HF (given options win)
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
    bits: BitTable | None = None  # sums bit by bit: plots draws wrong bits by position and a few sums, not curves


@dataclass(frozen=True)
class BitTable:
    """Test sums bit by bit, (T, N) each, least significant first: the operands' bits a and b, the carry
    into each position, the true sum's bits and the network's output (0 to 1; its bit: above 0.5)."""

    a: np.ndarray  # (T, N)
    b: np.ndarray  # (T, N)
    carry: np.ndarray  # (T, N) bool
    target: np.ndarray  # (T, N)
    output: np.ndarray  # (T, N)


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
    whole = adding_draw(np.random.default_rng([seed, STREAMS["adding"]]), n_train + n_val + n_test, length)
    return TaskData(
        "adding",
        *_train_val_test(_cut(whole), n_train, n_val, whole.n),
        input_size=2,
        output_size=1,
        info={"length": length, "sequences": {"train": n_train, "val": n_val, "test": n_test}},
    )


def adding_draw(rng: np.random.Generator, n: int, length: int = 50) -> Split:
    """n sequences of the adding problem drawn from ``rng``: x (T, n, 2), y (T, n, 1), mask (T, n)."""
    length = _positive_int("length", length, 2)
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
    return Split(x, y, mask)


def _cut(whole: Split) -> Callable[[int, int], Split]:
    """split(lo, hi): sequences lo..hi-1 of ``whole``."""
    def split(lo: int, hi: int) -> Split:
        return Split(whole.x[:, lo:hi], whole.y[:, lo:hi], None if whole.mask is None else whole.mask[:, lo:hi])
    return split


# The generator stream of each generated task: its fixed data from default_rng([seed, stream]), the fresh
# training set of epoch k (option fresh) from default_rng([seed, stream, k]), k >= 1: other streams.
STREAMS = {"adding": 3, "multiplication": 4, "xor": 5, "temporal-order": 6, "random-permutation": 7, "memorization": 8}


# ---------------------------------------------------------------- the pathological long-range problems
# Martens & Sutskever (ICML 2011, "Learning Recurrent Neural Networks with Hessian-Free Optimization",
# section 8 and its supplementary section 2) after Hochreiter & Schmidhuber (1997, "Long short-term
# memory", experiments 4-6).  Positions follow Sutskever's code for that paper, given for T = 100 and
# scaled with T; here every sequence has exactly T steps (theirs drew T' from [T, 1.1 T)).
SOLVED_ERROR = 0.01  # this library calls a run solved when its test error is below 1 %
TOLERANCE = 0.04  # a real-valued answer is right within 0.04 (Hochreiter & Schmidhuber 1997)
MIN_LENGTH = 8


def _spans(task: str, length: int, percents: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """Half-open position ranges [lo, hi) at the given percentages of ``length``, each after the
    previous one and after step 0, all before the last step (which answers)."""
    out, prev = [], 1
    for lo_pct, hi_pct in percents:
        lo = max(prev, length * lo_pct // 100)
        hi = max(lo + 1, length * hi_pct // 100)
        out.append((lo, hi))
        prev = hi
    if prev > length - 1:
        raise BPTTError(f"--length {length} is too short for {task}: its marked steps need at least {prev + 1} steps; "
                        f"give a longer --length")
    return out


def _sizes_checked(n_train: int, n_val: int, n_test: int) -> tuple[int, int, int]:
    return tuple(_positive_int(k, v) for k, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)))  # type: ignore[return-value]


def _length_checked(length: int) -> int:
    return _positive_int("length", length, MIN_LENGTH)


def _answer_rows(labels: np.ndarray, classes: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """y (T, N, K) with one-hot labels at the last step and the uniform row elsewhere (never scored:
    the cross-entropy wants every row to sum to 1), and the mask (T, N) of the last step."""
    n = len(labels)
    y = np.full((length, n, classes), 1.0 / classes)
    y[-1] = np.eye(classes)[labels]
    mask = np.zeros((length, n), dtype=bool)
    mask[-1] = True
    return y, mask


def _three_splits(name: str, whole: Split, sizes: tuple[int, int, int], info: dict[str, Any]) -> TaskData:
    n_train, n_val, n_test = sizes
    return TaskData(name, *_train_val_test(_cut(whole), n_train, n_val, sum(sizes)), input_size=whole.x.shape[2],
                    output_size=whole.y.shape[2],
                    info={**info, "sequences": {"train": n_train, "val": n_val, "test": n_test}})


OPERAND_SPANS = {"multiplication": ((1, 10), (10, 50)), "xor": ((2, 20), (30, 50))}


def operand_inputs(task: str, length: int, n: int, rng: np.random.Generator,
                   a: np.ndarray | None = None, b: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (T, N, 2) = (value, marker) of the multiplication or XOR problem, and the two marked values
    (N,) each: given ones (a, b) or the drawn ones.  Values: U(0, 1) (multiplication), bits (xor)."""
    (a_lo, a_hi), (b_lo, b_hi) = _spans(task, length, OPERAND_SPANS[task])
    if task == "xor":
        v = rng.integers(0, 2, size=(length, n)).astype(np.float64)  # (T, N)
    else:
        v = rng.uniform(0, 1, size=(length, n))  # (T, N)
    i = rng.integers(a_lo, a_hi, size=n)  # (N,)
    j = rng.integers(b_lo, b_hi, size=n)
    cols = np.arange(n)
    if a is not None:
        v[i, cols] = a
    if b is not None:
        v[j, cols] = b
    m = np.zeros((length, n))  # (T, N)
    m[i, cols] = 1.0
    m[j, cols] = 1.0
    return np.stack([v, m], axis=-1), v[i, cols], v[j, cols]


def multiplication(length: int = 100, n_train: int = 2000, n_val: int = 500, n_test: int = 1000, seed: int = 0) -> TaskData:
    """The multiplication problem (Hochreiter & Schmidhuber 1997, experiment 5; Martens & Sutskever 2011).

    x_t = (v_t, m_t), v_t ~ U(0, 1); m_t = 1 at one step drawn from [T/100, T/10) and one from
    [T/10, T/2), else 0.  The target, scored at the last step only, is the product of the two marked
    values (in [0, 1], the seed's sigmoid output).  Solved: |error| < 0.04 on the test sequences.
    """
    sizes = _sizes_checked(n_train, n_val, n_test)
    whole = multiplication_draw(np.random.default_rng([seed, STREAMS["multiplication"]]), sum(sizes), length)
    return _three_splits("multiplication", whole, sizes, {"length": whole.x.shape[0]})


def multiplication_draw(rng: np.random.Generator, n: int, length: int = 100) -> Split:
    """n sequences of the multiplication problem drawn from ``rng``."""
    length = _length_checked(length)
    x, a, b = operand_inputs("multiplication", length, n, rng)
    y = np.zeros((length, n, 1))  # (T, N, 1)
    y[-1, :, 0] = a * b
    mask = np.zeros((length, n), dtype=bool)
    mask[-1] = True
    return Split(x, y, mask)


def xor(length: int = 100, n_train: int = 2000, n_val: int = 500, n_test: int = 1000, seed: int = 0) -> TaskData:
    """The XOR problem (Martens & Sutskever 2011, after Hochreiter & Schmidhuber 1997's adding problem).

    x_t = (v_t, m_t), v_t a random bit; m_t = 1 at one step drawn from [T/50, T/5) and one from
    [3T/10, T/2).  The target, at the last step only, is the XOR of the two marked bits, a class of
    two: a softmax output and the cross-entropy.  (Sutskever's code ran XOR at half the other
    problems' length: its "T = 100" XOR has 50 steps, with these same fractions.)
    """
    sizes = _sizes_checked(n_train, n_val, n_test)
    whole = xor_draw(np.random.default_rng([seed, STREAMS["xor"]]), sum(sizes), length)
    return _three_splits("xor", whole, sizes, {"length": whole.x.shape[0]})


def xor_draw(rng: np.random.Generator, n: int, length: int = 100) -> Split:
    """n sequences of the XOR problem drawn from ``rng``."""
    length = _length_checked(length)
    x, a, b = operand_inputs("xor", length, n, rng)
    return Split(x, *_answer_rows((a != b).astype(np.int64), 2, length))


TEMPORAL_SPANS = {2: ((1, 10), (40, 50)), 3: ((1, 10), (30, 40), (50, 60))}
TEMPORAL_SYMBOLS = "abcdXYEB"  # 4 distractors, the two relevant symbols, the end (E) and begin (B) symbols


def temporal_inputs(length: int, bits: int, n: int, rng: np.random.Generator,
                    codes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x (T, N, 8) one-hot of the temporal order problem and the class (N,) of each sequence: the
    bits-digit binary number of its X/Y symbols in order (X = 0, Y = 1, the first the most significant).
    ``codes`` (N,): given classes; else drawn."""
    spans = _spans("temporal-order", length, TEMPORAL_SPANS[bits])
    s = rng.integers(0, 4, size=(length, n))  # (T, N): distractors a-d
    s[0], s[-1] = 7, 6  # B first, E last: the network answers at E
    if codes is None:
        codes = rng.integers(0, 2**bits, size=n)
    cols = np.arange(n)
    for k, (lo, hi) in enumerate(spans):
        pos = rng.integers(lo, hi, size=n)  # (N,)
        s[pos, cols] = 4 + ((codes >> (bits - 1 - k)) & 1)  # X or Y
    return np.eye(8)[s], np.asarray(codes, dtype=np.int64)


def temporal_order(length: int = 100, bits: int = 2, n_train: int = 2000, n_val: int = 500, n_test: int = 1000,
                   seed: int = 0) -> TaskData:
    """The temporal order problem (Hochreiter & Schmidhuber 1997, experiments 6a and 6b; Martens &
    Sutskever 2011, 2-bit and 3-bit).

    A sequence of random distractors a, b, c, d (one-hot, 8 symbols) begins with B and ends with E;
    `bits` relevant symbols, each X or Y, stand at steps drawn from [T/100, T/10) and [2T/5, T/2)
    (2 bits), or [T/100, T/10), [3T/10, 2T/5) and [T/2, 3T/5) (3 bits).  At E the network names their
    order: one class of 2^bits (XX, XY, YX, YY for 2 bits), a softmax output and the cross-entropy.
    """
    _length_checked(length)
    _temporal_bits_checked(bits)
    sizes = _sizes_checked(n_train, n_val, n_test)
    whole = temporal_order_draw(np.random.default_rng([seed, STREAMS["temporal-order"]]), sum(sizes), length, bits)
    return _three_splits("temporal-order", whole, sizes, {"length": length, "order_bits": bits})


def _temporal_bits_checked(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits not in TEMPORAL_SPANS:
        raise BPTTError(f"--bits must be 2 or 3 for temporal-order (the 2-bit and 3-bit problems), got {bits!r}")
    return bits


def temporal_order_draw(rng: np.random.Generator, n: int, length: int = 100, bits: int = 2) -> Split:
    """n sequences of the temporal order problem drawn from ``rng``."""
    length, bits = _length_checked(length), _temporal_bits_checked(bits)
    x, codes = temporal_inputs(length, bits, n, rng)
    return Split(x, *_answer_rows(codes, 2**bits, length))


def permutation_inputs(length: int, symbols: int, first: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x, y (T, N, K) one-hot of the random permutation problem with the given first symbols (N,) in {0, 1}."""
    n = len(first)
    s = np.empty((length + 1, n), dtype=np.int64)  # (T + 1, N): the symbols, the answer last
    s[0] = first
    s[1:length] = rng.integers(2, symbols, size=(length - 1, n))
    s[length] = first
    eye = np.eye(symbols)
    return eye[s[:-1]], eye[s[1:]]


def random_permutation(length: int = 100, symbols: int = 100, n_train: int = 2000, n_val: int = 500,
                       n_test: int = 1000, seed: int = 0) -> TaskData:
    """The random permutation problem (Martens & Sutskever 2011, after Hochreiter & Schmidhuber 1997,
    experiment 2).

    One-hot symbols of `symbols`: the first is 0 or 1, the next T - 1 are drawn from 2..K-1; at every
    step the target is the next symbol (a softmax output, the cross-entropy on every step), and the
    next symbol of the last step is the first one again.  Only that last answer can be predicted; the
    test error is the fraction of sequences whose last answer is wrong.
    """
    length = _length_checked(length)
    symbols = _positive_int("symbols", symbols, 3)
    sizes = _sizes_checked(n_train, n_val, n_test)
    whole = random_permutation_draw(np.random.default_rng([seed, STREAMS["random-permutation"]]), sum(sizes), length,
                                    symbols)
    return _three_splits("random-permutation", whole, sizes, {"length": length, "symbols": symbols})


def random_permutation_draw(rng: np.random.Generator, n: int, length: int = 100, symbols: int = 100) -> Split:
    """n sequences of the random permutation problem drawn from ``rng``."""
    length, symbols = _length_checked(length), _positive_int("symbols", symbols, 3)
    return Split(*permutation_inputs(length, symbols, rng.integers(0, 2, size=n), rng))


MEMORY = {5: (5, 2), 20: (10, 4)}  # the 5-bit and 20-bit problems: (characters, alphabet)


def memorization_sequences(length: int, chars: int, alphabet: int, strings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (T, N, K + 2), y (T, N, K + 1) of the noiseless memorization problem for strings (N, chars):
    inputs are the K symbols, blank (K) and the trigger (K + 1); outputs the K symbols and blank."""
    n = len(strings)
    xs = np.full((length, n), alphabet, dtype=np.int64)  # (T, N): blank
    xs[:chars] = strings.T
    xs[length - chars - 1] = alphabet + 1  # the trigger: recall from the next step on
    ys = np.full((length, n), alphabet, dtype=np.int64)  # blank
    ys[length - chars:] = strings.T
    return np.eye(alphabet + 2)[xs], np.eye(alphabet + 1)[ys]


def memorization(length: int = 100, bits: int = 5, n_train: int = 2000, n_val: int = 500, n_test: int = 1000,
                 seed: int = 0) -> TaskData:
    """Noiseless memorization (Martens & Sutskever 2011, after Hochreiter & Schmidhuber 1997).

    The first steps show a string (5 bits: 5 characters of 2 symbols; 20 bits: 10 characters of 4),
    then blanks; the trigger stands at the step T - chars - 1 and the network must output the string
    on the last `chars` steps and blank on every other step (a softmax output, the cross-entropy on
    every step).  The test error is the fraction of test sequences with any recalled character wrong.
    The 5-bit problem has only 32 distinct sequences, so its splits hold the same ones.
    """
    _memorization_checked(length, bits)
    chars, alphabet = MEMORY[bits]
    sizes = _sizes_checked(n_train, n_val, n_test)
    whole = memorization_draw(np.random.default_rng([seed, STREAMS["memorization"]]), sum(sizes), length, bits)
    return _three_splits("memorization", whole, sizes,
                         {"length": length, "string_bits": bits, "chars": chars, "alphabet": alphabet})


def _memorization_checked(length: Any, bits: Any) -> tuple[int, int]:
    length = _length_checked(length)
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits not in MEMORY:
        raise BPTTError(f"--bits must be 5 or 20 for memorization (the 5-bit and 20-bit problems), got {bits!r}")
    chars = MEMORY[bits][0]
    if length < 2 * chars + 2:
        raise BPTTError(f"--length {length} is too short for the {bits}-bit memorization problem: it needs at least "
                        f"{2 * chars + 2} steps; give a longer --length")
    return length, bits


def memorization_draw(rng: np.random.Generator, n: int, length: int = 100, bits: int = 5) -> Split:
    """n sequences of the noiseless memorization problem drawn from ``rng``."""
    length, bits = _memorization_checked(length, bits)
    chars, alphabet = MEMORY[bits]
    return Split(*memorization_sequences(length, chars, alphabet, rng.integers(0, alphabet, size=(n, chars))))


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
    check_scaling(lo, hi, "the training part of the series")  # errors in its units neither overflow nor round to 0
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


# ---------------------------------------------------------------- characters (min-char-rnn)
CHARS_FILE = "python_reference.txt"  # in bptt/data; provenance and licence: data/CHARS_SOURCE.txt
CHARS_SPLIT = (8, 9)  # tenths of the text where validation and test begin: 80 % / 10 % / 10 %


def chars_text() -> str:
    """The shipped text (130,992 characters of Python's language reference, UTF-8)."""
    raw = (resources.files("bptt") / "data" / CHARS_FILE).read_bytes().decode("utf-8")
    return raw.replace("\r\n", "\n")  # the same text from a checkout that converted line ends


def char_task(text: str, length: int = 25, name: str = "chars", source: str = "") -> TaskData:
    """Next-character prediction over ``text``: one-hot characters in, the next character's one-hot out.

    The text is cut into three contiguous parts, in order (train 80 %, validation 10 %, test 10 %);
    each part into non-overlapping sequences of ``length`` steps, x_t = c_i, y_t = c_{i+1}, both within
    the part (the tail shorter than a sequence is unused).  The vocabulary is the training part's
    characters, sorted by code point; every character of the other parts must be in it.
    """
    length = _positive_int("length", length)
    n = len(text)
    a, b = n * CHARS_SPLIT[0] // 10, n * CHARS_SPLIT[1] // 10
    vocab = "".join(sorted(set(text[:a])))
    unseen = sorted(set(text[a:]) - set(vocab))
    if unseen:
        raise BPTTError(f"the text's validation/test parts hold {len(unseen)} character(s) absent from its training part "
                        f"(first {unseen[0]!r}); every character must occur in the first 80 % of the text")
    index = {c: i for i, c in enumerate(vocab)}
    codes = np.fromiter((index[c] for c in text), dtype=np.int64, count=n)  # (n,)
    eye = np.eye(len(vocab))  # (V, V): row i is character i's one-hot

    def split(lo: int, hi: int) -> Split:
        count = (hi - lo - 1) // length  # sequences whose targets all lie in [lo, hi)
        if count < 1:
            raise BPTTError(f"--length {length} is longer than a split of the text ({hi - lo} characters); "
                            f"give --length below {hi - lo}")
        idx = lo + np.arange(count)[None, :] * length + np.arange(length)[:, None]  # (T, N)
        return Split(eye[codes[idx]], eye[codes[idx + 1]])  # (T, N, V) each

    parts = (split(0, a), split(a, b), split(b, n))
    return TaskData(
        name, *parts, input_size=len(vocab), output_size=len(vocab),
        info={"length": length, "vocab": vocab,
              "characters": {"train": a, "val": b - a, "test": n - b},
              "sequences": {k: p.n for k, p in zip(("train", "val", "test"), parts)},
              **({"source": source} if source else {})},
    )


def chars(length: int = 25) -> TaskData:
    """The shipped text (``chars_text``) as a character-level language-modelling task (``char_task``)."""
    return char_task(chars_text(), length, "chars", "data/CHARS_SOURCE.txt")


def char_codes(onehot: np.ndarray) -> np.ndarray:
    """One-hot rows (..., V) -> character indices (...)."""
    return np.argmax(onehot, axis=-1)


def char_ngram_bits(data: TaskData) -> tuple[np.ndarray, np.ndarray]:
    """Bits of each test target (T, N) under the unigram and the bigram models of the training split,
    both with add-one (Laplace) smoothing.  Unigram: counts of the training targets; bigram: counts of
    the training (input, target) pairs, p(c | b) = (n(b, c) + 1) / (n(b, .) + V)."""
    V = data.output_size
    x_tr, y_tr = char_codes(data.train.x).ravel(), char_codes(data.train.y).ravel()  # (T N_train,) each
    uni = np.bincount(y_tr, minlength=V).astype(np.float64)  # (V,)
    pair = np.zeros((V, V))  # (previous, next)
    np.add.at(pair, (x_tr, y_tr), 1.0)
    x_te, y_te = char_codes(data.test.x), char_codes(data.test.y)  # (T, N) each
    p_uni = (uni + 1) / (uni.sum() + V)  # (V,)
    p_bi = (pair + 1) / (pair.sum(axis=1, keepdims=True) + V)  # (V, V): each row sums to 1
    return -np.log2(p_uni[y_te]), -np.log2(p_bi[x_te, y_te])


def char_bits(data: TaskData, pred: np.ndarray) -> np.ndarray:
    """Bits the model spends on each test target, -log2 y'(next character): (T, N).  pred (T, N, V)."""
    p = np.take_along_axis(pred, char_codes(data.test.y)[..., None], axis=-1)[..., 0]  # (T, N)
    return -np.log2(np.maximum(p, np.finfo(np.float64).tiny))  # a float32 probability may underflow to 0


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
    """MSE at the scored last step against predicting the training targets' mean, and the fraction of
    test sequences answered within 0.04 (Hochreiter & Schmidhuber 1997's criterion).  pred (T, N, 1)."""
    return _tolerance_metrics(data, pred)


def _tolerance_metrics(data: TaskData, pred: np.ndarray) -> dict[str, Any]:
    """The literature's criterion for a real-valued answer at the last step: the fraction of test
    sequences answered within 0.04, beside the same for predicting the training targets' mean."""
    scored, target = pred[-1, :, 0], data.test.y[-1, :, 0]  # (N,) each
    mean_train = float(data.train.y[-1, :, 0].mean())
    base = float(np.mean((target - mean_train) ** 2))
    within = float(np.mean(np.abs(scored - target) < TOLERANCE))
    base_within = float(np.mean(np.abs(mean_train - target) < TOLERANCE))
    return {
        "test_mse": float(np.mean((scored - target) ** 2)),
        "baseline_mse": base,
        "baseline": "predict the training targets' mean",
        "mse_ratio": float(np.mean((scored - target) ** 2) / base),
        "test_within_0_04": within,
        "test_error": 1.0 - within,
        "baseline_error": 1.0 - base_within,
        "solved": 1.0 - within < SOLVED_ERROR,
    }


def multiplication_metrics(data: TaskData, pred: np.ndarray) -> dict[str, Any]:
    """The fraction of test products answered within 0.04 (and the MSE) against the training mean."""
    return _tolerance_metrics(data, pred)


def class_metrics(data: TaskData, pred: np.ndarray) -> dict[str, Any]:
    """Classification error of the answer at the last step (the class of largest output) beside always
    answering the training targets' most frequent class.  pred (T, N, K)."""
    want = np.argmax(data.test.y[-1], axis=-1)  # (N,)
    got = np.argmax(pred[-1], axis=-1)  # (N,)
    train = np.argmax(data.train.y[-1], axis=-1)  # (N_train,)
    majority = int(np.bincount(train, minlength=data.output_size).argmax())
    error = float(np.mean(got != want))
    return {
        "test_error": error,
        "baseline_error": float(np.mean(want != majority)),
        "baseline": f"always the training targets' most frequent class ({majority})",
        "test_sequences": int(len(want)),
        "solved": error < SOLVED_ERROR,
    }


def memorization_metrics(data: TaskData, pred: np.ndarray) -> dict[str, Any]:
    """Fraction of test sequences with a recalled character wrong (and of characters), beside answering
    each recall step with the training strings' most frequent character there.  pred (T, N, K + 1)."""
    chars = int(data.info["chars"])
    want = np.argmax(data.test.y[-chars:], axis=-1)  # (chars, N)
    got = np.argmax(pred[-chars:], axis=-1)  # (chars, N)
    train = np.argmax(data.train.y[-chars:], axis=-1)  # (chars, N_train)
    majority = np.array([np.bincount(row, minlength=data.output_size).argmax() for row in train])  # (chars,)
    error = float(np.mean(np.any(got != want, axis=0)))
    return {
        "test_error": error,
        "test_char_error": float(np.mean(got != want)),
        "blank_error": float(np.mean(np.argmax(pred[:-chars], axis=-1) != np.argmax(data.test.y[:-chars], axis=-1))),
        "baseline_error": float(np.mean(np.any(want != majority[:, None], axis=0))),
        "baseline": "each recalled character the training strings' most frequent one at that place",
        "test_sequences": int(want.shape[1]),
        "solved": error < SOLVED_ERROR,
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


def char_metrics(data: TaskData, pred: np.ndarray) -> dict[str, Any]:
    """Test bits per character beside the unigram and bigram models of the training split.  pred (T, N, V)."""
    bits = char_bits(data, pred)  # (T, N)
    uni, bi = char_ngram_bits(data)  # (T, N) each
    return {
        "test_bpc": float(bits.mean()),
        "unigram_bpc": float(uni.mean()),
        "bigram_bpc": float(bi.mean()),
        "uniform_bpc": math.log2(data.output_size),
        "baseline": "unigram/bigram: character (pair) frequencies of the training split, add-one smoothing",
        "test_accuracy": float(np.mean(np.argmax(pred, axis=-1) == char_codes(data.test.y))),
        "test_characters": int(bits.size),
    }


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


def multiplication_view(data: TaskData, model, metrics: dict[str, Any]) -> PredictionView:
    v = scored_view(data, model, metrics)
    curve = dataclasses.replace(v.curves[0], label=f"{data.test.n} test sequences")
    return dataclasses.replace(v, curves=(curve,), x_label="target: product of the two marked values",
                               y_label="prediction at the last step",
                               title=f"multiplication: {data.test.n} test sequences of {data.test.x.shape[0]} steps")


def class_view(data: TaskData, model, metrics: dict[str, Any]) -> PredictionView:
    """The fraction of test answers that are right: per true class at the last step, or (memorization)
    per recalled character; chance (1 / classes) beside it."""
    te = data.test
    pred = model.predict(te.x.astype(model.dtype))  # (T, N, O)
    chars = int(data.info.get("chars", 0))  # memorization: the recalled characters
    if chars:
        want = np.argmax(te.y[-chars:], axis=-1)  # (chars, N)
        right = (np.argmax(pred[-chars:], axis=-1) == want).mean(axis=1)  # (chars,)
        xs, x_label, chance = np.arange(1, chars + 1), "recalled character (1 = the first shown)", 1 / int(data.info["alphabet"])
    else:
        want = np.argmax(te.y[-1], axis=-1)  # (N,)
        ok = np.argmax(pred[-1], axis=-1) == want  # (N,)
        xs = np.unique(want)  # the classes present
        right = np.array([ok[want == c].mean() for c in xs])
        x_label, chance = "true class of the answer at the last step", 1 / data.output_size
    return PredictionView(
        (Curve(xs, right, "-o", "network", 5.0), Curve(xs, np.full(len(xs), chance), "--", "chance")),
        x_label, "fraction of test sequences answered right",
        title=f"{data.name}: {te.n} test sequences of {te.x.shape[0]} steps "
              f"(test error {metrics.get('test_error', float('nan')):.3f})", integer_x=True)


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
    a, b = te.x[..., 0].astype(np.int64), te.x[..., 1].astype(np.int64)  # (T, N) each
    carry = np.zeros_like(a)  # (T, N): the carry into position t
    for t in range(1, a.shape[0]):
        carry[t] = (a[t - 1] + b[t - 1] + carry[t - 1]) >= 2
    table = BitTable(a, b, carry.astype(bool), te.y[..., 0].astype(np.int64), pred.astype(np.float64))
    return PredictionView(tuple(curves), "a + b (true sum)", "network's sum (bits thresholded at 0.5)",
                          title=f"binary-addition: {te.n} test pairs a + b of {bits}-bit numbers", integer_x=True,
                          bits=table)


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


def chars_view(data: TaskData, model, metrics: dict[str, Any]) -> PredictionView:
    """Bits per character at each step t of the test sequences (the RNN's context grows with t) beside
    the bigram and unigram models, which see one character or none."""
    te = data.test
    pred = model.predict(te.x.astype(model.dtype)).astype(np.float64)  # (T, N, V)
    uni, bi = char_ngram_bits(data)  # (T, N) each
    t = np.arange(1, te.x.shape[0] + 1)  # (T,)
    return PredictionView(
        (Curve(t, char_bits(data, pred).mean(axis=1), "-o", "RNN"),
         Curve(t, bi.mean(axis=1), "--", "bigram (training split)"),
         Curve(t, uni.mean(axis=1), ":", "unigram (training split)")),
        "t (step of the sequence: characters of context seen)", "bits per character (mean over the test sequences)",
        title=f"{data.name}: {te.n} test sequences of {te.x.shape[0]} characters", integer_x=True)


def sunspots_last_window(task_info: dict[str, Any]) -> np.ndarray:
    """The last `window` years of the shipped series (window, 1): the input that forecasts the year after."""
    _, series = sunspots_series()
    return series[-int(task_info["window"]):, None]  # (W, 1)


# ---------------------------------------------------------------- what `bptt predict` asks of a task
@dataclass(frozen=True)
class Predictor:
    """A task's own `bptt predict` answer, beside the one-step predictions of --x/--csv steps.

    ``options``: its command-line flags (the CLI passes each given one as text; ``run`` converts and
    checks it, so a bad value is one BPTTError line naming the flag).  ``run(model, task_info, given)``
    returns a JSON-able answer (a list of rows or one object); ``show(answer)`` is its text for the
    terminal; ``default``: it runs when no input at all is given (else the input is required)."""

    options: tuple[Option, ...]
    run: Callable[[Any, dict[str, Any], dict[str, str]], Any]
    show: Callable[[Any], str]
    default: bool = False


def int_list(text: str, flag: str) -> list[int]:
    """'12,200' -> [12, 200]; one line naming ``flag`` for anything else."""
    out = []
    for part in str(text).split(","):
        try:
            out.append(int(part.strip()))
        except ValueError:
            raise BPTTError(f"{flag}: {part.strip()!r} is not an integer; write e.g. {flag} 12,200") from None
    return out


def _int_option(text: str, flag: str, lo: int, hi: int, example: str) -> int:
    try:
        v = int(str(text).strip())
    except ValueError:
        v = None
    if v is None or not lo <= v <= hi:
        raise BPTTError(f"{flag} must be an integer from {lo} to {hi}, got {text!r}; write e.g. {flag} {example}")
    return v


def addition_answers(model, task_info: dict[str, Any], given: dict[str, str]) -> list[dict[str, Any]]:
    """--a A1,A2,... --b B1,B2,...: the network's sums, each beside the true one."""
    if given.get("a") is None or given.get("b") is None:
        raise BPTTError("give both --a and --b (comma-separated integers of equal count)")
    A, B = int_list(given["a"], "--a"), int_list(given["b"], "--b")
    if len(A) != len(B):
        raise BPTTError(f"--a has {len(A)} numbers but --b has {len(B)}; give them in pairs")
    bits = int(task_info["bits"])
    for v, flag in [(v, "--a") for v in A] + [(v, "--b") for v in B]:
        if not 0 <= v < (1 << bits):
            raise BPTTError(f"{flag}: {v} does not fit in {bits} bits; give integers in 0..{(1 << bits) - 1}")
    xs, _ = addition_sequences(A, B, bits)
    got = bits_to_int(model.predict(xs.astype(model.dtype))[..., 0] > 0.5)  # (N,)
    return [{"a": p, "b": q, "network": int(g), "true": p + q, "exact": int(g) == p + q} for p, q, g in zip(A, B, got)]


def addition_text(rows: list[dict[str, Any]]) -> str:
    return "\n".join(f"{r['a']} + {r['b']} = {r['network']}  ({'exact' if r['exact'] else 'WRONG, true ' + str(r['true'])})"
                     for r in rows)


MAX_SAMPLE = 100_000  # characters one `bptt predict --sample` writes


def _tempered(p: np.ndarray, temperature: float) -> np.ndarray:
    """p^(1/τ), normalised: softmax(u / τ) for p = softmax(u) (τ < 1 sharper, τ > 1 flatter).  p (V,)."""
    logits = floatmath.log(p) / temperature  # (V,): a probability of 0 stays 0
    q = floatmath.exp(logits - logits.max())
    return q / q.sum()


def sample_chars(model, task_info: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    """--sample N characters drawn one at a time from the model's next-character distribution (at
    --temperature), each fed back as the next input, after --prime (default: a newline); --seed fixes
    the draws, so the same model and options give the same text."""
    vocab = task_info["vocab"]
    V = len(vocab)
    if (model.input_size, model.output_size) != (V, V):
        raise BPTTError(f"the model has {model.input_size} inputs and {model.output_size} outputs but its vocabulary "
                        f"holds {V} characters; the model file is inconsistent, re-train it")
    n = _int_option(given.get("sample", "200"), "--sample", 1, MAX_SAMPLE, "200")
    seed = _int_option(given.get("seed", "0"), "--seed", 0, 2**63 - 1, "0")
    t_text = given.get("temperature", "1")
    try:
        temperature = float(t_text)
    except ValueError:
        temperature = math.nan
    if not (math.isfinite(temperature) and 0.01 <= temperature <= 100):
        raise BPTTError(f"--temperature must be a number from 0.01 to 100 (1: the model's own distribution, lower: "
                        f"more likely characters), got {t_text!r}; write e.g. --temperature 0.8")
    prime = given.get("prime")
    if prime is not None:
        if prime == "":
            raise BPTTError("--prime is empty; give the text to continue, or leave --prime out")
        bad = next((i for i, c in enumerate(prime) if c not in vocab), None)
        if bad is not None:
            raise BPTTError(f"--prime: character {prime[bad]!r} (position {bad + 1}) is not in the model's vocabulary "
                            f"of {V} characters (those of its training text); remove or replace it")
    start = prime if prime is not None else ("\n" if "\n" in vocab else vocab[0])
    index = {c: i for i, c in enumerate(vocab)}
    eye = np.eye(V, dtype=model.dtype)  # (V, V)
    nets = list(getattr(model, "members", None) or [model])  # an ensemble: the mean of its members' distributions
    hs: list[Any] = [None] * len(nets)

    def feed(codes: list[int]) -> np.ndarray:
        """Run every network over ``codes`` from its carried state; the next character's distribution (V,)."""
        ps = []
        for k, net in enumerate(nets):
            fwd = net.forward(eye[codes], hs[k])  # x (T, V) -> y_pred (T, V), h (T+1, H)
            hs[k] = fwd.h[-1]
            ps.append(fwd.y_pred[-1].astype(np.float64))
        return np.mean(ps, axis=0) if len(ps) > 1 else ps[0]

    rng = np.random.default_rng(seed)
    p = feed([index[c] for c in start])
    out = []
    for _ in range(n):
        cdf = np.cumsum(_tempered(p, temperature))  # (V,)
        c = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), V - 1)
        out.append(vocab[c])
        p = feed([c])
    return {"prime": prime, "text": "".join(out), "characters": n, "temperature": temperature, "seed": seed,
            "units": f"characters of the model's vocabulary ({V})"}


def chars_text_answer(answer: dict[str, Any]) -> str:
    return (answer["prime"] or "") + answer["text"]


def vocab_field(name: str, v: Any) -> str:
    """A model file's vocabulary: a non-empty string of distinct characters."""
    if not isinstance(v, str) or not v or len(set(v)) != len(v):
        raise BPTTError(f"{name} must be a non-empty string of distinct characters, got {short_repr(v)}")
    return v


def window_field(name: str, v: Any) -> int:
    return check_int(name, v, 1)  # type: ignore[return-value]


def bits_field(name: str, v: Any) -> int:
    return check_int(name, v, 1, 20)  # type: ignore[return-value]  (binary_addition's own limit)


def own_units(task_info: dict[str, Any]) -> tuple[str, str]:
    """(after a forecast's number, in words): a task that says nothing answers in the data's own units."""
    return "", "the data's own units"


def sunspots_units(task_info: dict[str, Any]) -> tuple[str, str]:
    return "sunspots", "yearly mean sunspot number"


def sine_units(task_info: dict[str, Any]) -> tuple[str, str]:
    return "", "the sine's value, unscaled"


def csv_units(task_info: dict[str, Any]) -> tuple[str, str]:
    return "", f"{task_info.get('column', 'the column')}, in the CSV file's units"


def sunspots_years(task_info: dict[str, Any], T: int) -> tuple[str, list[int]]:
    """("year", the years of the last T values): labels of sunspots' own last window."""
    years, _ = sunspots_series()
    return "year", [int(v) for v in years[-T:]]


def float_list(text: str, flag: str) -> list[float]:
    """'0.2,0.75' -> [0.2, 0.75]; one line naming ``flag`` for anything else."""
    out = []
    for part in str(text).split(","):
        try:
            v = float(part.strip())
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and 0 <= v <= 1):
            raise BPTTError(f"{flag}: {part.strip()!r} is not a number from 0 to 1; write e.g. {flag} 0.2,0.75")
        out.append(v)
    return out


PREDICT_SEED = 12345  # the filler of `bptt predict`'s sequences: the same answer every time


def _length_of(model, task_info: dict[str, Any]) -> int:
    return int(task_info["length"])


def operand_answers(task: str) -> Callable[[Any, dict[str, Any], dict[str, str]], list[dict[str, Any]]]:
    """--a/--b for the multiplication or XOR problem: each pair at the marked steps of a sequence of the
    model's length (filler and positions drawn from a fixed seed), the network's answer beside the true one."""
    def run(model, task_info: dict[str, Any], given: dict[str, str]) -> list[dict[str, Any]]:
        if given.get("a") is None or given.get("b") is None:
            raise BPTTError("give both --a and --b (comma-separated, of equal count)")
        if task == "xor":
            A, B = int_list(given["a"], "--a"), int_list(given["b"], "--b")
            for v, flag in [(v, "--a") for v in A] + [(v, "--b") for v in B]:
                if v not in (0, 1):
                    raise BPTTError(f"{flag}: {v} is not a bit; give 0s and 1s, e.g. {flag} 0,1")
        else:
            A, B = float_list(given["a"], "--a"), float_list(given["b"], "--b")
        if len(A) != len(B):
            raise BPTTError(f"--a has {len(A)} values but --b has {len(B)}; give them in pairs")
        x, _, _ = operand_inputs(task, _length_of(model, task_info), len(A), np.random.default_rng(PREDICT_SEED),
                                 np.array(A, dtype=np.float64), np.array(B, dtype=np.float64))
        out = model.predict(x.astype(model.dtype))[-1].astype(np.float64)  # (N, O)
        rows = []
        for k, (p, q) in enumerate(zip(A, B)):
            if task == "xor":
                got, true = int(np.argmax(out[k])), int(p) ^ int(q)
                rows.append({"a": p, "b": q, "network": got, "true": true, "right": got == true})
            else:
                got, true = float(out[k, 0]), p * q
                rows.append({"a": p, "b": q, "network": got, "true": true, "right": abs(got - true) < TOLERANCE})
        return rows
    return run


def operand_text(rows: list[dict[str, Any]]) -> str:
    op = "xor" if all(isinstance(r["network"], int) for r in rows) else "*"
    return "\n".join(f"{r['a']} {op} {r['b']} -> {r['network'] if op == 'xor' else format(r['network'], '.4f')}  "
                     f"({'right' if r['right'] else 'WRONG'}, true {r['true'] if op == 'xor' else format(r['true'], '.4f')})"
                     for r in rows)


def order_answers(model, task_info: dict[str, Any], given: dict[str, str]) -> list[dict[str, Any]]:
    """--order XY,YX,...: each order of relevant symbols in a sequence of random distractors; the order named."""
    bits = int(task_info["order_bits"])
    orders = [o.strip() for o in str(given.get("order", "")).split(",")]
    for o in orders:
        if len(o) != bits or set(o) - {"X", "Y"}:
            raise BPTTError(f"--order: {o!r} is not {bits} letters X or Y (this model's --bits {bits}); write e.g. "
                            f"--order {'XY' if bits == 2 else 'XYX'},{'YY' if bits == 2 else 'YYX'}")
    codes = np.array([int(o.replace("X", "0").replace("Y", "1"), 2) for o in orders])
    x, _ = temporal_inputs(_length_of(model, task_info), bits, len(orders), np.random.default_rng(PREDICT_SEED), codes)
    got = np.argmax(model.predict(x.astype(model.dtype))[-1], axis=-1)  # (N,)
    name = lambda c: format(int(c), f"0{bits}b").replace("0", "X").replace("1", "Y")  # noqa: E731
    return [{"order": o, "network": name(g), "right": name(g) == o} for o, g in zip(orders, got)]


def order_text(rows: list[dict[str, Any]]) -> str:
    return "\n".join(f"{r['order']} -> {r['network']}  ({'right' if r['right'] else 'WRONG'})" for r in rows)


def first_answers(model, task_info: dict[str, Any], given: dict[str, str]) -> list[dict[str, Any]]:
    """--first 0,1,...: a sequence of the model's length starting with that symbol; the symbol it
    answers at the last step and the probability it gives the right one."""
    first = int_list(given.get("first", ""), "--first")
    for v in first:
        if v not in (0, 1):
            raise BPTTError(f"--first: {v} is not a first symbol of this problem; give 0s and 1s, e.g. --first 0,1")
    symbols = int(task_info["symbols"])
    if model.input_size != symbols:
        raise BPTTError(f"the model has {model.input_size} inputs but its task has {symbols} symbols; the model file is "
                        f"inconsistent, re-train it")
    x, _ = permutation_inputs(_length_of(model, task_info), symbols, np.array(first), np.random.default_rng(PREDICT_SEED))
    out = model.predict(x.astype(model.dtype))[-1].astype(np.float64)  # (N, K)
    return [{"first": f, "network": int(np.argmax(p)), "p_first": float(p[f]), "right": int(np.argmax(p)) == f}
            for f, p in zip(first, out)]


def first_text(rows: list[dict[str, Any]]) -> str:
    return "\n".join(f"first {r['first']} -> last {r['network']}  (p = {r['p_first']:.3f}; "
                     f"{'right' if r['right'] else 'WRONG'})" for r in rows)


def recall_answers(model, task_info: dict[str, Any], given: dict[str, str]) -> list[dict[str, Any]]:
    """--string 01101,...: each string shown, the blanks, the trigger; the string the network recalls."""
    bits = int(task_info["string_bits"])
    chars, alphabet = MEMORY[bits]
    strings = [s.strip() for s in str(given.get("string", "")).split(",")]
    for s in strings:
        if len(s) != chars or any(c not in "0123456789"[:alphabet] for c in s):
            raise BPTTError(f"--string: {s!r} is not {chars} digits from 0 to {alphabet - 1} (the {bits}-bit problem); "
                            f"write e.g. --string {'01101' if bits == 5 else '0123012301'}")
    codes = np.array([[int(c) for c in s] for s in strings])  # (N, chars)
    x, _ = memorization_sequences(_length_of(model, task_info), chars, alphabet, codes)
    got = np.argmax(model.predict(x.astype(model.dtype))[-chars:], axis=-1).T  # (N, chars)
    text = ["".join("0123456789"[c] if c < alphabet else "_" for c in row) for row in got]  # _: blank
    return [{"string": s, "network": t, "right": s == t} for s, t in zip(strings, text)]


def recall_text(rows: list[dict[str, Any]]) -> str:
    return "\n".join(f"{r['string']} -> {r['network']}  ({'right' if r['right'] else 'WRONG'})" for r in rows)


def length_field(name: str, v: Any) -> int:
    return check_int(name, v, MIN_LENGTH)  # type: ignore[return-value]


def temporal_bits_field(name: str, v: Any) -> int:
    return check_int(name, v, 2, 3)  # type: ignore[return-value]


def memory_bits_field(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v not in MEMORY:
        raise BPTTError(f"{name} must be 5 or 20, got {short_repr(v)}")
    return v


def symbols_field(name: str, v: Any) -> int:
    return check_int(name, v, 3)  # type: ignore[return-value]


# ---------------------------------------------------------------- the registry
def _resolved_path(text: str) -> str:
    """A file given on the command line, made absolute: resume and gradflow --model work from any folder."""
    return str(Path(text).resolve())


def _sizes(what: str, train: int | None, val: int | None, test: int | None, note: str = "") -> tuple[Option, ...]:
    """--n-train/--n-val/--n-test (train None: no --n-train, the series' training part is the rest)."""
    opts = () if train is None else (Option("n_train", int, train, f"training {what}"),)
    return opts + (Option("n_val", int, val, f"validation {what}{note}"), Option("n_test", int, test, f"test {what}{note}"))


def fresh_field(name: str, v: Any) -> int:
    return check_int(name, v, 0, 1, what="0 or 1")  # type: ignore[return-value]


TRAINING_CHECKS: dict[str, Callable[[str, Any], Any]] = {"fresh": fresh_field, "init": init_field}
# Martens & Sutskever (2011) drew new sequences for every HF iteration: with a fixed set a network fits it
# before it finds the long-range rule.  Validation and test sets stay the fixed ones.
FRESH = Option("fresh", int, 0, "1: a new training set every epoch (every HF iteration), drawn from the seed and "
               "the epoch, 0: one fixed set (Hessian-free takes 1 for adding and multiplication)", metavar="0|1", training=True)
# Martens & Sutskever's starting weights (bptt.inits.sparse), in the seed's sigmoid units
INIT = Option("init", str, "uniform", "the network's starting weights: uniform (RNN's own) or sparse (15 "
              "incoming recurrent weights a unit, spectral radius 1.1, small input weights: Martens and Sutskever's, "
              "Hessian-free's start for multiplication)",
              metavar="uniform|sparse", training=True)


OPERANDS = (Option("a", str, None, "first operands", metavar="A1,A2,..."),
            Option("b", str, None, "second operands", metavar="B1,B2,..."))


@dataclass(frozen=True)
class Task:
    """Everything about one task.  ``loader(**options[, seed=])`` returns its TaskData;
    ``metrics(data, pred (T, N, O))`` its own test metrics; ``view(data, model, metrics)`` what its
    predictions plot shows.  What `bptt predict` needs (it never branches on a task's name):
    ``default_input(task_info)`` the input (T, D), in the data's units, used when none is given (None:
    the input is required), ``default_index(task_info, T)`` that input's step labels (None: t = 1..T),
    ``units(task_info)`` (a word after a forecast, the units in words), ``predictor`` the task's own
    answer beside one-step predictions, ``info_fields`` what a model file's task_info must hold (each
    with its check)."""

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
    info_fields: dict[str, Callable[[str, Any], Any]] = field(default_factory=dict)  # name -> check(name, value)
    default_index: Callable[[dict[str, Any], int], tuple[str, list[int]]] | None = None
    units: Callable[[dict[str, Any]], tuple[str, str]] = own_units
    predictor: Predictor | None = None
    # draw(rng, n, **loader options but sizes): n fresh training sequences (a generated task; ``training_set``)
    draw: Callable[..., Split] | None = None

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
         metrics=addition_metrics, view=addition_view, info_fields={"bits": bits_field},
         predictor=Predictor((Option("a", str, None, "first operands", metavar="A1,A2,..."),
                              Option("b", str, None, "second operands", metavar="B1,B2,...")),
                             addition_answers, addition_text)),
    Task(name="sine", description="predict the next value of noisy sine waves",
         loader=sine,
         options=(Option("length", int, 100, "sequence length"),) + _sizes("sequences", 200, 50, 50)
         + (Option("noise", float, 0.05, "noise standard deviation"),),
         defaults=TrainDefaults(hidden_size=16, lr=0.01, epochs=30, batch_size=16, checkpoint_every=5, chunk=25),
         metrics=sine_metrics, view=sine_view, scaled=True, units=sine_units),
    Task(name="adding", description="the adding problem: the mean of two marked values, answered at the last step",
         loader=adding,
         options=(Option("length", int, 50, "sequence length"),) + _sizes("sequences", 2000, 500, 1000) + (FRESH, INIT),
         # HF: a fresh training set every iteration and 200 of them solve T = 100 (test error 0.003, seed 0; the
         # fixed set gave 0.022 after 100, docs/howto/pathological.md)
         defaults=TrainDefaults(hidden_size=16, lr=0.01, epochs=30, batch_size=32, checkpoint_every=5,
                                hf={"epochs": 200, "checkpoint_every": 10, "task_options": {"fresh": 1}}),
         metrics=adding_metrics, view=adding_view, draw=adding_draw),
    Task(name="sunspots", description="forecast next year's sunspot number, 1700-2008",
         loader=sunspots, seeded=False,
         options=(Option("window", int, 20, "window length in years"),) + _sizes("years", None, 20, 30),
         defaults=TrainDefaults(hidden_size=8, lr=0.01, epochs=200, batch_size=16, checkpoint_every=20),
         metrics=series_metrics, view=sunspots_view, default_input=sunspots_last_window, scaled=True,
         info_fields={"window": window_field}, default_index=sunspots_years, units=sunspots_units),
    Task(name="csv", description="forecast the next value of a numeric column of a CSV file",
         loader=csv_task, seeded=False,
         options=(Option("path", _resolved_path, None, "the CSV file (with a header row)", "--csv", "FILE", required=True),
                  Option("column", str, None, "the column (header name)", metavar="NAME", required=True),
                  Option("window", int, 20, "window length"))
         + _sizes("values", None, None, None, " (default 15 % of them)"),
         # an identity output: a series may leave its training range (a trend), where a sigmoid output saturates
         defaults=TrainDefaults(hidden_size=8, lr=0.01, epochs=200, batch_size=16, checkpoint_every=20,
                                output_activation="identity"),
         metrics=series_metrics, view=csv_view, scaled=True, info_fields={"window": window_field}, units=csv_units),
    Task(name="chars", description="character-level language model (min-char-rnn) of a shipped English text",
         loader=chars, seeded=False,
         options=(Option("length", int, 25, "sequence length"),),
         # the seed's sigmoid hidden units: at lr 0.02 they learn faster than tanh (README)
         defaults=TrainDefaults(hidden_size=64, lr=0.02, epochs=15, batch_size=32, checkpoint_every=5,
                                output_activation="softmax", loss="cross_entropy"),
         metrics=char_metrics, view=chars_view, info_fields={"vocab": vocab_field},
         predictor=Predictor((Option("sample", str, None, "characters to sample (default 200)", metavar="N"),
                              Option("temperature", str, None, "sampling temperature (default 1)", metavar="T"),
                              Option("seed", str, None, "seed of the draws (default 0)", metavar="S"),
                              Option("prime", str, None, "text to continue (default: after a newline)",
                                     metavar="TEXT")),
                             sample_chars, chars_text_answer, default=True)),
    # the pathological long-range problems (Martens & Sutskever 2011): budgets in HF iterations
    Task(name="multiplication", description="the product of two marked values, answered at the last step",
         loader=multiplication,
         options=(Option("length", int, 100, "sequence length"),) + _sizes("sequences", 2000, 500, 1000) + (FRESH, INIT),
         # HF at T = 100: 16 units stay on the plateau; 32 units from Martens & Sutskever's sparse start on fresh
         # sequences leave it, and structural damping 0.3 takes them to the answer; 200 iterations solve seeds 0
         # and 1 (120 solved seed 0 alone: seed 1 was still improving; docs/howto/pathological.md)
         defaults=TrainDefaults(hidden_size=16, lr=0.01, epochs=30, batch_size=32, checkpoint_every=5,
                                hf={"epochs": 200, "checkpoint_every": 10, "hidden_size": 32, "hf_structural": 0.3,
                                    "task_options": {"fresh": 1, "init": "sparse"}}),
         metrics=multiplication_metrics, view=multiplication_view, info_fields={"length": length_field},
         draw=multiplication_draw,
         predictor=Predictor(OPERANDS, operand_answers("multiplication"), operand_text)),
    Task(name="xor", description="the XOR of two marked bits, answered at the last step",
         loader=xor, draw=xor_draw,
         options=(Option("length", int, 100, "sequence length"),) + _sizes("sequences", 2000, 500, 1000) + (FRESH, INIT),
         defaults=TrainDefaults(hidden_size=16, lr=0.01, epochs=30, batch_size=32, checkpoint_every=5,
                                output_activation="softmax", loss="cross_entropy",
                                hf={"epochs": 100, "checkpoint_every": 10}),
         metrics=class_metrics, view=class_view, info_fields={"length": length_field},
         predictor=Predictor(OPERANDS, operand_answers("xor"), operand_text)),
    Task(name="temporal-order", description="the order of 2 or 3 symbols X/Y among distractors, named at the end",
         loader=temporal_order, draw=temporal_order_draw,
         options=(Option("length", int, 100, "sequence length"),
                  Option("bits", int, 2, "relevant symbols: 2 or 3 (4 or 8 classes)"))
         + _sizes("sequences", 2000, 500, 1000) + (FRESH, INIT),
         # HF: multiplication's recipe (32 units from the sparse start, fresh sequences, structural damping 0.3)
         # solves T = 100 for seeds 0-2 in 120 iterations; 16 units on the fixed set stayed at chance
         # (docs/howto/pathological.md)
         defaults=TrainDefaults(hidden_size=16, lr=0.01, epochs=30, batch_size=32, checkpoint_every=5,
                                output_activation="softmax", loss="cross_entropy",
                                hf={"epochs": 120, "checkpoint_every": 10, "hidden_size": 32, "hf_structural": 0.3,
                                    "task_options": {"fresh": 1, "init": "sparse"}}),
         metrics=class_metrics, view=class_view,
         info_fields={"length": length_field, "order_bits": temporal_bits_field},
         predictor=Predictor((Option("order", str, None, "orders of X and Y to classify", metavar="XY,YX,..."),),
                             order_answers, order_text)),
    Task(name="random-permutation", description="recall the first of T random symbols at the end",
         loader=random_permutation, draw=random_permutation_draw,
         options=(Option("length", int, 100, "sequence length"),
                  Option("symbols", int, 100, "symbols (one-hot inputs and outputs)"))
         # 2000: with 500 the network fits the training split's random symbols and the validation loss rises
         + _sizes("sequences", 2000, 500, 1000) + (FRESH, INIT),
         defaults=TrainDefaults(hidden_size=16, lr=0.01, epochs=30, batch_size=32, checkpoint_every=5,
                                output_activation="softmax", loss="cross_entropy",
                                hf={"epochs": 100, "checkpoint_every": 10}),
         metrics=class_metrics, view=class_view,
         info_fields={"length": length_field, "symbols": symbols_field},
         predictor=Predictor((Option("first", str, None, "first symbols, 0 or 1", metavar="S1,S2,..."),),
                             first_answers, first_text)),
    Task(name="memorization", description="recall a string of 5 or 20 bits shown at the start, after a trigger",
         loader=memorization, draw=memorization_draw,
         options=(Option("length", int, 100, "sequence length"),
                  Option("bits", int, 5, "the 5-bit (5 binary characters) or 20-bit (10 of 4 symbols) problem"))
         + _sizes("sequences", 2000, 500, 1000) + (FRESH, INIT),
         defaults=TrainDefaults(hidden_size=16, lr=0.01, epochs=30, batch_size=32, checkpoint_every=5,
                                output_activation="softmax", loss="cross_entropy",
                                # structural damping: at T = 12, mu 0 / 0.3 / 1 gave test error 0.80 / 0.44 / 0
                                hf={"epochs": 100, "checkpoint_every": 10, "hf_structural": 1.0}),
         metrics=memorization_metrics, view=class_view,
         info_fields={"length": length_field, "string_bits": memory_bits_field},
         predictor=Predictor((Option("string", str, None, "strings to memorise (digits)", metavar="S1,S2,..."),),
                             recall_answers, recall_text)),
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
    """The task called ``name``: its record's defaults under ``options``; ``seed`` for the random tasks.
    Training options (``Option.training``, e.g. fresh) are checked and left to the training loop."""
    task = check_options(name, options)
    kwargs = _loader_options(task, options)
    if task.seeded:
        kwargs["seed"] = seed
    return task.loader(**kwargs)


def _loader_options(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    """The loader's keywords: the record's defaults under ``options``, training options left out."""
    kwargs = {o.name: o.default for o in task.options if not o.required and not o.training}
    kwargs.update({k: v for k, v in options.items() if not task.option(k).training})  # type: ignore[union-attr]
    return kwargs


def training_option(name: str, options: dict[str, Any], option: str) -> Any:
    """The value of training option ``option`` of task ``name`` under ``options`` (its default when not
    given; None when the task has no such option)."""
    opt = get(name).option(option)
    if opt is None or not opt.training:
        return None
    return options.get(option, opt.default)


def check_training_option(name: str, value: Any) -> Any:
    """A training option's value checked (one line naming the option and what it takes)."""
    return TRAINING_CHECKS[name](f"task option {name}", value)


def training_set(name: str, seed: int, epoch: int, **options: Any) -> Split:
    """The fresh training set of epoch ``epoch`` (>= 1) of the generated task ``name``: n_train new sequences
    drawn from ``np.random.default_rng([seed, stream, epoch])`` (the fixed data uses [seed, stream], so these
    are other draws; the same bits on any machine).  ``options`` as for ``load``."""
    task = check_options(name, options)
    if task.draw is None:
        raise BPTTError(f"task {name} has fixed data; only the generated tasks "
                        f"({', '.join(t.name for t in TASKS.values() if t.draw)}) draw fresh training sets")
    check_int("epoch", epoch, 1)
    kwargs = _loader_options(task, options)
    n = _positive_int("n_train", kwargs.pop("n_train"))
    kwargs.pop("n_val", None), kwargs.pop("n_test", None)
    return task.draw(np.random.default_rng([check_int("seed", seed, 0), STREAMS[name], epoch]), n, **kwargs)


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
