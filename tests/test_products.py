"""bptt.products and its compiled kernels: every output is the sequential sum over k in the arrays'
dtype (each product rounded, then each sum, k = 0..K-1 in order), bit for bit, whatever the shape,
the layout of a, the register tiles and the split between threads."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bptt import products
from bptt import _products_compiled as pc

DTYPES = (np.float64, np.float32)
LAYOUTS = ("C", "F", "strided")


def sequential(a, b):
    """out[i, j] = (...(0 + a[i,0] b[0,j]) + a[i,1] b[1,j]) + ...) in a's dtype, k in order: numpy's
    elementwise multiply then add (two roundings, never fused), vectorised over (i, j) only."""
    dt = a.dtype
    out = np.zeros((a.shape[0], b.shape[1]), dt)
    for k in range(a.shape[1]):
        prod = np.multiply(a[:, k : k + 1], b[k : k + 1, :], dtype=dt)
        out = np.add(out, prod, dtype=dt)
    return out


def scalar_sequential(a, b):
    """The same sum one scalar at a time (numpy scalars of a's dtype): checks ``sequential``."""
    t = a.dtype.type
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            s = t(0)
            for k in range(a.shape[1]):
                s = t(s + t(a[i, k] * b[k, j]))
            out[i, j] = s
    return out


def operands(seed, M, K, N, dtype, layout):
    """a (M, K) in the given layout and b (K, N), values spread over many binades (so that any other
    order of summation or a fused multiply-add changes the last bits), with a few signed zeros."""
    rng = np.random.default_rng(seed)

    def draw(shape):
        x = rng.standard_normal(shape) * 2.0 ** rng.integers(-12, 12, shape)
        x[rng.random(shape) < 0.05] = -0.0
        return x.astype(dtype)

    b = draw((K, N))
    if layout == "C":
        a = draw((M, K))
    elif layout == "F":
        a = np.asfortranarray(draw((M, K)))
    else:  # every other row and column of a larger array, rows reversed
        a = draw((2 * M, 2 * K + 1))[::-2, 1::2]
    assert a.shape == (M, K)
    return a, b


def compiled(a, b, parallel=False):
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    (pc.matmul_parallel if parallel else pc.matmul_into)(a, b, out)
    return out


def check_all(a, b):
    ref = sequential(a, b)
    one = compiled(a, b)
    assert one.dtype == a.dtype
    assert np.array_equal(one, ref)  # (a) bit for bit the sequential sum
    assert np.array_equal(np.signbit(one), np.signbit(ref))  # +0.0 where every term is -0.0
    assert np.array_equal(compiled(a, b, parallel=True), one)  # (b) threads change no bit
    assert np.array_equal(products.matmul(a, b), one)
    # (c) close to the float64 product: K roundings of at most eps/2 relative to |a| @ |b|
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    eps = np.finfo(a.dtype).eps
    bound = (a.shape[1] + 1) * eps * (np.abs(a64) @ np.abs(b64)) + np.finfo(a.dtype).tiny
    assert np.all(np.abs(one - a64 @ b64) <= bound)


@given(
    M=st.integers(1, 70),
    K=st.integers(1, 70),
    N=st.integers(1, 70),
    dtype=st.sampled_from(DTYPES),
    layout=st.sampled_from(LAYOUTS),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_shapes_bit_identical(M, K, N, dtype, layout, seed):
    check_all(*operands(seed, M, K, N, dtype, layout))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,layout",
    [((300, 257, 130), "C"), ((64, 256, 256), "C"), ((16, 960, 16), "F"), ((3200, 16, 16), "C"), ((129, 33, 97), "strided")],
)
def test_big_shapes(shape, layout, dtype):
    check_all(*operands(sum(shape), *shape, dtype, layout))


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_matches_scalar_loop(dtype):
    for shape in [(1, 1, 1), (3, 7, 5), (9, 17, 4)]:
        a, b = operands(1, *shape, dtype, "C")
        assert np.array_equal(sequential(a, b), scalar_sequential(a, b))


def test_data_tell_orders_apart():
    """The operands are such that summing k in reverse changes bits: the tests above would see a
    kernel that reorders the sum."""
    a, b = operands(3, 8, 200, 8, np.float64, "C")
    assert not np.array_equal(sequential(a, b), sequential(a[:, ::-1], b[::-1]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_sum_and_other_layouts_of_b_and_out(dtype):
    a, b = operands(5, 11, 0, 19, dtype, "C")
    assert np.array_equal(compiled(a, b), np.zeros((11, 19), dtype))
    a, b = operands(6, 21, 13, 37, dtype, "F")
    ref = sequential(a, b)
    bf = np.asfortranarray(b)  # b in another layout: copied by the kernel
    out = np.zeros((21, 2 * 37), dtype)[:, ::2]  # out in another layout: written lane by lane
    pc.matmul_into(a, bf, out)
    assert np.array_equal(out, ref)
    out2 = np.zeros((21, 2 * 37), dtype)[:, ::2]
    pc.matmul_parallel(a, bf, out2)
    assert np.array_equal(out2, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_same_bits_whatever_thread_count(dtype):
    import numba

    a, b = operands(7, 203, 65, 77, dtype, "C")
    before = numba.get_num_threads()
    try:
        outs = []
        for n in sorted({1, before}):
            numba.set_num_threads(n)
            outs.append(compiled(a, b, parallel=True))
    finally:
        numba.set_num_threads(before)
    assert all(np.array_equal(o, sequential(a, b)) for o in outs)


def test_no_fused_multiply_add_in_the_kernel():
    """The machine code of the kernel holds no FMA instruction (x86: vfmadd...)."""
    a, b = operands(0, 9, 5, 17, np.float64, "C")
    compiled(a, b)
    import numba

    f = numba.njit(error_model="numpy")(pc.matmul_into.py_func)  # a fresh compile: cached code has no asm
    f(a, b, np.empty((9, 17)))
    asm = f.inspect_asm(f.signatures[0]).lower()
    assert "vfmadd" not in asm and "vfnmadd" not in asm and "vfmsub" not in asm


# ---------------------------------------------------------------- products.matmul's shapes


def test_matmul_shapes_and_dtypes():
    rng = np.random.default_rng(0)
    b = rng.standard_normal((5, 3))
    v = rng.standard_normal(5)
    out = products.matmul(v, b)  # 1-D a
    assert out.shape == (3,)
    assert np.array_equal(out, sequential(v[None, :], b)[0])
    a3 = rng.standard_normal((2, 4, 5))  # 3-D a
    out = products.matmul(a3, b)
    assert out.shape == (2, 4, 3)
    assert np.array_equal(out, sequential(a3.reshape(8, 5), b).reshape(2, 4, 3))
    a3t = np.transpose(rng.standard_normal((5, 4, 2)))  # a 3-D a with no contiguous 2-D view
    assert np.array_equal(products.matmul(a3t, b), sequential(a3t.reshape(8, 5), b).reshape(2, 4, 3))
    ai = rng.integers(-5, 5, (4, 5))  # integers become float64
    bi = rng.integers(-5, 5, (5, 3))
    out = products.matmul(ai, bi)
    assert out.dtype == np.float64
    assert np.array_equal(out, ai @ bi)
    assert products.matmul(v.astype(np.float32), b.astype(np.float32)).dtype == np.float32
    mixed = products.matmul(a3.astype(np.float32), b)  # float32 @ float64 -> float64
    assert mixed.dtype == np.float64
    assert np.array_equal(mixed, sequential(a3.astype(np.float32).astype(np.float64).reshape(8, 5), b).reshape(2, 4, 3))
    assert np.array_equal(products.matmul(a3, b.T.copy().T), products.matmul(a3, b))  # b in F layout


@pytest.mark.parametrize(
    "a_shape,b_shape",
    [((4, 5), (4, 3)), ((5,), (4, 3)), ((4, 5), (5,)), ((4, 5), (5, 3, 1)), ((), (1, 3))],
)
def test_matmul_shapes_that_do_not_chain(a_shape, b_shape):
    with pytest.raises(ValueError):
        products.matmul(np.ones(a_shape), np.ones(b_shape))


def test_matmul_takes_the_parallel_kernel_for_big_products():
    a, b = operands(9, 256, 128, 130, np.float64, "C")
    assert a.shape[0] * a.shape[1] * b.shape[1] >= products.PARALLEL_MIN_MACS
    assert np.array_equal(products.matmul(a, b), sequential(a, b))


# ---------------------------------------------------------------- dot


@given(n=st.integers(0, 300), seed=st.integers(0, 2**32 - 1), f32=st.booleans())
def test_dot_is_the_sequential_float64_sum(n, seed, f32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 2.0 ** rng.integers(-20, 20, n)
    y = rng.standard_normal(n)
    if f32:
        x, y = x.astype(np.float32), y.astype(np.float32)
    s = 0.0
    for xk, yk in zip(x.tolist(), y.tolist()):  # Python floats: float64, product then sum
        s = s + xk * yk
    got = products.dot(x, y)
    assert isinstance(got, float)
    assert got == s or (got == 0.0 and s == 0.0)


def test_dot_lengths_must_match():
    with pytest.raises(ValueError):
        products.dot(np.ones(3), np.ones(4))
