r"""Benchmark: one full gradient (forward + backward, the loss and all five gradients).

Peers, in one process, float32, the seed's activations (sigmoid hidden, sigmoid output), O = 1, the
seed's loss 1/2 (y' - y)^2 (one row, "bce", binary cross-entropy instead: bptt's RNN(loss="bce"), the
peers' own BCE on the output's pre-activation u, the layer's torch.nn.functional.binary_cross_entropy):

    bptt     RNN.loss_and_grad(x, y) with backend="auto" (the public call, validation included)
    PyTorch  eager: input projection as one matmul, a Python loop over t, output projection
             as one matmul, loss.backward(); torch.set_num_threads(os.cpu_count())
    JAX      jax.jit(jax.value_and_grad(loss)) with the recurrence in lax.scan
    layer    bptt.torch.SigmoidRNN (this library's BPTT as a PyTorch layer's backward): forward,
             the same loss in torch, loss.backward() to the five parameters; on the CPU
             (torch.set_num_threads(os.cpu_count())) and, where torch.cuda.is_available(),
             on CUDA as a second column (timed up to torch.cuda.synchronize())

"bptt ÷ fastest peer" is over PyTorch eager and JAX (the peers users compare against); the layer
gets its own ratio, PyTorch eager ÷ layer (both on the CPU).

Before timing, each peer's loss and gradients are checked against the numpy reference
engine in float64 (rel. error = max |g - g_ref| / max |g_ref| over the five gradients).
Times are medians of repeats after warm-up.  GFLOP/s counts the multiply-adds of the
matrix products only, 2 T B (3 H^2 + 2 H D + 3 H O) per gradient, the same count for
every peer; the float32 GEMM peak is the best of several numpy matmuls of 2048 x 2048
matrices, measured in the same run.  A peer that is not installed shows as "absent".

The limit: beside each row, the best this machine can do on the work every gradient of that size
must do, by a model whose inputs are measured in the same run (``bptt.limits``, whose docstring
has the model in full): the call from Python into compiled code with the caller's arguments; for
the scalar network (B = D = H = O = 1) the latency of the dependent chain per step (forward a
multiply-add, exp, add and divide, backward a multiply-add and multiply), timed by a micro-kernel
of exactly that chain, times T; for batched sizes the 2 T dependent per-step products (B, H) x
(H, H), the products over all T B rows (input and output projections, the error into h, dW_h,
dW_x, dW) and the elementwise passes (sigmoids, derivative products), each timed alone at the
row's shape and dtype, by the fastest of BLAS (on its default threads and on one thread, in a
child process) and compiled loops, best of repeats.  The limit is the sum of its parts, so it
scales with T; "bptt % of limit" is 100 x limit ÷ bptt's time (100 % = at the limit; a kernel
that overlaps the parts can pass it).  ``bptt bench --train`` adds the training run's limit: the
sum over its mini-batches (and each epoch's validation forward pass) of the same parts, float64,
with one call for the whole run.

``bptt bench --memory`` instead runs the checkpointing demonstrations, each in a fresh
process, and prints their peak resident memory during the gradient call (Linux's VmHWM,
reset just before the call; the process's lifetime peak where that is not allowed).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .engine import PARAM_NAMES as PARAMS, param_shapes


@dataclass(frozen=True)
class Size:
    name: str
    T: int
    B: int
    D: int
    H: int
    O: int = 1
    # how bptt is called: "auto" (1-D for one scalar sequence, else (T, B, D)), "3d" (always (T, B, D)) or
    # "list" (one scalar sequence as two Python lists of numbers)
    form: str = "auto"
    loss: str = "squared_error"  # or "bce" (binary cross-entropy)

    @property
    def flops(self) -> float:
        """2 x multiply-adds of every matrix product in one forward + backward."""
        return 2.0 * self.T * self.B * (3 * self.H**2 + 2 * self.H * self.D + 3 * self.H * self.O)

    @property
    def serial_call(self) -> bool:
        """Whether bptt is called with 1-D (T,) x and y (arrays or lists): the seed's scalar sequence, as a user passes it."""
        return self.B == 1 and self.D == 1 and self.O == 1 and self.form in ("auto", "list")

    def call_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The shapes of x and y in bptt's call."""
        if self.serial_call:
            return (self.T,), (self.T,)
        return (self.T, self.B, self.D), (self.T, self.B, self.O)

    def label(self) -> str:
        return (f"T={self.T} B={self.B} D={self.D} H={self.H}" + {"3d": " (T, B, D) input", "list": " list input"}.get(self.form, "")
                + (f" {self.loss}" if self.loss != "squared_error" else ""))


GRID = (
    Size("seed", T=2, B=1, D=1, H=1),
    Size("seed3d", T=2, B=1, D=1, H=1, form="3d"),
    Size("seedlist", T=2, B=1, D=1, H=1, form="list"),
    Size("scalar", T=1000, B=1, D=1, H=1),
    Size("scalar3d", T=1000, B=1, D=1, H=1, form="3d"),
    Size("scalarlist", T=1000, B=1, D=1, H=1, form="list"),
    Size("h4", T=100, B=32, D=2, H=4),
    Size("h8", T=100, B=32, D=2, H=8),
    Size("h8long", T=1000, B=32, D=2, H=8),
    Size("h16", T=100, B=32, D=8, H=16),
    Size("h16bce", T=100, B=32, D=8, H=16, loss="bce"),
    Size("small", T=100, B=32, D=8, H=32),
    Size("h64", T=100, B=32, D=8, H=64),
    Size("medium", T=100, B=64, D=64, H=256),
    Size("large", T=50, B=64, D=256, H=1024),
)


