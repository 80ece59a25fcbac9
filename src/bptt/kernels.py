r"""Compiled BPTT: the engine's forward and backward, fused, with numba.

The same formulas as ``engine.py`` (read that file for the derivation):

    z_t = w_x x_t + w_h h_{t-1} + b1,  h_t = f(z_t),  u_t = w h_t + b2,  y'_t = g(u_t)
    du_t = c (y'_t - y_t) g'(u_t)
    dz_t = (du_t w + dz_{t+1} w_h) * f'(z_t)          (dz_{T+1} w_h = the carry, 0 for a whole sequence)
    dLoss/dw = sum du_t^T h_t,  dLoss/dw_x = sum dz_t^T x_t,  dLoss/dw_h = sum dz_t^T h_{t-1},
    dLoss/db1 = sum dz_t,  dLoss/db2 = sum du_t

Three kernels, each for float32 and float64 (six compiled signatures, cached on
disk by ``cache=True`` so a machine compiles them once):

    scalar  D = H = O = 1, B = 1: a plain loop over t with every value in registers.
    loop    small H: explicit loops over (b, i, j); no BLAS call per step.
    blas    large H: the per-step (B, H) x (H, H) products and every weight-gradient
            sum are BLAS GEMMs (``np.dot`` inside numba), with no interpreter between steps.

Every kernel processes one *segment* of the sequence: it starts from h_start and
a carry dLoss/dh_end coming from the steps after the segment, and returns the
segment's loss, adds the segment's gradients, and leaves dLoss/dh_start in the
carry.  A whole sequence is one segment with carry 0; gradient checkpointing
(``checkpoint.py``) runs many.  Truncated BPTT (each error term sends its signal
back at most k steps, exactly ``engine._bptt_truncated``) is supported for a
whole sequence only.

Scalar and loop kernels do their arithmetic in float64 whatever the storage
dtype (stored h is rounded to the dtype, as the reference stores it); the BLAS
kernel computes in the array dtype, as numpy does.

This module imports numba at import time; ``bptt.model`` imports it lazily.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Size rule for backend="auto": the loop kernel costs ~B*H*(3H + 2D + 3O) scalar
# multiply-adds per step and no call overhead; the BLAS kernel pays ~1-2 us per
# GEMM call but runs the products at GEMM speed.  Measured on the 2-core machine
# of README "## Speed": the loop kernel wins up to about H = 16.
LOOP_MAX_H = 16

KERNELS = ("scalar", "loop", "blas")


def choose_kernel(T: int, B: int, D: int, H: int, O: int) -> str:
    """Which compiled kernel backend="auto" uses for these sizes."""
    if B == 1 and D == 1 and H == 1 and O == 1:
        return "scalar"
    if H <= LOOP_MAX_H and O <= 4 * LOOP_MAX_H and D <= 4 * LOOP_MAX_H:
        return "loop"
    return "blas"


# ---------------------------------------------------------------- activations by code
# The integer codes are activations.py's ``code`` column: 0 sigmoid, 1 tanh, 2 relu, 3 identity.
@njit(cache=True)
def _f(z, code):
    """f(z) for a float64 scalar z."""
    if code == 0:
        if z >= 0.0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)  # z < 0: never overflows
        return e / (1.0 + e)
    if code == 1:
        return math.tanh(z)
    if code == 2:
        return z if z > 0.0 else 0.0
    return z


@njit(cache=True)
def _df(a, code):
    """f'(z) from the output a = f(z), as activations.py writes it."""
    if code == 0:
        return a * (1.0 - a)
    if code == 1:
        return 1.0 - a * a
    if code == 2:
        return 1.0 if a > 0.0 else 0.0
    return 1.0


