r"""Hessian-free's Gauss-Newton products and gradient with compiled recurrences: ``engine.pre_output_tangent``
and ``engine.backward_residual`` with no interpreter between time steps, the same bits.

At θ = (w, w_x, w_h, b1, b2), on a batch x (T, B, D) whose forward pass (``engine.Forward``) is stored:

    tangent   dz_t = dw_x x_t + dw_h h_{t-1} + w_h dh_{t-1} + db1,  dh_t = f'(z_t) dz_t,  dh_0 = 0
              du_t = dw h_t + w dh_t + db2                          (J_h v, J_u v)
    backward  dh_t = r_u,t w + r_h,t + dz_{t+1} w_h,  dz_t = dh_t f'(z_t)
              and the five sums of ``engine.weight_grads``          (J_u^T r_u + J_h^T r_h)

``bptt.hf.Curvature`` builds G v = J_u^T (1/n) mask M J_u v from one tangent pass, the loss's curvature M
(the loss record's ``curvature``, elementwise over (T, B, O): every output activation and loss of the
table, softmax + cross-entropy included) and one backward pass; the structural part S v = J_h^T (1/B) J_h v
is a second backward pass with its own residual, run only when μ > 0.  HF's gradient is the backward pass
with r_u = (1/n) mask dE/du.

Compiled here: with every array in one dtype (float64 training; float32 with float32 vectors), each pass
is one call (``_tangent_fused``, ``_backward_fused``) that also takes the input terms and the output layer a
step at a time; with mixed dtypes (float32 data, CG's float64 vectors) the loop alone
(``_tangent_steps``, ``_backward_steps``) between the engine's own products over all steps, in its dtypes.
Either way each product is ``_products_compiled.matmul_into`` on the operands, in the dtype, that
``products.matmul`` would give it (each output summed over k in order from +0, whatever rows one call
covers), each elementwise operation is the engine's in its order and dtype, and f'(z_t) is
``f.deriv(h_t)``, the activation record's own numpy; the weight-gradient sums are ``engine.weight_grads``
itself.  So the results are the engine's bits exactly, in float64 and float32 alike, whatever the thread
count (tests/test_curvature_kernels.py: ``np.array_equal``).  No fastmath.  No activation or loss reaches
compiled code (f' comes in as an array), so every record of the tables runs, none as another.  A mix whose
carry would change dtype between steps (float32 residuals with float64 weights) runs the engine's loop.
``fprime`` (f'(z_t), (T, B, H)) may be given: a curvature batch's products all share one.

The forward pass: ``forward`` runs ``engine.forward`` with its loop over t compiled (``_forward_steps``): each
step's product as above and the activation record's numpy form written out (sigmoid: 1/(1+e) or e/(1+e),
e = exp(-|z|); tanh), with ``floatmath``'s exp and tanh, the very functions the records call: the same bits.
Other activations, and mixed dtypes, run the engine's loop.
This module imports numba at import time; ``bptt.hf`` imports it on its first product.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import engine
from ._floatmath_compiled import fexp, ftanh
from ._products_compiled import matmul_into
from .activations import Activation
from .engine import Forward, Params
from .products import matmul as mm

# numba's on-disk cache of this file's kernels is dropped only when this file changes, not when the
# modules compiled into them do (_floatmath_compiled.py, _products_compiled.py): this stamp of their sources
# changes this file with them (tests/test_structure.py checks it and prints the new value).
NUMBA_CACHE_STAMP = "d88be6db2eeac7f6"


# ---------------------------------------------------------------- the compiled recurrences
@njit(cache=True, error_model="numpy")
def _tangent_steps(direct, fprime, w_hT, prev, carry, dh):
    """``engine.pre_output_tangent``'s loop: prev_t = f'(z_t) (direct_t + prev_{t-1} w_h^T), dh_t = prev_t.

    direct (T, B, H); fprime (T, B, H) f'(z_t); w_hT (H, H) C-contiguous, prev and carry (B, H) zeros, all
    three in prev's dtype (the engine's after step 1); dh (T, B, H) in h's dtype (the engine stores prev there)."""
    T, B, H = direct.shape
    for t in range(T):
        if t:  # step 1: the engine's product of a zero state, +0
            matmul_into(prev, w_hT, carry)
        for b in range(B):
            for j in range(H):
                v = fprime[t, b, j] * (direct[t, b, j] + carry[b, j])
                prev[b, j] = v
                dh[t, b, j] = v


