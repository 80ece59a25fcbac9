r"""Compiled BPTT: the engine's forward and backward, fused, with numba.

The same formulas as ``engine.py`` (read that file for the derivation):

    z_t = w_x x_t + w_h h_{t-1} + b1,  h_t = f(z_t),  u_t = w h_t + b2,  y'_t = g(u_t)
    du_t = c dE_t/du_t  (squared error: c (y'_t - y_t) g'(u_t); binary cross-entropy, sigmoid g: c (y'_t - y_t))
    dz_t = (du_t w + dz_{t+1} w_h) * f'(z_t)          (dz_{T+1} w_h = the carry, 0 for a whole sequence)
    dLoss/dw = sum du_t^T h_t,  dLoss/dw_x = sum dz_t^T x_t,  dLoss/dw_h = sum dz_t^T h_{t-1},
    dLoss/db1 = sum dz_t,  dLoss/db2 = sum du_t

Three segment kernels, chosen by size (``dispatch.choose_kernel``); the compiled functions exist for
float32 and float64 and are cached on disk by ``cache=True``, so a machine compiles
them once:

    scalar    D = H = O = 1, B = 1: a plain loop over t with every value in registers.
    loop      B H^2 < 2 M: one compiled function, ``batched_kernel``, in four compiled phases
              (hidden states, output deltas, the backward recurrence, the weight-gradient
              sums), with no interpreter between steps.
    parallel  larger: a Python loop over t whose per-step products share their rows between
              numba's threads; the elementwise steps are compiled.
    (In the batched kernels the input projection, the output layer and the weight-gradient
    sums over all steps are single products.)

No kernel calls a BLAS.  Every matrix product is ``_products_compiled.matmul_into`` (or its
parallel twin): each output summed in one fixed order (``bptt.products``), so a gradient has the
same bits whatever the BLAS kernel, the thread count or the load.

Activations come from ``activations.py``: a record's ``code`` picks its branch of ``_f`` /
``_df``.  A record without a code is refused when a runner is built (``activation_codes``,
a one-line BPTTError); a code without a branch raises inside the kernel.  Nothing falls
through to another activation.  Losses likewise: ``losses.py``'s ``code`` picks the branch of
``_loss_term`` / ``_loss_delta`` (``loss_code`` refuses the others).

Every kernel processes one *segment* of the sequence: it starts from h_start and
a carry dLoss/dh_end coming from the steps after the segment, and returns the
segment's loss, adds the segment's gradients, and leaves dLoss/dh_start in the
carry.  A whole sequence is one segment with carry 0; gradient checkpointing
(``dispatch.py``) runs many.  Truncated BPTT (each error term sends its signal
back at most k steps, exactly ``engine.bptt_truncated``) is supported for a
whole sequence only.

No kernel has ``fastmath`` flags and every exp, tanh and log is ``floatmath``'s: a fused multiply-add or
a libm function would give other bits on another CPU (tests/test_reproducibility.py builds the kernels
for a generic CPU and compares).

All kernels compute in the array dtype (float32 data runs float32 math, as numpy
does); the scalar kernel sums its gradients and every kernel its loss in float64.

Threads: below ~2 M multiply-adds (B H^2 < ``PARALLEL_MIN_MACS``) the per-step product
(B, H) x (H, H) is too small to share between threads (they would wait on each other at
every step, which is ruinous when other processes hold the cores), so "loop" runs on one.

This module imports numba at import time; ``bptt.model`` imports it lazily.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import losses
from .activations import Activation, require
from .losses import Loss
from ._optim_compiled import in_dtype, update
from ._products_compiled import matmul_into, matmul_parallel
from .engine import PARAM_NAMES, bptt_truncated
from ._floatmath_compiled import fexp, flog1p, ftanh
from .validation import BPTTError

# numba's on-disk cache of this file's kernels is dropped only when this file changes, not when the
# modules compiled into them do (_floatmath_compiled.py, _optim_compiled.py, _products_compiled.py, optim.py): this stamp of their sources
# changes this file with them (tests/test_structure.py checks it and prints the new value).
NUMBA_CACHE_STAMP = "151a07b4aa7640c4"

# ---------------------------------------------------------------- activations by code
# The codes are activations.py's ``code`` column; an activation whose record has no code is refused
# before any kernel runs (``activation_codes``), and a code without a branch here raises inside the
# kernel: no activation is ever computed as another.  tests/test_kernels.py checks every coded record
# of the table against these branches.
_NO_BRANCH = "bptt.kernels: no compiled branch for this activation code; add it to kernels._f and kernels._df"


# inline="always" (numba IR): each kernel compiles its own copy.  When kernels had fastmath flags, a
# helper compiled once took the flags of whichever kernel compiled it first, so a result depended on what
# else the process had compiled before (tests/test_kernels.py::
# test_results_do_not_depend_on_what_was_compiled_before).
@njit(cache=True, error_model="numpy", inline="always")
def _f(z, code, one):
    """f(z) in the dtype of z and one (one = 1 in that dtype), so float32 data runs float32 math."""
    if code == 0:  # sigmoid
        # 1/(1+e^{-z}) is safe for every z: e^{-z} = inf for z << 0 gives exactly 0.
        return one / (one + fexp(-z))
    if code == 1:  # tanh
        return ftanh(z)
    if code == 2:  # relu
        zero = one - one
        return z if z > zero else zero
    if code == 3:  # identity
        return z
    raise ValueError(_NO_BRANCH)


@njit(cache=True, error_model="numpy", inline="always")
def _df(a, code, one):
    """f'(z) from the output a = f(z), as activations.py writes it."""
    if code == 0:  # sigmoid
        return a * (one - a)
    if code == 1:  # tanh
        return one - a * a
    if code == 2:  # relu
        zero = one - one
        return one if a > zero else zero
    if code == 3:  # identity
        return one
    raise ValueError(_NO_BRANCH)


