"""`bptt predict`: binary sums, or one-step-ahead predictions in the data's own units."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .. import io as bio
from .. import tasks
from ..validation import BPTTError
from ._common import ints, steps


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
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return predict_cli(args.model, x=args.x, csv=args.csv, column=args.column, a=args.a, b=args.b, as_json=args.json)


def predict_cli(model_dir: str | Path, x: str | None = None, csv: str | None = None, column: str | None = None,
                a: str | None = None, b: str | None = None, as_json: bool = False) -> int:
    """`bptt predict`: binary sums, or one-step-ahead predictions in the data's own units."""
    model, info = bio.load_model(model_dir)
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
        rows = [{"a": p, "b": q, "network": int(g), "true": p + q, "exact": int(g) == p + q} for p, q, g in zip(A, B, got)]
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
    pred_u = scaling.from_unit(pred) if scaling else pred
    series_model = scaling is not None
    out = {"task": task, "inputs": xv.tolist(), "predictions": pred_u.tolist(),
           "units": "the data's own units" if series_model else "model outputs"}
    if series_model:
        out["next"] = float(pred_u[-1, 0])
    if as_json:
        print(json.dumps(out))
        return 0
    for t in range(len(xv)):
        xs_ = ", ".join(f"{v:.6g}" for v in xv[t])
        ps = ", ".join(f"{v:.6g}" for v in pred_u[t])
        print(f"t={t + 1:4d}  x={xs_:>12}  " + (f"next predicted={ps}" if series_model else f"y'={ps}"))
    if series_model:
        print(f"forecast of the value after the last input: {out['next']:.6g}")
    return 0


def _default_input(task: str | None):
    """The task record's input for `bptt predict` given none (None: the model's task has none, or is unknown)."""
    record = tasks.TASKS.get(task) if isinstance(task, str) else None
    return record.default_input if record is not None else None
