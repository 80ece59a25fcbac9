"""`bptt predict`: series answers labelled by year or t, with units, a forecast line, a warning for
inputs shorter than the training window, the documented --json object; binary sums unchanged."""

from __future__ import annotations

import json
import math

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