@njit(cache=True, error_model="numpy")
def _backward_steps(dh_direct, fprime, w_h, carry, dz):
    """``engine.bptt_full``: dz_t = (dh_direct_t + dz_{t+1} w_h) f'(z_t), backwards in t.

    dh_direct (T, B, H), w_h (H, H) C-contiguous, carry (B, H) zeros and dz (T, B, H) in one dtype;
    fprime (T, B, H) f'(z_t)."""
    T, B, H = dh_direct.shape
    for t in range(T - 1, -1, -1):
        for b in range(B):
            for j in range(H):
                dz[t, b, j] = (dh_direct[t, b, j] + carry[b, j]) * fprime[t, b, j]
        if t:
            matmul_into(dz[t], w_h, carry)


@njit(cache=True, error_model="numpy")
def _forward_steps(z, h, w_hT, code):
    """``engine.forward``'s loop: z_t += h_{t-1} w_h^T, h_t = f(z_t) in the record's numpy form, f sigmoid
    (code 0) or tanh (1).  z (T, B, H) holding x_t w_x^T + b1, h (T+1, B, H) with h_0 set, w_hT (H, H)
    C-contiguous, one dtype."""
    T, B, H = z.shape
    one = np.ones(1, z.dtype)[0]
    c = np.empty((B, H), z.dtype)
    for t in range(T):
        matmul_into(h[t], w_hT, c)
        for b in range(B):
            for j in range(H):
                v = z[t, b, j] + c[b, j]
                z[t, b, j] = v
                if code == 0:  # activations._sigmoid
                    e = fexp(-abs(v))
                    h[t + 1, b, j] = one / (one + e) if v >= 0 else e / (one + e)
                else:  # activations' tanh: floatmath.tanh
                    h[t + 1, b, j] = ftanh(v)


# One dtype throughout (the data's, the parameters' and the vector's: float64 training, and float32 with
# float32 vectors): the products over all steps are taken a step at a time inside the loop, so each step's
# (B, H) blocks stay in the cache instead of (T, B, H) temporaries streaming through memory.  Each output of a
# product still sums over k in order from +0, whatever rows a call covers: the same bits.
@njit(cache=True, error_model="numpy")
def _tangent_fused(x, h, dwxT, dwhT, db1, fprime, w_hT, dwT, wT, db2, dh, du):
    """``engine.pre_output_tangent`` in one dtype: dz_t = ((x_t dw_x^T + h_{t-1} dw_h^T) + db1) + dh_{t-1} w_h^T,
    dh_t = f'(z_t) dz_t, du_t = (h_t dw^T + dh_t w^T) + db2.  x (T, B, D), h (T+1, B, H), the transposed
    weights C-contiguous; writes dh (T, B, H) and du (T, B, O)."""
    T, B, H = dh.shape
    O = du.shape[2]
    a = np.empty((B, H), dh.dtype)
    c = np.empty((B, H), dh.dtype)
    carry = np.zeros((B, H), dh.dtype)  # the engine's product of the zero state dh_0, +0
    e = np.empty((B, O), dh.dtype)
    g = np.empty((B, O), dh.dtype)
    for t in range(T):
        matmul_into(x[t], dwxT, a)
        matmul_into(h[t], dwhT, c)
        if t:
            matmul_into(dh[t - 1], w_hT, carry)
        for b in range(B):
            for j in range(H):
                dh[t, b, j] = fprime[t, b, j] * (((a[b, j] + c[b, j]) + db1[j]) + carry[b, j])
        matmul_into(h[t + 1], dwT, e)
        matmul_into(dh[t], wT, g)
        for b in range(B):
            for o in range(O):
                du[t, b, o] = (e[b, o] + g[b, o]) + db2[o]


@njit(cache=True, error_model="numpy")
def _backward_fused(r_u, r_h, with_h, w, w_h, fprime, dz):
    """``engine.backward_residual``'s recurrence in one dtype: dz_t = ((r_u,t w + r_h,t) + dz_{t+1} w_h) f'(z_t),
    backwards in t.  r_u (T, B, O), r_h (T, B, H) (read when with_h), w and w_h C-contiguous; writes dz (T, B, H)."""
    T, B, H = dz.shape
    a = np.empty((B, H), dz.dtype)
    carry = np.zeros((B, H), dz.dtype)
    for t in range(T - 1, -1, -1):
        matmul_into(r_u[t], w, a)
        for b in range(B):
            for j in range(H):
                d = a[b, j] + r_h[t, b, j] if with_h else a[b, j]
                dz[t, b, j] = (d + carry[b, j]) * fprime[t, b, j]
        if t:
            matmul_into(dz[t], w_h, carry)


# ---------------------------------------------------------------- the engine's functions, compiled loops
_FLOATS = {np.dtype(np.float32), np.dtype(np.float64)}


