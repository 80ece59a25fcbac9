r"""The measured limit of one gradient: the work no implementation can skip, each part timed alone.

A gradient of the network (h_t = f(W_x x_t + W_h h_{t-1} + b1), y'_t = g(W h_t + b2), sigmoid f and g,
squared error) must do, whatever the code:

    call         one call from Python into compiled code with the caller's x, y and the five
                 parameters, returning the loss and five new gradient arrays (a numba function that
                 does nothing else); where the caller passes x and y as Python lists, also their
                 conversion to arrays (the faster of np.asarray and np.fromiter)
    serial rows  (B = D = H = O = 1) the dependent chain per step, forward h = 1/(1 + e^-(w_h h + zx_t))
                 (multiply-add, exp, add, divide) and backward dz = (w_h dz + c_t) g_t (multiply-add,
                 multiply); everything else (w_x x_t, the output, its error, the gradient sums) is off
                 the chain and overlaps with it on an out-of-order core, so it is not counted
    batched rows the per-step products h_{t-1} W_h^T and dz_t W_h, (B, H) x (H, H), each step waiting for
                 the one before (2 T of them); the products over all T B rows at once (input projection,
                 output projection, the error into h, and the weight gradients dW_h, dW_x, dW); the
                 elementwise passes (the hidden and output sigmoids, their derivative products)

Each part is timed alone on this machine at the row's shape and dtype, best of repeats (noise only ever
slows a run, so the best is the machine's), by the fastest of the tools tried: for a per-step product,
BLAS through numba's np.dot and a plain compiled loop; for the elementwise passes, numpy's vectorised
ufuncs and compiled loops (float32: a polynomial exp that vectorises; float64: libm's exp, and
floatmath's, which vectorises); the all-rows products are BLAS.  Per-step parts are timed on a run of
at least ``MIN_STEPS`` steps (so one call's overhead is negligible) and scaled to T.  The limit is the
sum of the parts, so it scales with T (and with B, H as the work does).  It is a model: a kernel that overlaps the parts
(the products of one step with the elementwise work of another) can beat it, and it counts no
validation, no dtype conversion and no NaN check, which the public call does.

The loss changes only the T B O output numbers (squared error and binary cross-entropy alike are an
output pass and its error pass here), so both share this model.

For training, the limit is the sum over the mini-batches of their gradient parts (one call for the
whole run, as a whole-epoch compiled call would pay), plus each epoch's forward pass over the
validation split and one over the test split at the end; the optimizer's update (a few hundred
numbers per mini-batch at the task's sizes) and the gradient clipping are not counted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numba import njit

from ._floatmath_compiled import exp32_py, fexp

# Per-step parts are timed over at least this many steps (the call's ~0.1 µs is then < 1 %).
MIN_STEPS = 1024
# ... but a run stops growing past this much work (multiply-adds), so large rows stay quick.
MAX_RUN_MACS = 1 << 24
# The compiled loops are tried for per-step products up to this many multiply-adds (where BLAS's
# per-call cost can lose); above it BLAS is timed alone, so large rows stay quick.
LOOP_MAX_MACS = 1 << 16

# numba's on-disk cache of this file's kernels is dropped only when this file changes, not when the
# modules compiled into them do (_floatmath_compiled.py): this stamp of their sources
# changes this file with them (tests/test_structure.py checks it and prints the new value).
NUMBA_CACHE_STAMP = "631e57f27d6a6769"


@dataclass(frozen=True)
class Part:
    """One part of the limit: ``count`` times a unit of work, each unit timed alone."""
    name: str
    unit: str  # what one unit is, e.g. "(32, 4) x (4, 4)"
    count: int  # units per gradient
    seconds: float  # per unit (best of repeats)

    @property
    def total(self) -> float:
        return self.count * self.seconds


@dataclass(frozen=True)
class Limit:
    model: str  # "serial chain" or "products + elementwise"
    parts: tuple[Part, ...]

    @property
    def seconds(self) -> float:
        return sum(p.total for p in self.parts)

    def as_dict(self) -> dict:
        return {"model": self.model, "seconds": self.seconds,
                "parts": [{"name": p.name, "unit": p.unit, "count": p.count, "seconds_each": p.seconds,
                           "seconds": p.total} for p in self.parts]}


# ------------------------------------------------------------------ timing
def best_time(fn: Callable[[], object], budget_s: float, min_reps: int = 3) -> float:
    """The best seconds per call of fn over repeats (after one warm-up), until budget_s has passed."""
    fn()
    best = math.inf
    start = time.perf_counter()
    reps = 0
    while reps < min_reps or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return best


# ------------------------------------------------------------------ a float32 exp that vectorises
# libm's expf is a call per number, which no loop vectorises; the elementwise limit at float32 uses the
# library's (floatmath's: Cephes' polynomial, about 1 ulp), inlined here as in the kernels, with the
# fused multiply-adds the library forgoes for its bits (a limit is this CPU's best, not a portable one).
_expf = njit(inline="always", error_model="numpy", fastmath={"contract"})(exp32_py)


# ------------------------------------------------------------------ the micro-kernels
@njit(cache=True)
def _call(x, y, w, wx, wh, b1, b2):
    """The floor of a public call: arguments in, a loss and five new gradient arrays out."""
    return 0.0, np.empty_like(w), np.empty_like(wx), np.empty_like(wh), np.empty_like(b1), np.empty_like(b2)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _scalar_chain(zx, c, g, wh, hs, dzs):
    """The scalar network's dependent chain, forward then backward, libm's exp (its latency is the
    shortest on a chain); zx, c, g (off the chain) given."""
    one = zx.dtype.type(1.0)
    h = zx.dtype.type(0.0)
    for t in range(zx.shape[0]):
        h = one / (one + math.exp(-(wh * h + zx[t])))
        hs[t] = h
    dz = zx.dtype.type(0.0)
    for t in range(zx.shape[0] - 1, -1, -1):
        dz = (wh * dz + c[t]) * g[t]
        dzs[t] = dz
    return h + dz


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _scalar_chain_poly(zx, c, g, wh, hs, dzs):
    """_scalar_chain with the polynomial float32 exp."""
    one = np.float32(1.0)
    h = np.float32(0.0)
    for t in range(zx.shape[0]):
        h = one / (one + _expf(-(wh * h + zx[t])))
        hs[t] = h
    dz = np.float32(0.0)
    for t in range(zx.shape[0] - 1, -1, -1):
        dz = (wh * dz + c[t]) * g[t]
        dzs[t] = dz
    return h + dz


@njit(cache=True)
def _steps_blas(m, h, q, a, b):
    """m dependent products, each of the one before: a <- h q, b <- a q, ... (q orthogonal: the values
    neither grow nor vanish, so no denormals), BLAS."""
    a[:] = h
    for _ in range(m):
        np.dot(a, q, b)
        a, b = b, a
    return a[0, 0]


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _steps_loop(m, h, q, a, b):
    """_steps_blas as a compiled loop (a row of a times q as axpys over q's rows: the inner loop vectorises)."""
    B, H = h.shape
    a[:] = h
    for _ in range(m):
        for r in range(B):
            for i in range(H):
                b[r, i] = 0.0
            for k in range(H):
                v = a[r, k]
                for i in range(H):
                    b[r, i] += v * q[k, i]
        a, b = b, a
    return a[0, 0]


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _steps_lanes(m, h, q, a, b):
    """_steps_blas with the state stored (H, B), the batch in the inner loop (vectorises for small H)."""
    B, H = h.shape
    a = np.ascontiguousarray(h.T)
    b = np.empty_like(a)
    for _ in range(m):
        for i in range(H):
            for r in range(B):
                b[i, r] = 0.0
            for k in range(H):
                v = q[k, i]
                for r in range(B):
                    b[i, r] += v * a[k, r]
        a, b = b, a
    return a[0, 0]


@njit(cache=True)
def _product_blas(a, b, out):
    np.dot(a, b, out)
    return out[0, 0]


@njit(cache=True, error_model="numpy")
def _sigmoid_pass_vec(a, b, out):
    """The float64 sigmoid pass with floatmath's exp (branch-free: the loop vectorises, unlike libm's)."""
    one = a.dtype.type(1.0)
    for i in range(a.shape[0]):
        out[i] = one / (one + fexp(-(a[i] + b[i])))
    return out[0]


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _sigmoid_pass_f32(a, b, out):
    one = np.float32(1.0)
    for i in range(a.shape[0]):
        out[i] = one / (one + _expf(-(a[i] + b[i])))
    return out[0]


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _sigmoid_pass(a, b, out):
    one = a.dtype.type(1.0)
    for i in range(a.shape[0]):
        out[i] = one / (one + math.exp(-(a[i] + b[i])))
    return out[0]


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _derivative_pass(a, b, h, out):
    one = a.dtype.type(1.0)
    for i in range(a.shape[0]):
        out[i] = (a[i] + b[i]) * (h[i] * (one - h[i]))
    return out[0]


def _numpy_sigmoid(a, b, out):
    np.add(a, b, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.add(out, 1, out=out)
    np.reciprocal(out, out=out)


def _numpy_derivative(a, b, h, out, tmp):
    np.subtract(1, h, out=tmp)
    np.multiply(tmp, h, out=tmp)
    np.add(a, b, out=out)
    np.multiply(out, tmp, out=out)


# ------------------------------------------------------------------ the parts
def _rng(dtype):
    return np.random.default_rng(7), np.dtype(dtype)


def _orthogonal(H: int, dtype) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((H, H)))
    return np.ascontiguousarray(q, dtype=dtype)


def run_steps(T: int, B: int, H: int) -> int:
    """How many steps a per-step part is timed over: T, at least MIN_STEPS while the run is small."""
    return max(T, min(MIN_STEPS, MAX_RUN_MACS // max(B * H * H, 1)))


def _step_products(T: int, B: int, H: int, dtype, budget: float) -> float:
    """Seconds per dependent (B, H) x (H, H) product: the best of BLAS and the compiled loops (small products)."""
    n = run_steps(T, B, H)
    rng, dt = _rng(dtype)
    h = rng.uniform(-1, 1, (B, H)).astype(dt)
    q = _orthogonal(H, dt)
    a, b = np.empty_like(h), np.empty_like(h)
    best = math.inf
    tools = (_steps_blas, _steps_loop, _steps_lanes) if B * H * H <= LOOP_MAX_MACS else (_steps_blas,)
    for k in tools:
        best = min(best, best_time(lambda k=k: k(n, h, q, a, b), budget))
    return best / n


def _elementwise(N: int, dtype, budget: float) -> tuple[float, float]:
    """Seconds of one sigmoid pass and one derivative pass over N numbers: numpy's ufuncs or the loop."""
    rng, dt = _rng(dtype)
    a = rng.uniform(-4, 4, N).astype(dt)
    b = rng.uniform(-1, 1, N).astype(dt)
    h = rng.uniform(0, 1, N).astype(dt)
    out, tmp = np.empty_like(a), np.empty_like(a)
    loops = [_sigmoid_pass_f32] if dt == np.float32 else [_sigmoid_pass, _sigmoid_pass_vec]
    sig = min([best_time(lambda k=k: k(a, b, out), budget) for k in loops]
              + [best_time(lambda: _numpy_sigmoid(a, b, out), budget)])
    der = min(best_time(lambda: _derivative_pass(a, b, h, out), budget),
              best_time(lambda: _numpy_derivative(a, b, h, out, tmp), budget))
    return sig, der


def _all_rows_products(shapes: list[tuple[int, int, int]], dtype, budget: float) -> float:
    """Seconds of the (m, k) x (k, n) products, each once, BLAS (a plain compiled loop was 2-9x slower
    even at the training rows' (288, 2) x (2, 8), where BLAS's call is most of its 0.7 µs)."""
    rng, dt = _rng(dtype)
    total = 0.0
    for m, k, n in shapes:
        a, b = rng.uniform(-1, 1, (m, k)).astype(dt), rng.uniform(-1, 1, (k, n)).astype(dt)
        out = np.empty((m, n), dt)
        total += best_time(lambda: _product_blas(a, b, out), budget / len(shapes))
    return total


def _call_floor(x_shape: tuple, y_shape: tuple, D: int, H: int, O: int, dtype, budget: float) -> float:
    """The call part: the numba function ``_call`` with arguments of the public call's shapes."""
    dt = np.dtype(dtype)
    x, y = np.zeros(x_shape, dt), np.zeros(y_shape, dt)
    p = (np.zeros((O, H), dt), np.zeros((H, D), dt), np.zeros((H, H), dt), np.zeros(H, dt), np.zeros(O, dt))
    return best_time(lambda: _call(x, y, *p), budget)


def serial_parts(T: int, dtype, budget: float) -> list[Part]:
    """The scalar network's chain, forward and backward, per step (the best of libm's and the polynomial exp)."""
    n = run_steps(T, 1, 1)
    rng, dt = _rng(dtype)
    zx = rng.uniform(-1, 1, n).astype(dt)
    c = rng.uniform(-0.1, 0.1, n).astype(dt)
    g = rng.uniform(0.1, 0.25, n).astype(dt)
    hs, dzs = np.empty_like(zx), np.empty_like(zx)
    wh = dt.type(0.5)
    kernels = [_scalar_chain] + ([_scalar_chain_poly] if dt == np.float32 else [])
    per_step = min(best_time(lambda k=k: k(zx, c, g, wh, hs, dzs), budget) for k in kernels) / n
    return [Part("serial chain (forward + backward)", "one step", T, per_step)]


def all_rows_shapes(T: int, B: int, D: int, H: int, O: int, forward_only: bool = False) -> list[tuple[int, int, int]]:
    """The products over all T B rows, as (m, k, n)."""
    R = T * B
    fwd = [(R, D, H), (R, H, O)]  # input projection, output projection
    if forward_only:
        return fwd
    return fwd + [(R, O, H),  # the output's error into h
                  (H, R, H), (H, R, D), (O, R, H)]  # dW_h, dW_x, dW


def batched_parts(T: int, B: int, D: int, H: int, O: int, dtype, budget: float, forward_only: bool = False) -> list[Part]:
    """Per-step products (2 T, or T forward only), the all-rows products and the elementwise passes."""
    step = _step_products(T, B, H, dtype, budget)
    shapes = all_rows_shapes(T, B, D, H, O, forward_only)
    rows = _all_rows_products(shapes, dtype, budget)
    sig_h, der_h = _elementwise(T * B * H, dtype, budget)
    sig_o, der_o = _elementwise(T * B * O, dtype, budget)
    steps = T if forward_only else 2 * T
    parts = [Part("per-step products", f"({B}, {H}) x ({H}, {H})", steps, step),
             Part("all-rows products", ", ".join(f"({m}, {k}) x ({k}, {n})" for m, k, n in shapes), 1, rows),
             Part("hidden sigmoid", f"{T * B * H} numbers", 1, sig_h),
             Part("output sigmoid", f"{T * B * O} numbers", 1, sig_o)]
    if not forward_only:
        parts += [Part("hidden derivative", f"{T * B * H} numbers", 1, der_h),
                  Part("output error", f"{T * B * O} numbers", 1, der_o)]
    return parts


def is_serial(B: int, D: int, H: int, O: int) -> bool:
    return B == 1 and D == 1 and H == 1 and O == 1


def _lists_to_arrays(x_shape: tuple, y_shape: tuple, dtype, budget: float) -> float:
    """Seconds to turn x and y, given as (nested) Python lists of floats, into arrays of dtype."""
    rng, dt = _rng(dtype)
    lx, ly = rng.uniform(-1, 1, x_shape).tolist(), rng.uniform(0, 1, y_shape).tolist()
    tools = [lambda: (np.asarray(lx, dt), np.asarray(ly, dt))]
    if len(x_shape) == 1 and len(y_shape) == 1:
        tools.append(lambda: (np.fromiter(lx, dt, len(lx)), np.fromiter(ly, dt, len(ly))))
    return min(best_time(f, budget) for f in tools)


def gradient_limit(T: int, B: int, D: int, H: int, O: int = 1, dtype: str = "float32",
                   x_shape: tuple | None = None, y_shape: tuple | None = None, lists: bool = False,
                   budget: float = 0.05) -> Limit:
    """The limit of one public gradient call; x_shape, y_shape: the arrays as the caller passes them
    (default (T, B, D) and (T, B, O)); lists: the caller passes them as Python lists."""
    x_shape = tuple(x_shape or (T, B, D))
    y_shape = tuple(y_shape or (T, B, O))
    call = Part("call", "one call from Python", 1, _call_floor(x_shape, y_shape, D, H, O, dtype, budget))
    if lists:
        call = Part("call", "one call from Python with two lists", 1,
                    call.seconds + _lists_to_arrays(x_shape, y_shape, dtype, budget))
    if is_serial(B, D, H, O):
        return Limit("serial chain", (call, *serial_parts(T, dtype, budget)))
    return Limit("products + elementwise", (call, *batched_parts(T, B, D, H, O, dtype, budget)))


def train_limit(T: int, batches: list[int], epochs: int, val_n: int, test_n: int, D: int, H: int, O: int = 1,
                dtype: str = "float64", budget: float = 0.05) -> Limit:
    """The limit of a training run: every mini-batch's gradient parts (one call for the whole run), each
    epoch's forward pass over the validation split and the final one over the test split.  batches: one
    epoch's mini-batch sizes."""
    parts = [Part("call", "one call from Python", 1, _call_floor((T, 1, D), (T, 1, O), D, H, O, dtype, budget))]
    for B in sorted(set(batches)):
        k = batches.count(B) * epochs
        for p in batched_parts(T, B, D, H, O, dtype, budget):
            parts.append(Part(f"mini-batch B={B}: {p.name}", p.unit, p.count * k, p.seconds))
    for name, n, k in (("validation", val_n, epochs), ("test", test_n, 1)):
        for p in batched_parts(T, n, D, H, O, dtype, budget, forward_only=True):
            parts.append(Part(f"{name} forward: {p.name}", p.unit, p.count * k, p.seconds))
    return Limit("sum over mini-batches", tuple(parts))


# ------------------------------------------------------------------ BLAS on one thread, in a child
# A BLAS that splits a small product between threads waits for a thread another process holds: on this
# 2-core machine under load a (3200, 8) x (8, 64) product took 7.6 ms on two threads, 55 µs on one.  The
# thread count is fixed when BLAS loads, so the one-thread parts are timed in a child process.
_BLAS_ONE = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
KINDS = {"gradient": gradient_limit, "train": train_limit}


def best_of(a: Limit, b: Limit) -> Limit:
    """Part by part, the faster of two measurements of the same model."""
    if [p.name for p in a.parts] != [p.name for p in b.parts]:
        raise ValueError("best_of: the two limits have different parts")
    return Limit(a.model, tuple(p if p.seconds <= q.seconds else q for p, q in zip(a.parts, b.parts)))


def from_dict(d: dict) -> Limit:
    return Limit(d["model"], tuple(Part(p["name"], p["unit"], p["count"], p["seconds_each"]) for p in d["parts"]))


def measure(requests: list[tuple[str, dict]], one_thread: bool = True) -> list[Limit]:
    """Each (kind, keyword arguments) request measured here (BLAS on its default threads) and, with
    one_thread, again in a child with BLAS on one thread; part by part the faster.  Where the child
    fails, the in-process measurement alone."""
    here = [KINDS[kind](**kw) for kind, kw in requests]
    if not one_thread:
        return here
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, **_BLAS_ONE)
    r = subprocess.run([sys.executable, "-c", "from bptt.limits import _child; _child()"], input=json.dumps(requests),
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return here
    there = [from_dict(d) for d in json.loads(r.stdout)]
    return [best_of(a, b) for a, b in zip(here, there)]


def _child() -> None:
    """measure's child: requests as JSON on stdin, limits as JSON on stdout."""
    import json
    import sys

    requests = json.loads(sys.stdin.read())
    print(json.dumps([KINDS[kind](**kw).as_dict() for kind, kw in requests]))
