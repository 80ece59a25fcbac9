r"""``bptt.torch.SigmoidRNN`` against the hand-rolled autograd loop a PyTorch user writes.

    python benchmarks/bench_torch_layer.py [--quick] [--sizes seed,scalar,...] [--no-memory] [--threads N]

One full gradient (forward, the seed's mean loss, backward to all five parameters),
float32, sigmoid hidden and output units, O = 1, on the grid and problems of
``benchmarks/bench.py`` (``bptt.bench``: parameters U(-1/sqrt H, 1/sqrt H), x ~ U(-1, 1), y ~ U(0, 1);
the loop and layer builders are bptt.bench's too, shared with ``bptt bench``).

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
import os
import platform
import subprocess
import sys

from bptt.bench import GRID, Size, fmt_time, make_problem, reference, rel_error, torch_layer, torch_loop
from bptt.bench import timeit as _timeit

VARIANTS = ("loop", "layer", "layer+ckpt", "nn.RNN")


def make_variant(name: str, s: Size, p, x, y, device: str):
    """run(fetch=True) -> (loss, {name: grad}) as numpy for one full gradient; run(fetch=False) waits for
    the device and returns None (what is timed).  loop and layer are bptt.bench's builders (``bptt bench``)."""
    import torch

    if name == "loop":
        return torch_loop(s, p, x, y, device)
    if name in ("layer", "layer+ckpt"):
        return torch_layer(s, p, x, y, device, checkpoint="sqrt" if name == "layer+ckpt" else None)
    if name == "nn.RNN":
        X = torch.tensor(x, device=device)  # (T, B, D)
        Y = torch.tensor(y, device=device)  # (T, B, O)
        T, B = s.T, s.B
        rnn = torch.nn.RNN(s.D, s.H, nonlinearity="tanh", device=device)
        lin = torch.nn.Linear(s.H, s.O, device=device)
        with torch.no_grad():
            rnn.weight_ih_l0.copy_(torch.from_numpy(p["w_x"]))
            rnn.weight_hh_l0.copy_(torch.from_numpy(p["w_h"]))
            rnn.bias_ih_l0.copy_(torch.from_numpy(p["b1"]))
            rnn.bias_hh_l0.zero_()
            lin.weight.copy_(torch.from_numpy(p["w"]))
            lin.bias.copy_(torch.from_numpy(p["b2"]))

        def run(fetch: bool = True):
            rnn.zero_grad(set_to_none=True)
            lin.zero_grad(set_to_none=True)
            hs, _ = rnn(X)  # (T, B, H)
            loss = 0.5 * ((torch.sigmoid(lin(hs)) - Y) ** 2).sum() / (T * B)
            loss.backward()
            if not fetch:
                if device == "cuda":
                    torch.cuda.synchronize()
                return None
            grads = {"w_x": rnn.weight_ih_l0.grad, "w_h": rnn.weight_hh_l0.grad, "b1": rnn.bias_ih_l0.grad,
                     "w": lin.weight.grad, "b2": lin.bias.grad}
            return float(loss.detach()), {k: g.detach().cpu().numpy() for k, g in grads.items()}

        return run
    raise ValueError(name)


def timeit(fn, budget_s: float) -> float:
    """Median seconds of fn(fetch=False) after 2 warm-up calls, repeating until budget_s (at least 3)."""
    return _timeit(lambda: fn(fetch=False), budget_s, min_reps=3, warmup=2)


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
    prob = make_problem(s)
    p, x, y = prob["p"], prob["x"], prob["y"]
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
    return "not measured" if v is None else fmt_time(v)


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
            prob = make_problem(s)
            p, x, y = prob["p"], prob["x"], prob["y"]
            ref = reference(s, prob)
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
