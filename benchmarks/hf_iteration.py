"""Hessian-free's cost at T = 100 (the adding problem, the task's defaults on one fixed training set): HF iterations with the compiled
passes (bptt.curvature_kernels) and with the engine's loops, and optionally an earlier commit's HF, stepped in
turns in one process (so all see the same load), then one Gauss-Newton product against one gradient.

    python benchmarks/hf_iteration.py [ITERATIONS] [COMMIT]

Seconds are wall-clock and this process's CPU time (steadier on a shared machine).  Every trajectory is the same bits (the compiled passes equal the engine's), so each iteration does the same
work (the same CG iterations) in every column.  COMMIT's package is unpacked (git archive) as `bptt_base`.
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np

from seed_call_ab import base_package  # the earlier commit's src/bptt as package bptt_base (benchmarks/ runs as a script)

ROOT = Path(__file__).resolve().parents[1]


def best_seconds(calls: dict, repeat: int = 41) -> dict:
    """(wall, CPU) seconds: the fastest of ``repeat`` calls of each, taken in turns (the least disturbed by other
    processes on a shared machine, and each under the same load); CPU = this process's, all its threads."""
    best = {}
    for name, call in calls.items():
        call()
    for _ in range(repeat):
        for name, call in calls.items():
            t, c = time.perf_counter(), time.process_time()
            call()
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            old = best.get(name, (1e9, 1e9))
            best[name] = (min(old[0], wall), min(old[1], cpu))
    return best


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    commit = sys.argv[2] if len(sys.argv) > 2 else None
    sys.path[:0] = [str(ROOT / "src")] + ([str(base_package(commit))] if commit else [])
    from bptt import hf
    from bptt import train as tr

    cfg = tr.config_for("adding", {"length": 100, "fresh": 0}, optimizer="hf", seed=0)  # one training set
    data = tr.load_task(cfg)
    xs, ys = data.train.x.astype(cfg.dtype), data.train.y.astype(cfg.dtype)
    runners = {}
    for name in ("compiled", "engine loops"):
        params = tr.init_model(cfg, data).params()
        opt = hf.HessianFree.from_config(cfg, params)
        opt.reference = name == "engine loops"
        runners[name] = (params, opt)
    if commit:
        import bptt_base.hf as base_hf

        params = tr.init_model(cfg, data).params()
        runners[commit] = (params, base_hf.HessianFree.create(params, base_hf.Net.named(
            cfg.hidden_activation, cfg.output_activation, cfg.loss), base_hf.HFSettings(**vars(cfg.hf))))

    print(f"| iteration | CG iterations | " + " | ".join(f"{n} (s, CPU s)" for n in runners) + " |")
    print("|---|---|" + "---|" * len(runners))
    seconds = {n: [] for n in runners}
    cpu = {n: [] for n in runners}
    for epoch in range(1, iterations + 1):
        order = np.random.default_rng([cfg.seed, epoch]).permutation(data.train.n)
        infos = {}
        for name, (params, opt) in runners.items():
            c = time.process_time()
            opt.run_epoch(params, xs, ys, data.train.mask, order)
            cpu[name].append(time.process_time() - c)
            infos[name] = opt.last
            seconds[name].append(opt.last.seconds)
        losses = {i.new_loss for i in infos.values()}
        assert len(losses) == 1, f"the trajectories differ at iteration {epoch}: {infos}"
        print(f"| {epoch} | {infos['compiled'].cg_iters} | "
              + " | ".join(f"{infos[n].seconds:.3f}, {cpu[n][-1]:.3f}" for n in runners) + " |")
    if iterations > 1:  # the first loads or compiles the kernels
        print("| median, iterations 2.. | | "
              + " | ".join(f"{statistics.median(seconds[n][1:]):.3f}, {statistics.median(cpu[n][1:]):.3f}"
                           for n in runners) + " |")

    # one product against one gradient, on the curvature batch of the last iteration (T = 100, 500 sequences)
    params, opt = runners["compiled"]
    theta = hf.flatten(params)
    p = hf.unflatten(theta, opt.shapes)
    gb, cb = opt.batches(xs, ys, data.train.mask, np.arange(data.train.n))
    v = np.random.default_rng(1).standard_normal(theta.size)
    calls = {}
    for name, reference in (("compiled", False), ("engine loops", True)):
        curv = hf.Curvature.at(opt.net, p, cb, reference)
        calls[f"G v, {name}"] = lambda curv=curv: curv.gn(v)
        calls[f"G v and S v (μ > 0), {name}"] = lambda curv=curv: curv.products(v)
        calls[f"gradient (forward + backward), {name}"] = (
            lambda reference=reference: hf.loss_and_grad(opt.net, p, cb, 0.0, reference))
    if commit:
        base_curv = base_hf.Curvature.at(runners[commit][1].net, base_hf.unflatten(theta, opt.shapes), cb)
        calls[f"G v, {commit}"] = lambda: base_curv.gn(v)
    calls["forward pass (engine)"] = lambda: opt.net.forward(p, cb)
    rows = best_seconds(calls)
    print(f"\n| on the curvature batch ({cb.x.shape[1]} sequences, T = {cb.x.shape[0]}), best of 41 | ms | CPU ms |"
          "\n|---|---|---|")
    for name, (wall, c) in rows.items():
        print(f"| {name} | {wall * 1e3:.1f} | {c * 1e3:.1f} |")


if __name__ == "__main__":
    main()