# ------------------------------------------------------------------ problems and peers
def make_problem(s: Size, seed: int = 0) -> dict[str, Any]:
    """Parameters ~ U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's RNN init), x ~ U(-1, 1), y ~ U(0, 1); float32."""
    rng = np.random.default_rng(seed)
    k = 1.0 / math.sqrt(s.H)
    shapes = param_shapes(s.D, s.H, s.O)  # w, w_x, w_h, b1, b2: the draws' order
    p = {n: rng.uniform(-k, k, shp).astype(np.float32) for n, shp in shapes.items()}
    x = rng.uniform(-1, 1, (s.T, s.B, s.D)).astype(np.float32)  # (T, B, D)
    y = rng.uniform(0, 1, (s.T, s.B, s.O)).astype(np.float32)  # (T, B, O)
    return {"p": p, "x": x, "y": y}


def reference(s: Size, prob) -> tuple[float, dict[str, np.ndarray]]:
    """The numpy reference engine in float64."""
    from .model import RNN

    m = RNN(s.D, s.H, s.O, dtype=np.float64, loss=s.loss)
    m.set_params(**{k: v.astype(np.float64) for k, v in prob["p"].items()})
    return m.loss_and_grad(prob["x"].astype(np.float64), prob["y"].astype(np.float64), backend="numpy")


def bptt_peer(s: Size, prob) -> Callable[[], tuple[float, dict[str, np.ndarray]]]:
    from .model import RNN

    m = RNN(s.D, s.H, s.O, dtype=np.float32, loss=s.loss)
    m.set_params(**prob["p"])
    x, y = prob["x"], prob["y"]
    if s.serial_call:
        x, y = x[:, 0, 0].copy(), y[:, 0, 0].copy()  # (T,): the seed's scalar sequence, as a user passes it
        if s.form == "list":
            x, y = x.tolist(), y.tolist()
    return lambda: m.loss_and_grad(x, y)


def _finish(loss, grads: dict, fetch: bool):
    """(loss, {name: grad}) as float and numpy arrays; with fetch=False only wait for the device (for timing)."""
    if not fetch:
        if loss.device.type == "cuda":
            import torch

            torch.cuda.synchronize(loss.device)
        return None
    return float(loss.detach()), {k: g.detach().cpu().numpy() for k, g in grads.items()}


def _torch_loss(s: Size, u, yp, Y):
    """The mean loss of outputs y' = sigmoid(u) as a PyTorch user writes it: 1/2 sum (y' - y)^2 / (T B), or
    binary cross-entropy from u (binary_cross_entropy_with_logits) where u is given, else from y'."""
    import torch.nn.functional as F

    if s.loss == "bce":
        if u is not None:
            return F.binary_cross_entropy_with_logits(u, Y, reduction="sum") / (s.T * s.B)
        return F.binary_cross_entropy(yp, Y, reduction="sum") / (s.T * s.B)
    return 0.5 * ((yp - Y) ** 2).sum() / (s.T * s.B)


def torch_loop(s: Size, p: dict, x: np.ndarray, y: np.ndarray, device: str = "cpu"):
    """The loop a PyTorch user writes, recorded by autograd: input projection as one matmul,
    h = sigmoid(zx_t + h w_h^T) per step in Python, output projection as one matmul,
    loss = 1/2 sum (y' - y)^2 / (T B) (or BCE, ``_torch_loss``), loss.backward().  p: numpy parameters, x (T, B, D),
    y (T, B, O).  Returns run(fetch=True) -> (loss, {name: grad as numpy}); run(fetch=False)
    returns None once the device has finished (for timing).  Sets no thread count: the caller does."""
    import torch

    P = {k: torch.tensor(v, device=device, requires_grad=True) for k, v in p.items()}
    X = torch.tensor(x, device=device)  # (T, B, D)
    Y = torch.tensor(y, device=device)  # (T, B, O)
    T, B = s.T, s.B

    def run(fetch: bool = True):
        for v in P.values():
            v.grad = None
        zx = X @ P["w_x"].T + P["b1"]  # (T, B, H): input projection for all t
        h = torch.zeros(B, s.H, device=device)  # (B, H)
        hs = []
        for t in range(T):
            h = torch.sigmoid(zx[t] + h @ P["w_h"].T)
            hs.append(h)
        u = torch.stack(hs) @ P["w"].T + P["b2"]  # (T, B, O)
        loss = _torch_loss(s, u, torch.sigmoid(u), Y)
        loss.backward()
        return _finish(loss, {k: P[k].grad for k in PARAMS}, fetch)

    return run


