"""The compiled kernels (kernels.py) against the numpy reference engine, finite differences, and the dispatch keyword."""

import contextlib
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bptt
from bptt import BPTTError, activations, engine
from bptt import dispatch
from bptt import kernels
from bptt.losses import LOSSES
from helpers import finite_difference_grads, random_model

# the table's activations that have a compiled version (the others are refused: test_activations.py)
HIDDEN = tuple(n for n in activations.HIDDEN_ACTIVATIONS if activations.supports(activations.ACTIVATIONS[n], "numba"))
OUTPUT = tuple(n for n in activations.OUTPUT_ACTIVATIONS if activations.supports(activations.ACTIVATIONS[n], "numba"))
# every (output activation, loss) pair the kernels run: a compiled output with a compiled loss defined for it
PAIRS = tuple((g, name) for g in OUTPUT for name, rec in LOSSES.items()
              if rec.code is not None and (rec.outputs is None or g in rec.outputs))


WHOLE_SEQUENCE_CALLS = ("scalar_fast", "lanes_kernel", "batched_fast")


@contextlib.contextmanager
def whole_sequence_calls():
    """The names of the whole-sequence compiled calls that dispatch makes inside the block, in order."""
    seen = []

    def spy(name, fn):
        def call(*args):
            seen.append(name)
            return fn(*args)
        return call

    with contextlib.ExitStack() as stack:
        for name in WHOLE_SEQUENCE_CALLS:
            stack.enter_context(mock.patch.object(kernels, name, spy(name, getattr(kernels, name))))
        yield seen


def _problem(rng, T, B, D, H, O, dtype, scale=0.8):
    p = engine.Params(
        w=(scale * rng.standard_normal((O, H))).astype(dtype),
        w_x=(scale * rng.standard_normal((H, D))).astype(dtype),
        w_h=(scale * rng.standard_normal((H, H))).astype(dtype),
        b1=(scale * rng.standard_normal(H)).astype(dtype),
        b2=(scale * rng.standard_normal(O)).astype(dtype),
    )
    x = rng.standard_normal((T, B, D)).astype(dtype)  # (T, B, D)
    y = rng.random((T, B, O)).astype(dtype)  # (T, B, O)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)  # (B, H)
    return p, x, y, h0


def _assert_close(got, ref, dtype):
    """float64: to rounding; float32: loose (different summation order over float32 data)."""
    (l1, g1, d1), (l0, g0, d0) = got, ref
    rtol, atol = (1e-9, 1e-12) if dtype == np.float64 else (2e-3, 2e-4)
    assert np.isclose(l1, l0, rtol=rtol, atol=atol)
    for k in engine.PARAM_NAMES:
        assert g1[k].shape == g0[k].shape and g1[k].dtype == dtype, k
        np.testing.assert_allclose(g1[k], g0[k], rtol=rtol, atol=atol * (1 + np.abs(g0[k]).max()), err_msg=k)
    np.testing.assert_allclose(d1, d0, rtol=rtol, atol=atol * (1 + np.abs(d0).max()))


@settings(max_examples=30, deadline=None)
@given(
    T=st.integers(1, 9),
    B=st.integers(1, 3),
    D=st.integers(1, 3),
    H=st.integers(1, 4),
    O=st.integers(1, 2),
    f=st.sampled_from(HIDDEN),
    pair=st.sampled_from(PAIRS),
    reduction=st.sampled_from(["mean", "sum"]),
    trunc=st.one_of(st.none(), st.integers(1, 10)),
    dtype=st.sampled_from([np.float64, np.float32]),
    seed=st.integers(0, 2**16),
)
def test_every_kernel_matches_the_reference(T, B, D, H, O, f, pair, reduction, trunc, dtype, seed):
    g, loss = pair
    rng = np.random.default_rng(seed)
    p, x, y, h0 = _problem(rng, T, B, D, H, O, dtype, scale=0.8 if loss == "squared_error" else 3.0)
    fa, ga, E = activations.ACTIVATIONS[f], activations.ACTIVATIONS[g], LOSSES[loss]
    ref = dispatch.run_kernel(p, x, y, h0, fa, ga, E, reduction, trunc, None, "numpy")
    names = ["loop", "parallel"] + (["scalar"] if (B, D, H, O) == (1, 1, 1, 1) else [])
    for name in names:
        _assert_close(dispatch.run_kernel(p, x, y, h0, fa, ga, E, reduction, trunc, None, name), ref, dtype)