_FORWARD_CODES = {"sigmoid": 0, "tanh": 1}  # the activations _forward_steps writes out


def forward(p: Params, x: np.ndarray, h0: np.ndarray, f: Activation, g: Activation) -> Forward:
    """``engine.forward`` with its loop over t compiled, the same bits (sigmoid and tanh, one dtype);
    otherwise ``engine.forward`` itself."""
    code = _FORWARD_CODES.get(f.name)
    dt = x.dtype
    if code is None or dt not in _FLOATS or any(a.dtype != dt for a in (p.w_x, p.w_h, p.b1, h0)):
        return engine.forward(p, x, h0, f, g)
    return engine.forward(p, x, h0, f, g, steps=lambda z, h, w_hT: _forward_steps(z, h, w_hT, code))


def derivatives(fwd: Forward, f: Activation) -> np.ndarray:
    """f'(z_t) (T, B, H) from h_t, as the engine computes it."""
    return f.deriv(fwd.h[1:])


def pre_output_tangent(p: Params, x: np.ndarray, fwd: Forward, f: Activation, dp: Params,
                       fprime: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``engine.pre_output_tangent`` with its loop compiled, the same bits: (J_h dp (T, B, H), J_u dp (T, B, O))."""
    fprime = derivatives(fwd, f) if fprime is None else fprime
    dt = fwd.h.dtype
    if dt in _FLOATS and all(a.dtype == dt for a in (x, fprime, *p, *dp)):
        T, B, H = fprime.shape
        dh, du = np.empty((T, B, H), dt), np.empty((T, B, p.w.shape[0]), dt)
        c = np.ascontiguousarray
        _tangent_fused(c(x), c(fwd.h), c(dp.w_x.T), c(dp.w_h.T), c(dp.b1), c(fprime), c(p.w_h.T), c(dp.w.T),
                       c(p.w.T), c(dp.b2), dh, du)
        return dh, du
    # mixed dtypes (float32 data, float64 vectors): the engine's products over all steps, its dtypes kept
    direct = mm(x, dp.w_x.T) + mm(fwd.h[:-1], dp.w_h.T) + dp.b1  # (T, B, H)
    dt = np.result_type(fwd.h.dtype, direct.dtype, p.w_h.dtype)  # the engine's prev after step 1
    if not {fwd.h.dtype, dt} <= _FLOATS:
        return engine.pre_output_tangent(p, x, fwd, f, dp)
    dh = np.empty_like(fwd.h[1:])  # (T, B, H)
    B, H = fwd.h.shape[1:]
    _tangent_steps(direct, np.ascontiguousarray(fprime), np.ascontiguousarray(p.w_h.T, dt), np.zeros((B, H), dt),
                   np.zeros((B, H), dt), dh)
    du = mm(fwd.h[1:], dp.w.T) + mm(dh, p.w.T) + dp.b2  # (T, B, O)
    return dh, du


def backward_residual(p: Params, x: np.ndarray, fwd: Forward, f: Activation, r_u: np.ndarray,
                      r_h: np.ndarray | None = None, fprime: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``engine.backward_residual`` (J_u^T r_u + J_h^T r_h) with its loop compiled, the same bits."""
    fprime = derivatives(fwd, f) if fprime is None else fprime
    dt = fwd.h.dtype
    if dt in _FLOATS and all(a.dtype == dt for a in (x, fprime, r_u, *p) + (() if r_h is None else (r_h,))):
        dz = np.empty(fprime.shape, dt)  # (T, B, H)
        c = np.ascontiguousarray
        _backward_fused(c(r_u), c(r_h) if r_h is not None else dz, r_h is not None, c(p.w), c(p.w_h), c(fprime), dz)
        return engine.weight_grads(x, fwd.h, dz, r_u)
    dh_direct = mm(r_u, p.w)  # (T, B, H)
    if r_h is not None:
        dh_direct = dh_direct + r_h
    dt = dh_direct.dtype
    if not {fwd.h.dtype, dt} <= _FLOATS or np.result_type(dt, p.w_h.dtype) != dt:
        return engine.backward_residual(p, x, fwd, f, r_u, r_h)  # the carry's dtype would change: the engine's loop
    dz = np.empty_like(dh_direct)  # (T, B, H)
    _backward_steps(np.ascontiguousarray(dh_direct), np.ascontiguousarray(fprime), np.ascontiguousarray(p.w_h, dt),
                    np.zeros(dh_direct.shape[1:], dt), dz)
    return engine.weight_grads(x, fwd.h, dz, r_u)
