"""Tasks: shapes, splits, targets computed independently, scaling, baselines, bad input; the registry
(every record walked; a new task is one record, trainable and in `bptt train --help`)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re

import numpy as np
import pytest

from bptt import RNN, BPTTError, plots, tasks
from bptt import train as tr
from bptt.cli import main
from bptt.validation import check_int


def _pairs(split: tasks.Split) -> set[tuple[int, int]]:
    x = split.x.astype(int)  # (T, N, 2)
    w = 1 << np.arange(x.shape[0])[:, None]
    return set(zip((x[..., 0] * w).sum(0).tolist(), (x[..., 1] * w).sum(0).tolist()))


def test_binary_addition_shapes_bits_and_disjoint_splits():
    d = tasks.binary_addition(bits=8, n_train=300, n_val=50, n_test=70, seed=3)
    assert (d.train.x.shape, d.train.y.shape) == ((9, 300, 2), (9, 300, 1))
    assert d.val.x.shape == (9, 50, 2) and d.test.x.shape == (9, 70, 2)
    assert d.train.mask is None and (d.input_size, d.output_size) == (2, 1)
    tr, va, te = _pairs(d.train), _pairs(d.val), _pairs(d.test)
    assert len(tr) == 300 and len(va) == 50 and len(te) == 70
    assert not (tr & va) and not (tr & te) and not (va & te)
    # targets: the binary digits of a + b, least significant first, from Python's own formatting
    x = d.test.x.astype(int)
    for n in range(70):
        a = int("".join(str(v) for v in x[::-1, n, 0]), 2)
        b = int("".join(str(v) for v in x[::-1, n, 1]), 2)
        assert a < 256 and b < 256
        want = format(a + b, "09b")[::-1]
        assert "".join(str(int(v)) for v in d.test.y[:, n, 0]) == want


def test_binary_addition_seeded():
    a = tasks.binary_addition(bits=4, n_train=20, n_val=5, n_test=5, seed=1)
    b = tasks.binary_addition(bits=4, n_train=20, n_val=5, n_test=5, seed=1)
    c = tasks.binary_addition(bits=4, n_train=20, n_val=5, n_test=5, seed=2)
    assert np.array_equal(a.train.x, b.train.x) and not np.array_equal(a.train.x, c.train.x)


def test_binary_addition_too_many_pairs():
    with pytest.raises(BPTTError, match="only 16 distinct pairs"):
        tasks.binary_addition(bits=2, n_train=10, n_val=5, n_test=5)


def test_bits_to_int():
    assert tasks.bits_to_int(np.array([[1, 0], [0, 1], [1, 1]])).tolist() == [5, 6]


def test_sine_shapes_shift_and_scale():
    d = tasks.sine(length=30, n_train=8, n_val=3, n_test=4, noise=0.1, seed=0)
    assert d.train.x.shape == (30, 8, 1) and d.val.y.shape == (30, 3, 1) and d.test.x.shape == (30, 4, 1)
    for s in (d.train, d.val, d.test):
        assert np.array_equal(s.x[1:], s.y[:-1])  # y_t = x_{t+1}: next-value prediction
    u = d.scaling.from_unit(d.train.x)
    assert np.allclose(d.scaling.to_unit(u), d.train.x)
    assert np.all(np.abs(u) < 1 + 6 * 0.1)  # a unit sine plus noise
    assert np.all((d.train.x > 0) & (d.train.x < 1))
    with pytest.raises(BPTTError, match="noise"):
        tasks.sine(noise=-1)


def test_adding_markers_targets_mask():
    d = tasks.adding(length=12, n_train=40, n_val=10, n_test=10, seed=5)
    for s in (d.train, d.val, d.test):
        T_, N, D = s.x.shape
        assert (T_, D) == (12, 2) and s.y.shape == (12, N, 1) and s.mask.shape == (12, N)
        m = s.x[..., 1]
        assert np.all(m.sum(0) == 2)
        assert np.all(m[:6].sum(0) == 1) and np.all(m[6:].sum(0) == 1)  # one marker per half
        want = 0.5 * (s.x[..., 0] * m).sum(0)
        assert np.allclose(s.y[-1, :, 0], want)
        assert s.mask[-1].all() and not s.mask[:-1].any()


def test_sunspots_data_and_splits():
    years, v = tasks.sunspots_series()
    assert len(v) == 309 and years[0] == 1700 and years[-1] == 2008
    assert v[0] == 5 and v[-1] == 2.9 and v[years.tolist().index(1957)] == 190.2
    d = tasks.sunspots(window=20, n_val=20, n_test=30)
    assert d.info["years"] == {"train": [1700, 1958], "val": [1959, 1978], "test": [1979, 2008]}
    assert d.test.x.shape == (20, 30, 1) and d.val.x.shape == (20, 20, 1)
    assert d.train.x.shape == (20, 259 - 20, 1)
    assert (d.scaling.lo, d.scaling.hi) == (0.0, 190.2)  # min and max of 1700-1958
    # test window n predicts year 1979 + n from the 20 years before it, scored at its last step
    for n in (0, 29):
        j = 309 - 30 + n
        assert np.allclose(d.scaling.from_unit(d.test.x[:, n, 0]), v[j - 20 : j])
        assert np.isclose(d.scaling.from_unit(d.test.y[-1, n, 0]), v[j])
    assert d.test.mask[-1].all() and not d.test.mask[:-1].any()
    # every training target lies in the training years
    assert np.isclose(d.scaling.from_unit(d.train.y[-1, -1, 0]), v[258])


def _write_csv(path, rows):
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_task_reads_scales_and_splits(tmp_path):
    vals = [10 + 3 * np.sin(0.4 * i) + 0.1 * i for i in range(60)]
    f = _write_csv(tmp_path / "d.csv", ["when,level"] + [f"{i},{float(v)!r}" for i, v in enumerate(vals)])
    d = tasks.csv_task(f, "level", window=5, n_val=10, n_test=10)
    assert d.train.x.shape == (5, 40 - 5, 1) and d.test.x.shape == (5, 10, 1)
    train_part = np.array(vals[:40])
    assert (d.scaling.lo, d.scaling.hi) == (train_part.min(), train_part.max())
    assert d.train.x.min() == 0.0 and d.train.y.max() <= 1.0
    assert np.allclose(d.scaling.from_unit(d.test.y[-1, :, 0]), vals[50:])


@pytest.mark.parametrize(
    "rows, column, match",
    [
        (["a,b", "1,2", "3,4"], "c", "no column 'c'; the header has 'a', 'b'"),
        (["a,b", "1,2", "3,x", "5,6"], "b", "line 3, column 'b' holds 'x'"),
        (["a,b", "1,2", "3,", "5,6"], "b", "line 3, column 'b' holds ''"),
        (["a", "1", "nan"], "a", "line 3"),
    ],
)
def test_csv_bad_input(tmp_path, rows, column, match):
    f = _write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(BPTTError, match=match):
        tasks.csv_task(f, column)


def test_csv_missing_file_and_empty(tmp_path):
    with pytest.raises(BPTTError, match="no such file"):
        tasks.csv_task(tmp_path / "nope.csv", "a")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(BPTTError, match="empty"):
        tasks.csv_task(tmp_path / "e.csv", "a")


def test_series_too_short_for_window():
    with pytest.raises(BPTTError, match="has 30 values but a window of 20 .* needs at least 31"):
        tasks.series_task(np.arange(30.0), "csv", window=20, n_val=5, n_test=5)
    tasks.series_task(np.arange(31.0), "csv", window=20, n_val=5, n_test=5)  # exactly enough


def test_constant_series_refused():
    with pytest.raises(BPTTError, match="constant"):
        tasks.series_task(np.ones(50), "csv", window=5)


def test_unknown_task():
    with pytest.raises(BPTTError, match="unknown task 'nope'; choose one of binary-addition"):
        tasks.load("nope")


def test_ar_fit_recovers_known_process():
    # s_t = 0.5 + 0.6 s_{t-1} - 0.3 s_{t-2} + small noise: least squares finds the coefficients
    rng = np.random.default_rng(0)
    s = np.zeros(3000)
    for t in range(2, 3000):
        s[t] = 0.5 + 0.6 * s[t - 1] - 0.3 * s[t - 2] + 0.01 * rng.standard_normal()
    coef = tasks.ar_fit(s, 2, 3000)
    assert np.allclose(coef, [0.5, 0.6, -0.3], atol=0.01)


def test_series_metrics_baselines_by_hand():
    s = np.array([1.0, 3, 2, 5, 4, 6, 5, 8, 7, 9, 8, 10])
    d = tasks.series_task(s, "csv", window=2, n_val=2, n_test=3)

    class Echo:  # predicts each window's last input: the persistence forecast
        dtype = np.dtype(np.float64)

        def predict(self, x):
            return x

    m = tasks.metrics(d, Echo())
    truth = s[-3:]
    assert m["persistence_mse"] == pytest.approx(np.mean((s[-4:-1] - truth) ** 2))
    assert m["test_mse"] == pytest.approx(m["persistence_mse"])
    assert m["ar_order"] == 2 and np.isfinite(m["ar2_mse"])  # p = min(9, window)


# ---------------------------------------------------------------- the registry
def _help(capsys) -> str:
    """`bptt train --help` on one line: whitespace collapsed, argparse's breaks after hyphens undone."""
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    return re.sub(r"-\s+", "-", " ".join(capsys.readouterr().out.split()))