# ---------------------------------------------------------------- losses by code
# losses.py's ``code`` column, as for the activations: a code without a branch raises (never another loss).
_NO_LOSS = "bptt.kernels: no compiled branch for this loss code; add it to kernels._loss_term and kernels._loss_delta"
LOSS_CODES = (0, 1)  # the codes with a branch below: squared error, binary cross-entropy


# inline="always": inlined in numba's IR, as _f
@njit(cache=True, error_model="numpy", inline="always")
def _loss_term(lcode, acc, u, yp, y):
    """acc + 2 E for one output (u the pre-activation, yp = g(u), y the target): twice E, so the squared
    error's 1/2 stays one multiply after the sum, as it always was (doubling is exact)."""
    if lcode == 0:  # squared error: (y' - y)^2
        r = yp - y
        return acc + r * r
    if lcode == 1:  # binary cross-entropy with a sigmoid output: softplus(u) - y u, from u (exact for any u)
        zero = u - u
        a = u if u > zero else -u
        e = (u if u > zero else zero) + flog1p(fexp(-a)) - y * u
        return acc + (e + e)
    raise ValueError(_NO_LOSS)


@njit(cache=True, error_model="numpy", inline="always")
def _loss_delta(lcode, gcode, yp, y, cd, one):
    """c dE/du for one output (cd = c in the dtype): the squared error's c (y' - y) g'(u), binary
    cross-entropy's c (y' - y) (the sigmoid's g' cancels)."""
    if lcode == 0:
        r = yp - y
        return cd * r * _df(yp, gcode, one)
    if lcode == 1:
        return cd * (yp - y)
    raise ValueError(_NO_LOSS)


def loss_code(criterion: Loss) -> int:
    """The kernels' code for the loss; a one-line BPTTError if it has no compiled version."""
    losses.require(criterion, "numba")
    if criterion.code not in LOSS_CODES:
        raise BPTTError(f"loss {criterion.name!r} has code {criterion.code} but the kernels have no branch for it; "
                        "add it to kernels._loss_term and kernels._loss_delta, or set its code to None")
    return criterion.code


def activation_codes(hidden_act: Activation, output_act: Activation) -> tuple[int, int]:
    """The kernels' codes for (f, g); a one-line BPTTError if either has no compiled version."""
    require(hidden_act, "numba", "hidden_activation")
    require(output_act, "numba", "output_activation")
    return hidden_act.code, output_act.code


# ---------------------------------------------------------------- scalar kernel
@njit(cache=True, error_model="numpy")
def scalar_kernel(x, y, p, fcode, gcode, lcode, trunc, need_grad, hbuf, dubuf, out):
    """One scalar sequence (D = H = O = 1, B = 1), in the dtype of x (float32 math for float32).

    x, y (L,); p float64[8] = (w, w_x, w_h, b1, b2, h_start, c, carry_in); hbuf (L+1,) and
    dubuf (L,) scratch in the dtype of x; trunc: k for truncated BPTT (>= L: full).
    out float64[7] <- (loss, dw, dw_x, dw_h, db1, db2, dLoss/dh_start): the gradients are
    *written* (summed in float64).  Returns 0, or 1 if the loss or a gradient is not finite.
    """
    L = x.shape[0]
    q = p.astype(x.dtype)  # the parameters in the data's dtype
    one = np.ones(1, x.dtype)[0]
    w, wx, wh, b1, b2, h, c = q[0], q[1], q[2], q[3], q[4], q[5], q[6]
    hbuf[0] = h
    for t in range(L):
        h = _f((wx * x[t] + b1) + wh * h, fcode, one)  # the serial chain: one multiply-add, then f
        hbuf[t + 1] = h
    # the outputs are off the chain: a loop of their own (vectorised for a float32 sigmoid), so the
    # chain's loop above holds nothing but the chain
    loss = 0.0
    for t in range(L):
        u = w * hbuf[t + 1] + b2
        yp = one / (one + fexp(-u)) if gcode == 0 else _f(u, gcode, one)
        loss = _loss_term(lcode, loss, u, yp, y[t])  # + 2 E_t
        dubuf[t] = _loss_delta(lcode, gcode, yp, y[t], c, one)  # du_t
    loss *= 0.5 * p[6]
    out[0] = loss
    if not math.isfinite(loss):
        return 1
    if not need_grad:
        out[6] = h  # the end state, for checkpointing's forward sweep
        return 0
    gw = 0.0
    gwx = 0.0
    gwh = 0.0
    gb1 = 0.0
    gb2 = 0.0
    if trunc >= L:
        carry = q[7]  # dLoss/dh_L from after the segment
        for t in range(L - 1, -1, -1):
            du = dubuf[t]
            ht = hbuf[t + 1]
            fp = _df(ht, fcode, one)
            e = du * w * fp
            # dz_t = (du_t w + carry) f'_t; the next carry dz_t w_h is formed from the old carry
            # directly, so the serial chain is one multiply-add per step
            dz = carry * fp + e
            carry = carry * (fp * wh) + e * wh
            gw += du * ht
            gb2 += du
            gwx += dz * x[t]
            gwh += dz * hbuf[t]
            gb1 += dz
        dh0 = np.float64(carry)
    else:
        # engine.bptt_truncated: E_t reaches back through s = t .. t-k+1 only
        dh0 = 0.0
        for t in range(L):
            du = dubuf[t]
            gw += du * hbuf[t + 1]
            gb2 += du
            delta = du * w
            s_end = t - trunc if t - trunc > -1 else -1
            for s in range(t, s_end, -1):
                dz = delta * _df(hbuf[s + 1], fcode, one)
                gwx += dz * x[s]
                gwh += dz * hbuf[s]
                gb1 += dz
                delta = dz * wh
                if s == 0:
                    dh0 += delta
    out[1] = gw
    out[2] = gwx
    out[3] = gwh
    out[4] = gb1
    out[5] = gb2
    out[6] = dh0
    for i in range(7):
        if not math.isfinite(out[i]):
            return 1
    return 0