@settings(max_examples=15, deadline=None)
@given(
    T=st.integers(1, 12),
    f=st.sampled_from(HIDDEN),
    pair=st.sampled_from(PAIRS),
    reduction=st.sampled_from(["mean", "sum"]),
    h0=st.one_of(st.none(), st.floats(-2, 2)),
    dtype=st.sampled_from([np.float64, np.float32]),
    seed=st.integers(0, 2**16),
)
def test_scalar_fast_path_matches_numpy_backend(T, f, pair, reduction, h0, dtype, seed):
    """The seed's case through the public call: 1-D x and y, a number h0."""
    g, loss = pair
    rng = np.random.default_rng(seed)
    m = bptt.RNN.scalar(*rng.standard_normal(5), hidden_activation=f, output_activation=g, dtype=dtype, loss=loss)
    x = rng.standard_normal(T).astype(dtype)
    y = rng.random(T).astype(dtype)
    with whole_sequence_calls() as calls:
        l1, g1 = m.loss_and_grad(x, y, h0=h0, reduction=reduction)
    assert calls == ["scalar_fast"]
    l0, g0 = m.loss_and_grad(x, y, h0=h0, reduction=reduction, backend="numpy")
    rtol = 1e-10 if dtype == np.float64 else 2e-3
    assert np.isclose(l1, l0, rtol=rtol, atol=1e-6 if dtype == np.float32 else 0)
    for k in engine.PARAM_NAMES:
        assert g1[k].shape == g0[k].shape and g1[k].dtype == g0[k].dtype
        np.testing.assert_allclose(g1[k], g0[k], rtol=rtol, atol=1e-6 if dtype == np.float32 else 1e-13)


def test_seed_example_on_the_compiled_path():
    """The seed's network: x = (1, 0), all weights 1, h0 = 0; y'_1 = sgm(sgm(2) + 1) printed 0.867."""
    m = bptt.RNN.scalar()
    loss, grads = m.loss_and_grad(np.array([1.0, 0.0]), np.array([0.5, 0.5]), backend="numba")
    h1 = 1 / (1 + np.exp(-2.0))
    y1 = 1 / (1 + np.exp(-(h1 + 1)))
    assert abs(y1 - 0.8677) < 1e-4
    ref_loss, ref_grads = m.loss_and_grad(np.array([1.0, 0.0]), np.array([0.5, 0.5]), backend="numpy")
    assert loss == pytest.approx(ref_loss, rel=1e-14)
    for k in grads:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-13)


# each compiled kernel's size (scalar, loop, blas) with every hidden activation of the table, outputs in turn
_FD_CASES = [(*size, f, OUTPUT[i % len(OUTPUT)]) for size in ((1, 1, 1, 1), (2, 3, 2, 2), (2, 40, 1, 2))
             for i, f in enumerate(HIDDEN)]


@pytest.mark.parametrize("D,H,O,B,f,g", _FD_CASES)
def test_compiled_path_against_finite_differences(D, H, O, B, f, g):
    """float64, central differences of the loss, on the scalar and loop kernels."""
    rng = np.random.default_rng(H)
    m = random_model(rng, D, H, O, f, g, scale=0.5)
    T = 5
    x = rng.standard_normal((T, D) if B == 1 else (T, B, D))
    y = rng.random((T, O) if B == 1 else (T, B, O))
    if D == 1 and O == 1:
        x, y = x[:, 0], y[:, 0]
    expect = dispatch.choose_kernel(T, B, D, H, O)
    assert expect == {1: "scalar", 3: "loop", 40: "loop"}[H]
    _, grads = m.loss_and_grad(x, y, backend="numba")
    fd = finite_difference_grads(m, x, y)
    for k in engine.PARAM_NAMES:
        np.testing.assert_allclose(grads[k], fd[k], rtol=1e-6, atol=1e-8, err_msg=k)


