"""The compiled half of ``floatmath`` (read that module's docstring): the scalar functions, which
compiled code inlines through ``fexp``, ``flog``, ``flog1p``, ``ftanh``, and the loops over arrays that
floatmath's array functions call.  Imports numba; floatmath imports this module on first use only.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

_F32 = np.float32


# ---------------------------------------------------------------- bit casts (exact)
@intrinsic
def i32_as_f32(typingctx, v):
    """Reinterpret the bits of an int32 as a float32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def f32_as_i32(typingctx, v):
    """Reinterpret the bits of a float32 as an int32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _i64_as_f64(typingctx, v):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _f64_as_i64(typingctx, v):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@njit(cache=True, error_model="numpy", inline="always")
def _pow2(k):
    """2^k exactly, for -1022 <= k <= 1023 (built in the exponent bits)."""
    return _i64_as_f64((k + np.int64(1023)) << np.int64(52))


# Every function below is branch-free (selects, no early returns), so loops over it vectorise; the
# vector and scalar forms are the same IEEE operations, hence the same bits.

# ---------------------------------------------------------------- float64
def _exp_table() -> np.ndarray:
    """2^(j/128), j = 0..127, each the double nearest the true value: computed in decimal arithmetic at
    50 digits (libmpdec: integers only, so the same on every machine) and rounded once."""
    from decimal import Context, Decimal

    ctx = Context(prec=50)
    return np.array([float(ctx.power(Decimal(2), ctx.divide(Decimal(j), Decimal(128)))) for j in range(128)])


_EXP_TABLE = _exp_table()
_INV_L = 184.6649652337873  # 128 / ln 2
_SHIFT = 6755399441055744.0  # 1.5 * 2^52: x + _SHIFT - _SHIFT rounds x to an integer
_L1 = float.fromhex("0x1.62e42fef80000p-8")  # ln2/128 = _L1 + _L2; _L1 has 35 bits, so n * _L1 is exact
_L2 = float.fromhex("0x1.1cf79abc9e3b4p-43")  # for |n| < 2^18
_C3, _C4, _C5 = 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0


@njit(cache=True, error_model="numpy", inline="always")
def _exp64(x):
    """e^x = 2^(n/128) e^r, |r| <= ln2/256: 2^(j/128) from the table, 2^m in the exponent bits, e^r - 1
    by its Taylor polynomial to r^5 (the rest below 1e-18), evaluated in Estrin's order for a short
    dependent chain (the scalar recurrence waits on it every step)."""
    xc = x if x < 709.8 else 709.8  # above log(DBL_MAX) = 709.78: inf below; NaN: put back at the end
    xc = xc if xc > -745.2 else -745.2  # below log of half the smallest subnormal: 0 below
    n = (xc * _INV_L + _SHIFT) - _SHIFT  # the integer nearest 128 xc / ln 2
    r = (xc - n * _L1) - n * _L2
    r2 = r * r
    p = r + r2 * (0.5 + r * _C3) + (r2 * r2) * (_C4 + r * _C5)  # e^r - 1
    k = np.int64(n)
    t = _EXP_TABLE[k & np.int64(127)]
    e = t + t * p  # 2^(j/128) e^r, in [1, 2)
    m = k >> np.int64(7)  # floor(n / 128), in [-1075, 1024]
    m1 = m >> np.int64(1)
    # e 2^m1 is exact; the second factor rounds once: subnormal results, and inf above DBL_MAX
    y = (e * _pow2(m1)) * _pow2(m - m1)
    return x if x != x else y


_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_LG1, _LG2, _LG3 = 6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01
_LG4, _LG5, _LG6, _LG7 = 2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01
_SQRT2 = 1.4142135623730951


@njit(cache=True, error_model="numpy", inline="always")
def _log64(x):
    sub = x < 2.2250738585072014e-308  # subnormal (or 0, or negative): scale by 2^54 first (exact)
    xs = x * 18014398509481984.0 if sub else x
    bits = _f64_as_i64(xs)
    k = ((bits >> np.int64(52)) & np.int64(0x7FF)) - np.int64(1077 if sub else 1023)
    m = _i64_as_f64((bits & np.int64(0x000FFFFFFFFFFFFF)) | np.int64(0x3FF0000000000000))  # in [1, 2)
    big = m > _SQRT2
    m = m * 0.5 if big else m  # exact
    k = k + np.int64(1) if big else k
    f = m - 1.0  # exact: m in [0.70, 1.42]
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    hfsq = 0.5 * f * f
    dk = np.float64(k)
    y = dk * _LN2_HI - ((hfsq - (s * (hfsq + (t2 + t1)) + dk * _LN2_LO)) - f)
    y = -math.inf if x == 0.0 else y
    y = x if x == math.inf else y
    return math.nan if (x < 0.0 or x != x) else y


@njit(cache=True, error_model="numpy", inline="always")
def _log1p64(x):
    u = 1.0 + x
    d = u - 1.0
    q = x / (d if d != 0.0 else 1.0)
    y = _log64(u) * q  # the rounding error of 1 + x cancels (Goldberg)
    y = x if (u == 1.0 or x == math.inf) else y  # |x| below half an ulp of 1: log1p(x) = x
    return math.nan if (x < -1.0 or x != x) else y


_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3


@njit(cache=True, error_model="numpy", inline="always")
def _tanh64(x):
    a = -x if x < 0.0 else x
    z = x * x
    small = x + x * z * (((_TP0 * z + _TP1) * z + _TP2) / (((z + _TQ0) * z + _TQ1) * z + _TQ2))
    big = 1.0 - 2.0 / (_exp64(a + a) + 1.0)  # 1.0 exactly from a = 19.1 on
    big = -big if x < 0.0 else big
    y = small if a < 0.625 else big
    return x if (a < 1e-9 or x != x) else y  # tanh(x) = x to double precision; -0 stays -0


# ---------------------------------------------------------------- float32
@njit(cache=True, error_model="numpy", inline="always")
def _exp32(z):
    """e^z in float32 without a libm call: z = n ln2 + r, |r| <= ln2/2 (Cody-Waite, the Cephes
    expf polynomial), 2^n built in the exponent bits in two factors, as _exp64."""
    zc = z if z < _F32(88.8) else _F32(88.8)
    zc = zc if zc > _F32(-104.0) else _F32(-104.0)
    t = zc * _F32(1.44269504) + _F32(12582912.0)  # 1.5 * 2^23: rounds z / ln2 to an integer
    n = t - _F32(12582912.0)
    r = zc - n * _F32(0.693359375)
    r = r - n * _F32(-2.12194440e-4)
    r2 = r * r
    q = ((_F32(1.9875691500e-4) * r + _F32(1.3981999507e-3)) * r2
         + (_F32(8.3334519073e-3) * r + _F32(4.1665795894e-2))) * r2 + (_F32(1.6666665459e-1) * r + _F32(5.0000001201e-1))
    q = q * r2 + r + _F32(1.0)
    k = f32_as_i32(t) - np.int32(0x4B400000)  # n as an integer, from t's mantissa: in [-150, 129]
    k1 = k >> np.int32(1)
    y = (q * i32_as_f32((k1 + np.int32(127)) << np.int32(23))) * i32_as_f32((k - k1 + np.int32(127)) << np.int32(23))
    return z if z != z else y


exp32_py = _exp32.py_func  # the plain function, for limits.py's micro-kernels (their own flags)


# ---------------------------------------------------------------- scalar doors for compiled code
def _is32(z):
    return isinstance(z, types.Float) and z.bitwidth == 32


@njit(cache=True, error_model="numpy", inline="always")
def _log32(z):
    return _F32(_log64(np.float64(z)))


@njit(cache=True, error_model="numpy", inline="always")
def _log1p32(z):
    return _F32(_log1p64(np.float64(z)))


@njit(cache=True, error_model="numpy", inline="always")
def _tanh32(z):
    return _F32(_tanh64(np.float64(z)))


def fexp(z):  # pragma: no cover - compiled code only (the overload below)
    raise NotImplementedError


def flog(z):  # pragma: no cover
    raise NotImplementedError


def flog1p(z):  # pragma: no cover
    raise NotImplementedError


def ftanh(z):  # pragma: no cover
    raise NotImplementedError


# The dispatch by dtype is an ordinary call (not inlined in numba's IR; LLVM inlines it): inlined in the
# IR inside the kernels' own inlined helpers, the nested inlining drew NumbaIRAssumptionWarnings.  The
# functions above are inlined in the IR of each dispatcher and each loop below (so the loops vectorise).
@overload(fexp)
def _ov_exp(z):
    return (lambda z: _exp32(z)) if _is32(z) else (lambda z: _exp64(z))


@overload(flog)
def _ov_log(z):
    return (lambda z: _log32(z)) if _is32(z) else (lambda z: _log64(z))


@overload(flog1p)
def _ov_log1p(z):
    return (lambda z: _log1p32(z)) if _is32(z) else (lambda z: _log1p64(z))


@overload(ftanh)
def _ov_tanh(z):
    return (lambda z: _tanh32(z)) if _is32(z) else (lambda z: _tanh64(z))


# ---------------------------------------------------------------- array doors for numpy code
# One loop per function and dtype, a, out: (n,) of that dtype; floatmath picks by the dtype.  Written out, not
# made by a factory: numba does not cache a closure over the function.
@njit(cache=True, error_model="numpy")
def _map_exp64(a, out):
    for i in range(a.size):
        out[i] = _exp64(a[i])


@njit(cache=True, error_model="numpy")
def _map_exp32(a, out):
    for i in range(a.size):
        out[i] = _exp32(a[i])


@njit(cache=True, error_model="numpy")
def _map_log64(a, out):
    for i in range(a.size):
        out[i] = _log64(a[i])


@njit(cache=True, error_model="numpy")
def _map_log32(a, out):
    for i in range(a.size):
        out[i] = _log32(a[i])


@njit(cache=True, error_model="numpy")
def _map_log1p64(a, out):
    for i in range(a.size):
        out[i] = _log1p64(a[i])


@njit(cache=True, error_model="numpy")
def _map_log1p32(a, out):
    for i in range(a.size):
        out[i] = _log1p32(a[i])


@njit(cache=True, error_model="numpy")
def _map_tanh64(a, out):
    for i in range(a.size):
        out[i] = _tanh64(a[i])


@njit(cache=True, error_model="numpy")
def _map_tanh32(a, out):
    for i in range(a.size):
        out[i] = _tanh32(a[i])
