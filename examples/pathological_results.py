"""The pathological long-range problems (Martens & Sutskever 2011) trained with Hessian-free, recomputed.

    python examples/pathological_results.py --tasks multiplication xor --lengths 20 100 --seeds 0 1 2
    python examples/pathological_results.py --tasks temporal-order --options bits=3 --lengths 100 --seeds 0
    python examples/pathological_results.py --tasks adding --lengths 100 --seeds 0 --adam-epochs 60
    python examples/pathological_results.py --tasks multiplication --options fresh=1 init=sparse --hidden 32 --epochs 150

Each run is exactly ``bptt train --task TASK --length T [--OPTION V] --optimizer hf --seed S``: the
task's HF defaults (its budget in HF iterations, so every number but the seconds is the same on any
machine).  A row gives the test error of the model kept (lowest validation loss) by the task's own
criterion (the fraction of test sequences with |error| >= 0.04 for adding and multiplication, the
classification error for the others), the trivial baseline's error on the same test set, "solved"
(test error below 1 %), the iteration of the kept model, the iterations run and the seconds (this
machine's).  --options, --hidden, --hf-structural and --epochs add their flags to every HF command
(e.g. fresh=1: a new training set every iteration; init=sparse: Martens & Sutskever's start).
The validation loss after every iteration goes to --out as JSON.  With --adam-epochs E,
Adam with the task's own defaults also runs E epochs on the same data (its row is marked adam).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bptt import tasks
from bptt.train import config_for, train

PROBLEMS = ("adding", "multiplication", "xor", "temporal-order", "random-permutation", "memorization")


def option_pairs(texts: list[str]) -> dict[str, int | str]:
    """['bits=3', 'init=sparse'] -> {'bits': 3, 'init': 'sparse'}: task options (integers where they read as one)."""
    out: dict[str, int | str] = {}
    for t in texts:
        k, _, v = t.partition("=")
        out[k.replace("-", "_")] = int(v) if v.lstrip("-").isdigit() else v
    return out


# training settings this script passes on, with their `bptt train` flags
SETTING_FLAGS = {"hidden_size": "--hidden", "hf_structural": "--hf-structural", "hf_curvature_batch": "--hf-curvature-batch",
                 "hf_max_cg": "--hf-max-cg"}


def command(task: str, options: dict, seed: int, optimizer: str = "hf", epochs: int | None = None,
            **settings) -> str:
    flags = " ".join(f"{tasks.option_flag(k)} {v}" for k, v in options.items())
    extra = "".join(f" {SETTING_FLAGS[k]} {v}" for k, v in settings.items())
    tail = f" --epochs {epochs}" if epochs else ""
    return f"bptt train --task {task} {flags} --optimizer {optimizer} --seed {seed}{extra}{tail}"


def run(task: str, options: dict, seed: int, optimizer: str = "hf", epochs: int | None = None,
        **settings) -> tuple[dict, list]:
    """One run: ``bptt train`` with the task's defaults under ``options`` and ``settings`` (SETTING_FLAGS' keys)."""
    settings = {"optimizer": optimizer, "seed": seed} | ({"epochs": epochs} if epochs else {}) | settings
    cfg = config_for(task, options, **settings)
    curve: list[tuple[float, float]] = []
    start = time.perf_counter()

    def progress(info):
        if info.get("done"):
            curve.append((round(time.perf_counter() - start, 2), info["val_loss"]))

    res = train(cfg, progress=progress)
    secs = time.perf_counter() - start
    m = res.metrics
    row = {"task": task, **options, "seed": seed, "optimizer": optimizer, "test_error": m["test_error"],
           "baseline_error": m["baseline_error"], "solved": bool(m["test_error"] < tasks.SOLVED_ERROR),
           "kept_iteration": m.get("best_epoch"), "iterations": m.get("epochs_run"), "seconds": round(secs, 1),
           "command": command(task, options, seed, optimizer, epochs,
                              **{k: v for k, v in settings.items() if k in SETTING_FLAGS})}
    return row, curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(PROBLEMS), choices=PROBLEMS)
    ap.add_argument("--lengths", type=int, nargs="+", default=[100])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--options", nargs="*", default=[], help="further task options, e.g. bits=3 fresh=1 init=sparse")
    ap.add_argument("--hidden", type=int, default=None, help="hidden units (default: the task's)")
    ap.add_argument("--hf-structural", type=float, default=None, help="structural damping mu (default: the task's)")
    ap.add_argument("--epochs", type=int, default=None, help="HF iterations (default: the task's budget)")
    ap.add_argument("--adam-epochs", type=int, default=None, help="also Adam (the task's defaults) for this many epochs")
    ap.add_argument("--out", type=Path, default=Path("runs/pathological"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in a.tasks:
        for T in a.lengths:
            for s in a.seeds:
                options = {"length": T, **option_pairs(a.options)}
                runs = [("hf", a.epochs)] + ([("adam", a.adam_epochs)] if a.adam_epochs else [])
                for optimizer, epochs in runs:
                    extra = {k: v for k, v in (("hidden_size", a.hidden), ("hf_structural", a.hf_structural))
                             if v is not None and (optimizer == "hf" or k == "hidden_size")}
                    row, curve = run(task, options, s, optimizer, epochs, **extra)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    tag = "_".join(f"{k}{v}" for k, v in options.items())
                    (a.out / f"{task}_{tag}_seed{s}_{optimizer}.json").write_text(json.dumps({"row": row, "val_loss": curve}))
    print("\n| problem | T | seed | optimizer | test error | baseline error | solved | kept iteration | iterations | seconds here |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        extra = "".join(f", {k} {v}" for k, v in r.items() if k in ("bits", "symbols", "fresh", "init"))
        print(f"| {r['task']}{extra} | {r['length']} | {r['seed']} | {r['optimizer']} | {r['test_error']:.3f} | "
              f"{r['baseline_error']:.3f} | {'yes' if r['solved'] else 'no'} | {r['kept_iteration']} | {r['iterations']} | "
              f"{r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
