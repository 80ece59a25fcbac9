"""The compiled kernels behind ``bptt.products`` (read that module for the order of summation).

No ``fastmath``: a fused multiply-add or a reassociated sum would change bits between CPUs.
Every loop over k runs in order; only the loops over j (independent outputs) vectorise.
"""

from __future__ import annotations

from numba import njit, prange


@njit(cache=True, error_model="numpy", inline="always")
def _tile(a, b, out, i0, i1, j0, j1):
    """out[i0:i1, j0:j1] = a[i0:i1] @ b[:, j0:j1], four rows at a time (each b row loaded once for
    four outputs).  Every output sums over k = 0..K-1 in order, whatever the tile."""
    K = a.shape[1]
    i = i0
    while i + 4 <= i1:
        o0, o1, o2, o3 = out[i], out[i + 1], out[i + 2], out[i + 3]
        for j in range(j0, j1):
            o0[j] = 0.0
            o1[j] = 0.0
            o2[j] = 0.0
            o3[j] = 0.0
        for k in range(K):
            a0, a1, a2, a3 = a[i, k], a[i + 1, k], a[i + 2, k], a[i + 3, k]
            bk = b[k]
            for j in range(j0, j1):
                bkj = bk[j]
                o0[j] += a0 * bkj
                o1[j] += a1 * bkj
                o2[j] += a2 * bkj
                o3[j] += a3 * bkj
        i += 4
    while i < i1:
        oi = out[i]
        for j in range(j0, j1):
            oi[j] = 0.0
        for k in range(K):
            aik = a[i, k]
            bk = b[k]
            for j in range(j0, j1):
                oi[j] += aik * bk[j]
        i += 1


@njit(cache=True, error_model="numpy")
def matmul_into(a, b, out):
    """out = a @ b: a (M, K) in any layout, b (K, N) and out (M, N) C-contiguous, one dtype.
    out[i, j] sums a[i, k] b[k, j] over k = 0..K-1 in order."""
    _tile(a, b, out, 0, a.shape[0], 0, b.shape[1])


# Tiles of at most ROWS x COLS outputs are shared between numba's threads.
ROWS = 16
COLS = 128


@njit(cache=True, error_model="numpy", parallel=True)
def matmul_parallel(a, b, out):
    """``matmul_into`` with tiles of the output shared between threads: the same bits as one thread."""
    M = a.shape[0]
    N = b.shape[1]
    row_blocks = (M + ROWS - 1) // ROWS
    col_blocks = (N + COLS - 1) // COLS
    for tile in prange(row_blocks * col_blocks):
        i0 = (tile // col_blocks) * ROWS
        j0 = (tile % col_blocks) * COLS
        _tile(a, b, out, i0, min(i0 + ROWS, M), j0, min(j0 + COLS, N))


@njit(cache=True, error_model="numpy")
def dot(a, b):
    """sum_k a_k b_k in float64, k in order (1-D, equal lengths)."""
    s = 0.0
    for k in range(a.shape[0]):
        s += a[k] * b[k]
    return s