def test_auto_picks_by_size():
    assert dispatch.choose_kernel(1000, 1, 1, 1, 1) == "scalar"
    assert dispatch.choose_kernel(10, 2, 1, 1, 1) == "loop"
    assert dispatch.choose_kernel(10, 4, 3, 8, 2) == "loop"  # B H^2 = 256
    assert dispatch.choose_kernel(10, 5, 3, 8, 2) == "loop"
    assert dispatch.choose_kernel(50, 64, 256, 128, 1) == "loop"  # B H^2 = 1 M
    assert dispatch.choose_kernel(50, 64, 256, 256, 1) == "parallel"  # B H^2 = 4 M
    assert dispatch.choose_kernel(50, 64, 256, 1024, 1) == "parallel"  # B H^2 = 64 M
    assert set(dispatch.KERNELS) == set(kernels.RUNNERS)
    assert dispatch.resolve_kernel("numpy", 10, 1, 1, 1, 1) == "numpy"
    assert dispatch.resolve_kernel("numba", 10, 4, 3, 64, 1) == "loop"


@pytest.mark.parametrize("backend", ["gpu", "", 1, None, "NUMBA"])
def test_bad_backend_is_one_line_error(backend):
    for m, x, y in ((bptt.RNN.scalar(), [1.0, 0.0], [0.5, 0.5]), (bptt.RNN(2, 3, 1, seed=0), np.zeros((4, 2)), np.zeros((4, 1)))):
        with pytest.raises(BPTTError, match="backend .* is not supported; choose one of auto, numpy, numba") as e:
            m.loss_and_grad(x, y, backend=backend)
        assert "\n" not in str(e.value)


def test_inputs_of_any_layout_give_the_same_result_and_no_new_compilations():
    """Views, read-only and Fortran-ordered input are copied to C order before the kernels see them."""
    rng = np.random.default_rng(3)
    m = bptt.RNN(3, 20, 2, seed=1)
    big = rng.standard_normal((12, 4, 6))
    x = big[::2, :, ::2]  # (6, 4, 3), not contiguous
    y = rng.random((6, 4, 2))
    y_ro = np.asfortranarray(y)
    y_ro.flags.writeable = False
    l1, g1 = m.loss_and_grad(x, y_ro, backend="numba")
    l0, g0 = m.loss_and_grad(np.ascontiguousarray(x), y, backend="numpy")
    assert l1 == pytest.approx(l0, rel=1e-12)
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=1e-10, atol=1e-14)
    compiled = (kernels.scalar_kernel, kernels.batched_kernel, kernels.scalar_fast, kernels.batched_fast,
                kernels.lanes_kernel, kernels._lanes_forward, kernels._lanes_backward, kernels._lanes_grads, kernels._act_rows,
                kernels._dz_rows, kernels._hidden_states, kernels._output_deltas, kernels._backprop_full,
                kernels._backprop_truncated, kernels._add_weight_grads)
    for disp in compiled:
        for sig in disp.signatures:
            for ty in _flat(sig):
                if hasattr(ty, "layout"):
                    assert ty.layout == "C" and ty.mutable, (disp, sig)


def _flat(types):
    """Argument types with tuples (of arrays) opened up."""
    for ty in types:
        if hasattr(ty, "types") and not hasattr(ty, "layout"):
            yield from _flat(ty.types)
        else:
            yield ty


def test_overflow_on_the_compiled_path_is_one_line_error():
    m = bptt.RNN.scalar(w=1, w_x=1e200, w_h=1e200, b1=0, b2=0, hidden_activation="relu", output_activation="identity")
    for x in (np.array([1e200, 1e200, 1e200]), np.array([[1e200], [1e200], [1e200]])):
        with pytest.raises(BPTTError, match="non-finite") as e:
            m.loss_and_grad(x, np.zeros(3), backend="numba")
        assert "\n" not in str(e.value)
    big = bptt.RNN(1, 20, 1, hidden_activation="relu", output_activation="identity", seed=0)
    big.w_h = 1e200 * np.eye(20)
    big.w_x = np.full((20, 1), 1e200)
    with pytest.raises(BPTTError, match="non-finite"):
        big.loss_and_grad(np.full((4, 2, 1), 1e200), np.zeros((4, 2, 1)), backend="numba")