# ---------------------------------------------------------------- batched kernel
# One segment in four phases, each a compiled function: the hidden states, the outputs and their
# deltas, the backward recurrence (full or truncated), the weight-gradient sums.  Each phase is
# called once per segment, so the split costs one call each; the per-step helpers (_mm, _f, _df)
# are inlined by LLVM as before.
@njit(cache=True, error_model="numpy")
def _hidden_states(x, h0, wxT, whT, b1, fcode, hbuf, zbuf):
    """hbuf (L+1, B, H) <- h_0..h_L, h_t = f(z_t), z_t = x_t w_x^T + h_{t-1} w_h^T + b1.

    x (L, B, D), h0 (B, H), wxT = w_x^T (D, H), whT = w_h^T (H, H), b1 (H,).  zbuf (L, B, H) is
    scratch: it holds the input projection x_t w_x^T for every step, computed as one product.
    """
    L, B, D = x.shape
    H = whT.shape[0]
    one = np.ones(1, x.dtype)[0]
    matmul_into(x.reshape(L * B, D), wxT, zbuf.reshape(L * B, H))  # (L B, H): input projection, all steps
    hbuf[0] = h0
    rec = np.empty((B, H), x.dtype)  # (B, H)
    for t in range(L):
        matmul_into(hbuf[t], whT, rec)  # (B, H): h_{t-1} w_h^T
        zt = zbuf[t]  # (B, H)
        ht = hbuf[t + 1]  # (B, H)
        for b in range(B):
            if fcode == 0:  # sigmoid written out so the loop vectorises (float32)
                for i in range(H):
                    ht[b, i] = one / (one + fexp(-(zt[b, i] + rec[b, i] + b1[i])))
            else:
                for i in range(H):
                    ht[b, i] = _f(zt[b, i] + rec[b, i] + b1[i], fcode, one)


@njit(cache=True, error_model="numpy")
def _output_deltas(hbuf, w, b2, y, gcode, lcode, c, ubuf):
    """ubuf (L, B, O) <- du_t = c dE_t/du_t, u_t = h_t w^T + b2; returns the loss (float64).

    hbuf (L+1, B, H), w (O, H), b2 (O,), y (L, B, O); c the loss scale (a float).
    """
    L, B, O = y.shape
    H = w.shape[1]
    one = np.ones(1, y.dtype)[0]
    cv = np.empty(1, y.dtype)
    cv[0] = c
    cd = cv[0]  # c in the dtype
    u2 = ubuf.reshape(L * B, O)  # (L B, O)
    matmul_into(hbuf[1:].reshape(L * B, H), w.T.copy(), u2)  # u_t - b2 for every step at once
    y2 = y.reshape(L * B, O)  # (L B, O)
    loss = 0.0
    for n in range(L * B):
        for o in range(O):
            u = u2[n, o] + b2[o]
            yp = _f(u, gcode, one)
            loss = _loss_term(lcode, loss, u, yp, y2[n, o])  # + 2 E
            u2[n, o] = _loss_delta(lcode, gcode, yp, y2[n, o], cd, one)  # du
    return loss * 0.5 * c


@njit(cache=True, error_model="numpy")
def _backprop_full(zbuf, hbuf, wh, fcode, carry):
    """dz_t = (dE_t/dh_t + dz_{t+1} w_h) f'(z_t), t = L..1.

    zbuf (L, B, H): dE_t/dh_t in, dz_t out.  hbuf (L+1, B, H).  carry (B, H): dLoss/dh_L from the
    steps after the segment in, dLoss/dh_start = dz_1 w_h out.
    """
    L, B, H = zbuf.shape
    one = np.ones(1, zbuf.dtype)[0]
    for t in range(L - 1, -1, -1):
        dzt = zbuf[t]  # (B, H)
        ht = hbuf[t + 1]  # (B, H)
        for b in range(B):
            for i in range(H):
                dzt[b, i] = (dzt[b, i] + carry[b, i]) * _df(ht[b, i], fcode, one)
        matmul_into(dzt, wh, carry)  # dz_t w_h


@njit(cache=True, error_model="numpy")
def _backprop_truncated(zbuf, hbuf, wh, fcode, trunc, carry):
    """engine.bptt_truncated: E_t's signal dE_t/dh_t reaches back through s = t .. t-k+1 only.

    zbuf (L, B, H): dE_t/dh_t in, dz_t (summed over error terms) out.  carry (B, H) out: dLoss/dh_0.
    """
    L, B, H = zbuf.shape
    dt = zbuf.dtype
    one = np.ones(1, dt)[0]
    dz = np.zeros((L, B, H), dt)  # (L, B, H): summed over error terms
    delta = np.empty((B, H), dt)  # (B, H)
    nxt = np.empty((B, H), dt)  # (B, H)
    carry[:] = 0.0
    for t in range(L):
        delta[:] = zbuf[t]
        s_end = t - trunc if t - trunc > -1 else -1
        for s in range(t, s_end, -1):
            hs = hbuf[s + 1]  # (B, H)
            dzs = dz[s]  # (B, H)
            for b in range(B):
                for i in range(H):
                    delta[b, i] *= _df(hs[b, i], fcode, one)
                    dzs[b, i] += delta[b, i]
            matmul_into(delta, wh, nxt)
            delta[:] = nxt
            if s == 0:
                carry += delta
    zbuf[:] = dz


@njit(cache=True, error_model="numpy")
def _mm_new(a, b):
    """a @ b into a new array, in the fixed order of ``bptt.products``."""
    out = np.empty((a.shape[0], b.shape[1]), b.dtype)
    matmul_into(a, b, out)
    return out


@njit(cache=True, error_model="numpy")
def _add_weight_grads(x, hbuf, zbuf, ubuf, grads):
    """grads (g_w, g_wx, g_wh, g_b1, g_b2) += the segment's sums over all (t, b), as single products.

    x (L, B, D), hbuf (L+1, B, H), zbuf = dz (L, B, H), ubuf = du (L, B, O).
    """
    g_w, g_wx, g_wh, g_b1, g_b2 = grads
    L, B, D = x.shape
    H = zbuf.shape[2]
    O = ubuf.shape[2]
    z2 = zbuf.reshape(L * B, H)  # (L B, H)
    u2 = ubuf.reshape(L * B, O)  # (L B, O)
    g_w += _mm_new(u2.T, hbuf[1:].reshape(L * B, H))  # (O, H)
    g_wx += _mm_new(z2.T, x.reshape(L * B, D))  # (H, D)
    g_wh += _mm_new(z2.T, hbuf[:L].reshape(L * B, H))  # (H, H)
    for n in range(L * B):
        for i in range(H):
            g_b1[i] += z2[n, i]
        for o in range(O):
            g_b2[o] += u2[n, o]


