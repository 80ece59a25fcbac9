"""The Hessian-free results (docs/results/hessian-free.md), recomputed.

    python examples/hf_results.py adding --lengths 50 100 --seeds 0 1 2
    python examples/hf_results.py adding --lengths 100 --seeds 0 1 2 --adam   # + Adam for the same wall clock
    python examples/hf_results.py sunspots-sweep      # the validation numbers that chose the sunspots setup
    python examples/hf_results.py sunspots            # the chosen setup on seeds 0-4: validation and test

adding: for each length T and seed S, HF on one fixed training set for 100 iterations, i.e. exactly
``bptt train --task adding --length T --optimizer hf --fresh 0 --epochs 100 --seed S`` (the task's HF
defaults until they became a fresh set every iteration and 200 iterations; a budget in iterations, so
every number is reproducible to the digit on any machine).  Each run's validation
MSE ratio (validation MSE over the MSE of predicting the training targets' mean) is recorded after
every iteration; the table gives the test ``mse_ratio`` of the model kept (lowest validation loss)
and the first iteration whose validation ratio is below 0.1.  With --adam, Adam (the README's
adding setup: lr 0.01, batch 32, clipping at 1) also runs for the HF run's wall clock (its epochs:
the HF run's seconds over the time of one epoch, timed after a warm-up run): that comparison
depends on the machine's speed, and the table prints the epochs it ran so that a run of that many
epochs reproduces it.  Curves go to --out as JSON and, with matplotlib, as one PNG per length.

sunspots: every choice (optimizer, output, size, window, ensemble) is made on the validation years
1959-1978; the test years 1979-2008 are only read by the ``sunspots`` section, for the one chosen
setup.  A "seed s" of an ensemble is the mean prediction of K networks seeded 10 s + k, k < K.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bptt import tasks
from bptt.train import config_for, train

CURVE_TIMES = (15, 30, 60, 120, 240, 480)  # seconds at which the table reads the curves

# the sunspots setups compared on the validation years (sunspots-sweep), and the one chosen
SUN_HF = {"optimizer": "hf", "epochs": 60, "hf_curvature_batch": None}
SUN_SWEEP = [
    ("adam (task defaults)", {}, {}, 1),
    ("adam, ensemble of 5", {}, {}, 5),
    ("hf", SUN_HF, {}, 1),
    ("hf, l2 1e-7", {**SUN_HF, "hf_l2": 1e-7}, {}, 1),
    ("hf, l2 1e-6", {**SUN_HF, "hf_l2": 1e-6}, {}, 1),
    ("hf, identity output", {**SUN_HF, "output_activation": "identity"}, {}, 1),
    ("hf, 4 hidden", {**SUN_HF, "hidden_size": 4}, {}, 1),
    ("hf, 16 hidden", {**SUN_HF, "hidden_size": 16}, {}, 1),
    ("hf, ensemble of 5", SUN_HF, {}, 5),
    ("hf, window 10, ensemble of 5", SUN_HF, {"window": 10}, 5),
    ("hf, window 30, ensemble of 5", SUN_HF, {"window": 30}, 5),
]
SUN_CHOSEN = ("hf, window 10, ensemble of 5", SUN_HF, {"window": 10}, 5)  # the lowest validation MSE of the sweep


# ---------------------------------------------------------------- adding problem
def val_baseline(data: tasks.TaskData) -> float:
    """MSE on the validation split of predicting the training targets' mean."""
    return float(np.mean((data.val.y[-1, :, 0] - data.train.y[-1, :, 0].mean()) ** 2))


def timed_run(cfg, data, base: float) -> tuple[dict, list[tuple[float, float]], float]:
    """(test metrics, [(seconds, validation mse ratio)] after every epoch, seconds in all)."""
    curve: list[tuple[float, float]] = []
    start = time.perf_counter()

    def progress(info):
        if info.get("done"):
            curve.append((time.perf_counter() - start, 2 * info["val_loss"] / base))

    res = train(cfg, data=data, progress=progress)
    return res.metrics, curve, time.perf_counter() - start


