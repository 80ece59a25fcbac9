"""The compiled kernels behind ``bptt.products`` (read that module for the order of summation).

No ``fastmath``: a fused multiply-add or a reassociated sum would change bits between CPUs.
Every loop over k runs in order; only independent outputs (j, and rows i) share vector registers.

How it is fast without BLAS.  numba's loop vectoriser cannot keep a block of outputs in registers
across the loop over k (it would have to prove that ``out`` does not alias ``b``), and numba leaves
LLVM's SLP vectoriser off, so the products are written with explicit vectors instead: a few
intrinsics below give numba an LLVM vector type ``<W x float>`` (W outputs of one row, in one or
more machine registers) and the three operations the kernel needs,

    _vload(b, k, j, like)        b[k, j:j+W] as a vector
    _vmuladd(acc, s, v)          acc + (s * v), lane by lane: ``fmul`` then ``fadd``, no fast-math
                                 flags, so each product is rounded, then each sum (never an FMA)
    _vstore(out, i, j, acc)      out[i, j:j+W] = acc

A register tile of 8 rows x W columns (W = 64 bytes: one AVX-512 register per row, 8 float64 or 16
float32 outputs) accumulates over k = 0..K-1 in order and is stored once.
Every lane does exactly the scalar ``s = s + a[i, k] * b[k, j]`` of the reference in the arrays'
dtype, so the tile shape, the vector width and the split between threads change no bit.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model
from numba.np.arrayobj import make_array

# ---------------------------------------------------------------- explicit vectors of W lanes


class _Vec(types.Type):
    """W lanes of a float dtype in an LLVM vector (split into machine registers by LLVM)."""

    def __init__(self, dtype, width):
        self.dtype = dtype
        self.width = width
        super().__init__(name=f"_Vec({dtype} x {width})")


@register_model(_Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        be_type = ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), fe_type.width)
        super().__init__(dmm, fe_type, be_type)


def _float_array(arr):
    return isinstance(arr, types.Array) and arr.ndim == 2 and arr.dtype in (types.float32, types.float64)


def _lane_pointers(context, builder, arrty, arr, r, c, width):
    """Pointers to arr[r, c + l] for l < width (arr 2-D, any strides)."""
    ary = make_array(arrty)(context, builder, arr)
    ptrs = []
    for lane in range(width):
        col = builder.add(c, ir.Constant(c.type, lane))
        ptrs.append(cgutils.get_item_pointer(context, builder, arrty, ary, [r, col], wraparound=False))
    return ptrs


def _row_args(context, builder, sig, args):
    """(array type, array, r, c as intp) of a (arr, r, c, vector) intrinsic call."""
    arrty, rty, cty, _ = sig.args
    arr_v, r_v, c_v, _ = args
    return arrty, arr_v, context.cast(builder, r_v, rty, types.intp), context.cast(builder, c_v, cty, types.intp)


def _row_pointer(context, builder, arrty, arr_v, r_v, c_v, vty):
    """&arr[r, c] as a pointer to a whole vector (arr C-contiguous: the row's next lanes follow it)."""
    ary = make_array(arrty)(context, builder, arr_v)
    ptr = cgutils.get_item_pointer(context, builder, arrty, ary, [r_v, c_v], wraparound=False)
    return builder.bitcast(ptr, vty.as_pointer())


@intrinsic
def _vzero(typingctx, arr, nbytes):
    """A vector of nbytes // itemsize (+0.0) lanes of arr's dtype (nbytes a constant)."""
    if not (_float_array(arr) and isinstance(nbytes, types.IntegerLiteral)):
        return None
    vt = _Vec(arr.dtype, max(1, nbytes.literal_value // (arr.dtype.bitwidth // 8)))

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vt), None)  # zeroinitializer: +0.0 in every lane

    return vt(arr, nbytes), codegen


@intrinsic
def _width(typingctx, vec):
    """The number of lanes of a vector, as a constant."""
    if not isinstance(vec, _Vec):
        return None

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(types.intp), vec.width)

    return types.intp(vec), codegen