@njit(cache=True, error_model="numpy")
def batched_kernel(x, y, h0, weights, biases, codes, c, trunc, need_grad, carry, bufs, grads):
    """One segment, batched.  All arrays in one dtype, C-contiguous; math in that dtype.

    x (L, B, D), y (L, B, O), h0 (B, H).  weights = (w (O, H), w_x^T (D, H), w_h (H, H), w_h^T),
    biases = (b1 (H,), b2 (O,)), codes = (f's, g's, the loss's) from ``activation_codes`` and
    ``loss_code``; c the loss scale.
    carry (B, H): in dLoss/dh_L, out dLoss/dh_start.  bufs = scratch (hbuf (L+1, B, H),
    zbuf (L, B, H), ubuf (L, B, O)).  grads = (g_w, g_wx, g_wh, g_b1, g_b2) shaped like the
    parameters: the segment's gradients are *added*.  Every product is ``matmul_into`` (the fixed
    order of ``bptt.products``).  trunc: k for truncated BPTT (>= L: full).  Returns the segment's
    loss (float64).
    """
    w, wxT, wh, whT = weights
    b1, b2 = biases
    fcode, gcode, lcode = codes
    hbuf, zbuf, ubuf = bufs
    L, B, _ = x.shape
    O, H = w.shape
    _hidden_states(x, h0, wxT, whT, b1, fcode, hbuf, zbuf)
    loss = _output_deltas(hbuf, w, b2, y, gcode, lcode, c, ubuf)  # ubuf now holds du
    if not need_grad:
        return loss
    matmul_into(ubuf.reshape(L * B, O), w, zbuf.reshape(L * B, H))  # (L B, H): zbuf <- dE_t/dh_t = du_t w
    if trunc >= L:
        _backprop_full(zbuf, hbuf, wh, fcode, carry)
    else:
        _backprop_truncated(zbuf, hbuf, wh, fcode, trunc, carry)
    _add_weight_grads(x, hbuf, zbuf, ubuf, grads)
    return loss


# ---------------------------------------------------------------- elementwise steps for the "parallel" kernel
@njit(cache=True, error_model="numpy", inline="always")
def _act_2d(z, out, code, one):
    """out = f(z) for C-contiguous 2-D arrays ((B, H) rows or (H, B) lanes), in the dtype of ``one``;
    the inner loop over the last axis (vectorised: floatmath's exp has no branch)."""
    R, C = z.shape
    for r in range(R):
        if code == 0:
            for c in range(C):
                out[r, c] = one / (one + fexp(-z[r, c]))
        else:
            for c in range(C):
                out[r, c] = _f(z[r, c], code, one)


@njit(cache=True, error_model="numpy")
def _act_rows(z, out, code):
    """out = f(z) for C-contiguous (B, H) arrays, in their dtype (sigmoid vectorised in float32)."""
    _act_2d(z, out, code, np.ones(1, z.dtype)[0])


@njit(cache=True, error_model="numpy")
def _dz_rows(dz, carry, h, code):
    """dz = (dz + carry) * f'(z), f' from h = f(z); (B, H) arrays, dz in place."""
    one = np.ones(1, dz.dtype)[0]
    B, H = dz.shape
    for b in range(B):
        for i in range(H):
            dz[b, i] = (dz[b, i] + carry[b, i]) * _df(h[b, i], code, one)


@njit(cache=True, error_model="numpy")
def _loss_rows(u2, b2, y2, gcode, lcode, c, du):
    """du (N, O) <- c dE/du with u = u2 + b2, y' = g(u); returns sum 2 E (float64).  u2, y2 (N, O)."""
    N, O = u2.shape
    one = np.ones(1, u2.dtype)[0]
    cd = in_dtype(c, u2)
    acc = 0.0
    for n in range(N):
        for o in range(O):
            u = u2[n, o] + b2[o]
            yp = _f(u, gcode, one)
            acc = _loss_term(lcode, acc, u, yp, y2[n, o])
            du[n, o] = _loss_delta(lcode, gcode, yp, y2[n, o], cd, one)
    return acc


# ---------------------------------------------------------------- Python side: one runner per kernel
# Every runner: Runner(p, hidden_act, output_act, criterion, c, trunc, seg_len, B, dtype), then segment(...) per
# segment (dispatch.py), then grads().  Constructing one refuses an activation without a compiled version.
class ScalarRunner:
    """Runs ``scalar_kernel`` segment by segment; x, y are (L,) views of the (T, 1, 1) input."""

    kernel = "scalar"
    nonfinite = False

    def __init__(self, p, hidden_act: Activation, output_act: Activation, criterion: Loss, c: float, trunc: int,
                 seg_len: int, B: int, dtype):
        self.codes = activation_codes(hidden_act, output_act) + (loss_code(criterion),)
        self.pvec = np.array([p.w[0, 0], p.w_x[0, 0], p.w_h[0, 0], p.b1[0], p.b2[0], 0.0, c, 0.0])
        self.trunc = trunc
        self.hbuf = np.empty(seg_len + 1, dtype)  # (L+1,)
        self.dubuf = np.empty(seg_len, dtype)  # (L,)
        self.out = np.empty(7)
        self.grad_sum = np.zeros(5)  # dw, dw_x, dw_h, db1, db2 (float64), summed over segments
        self.dtype = dtype

    def segment(self, x, y, h_start, carry, need_grad: bool) -> tuple[float, np.ndarray]:
        """x (L, 1, D=1), y (L, 1, 1), h_start (1, 1), carry (1, 1) float64 in/out."""
        L = x.shape[0]
        pv = self.pvec
        pv[5] = h_start[0, 0]
        pv[7] = carry[0, 0]
        status = scalar_kernel(x.reshape(L), y.reshape(L), pv, *self.codes, self.trunc, need_grad,
                               self.hbuf[: L + 1], self.dubuf[:L], self.out)
        if status:
            self.nonfinite = True
        if need_grad:
            self.grad_sum += self.out[1:6]
            carry[0, 0] = self.out[6]
            h_end = self.hbuf[L]
        else:
            h_end = self.out[6]
        return float(self.out[0]), np.full((1, 1), h_end, self.dtype)

    def grads(self) -> dict[str, np.ndarray]:
        d = self.dtype
        gw, gwx, gwh, gb1, gb2 = self.grad_sum
        return {"w": np.full((1, 1), gw, d), "w_x": np.full((1, 1), gwx, d), "w_h": np.full((1, 1), gwh, d),
                "b1": np.full(1, gb1, d), "b2": np.full(1, gb2, d)}