def test_fast_path_leaves_bad_input_to_the_usual_errors():
    m = bptt.RNN.scalar()
    with pytest.raises(BPTTError, match="x contains nan"):
        m.loss_and_grad(np.array([1.0, np.nan]), np.array([0.5, 0.5]))
    with pytest.raises(BPTTError, match="y must have shape"):
        m.loss_and_grad(np.array([1.0, 0.0]), np.array([0.5, 0.5, 0.5]))
    with pytest.raises(BPTTError, match="reduction must be"):
        m.loss_and_grad(np.array([1.0, 0.0]), np.array([0.5, 0.5]), reduction="max")
    with pytest.raises(BPTTError, match="h0"):
        m.loss_and_grad(np.array([1.0, 0.0]), np.array([0.5, 0.5]), h0=float("inf"))


# ---------------------------------------------------------------- the kernels' activation branches against the table
_CODED = [name for name, a in activations.ACTIVATIONS.items() if activations.supports(a, "numba")]


@pytest.mark.parametrize("name", _CODED)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_branches_match_the_table(name, dtype):
    """kernels._f / _df for the record's code compute the record's numpy value / derivative, and so
    do the vectorised sigmoid rows of the batched kernels."""
    act = activations.ACTIVATIONS[name]
    z = np.concatenate([np.linspace(-6, 6, 41), [-40.0, 40.0]]).astype(dtype)  # (N,)
    one = dtype(1)
    got = np.array([kernels._f(v, act.code, one) for v in z], dtype)
    rtol = 1e-14 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(got, act.value(z), rtol=rtol, atol=rtol)
    a = act.value(z)
    np.testing.assert_allclose(np.array([kernels._df(v, act.code, one) for v in a], dtype), act.deriv(a),
                               rtol=rtol, atol=rtol)
    rows = np.empty((1, z.size), dtype)  # (1, N)
    kernels._act_rows(z.reshape(1, -1).copy(), rows, act.code)
    np.testing.assert_allclose(rows[0], act.value(z), rtol=rtol, atol=rtol)


def test_a_code_without_a_branch_raises_in_the_kernel():
    """No default branch: an unknown code is an error, never the identity."""
    with pytest.raises(ValueError, match="no compiled branch"):
        kernels._f(0.5, 99, 1.0)
    with pytest.raises(ValueError, match="no compiled branch"):
        kernels._df(0.5, 99, 1.0)


def test_codes_are_distinct():
    codes = [a.code for a in activations.ACTIVATIONS.values() if a.code is not None]
    assert len(codes) == len(set(codes))


