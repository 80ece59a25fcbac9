"""`bptt predict`: binary sums, or one-step-ahead predictions in the data's own units.

With --json a binary-addition model prints a list of {"a", "b", "network", "true", "exact"};
any other model prints one object with these keys (stable; new keys may be added):

    task         the task the model was trained on
    units        what the values are in, e.g. "yearly mean sunspot number" ("model outputs": no scaling)
    index_name   "year" (sunspots, its own data) or "t" (1-based step of the given input)
    index        one label per input step: its year, or t = 1..T
    inputs       [[value, ...], ...]  the input steps, in the data's units
    predictions  [[value, ...], ...]  after each input step, the prediction of the next value
    next         series models: the forecast of the value after the last input
    next_index   series models: its year or t (T + 1)
    warnings     the warning lines also written to stderr (e.g. an input shorter than the training window)
    ensemble     only for an ensemble's model (`bptt train --ensemble K`): K; the predictions are the
                 members' mean (binary-addition rows carry it too)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import io as bio
from .. import tasks
from ..validation import BPTTError
from ._common import ints, steps


# Where `bptt --help` lists this command; whether its first run on a machine compiles the numba kernels.
ORDER = 40
COMPILES = False


def add(sub) -> None:
    p = sub.add_parser("predict", help="run a trained model; series models answer in the data's own units",
                       description="Predict with a model written by `bptt train`. Series models (sunspots, csv, sine) take "
                       "values in the data's units and return one-step-ahead predictions in those units; the last one "
                       "forecasts the next value. Without input, sunspots forecasts the year after its data.")
    p.add_argument("--model", required=True, metavar="DIR", help="the --out folder of `bptt train` (or its model.npz)")
    p.add_argument("--x", default=None, metavar="V1,V2,...",
                   help="input steps, comma-separated; a step with several inputs as a:b (e.g. 0.3:0,0.7:1)")
    p.add_argument("--csv", default=None, metavar="FILE", help="read the input series from a CSV file's --column")
    p.add_argument("--column", default=None, help="the CSV column")
    p.add_argument("--a", default=None, metavar="A1,A2,...", help="binary-addition: first operands")
    p.add_argument("--b", default=None, metavar="B1,B2,...", help="binary-addition: second operands")
    p.add_argument("--json", action="store_true", help="print JSON: for series models one object with task, units, "
                   "index_name, index, inputs, predictions, next, next_index, warnings (see the module's docstring)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return predict_cli(args.model, x=args.x, csv=args.csv, column=args.column, a=args.a, b=args.b, as_json=args.json)


def predict_cli(model_dir: str | Path, x: str | None = None, csv: str | None = None, column: str | None = None,
                a: str | None = None, b: str | None = None, as_json: bool = False) -> int:
    """`bptt predict`: binary sums, or one-step-ahead predictions in the data's own units."""
    model, info = bio.load_model(model_dir)
    members = getattr(model, "members", None)  # an ensemble: model.predict is the members' mean
    ensemble = {} if members is None else {"ensemble": len(members)}
    if members is not None and not as_json:
        print(f"ensemble of {len(members)} networks: the mean of their predictions")
    task = info.get("task")
    scaling = tasks.Scaling(**info["scaling"]) if info.get("scaling") else None
    if a is not None or b is not None:
        if task != "binary-addition":
            raise BPTTError(f"--a/--b are for binary-addition models; this model was trained on {task!r}")
        if a is None or b is None:
            raise BPTTError("give both --a and --b (comma-separated integers of equal count)")
        A, B = ints(a, "--a"), ints(b, "--b")
        if len(A) != len(B):
            raise BPTTError(f"--a has {len(A)} numbers but --b has {len(B)}; give them in pairs")
        bits = int(info["task_info"]["bits"])
        for v, opt in [(v, "--a") for v in A] + [(v, "--b") for v in B]:
            if not 0 <= v < (1 << bits):
                raise BPTTError(f"{opt}: {v} does not fit in {bits} bits; give integers in 0..{(1 << bits) - 1}")
        xs, _ = tasks.addition_sequences(A, B, bits)
        got = tasks.bits_to_int(model.predict(xs.astype(model.dtype))[..., 0] > 0.5)
        rows = [{"a": p, "b": q, "network": int(g), "true": p + q, "exact": int(g) == p + q, **ensemble}
                for p, q, g in zip(A, B, got)]
        if as_json:
            print(json.dumps(rows))
        else:
            for r in rows:
                print(f"{r['a']} + {r['b']} = {r['network']}  ({'exact' if r['exact'] else 'WRONG, true ' + str(r['true'])})")
        return 0
    if csv is not None or column is not None:
        if csv is None or column is None:
            raise BPTTError("give both --csv FILE and --column NAME")
        if x is not None:
            raise BPTTError("give the input either with --x or with --csv/--column, not both")
        (vals,) = tasks.read_csv_columns(csv, [column])
        if len(vals) == 0:
            raise BPTTError(f"{csv}: column {column!r} has no values")
        xv = vals[:, None]  # (T, 1)
    elif x is not None:
        xv = steps(x, model.input_size)
    elif (default_input := _default_input(task)) is not None:
        xv = default_input(info["task_info"])  # (T, D): e.g. sunspots, the last window of its data
    else:
        raise BPTTError("give the input: --x V1,V2,... (or --csv FILE --column NAME; --a/--b for binary-addition)")
    if xv.shape[1] != model.input_size:
        raise BPTTError(f"the input has {xv.shape[1]} values per step but the model takes {model.input_size}; use --x with a:b steps")
    xin = scaling.to_unit(xv) if scaling else xv  # (T, D)
    pred = model.predict(xin.astype(model.dtype)).astype(np.float64)  # (T, O)
    pred_u = scaling.from_unit(pred) if scaling else pred  # (T, O)
    series_model = scaling is not None
    index_name, index = _index(task, info["task_info"], len(xv), own_data=x is None and csv is None)
    out: dict[str, Any] = {"task": task, "units": _units(task, info["task_info"], series_model),
                           "index_name": index_name, "index": index, "inputs": xv.tolist(), "predictions": pred_u.tolist()}
    if series_model:
        out["next"] = float(pred_u[-1, 0])
        out["next_index"] = index[-1] + 1
    out["warnings"] = _warnings(info["task_info"], len(xv), "--csv" if csv is not None else "--x")
    out.update(ensemble)
    for w in out["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    if as_json:
        print(json.dumps(out))
    else:
        _print_series(out, series_model)
    return 0


# What the values of a series task are in; a task not listed here answers in "the data's own units".
_UNITS = {"sunspots": ("sunspots", "yearly mean sunspot number"), "sine": ("", "the sine's value, unscaled")}


def _units(task: str | None, task_info: dict[str, Any], series_model: bool) -> str:
    """The units of the inputs and predictions, in words."""
    if not series_model:
        return "model outputs"
    if task == "csv":
        return f"{task_info.get('column', 'the column')}, in the CSV file's units"
    return _UNITS.get(task, ("", "the data's own units"))[1]


def _index(task: str | None, task_info: dict[str, Any], T: int, own_data: bool) -> tuple[str, list[int]]:
    """("year", the years) for sunspots' own last window; else ("t", [1..T])."""
    if task == "sunspots" and own_data:
        years, _ = tasks.sunspots_series()
        return "year", [int(v) for v in years[-T:]]
    return "t", list(range(1, T + 1))


def _warnings(task_info: dict[str, Any], T: int, option: str) -> list[str]:
    """A warning when the input is shorter than the windows the model was trained and tested on."""
    window = task_info.get("window")
    if isinstance(window, int) and T < window:
        return [f"{option} has {T} values but the model was trained on windows of {window}: its hidden state has "
                f"not warmed up as in training, so these predictions are less reliable; give at least {window} values"]
    return []


def _value(v: float) -> str:
    """A value for reading: 4 significant digits, but every digit before the point (87.3, 1003.2)."""
    return f"{v:.1f}" if abs(v) >= 1000 else f"{v:.4g}"


def _label(name: str, i: int) -> str:
    return str(i) if name == "year" else f"t = {i}"


def _print_series(out: dict[str, Any], series_model: bool) -> None:
    """One line per input step (its label, input, the prediction), then the forecast."""
    name, units = out["index_name"], out["units"]
    print(f"{'year' if name == 'year' else 'step':>10}  {'input':>12}  " + ("prediction of the next value" if series_model else "y'")
          + f"  ({units})")
    for i, xs_, ps in zip(out["index"], out["inputs"], out["predictions"]):
        x_text = ", ".join(_value(v) for v in xs_)
        p_text = ", ".join(_value(v) for v in ps)
        nxt = f"{_label(name, i + 1)}: " if series_model else ""
        print(f"{_label(name, i):>10}  {x_text:>12}  {nxt}{p_text}")
    if series_model:
        short = _UNITS.get(out["task"], ("", ""))[0]
        amount = f"{_value(out['next'])} {short}".rstrip()
        print(f"forecast for {_label(name, out['next_index'])}: {amount} ({units})")


def _default_input(task: str | None):
    """The task record's input for `bptt predict` given none (None: the model's task has none, or is unknown)."""
    record = tasks.TASKS.get(task) if isinstance(task, str) else None
    return record.default_input if record is not None else None