class LoopRunner:
    """Runs ``batched_kernel`` (every product in the fixed order of ``bptt.products``), in the array dtype."""

    kernel = "loop"
    nonfinite = False

    def __init__(self, p, hidden_act: Activation, output_act: Activation, criterion: Loss, c: float, trunc: int,
                 seg_len: int, B: int, dtype):
        self.codes = activation_codes(hidden_act, output_act) + (loss_code(criterion),)
        self.weights = (p.w, np.ascontiguousarray(p.w_x.T), p.w_h, np.ascontiguousarray(p.w_h.T))  # w, w_x^T, w_h, w_h^T
        self.biases = (p.b1, p.b2)
        self.c, self.trunc, self.dtype = c, trunc, dtype
        H = p.w_h.shape[0]
        O = p.w.shape[0]
        self.hbuf = np.empty((seg_len + 1, B, H), dtype)  # (L+1, B, H)
        self.zbuf = np.empty((seg_len, B, H), dtype)  # (L, B, H)
        self.ubuf = np.empty((seg_len, B, O), dtype)  # (L, B, O)
        self.grad_sum = tuple(np.zeros(v.shape, dtype) for v in p)  # Params order: w, w_x, w_h, b1, b2

    def segment(self, x, y, h_start, carry, need_grad: bool):
        L = x.shape[0]
        hb = self.hbuf[: L + 1]
        cy = carry.astype(self.dtype)  # (B, H)
        loss = batched_kernel(x, y, h_start, self.weights, self.biases, self.codes, self.c, self.trunc, need_grad,
                              cy, (hb, self.zbuf[:L], self.ubuf[:L]), self.grad_sum)
        carry[...] = cy
        return loss, hb[L].copy()

    def grads(self):
        return {k: v.copy() for k, v in zip(PARAM_NAMES, self.grad_sum)}


class ParallelRunner:
    """Large sizes: a Python loop over t whose per-step products share their rows between numba's
    threads (``_products_compiled.matmul_parallel``: each output summed by one thread in the fixed
    order, so the thread count changes no bit); elementwise steps compiled.  Per-step interpreter
    overhead is small next to a product of >= 2 M multiply-adds."""

    kernel = "parallel"
    nonfinite = False

    def __init__(self, p, hidden_act: Activation, output_act: Activation, criterion: Loss, c: float, trunc: int,
                 seg_len: int, B: int, dtype):
        self.lcode = loss_code(criterion)
        self.fcode, self.gcode = activation_codes(hidden_act, output_act)
        self.p, self.hidden_act, self.output_act = p, hidden_act, output_act
        self.c, self.trunc, self.dtype = c, trunc, dtype
        self.wxT = np.ascontiguousarray(p.w_x.T)  # (D, H)
        self.whT = np.ascontiguousarray(p.w_h.T)  # (H, H)
        self.wT = np.ascontiguousarray(p.w.T)  # (H, O)
        H = p.w_h.shape[0]
        self.hbuf = np.empty((seg_len + 1, B, H), dtype)  # (L+1, B, H)
        self.zbuf = np.empty((seg_len, B, H), dtype)  # (L, B, H): z, then dE/dh, then dz
        self.rec = np.empty((B, H), dtype)  # (B, H)
        self.grad_sum = {k: np.zeros(v.shape, dtype) for k, v in p._asdict().items()}

    def segment(self, x, y, h_start, carry, need_grad: bool):
        p, g, c = self.p, self.output_act, self.c
        L, B, D = x.shape
        H = self.whT.shape[0]
        O = p.w.shape[0]
        hb, zb, rec = self.hbuf[: L + 1], self.zbuf[:L], self.rec
        z2 = zb.reshape(L * B, H)  # (L B, H)
        matmul_parallel(x.reshape(L * B, D), self.wxT, z2)  # input projection, all steps at once
        z2 += p.b1
        hb[0] = h_start
        for t in range(L):
            matmul_parallel(hb[t], self.whT, rec)  # (B, H): h_{t-1} w_h^T
            rec += zb[t]
            _act_rows(rec, hb[t + 1], self.fcode)
        h2 = hb[1:].reshape(L * B, H)  # (L B, H)
        u = np.empty((L * B, O), self.dtype)  # (L B, O)
        matmul_parallel(h2, self.wT, u)
        if self.lcode == 0:  # the squared error, as numpy writes it
            yp = g.value(u + p.b2)  # (L B, O)
            r = yp - y.reshape(L * B, O)  # (L B, O)
            loss = 0.5 * c * float(np.sum(np.square(r, dtype=np.float64)))
            du = c * r * g.deriv(yp)  # (L B, O)
        else:  # any other loss through the kernels' branches
            du = np.empty((L * B, O), self.dtype)  # (L B, O)
            loss = 0.5 * c * _loss_rows(u, p.b2, y.reshape(L * B, O), self.gcode, self.lcode, c, du)
        if not need_grad:
            return loss, hb[L].copy()
        matmul_parallel(du, p.w, z2)  # zbuf: dE_t/dh_t
        if self.trunc >= L:
            cy = carry.astype(self.dtype)  # (B, H)
            for t in range(L - 1, -1, -1):
                _dz_rows(zb[t], cy, hb[t + 1], self.fcode)  # dz_t
                matmul_parallel(zb[t], p.w_h, cy)  # dz_t w_h
            carry[...] = cy
        else:
            dz, dh0 = bptt_truncated(p.w_h, zb, self.hidden_act.deriv(hb[1:]), self.trunc)
            zb[...] = dz
            carry[...] = dh0
        acc = self.grad_sum
        for name, a, b in (("w", du.T, h2), ("w_x", z2.T, x.reshape(L * B, D)), ("w_h", z2.T, hb[:L].reshape(L * B, H))):
            prod = np.empty(acc[name].shape, self.dtype)
            matmul_parallel(a, b, prod)
            acc[name] += prod
        acc["b1"] += z2.sum(axis=0)
        acc["b2"] += du.sum(axis=0)
        return loss, hb[L].copy()

    def grads(self):
        return {k: v.copy() for k, v in self.grad_sum.items()}