@settings(max_examples=60, deadline=None)
@given(
    T=st.integers(1, 9),
    B=st.integers(1, 4),
    D=st.integers(1, 3),
    H=st.integers(1, 4),
    O=st.integers(1, 2),
    f=st.sampled_from(HIDDEN),
    pair=st.sampled_from(PAIRS),
    reduction=st.sampled_from(["mean", "sum"]),
    trunc=st.sampled_from([None, 1, 2, 50]),
    h0_form=st.sampled_from(["none", "number", "vector", "matrix"]),
    form=st.sampled_from(["list", "array", "float32 array for float64", "unbatched", "fortran"]),
    dtype=st.sampled_from([np.float64, np.float32]),
    seed=st.integers(0, 2**16),
)
def test_every_input_form_takes_one_compiled_call_and_equals_the_reference(T, B, D, H, O, f, pair, reduction, trunc,
                                                                       h0_form, form, dtype, seed):
    g, loss = pair
    rng = np.random.default_rng(seed)
    m = bptt.RNN(D, H, O, f, g, dtype=dtype, seed=seed, loss=loss)
    if form == "unbatched":
        B = 1
    x = rng.standard_normal((T, B, D))  # (T, B, D) float64
    y = rng.random((T, B, O))  # (T, B, O)
    h0 = {"none": None, "number": 0.3, "vector": rng.standard_normal(H), "matrix": rng.standard_normal((B, H))}[h0_form]
    xs, ys = x, y
    if form == "list":
        xs, ys = x.tolist(), y.tolist()
    elif form == "float32 array for float64":
        xs, ys = x.astype(np.float32), y.astype(np.float32)
        x, y = xs.astype(np.float64), ys.astype(np.float64)
    elif form == "unbatched":
        xs, ys = x[:, 0], y[:, 0]
        if D == 1 and O == 1:
            xs, ys = xs[:, 0], ys[:, 0]  # 1-D
        if h0_form == "matrix":
            h0 = h0[0]
    elif form == "fortran":
        xs, ys = np.asfortranarray(x), np.asfortranarray(y)
    ref_loss, ref = m.loss_and_grad(x.astype(dtype), y.astype(dtype), h0=h0, reduction=reduction, truncate=trunc,
                                    backend="numpy")
    with whole_sequence_calls() as calls:
        loss, grads = m.loss_and_grad(xs, ys, h0=h0, reduction=reduction, truncate=trunc)
    assert len(calls) == 1  # every form takes one whole-sequence compiled call at these sizes
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (2e-3, 2e-5)
    assert np.isclose(loss, ref_loss, rtol=rtol, atol=atol)
    for k in engine.PARAM_NAMES:
        assert grads[k].shape == ref[k].shape and grads[k].dtype == ref[k].dtype
        np.testing.assert_allclose(grads[k], ref[k], rtol=rtol, atol=atol)


@pytest.mark.parametrize("bad", ["nan_x", "inf_x", "nan_h0", "inf_y", "complex_x", "ragged", "wrong_y"])
def test_bad_input_is_one_line_naming_it_on_the_compiled_path(bad):
    m = bptt.RNN(2, 3, 1, seed=0)
    x, y, h0 = np.ones((4, 2, 2)), np.full((4, 2, 1), 0.5), None
    if bad == "nan_x":
        x[1, 0, 0] = np.nan
    elif bad == "inf_x":
        x[1, 0, 0] = np.inf
    elif bad == "nan_h0":
        h0 = np.array([0.0, np.nan, 0.0])
    elif bad == "inf_y":
        y[0, 0, 0] = np.inf
    elif bad == "complex_x":
        x = x + 1j
    elif bad == "ragged":
        x = [[[1.0, 2.0]], [[1.0]]]
    elif bad == "wrong_y":
        y = np.full((4, 1, 2), 0.5)  # same size as (4, 2, 1), other shape
    with pytest.raises(BPTTError) as e:
        m.loss_and_grad(x, y, h0=h0)
    assert "\n" not in str(e.value)
    said = {"nan_x": "x contains nan", "inf_x": "x contains inf", "nan_h0": "h0 contains nan", "inf_y": "y contains inf",
            "complex_x": "x is complex", "ragged": "x must be numeric", "wrong_y": "y must have shape (4, 2, 1)"}[bad]
    assert said in str(e.value)


