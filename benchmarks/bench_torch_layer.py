r"""``bptt.torch.SigmoidRNN`` against the hand-rolled autograd loop a PyTorch user writes.

    python benchmarks/bench_torch_layer.py [--quick] [--sizes seed,scalar,...] [--no-memory] [--threads N]

One full gradient (forward, the seed's mean loss, backward to all five parameters),
float32, sigmoid hidden and output units, O = 1, on the grid and problems of
``benchmarks/bench.py`` (parameters U(-1/sqrt H, 1/sqrt H), x ~ U(-1, 1), y ~ U(0, 1)).

Variants, all in PyTorch on the same device:
    loop       the hand-rolled loop: input projection as one matmul, a Python loop of
               h = sigmoid(zx_t + h w_h^T) recorded by autograd, output projection as one
               matmul, loss.backward()   (bench.py's PyTorch peer)
    layer      SigmoidRNN: the same forward without a graph, this library's BPTT as backward
    layer+ckpt SigmoidRNN(checkpoint="sqrt"): stores every ceil(sqrt T)-th hidden state
    nn.RNN     torch.nn.RNN(nonlinearity="tanh") + Linear + sigmoid: PyTorch's built-in
               recurrent kernel, for scale only; it computes a different function (tanh)

Before timing, every variant's gradients are checked against the float64 numpy engine.
Times: median of repeats after warm-up, torch.set_num_threads(--threads, default os.cpu_count()).
Memory, CPU: "saved" = bytes autograd keeps for the backward pass (every tensor saved
by any node, counted once per storage, via torch.autograd.graph.saved_tensors_hooks);
"peak" = the rise of the process's peak resident memory during one gradient, measured
in a fresh process per variant (Linux /proc: VmHWM reset by clear_refs, glibc's mmap
threshold fixed so freed memory goes back to the OS).  CUDA: torch.cuda.max_memory_allocated
minus the memory allocated before the call.  Without a CUDA device the CUDA rows say
"not measured".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

PARAMS = ("w", "w_x", "w_h", "b1", "b2")
VARIANTS = ("loop", "layer", "layer+ckpt", "nn.RNN")


@dataclass(frozen=True)
class Size:
    name: str
    T: int
    B: int
    D: int
    H: int
    O: int = 1

    def label(self) -> str:
        return f"T={self.T} B={self.B} D={self.D} H={self.H}"


GRID = (  # the grid of benchmarks/bench.py (issue 3)
    Size("seed", T=2, B=1, D=1, H=1),
    Size("scalar", T=1000, B=1, D=1, H=1),
    Size("small", T=100, B=32, D=8, H=32),
    Size("medium", T=100, B=64, D=64, H=256),
    Size("large", T=50, B=64, D=256, H=1024),
)


def make_problem(s: Size, seed: int = 0):
    rng = np.random.default_rng(seed)
    k = 1.0 / math.sqrt(s.H)
    shapes = {"w": (s.O, s.H), "w_x": (s.H, s.D), "w_h": (s.H, s.H), "b1": (s.H,), "b2": (s.O,)}
    p = {n: rng.uniform(-k, k, shp).astype(np.float32) for n, shp in shapes.items()}
    x = rng.uniform(-1, 1, (s.T, s.B, s.D)).astype(np.float32)  # (T, B, D)
    y = rng.uniform(0, 1, (s.T, s.B, s.O)).astype(np.float32)  # (T, B, O)
    return p, x, y


def reference(s: Size, p, x, y):
    """Loss and gradients from the float64 numpy engine."""
    import bptt

    m = bptt.RNN(s.D, s.H, s.O, dtype=np.float64)
    m.set_params(**{k: v.astype(np.float64) for k, v in p.items()})
    return m.loss_and_grad(x.astype(np.float64), y.astype(np.float64))


def make_variant(name: str, s: Size, p, x, y, device: str):
    """A function that runs one full gradient and returns (loss, {name: grad}) as numpy."""
    import torch

    from bptt.torch import SigmoidRNN

    X = torch.tensor(x, device=device)  # (T, B, D)
    Y = torch.tensor(y, device=device)  # (T, B, O)
    T, B = s.T, s.B
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def finish(loss, grads):
        sync()
        return float(loss.detach()), {k: g.detach().cpu().numpy() for k, g in grads.items()}

    if name == "loop":
        P = {k: torch.tensor(v, device=device, requires_grad=True) for k, v in p.items()}

        def run():
            for v in P.values():
                v.grad = None
            zx = X @ P["w_x"].T + P["b1"]  # (T, B, H)
            h = torch.zeros(B, s.H, device=device)
            hs = []
            for t in range(T):
                h = torch.sigmoid(zx[t] + h @ P["w_h"].T)
                hs.append(h)
            yp = torch.sigmoid(torch.stack(hs) @ P["w"].T + P["b2"])  # (T, B, O)
            loss = 0.5 * ((yp - Y) ** 2).sum() / (T * B)
            loss.backward()
            return finish(loss, {k: P[k].grad for k in PARAMS})

        return run
    if name in ("layer", "layer+ckpt"):
        m = SigmoidRNN(s.D, s.H, s.O, checkpoint="sqrt" if name == "layer+ckpt" else None, device=device)
        with torch.no_grad():
            for k, prm in m.named_parameters():
                prm.copy_(torch.from_numpy(p[k]))

        def run():
            m.zero_grad(set_to_none=True)
            loss = 0.5 * ((m(X) - Y) ** 2).sum() / (T * B)
            loss.backward()
            return finish(loss, {k: getattr(m, k).grad for k in PARAMS})

        return run
    if name == "nn.RNN":
        rnn = torch.nn.RNN(s.D, s.H, nonlinearity="tanh", device=device)
        lin = torch.nn.Linear(s.H, s.O, device=device)
        with torch.no_grad():
            rnn.weight_ih_l0.copy_(torch.from_numpy(p["w_x"]))
            rnn.weight_hh_l0.copy_(torch.from_numpy(p["w_h"]))
            rnn.bias_ih_l0.copy_(torch.from_numpy(p["b1"]))
            rnn.bias_hh_l0.zero_()
            lin.weight.copy_(torch.from_numpy(p["w"]))
            lin.bias.copy_(torch.from_numpy(p["b2"]))

        def run():
            rnn.zero_grad(set_to_none=True)
            lin.zero_grad(set_to_none=True)
            hs, _ = rnn(X)  # (T, B, H)
            loss = 0.5 * ((torch.sigmoid(lin(hs)) - Y) ** 2).sum() / (T * B)
            loss.backward()
            return finish(loss, {"w_x": rnn.weight_ih_l0.grad, "w_h": rnn.weight_hh_l0.grad, "b1": rnn.bias_ih_l0.grad,
                                 "w": lin.weight.grad, "b2": lin.bias.grad})

        return run
    raise ValueError(name)


def rel_error(got, ref) -> float:
    errs = [abs(got[0] - ref[0]) / max(abs(ref[0]), 1e-30)]
    for k in PARAMS:
        r = np.asarray(ref[1][k], np.float64)
        errs.append(float(np.max(np.abs(np.asarray(got[1][k], np.float64).reshape(r.shape) - r)) / max(float(np.max(np.abs(r))), 1e-30)))
    return max(errs)


def timeit(fn, budget_s: float, min_reps: int = 3, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < budget_s and len(times) < 10000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def saved_bytes(variant: str, s: Size, p, x, y, device: str = "cpu") -> int:
    """Bytes autograd keeps for backward during one gradient (each storage counted once)."""
    import torch

    seen: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
        return t

    fn = make_variant(variant, s, p, x, y, device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


# ------------------------------------------------------------------ peak memory, one fresh process per variant
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def memory_child(size: str, variant: str) -> None:
    import gc

    import torch

    torch.set_num_threads(int(os.environ.get("BPTT_BENCH_THREADS", os.cpu_count() or 1)))
    s = {g.name: g for g in GRID}[size]
    p, x, y = make_problem(s)
    fn = make_variant(variant, s, p, x, y, "cpu")
    fn()  # warm-up: lazy initialisation, thread pools
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current resident size
    before = _status_kib("VmRSS")
    fn()
    peak = _status_kib("VmHWM")
    print(json.dumps({"peak_kib": peak - before}))


def peak_rss(size: str, variant: str) -> float | None:
    """MiB that one gradient adds to the peak resident memory, in a fresh process; None where unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--_child", size, variant],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])["peak_kib"] / 1024