RUNNERS = {"scalar": ScalarRunner, "loop": LoopRunner, "parallel": ParallelRunner}


# ---------------------------------------------------------------- the scalar fast path
@njit(cache=True, error_model="numpy")
def scalar_fast(x, y, theta, h0, c, fcode, gcode, lcode, g):
    """The seed's network (D = H = O = 1, B = 1), full BPTT, with the least call overhead.

    x, y (T, 1, 1), C-contiguous; theta (5,) = (w, w_x, w_h, b1, b2); h0, c floats; g (5, 1, 1) <-
    the gradients in theta's order; every array in the dtype of x.  Returns the loss, NaN
    if it or a gradient (or h0) is not finite.  Each array argument costs the call its unboxing, hence
    one array for the parameters and one for the gradients (and one allocation for scalar_kernel's
    float64 parameters and results).
    """
    T = x.shape[0]
    q = np.empty(15)  # q[:8] scalar_kernel's p, q[8:] its out
    q[0] = theta[0]
    q[1] = theta[1]
    q[2] = theta[2]
    q[3] = theta[3]
    q[4] = theta[4]
    q[5] = h0
    q[6] = c
    q[7] = 0.0
    buf = np.empty(2 * T + 1, x.dtype)  # hbuf (T + 1,), then dubuf (T,)
    status = scalar_kernel(x.reshape(T), y.reshape(T), q[:8], fcode, gcode, lcode, T, True, buf[: T + 1],
                           buf[T + 1 :], q[8:])
    g[0, 0, 0] = q[9]
    g[1, 0, 0] = q[10]
    g[2, 0, 0] = q[11]
    g[3, 0, 0] = q[12]
    g[4, 0, 0] = q[13]
    return math.nan if status or not math.isfinite(q[5]) else q[8]


@njit(cache=True, error_model="numpy")
def batched_fast(x, y, h0, w, wx, wh, b1, b2, c, trunc, fcode, gcode, lcode, gw, gwx, gwh, gb1, gb2):
    """One full (or truncated) gradient in one compiled call, buffers made here: ``batched_kernel``.

    x (T, B, D), y (T, B, O), h0 (B, H), the parameters and gw..gb2 (written: the gradients) in one
    dtype, C-contiguous.  Returns the loss; NaN if it or any gradient is not finite (dispatch then
    runs the segment kernels, which explain).
    """
    T, B, _ = x.shape
    O, H = w.shape
    dt = x.dtype
    bufs = (np.empty((T + 1, B, H), dt), np.empty((T, B, H), dt), np.empty((T, B, O), dt))
    gw[:] = 0
    gwx[:] = 0
    gwh[:] = 0
    gb1[:] = 0
    gb2[:] = 0
    grads = (gw, gwx, gwh, gb1, gb2)
    carry = np.zeros((B, H), dt)  # (B, H): nothing comes after the last step
    loss = batched_kernel(x, y, h0, (w, np.ascontiguousarray(wx.T), wh, np.ascontiguousarray(wh.T)), (b1, b2),
                          (fcode, gcode, lcode), c, trunc, True, carry, bufs, grads)
    # non-finite anywhere makes the total non-finite (so does a sum overflowing: that is refused too)
    total = loss + np.sum(gw) + np.sum(gwx) + np.sum(gwh) + np.sum(gb1) + np.sum(gb2)
    return loss if math.isfinite(total) else math.nan


# ---------------------------------------------------------------- the lanes kernel (small networks, every form)
# Small networks (H <= LANES_MAX_H): the batch is the vector lane.  Every (H, B) array is stored
# unit-major, so each per-step product is H^2 scalar-times-vector updates over B contiguous lanes
# (z[i, :] += w_h[i, k] h[k, :]), the float32 sigmoid vectorises over B, and the weight-gradient
# sums are kept per lane ((H, H, B) accumulators, elementwise updates, no reductions) and summed
# over the lanes once at the end.  No BLAS call, no allocation per step.
@njit(cache=True, error_model="numpy")
def _lanes_forward(xs, hs, w, wx, wh, b1, b2, y, fcode, gcode, lcode, cd, du):
    """hs[1:] (T, H, B) <- h_1..h_T from hs[0]; du (T, O, B) <- c dE/du; returns sum 2 E (float64, before
    the factor c / 2).  xs (T, D, B) the input, lanes over the batch; y (T, B, O)."""
    T, D, B = xs.shape
    H = wh.shape[0]
    O = w.shape[0]
    dt = xs.dtype
    one = np.ones(1, dt)[0]
    z = np.empty((H, B), dt)  # (H, B)
    u = np.empty(B, dt)  # (B,)
    sq = np.zeros(B)  # (B,) float64: 2 E per lane
    for t in range(T):
        for i in range(H):
            bi = b1[i]
            for b in range(B):
                z[i, b] = bi
            for d in range(D):
                wv = wx[i, d]
                for b in range(B):
                    z[i, b] += wv * xs[t, d, b]
            for k in range(H):
                wv = wh[i, k]
                for b in range(B):
                    z[i, b] += wv * hs[t, k, b]
        _act_2d(z, hs[t + 1], fcode, one)  # (H, B) lanes
        for o in range(O):
            bo = b2[o]
            for b in range(B):
                u[b] = bo
            for i in range(H):
                wv = w[o, i]
                for b in range(B):
                    u[b] += wv * hs[t + 1, i, b]
            for b in range(B):
                if gcode == 0:
                    yp = one / (one + fexp(-u[b]))
                else:
                    yp = _f(u[b], gcode, one)
                sq[b] = _loss_term(lcode, sq[b], u[b], yp, y[t, b, o])
                du[t, o, b] = _loss_delta(lcode, gcode, yp, y[t, b, o], cd, one)
    return np.sum(sq)