@settings(max_examples=40, deadline=None)
@given(
    T=st.integers(1, 9),
    B=st.integers(dispatch.LANES_MIN_B, 13),
    D=st.integers(1, 3),
    H=st.sampled_from([1, 3, 8, dispatch.LANES_MAX_H]),
    O=st.integers(1, 2),
    f=st.sampled_from(HIDDEN),
    pair=st.sampled_from(PAIRS),
    trunc=st.sampled_from([None, 1, 3]),
    h0_form=st.sampled_from(["none", "vector", "matrix"]),
    dtype=st.sampled_from([np.float64, np.float32]),
    seed=st.integers(0, 2**16),
)
def test_the_lanes_kernel_equals_the_reference(T, B, D, H, O, f, pair, trunc, h0_form, dtype, seed):
    """Batches of >= LANES_MIN_B sequences take lanes_kernel, one compiled call (every activation, loss, truncation)."""
    g, loss = pair
    assert dispatch.fast_kernel(B, H) == "lanes"
    rng = np.random.default_rng(seed)
    m = bptt.RNN(D, H, O, f, g, dtype=dtype, seed=seed, loss=loss)
    x = rng.standard_normal((T, B, D)).astype(dtype)  # (T, B, D)
    y = rng.random((T, B, O)).astype(dtype)  # (T, B, O)
    h0 = {"none": None, "vector": rng.standard_normal(H), "matrix": rng.standard_normal((B, H))}[h0_form]
    ref_loss, ref = m.loss_and_grad(x, y, h0=h0, truncate=trunc, backend="numpy")
    if dtype == np.float32:  # the public call takes it
        with whole_sequence_calls() as calls:
            loss, grads = m.loss_and_grad(x, y, h0=h0, truncate=trunc)
        assert calls == ["lanes_kernel"]
    else:  # float64 calls keep the BLAS kernels' sums (fast_kernel(lanes=False)); the training step takes it
        p = m.params()
        grads = {k: np.empty_like(v) for k, v in p.items()}
        hb = np.zeros((B, H)) if h0 is None else np.ascontiguousarray(np.broadcast_to(h0, (B, H)))
        loss = kernels.lanes_kernel(x, y, hb, p["w"], p["w_x"], p["w_h"], p["b1"], p["b2"], 1.0 / (T * B),
                                    T if trunc is None else min(trunc, T), m.hidden_act.code, m.output_act.code,
                                    m.criterion.code, *(grads[k] for k in engine.PARAM_NAMES))
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (2e-3, 2e-5)
    assert np.isclose(loss, ref_loss, rtol=rtol, atol=atol)
    for k in engine.PARAM_NAMES:
        assert grads[k].shape == ref[k].shape and grads[k].dtype == ref[k].dtype
        np.testing.assert_allclose(grads[k], ref[k], rtol=rtol, atol=atol)


def test_mid_sizes_take_one_compiled_call():
    """B H^2 up to FAST_MAX_MACS (and fewer than LANES_MIN_B sequences): batched_fast."""
    m = bptt.RNN(3, 40, 2, seed=0)
    assert dispatch.fast_kernel(2, 40) == "loop" and dispatch.fast_kernel(32, 8, lanes=False) == "loop"
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 2, 3)), rng.random((5, 2, 2))
    with whole_sequence_calls() as calls:
        loss, grads = m.loss_and_grad(x, y, reduction="sum")
    assert calls == ["batched_fast"]
    ref_loss, ref = m.loss_and_grad(x, y, reduction="sum", backend="numpy")
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for k in engine.PARAM_NAMES:
        np.testing.assert_allclose(grads[k], ref[k], rtol=1e-10, atol=1e-13)
    assert dispatch.fast_kernel(64, 64) is None  # B H^2 > FAST_MAX_MACS: the segment runners
    big = bptt.RNN(3, 64, 1, seed=0)
    with whole_sequence_calls() as calls:
        big.loss_and_grad(rng.standard_normal((3, 64, 3)), rng.random((3, 64, 1)))
    assert calls == []


# ---------------------------------------------------------------- the kernels' loss branches against the table
_LOSS_CODED = [name for name, rec in LOSSES.items() if rec.code is not None]


@pytest.mark.parametrize("name", _LOSS_CODED)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_loss_branches_match_the_table(name, dtype):
    """kernels._loss_term / _loss_delta for the record's code give twice its value and its c dE/du, for
    every output activation it pairs with, at pre-activations where a naive log(y') would overflow."""
    E = LOSSES[name]
    big = 80.0 if dtype == np.float32 else 700.0
    u = np.concatenate([np.linspace(-6, 6, 25), [-40.0, 40.0, -big, big]]).astype(dtype)  # (N,)
    y = np.random.default_rng(0).random(u.size).astype(dtype)  # (N,) in [0, 1): every loss's targets
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    one, c = dtype(1), 0.25
    for g in (gn for gn in OUTPUT if E.outputs is None or gn in E.outputs):
        act = activations.ACTIVATIONS[g]
        if g == "identity":
            u = np.clip(u, -6, 6)  # a finite squared error in float32
        yp = act.value(u)
        got = np.array([kernels._loss_term(E.code, 0.0, a, b, t) for a, b, t in zip(u, yp, y)])  # (N,)
        want = 2 * E.value(u[:, None].astype(np.float64), yp[:, None].astype(np.float64), y[:, None].astype(np.float64))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=g)
        assert np.all(np.isfinite(got))
        dgot = np.array([kernels._loss_delta(E.code, act.code, b, t, dtype(c), one) for b, t in zip(yp, y)])  # (N,)
        dwant = E.delta(u[:, None], yp[:, None], y[:, None], act, c)[:, 0]  # (N,)
        np.testing.assert_allclose(dgot, dwant, rtol=rtol, atol=rtol, err_msg=g)