def cuda_peak(fn) -> float:
    import torch

    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


# ------------------------------------------------------------------ the table
def _t(v: float | None) -> str:
    if v is None:
        return "not measured"
    if v < 1e-3:
        return f"{v * 1e6:.0f} µs"
    if v < 1:
        return f"{v * 1e3:.2f} ms"
    return f"{v:.2f} s"


def _mib(v: float | None) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if v < 1 else f"{v:.1f}")


def machine() -> str:
    import torch

    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return f"{cpu}, {os.cpu_count()} logical cores; torch {torch.__version__}; {gpu}"


def run(sizes, quick: bool, memory: bool, out=print, threads: int | None = None) -> list[dict]:
    import torch

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    os.environ["BPTT_BENCH_THREADS"] = str(threads)  # for the fresh memory processes
    budget = 0.3 if quick else 2.0
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    out(f"machine: {machine()}; torch threads: {threads}")
    for dev in devices:
        for s in sizes:
            p, x, y = make_problem(s)
            ref = reference(s, p, x, y)
            row = {"device": dev, "size": s, "time": {}, "err": {}, "saved": {}, "peak": {}}
            for v in VARIANTS:
                fn = make_variant(v, s, p, x, y, dev)
                if v != "nn.RNN":  # nn.RNN computes tanh: nothing to compare
                    row["err"][v] = rel_error(fn(), ref)
                    if not row["err"][v] <= 2e-3:
                        raise RuntimeError(f"{dev} {s.label()} {v}: gradient disagrees with float64 numpy ({row['err'][v]:.1e})")
                row["time"][v] = timeit(fn, budget)
                row["saved"][v] = saved_bytes(v, s, p, x, y, dev) / 2**20
                if dev == "cuda":
                    row["peak"][v] = cuda_peak(fn)
                elif memory:
                    row["peak"][v] = peak_rss(s.name, v)
            rows.append(row)
            out(f"  {dev} {s.label()}: " + ", ".join(f"{v} {_t(row['time'][v])}" for v in VARIANTS))
    if "cuda" not in devices:
        rows += [{"device": "cuda", "size": s, "time": {}, "err": {}, "saved": {}, "peak": {}} for s in sizes]
    out("")
    out(table(rows))
    return rows