def _required_values(tmp_path) -> dict:
    """Values for the registry's required options, by option name (a task adding one adds it here)."""
    f = _write_csv(tmp_path / "walk.csv", ["t,v"] + [f"{i},{float(np.sin(0.3 * i)) + 0.01 * i!r}" for i in range(80)])
    return {"path": str(f), "column": "v"}


def test_tasks_iterate_as_names_and_unknown_ones_are_one_line():
    assert ", ".join(tasks.TASKS) == ("binary-addition, sine, adding, sunspots, csv, chars, multiplication, xor, temporal-order, random-permutation, memorization")
    assert all(tasks.get(name).name == name for name in tasks.TASKS)
    with pytest.raises(BPTTError, match=r"^unknown task 'nope'; choose one of binary-addition, sine, adding, sunspots, csv, chars, multiplication, xor, temporal-order, random-permutation, memorization$"):
        tasks.get("nope")


def test_load_refuses_an_option_of_another_task_naming_the_valid_flags():
    with pytest.raises(BPTTError, match=r"^--bits does not apply to task sunspots; its options are --window, --n-val, --n-test$"):
        tasks.load("sunspots", bits=8)
    with pytest.raises(BPTTError, match=r"^--colour does not apply to task csv; its options are --csv, --column, --window"):
        tasks.load("csv", colour="red")
    with pytest.raises(BPTTError, match="^--csv does not apply to task sine"):
        tasks.load("sine", path="x.csv")  # the option `path` is spelled --csv, as the CLI takes it


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_registry_walk_every_task(tmp_path, capsys, name):
    """Each record: its defaults match its loader's, it loads, its metrics and plot view work, and
    `bptt train --help` lists it, its options with their defaults and its training defaults."""
    task = tasks.get(name)
    params = inspect.signature(task.loader).parameters
    for opt in task.options:
        assert opt.flag.startswith("--") and opt.help and ";" not in opt.help  # "; " separates tasks in --help
        assert opt.default is None or "default" not in opt.help  # the help shows the record's default itself
        if opt.training:  # read by the training loop, never passed to the loader
            assert opt.name not in params and opt.name in tasks.TRAINING_CHECKS
            continue
        assert opt.required or params[opt.name].default == opt.default, f"{name} {opt.flag}: record and loader disagree"
    assert ("seed" in params) == task.seeded
    required = _required_values(tmp_path)
    options = {o.name: required[o.name] for o in task.options if o.required}
    d = tasks.load(name, seed=1, **options)
    assert d.name == name
    for s in (d.train, d.val, d.test):
        T_, N, D = s.x.shape
        assert D == d.input_size and s.y.shape == (T_, N, d.output_size) and N >= 1
        assert s.mask is None or (s.mask.shape == (T_, N) and s.mask.any())
    model = RNN(d.input_size, 3, d.output_size, seed=0)
    m = tasks.metrics(d, model)
    assert np.isfinite(m["test_mse_scaled"]) and json.dumps(m)  # JSON-ready, as metrics.json stores it
    view = tasks.prediction_view(d, model, m)
    assert view.curves and view.x_label and view.y_label
    assert all(np.shape(c.x) == np.shape(c.y) for c in view.curves) and any(np.size(c.x) for c in view.curves)
    assert plots.predictions(d, model, m, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    cfg = tr.config_for(name, options)
    assert {k: getattr(cfg, k) for k in task.defaults.settings()} == task.defaults.settings()
    text = _help(capsys)
    assert f"{name}: {task.description}" in text
    for opt in task.options:
        entry = text.split(f" {opt.flag} {opt.metavar} ", 1)[1].split(" --", 1)[0]  # the option's help
        shown = "(required)" if opt.required else "" if opt.default is None else f"(default {opt.default})"
        # "task: help (default d)", or "task (default d)" where an earlier task gave the same help
        assert re.search(rf"(^|; ){re.escape(name)}(: [^;]*)? ?{re.escape(shown)}", entry), (opt.flag, entry)
    for setting in ("hidden_size", "lr", "epochs", "batch_size", "checkpoint_every"):
        assert f"{name} {getattr(task.defaults, setting)}" in text


def test_help_shows_each_tasks_option_defaults(capsys):
    text = _help(capsys)
    assert "--length LENGTH sine: sequence length (default 100); adding (default 50)" in text
    assert "--csv FILE csv: the CSV file (with a header row) (required)" in text
    assert "--n-val N_VAL binary-addition: validation pairs (default 200); sine: validation sequences (default 50)" in text
    assert "csv: validation values (default 15 % of them)" in text
    assert "--task {binary-addition,sine,adding,sunspots,csv,chars,multiplication,xor,temporal-order,random-permutation,memorization} required (unless --resume); one of: binary-addition: " in text
    assert "--lr LR learning rate (default per task: binary-addition 0.05, sine 0.01, adding 0.01" in text
    assert ("--hidden H hidden units (default per task: binary-addition 8, sine 16, adding 16, sunspots 8, csv 8, chars 64, "
            "multiplication 16 (hf 32), xor 16, temporal-order 16 (hf 32), random-permutation 16, memorization 16)") in text
    assert "--length LENGTH sine: sequence length (default 100); adding (default 50); chars (default 25)" in text
    assert "(default per task: binary-addition none, sine 25," in text  # --chunk


def test_task_defaults_are_todays_settings():
    """The records' training defaults (numpy results stay bit for bit what they were)."""
    got = {name: t.defaults.settings() for name, t in tasks.TASKS.items()}
    assert got == {
        "binary-addition": {"hidden_size": 8, "lr": 0.05, "epochs": 30, "batch_size": 32, "checkpoint_every": 5},
        "sine": {"hidden_size": 16, "lr": 0.01, "epochs": 30, "batch_size": 16, "checkpoint_every": 5, "chunk": 25},
        "adding": {"hidden_size": 16, "lr": 0.01, "epochs": 30, "batch_size": 32, "checkpoint_every": 5},
        "sunspots": {"hidden_size": 8, "lr": 0.01, "epochs": 200, "batch_size": 16, "checkpoint_every": 20},
        "csv": {"hidden_size": 8, "lr": 0.01, "epochs": 200, "batch_size": 16, "checkpoint_every": 20,
                "output_activation": "identity"},
        "chars": {"hidden_size": 64, "lr": 0.02, "epochs": 15, "batch_size": 32, "checkpoint_every": 5,
                  "output_activation": "softmax", "loss": "cross_entropy"},
        "multiplication": {"hidden_size": 16, "lr": 0.01, "epochs": 30, "batch_size": 32, "checkpoint_every": 5},
        **{name: {"hidden_size": 16, "lr": 0.01, "epochs": 30, "batch_size": 32, "checkpoint_every": 5,
                  "output_activation": "softmax", "loss": "cross_entropy"}
           for name in ("xor", "temporal-order", "random-permutation", "memorization")},
    }
    # --optimizer hf: budgets in HF iterations
    assert {name: t.defaults.settings("hf")["epochs"] for name, t in tasks.TASKS.items() if t.defaults.hf} == {
        "adding": 200, "multiplication": 200, "xor": 100, "temporal-order": 120, "random-permutation": 100,
        "memorization": 100}
    assert tr.config_for("sunspots").chunk is None and tr.config_for("sine", lr=0.5).lr == 0.5
    # HF draws the adding problem's training set afresh every iteration; Adam keeps one fixed set; given options win
    assert tr.config_for("adding", {"length": 100}, optimizer="hf").task_options == {"fresh": 1, "length": 100}
    assert tr.config_for("adding", {"fresh": 0}, optimizer="hf").task_options == {"fresh": 0}
    assert tr.config_for("adding").task_options == {}


def test_shared_options_must_agree(monkeypatch):
    clash = dataclasses.replace(tasks.get("adding"), name="clash",
                                options=(tasks.Option("length", float, 5.0, "sequence length"),))
    monkeypatch.setitem(tasks.TASKS, "clash", clash)
    with pytest.raises(BPTTError, match="option 'length' has flag --length and type float but task sine"):
        tasks.options_by_name()


def test_plots_module_names_no_task():
    src = inspect.getsource(plots)
    assert not [name for name in tasks.TASKS if f'"{name}"' in src or f"'{name}'" in src]


# ---------------------------------------------------------------- adding a task is adding one record
def _echo(length: int = 6, lag: int = 1, n_train: int = 24, seed: int = 0) -> tasks.TaskData:
    """Repeat a random bit `lag` steps later: x (length, N, 1), y (length, N, 1), first `lag` steps unscored."""
    check_int("lag", lag, 1, length - 1)
    rng = np.random.default_rng([seed, 99])
    x = rng.integers(0, 2, size=(length, n_train + 16, 1)).astype(np.float64)  # (T, N, 1)
    y = np.zeros_like(x)  # (T, N, 1)
    y[lag:] = x[:-lag]
    mask = np.zeros(x.shape[:2], dtype=bool)  # (T, N)
    mask[lag:] = True

    def split(lo: int, hi: int) -> tasks.Split:
        return tasks.Split(x[:, lo:hi], y[:, lo:hi], mask[:, lo:hi])

    return tasks.TaskData("echo", split(0, n_train), split(n_train, n_train + 8), split(n_train + 8, n_train + 16),
                          1, 1, info={"length": length, "lag": lag})


def _echo_metrics(data: tasks.TaskData, pred: np.ndarray) -> dict:
    te = data.test
    return {"test_bit_accuracy": float(((pred[..., 0] > 0.5) == (te.y[..., 0] > 0.5))[te.mask].mean())}


ECHO = tasks.Task(
    name="echo", description="repeat a random bit a few steps later", loader=_echo,
    options=(tasks.Option("length", int, 6, "sequence length"),
             tasks.Option("lag", int, 1, "steps between a bit and its echo"),
             tasks.Option("n_train", int, 24, "training sequences")),
    defaults=tasks.TrainDefaults(hidden_size=3, lr=0.1, epochs=2, batch_size=8, checkpoint_every=1),
    metrics=_echo_metrics,  # no view: the default draws target against prediction at the scored steps
)


def test_a_new_task_is_one_record(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(tasks.TASKS, "echo", ECHO)
    cfg = tr.config_for("echo", {"lag": 2})
    assert (cfg.hidden_size, cfg.lr, cfg.epochs, cfg.batch_size, cfg.task_options) == (3, 0.1, 2, 8, {"lag": 2})
    d = tr.load_task(cfg)
    assert d.train.x.shape == (6, 24, 1) and np.array_equal(d.train.y[2:], d.train.x[:-2])
    with pytest.raises(BPTTError, match="^--bits does not apply to task echo; its options are --length, --lag, --n-train$"):
        tr.config_for("echo", {"bits": 3})
    res = tr.train(cfg)
    assert 0 <= res.metrics["test_bit_accuracy"] <= 1 and len(res.history["train_loss"]) == 2

    text = _help(capsys)
    assert "echo: repeat a random bit a few steps later" in text
    assert "--lag LAG echo: steps between a bit and its echo (default 1)" in text
    assert "memorization (default 100); echo (default 6)" in text  # --length, shared
    assert "chars 64, multiplication 16 (hf 32), xor 16, temporal-order 16 (hf 32), random-permutation 16, memorization 16, echo 3)" in text

    out = tmp_path / "run"
    assert main(["train", "--task", "echo", "--lag", "3", "--no-progress", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["task_options"] == {"lag": 3} and saved["hidden_size"] == 3
    assert (out / "predictions.png").read_bytes()[:4] == b"\x89PNG"  # the default view: target against prediction
    assert "test_bit_accuracy" in json.loads((out / "metrics.json").read_text())["test"]


# ---------------------------------------------------------------- chars: a character-level language model
CHARS_SHA256 = "bebdffb9aab87b2bc2b9594362a0a988940d71b71d916207ac151595a102085c"
CHARS_VOCAB = ('\n !"#%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~'
               '°–—‘’“”…')  # no J, backslash or backquote in this text


def test_chars_text_is_the_shipped_bytes_with_its_licence():
    import hashlib
    from importlib import resources

    data = resources.files("bptt") / "data"
    raw = (data / "python_reference.txt").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == CHARS_SHA256 and len(raw.decode("utf-8")) == 130_992
    assert tasks.chars_text() == raw.decode("utf-8") and b"\r" not in raw
    source = (data / "CHARS_SOURCE.txt").read_text(encoding="utf-8")
    assert CHARS_SHA256 in source and "PSF License Agreement" in source and "PYTHON_LICENSE.txt" in source
    licence = (data / "PYTHON_LICENSE.txt").read_text(encoding="utf-8")
    assert "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2" in licence and "Python Software Foundation;\nAll Rights Reserved" in licence


def _decode(onehot: np.ndarray, vocab: str) -> list[str]:
    """(T, N, V) one-hot -> N strings, by a plain loop (each row must hold exactly one 1)."""
    T, N, V = onehot.shape
    out = []
    for n in range(N):
        chars = []
        for t in range(T):
            row = onehot[t, n]
            assert row.sum() == 1.0 and set(np.unique(row)) <= {0.0, 1.0}
            chars.append(vocab[int(np.flatnonzero(row)[0])])
        out.append("".join(chars))
    return out


def test_chars_splits_are_the_texts_contiguous_parts_in_order():
    d = tasks.load("chars", length=25)
    text, vocab = tasks.chars_text(), d.info["vocab"]
    n = len(text)
    a, b = int(0.8 * n), int(0.9 * n)  # 80 % / 10 % / 10 %, by position
    assert vocab == CHARS_VOCAB == "".join(sorted(set(text[:a])))  # sorted, from the training part, fixed
    assert set(text) == set(vocab) and d.input_size == d.output_size == len(vocab) == 100
    assert d.info["characters"] == {"train": a, "val": b - a, "test": n - b}
    covered = []
    for split, lo, hi in ((d.train, 0, a), (d.val, a, b), (d.test, b, n)):
        N = (hi - lo - 1) // 25
        assert split.x.shape == (25, N, 100) and split.y.shape == (25, N, 100) and split.mask is None
        assert _decode(split.x, vocab) == [text[lo + 25 * i: lo + 25 * i + 25] for i in range(N)]
        assert _decode(split.y, vocab) == [text[lo + 25 * i + 1: lo + 25 * i + 26] for i in range(N)]
        assert lo + 25 * N + 1 <= hi  # every target inside its own part
        covered.append(set(range(lo, lo + 25 * N + 1)))
    assert not (covered[0] & covered[1]) and not (covered[1] & covered[2]) and not (covered[0] & covered[2])
    assert d.info["sequences"] == {"train": 4191, "val": 523, "test": 523}


def test_char_task_refuses_bad_text_or_length_in_one_line():
    with pytest.raises(BPTTError, match=r"^the text's validation/test parts hold 1 character\(s\) absent from its "
                                        r"training part \(first 'z'\); every character") as e:
        tasks.char_task("ab" * 40 + "z" + "ab" * 9)
    assert "\n" not in str(e.value)
    with pytest.raises(BPTTError, match=r"^--length 30 is longer than a split of the text \(10 characters\); give --length below 10$"):
        tasks.char_task("abcde" * 20, length=30)
    with pytest.raises(BPTTError, match="^length must be an integer >= 1, got 0"):
        tasks.load("chars", length=0)


def _ngram_bits_by_hand(d: tasks.TaskData, text: str) -> tuple[float, float]:
    """The add-one unigram and bigram bits per test character, by counting in plain Python."""
    V, L = d.output_size, d.info["length"]
    a, b = d.info["characters"]["train"], d.info["characters"]["train"] + d.info["characters"]["val"]
    n_tr, n_te = d.train.n * L, d.test.n * L  # targets of the training and test sequences
    uni: dict[str, int] = {}
    pair: dict[tuple[str, str], int] = {}
    after: dict[str, int] = {}
    for i in range(n_tr):  # training pair (text[i], text[i + 1])
        prev, nxt = text[i], text[i + 1]
        uni[nxt] = uni.get(nxt, 0) + 1
        pair[prev, nxt] = pair.get((prev, nxt), 0) + 1
        after[prev] = after.get(prev, 0) + 1
    u_bits = b_bits = 0.0
    for i in range(b, b + n_te):  # test target text[i + 1] after text[i]
        prev, nxt = text[i], text[i + 1]
        u_bits -= math.log2((uni.get(nxt, 0) + 1) / (n_tr + V))
        b_bits -= math.log2((pair.get((prev, nxt), 0) + 1) / (after.get(prev, 0) + V))
    assert a < b
    return u_bits / n_te, b_bits / n_te


def test_chars_baselines_match_counting_by_hand():
    d = tasks.load("chars", length=25)
    m = tasks.char_metrics(d, np.full(d.test.y.shape, 1.0 / d.output_size))
    uni, bi = _ngram_bits_by_hand(d, tasks.chars_text())
    assert m["unigram_bpc"] == pytest.approx(uni, rel=1e-12) and m["bigram_bpc"] == pytest.approx(bi, rel=1e-12)
    assert m["uniform_bpc"] == math.log2(100) and m["test_bpc"] == pytest.approx(math.log2(100), rel=1e-12)
    assert m["test_characters"] == 523 * 25
    assert 4.5 < uni < 4.7 and 3.6 < bi < 3.8  # the README's figures: 4.622, 3.691
    text = "the cat; sat on the mat. " * 12 + "a cat; the hat."
    small = tasks.char_task(text, length=7)
    ms = tasks.char_metrics(small, np.full(small.test.y.shape, 0.5))
    uni_s, bi_s = _ngram_bits_by_hand(small, text)
    assert ms["unigram_bpc"] == pytest.approx(uni_s, rel=1e-12) and ms["bigram_bpc"] == pytest.approx(bi_s, rel=1e-12)


def test_chars_bits_of_known_models():
    """A network whose output ignores its input: all zeros gives the uniform distribution (log2 V bits);
    output bias b2 = log of the add-one unigram gives exactly the unigram baseline."""
    d = tasks.load("chars", length=25)
    V = d.output_size
    m = RNN(V, 4, V, output_activation="softmax", loss="cross_entropy", seed=0)
    m.set_params(w_x=np.zeros((4, V)), w_h=np.zeros((4, 4)), b1=np.zeros(4), w=np.zeros((V, 4)), b2=np.zeros(V))
    got = tasks.metrics(d, m)
    assert got["test_bpc"] == pytest.approx(math.log2(V), rel=1e-12)
    counts = np.zeros(V)
    for c in tasks.chars_text()[1: d.train.n * 25 + 1]:  # the training targets
        counts[CHARS_VOCAB.index(c)] += 1
    m.set_params(b2=np.log((counts + 1) / (counts.sum() + V)))
    got = tasks.metrics(d, m)
    assert got["test_bpc"] == pytest.approx(got["unigram_bpc"], rel=1e-12)
    most = int(np.argmax(counts))  # the unigram's guess, the same for every step: accuracy = its share of the test
    share = sum(c == CHARS_VOCAB[most] for s in _decode(d.test.y, CHARS_VOCAB) for c in s) / got["test_characters"]
    assert got["test_accuracy"] == pytest.approx(share, rel=1e-12) and CHARS_VOCAB[most] == " "


def test_chars_defaults_reach_training_and_one_epoch_beats_the_unigram():
    cfg = tr.config_for("chars", epochs=1)
    assert (cfg.output_activation, cfg.loss, cfg.hidden_activation, cfg.hidden_size) == ("softmax", "cross_entropy",
                                                                                          "sigmoid", 64)
    res = tr.train(cfg)
    m = res.metrics
    assert res.model.loss_name == "cross_entropy" and res.model.output_activation == "softmax"
    # the validation loss is the mean cross-entropy in nats; the test bpc the same in bits
    assert m["best_val_loss"] / math.log(2) < m["unigram_bpc"] and m["test_bpc"] < m["unigram_bpc"] - 0.8
    assert m["test_bpc"] < m["bigram_bpc"]


CHARS_README = {0: 2.686, 1: 2.699, 2: 2.696}  # test bits per character of `bptt train --task chars --seed S`


@pytest.mark.slow
@pytest.mark.parametrize("seed", sorted(CHARS_README))
def test_chars_readme_runs(tmp_path, seed):
    """The README's rows: the task's defaults through the CLI (15 epochs, 70-150 s each on 2 busy cores)."""
    out = tmp_path / "run"
    assert main(["train", "--task", "chars", "--seed", str(seed), "--no-progress", "--plots", "none", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())["test"]
    assert round(m["test_bpc"], 3) == CHARS_README[seed]
    assert (round(m["unigram_bpc"], 3), round(m["bigram_bpc"], 3), round(m["uniform_bpc"], 3)) == (4.622, 3.691, 6.644)


# ---------------------------------------------------------------- binary addition with the binary cross-entropy
def test_binary_addition_learns_with_bce():
    """Its outputs are bits: --loss bce (the task's default stays the squared error, so README numbers hold)."""
    assert tr.config_for("binary-addition").loss == "squared_error"
    res = tr.train(tr.config_for("binary-addition", loss="bce", seed=0))
    assert res.model.loss_name == "bce" and res.config.output_activation == "sigmoid"
    assert res.metrics["test_pairs_exact"] == res.metrics["test_pairs"] == 1000
    se = tr.train(tr.config_for("binary-addition", seed=0, epochs=1))
    bce = tr.train(tr.config_for("binary-addition", loss="bce", seed=0, epochs=1))
    # the same first epoch measured by the two losses: BCE's ln 2-sized values, not the squared error's
    assert bce.history["train_loss"][0] > 0.6 > 0.2 > se.history["train_loss"][0]


# ---------------------------------------------------------------- the pathological problems (Martens & Sutskever 2011)
def _in(pos: np.ndarray, lo_pct: int, hi_pct: int, T: int) -> bool:
    """Every position in [T lo/100, T hi/100): the paper's spans at T = 100, scaled (T a multiple of 100 here)."""
    return bool(np.all((pos >= T * lo_pct // 100) & (pos < T * hi_pct // 100)))


def test_multiplication_markers_in_their_spans_and_the_product_at_the_last_step():
    d = tasks.multiplication(length=200, n_train=300, n_val=50, n_test=60, seed=3)
    for s in (d.train, d.val, d.test):
        assert s.x.shape == (200, s.n, 2) and s.y.shape == (200, s.n, 1)
        m = s.x[..., 1]  # (T, N)
        assert set(np.unique(m)) == {0.0, 1.0} and np.all(m.sum(0) == 2)
        first, second = m.argmax(0), (T_ := 200) - 1 - m[::-1].argmax(0)
        assert _in(first, 1, 10, T_) and _in(second, 10, 50, T_)  # steps 2..19 and 20..99
        cols = np.arange(s.n)
        assert np.array_equal(s.y[-1, :, 0], s.x[first, cols, 0] * s.x[second, cols, 0]) and not s.y[:-1].any()
        assert s.mask[-1].all() and not s.mask[:-1].any()
        assert 0 <= s.x[..., 0].min() and s.x[..., 0].max() < 1
    again = tasks.multiplication(length=200, n_train=300, n_val=50, n_test=60, seed=3)
    assert np.array_equal(again.test.x, d.test.x)
    assert not np.array_equal(tasks.multiplication(length=200, n_train=300, n_val=50, n_test=60, seed=4).test.x, d.test.x)


def test_xor_bits_classes_and_uniform_unscored_rows():
    d = tasks.xor(length=100, n_train=200, n_val=20, n_test=400, seed=1)
    s = d.test
    assert (d.input_size, d.output_size) == (2, 2)
    v, m = s.x[..., 0], s.x[..., 1]
    assert set(np.unique(v)) == {0.0, 1.0} and np.all(m.sum(0) == 2)
    first, second = m.argmax(0), 99 - m[::-1].argmax(0)
    assert _in(first, 2, 20, 100) and _in(second, 30, 50, 100)
    cols = np.arange(s.n)
    want = (v[first, cols] != v[second, cols]).astype(int)  # (N,)
    assert np.array_equal(s.y[-1], np.eye(2)[want]) and np.all(s.y[:-1] == 0.5)
    assert 0.4 < want.mean() < 0.6  # both classes occur


@pytest.mark.parametrize("bits, spans", [(2, [(1, 10), (40, 50)]), (3, [(1, 10), (30, 40), (50, 60)])])
def test_temporal_order_symbols_positions_and_classes(bits, spans):
    d = tasks.temporal_order(length=100, bits=bits, n_train=100, n_val=10, n_test=500, seed=2)
    s = d.test
    assert (d.input_size, d.output_size) == (8, 2**bits) and np.all(s.x.sum(-1) == 1)
    sym = s.x.argmax(-1)  # (T, N): a b c d X Y E B = 0..7
    assert np.all(sym[0] == 7) and np.all(sym[-1] == 6) and np.all(sym[1:-1] < 6)
    relevant = (sym == 4) | (sym == 5)  # (T, N): X or Y
    assert np.all(relevant.sum(0) == bits)
    labels = np.zeros(s.n, dtype=int)
    for n in range(s.n):
        pos = np.flatnonzero(relevant[:, n])  # in order of time
        assert all(lo <= p < hi for p, (lo, hi) in zip(pos, spans))
        labels[n] = int("".join(str(sym[p, n] - 4) for p in pos), 2)  # X = 0, Y = 1, the first most significant
    assert np.array_equal(s.y[-1].argmax(-1), labels) and set(labels) == set(range(2**bits))
    assert s.mask[-1].all() and not s.mask[:-1].any()


def test_random_permutation_next_symbol_targets_and_the_first_at_the_end():
    d = tasks.random_permutation(length=30, symbols=12, n_train=50, n_val=10, n_test=40, seed=0)
    s = d.train
    assert (d.input_size, d.output_size) == (12, 12) and s.mask is None
    x, y = s.x.argmax(-1), s.y.argmax(-1)  # (T, N)
    assert np.all(np.isin(x[0], [0, 1])) and np.all((x[1:] >= 2) & (x[1:] < 12))
    assert np.array_equal(y[:-1], x[1:]) and np.array_equal(y[-1], x[0])


@pytest.mark.parametrize("bits, chars, alphabet", [(5, 5, 2), (20, 10, 4)])
def test_memorization_string_trigger_and_recall(bits, chars, alphabet):
    T = 40
    d = tasks.memorization(length=T, bits=bits, n_train=60, n_val=10, n_test=30, seed=0)
    s = d.test
    assert (d.input_size, d.output_size) == (alphabet + 2, alphabet + 1) and s.mask is None
    x, y = s.x.argmax(-1), s.y.argmax(-1)  # (T, N)
    blank, trigger = alphabet, alphabet + 1
    assert np.all(x[:chars] < alphabet)  # the string
    assert np.all(x[T - chars - 1] == trigger)
    assert np.all(np.delete(x, list(range(chars)) + [T - chars - 1], axis=0) == blank)
    assert np.array_equal(y[T - chars:], x[:chars]) and np.all(y[:T - chars] == blank)


@pytest.mark.parametrize("name, options, match", [
    ("multiplication", {"length": 7}, r"^length must be an integer >= 8, got 7$"),
    ("temporal-order", {"bits": 4}, r"^--bits must be 2 or 3 for temporal-order \(the 2-bit and 3-bit problems\), got 4$"),
    ("temporal-order", {"bits": 2.0}, r"^--bits must be 2 or 3"),
    ("memorization", {"bits": 8}, r"^--bits must be 5 or 20 for memorization"),
    ("memorization", {"length": 21, "bits": 20}, r"^--length 21 is too short for the 20-bit memorization problem: it needs at "
                                                 r"least 22 steps; give a longer --length$"),
    ("random-permutation", {"symbols": 2}, r"^symbols must be an integer >= 3, got 2$"),
    ("xor", {"n_test": 0}, r"^n_test must be"),
])
def test_pathological_bad_options_are_one_line(name, options, match):
    with pytest.raises(BPTTError, match=match):
        tasks.load(name, **options)


def test_short_lengths_keep_the_spans_apart_and_before_the_answer():
    for name in ("multiplication", "xor", "temporal-order"):
        d = tasks.load(name, length=8, n_train=50, n_val=5, n_test=5)
        marked = d.train.x[..., 1] if name != "temporal-order" else (d.train.x.argmax(-1) >= 4) & (d.train.x.argmax(-1) < 6)
        assert np.all(marked[0] == 0) and np.all(marked[-1] == 0) and np.all(marked.sum(0) == 2), name
    d = tasks.load("temporal-order", length=8, bits=3, n_train=50, n_val=5, n_test=5)
    pos = np.argwhere((d.train.x.argmax(-1) == 4) | (d.train.x.argmax(-1) == 5))  # (3 N, 2): (step, sequence)
    assert set(np.unique(pos[:, 0])) == {1, 2, 4}  # at T = 8 each span is one step, in order


def _data(name: str, y_test: np.ndarray, y_train: np.ndarray, info: dict | None = None) -> tasks.TaskData:
    """A TaskData holding only targets (the metrics read no inputs)."""
    def split(y):
        return tasks.Split(np.zeros(y.shape[:2] + (1,)), y)
    return tasks.TaskData(name, split(y_train), split(y_train), split(y_test), 1, y_test.shape[-1], info=info or {})


def test_class_metrics_by_hand():
    eye = np.eye(3)
    y_train = eye[[[0, 2, 2, 1]]]  # (1, 4, 3): class 2 the most frequent
    y_test = eye[[[2, 0, 1, 2, 2]]]  # (1, 5, 3)
    pred = eye[[[2, 0, 0, 2, 1]]] * 0.8 + 0.1  # right, right, wrong, right, wrong
    m = tasks.class_metrics(_data("xor", y_test, y_train), pred)
    assert (m["test_error"], m["baseline_error"], m["test_sequences"], m["solved"]) == (0.4, 0.4, 5, False)
    assert tasks.class_metrics(_data("xor", y_test, y_train), y_test)["solved"] is True


def test_memorization_metrics_by_hand():
    eye = np.eye(3)  # symbols 0, 1 and blank 2; 2 characters recalled at the last 2 steps
    y_train = eye[np.array([[2, 2, 2], [0, 1, 1], [1, 1, 0]])]  # (T, N, 3): per place the majority is 1, then 1
    y_test = eye[np.array([[2, 2], [1, 0], [1, 1]])]  # strings "11" and "01"
    pred = eye[np.array([[2, 0], [1, 0], [1, 0]])]  # "11" right, "00" wrong (one char), a blank wrong
    m = tasks.memorization_metrics(_data("memorization", y_test, y_train, {"chars": 2}), pred)
    assert (m["test_error"], m["test_char_error"], m["blank_error"]) == (0.5, 0.25, 0.5)
    assert m["baseline_error"] == 0.5  # "11" answers the first right, the second wrong


def test_multiplication_metrics_by_hand():
    y_train = np.array([[[0.2], [0.4]]])  # mean 0.3
    y_test = np.array([[[0.3], [0.5], [0.32]]])
    pred = np.array([[[0.33], [0.5], [0.2]]])  # errors 0.03, 0, 0.12
    m = tasks.multiplication_metrics(_data("multiplication", y_test, y_train), pred)
    assert m["test_within_0_04"] == pytest.approx(2 / 3) and m["test_error"] == pytest.approx(1 / 3)
    assert m["baseline_error"] == pytest.approx(1 / 3)  # 0.3 is within 0.04 of 0.3 and 0.32
    assert m["mse_ratio"] == pytest.approx((0.03**2 + 0.12**2) / (0.2**2 + 0.02**2))
    assert m["solved"] is False


def _trained_like(d: tasks.TaskData) -> RNN:
    return RNN(d.input_size, 4, d.output_size, seed=0,
               output_activation="sigmoid" if d.output_size == 1 else "softmax")


@pytest.mark.parametrize("name, options, given, rows", [
    ("multiplication", {"length": 20}, {"a": "0.5,1", "b": "0.5,0.2"}, [(0.5, 0.5, 0.25), (1.0, 0.2, 0.2)]),
    ("xor", {"length": 20}, {"a": "0,1,1", "b": "1,1,0"}, [(0, 1, 1), (1, 1, 0), (1, 0, 1)]),
])
def test_operand_predictors_answer_each_pair(name, options, given, rows):
    d = tasks.load(name, **options)
    model = _trained_like(d)
    got = tasks.get(name).predictor.run(model, d.info, given)
    assert [(r["a"], r["b"], r["true"]) for r in got] == [tuple(r) for r in rows]
    assert got == tasks.get(name).predictor.run(model, d.info, given)  # a fixed filler: the same answer
    assert "true" in tasks.get(name).predictor.show(got)


def test_class_predictors_answer_and_refuse_bad_input_in_one_line():
    d = tasks.load("temporal-order", length=20, bits=3, n_train=10, n_val=2, n_test=2)
    rows = tasks.get("temporal-order").predictor.run(_trained_like(d), d.info, {"order": "XYX,YYY"})
    assert [r["order"] for r in rows] == ["XYX", "YYY"] and all(len(r["network"]) == 3 for r in rows)
    with pytest.raises(BPTTError, match=r"^--order: 'XY' is not 3 letters X or Y \(this model's --bits 3\)"):
        tasks.get("temporal-order").predictor.run(_trained_like(d), d.info, {"order": "XY"})
    d = tasks.load("memorization", length=20, n_train=10, n_val=2, n_test=2)
    rows = tasks.get("memorization").predictor.run(_trained_like(d), d.info, {"string": "01101"})
    assert rows[0]["string"] == "01101" and len(rows[0]["network"]) == 5
    with pytest.raises(BPTTError, match=r"^--string: '0120' is not 5 digits from 0 to 1"):
        tasks.get("memorization").predictor.run(_trained_like(d), d.info, {"string": "0120"})
    d = tasks.load("random-permutation", length=20, symbols=10, n_train=10, n_val=2, n_test=2)
    rows = tasks.get("random-permutation").predictor.run(_trained_like(d), d.info, {"first": "0,1"})
    assert [r["first"] for r in rows] == [0, 1] and all(0 < r["p_first"] < 1 for r in rows)
    with pytest.raises(BPTTError, match=r"^--first: 2 is not a first symbol"):
        tasks.get("random-permutation").predictor.run(_trained_like(d), d.info, {"first": "2"})
    with pytest.raises(BPTTError, match=r"^--a: '1.5' is not a number from 0 to 1"):
        tasks.get("multiplication").predictor.run(_trained_like(d), {"length": 20}, {"a": "1.5", "b": "0"})


GENERATED = [("adding", {"length": 20}), ("multiplication", {"length": 20}), ("xor", {"length": 20}),
             ("temporal-order", {"length": 30, "bits": 3}), ("random-permutation", {"length": 10, "symbols": 6}),
             ("memorization", {"length": 30, "bits": 20})]


def _arrays(split):
    return [a for a in (split.x, split.y, split.mask) if a is not None]


@pytest.mark.parametrize("name, options", GENERATED, ids=[g[0] for g in GENERATED])
def test_fresh_training_sets_are_new_draws_of_the_same_problem_per_seed_and_epoch(name, options):
    sizes = {"n_train": 30, "n_val": 10, "n_test": 10}
    fixed = tasks.load(name, seed=4, **options, **sizes)
    again = tasks.load(name, seed=4, **options, **sizes, fresh=1)  # fresh leaves the fixed data as it is
    assert all(np.array_equal(a, b) for a, b in zip(_arrays(fixed.train), _arrays(again.train)))
    one = tasks.training_set(name, 4, 1, **options, **sizes)
    assert all(np.array_equal(a, b) for a, b in zip(_arrays(one), _arrays(tasks.training_set(name, 4, 1, **options, **sizes))))
    assert [a.shape for a in _arrays(one)] == [a.shape for a in _arrays(fixed.train)]
    assert [a.dtype for a in _arrays(one)] == [a.dtype for a in _arrays(fixed.train)]
    for other in (tasks.training_set(name, 4, 2, **options, **sizes), tasks.training_set(name, 5, 1, **options, **sizes),
                  fixed.train, fixed.val):
        assert not np.array_equal(one.x[:, :10], other.x[:, :10])
    # the same problem: the drawn set is the loader's own generator on another stream
    rng = np.random.default_rng([4, tasks.STREAMS[name], 1])
    want = tasks.get(name).draw(rng, 30, **options)
    assert all(np.array_equal(a, b) for a, b in zip(_arrays(one), _arrays(want)))
    whole = tasks.get(name).draw(np.random.default_rng([4, tasks.STREAMS[name]]), 50, **options)
    assert np.array_equal(whole.x[:, :30], fixed.train.x) and np.array_equal(whole.x[:, 40:], fixed.test.x)


def test_training_set_refuses_fixed_data_tasks_and_bad_epochs():
    with pytest.raises(BPTTError, match="^task sunspots has fixed data; only the generated tasks"):
        tasks.training_set("sunspots", 0, 1)
    with pytest.raises(BPTTError, match="^epoch must be an integer >= 1, got 0$"):
        tasks.training_set("adding", 0, 0)
    with pytest.raises(BPTTError, match="^--bits must be 2 or 3"):
        tasks.training_set("temporal-order", 0, 1, bits=4)


def test_temporal_order_is_learned_by_hf_at_a_small_length(tmp_path):
    """`bptt train --task temporal-order --optimizer hf` with the task's softmax and cross-entropy: at T = 8
    (200 training sequences) 30 HF iterations classify every test sequence; the baseline errs on 3/4."""
    assert tr.config_for("temporal-order", optimizer="hf").epochs == 120  # the task's HF budget, in iterations
    out = tmp_path / "run"
    assert main(["train", "--task", "temporal-order", "--length", "8", "--n-train", "200", "--n-val", "100",
                 "--n-test", "200", "--optimizer", "hf", "--epochs", "30", "--seed", "0", "--no-progress",
                 "--plots", "none", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())["test"]
    assert (m["test_error"], m["baseline_error"], m["solved"]) == (0.0, 0.76, True)


# `bptt train --task TASK --length T --optimizer hf --seed 0` with the task's defaults: (test error, baseline error,
# HF iterations) as docs/howto/pathological.md reports them; the same bits on any machine (the determinism
# guarantee).  Multiplication's and temporal order's HF defaults are chosen for T = 100 (32 units, sparse start, fresh
# sequences, mu 0.3; 200 and 120 iterations).
# 13-120 s each at T = 20, 2-30 min at T = 100, on 2 busy cores.
HF_RUNS = {("multiplication", 20): (0.0, 0.889, 200), ("xor", 20): (0.0, 0.49, 100),
           ("temporal-order", 20): (0.0, 0.737, 120), ("memorization", 20): (0.783, 0.972, 100),
           ("adding", 100): (0.003, 0.859, 200), ("multiplication", 100): (0.0, 0.886, 200),
           ("temporal-order", 100): (0.0, 0.787, 120)}


@pytest.mark.slow
@pytest.mark.parametrize("name,length", sorted(HF_RUNS))
def test_hf_with_the_task_defaults(tmp_path, name, length):
    out = tmp_path / "run"
    assert main(["train", "--task", name, "--length", str(length), "--optimizer", "hf", "--seed", "0", "--no-progress",
                 "--plots", "none", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())["test"]
    error, baseline, iterations = HF_RUNS[name, length]
    assert (round(m["test_error"], 3), round(m["baseline_error"], 3), m["epochs_run"]) == (error, baseline, iterations)
    assert m["solved"] == (m["test_error"] < tasks.SOLVED_ERROR)  # this library's rule: below 1 %


def test_pathological_results_rows_are_the_cli_commands_they_print(tmp_path):
    """examples/pathological_results.py: a row's figures are those of the `bptt train` command it prints."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "pathological_results.py"
    spec = importlib.util.spec_from_file_location("pathological_results", path)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    options = {"length": 8, "n_train": 200, "n_val": 100, "n_test": 200}
    row, curve = ex.run("xor", options, 0, epochs=20)
    assert row["command"] == ("bptt train --task xor --length 8 --n-train 200 --n-val 100 --n-test 200 --optimizer hf "
                              "--seed 0 --epochs 20") and len(curve) == row["iterations"] == 20
    out = tmp_path / "run"
    argv = row["command"].split()[1:] + ["--no-progress", "--plots", "none", "--out", str(out)]
    assert main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())["test"]
    assert (m["test_error"], m["baseline_error"], m["best_epoch"]) == (row["test_error"], row["baseline_error"],
                                                                       row["kept_iteration"])


def test_a_csv_series_that_leaves_its_training_range_is_followed_not_saturated(tmp_path):
    """A trending series: its test values lie above the training maximum.  The csv task's default output
    (identity) predicts beyond it; a sigmoid output cannot exceed the training range (the scaled [0, 1])."""
    from bptt.train import config_for, train

    rng = np.random.default_rng(0)
    values = 100 + 0.12 * np.arange(400) + rng.standard_normal(400)  # (400,): 0.12 a step, noise 1
    f = tmp_path / "trend.csv"
    f.write_text("price\n" + "\n".join(f"{v:.3f}" for v in values) + "\n")
    cfg = config_for("csv", {"path": str(f), "column": "price"}, epochs=20)
    assert cfg.output_activation == "identity"
    res = train(cfg)
    top = res.data.scaling.hi  # the training part's maximum
    assert max(res.metrics["test_targets"]) > top + 5  # the test part leaves the training range
    assert max(res.metrics["test_pred_rnn"]) > top  # and the network follows it