def test_a_loss_code_without_a_branch_raises():
    """No default branch: an unknown loss code is an error in the kernel, and refused before any kernel runs."""
    import dataclasses

    with pytest.raises(ValueError, match="no compiled branch for this loss code"):
        kernels._loss_term(99, 0.0, 0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="no compiled branch for this loss code"):
        kernels._loss_delta(99, 0, 0.5, 0.5, 1.0, 1.0)
    fake = dataclasses.replace(LOSSES["squared_error"], name="fake", code=99)
    with pytest.raises(BPTTError, match="no branch") as e:
        kernels.loss_code(fake)
    assert "\n" not in str(e.value)
    sig = activations.ACTIVATIONS["sigmoid"]
    m = bptt.RNN(2, 3, 1, seed=0)
    x, y, h0 = np.ones((4, 1, 2)), np.zeros((4, 1, 1)), np.zeros((1, 3))
    with whole_sequence_calls() as calls, pytest.raises(BPTTError, match="no branch"):
        dispatch.loss_and_grad(dispatch.network(m.engine_params(), sig, sig, fake), x, y, h0, backend="auto", need_dh0=False)
    assert calls == []
    for name in kernels.RUNNERS:
        with pytest.raises(BPTTError, match="no branch"):
            kernels.RUNNERS[name](bptt.RNN(1, 1, 1).engine_params(), sig, sig, fake, 1.0, 4, 4, 1, np.float64)


def test_loss_codes_are_distinct_and_every_code_has_a_branch():
    codes = [rec.code for rec in LOSSES.values() if rec.code is not None]
    assert len(codes) == len(set(codes)) and set(codes) <= set(kernels.LOSS_CODES)


@pytest.mark.parametrize("form", ["scalar", "batched", "lanes"])
def test_bce_targets_outside_0_1_are_refused_on_the_compiled_path(form):
    m = bptt.RNN(1, 1, 1, loss="bce", seed=0) if form == "scalar" else bptt.RNN(2, 3, 1, loss="bce", seed=0)
    x = {"scalar": np.ones(4), "batched": np.ones((4, 2, 2)), "lanes": np.ones((4, 9, 2))}[form]
    y = np.full(x.shape[:-1] + (1,) if form != "scalar" else x.shape, 0.5)
    y.flat[1] = 1.5
    with pytest.raises(BPTTError, match="binary cross-entropy needs targets in") as e:
        m.loss_and_grad(x, y)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_results_do_not_depend_on_what_was_compiled_before(tmp_path):
    """Every compiled path (scalar, loop, parallel, the whole-sequence calls, the fused step; every activation, loss and
    dtype) gives the same bits whether its kernels were compiled first or last, fresh or from the on-disk
    cache (tests/compile_order.py, three processes, each with its own or a shared NUMBA_CACHE_DIR).  Helpers
    compiled once and called by kernels of other fastmath flags used to take the flags of whichever kernel
    compiled them first."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("compile_order.py")

    def fingerprint(order, cache):
        env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
        r = subprocess.run([sys.executable, str(script), order], capture_output=True, text=True, env=env, timeout=900)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "Warning" not in r.stderr, r.stderr[-2000:]
        return r.stdout.split()[-1]

    forward = fingerprint("forward", tmp_path / "a")
    assert fingerprint("reverse", tmp_path / "b") == forward
    assert fingerprint("forward", tmp_path / "b") == forward  # loaded from the cache the other order wrote