def table(rows) -> str:
    head = ("| device | size (O=1) | autograd loop | SigmoidRNN | SigmoidRNN √T ckpt | nn.RNN tanh (scale) "
            "| loop ÷ layer time | saved for backward, MiB: loop / layer / ckpt | loop ÷ layer saved "
            "| peak memory rise, MiB: loop / layer / ckpt | max rel. err vs float64 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        s, t, sv, pk = r["size"], r["time"], r["saved"], r["peak"]
        if not t:
            lines.append(f"| {r['device']} | {s.label()} | not measured | not measured | not measured | not measured "
                         "| not measured | not measured | not measured | not measured | not measured |")
            continue
        ratio = f"{t['loop'] / t['layer']:.1f}×"
        sratio = f"{sv['loop'] / sv['layer']:.1f}×" if sv["layer"] else "∞"
        peaks = " / ".join(_mib(pk.get(v)) for v in ("loop", "layer", "layer+ckpt"))
        err = ", ".join(f"{e:.0e}" for e in (r["err"][v] for v in ("loop", "layer", "layer+ckpt")))
        lines.append(f"| {r['device']} | {s.label()} | {_t(t['loop'])} | {_t(t['layer'])} | {_t(t['layer+ckpt'])} | "
                     f"{_t(t['nn.RNN'])} | {ratio} | {_mib(sv['loop'])} / {_mib(sv['layer'])} / {_mib(sv['layer+ckpt'])} | "
                     f"{sratio} | {peaks} | {err} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short timing budget (0.3 s per cell instead of 2 s)")
    ap.add_argument("--sizes", default=",".join(g.name for g in GRID), help="comma-separated subset of the grid")
    ap.add_argument("--no-memory", action="store_true", help="skip the fresh-process peak-memory measurements")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: every core)")
    ap.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        memory_child(*args._child)
        return 0
    by = {g.name: g for g in GRID}
    names = [n.strip() for n in args.sizes.split(",") if n.strip()]
    bad = [n for n in names if n not in by]
    if bad:
        print(f"error: unknown size(s) {bad}; choose from {', '.join(by)}", file=sys.stderr)
        return 2
    run([by[n] for n in names], args.quick, not args.no_memory, threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