@njit(cache=True, error_model="numpy")
def _lanes_dh(du, w, t, dh):
    """dh (H, B) <- dE_t/dh_t = w^T du_t."""
    O, H = w.shape
    B = dh.shape[1]
    for i in range(H):
        for b in range(B):
            dh[i, b] = 0
        for o in range(O):
            wv = w[o, i]
            for b in range(B):
                dh[i, b] += wv * du[t, o, b]


@njit(cache=True, error_model="numpy")
def _lanes_back_wh(d, wh, out):
    """out (H, B) <- w_h^T d for d (H, B): the signal one step further back."""
    H, B = d.shape
    for k in range(H):
        for b in range(B):
            out[k, b] = 0
        for i in range(H):
            wv = wh[i, k]
            for b in range(B):
                out[k, b] += wv * d[i, b]


@njit(cache=True, error_model="numpy")
def _lanes_backward(hs, du, w, wh, fcode, trunc, dz):
    """dz (T, H, B) <- dLoss/dz_t, full BPTT (trunc >= T) or each E_t through at most trunc steps."""
    T, H, B = dz.shape
    dt = dz.dtype
    one = np.ones(1, dt)[0]
    dh = np.empty((H, B), dt)  # (H, B)
    carry = np.zeros((H, B), dt)  # (H, B): dLoss/dh_t from the steps after t
    if trunc >= T:
        for t in range(T - 1, -1, -1):
            _lanes_dh(du, w, t, dh)
            for i in range(H):
                for b in range(B):
                    dz[t, i, b] = (dh[i, b] + carry[i, b]) * _df(hs[t + 1, i, b], fcode, one)
            _lanes_back_wh(dz[t], wh, carry)
        return
    dz[:] = 0
    for t in range(T):
        _lanes_dh(du, w, t, dh)
        s_end = t - trunc if t - trunc > -1 else -1
        for s in range(t, s_end, -1):
            for i in range(H):
                for b in range(B):
                    dh[i, b] *= _df(hs[s + 1, i, b], fcode, one)
                    dz[s, i, b] += dh[i, b]
            if s - 1 > s_end:
                _lanes_back_wh(dh, wh, carry)
                dh[:] = carry


@njit(cache=True, error_model="numpy")
def _lanes_grads(xs, hs, dz, du, gw, gwx, gwh, gb1, gb2):
    """The five gradients (written) from per-lane sums over t, then one sum over the lanes."""
    T, D, B = xs.shape
    H = dz.shape[1]
    O = du.shape[1]
    dt = xs.dtype
    aw = np.zeros((O, H, B), dt)
    awx = np.zeros((H, D, B), dt)
    awh = np.zeros((H, H, B), dt)
    ab1 = np.zeros((H, B), dt)
    ab2 = np.zeros((O, B), dt)
    for t in range(T):
        for o in range(O):
            for b in range(B):
                ab2[o, b] += du[t, o, b]
            for i in range(H):
                for b in range(B):
                    aw[o, i, b] += du[t, o, b] * hs[t + 1, i, b]
        for i in range(H):
            for b in range(B):
                ab1[i, b] += dz[t, i, b]
            for d in range(D):
                for b in range(B):
                    awx[i, d, b] += dz[t, i, b] * xs[t, d, b]
            for k in range(H):
                for b in range(B):
                    awh[i, k, b] += dz[t, i, b] * hs[t, k, b]
    for o in range(O):
        gb2[o] = np.sum(ab2[o])
        for i in range(H):
            gw[o, i] = np.sum(aw[o, i])
    for i in range(H):
        gb1[i] = np.sum(ab1[i])
        for d in range(D):
            gwx[i, d] = np.sum(awx[i, d])
        for k in range(H):
            gwh[i, k] = np.sum(awh[i, k])


@njit(cache=True, error_model="numpy")
def lanes_kernel(x, y, h0, w, wx, wh, b1, b2, c, trunc, fcode, gcode, lcode, gw, gwx, gwh, gb1, gb2):
    """One whole gradient of a small network, lanes over the batch.  Returns the loss (float64), NaN
    if it or any gradient is not finite (dispatch then runs the segment kernels, which explain).

    x (T, B, D), y (T, B, O), h0 (B, H), the parameters and gw..gb2 (written: the gradients, shaped
    like the parameters) in one dtype, C-contiguous; c the loss scale, trunc k (>= T: full BPTT).
    """
    T, B, D = x.shape
    O, H = w.shape
    dt = x.dtype
    xs = np.empty((T, D, B), dt)  # (T, D, B): x, lanes over the batch
    for t in range(T):
        for b in range(B):
            for d in range(D):
                xs[t, d, b] = x[t, b, d]
    hs = np.empty((T + 1, H, B), dt)  # (T+1, H, B): h_0..h_T
    for b in range(B):
        for i in range(H):
            hs[0, i, b] = h0[b, i]
    cv = np.empty(1, dt)
    cv[0] = c
    du = np.empty((T, O, B), dt)  # (T, O, B)
    loss = 0.5 * c * _lanes_forward(xs, hs, w, wx, wh, b1, b2, y, fcode, gcode, lcode, cv[0], du)
    dz = np.empty((T, H, B), dt)  # (T, H, B)
    _lanes_backward(hs, du, w, wh, fcode, trunc, dz)
    _lanes_grads(xs, hs, dz, du, gw, gwx, gwh, gb1, gb2)
    total = loss + np.sum(gw) + np.sum(gwx) + np.sum(gwh) + np.sum(gb1) + np.sum(gb2)
    return loss if math.isfinite(total) else math.nan


