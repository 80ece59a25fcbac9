r"""Matrix products in one fixed order of summation: the same bits on every BLAS kernel, thread count and load.

A BLAS (OpenBLAS, MKL) chooses its kernel by CPU (``OPENBLAS_CORETYPE``), its blocking by size and
its split by thread count, and each choice changes the order in which the terms of a dot product
are added, so the last bits of a product change with them; a chaotic training run (the adding
problem) then ends somewhere else (issue 18: test MSE ratio 0.370 with one OpenBLAS kernel,
0.043 with another, same code and data).  Every product in bptt's own numerics is computed here
instead, as

    out[i, j] = (...((a[i,0] b[0,j] + a[i,1] b[1,j]) + a[i,2] b[2,j]) + ...) + a[i,K-1] b[K-1,j]

in the arrays' dtype: each term rounded once as a product and once as a sum, k = 0..K-1 in order.
The functions are compiled without ``fastmath`` (no fused multiply-add, no reassociation), and
the loops vectorise over j (independent outputs), never over k, so the vector width of the CPU
does not change a bit; a parallel call splits the rows i between threads, so the thread count
does not either.

    matmul(a, b)      a (..., K) or (K,) @ b (K, N): numpy's ``@`` for the engine
    matmul_into       the compiled kernel, callable from other compiled code (``kernels.py``)
    dot(a, b)         sum_k a_k b_k of two 1-D arrays, in float64, k in order

numba loads on the first product, not at ``import bptt``.
"""

from __future__ import annotations

import numpy as np

# Output rows x columns x terms from which matmul splits the rows between threads (numba's
# prange; each output element is still summed by one thread, in order).
PARALLEL_MIN_MACS = 1 << 22

_compiled = None


def _kernels():
    """The compiled functions (imports numba and compiles or loads them on the first call)."""
    global _compiled
    if _compiled is None:
        from . import _products_compiled

        _compiled = _products_compiled
    return _compiled


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _float_dtype(*arrays) -> np.dtype:
    dt = np.result_type(*arrays)
    return dt if dt in _FLOATS else np.dtype(np.float64)


def matmul(a, b) -> np.ndarray:
    """a @ b in the fixed order above.  a (..., K) or (K,), b (K, N); returns (..., N) (or (N,)).

    The result dtype is numpy's (float32 only when both are float32; integers become float64).
    The engine calls this once per time step, so the common case (arrays of one float dtype)
    takes few Python steps.
    """
    if type(a) is not np.ndarray or type(b) is not np.ndarray:
        a, b = np.asarray(a), np.asarray(b)
    if b.ndim != 2 or a.ndim < 1 or a.shape[-1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not chain")
    dt = a.dtype
    if dt != b.dtype or dt not in _FLOATS:
        dt = _float_dtype(a, b)
    K, N = b.shape
    a2 = a if a.ndim == 2 else a.reshape(-1, K)  # (M, K): a view where a's layout allows, else a copy
    if a2.dtype != dt or not (a2.flags.c_contiguous or a2.flags.f_contiguous):
        a2 = np.ascontiguousarray(a2, dt)
    if b.dtype != dt or not b.flags.c_contiguous:
        b = np.ascontiguousarray(b, dt)  # (K, N)
    M = a2.shape[0]
    out = np.empty((M, N), dt)  # (M, N)
    k = _compiled if _compiled is not None else _kernels()
    if M * K * N >= PARALLEL_MIN_MACS:
        k.matmul_parallel(a2, b, out)
    else:
        k.matmul_into(a2, b, out)
    return out if a.ndim == 2 else out.reshape(a.shape[:-1] + (N,))


def dot(a, b) -> float:
    """sum_k a_k b_k of two 1-D arrays of equal length, in float64, in order k = 0..K-1."""
    a = np.ascontiguousarray(a, np.float64).ravel()
    b = np.ascontiguousarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"dot: lengths {a.size} and {b.size} differ")
    return float(_kernels().dot(a, b))