# ---------------------------------------------------------------- scalar kernel
@njit(cache=True)
def scalar_kernel(x, y, p, fcode, gcode, trunc, need_grad, hbuf, dubuf, out):
    """One scalar sequence (D = H = O = 1, B = 1).

    x, y (L,) float32/64; p float64[8] = (w, w_x, w_h, b1, b2, h_start, c, carry_in);
    hbuf (L+1,) and dubuf (L,) float64 scratch; trunc: k for truncated BPTT (>= L: full).
    out float64[7] <- (loss, dw, dw_x, dw_h, db1, db2, dLoss/dh_start).  Gradients are
    *written*, not accumulated.  Returns 0, or 1 if an input or result is not finite.
    """
    L = x.shape[0]
    w, wx, wh, b1, b2, h, c = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    loss = 0.0
    hbuf[0] = h
    for t in range(L):
        xt = np.float64(x[t])
        yt = np.float64(y[t])
        h = _f(wx * xt + wh * h + b1, fcode)
        hbuf[t + 1] = h
        yp = _f(w * h + b2, gcode)
        r = yp - yt
        loss += r * r
        dubuf[t] = c * r * _df(yp, gcode)  # du_t
    loss *= 0.5 * c
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
        carry = p[7]  # dLoss/dh_L from after the segment
        for t in range(L - 1, -1, -1):
            du = dubuf[t]
            ht = hbuf[t + 1]
            dz = (du * w + carry) * _df(ht, fcode)
            gw += du * ht
            gb2 += du
            gwx += dz * x[t]
            gwh += dz * hbuf[t]
            gb1 += dz
            carry = dz * wh
        dh0 = carry
    else:
        # engine._bptt_truncated: E_t reaches back through s = t .. t-k+1 only
        dh0 = 0.0
        for t in range(L):
            du = dubuf[t]
            gw += du * hbuf[t + 1]
            gb2 += du
            delta = du * w
            s_end = t - trunc if t - trunc > -1 else -1
            for s in range(t, s_end, -1):
                dz = delta * _df(hbuf[s + 1], fcode)
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


# ---------------------------------------------------------------- loop kernel
@njit(cache=True)
def loop_kernel(x, y, h0, w, wx, wh, b1, b2, fcode, gcode, c, trunc, need_grad, carry, hbuf, g_w, g_wx, g_wh, g_b1, g_b2):
    """One segment, batched, explicit loops (small H).

    x (L, B, D), y (L, B, O), h0 (B, H), w (O, H), wx (H, D), wh (H, H), b1 (H,), b2 (O,): the dtype.
    carry (B, H) float64: in dLoss/dh_L from after the segment, out dLoss/dh_start.
    hbuf (L+1, B, H) dtype: receives h_start..h_L.  g_* float64, shaped like the
    parameters: the segment's gradients are *added*.  Returns the segment's loss.
    """
    L, B, D = x.shape
    H = wh.shape[0]
    O = w.shape[0]
    du = np.empty((L, B, O))  # (L, B, O) float64
    zrow = np.empty(H)
    loss = 0.0
    hbuf[0] = h0
    for t in range(L):
        for b in range(B):
            for i in range(H):
                acc = np.float64(b1[i])
                for d in range(D):
                    acc += wx[i, d] * np.float64(x[t, b, d])
                for j in range(H):
                    acc += wh[i, j] * np.float64(hbuf[t, b, j])
                zrow[i] = _f(acc, fcode)
            for i in range(H):
                hbuf[t + 1, b, i] = zrow[i]
            for o in range(O):
                acc = np.float64(b2[o])
                for i in range(H):
                    acc += w[o, i] * np.float64(hbuf[t + 1, b, i])
                yp = _f(acc, gcode)
                r = yp - y[t, b, o]
                loss += r * r
                du[t, b, o] = c * r * _df(yp, gcode)
    loss *= 0.5 * c
    if not need_grad:
        return loss
    dz = np.zeros((L, B, H))  # (L, B, H) float64: dLoss/dz_t
    if trunc >= L:
        for t in range(L - 1, -1, -1):
            for b in range(B):
                for i in range(H):
                    acc = carry[b, i]
                    for o in range(O):
                        acc += du[t, b, o] * w[o, i]
                    dz[t, b, i] = acc * _df(np.float64(hbuf[t + 1, b, i]), fcode)
                for j in range(H):
                    acc = 0.0
                    for i in range(H):
                        acc += dz[t, b, i] * wh[i, j]
                    carry[b, j] = acc
    else:
        delta = np.empty(H)
        nxt = np.empty(H)
        for b in range(B):
            for j in range(H):
                carry[b, j] = 0.0
        for t in range(L):
            s_end = t - trunc if t - trunc > -1 else -1
            for b in range(B):
                for i in range(H):
                    acc = 0.0
                    for o in range(O):
                        acc += du[t, b, o] * w[o, i]
                    delta[i] = acc
                for s in range(t, s_end, -1):
                    for i in range(H):
                        delta[i] *= _df(np.float64(hbuf[s + 1, b, i]), fcode)
                        dz[s, b, i] += delta[i]
                    for j in range(H):
                        acc = 0.0
                        for i in range(H):
                            acc += delta[i] * wh[i, j]
                        nxt[j] = acc
                    for j in range(H):
                        delta[j] = nxt[j]
                    if s == 0:
                        for j in range(H):
                            carry[b, j] += delta[j]
    for t in range(L):
        for b in range(B):
            for o in range(O):
                d = du[t, b, o]
                g_b2[o] += d
                for i in range(H):
                    g_w[o, i] += d * hbuf[t + 1, b, i]
            for i in range(H):
                d = dz[t, b, i]
                g_b1[i] += d
                for k in range(D):
                    g_wx[i, k] += d * x[t, b, k]
                for j in range(H):
                    g_wh[i, j] += d * hbuf[t, b, j]
    return loss


