"""`bptt predict`: one-step-ahead predictions in the data's own units, or a task's own answer.

A task's own answer is its record's ``predictor`` (``bptt.tasks.Predictor``): binary-addition's
--a/--b sums (with --json a list of {"a", "b", "network", "true", "exact"}), chars' --sample text
(with --json one object: prime, text, characters, temperature, seed, units).  Every other answer
is one-step-ahead predictions; with --json one object with these keys (stable; new keys may be added):

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
                 members' mean (a task's own answer carries it too: each row, or the object)

This module never branches on a task's name: what differs between tasks is on their records.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import io as bio
from .. import tasks, untrusted
from ..validation import BPTTError
from ._common import steps


# Where `bptt --help` lists this command; the numba modules its first run on a machine compiles.
ORDER = 40
COMPILES = ()


def _predictor_options() -> dict[str, tuple[tasks.Option, list[str]]]:
    """Every predictor option in the registry -> (the option, the tasks that take it), in registry order."""
    out: dict[str, tuple[tasks.Option, list[str]]] = {}
    for t in tasks.TASKS.values():
        for opt in t.predictor.options if t.predictor else ():
            out.setdefault(opt.name, (opt, []))[1].append(t.name)
    return out


def _dest(name: str) -> str:
    return f"task_predict_{name}"


def add(sub) -> None:
    p = sub.add_parser("predict", help="run a trained model; series models answer in the data's own units",
                       description="Predict with a model written by `bptt train`. Series models (sunspots, csv, sine) take "
                       "values in the data's units and return one-step-ahead predictions in those units; the last one "
                       "forecasts the next value. Without input, sunspots forecasts the year after its data and chars "
                       "samples text.")
    p.add_argument("--model", required=True, metavar="DIR", help="the --out folder of `bptt train` (or its model.npz)")
    p.add_argument("--x", default=None, metavar="V1,V2,...",
                   help="input steps, comma-separated; a step with several inputs as a:b (e.g. 0.3:0,0.7:1)")
    p.add_argument("--csv", default=None, metavar="FILE", help="read the input series from a CSV file's --column")
    p.add_argument("--column", default=None, help="the CSV column")
    for name, (opt, owners) in _predictor_options().items():  # each task's own options, from its record
        p.add_argument(opt.flag, dest=_dest(name), default=None, metavar=opt.metavar,
                       help=f"{', '.join(owners)}: {opt.help}".replace("%", "%%"))
    p.add_argument("--json", action="store_true", help="print JSON: for series models one object with task, units, "
                   "index_name, index, inputs, predictions, next, next_index, warnings (see the module's docstring)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    given = {name: getattr(args, _dest(name)) for name in _predictor_options()}
    return predict_cli(args.model, x=args.x, csv=args.csv, column=args.column, as_json=args.json,
                       **{k: v for k, v in given.items() if v is not None})


def predict_cli(model_dir: str | Path, x: str | None = None, csv: str | None = None, column: str | None = None,
                as_json: bool = False, **given: str) -> int:
    """`bptt predict`: one-step-ahead predictions in the data's own units, or the task's own answer
    (``given``: its predictor's options as text, e.g. a="3,15", b="4,15" or sample="200")."""
    model, info = bio.load_model(model_dir)
    members = getattr(model, "members", None)  # an ensemble: model.predict is the members' mean
    ensemble = {} if members is None else {"ensemble": len(members)}
    if members is not None and not as_json:
        print(f"ensemble of {len(members)} networks: the mean of their predictions")
    task = info.get("task")
    record = tasks.TASKS.get(task) if isinstance(task, str) else None  # None: a model file without a task
    predictor = record.predictor if record is not None else None
    scaling = tasks.Scaling(**info["scaling"]) if info.get("scaling") else None
    if given:
        known = _predictor_options()
        for name in given:
            if name not in known:
                raise BPTTError(f"predict has no option {name!r}; the tasks' own options are "
                                f"{', '.join(o.flag for o, _ in known.values())}")
        own = {o.name for o in predictor.options} if predictor else set()
        foreign = [n for n in given if n not in own]
        if foreign:
            flags = "/".join(known[n][0].flag for n in foreign)
            owners = sorted({t for n in foreign for t in known[n][1]})
            raise BPTTError(f"{flags} {'is' if len(foreign) == 1 else 'are'} for {' or '.join(owners)} models; "
                            f"this model was trained on {task!r}")
    if (given or (predictor is not None and predictor.default and x is None and csv is None and column is None)):
        if x is not None or csv is not None or column is not None:
            raise BPTTError(f"give either --x/--csv steps or {'/'.join(o.flag for o in predictor.options)}, not both")
        answer = predictor.run(model, info["task_info"], given)
        if isinstance(answer, list):
            answer = [{**row, **ensemble} for row in answer]
        else:
            answer = {"task": task, **answer, **ensemble}
        print(json.dumps(answer) if as_json else predictor.show(answer))
        return 0
    if csv is not None or column is not None:
        if csv is None or column is None:
            raise BPTTError("give both --csv FILE and --column NAME")
        if x is not None:
            raise BPTTError("give the input either with --x or with --csv/--column, not both")
        (vals,) = untrusted.read_csv_columns(csv, [column])  # strict: decimal commas, blank rows, duplicates refused
        if len(vals) == 0:
            raise BPTTError(f"{csv}: column {column!r} has no values")
        xv = vals[:, None]  # (T, 1)
    elif x is not None:
        xv = steps(x, model.input_size)
    elif record is not None and record.default_input is not None:
        xv = record.default_input(info["task_info"])  # (T, D): e.g. sunspots, the last window of its data
    else:
        own = f"; or {'/'.join(o.flag for o in predictor.options)}" if predictor else ""
        raise BPTTError(f"give the input: --x V1,V2,... (or --csv FILE --column NAME{own})")
    if xv.shape[1] != model.input_size:
        raise BPTTError(f"the input has {xv.shape[1]} values per step but the model takes {model.input_size}; use --x with a:b steps")
    xin = scaling.to_unit(xv) if scaling else xv  # (T, D)
    pred = model.predict(xin.astype(model.dtype)).astype(np.float64)  # (T, O)
    pred_u = scaling.from_unit(pred) if scaling else pred  # (T, O)
    if not np.all(np.isfinite(pred_u)):
        t = int(np.argwhere(~np.isfinite(pred_u))[0][0])
        raise BPTTError(f"the prediction at step {t + 1} is {pred_u[t].tolist()}, not finite: the input or the model's "
                        "parameters are too large for this network; scale the input down or re-train the model")
    series_model = scaling is not None
    own_data = x is None and csv is None
    if own_data and record is not None and record.default_index is not None:
        index_name, index = record.default_index(info["task_info"], len(xv))  # e.g. sunspots' years
    else:
        index_name, index = "t", list(range(1, len(xv) + 1))
    short, units = record.units(info["task_info"]) if record is not None else tasks.own_units({})
    out: dict[str, Any] = {"task": task, "units": units if series_model else "model outputs",
                           "index_name": index_name, "index": index, "inputs": xv.tolist(), "predictions": pred_u.tolist()}
    if series_model:
        out["next"] = float(pred_u[-1, 0])
        out["next_index"] = index[-1] + 1
    out["warnings"] = _warnings(info["task_info"], len(xv), "--csv" if csv is not None else "--x")
    out.update(ensemble)
    if as_json:
        print(json.dumps(out))
    else:
        _print_series(out, series_model, short)
    sys.stdout.flush()  # the output written first: if it cannot be (a full disk, a reader gone), its error stays one line
    for w in out["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    return 0


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


def _print_series(out: dict[str, Any], series_model: bool, short: str) -> None:
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
        amount = f"{_value(out['next'])} {short}".rstrip()
        print(f"forecast for {_label(name, out['next_index'])}: {amount} ({units})")