# ---------------------------------------------------------------- the compiled training step
# One call per mini-batch: the gradient (``dispatch.fast_kernel``'s kernels), global-norm clipping and the
# optimizer's own compiled update (_optim_compiled.update, the code its fused_update declares), in the
# order of optim.py's numpy code so that float64 training equals the numpy loop to rounding (the
# squared norm is summed sequentially here, pairwise by numpy: the last bits of the norm may differ).
# hyper (float64): see STEP_FIELDS ("optimizer" is the update's code, lr..nesterov its numbers); every
# number is cast to the arrays' dtype before it meets them, as numpy does with a Python float and a
# float32 array.
STEP_FIELDS = ("kernel", "optimizer", "lr", "c1", "c2", "beta1", "beta2", "eps", "momentum", "nesterov", "clip",
               "c", "trunc")
STEP_KERNELS = {"lanes": 0, "loop": 1}


@njit(cache=True, error_model="numpy")
def _sq_sum(g):
    """sum g^2 in g's dtype, returned as float64 (numpy: float(np.sum(g * g)))."""
    f = g.reshape(g.size)
    s = f[0] * 0
    for i in range(f.size):
        s += f[i] * f[i]
    return np.float64(s)


@njit(cache=True, error_model="numpy")
def _scale(g, s):
    f = g.reshape(g.size)
    sd = in_dtype(s, g)
    for i in range(f.size):
        f[i] = f[i] * sd


@njit(cache=True, error_model="numpy")
def _all_finite(a):
    f = a.reshape(a.size)
    for i in range(f.size):
        if not math.isfinite(f[i]):
            return False
    return True


@njit(cache=True, error_model="numpy")
def train_step(x, y, h0, params, grads, s1, s2, hyper, fcode, gcode, lcode):
    """One mini-batch: gradient, clipping, update.  params, grads (scratch), s1 and s2 (the optimizer's
    state, optim.FusedUpdate) are tuples (w, w_x, w_h, b1, b2); x (T, B, D), y (T, B, O), h0 (B, H).
    Returns the loss; NaN (nothing updated) if the loss or a gradient is not finite; inf if the
    update made a parameter non-finite."""
    w, wx, wh, b1, b2 = params
    gw, gwx, gwh, gb1, gb2 = grads
    kern = int(hyper[0])
    c, trunc = hyper[11], int(hyper[12])
    if kern == 0:
        loss = lanes_kernel(x, y, h0, w, wx, wh, b1, b2, c, trunc, fcode, gcode, lcode, gw, gwx, gwh, gb1, gb2)
    else:
        loss = batched_fast(x, y, h0, w, wx, wh, b1, b2, c, trunc, fcode, gcode, lcode, gw, gwx, gwh, gb1, gb2)
    if loss != loss:
        return loss
    clip = hyper[10]
    if clip >= 0:
        norm = math.sqrt(_sq_sum(gw) + _sq_sum(gwx) + _sq_sum(gwh) + _sq_sum(gb1) + _sq_sum(gb2))
        if norm > clip:
            s = clip / (norm + 1e-12)
            _scale(gw, s)
            _scale(gwx, s)
            _scale(gwh, s)
            _scale(gb1, s)
            _scale(gb2, s)
    code = int(hyper[1])
    update(code, w, gw, s1[0], s2[0], hyper)
    update(code, wx, gwx, s1[1], s2[1], hyper)
    update(code, wh, gwh, s1[2], s2[2], hyper)
    update(code, b1, gb1, s1[3], s2[3], hyper)
    update(code, b2, gb2, s1[4], s2[4], hyper)
    if _all_finite(w) and _all_finite(wx) and _all_finite(wh) and _all_finite(b1) and _all_finite(b2):
        return loss
    return math.inf


@njit(cache=True, error_model="numpy")
def train_steps(xs, ys, order, batch_size, first, params, grads, s1, s2, hypers, fcode, gcode, lcode, losses):
    """Mini-batches first, first + 1, ... of an epoch in one call, each one ``train_step``.

    Batch i takes the sequences order[i B : (i + 1) B] (B = batch_size; the last batch may be short) of
    xs (T, N, D) and ys (T, N, O), gathered as numpy's xs[:, idx] would, with h_0 = 0; hypers (n, len(
    STEP_FIELDS)) holds one row per batch (its kernel, learning rate, the optimizer's numbers for its
    update number, c = 1 / (T b)).  losses (n,) <- each batch's loss.  Returns how many batches ran:
    fewer than n when batch k's loss or gradient is not finite (losses[k] NaN, nothing updated) or its
    update made a parameter non-finite (losses[k] inf); the caller stops there, as the loop over
    ``train_step`` would.  The same arithmetic as calling ``train_step`` batch by batch, so the same bits.
    """
    T, N, D = xs.shape
    O = ys.shape[2]
    H = params[2].shape[0]
    dt = xs.dtype
    for j in range(hypers.shape[0]):
        lo = (first + j) * batch_size
        b = min(batch_size, N - lo)
        xb = np.empty((T, b, D), dt)  # (T, b, D)
        yb = np.empty((T, b, O), dt)  # (T, b, O)
        for t in range(T):
            for k in range(b):
                n = order[lo + k]
                for d in range(D):
                    xb[t, k, d] = xs[t, n, d]
                for o in range(O):
                    yb[t, k, o] = ys[t, n, o]
        loss = train_step(xb, yb, np.zeros((b, H), dt), params, grads, s1, s2, hypers[j], fcode, gcode, lcode)
        losses[j] = loss
        if not math.isfinite(loss):
            return j
    return hypers.shape[0]