# ---------------------------------------------------------------- BLAS kernel
@njit(cache=True)
def blas_kernel(x, y, h0, w, wxT, wh, whT, b1, b2, fcode, gcode, c, trunc, need_grad, carry, hbuf, zbuf, ubuf,
                g_w, g_wx, g_wh, g_b1, g_b2):
    """One segment, batched, GEMMs for every product (large H).  All arrays in one dtype, C-contiguous.

    x (L, B, D), y (L, B, O), h0 (B, H), w (O, H), wxT = w_x^T (D, H), wh (H, H), whT = w_h^T,
    b1 (H,), b2 (O,).  carry (B, H): in dLoss/dh_L, out dLoss/dh_start.  Scratch: hbuf (L+1, B, H),
    zbuf (L, B, H), ubuf (L, B, O).  g_* shaped like the parameters: gradients are *added*.
    Returns the segment's loss (float64).
    """
    L, B, D = x.shape
    H = wh.shape[0]
    O = w.shape[0]
    dt = x.dtype
    z2 = zbuf.reshape(L * B, H)  # (L B, H)
    np.dot(x.reshape(L * B, D), wxT, z2)  # input projection for every step at once
    hbuf[0] = h0
    rec = np.empty((B, H), dt)  # (B, H)
    for t in range(L):
        np.dot(hbuf[t], whT, rec)  # h_{t-1} w_h^T
        zt = zbuf[t]
        ht = hbuf[t + 1]
        for b in range(B):
            for i in range(H):
                ht[b, i] = _f(np.float64(zt[b, i] + rec[b, i] + b1[i]), fcode)
    h2 = hbuf[1:].reshape(L * B, H)  # (L B, H): h_1..h_L
    u2 = ubuf.reshape(L * B, O)  # (L B, O)
    np.dot(h2, w.T.copy(), u2)
    loss = 0.0
    y2 = y.reshape(L * B, O)
    for n in range(L * B):
        for o in range(O):
            yp = _f(np.float64(u2[n, o] + b2[o]), gcode)
            r = yp - y2[n, o]
            loss += r * r
            u2[n, o] = c * r * _df(yp, gcode)  # ubuf now holds du
    loss *= 0.5 * c
    if not need_grad:
        return loss
    np.dot(u2, w, z2)  # zbuf now holds dE_t/dh_t = du_t w  (L B, H)
    if trunc >= L:
        for t in range(L - 1, -1, -1):
            dzt = zbuf[t]
            ht = hbuf[t + 1]
            for b in range(B):
                for i in range(H):
                    dzt[b, i] = (dzt[b, i] + carry[b, i]) * _df(np.float64(ht[b, i]), fcode)
            np.dot(dzt, wh, carry)  # dz_t w_h
    else:
        dz = np.zeros((L, B, H), dt)  # (L, B, H): summed over error terms
        delta = np.empty((B, H), dt)
        nxt = np.empty((B, H), dt)
        carry[:] = 0.0
        for t in range(L):
            delta[:] = zbuf[t]
            s_end = t - trunc if t - trunc > -1 else -1
            for s in range(t, s_end, -1):
                hs = hbuf[s + 1]
                dzs = dz[s]
                for b in range(B):
                    for i in range(H):
                        delta[b, i] *= _df(np.float64(hs[b, i]), fcode)
                        dzs[b, i] += delta[b, i]
                np.dot(delta, wh, nxt)
                delta[:] = nxt
                if s == 0:
                    carry += delta
        zbuf[:] = dz
    # weight gradients: single products over all (t, b)
    g_w += np.dot(u2.T, h2)  # (O, H)
    g_wx += np.dot(z2.T, x.reshape(L * B, D))  # (H, D)
    g_wh += np.dot(z2.T, hbuf[:L].reshape(L * B, H))  # (H, H)
    for n in range(L * B):
        for i in range(H):
            g_b1[i] += z2[n, i]
        for o in range(O):
            g_b2[o] += u2[n, o]
    return loss


