"""`bptt predict`: series answers labelled by year or t, with units, a forecast line, a warning for
inputs shorter than the training window, the documented --json object; binary sums unchanged; chars
samples text deterministically per seed by the documented rule; a task's own options refused on other
models; predict and io name no task (what differs is on the task records)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from bptt import tasks
from bptt.cli import main

JSON_KEYS = {"task", "units", "index_name", "index", "inputs", "predictions", "next", "next_index", "warnings"}


def _train(tmp_path_factory, name: str, *args: str):
    out = tmp_path_factory.mktemp(name) / "run"
    assert main(["train", *args, "--epochs", "2", "--hidden", "3", "--no-progress", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def sun(tmp_path_factory):
    return _train(tmp_path_factory, "sun", "--task", "sunspots")


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    f = tmp_path_factory.mktemp("data") / "d.csv"
    f.write_text("day,price\n" + "".join(f"{i},{100 + 10 * math.sin(0.3 * i)!r}\n" for i in range(60)))
    return _train(tmp_path_factory, "csv", "--task", "csv", "--csv", str(f), "--column", "price", "--window", "6")


def test_sunspots_forecast_is_labelled_with_its_year_and_unit(sun, capsys):
    capsys.readouterr()
    assert main(["predict", "--model", str(sun)]) == 0
    cap = capsys.readouterr()
    lines = cap.out.strip().splitlines()
    assert lines[-1].startswith("forecast for 2009: ") and lines[-1].endswith(" sunspots (yearly mean sunspot number)")
    assert lines[-2].split()[:3] == ["2008", "2.9", "2009:"]  # the last input year, its value, the year predicted
    assert cap.err == ""  # the default input is a whole training window: no warning
    assert main(["predict", "--model", str(sun), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got) == JSON_KEYS
    assert got["index_name"] == "year" and got["index"] == list(range(1989, 2009)) and got["next_index"] == 2009
    assert got["units"] == "yearly mean sunspot number" and got["warnings"] == []
    assert got["inputs"][-1] == [2.9] and got["next"] == got["predictions"][-1][0]


def test_short_input_warns_on_stderr(sun, capsys):
    capsys.readouterr()
    assert main(["predict", "--model", str(sun), "--x", "10,40,90"]) == 0
    cap = capsys.readouterr()
    warning = cap.err.strip()
    assert warning.startswith("warning: ") and "\n" not in warning
    assert "3 values" in warning and "windows of 20" in warning and "warmed up" in warning
    assert "t = 1" in cap.out and "forecast for t = 4: " in cap.out  # the user's values: no years known
    assert main(["predict", "--model", str(sun), "--x", "10,40,90", "--json"]) == 0
    cap = capsys.readouterr()
    got = json.loads(cap.out)  # the warning goes to stderr: stdout stays JSON
    assert got["index_name"] == "t" and got["index"] == [1, 2, 3] and got["next_index"] == 4
    assert len(got["warnings"]) == 1 and cap.err.strip() == "warning: " + got["warnings"][0]
    capsys.readouterr()
    assert main(["predict", "--model", str(sun), "--x", ",".join(["50"] * 20)]) == 0
    assert capsys.readouterr().err == ""  # a full window: no warning


def test_csv_predictions_by_t_in_the_columns_units(csv_run, capsys):
    capsys.readouterr()
    xs = [100.0, 103.0, 106.0, 108.0, 109.0, 108.0, 106.0]
    assert main(["predict", "--model", str(csv_run), "--x", ",".join(map(str, xs)), "--json"]) == 0
    cap = capsys.readouterr()
    got = json.loads(cap.out)
    assert set(got) == JSON_KEYS and cap.err == ""
    assert got["index"] == list(range(1, 8)) and got["next_index"] == 8 and "price" in got["units"]
    assert main(["predict", "--model", str(csv_run), "--x", "100,103"]) == 0
    cap = capsys.readouterr()
    assert cap.err.startswith("warning: --x has 2 values") and "forecast for t = 3: " in cap.out and "price" in cap.out


def test_binary_addition_answers_unchanged(tmp_path_factory, capsys):
    out = _train(tmp_path_factory, "add", "--task", "binary-addition", "--bits", "4", "--n-train", "20",
                 "--n-val", "10", "--n-test", "10")
    capsys.readouterr()
    assert main(["predict", "--model", str(out), "--a", "3,15", "--b", "4,15", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [set(r) for r in rows] == [{"a", "b", "network", "true", "exact"}] * 2
    assert [(r["a"], r["b"], r["true"]) for r in rows] == [(3, 4, 7), (15, 15, 30)]
    assert main(["predict", "--model", str(out), "--a", "3", "--b", "4"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("3 + 4 = ") and ("(exact)" in line or "(WRONG, true 7)" in line)


def test_sunspots_years_match_the_data():
    years, values = tasks.sunspots_series()
    assert years[-1] == 2008 and values[-1] == pytest.approx(2.9)


# ---------------------------------------------------------------- chars: sampling text
@pytest.fixture(scope="module")
def chars_run(tmp_path_factory):
    out = _train(tmp_path_factory, "chars", "--task", "chars", "--plots", "none")
    saved = json.loads((out / "config.json").read_text())
    assert (saved["output_activation"], saved["loss"]) == ("softmax", "cross_entropy")  # the task's defaults, via the CLI
    return out


def _sample(capsys, run, *args: str) -> dict:
    capsys.readouterr()
    assert main(["predict", "--model", str(run), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def _draws_by_hand(model, vocab: str, start: str, n: int, temperature: float, seed: int) -> str:
    """The documented rule, with each distribution from a fresh forward pass over the whole text so far (no carried
    state): q = p^(1/τ) normalised, the character where the cumulative q first exceeds u ~ rng.random()."""
    rng = np.random.default_rng(seed)
    text = start
    eye = np.eye(len(vocab))
    for _ in range(n):
        p = model.predict(eye[[vocab.index(c) for c in text]])[-1]  # (V,)
        q = p ** (1 / temperature)
        cdf = np.cumsum(q / q.sum())
        text += vocab[min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(vocab) - 1)]
    return text[len(start):]


def test_chars_sampling_is_deterministic_per_seed_and_follows_the_rule(chars_run, capsys):
    from bptt import io as bio

    model, info = bio.load_model(chars_run)
    vocab = info["task_info"]["vocab"]
    got = _sample(capsys, chars_run, "--sample", "40", "--seed", "7", "--prime", "The ")
    assert set(got) == {"task", "prime", "text", "characters", "temperature", "seed", "units"}
    assert (got["task"], got["prime"], got["characters"], got["seed"], got["temperature"]) == ("chars", "The ", 40, 7, 1.0)
    assert len(got["text"]) == 40 and set(got["text"]) <= set(vocab)
    assert got == _sample(capsys, chars_run, "--sample", "40", "--seed", "7", "--prime", "The ")  # same seed, same text
    assert got["text"] != _sample(capsys, chars_run, "--sample", "40", "--seed", "8", "--prime", "The ")["text"]
    assert got["text"] == _draws_by_hand(model, vocab, "The ", 40, 1.0, 7)
    cold = _sample(capsys, chars_run, "--sample", "30", "--seed", "3", "--temperature", "0.5")
    assert cold["prime"] is None and cold["text"] == _draws_by_hand(model, vocab, "\n", 30, 0.5, 3)  # starts after a newline
    capsys.readouterr()
    assert main(["predict", "--model", str(chars_run), "--sample", "40", "--seed", "7", "--prime", "The "]) == 0
    assert capsys.readouterr().out == "The " + got["text"] + "\n"  # the text itself: the prime, then what follows
    assert main(["predict", "--model", str(chars_run)]) == 0  # no input: 200 characters at temperature 1, seed 0
    assert capsys.readouterr().out == _sample(capsys, chars_run)["text"] + "\n"
    assert _sample(capsys, chars_run)["characters"] == 200


@pytest.mark.parametrize("args, message", [
    (["--sample", "0"], r"--sample must be an integer from 1 to 100000, got '0'; write e.g. --sample 200"),
    (["--sample", "ten"], r"--sample must be an integer from 1 to 100000, got 'ten'"),
    (["--temperature", "0"], r"--temperature must be a number from 0.01 to 100 .*, got '0'; write e.g. --temperature 0.8"),
    (["--temperature", "nan"], r"--temperature must be a number from 0.01 to 100"),
    (["--seed", "-1"], r"--seed must be an integer from 0 to 9223372036854775807, got '-1'"),
    (["--prime", "naïve"], r"--prime: character 'ï' \(position 3\) is not in the model's vocabulary of 100 characters"),
    (["--prime", ""], r"--prime is empty; give the text to continue, or leave --prime out"),
    (["--a", "3", "--b", "4"], r"--a/--b are for binary-addition or multiplication or xor models; this model was trained on 'chars'"),
    (["--x", "1", "--sample", "5"], r"give either --x/--csv steps or --sample/--temperature/--seed/--prime, not both"),
])
def test_chars_predict_refuses_bad_input_in_one_line(chars_run, capsys, args, message):
    capsys.readouterr()
    assert main(["predict", "--model", str(chars_run), *args]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and len(cap.err.strip().splitlines()) == 1
    assert re.match("error: " + message, cap.err.strip()), cap.err


def test_a_tasks_own_options_are_refused_on_other_models(sun, capsys):
    capsys.readouterr()
    assert main(["predict", "--model", str(sun), "--sample", "5"]) == 2
    assert capsys.readouterr().err.strip() == "error: --sample is for chars models; this model was trained on 'sunspots'"
    assert main(["predict", "--model", str(sun), "--b", "5"]) == 2
    assert capsys.readouterr().err.strip() == "error: --b is for binary-addition or multiplication or xor models; this model was trained on 'sunspots'"


def test_predict_and_model_files_name_no_task():
    """What differs between tasks is on their records (tasks.Task): predict and io never branch on a name."""
    import inspect

    from bptt import io as bio
    from bptt.cli import predict as cli_predict

    for module in (bio, cli_predict):
        src = inspect.getsource(module)
        assert not [name for name in tasks.TASKS if f'"{name}"' in src or f"'{name}'" in src], module.__name__
        assert "task ==" not in src and "task !=" not in src


def test_chars_sampling_from_an_ensemble_draws_from_the_members_mean(chars_run):
    from bptt import RNN
    from bptt import io as bio
    from bptt.model import Ensemble

    model, info = bio.load_model(chars_run)
    other = RNN(model.input_size, model.hidden_size, model.output_size, output_activation="softmax", loss="cross_entropy",
                seed=3)
    ens = Ensemble([model, other])
    vocab = info["task_info"]["vocab"]
    got = tasks.sample_chars(ens, info["task_info"], {"sample": "25", "seed": "2", "prime": "def "})
    assert got["text"] == _draws_by_hand(ens, vocab, "def ", 25, 1.0, 2)
    assert got["text"] != tasks.sample_chars(model, info["task_info"], {"sample": "25", "seed": "2", "prime": "def "})["text"]