@intrinsic
def _vload(typingctx, arr, r, c, like):
    """arr[r, c : c + W] as a vector (W = like's width; arr's dtype must be like's)."""
    if not (_float_array(arr) and isinstance(like, _Vec) and arr.dtype == like.dtype):
        return None
    if not (isinstance(r, types.Integer) and isinstance(c, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        arrty, arr_v, r_v, c_v = _row_args(context, builder, sig, args)
        vty = context.get_value_type(like)
        itemsize = context.get_abi_sizeof(context.get_value_type(like.dtype))
        if arrty.layout == "C":  # contiguous row: one (unaligned) vector load
            return builder.load(_row_pointer(context, builder, arrty, arr_v, r_v, c_v, vty), align=itemsize)
        vec = ir.Constant(vty, ir.Undefined)  # any other layout: lane by lane
        for lane, ptr in enumerate(_lane_pointers(context, builder, arrty, arr_v, r_v, c_v, like.width)):
            vec = builder.insert_element(vec, builder.load(ptr), ir.Constant(ir.IntType(32), lane))
        return vec

    return like(arr, r, c, like), codegen


@intrinsic
def _vstore(typingctx, arr, r, c, vec):
    """arr[r, c : c + W] = vec (one vector store when arr is C-contiguous, else lane by lane)."""
    if not (_float_array(arr) and isinstance(vec, _Vec) and arr.dtype == vec.dtype):
        return None
    if not (isinstance(r, types.Integer) and isinstance(c, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        arrty, arr_v, r_v, c_v = _row_args(context, builder, sig, args)
        vec_v = args[3]
        vty = context.get_value_type(vec)
        itemsize = context.get_abi_sizeof(context.get_value_type(vec.dtype))
        if arrty.layout == "C":
            builder.store(vec_v, _row_pointer(context, builder, arrty, arr_v, r_v, c_v, vty), align=itemsize)
        else:
            for lane, ptr in enumerate(_lane_pointers(context, builder, arrty, arr_v, r_v, c_v, vec.width)):
                builder.store(builder.extract_element(vec_v, ir.Constant(ir.IntType(32), lane)), ptr)
        return context.get_dummy_value()

    return types.none(arr, r, c, vec), codegen


@intrinsic
def _vlane(typingctx, vec, lane):
    """vec[lane] (lane < W, not checked)."""
    if not (isinstance(vec, _Vec) and isinstance(lane, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        vec_v, lane_v = args
        return builder.extract_element(vec_v, context.cast(builder, lane_v, sig.args[1], types.int32))

    return vec.dtype(vec, lane), codegen


@intrinsic
def _vmuladd(typingctx, acc, s, v):
    """acc + s * v lane by lane: a rounded ``fmul`` then a rounded ``fadd`` (no fast-math flags, so
    LLVM may not fuse them); s is a scalar of the vectors' dtype."""
    if not (isinstance(acc, _Vec) and acc == v and s == acc.dtype):
        return None

    def codegen(context, builder, sig, args):
        acc_v, s_v, v_v = args
        vty = acc_v.type
        i32 = ir.IntType(32)
        splat = builder.insert_element(ir.Constant(vty, ir.Undefined), s_v, ir.Constant(i32, 0))
        splat = builder.shuffle_vector(splat, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(i32, acc.width), None))
        return builder.fadd(acc_v, builder.fmul(splat, v_v))

    return acc(acc, s, v), codegen


# ---------------------------------------------------------------- the register tiles


@njit(cache=True, error_model="numpy")
def _rows8(a, b, out, i, n, jb, j, w, z):
    """out[i:i+n, j:j+w] = a[i:i+n] @ b[:, jb:jb+w] for n <= 8 rows and w <= W columns (W = z's width):
    8 vectors of W sums in registers over k = 0..K-1 in order, b[k, j:j+W] loaded once for the 8
    rows, each stored once at the end.  Rows past n repeat row i+n-1 and are not stored."""
    r1 = i + min(1, n - 1)
    r2 = i + min(2, n - 1)
    r3 = i + min(3, n - 1)
    r4 = i + min(4, n - 1)
    r5 = i + min(5, n - 1)
    r6 = i + min(6, n - 1)
    r7 = i + min(7, n - 1)
    c0 = z
    c1 = z
    c2 = z
    c3 = z
    c4 = z
    c5 = z
    c6 = z
    c7 = z
    for k in range(a.shape[1]):
        v = _vload(b, k, jb, z)
        c0 = _vmuladd(c0, a[i, k], v)
        c1 = _vmuladd(c1, a[r1, k], v)
        c2 = _vmuladd(c2, a[r2, k], v)
        c3 = _vmuladd(c3, a[r3, k], v)
        c4 = _vmuladd(c4, a[r4, k], v)
        c5 = _vmuladd(c5, a[r5, k], v)
        c6 = _vmuladd(c6, a[r6, k], v)
        c7 = _vmuladd(c7, a[r7, k], v)
    if w == _width(z):
        _vstore(out, i, j, c0)
        if n > 1:
            _vstore(out, r1, j, c1)
        if n > 2:
            _vstore(out, r2, j, c2)
        if n > 3:
            _vstore(out, r3, j, c3)
        if n > 4:
            _vstore(out, r4, j, c4)
        if n > 5:
            _vstore(out, r5, j, c5)
        if n > 6:
            _vstore(out, r6, j, c6)
        if n > 7:
            _vstore(out, r7, j, c7)
    else:
        for lane in range(w):
            out[i, j + lane] = _vlane(c0, lane)
            if n > 1:
                out[r1, j + lane] = _vlane(c1, lane)
            if n > 2:
                out[r2, j + lane] = _vlane(c2, lane)
            if n > 3:
                out[r3, j + lane] = _vlane(c3, lane)
            if n > 4:
                out[r4, j + lane] = _vlane(c4, lane)
            if n > 5:
                out[r5, j + lane] = _vlane(c5, lane)
            if n > 6:
                out[r6, j + lane] = _vlane(c6, lane)
            if n > 7:
                out[r7, j + lane] = _vlane(c7, lane)


@njit(cache=True, error_model="numpy")
def _rows1(a, b, out, i, jb, j, w, z):
    """out[i, j:j+w] = a[i] @ b[:, jb:jb+w] (w <= W), k in order."""
    c0 = z
    for k in range(a.shape[1]):
        c0 = _vmuladd(c0, a[i, k], _vload(b, k, jb, z))
    if w == _width(z):
        _vstore(out, i, j, c0)
    else:
        for lane in range(w):
            out[i, j + lane] = _vlane(c0, lane)


@njit(cache=True, error_model="numpy")
def _panel(a, b, out, i0, i1, jb, j, w, z):
    """Rows i0..i1-1 of out[:, j:j+w] from columns jb.. of b (w <= W = z's width): 8 rows at a time,
    the last 2 to 7 rows as a (partly repeated) block of 8, a last single row alone."""
    i = i0
    while i + 8 <= i1:
        _rows8(a, b, out, i, 8, jb, j, w, z)
        i += 8
    if i + 1 < i1:
        _rows8(a, b, out, i, i1 - i, jb, j, w, z)
    elif i < i1:
        _rows1(a, b, out, i, jb, j, w, z)


# Bytes of one row of a register tile (one AVX-512 register: 8 float64 or 16 float32 outputs), and
# bytes of ``a`` swept once per panel of columns (longer ``a`` is taken in blocks of rows, so that a
# block stays in the L2 cache while every panel of b passes over it).
VECTOR_BYTES = 64
A_BLOCK_BYTES = 1 << 18


@njit(cache=True, error_model="numpy", inline="always")
def _tile(a, b, out, i0, i1, j0, j1):
    """out[i0:i1, j0:j1] = a[i0:i1] @ b[:, j0:j1] (b C-contiguous) in panels of W = VECTOR_BYTES
    columns; when j1 - j0 is not a multiple of W the last panel overlaps the one before (its
    outputs are computed twice, the same bits); fewer than W columns are copied into a zero-padded
    panel.  Every output sums over k = 0..K-1 in order whatever block, panel or tile it falls in."""
    z = _vzero(out, VECTOR_BYTES)
    W = _width(z)
    K = a.shape[1]
    mc = max(8, A_BLOCK_BYTES // max(1, K * out.itemsize) // 8 * 8)
    w = min(W, j1 - j0)
    src = b
    if w < W:  # a narrow product: its columns of b, zero-padded to W
        src = np.zeros((K, W), out.dtype)
        for k in range(K):
            for j in range(w):
                src[k, j] = b[k, j0 + j]
    for ib in range(i0, i1, mc):
        ie = min(ib + mc, i1)
        j = j0
        while j < j1:
            jp = max(j0, min(j, j1 - W))  # the last panel ends at j1
            _panel(a, src, out, ib, ie, jp if w == W else 0, jp, w, z)
            j += W


@njit(cache=True, error_model="numpy")
def matmul_into(a, b, out):
    """out = a @ b: a (M, K) in any layout, b (K, N) and out (M, N) C-contiguous, one float dtype
    (a b in another layout is copied first; out in another layout is written lane by lane).
    out[i, j] sums a[i, k] b[k, j] over k = 0..K-1 in order."""
    _tile(a, np.ascontiguousarray(b), out, 0, a.shape[0], 0, b.shape[1])


# At most TILES tiles of the output are shared between numba's threads (a fixed number, not the
# thread count: that would keep numba from caching the function; numba hands each thread an equal
# run of tiles).  Tiles are bands of rows (multiples of 8), cut into columns (multiples of W) only
# when there are too few rows for TILES bands.
TILES = 16


@njit(cache=True, error_model="numpy", inline="always")
def _cut(n, parts, p, q):
    """Start of part p of 0..n-1 cut into ``parts`` parts of whole multiples of q (the last one takes
    the rest; parts <= max(1, n // q))."""
    return n if p == parts else (n // q) * p // parts * q


@njit(cache=True, error_model="numpy", parallel=True)
def matmul_parallel(a, b, out):
    """``matmul_into`` with the output cut into tiles shared between threads: the same bits as one
    thread (each output is summed by one thread, over k in order)."""
    M = a.shape[0]
    N = b.shape[1]
    W = VECTOR_BYTES // out.itemsize
    rp = max(1, min(TILES, M // 8))
    cp = max(1, min(TILES // rp, N // W))
    bc = np.ascontiguousarray(b)
    for t in prange(rp * cp):
        r = t // cp
        c = t % cp
        _tile(a, bc, out, _cut(M, rp, r, 8), _cut(M, rp, r + 1, 8), _cut(N, cp, c, W), _cut(N, cp, c + 1, W))


@njit(cache=True, error_model="numpy")
def dot(a, b):
    """sum_k a_k b_k in float64, k in order (1-D, equal lengths)."""
    s = 0.0
    for k in range(a.shape[0]):
        s += a[k] * b[k]
    return s
