"""Every result of the documentation's training results page (docs/results/training.md), recomputed.

    python examples/readme_results.py                 # every section
    python examples/readme_results.py sunspots adding # some of them
    python examples/readme_results.py --json          # machine-readable

Sections: addition, sunspots, sine, adding, gradflow.  Each function returns plain data;
``tests/test_readme.py`` runs the cheap ones (and a stated subset of the expensive ones)
and checks them against the numbers printed on that page.  Wall-clock times are machine-
dependent and printed for information only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

import numpy as np

from bptt import RNN
from bptt.gradflow import decay_summary, gradient_flow
from bptt.train import config_for, train

SEEDS = (0, 1, 2, 3, 4)
ADDING_LENGTHS = (10, 20, 30, 40, 50, 100)
ADDING_SEEDS = (0, 1, 2)
ADDING_EPOCHS = 60


def _timed(cfg) -> tuple[dict[str, Any], float, Any]:
    t0 = time.perf_counter()
    res = train(cfg)
    return res.metrics, time.perf_counter() - t0, res.model


def addition_run(seed: int = 0, **settings: Any) -> dict[str, Any]:
    """One binary-addition run with the task defaults (8 bits, H = 8, Adam 0.05, 30 epochs)."""
    m, secs, model = _timed(config_for("binary-addition", {}, seed=seed, **settings))
    return {"seed": seed, "exact": m["test_pairs_exact"], "pairs": m["test_pairs"], "seconds": secs,
            "all_pairs_exact": all_operand_pairs_exact(model)}


def all_operand_pairs_exact(model: RNN, bits: int = 8) -> int:
    """How many of all 2^(2 bits) operand pairs the model adds exactly."""
    from bptt.tasks import addition_sequences, bits_to_int

    a, b = np.divmod(np.arange(1 << (2 * bits)), 1 << bits)  # (65536,) each
    x, _ = addition_sequences(a, b, bits)  # (T, N, 2)
    got = bits_to_int(model.predict(x.astype(model.dtype))[..., 0] > 0.5)  # (N,)
    return int(np.sum(got == a + b))


def addition(seeds=SEEDS) -> dict[str, Any]:
    runs = [addition_run(s) for s in seeds]
    sgd = {lr: addition_run(0, optimizer="sgd", lr=lr, momentum=0.9) for lr in (2.0,)}
    sgd_slow = addition_run(0, optimizer="sgd", lr=0.5, momentum=0.9)
    return {"runs": runs, "sgd_lr2": sgd[2.0], "sgd_lr0_5": sgd_slow}


def sunspots(seeds=SEEDS) -> list[dict[str, Any]]:
    out = []
    for s in seeds:
        m, secs, _ = _timed(config_for("sunspots", {}, seed=s))
        out.append({"seed": s, "rnn": m["test_mse"], "persistence": m["persistence_mse"], "ar9": m["ar9_mse"],
                    "seconds": secs})
    return out


def sine(seed: int = 0) -> dict[str, Any]:
    m, secs, _ = _timed(config_for("sine", {}, seed=seed))
    return {"seed": seed, "rnn": m["test_mse"], "persistence": m["persistence_mse"], "noise_floor": m["noise_floor"],
            "seconds": secs}


def adding_cell(length: int, seed: int, hidden_activation: str = "sigmoid") -> dict[str, Any]:
    """One cell of the adding-problem table: 16 units, Adam 0.01, batch 32, 2000 sequences, 60 epochs."""
    m, secs, _ = _timed(config_for("adding", {"length": length}, seed=seed, epochs=ADDING_EPOCHS,
                                   hidden_activation=hidden_activation))
    return {"length": length, "seed": seed, "activation": hidden_activation, "mse_ratio": m["mse_ratio"],
            "within_0_04": m["test_within_0_04"], "seconds": secs}


def adding(lengths=ADDING_LENGTHS, seeds=ADDING_SEEDS) -> dict[str, Any]:
    sigmoid = [adding_cell(L, s) for L in lengths for s in seeds]
    tanh = [adding_cell(L, 0, "tanh") for L in lengths]
    return {"sigmoid": sigmoid, "tanh": tanh}


def gradflow(hidden: int = 16, length: int = 40, seed: int = 0) -> dict[str, dict[str, float]]:
    """The decay medians of `bptt gradflow --out flow.png` (random network, sigmoid and tanh, same weights)."""
    base = RNN(1, hidden, 1, "sigmoid", "sigmoid", seed=seed)
    twin = RNN(1, hidden, 1, "tanh", "sigmoid", seed=seed)
    rng = np.random.default_rng([seed, 7])
    x = rng.uniform(0, 1, size=(length, 1))  # (T, 1)
    y = rng.uniform(0, 1, size=(length, 1))  # (T, 1)
    return {name: decay_summary(gradient_flow(m, x, y)) for name, m in (("sigmoid", base), ("tanh", twin))}


SECTIONS: dict[str, Callable[[], Any]] = {"addition": addition, "sunspots": sunspots, "sine": sine, "adding": adding,
                                          "gradflow": gradflow}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sections", nargs="*", metavar="SECTION",
                   help=f"one or more of {', '.join(SECTIONS)} (default: all of them)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = p.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    results = {}
    for name in args.sections or SECTIONS:
        results[name] = SECTIONS[name]()
        if not args.json:
            print(f"## {name}\n{json.dumps(results[name], indent=1)}", flush=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