def torch_layer(s: Size, p: dict, x: np.ndarray, y: np.ndarray, device: str = "cpu", checkpoint=None):
    """bptt.torch.SigmoidRNN with parameters p: forward, the loss of ``torch_loop``, loss.backward()
    (this library's BPTT).  Same arguments and returned run(fetch) as ``torch_loop``."""
    import torch

    from .torch import SigmoidRNN

    m = SigmoidRNN(s.D, s.H, s.O, checkpoint=checkpoint, device=device)
    with torch.no_grad():
        for k, prm in m.named_parameters():
            prm.copy_(torch.from_numpy(p[k]))
    X = torch.tensor(x, device=device)  # (T, B, D)
    Y = torch.tensor(y, device=device)  # (T, B, O)

    def run(fetch: bool = True):
        m.zero_grad(set_to_none=True)
        loss = _torch_loss(s, None, m(X), Y)
        loss.backward()
        return _finish(loss, {k: getattr(m, k).grad for k in PARAMS}, fetch)

    return run


def _torch_threads() -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)


def torch_peer(s: Size, prob):
    _torch_threads()
    return torch_loop(s, prob["p"], prob["x"], prob["y"])


def layer_peer(s: Size, prob):
    _torch_threads()
    return torch_layer(s, prob["p"], prob["x"], prob["y"])


def layer_cuda_peer(s: Size, prob):
    return torch_layer(s, prob["p"], prob["x"], prob["y"], device="cuda")


def jax_peer(s: Size, prob):
    import jax
    import jax.numpy as jnp

    T, B = s.T, s.B

    def loss_fn(p, x, y):
        zx = x @ p["w_x"].T + p["b1"]  # (T, B, H)

        def step(h, z):
            h = jax.nn.sigmoid(z + h @ p["w_h"].T)
            return h, h

        _, hs = jax.lax.scan(step, jnp.zeros((B, s.H), jnp.float32), zx)  # (T, B, H)
        u = hs @ p["w"].T + p["b2"]  # (T, B, O)
        if s.loss == "bce":  # from u, stably: max(u, 0) - u y + log(1 + e^-|u|)
            return jnp.sum(jnp.maximum(u, 0) - u * y + jnp.log1p(jnp.exp(-jnp.abs(u)))) / (T * B)
        return 0.5 * jnp.sum((jax.nn.sigmoid(u) - y) ** 2) / (T * B)

    f = jax.jit(jax.value_and_grad(loss_fn))
    P = {k: jnp.asarray(v) for k, v in prob["p"].items()}
    x, y = jnp.asarray(prob["x"]), jnp.asarray(prob["y"])

    def run():
        loss, g = f(P, x, y)
        jax.block_until_ready(g)
        return float(loss), {k: np.asarray(g[k]) for k in PARAMS}

    return run


PEERS: dict[str, Callable] = {"bptt": bptt_peer, "PyTorch": torch_peer, "JAX": jax_peer,
                               "layer": layer_peer, "layer-CUDA": layer_cuda_peer}
PEER_MODULES = {"bptt": None, "PyTorch": "torch", "JAX": "jax", "layer": "torch", "layer-CUDA": "torch"}
TORCH_PEERS = ("PyTorch", "layer", "layer-CUDA")  # their run(fetch=False) is what is timed


def available(peer: str) -> bool:
    import importlib.util

    mod = PEER_MODULES[peer]
    if mod is not None and importlib.util.find_spec(mod) is None:
        return False
    return peer != "layer-CUDA" or _cuda_available()