def at(curve: list[tuple[float, float]], seconds: float) -> float | None:
    """The curve's last value at or before ``seconds`` (None: no epoch had finished)."""
    vals = [r for t, r in curve if t <= seconds]
    return vals[-1] if vals else None


def first_below(curve: list[tuple[float, float]], level: float) -> int | None:
    """The first epoch (1-based) whose validation ratio is below ``level``."""
    return next((i + 1 for i, (_, r) in enumerate(curve) if r < level), None)


# the table's setup: one fixed training set (the defaults draw a fresh one every iteration), 100 iterations
FIXED_SET = {"fresh": 0}
HF_ITERATIONS = 100


def adding(lengths: list[int], seeds: list[int], out: Path, with_adam: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for L in lengths:
        curves = {}
        for s in seeds:
            data = tasks.load("adding", seed=s, length=L)
            base = val_baseline(data)
            hf_cfg = config_for("adding", FIXED_SET | {"length": L}, optimizer="hf", seed=s, epochs=HF_ITERATIONS)
            m, curve, secs = timed_run(hf_cfg, data, base)
            curves[f"hf seed {s}"] = curve
            row = {"T": L, "seed": s, "hf_mse_ratio": m["mse_ratio"], "hf_within_0_04": m["test_within_0_04"],
                   "hf_seconds": secs, "hf_iterations": m["epochs_run"],
                   "hf_below_01_at": first_below(curve, 0.1)}
            if with_adam:
                two = config_for("adding", {"length": L}, seed=s, epochs=2)
                train(two, data=data)  # warm-up: the compiled kernels' first call compiles them
                t0 = time.perf_counter()
                train(two, data=data)
                epochs = max(1, int(2 * secs / (time.perf_counter() - t0)))
                am, acurve, asecs = timed_run(config_for("adding", {"length": L}, seed=s, epochs=epochs), data, base)
                curves[f"adam seed {s}"] = acurve
                row.update(adam_mse_ratio=am["mse_ratio"], adam_seconds=asecs, adam_epochs=epochs,
                           adam_below_01_at=first_below(acurve, 0.1))
            rows.append(row)
            print(json.dumps(row), flush=True)
            for name in [k for k in curves if k.endswith(f"seed {s}")]:
                pts = " ".join(f"{t}s:{at(curves[name], t):.3f}" for t in CURVE_TIMES
                               if t <= secs * 1.05 and at(curves[name], t) is not None)
                print(f"  T={L} {name}: validation mse ratio at {pts} (seconds: this machine's)", flush=True)
        tag = f"adding_T{L}_seeds{'-'.join(map(str, seeds))}"
        (out / f"{tag}.json").write_text(json.dumps(curves))
        plot_curves(curves, L, out / f"{tag}.png")
    print("\n| T | seed | HF test mse_ratio | within 0.04 | HF iterations | HF val < 0.1 from iteration | Adam, same wall clock (machine-dependent) | HF seconds (this machine) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        below = "never" if r["hf_below_01_at"] is None else str(r["hf_below_01_at"])
        adam = f"{r['adam_mse_ratio']:.3f} ({r['adam_epochs']} epochs)" if "adam_mse_ratio" in r else "not run"
        print(f"| {r['T']} | {r['seed']} | {r['hf_mse_ratio']:.4f} | {r['hf_within_0_04']:.3f} | {r['hf_iterations']} | {below} | {adam} | {r['hf_seconds']:.0f} |")


def plot_curves(curves: dict, L: int, path: Path) -> None:
    """HF against Adam: one colour per seed, a line style per method, the 0.1 level labelled (plots.race_curves)."""
    from bptt import plots

    by_seed: dict[str, dict[str, list]] = {}
    for name, c in curves.items():  # "hf seed 3", "adam seed 3"
        method, _, seed = name.partition(" seed ")
        by_seed.setdefault(f"seed {seed}", {})["HF" if method == "hf" else "Adam"] = c
    plots.race_curves(by_seed, path, x_label="wall clock (s, this machine)",
                      y_label="validation MSE / mean-prediction MSE", title=f"adding problem, T = {L}, 16 sigmoid units",
                      level=0.1, level_label="0.1: solved (the table's 'val < 0.1')")


# ---------------------------------------------------------------- sunspots
def sunspots_ensemble(settings: dict, options: dict, K: int, seed: int) -> tuple[float, float, float]:
    """(validation MSE, test MSE, mean member validation MSE) in squared sunspot numbers, K members."""
    pv, pt, member_val = [], [], []
    for k in range(K):
        res = train(config_for("sunspots", options, seed=10 * seed + k if K > 1 else seed, **settings))
        d = res.data
        sc = d.scaling
        yv, yt = sc.from_unit(d.val.y[-1, :, 0]), sc.from_unit(d.test.y[-1, :, 0])  # (20,), (30,)
        pv.append(sc.from_unit(res.model.predict(d.val.x)[-1, :, 0]))  # (20,)
        pt.append(sc.from_unit(res.model.predict(d.test.x)[-1, :, 0]))  # (30,)
        member_val.append(float(np.mean((pv[-1] - yv) ** 2)))
    return (float(np.mean((np.mean(pv, 0) - yv) ** 2)), float(np.mean((np.mean(pt, 0) - yt) ** 2)),
            float(np.mean(member_val)))


def sweep_row(name: str, settings: dict, options: dict, K: int) -> dict:
    """One setup of the sweep on the validation years only (the test years are not read)."""
    t0 = time.perf_counter()
    vals = [sunspots_ensemble(settings, options, K, s)[0] for s in range(5)]
    return {"setup": name, "mean": float(np.mean(vals)), "per_seed": vals, "seconds": time.perf_counter() - t0}


def sunspots(sweep: bool) -> None:
    if sweep:
        print("| setup | validation MSE 1959-1978, mean of seeds 0-4 | per seed | seconds |")
        print("| --- | --- | --- | --- |")
        for setup in SUN_SWEEP:
            r = sweep_row(*setup)
            print(f"| {r['setup']} | {r['mean']:.1f} | {' '.join(f'{v:.0f}' for v in r['per_seed'])} | {r['seconds']:.0f} |",
                  flush=True)
        return
    for name, settings, options, K in [SUN_CHOSEN]:
        t0 = time.perf_counter()
        runs = [sunspots_ensemble(settings, options, K, s) for s in range(5)]
        vals = [v for v, _, _ in runs]
        secs = time.perf_counter() - t0
        d = tasks.load("sunspots")
        ar = tasks.series_metrics(d, np.zeros_like(d.test.y))["ar9_mse"]  # AR(9) does not read pred
        print(f"chosen: {name} ({settings}, {options}, K = {K}); {secs:.0f} s")
        print("| seed | validation MSE | test MSE | AR(9) test MSE |")
        print("| --- | --- | --- | --- |")
        for s, (v, te, _) in enumerate(runs):
            print(f"| {s} | {v:.1f} | {te:.1f} | {ar:.1f} |")
        tests = [te for _, te, _ in runs]
        print(f"| mean | {np.mean(vals):.1f} | {np.mean(tests):.1f} | {ar:.1f} |")
        print(f"test mean / AR(9) = {np.mean(tests) / ar:.3f} (target <= 0.9)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("section", choices=("adding", "sunspots-sweep", "sunspots"))
    ap.add_argument("--lengths", type=int, nargs="+", default=[50, 100])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--adam", action="store_true", help="also Adam for the HF run's wall clock (machine-dependent)")
    ap.add_argument("--out", type=Path, default=Path("runs/hf_results"))
    a = ap.parse_args()
    if a.section == "adding":
        adding(a.lengths, a.seeds, a.out, a.adam)
    else:
        sunspots(a.section == "sunspots-sweep")


if __name__ == "__main__":
    main()