# ---------------------------------------------------------------- Python side: one runner per kernel
class ScalarRunner:
    """Runs ``scalar_kernel`` segment by segment; x, y are (L,) views of the (T, 1, 1) input."""

    kernel = "scalar"

    def __init__(self, p, f, g, c: float, trunc: int, seg_len: int, B: int, dtype):
        self.pvec = np.array([p.w[0, 0], p.w_x[0, 0], p.w_h[0, 0], p.b1[0], p.b2[0], 0.0, c, 0.0])
        self.codes = (f.code, g.code)
        self.trunc = trunc
        self.hbuf = np.empty(seg_len + 1)  # (L+1,) float64
        self.dubuf = np.empty(seg_len)  # (L,) float64
        self.out = np.empty(7)
        self.g = np.zeros(5)  # dw, dw_x, dw_h, db1, db2 (float64)
        self.dtype = dtype

    def segment(self, x, y, h_start, carry, need_grad: bool) -> tuple[float, np.ndarray]:
        """x (L, 1, D=1), y (L, 1, 1), h_start (1, 1), carry (1, 1) float64 in/out."""
        L = x.shape[0]
        pv = self.pvec
        pv[5] = h_start[0, 0]
        pv[7] = carry[0, 0]
        status = scalar_kernel(x.reshape(L), y.reshape(L), pv, self.codes[0], self.codes[1], self.trunc, need_grad,
                               self.hbuf[: L + 1], self.dubuf[:L], self.out)
        if status:
            self.nonfinite = True
        if need_grad:
            self.g += self.out[1:6]
            carry[0, 0] = self.out[6]
            h_end = self.hbuf[L]
        else:
            h_end = self.out[6]
        return float(self.out[0]), np.full((1, 1), h_end, self.dtype)

    nonfinite = False

    def grads(self) -> dict[str, np.ndarray]:
        d = self.dtype
        gw, gwx, gwh, gb1, gb2 = self.g
        return {"w": np.full((1, 1), gw, d), "w_x": np.full((1, 1), gwx, d), "w_h": np.full((1, 1), gwh, d),
                "b1": np.full(1, gb1, d), "b2": np.full(1, gb2, d)}


class LoopRunner:
    """Runs ``loop_kernel``: explicit loops, float64 arithmetic and accumulators."""

    kernel = "loop"
    nonfinite = False

    def __init__(self, p, f, g, c: float, trunc: int, seg_len: int, B: int, dtype):
        self.p = p
        self.codes = (f.code, g.code)
        self.c, self.trunc, self.dtype = c, trunc, dtype
        H = p.w_h.shape[0]
        self.hbuf = np.empty((seg_len + 1, B, H), dtype)  # (L+1, B, H)
        self.g = {k: np.zeros(v.shape) for k, v in p._asdict().items()}

    def segment(self, x, y, h_start, carry, need_grad: bool):
        L = x.shape[0]
        p, g = self.p, self.g
        hb = self.hbuf[: L + 1]
        loss = loop_kernel(x, y, h_start, p.w, p.w_x, p.w_h, p.b1, p.b2, self.codes[0], self.codes[1], self.c,
                           self.trunc, need_grad, carry, hb, g["w"], g["w_x"], g["w_h"], g["b1"], g["b2"])
        return loss, hb[L].copy()

    def grads(self):
        return {k: v.astype(self.dtype) for k, v in self.g.items()}


class BlasRunner:
    """Runs ``blas_kernel``: GEMMs in the array dtype."""

    kernel = "blas"
    nonfinite = False

    def __init__(self, p, f, g, c: float, trunc: int, seg_len: int, B: int, dtype):
        self.p = p
        self.wxT = np.ascontiguousarray(p.w_x.T)  # (D, H)
        self.whT = np.ascontiguousarray(p.w_h.T)  # (H, H)
        self.codes = (f.code, g.code)
        self.c, self.trunc, self.dtype = c, trunc, dtype
        H = p.w_h.shape[0]
        O = p.w.shape[0]
        self.hbuf = np.empty((seg_len + 1, B, H), dtype)  # (L+1, B, H)
        self.zbuf = np.empty((seg_len, B, H), dtype)  # (L, B, H)
        self.ubuf = np.empty((seg_len, B, O), dtype)  # (L, B, O)
        self.g = {k: np.zeros(v.shape, dtype) for k, v in p._asdict().items()}

    def segment(self, x, y, h_start, carry, need_grad: bool):
        L = x.shape[0]
        p, g = self.p, self.g
        hb = self.hbuf[: L + 1]
        cy = carry.astype(self.dtype)
        loss = blas_kernel(x, y, h_start, p.w, self.wxT, p.w_h, self.whT, p.b1, p.b2, self.codes[0], self.codes[1],
                           self.c, self.trunc, need_grad, cy, hb, self.zbuf[:L], self.ubuf[:L],
                           g["w"], g["w_x"], g["w_h"], g["b1"], g["b2"])
        carry[...] = cy
        return loss, hb[L].copy()

    def grads(self):
        return {k: v.copy() for k, v in self.g.items()}


RUNNERS = {"scalar": ScalarRunner, "loop": LoopRunner, "blas": BlasRunner}