def _cuda_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def cuda_note() -> str | None:
    """The line printed instead of the CUDA column where there is none; None where CUDA is measured."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "CUDA: not measured (torch not installed)"
    return None if _cuda_available() else "CUDA: not measured (no CUDA device)"


def rel_error(got: tuple[float, dict], ref: tuple[float, dict]) -> float:
    """max over (loss, five gradients) of max |got - ref| / max |ref|."""
    errs = [abs(got[0] - ref[0]) / max(abs(ref[0]), 1e-30)]
    for k in PARAMS:
        r = np.asarray(ref[1][k], np.float64)
        g = np.asarray(got[1][k], np.float64).reshape(r.shape)
        errs.append(float(np.max(np.abs(g - r)) / max(float(np.max(np.abs(r))), 1e-30)))
    return max(errs)


def timeit(fn: Callable[[], Any], budget_s: float, min_reps: int = 5, warmup: int = 3) -> float:
    """Median seconds per call after warm-up, repeating until budget_s (at least min_reps)."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < budget_s and len(times) < 100000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gemm_peak(n: int = 2048, reps: int = 7) -> float:
    """Measured float32 GEMM peak (GFLOP/s) of numpy's BLAS: the best of reps n x n x n products
    (the best, not the median, so that "% of peak" is never flattered by a slow repeat)."""
    a = np.random.default_rng(1).random((n, n), dtype=np.float32)
    b = np.random.default_rng(2).random((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


# ------------------------------------------------------------------ machine description
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    import numba

    parts = [f"{cpu}, {os.cpu_count()} cores{mem}", f"Python {platform.python_version()}",
             f"numpy {np.__version__}", f"numba {numba.__version__}"]
    for mod in ("torch", "jax"):
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            parts.append(f"{mod} absent")
    if _cuda_available():
        import torch

        parts.append(f"CUDA: {torch.cuda.get_device_name(0)}")
    try:
        from threadpoolctl import threadpool_info

        blas = sorted({f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, {i.get('num_threads')} threads)"
                       for i in threadpool_info() if i.get("user_api") == "blas"})
        parts.append("BLAS: " + "; ".join(blas))
    except ImportError:
        pass
    env = [f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS") if k in os.environ]
    parts.append("env: " + (" ".join(env) if env else "OPENBLAS_* unset"))
    try:
        parts.append("load average %.2f %.2f %.2f (other processes share the cores)" % os.getloadavg())
    except OSError:
        pass
    return "; ".join(parts)


# ------------------------------------------------------------------ the run
def fmt_time(t: float | None) -> str:
    if t is None:
        return "absent"
    if t < 1e-3:
        return f"{t * 1e6:.1f} µs"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def door_kernel(s: Size) -> str:
    """The kernel the public float32 call runs: a whole-sequence call's (lanes, loop) or the size rule's."""
    from . import dispatch

    if s.B == 1 and s.D == 1 and s.H == 1 and s.O == 1:
        return "scalar"
    return dispatch.fast_kernel(s.B, s.H) or dispatch.choose_kernel(s.T, s.B, s.D, s.H, s.O)


def run_grid(sizes: list[Size], quick: bool, out=print, agree_tol: float = 2e-3) -> dict[str, Any]:
    """Time every peer on every size; print the Markdown table and the targets.  Returns the numbers."""
    from . import kernels  # numba compile (or cache load) before any timing

    budget = 0.2 if quick else 2.0
    peers = [p for p in PEERS if available(p)]
    out(f"machine: {machine()}")
    n = 1024 if quick else 2048
    peak_before = gemm_peak(n, 3 if quick else 10)
    rows = []
    for s in sizes:
        prob = make_problem(s)
        ref = reference(s, prob)
        row: dict[str, Any] = {"size": s, "times": {}, "errors": {},
                               "kernel": door_kernel(s)}
        fns = {}
        for p in PEERS:
            if p not in peers:
                row["times"][p] = None
                continue
            fns[p] = PEERS[p](s, prob)
            row["errors"][p] = rel_error(fns[p](), ref)
        bad = {p: e for p, e in row["errors"].items() if not e <= agree_tol}
        if bad:
            raise RuntimeError(f"{s.label()}: gradients disagree with the float64 reference: {bad}")
        for p, fn in fns.items():
            timed = (lambda f=fn: f(fetch=False)) if p in TORCH_PEERS else fn
            row["times"][p] = timeit(timed, budget)
        rows.append(row)
    from . import limits  # numba: only when a limit is measured, not when the command line is built

    for row, lim in zip(rows, limits.measure([("gradient", limit_request(r["size"], quick)) for r in rows])):
        row["limit"] = lim
    peak_after = gemm_peak(n, 3 if quick else 10)
    peak = max(peak_before, peak_after)  # the higher of two measurements: load only ever lowers it
    out(f"float32 GEMM peak (numpy matmul, {n}^3, best of repeats): {peak:.1f} GFLOP/s "
        f"(before the grid {peak_before:.1f}, after {peak_after:.1f})")
    out("")
    out(table(rows, peak))
    note = cuda_note()
    if note:
        out("")
        out(note)
    out("")
    for line in targets(rows, peak):
        out(line)
    return {"peak": peak, "rows": rows}


def limit_request(s: Size, quick: bool) -> dict[str, Any]:
    """limits.gradient_limit's arguments for bptt's call at this size (float32, x and y as bptt_peer passes them)."""
    x_shape, y_shape = s.call_shapes()
    return {"T": s.T, "B": s.B, "D": s.D, "H": s.H, "O": s.O, "dtype": "float32", "x_shape": x_shape,
            "y_shape": y_shape, "lists": s.form == "list", "budget": 0.01 if quick else 0.1}


def percent_of_limit(row) -> float | None:
    """100 x limit ÷ bptt's time (100 = at the limit); None where no limit was measured."""
    lim = row.get("limit")
    return None if lim is None else 100.0 * lim.seconds / row["times"]["bptt"]


LAYER_COLUMNS = {"layer": "bptt.torch layer (CPU)", "layer-CUDA": "bptt.torch layer (CUDA)"}


def table(rows, peak: float) -> str:
    """The Markdown table; the CUDA layer column only where some row measured it."""
    layers = ["layer"] + (["layer-CUDA"] if any(r["times"].get("layer-CUDA") is not None for r in rows) else [])
    cols = (["size (T, B, D, H; O=1)", "kernel", "bptt", "limit", "bptt % of limit", "PyTorch eager", "JAX jit"]
            + [LAYER_COLUMNS[p] for p in layers]
            + ["bptt ÷ fastest peer", "PyTorch ÷ bptt", "JAX ÷ bptt", "PyTorch eager ÷ layer",
               "bptt GFLOP/s (% of GEMM peak)", "max rel. error vs float64"])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        s, t = r["size"], r["times"]
        mine = t["bptt"]
        peers = [t[p] for p in ("PyTorch", "JAX") if t.get(p) is not None]
        best = min(peers) if peers else None
        ratio = f"{mine / best:.2f}" if best else "no peer"
        vs = {p: (f"{t[p] / mine:.1f}×" if t.get(p) is not None else "absent") for p in ("PyTorch", "JAX")}
        vs_layer = f"{t['PyTorch'] / t['layer']:.1f}×" if t.get("PyTorch") and t.get("layer") else "absent"
        gf = s.flops / mine / 1e9
        err = ", ".join(f"{p} {e:.0e}" for p, e in r["errors"].items())
        pct = percent_of_limit(r)
        lim = [fmt_time(r["limit"].seconds), f"{pct:.0f} %"] if pct is not None else ["not measured"] * 2
        cells = ([s.label(), r["kernel"], fmt_time(mine)] + lim + [fmt_time(t.get(p)) for p in ("PyTorch", "JAX", *layers)]
                 + [ratio, vs["PyTorch"], vs["JAX"], vs_layer, f"{gf:.2f} ({100 * gf / peak:.0f} %)", err])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(rows, peak: float) -> list[str]:
    """The speed targets, each marked met / NOT met with the measured ratio."""
    lines = ["Speed targets:"]

    def mark(ok):
        return "met" if ok else "NOT met"

    for r in rows:
        s, t = r["size"], r["times"]
        mine = t["bptt"]
        pct = percent_of_limit(r)
        if pct is not None:
            lines.append(f"- {s.label()}: >= 70 % of its limit ({fmt_time(r['limit'].seconds)}): {pct:.0f} %, {mark(pct >= 70)}")
        peers = {p: t[p] for p in ("PyTorch", "JAX") if t.get(p) is not None}
        if peers:
            best = min(peers.values())
            lines.append(f"- {s.label()}: at most as slow as the fastest peer: {mine / best:.2f}× its time, {mark(mine <= best)}")
        if s.H <= 8 and "JAX" in peers:
            lines.append(f"- {s.label()}: >= 10× faster than JAX: {peers['JAX'] / mine:.1f}×, {mark(peers['JAX'] >= 10 * mine)}")
        if 16 <= s.H <= 64 and s.B == 32 and "JAX" in peers:
            lines.append(f"- {s.label()}: >= 3× faster than JAX: {peers['JAX'] / mine:.1f}×, {mark(peers['JAX'] >= 3 * mine)}")
        if s.H >= 256 and t.get("layer") is not None:
            lines.append(f"- {s.label()}: not slower than the bptt.torch layer (CPU): {t['layer'] / mine:.2f}×, "
                         f"{mark(mine <= t['layer'])}")
        if s.H <= 8 and "PyTorch" in peers:
            lines.append(f"- {s.label()}: >= 100× faster than PyTorch eager: {peers['PyTorch'] / mine:.0f}×, "
                         f"{mark(peers['PyTorch'] >= 100 * mine)}")
    big = sorted(rows, key=lambda r: r["size"].flops)[-2:]
    for r in big:
        if r["size"].H >= 256:
            frac = r["size"].flops / r["times"]["bptt"] / 1e9 / peak
            lines.append(f"- {r['size'].label()}: >= 80 % of the GEMM peak: {100 * frac:.0f} %, {mark(frac >= 0.8)}")
    return lines


# ------------------------------------------------------------------ training (bptt train --task binary-addition)
def _train_setup(epochs: int):
    """The task's defaults (8 bits, H = 8, Adam 0.05, clip 1, B = 32), float64; data, config, initial
    parameters and every epoch's mini-batch order (the loop's own: rng([seed, epoch]))."""
    from .train import config_for, init_model, load_task

    cfg = config_for("binary-addition", {}, epochs=epochs, seed=0)
    data = load_task(cfg)
    p0 = init_model(cfg, data).params()
    N = data.train.n
    orders = [np.random.default_rng([cfg.seed, e]).permutation(N) for e in range(1, epochs + 1)]
    return cfg, data, p0, orders


def _exact(data, predict) -> int:
    """Test pairs added exactly by predict(x (T, N, 2)) -> y' (T, N, 1)."""
    from .tasks import bits_to_int

    te = data.test
    return int(np.sum(bits_to_int(predict(te.x)[..., 0] > 0.5) == bits_to_int(te.y[..., 0] > 0.5)))


def train_bptt(epochs: int) -> tuple[float, int]:
    """``bptt.train.train`` as ``bptt train`` runs it (validation every epoch, test metrics at the end)."""
    from .train import config_for, train

    cfg = config_for("binary-addition", {}, epochs=epochs, seed=0)
    t0 = time.perf_counter()
    res = train(cfg)
    return time.perf_counter() - t0, int(res.metrics["test_pairs_exact"])


def train_torch(epochs: int) -> tuple[float, int]:
    """The PyTorch user's loop: autograd through a Python loop over t, clip_grad_norm_, torch.optim.Adam;
    same initial parameters, same mini-batches (no validation pass: that only flatters it)."""
    import torch

    cfg, data, p0, orders = _train_setup(epochs)
    _torch_threads()
    P = {k: torch.tensor(v, requires_grad=True) for k, v in p0.items()}
    opt = torch.optim.Adam(P.values(), lr=cfg.lr, betas=tuple(cfg.adam.betas), eps=cfg.adam.eps)
    X, Y = torch.from_numpy(data.train.x), torch.from_numpy(data.train.y)  # (T, N, 2), (T, N, 1)

    def predict(x):
        zx = x @ P["w_x"].T + P["b1"]  # (T, B, H)
        h = torch.zeros(x.shape[1], cfg.hidden_size, dtype=x.dtype)
        hs = []
        for t in range(x.shape[0]):
            h = torch.sigmoid(zx[t] + h @ P["w_h"].T)
            hs.append(h)
        return torch.sigmoid(torch.stack(hs) @ P["w"].T + P["b2"])  # (T, B, 1)

    t0 = time.perf_counter()
    for order in orders:
        for i in range(0, len(order), cfg.batch_size):
            idx = torch.from_numpy(order[i : i + cfg.batch_size])
            x, y = X[:, idx], Y[:, idx]
            opt.zero_grad(set_to_none=True)
            loss = 0.5 * ((predict(x) - y) ** 2).sum() / (x.shape[0] * x.shape[1])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(P.values(), cfg.clip)
            opt.step()
    secs = time.perf_counter() - t0
    with torch.no_grad():
        return secs, _exact(data, lambda x: predict(torch.from_numpy(x)).numpy())


def _jax_trainer(cfg):
    """(predict(p, x), update(p, m, v, t, x, y) -> (p, m, v, loss)): value_and_grad over lax.scan,
    global-norm clipping, the same Adam written out; float64 (jax_enable_x64)."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    b1, b2 = cfg.adam.betas

    def predict(p, x):
        zx = x @ p["w_x"].T + p["b1"]  # (T, B, H)

        def step(h, z):
            h = jax.nn.sigmoid(z + h @ p["w_h"].T)
            return h, h

        _, hs = jax.lax.scan(step, jnp.zeros((x.shape[1], cfg.hidden_size), x.dtype), zx)
        return jax.nn.sigmoid(hs @ p["w"].T + p["b2"])

    def loss_fn(p, x, y):
        return 0.5 * jnp.sum((predict(p, x) - y) ** 2) / (x.shape[0] * x.shape[1])

    def update(p, m, v, t, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        norm = jnp.sqrt(sum(jnp.sum(a * a) for a in jax.tree_util.tree_leaves(g)))
        s = jnp.where(norm > cfg.clip, cfg.clip / (norm + 1e-12), 1.0)
        g = jax.tree_util.tree_map(lambda a: a * s, g)
        m = jax.tree_util.tree_map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
        v = jax.tree_util.tree_map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
        c1, c2 = 1 - b1**t, 1 - b2**t
        p = jax.tree_util.tree_map(lambda q, a, b: q - (cfg.lr / c1) * a / (jnp.sqrt(b) / jnp.sqrt(c2) + cfg.adam.eps), p, m, v)
        return p, m, v, loss

    return predict, update


def _jax_state(p0):
    import jax.numpy as jnp

    p = {k: jnp.asarray(a) for k, a in p0.items()}
    return p, {k: jnp.zeros_like(a) for k, a in p.items()}, {k: jnp.zeros_like(a) for k, a in p.items()}


def train_jax(epochs: int) -> tuple[float, int]:
    """A jit-compiled JAX train step (``_jax_trainer``'s update), called once per mini-batch; same initial
    parameters and mini-batches; compiled before the clock starts."""
    import jax
    import jax.numpy as jnp

    cfg, data, p0, orders = _train_setup(epochs)
    predict, update = _jax_trainer(cfg)
    train_step = jax.jit(update)
    p, m, v = _jax_state(p0)
    X, Y = data.train.x, data.train.y
    sizes = sorted({len(o[i : i + cfg.batch_size]) for o in orders[:1] for i in range(0, len(o), cfg.batch_size)})
    for n in sizes:  # compile every batch shape before timing
        jax.block_until_ready(train_step(p, m, v, 1.0, jnp.asarray(X[:, :n]), jnp.asarray(Y[:, :n])))
    t0 = time.perf_counter()
    t = 0
    for order in orders:
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            t += 1
            p, m, v, _ = train_step(p, m, v, float(t), X[:, idx], Y[:, idx])
    jax.block_until_ready(p)
    secs = time.perf_counter() - t0
    return secs, _exact(data, lambda x: np.asarray(predict(p, jnp.asarray(x))))


def train_jax_scan(epochs: int) -> tuple[float, int]:
    """A JAX expert's loop: each epoch one jit-compiled call, its full mini-batches in one lax.scan of
    ``_jax_trainer``'s update (the batch gathered inside) and the short last one after it; same initial
    parameters, mini-batches, clipping and Adam; compiled before the clock starts."""
    import jax
    import jax.numpy as jnp

    cfg, data, p0, orders = _train_setup(epochs)
    predict, update = _jax_trainer(cfg)
    X, Y = jnp.asarray(data.train.x), jnp.asarray(data.train.y)  # (T, N, D), (T, N, O)
    bs, N = cfg.batch_size, data.train.n
    full = N // bs * bs

    @jax.jit
    def epoch(p, m, v, t, order):
        def body(carry, idx):
            p, m, v, t = carry
            p, m, v, loss = update(p, m, v, t + 1, X[:, idx], Y[:, idx])
            return (p, m, v, t + 1), loss

        (p, m, v, t), _ = jax.lax.scan(body, (p, m, v, t), order[:full].reshape(-1, bs))
        if full < N:
            p, m, v, _ = update(p, m, v, t + 1, X[:, order[full:]], Y[:, order[full:]])
            t = t + 1
        return p, m, v, t

    p, m, v = _jax_state(p0)
    jorders = [jnp.asarray(o) for o in orders]
    jax.block_until_ready(epoch(p, m, v, 0.0, jorders[0]))  # compiled before timing
    t0 = time.perf_counter()
    t = 0.0
    for order in jorders:
        p, m, v, t = epoch(p, m, v, t, order)
    jax.block_until_ready(p)
    secs = time.perf_counter() - t0
    return secs, _exact(data, lambda x: np.asarray(predict(p, jnp.asarray(x))))


def train_limit_request(epochs: int, quick: bool) -> dict[str, Any]:
    """limits.train_limit's arguments for the run train_bptt times: its data's shapes, one epoch's mini-batch
    sizes, its dtype."""
    cfg, data, _, orders = _train_setup(1)
    T, N, D = data.train.x.shape
    return {"T": T, "batches": [len(orders[0][i : i + cfg.batch_size]) for i in range(0, N, cfg.batch_size)],
            "epochs": epochs, "val_n": data.val.x.shape[1], "test_n": data.test.x.shape[1], "D": D,
            "H": cfg.hidden_size, "O": data.train.y.shape[2], "dtype": cfg.dtype, "budget": 0.01 if quick else 0.1}


TRAIN_PEERS = {"bptt train": (train_bptt, None), "PyTorch autograd loop": (train_torch, "torch"),
               "JAX jit train step": (train_jax, "jax"), "JAX jit epoch scan": (train_jax_scan, "jax")}


def run_train(epochs: int, repeats: int, out=print) -> dict[str, Any]:
    """Time each trainer ``repeats`` times (median), interleaved; print one Markdown row per trainer and
    the run's limit (limits.train_limit)."""
    import importlib.util

    from . import kernels  # noqa: F401  (numba loaded, as for the grid)

    train_bptt(1)  # warm: compiled code loaded, data path exercised
    times: dict[str, list[float]] = {k: [] for k in TRAIN_PEERS}
    exact: dict[str, int] = {}
    for _ in range(repeats):
        for name, (fn, mod) in TRAIN_PEERS.items():
            if mod is not None and importlib.util.find_spec(mod) is None:
                continue
            secs, exact[name] = fn(epochs)
            times[name].append(secs)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    from . import limits

    (lim,) = limits.measure([("train", train_limit_request(epochs, repeats == 1))])
    out(f"training: binary-addition, 8 bits, H = 8, Adam lr 0.05, clip 1, B = 32, {epochs} epochs "
        f"({epochs * 32} updates), float64, one process; median of {repeats} runs, interleaved")
    out("")
    out("| trainer | time (median) | all runs | test pairs exact (of 1000) | ÷ bptt train |")
    out("|---|---|---|---|---|")
    mine = med.get("bptt train")
    for name in TRAIN_PEERS:
        if name not in med:
            out(f"| {name} | absent | | | |")
            continue
        runs = ", ".join(fmt_time(t) for t in times[name])
        out(f"| {name} | {fmt_time(med[name])} | {runs} | {exact[name]} | {med[name] / mine:.1f}× |")
    out(f"| limit ({lim.model}; bptt.limits) | {fmt_time(lim.seconds)} | | | {lim.seconds / mine:.2f}× |")
    out("")
    pct = 100.0 * lim.seconds / mine
    out(f"bptt train at {pct:.1f} % of its limit (limit ÷ bptt train).  The limit's largest parts: "
        + "; ".join(f"{p.name} {fmt_time(p.total)}" for p in sorted(lim.parts, key=lambda p: -p.total)[:3]))
    out("")
    out("Training targets:")
    for name, want in (("PyTorch autograd loop", 50), ("JAX jit epoch scan", 5)):
        if name in med:
            r = med[name] / mine
            out(f"- >= {want}× faster than the {name}: {r:.1f}×, {'met' if r >= want else 'NOT met'}")
    return {"times": times, "exact": exact, "limit": lim}


# ------------------------------------------------------------------ memory (checkpointing)
MEMORY_RUNS = (
    # name, T, B, D, H, checkpoint, dtype
    ("scalar, checkpoint='sqrt'", 10_000_000, 1, 1, 1, "sqrt", "float32"),
    ("scalar, no checkpointing", 10_000_000, 1, 1, 1, None, "float32"),
    ("batched, checkpoint='sqrt'", 100_000, 64, 1, 256, "sqrt", "float32"),
)


def _rss_kib() -> tuple[int, int]:
    """(current RSS, peak RSS since the last reset) in KiB, from /proc/self/status (Linux)."""
    cur = hwm = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cur, hwm


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_child(T: int, B: int, D: int, H: int, checkpoint: str | None, dtype: str) -> None:
    """Run one gradient; print 'rss_before peak_during seconds stored_states loss' (KiB, KiB, s).

    peak_during is the process's peak RSS while the gradient ran (VmHWM reset just before
    the call); where the reset is not allowed, the lifetime peak (resource.getrusage).
    """
    import resource

    from . import dispatch as ck
    from . import kernels  # noqa: F401  (numba loaded before the baseline is read)
    from .model import RNN

    dt = np.dtype(dtype)
    m = RNN(D, H, 1, dtype=dt, seed=0)
    rng = np.random.default_rng(0)
    shape = (T,) if B == 1 and D == 1 else (T, B, D)
    yshape = (T,) if len(shape) == 1 else (T, B, 1)
    x = (2 * rng.random(shape, dtype=np.float32) - 1).astype(dt, copy=False)  # the caller's input: T B D numbers
    y = rng.random(yshape, dtype=np.float32).astype(dt, copy=False)
    m.loss_and_grad(x[:3], y[:3], checkpoint=checkpoint, backend="numba")  # compiled code loaded before measuring
    reset = _reset_peak()
    before, _ = _rss_kib()
    t0 = time.perf_counter()
    loss, grads = m.loss_and_grad(x, y, checkpoint=checkpoint, backend="numba")
    secs = time.perf_counter() - t0
    peak = _rss_kib()[1] if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    k = ck.segment_length(T, checkpoint)
    print(before, peak, f"{secs:.3f}", ck.stored_states(T, k), f"{loss:.6g}", flush=True)


def run_memory(out=print) -> None:
    out(f"machine: {machine()}")
    out("")
    out("| run | T | B | D | H | dtype | stored h vectors (each B×H) | input x, y | RSS before the call | peak RSS during the call | time |")
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, T, B, D, H, cp, dt in MEMORY_RUNS:
        code = (f"from bptt.bench import memory_child; memory_child({T}, {B}, {D}, {H}, {cp!r}, {dt!r})")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if r.returncode != 0:
            out(f"| {name} | {T} | {B} | {D} | {H} | {dt} | failed: {r.stderr.strip().splitlines()[-1:]} |")
            continue
        base, peak, secs, stored, loss = r.stdout.split()
        isz = np.dtype(dt).itemsize
        inputs = T * B * (D + 1) * isz
        out(f"| {name} | {T:.0e} | {B} | {D} | {H} | {dt} | {int(stored):,} | {inputs / 2**20:.0f} MiB | "
            f"{int(base) / 2**10:.0f} MiB | {int(peak) / 2**10:.0f} MiB | {float(secs):.1f} s |")
    full = 100_000 * 64 * 256 * 4
    out("")
    out(f"Without checkpointing the batched run would hold h and dz for every step: "
        f"2 × T B H × 4 bytes = {2 * full / 2**30:.1f} GiB.")


# ------------------------------------------------------------------ entry point
def main(argv: list[str] | None = None, out=print) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="bptt bench", description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    return run(args, out)


def add_arguments(ap) -> None:
    ap.add_argument("--quick", action="store_true", help="short timing budget (0.2 s per peer and size)")
    ap.add_argument("--sizes", default=",".join(s.name for s in GRID),
                    help=f"comma-separated subset of {', '.join(s.name for s in GRID)} (default: all)")
    ap.add_argument("--train", action="store_true",
                    help="time bptt train --task binary-addition against a PyTorch autograd loop, a jit-compiled JAX step and a JAX epoch in one lax.scan, beside the run's limit")
    ap.add_argument("--epochs", type=int, default=30, help="--train: epochs (default 30, the task's)")
    ap.add_argument("--memory", action="store_true",
                    help="run the checkpointing demonstrations (10^7 scalar steps; B=64, H=256, T=10^5) with peak memory")
    ap.add_argument("--json", action="store_true", help="the grid's numbers as one JSON object (see bench.grid_dict)")


def run(args, out=print) -> int:
    from .validation import BPTTError

    if args.memory:
        run_memory(out)
        return 0
    if args.train:
        out(f"machine: {machine()}")
        run_train(args.epochs, 1 if args.quick else 5, out)
        return 0
    names = [n.strip() for n in str(args.sizes).split(",") if n.strip()]
    by_name = {s.name: s for s in GRID}
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        raise BPTTError(f"--sizes: unknown size {', '.join(unknown) or '(none)'}; choose from {', '.join(by_name)}")
    if getattr(args, "json", False):
        import json

        result = run_grid([by_name[n] for n in names], args.quick, out=lambda *a, **k: None)
        print(json.dumps(grid_dict(result)))
        return 0
    run_grid([by_name[n] for n in names], args.quick, out)
    return 0


def grid_dict(result: dict[str, Any]) -> dict[str, Any]:
    """`bptt bench --json`: {"machine", "gemm_peak_gflops", "rows": [{"size": {name, T, B, D, H, O, form, loss},
    "kernel", "seconds": {peer: s or null}, "max_rel_error": {peer: e}, "limit": {model, seconds, parts: [{name,
    unit, count, seconds_each, seconds}]} or null, "percent_of_limit": 100 x limit ÷ bptt or null}]}; seconds
    are medians, a limit's parts the best of repeats."""
    rows = []
    for r in result["rows"]:
        s = r["size"]
        rows.append({"size": {"name": s.name, "T": s.T, "B": s.B, "D": s.D, "H": s.H, "O": s.O, "form": s.form,
                              "loss": s.loss},
                     "kernel": r["kernel"], "seconds": dict(r["times"]),
                     "max_rel_error": {k: float(v) for k, v in r["errors"].items()},
                     "limit": r["limit"].as_dict() if r.get("limit") is not None else None,
                     "percent_of_limit": percent_of_limit(r)})
    return {"machine": machine(), "gemm_peak_gflops": result["peak"], "rows": rows}
