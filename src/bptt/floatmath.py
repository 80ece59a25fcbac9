"""exp, log, log1p and tanh with the same bits on every CPU.

numpy's ``np.exp``, ``np.tanh`` and ``np.log`` pick an implementation by the CPU's SIMD features
(AVX-512, AVX2, baseline), and their last bits differ between them: 9 160 of 200 000 float64 exp
values changed with AVX-512 disabled, and a training run ended with other parameters.  libm's
functions and numba's fused multiply-adds differ between CPUs too.  These do not: each is written
with IEEE +, -, *, / (correctly rounded on every CPU) and exact bit operations, compiled without
``fastmath`` (no fused multiply-add, no reordering), so a result depends on its inputs only
(tests/test_floatmath.py compares a generic-CPU build with this machine's, bit for bit, and every
function with mpmath).

    exp     2^(j/128) from a table times e^r, |r| <= ln2/256, r^5 Taylor    <= 1 ulp
    log     fdlibm's: m 2^k, log(1+f) by a polynomial in s = f/(2+f)        <= 1 ulp
    log1p   x log(1+x) / ((1+x) - 1): the rounding of 1+x cancels          <= 2 ulp
    tanh    Cephes: x + x^3 P/Q below 0.625, 1 - 2/(e^{2|x|}+1) above      <= 1 ulp

float32 runs the same float64 code and rounds once at the end, except exp, whose float32 form is
a float32 polynomial (vectorised loops over it run twice the lanes).

Two doors: the array functions here, ``exp(z)``, ``log(z)``, ``log1p(z)``, ``tanh(z)`` (numpy in,
numpy out, for the engine and the tables), and the scalar ``fexp``, ``flog``, ``flog1p``, ``ftanh`` in
``_floatmath_compiled`` that compiled code inlines (kernels.py).  This module imports numba only when
a function is first called.
"""

from __future__ import annotations

import numpy as np

_compiled = None  # the module _floatmath_compiled, imported on first use: numba is heavy to import


def _loops():
    global _compiled
    if _compiled is None:
        from . import _floatmath_compiled

        _compiled = _floatmath_compiled
    return _compiled


def _apply(name, z):
    a = z
    if not (type(a) is np.ndarray and a.dtype in _FLOATS and a.flags.c_contiguous):  # the engine's arrays skip this
        a = np.asarray(z)
        if a.dtype != _F32:
            a = a.astype(np.float64, copy=False)  # numpy's rule: every other input computes in float64
        a = np.asarray(a, order="C")  # keeps a 0-d array 0-d
    out = np.empty_like(a)
    getattr(_compiled or _loops(), name + ("32" if a.dtype == _F32 else "64"))(a.reshape(-1), out.reshape(-1))
    return out if a is z or out.ndim else out[()]


_F32 = np.dtype(np.float32)
_FLOATS = (_F32, np.dtype(np.float64))


def exp(z):
    """e^z elementwise, the same bits on every CPU.  z: any shape, float32 stays float32."""
    return _apply("_map_exp", z)


def log(z):
    """Natural log elementwise (NaN below 0, -inf at 0), the same bits on every CPU."""
    return _apply("_map_log", z)


def log1p(z):
    """log(1 + z) elementwise, accurate for small z, the same bits on every CPU."""
    return _apply("_map_log1p", z)


def tanh(z):
    """tanh elementwise, the same bits on every CPU."""
    return _apply("_map_tanh", z)
