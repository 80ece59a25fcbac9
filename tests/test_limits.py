"""The limit model (bptt.limits): its parts, how they scale, and that its micro-kernels compute what they
claim.  No timing is compared with any threshold: the seconds are only required to be positive."""

import math
import sys

import numpy as np
import pytest

from bptt import limits
from bptt.limits import Limit, Part


def _counts(lim: Limit) -> dict[str, int]:
    return {p.name: p.count for p in lim.parts}


def test_serial_limit_is_the_call_and_the_chain_per_step():
    lim = limits.gradient_limit(T=50, B=1, D=1, H=1, x_shape=(50,), y_shape=(50,), budget=0.001)
    assert lim.model == "serial chain"
    assert _counts(lim) == {"call": 1, "serial chain (forward + backward)": 50}
    assert all(p.seconds > 0 for p in lim.parts)
    assert lim.seconds == pytest.approx(sum(p.count * p.seconds for p in lim.parts))


def test_lists_add_their_conversion_to_the_call():
    lim = limits.gradient_limit(T=5, B=1, D=1, H=1, x_shape=(5,), y_shape=(5,), lists=True, budget=0.001)
    assert lim.parts[0].name == "call" and lim.parts[0].unit == "one call from Python with two lists"
    assert lim.parts[0].seconds > 0


def test_batched_limit_parts_scale_with_T():
    one = limits.gradient_limit(T=6, B=3, D=2, H=4, budget=0.001)
    two = limits.gradient_limit(T=12, B=3, D=2, H=4, budget=0.001)
    assert one.model == two.model == "products + elementwise"
    assert _counts(one)["per-step products"] == 12 and _counts(two)["per-step products"] == 24
    units = {p.name: p.unit for p in two.parts}
    assert units["per-step products"] == "(3, 4) x (4, 4)"
    assert units["hidden sigmoid"] == f"{12 * 3 * 4} numbers" and units["output error"] == f"{12 * 3} numbers"
    assert units["all-rows products"].startswith("(36, 2) x (2, 4)")
    assert all(p.seconds > 0 for p in one.parts + two.parts) and one.seconds > 0


def test_all_rows_shapes_are_the_gradients_products():
    T, B, D, H, O = 5, 3, 2, 4, 1
    R = T * B
    assert limits.all_rows_shapes(T, B, D, H, O) == [(R, D, H), (R, H, O), (R, O, H), (H, R, H), (H, R, D), (O, R, H)]
    assert limits.all_rows_shapes(T, B, D, H, O, forward_only=True) == [(R, D, H), (R, H, O)]
    assert limits.all_rows_shapes(2 * T, B, D, H, O)[0] == (2 * R, D, H)


def test_per_step_parts_run_at_least_T_steps():
    assert limits.run_steps(7, 1, 1) == limits.MIN_STEPS
    assert limits.run_steps(5000, 1, 1) == 5000
    assert limits.run_steps(50, 64, 1024) == 50  # large products: T itself, the run stays quick


def test_train_limit_sums_the_mini_batches_and_the_forward_passes():
    lim = limits.train_limit(T=3, batches=[4, 4, 2], epochs=5, val_n=6, test_n=7, D=2, H=3, dtype="float64",
                             budget=0.001)
    c = _counts(lim)
    assert c["call"] == 1
    assert c["mini-batch B=4: per-step products"] == 2 * 5 * 2 * 3  # two batches of 4, 5 epochs, 2 T products
    assert c["mini-batch B=2: per-step products"] == 1 * 5 * 2 * 3
    assert c["mini-batch B=4: hidden derivative"] == 2 * 5
    assert c["validation forward: per-step products"] == 5 * 3 and c["test forward: per-step products"] == 3
    assert "validation forward: hidden derivative" not in c  # forward only
    assert lim.seconds > 0


def test_best_of_takes_the_faster_measurement_of_each_part():
    a = Limit("m", (Part("call", "u", 1, 2.0), Part("chain", "u", 10, 1.0)))
    b = Limit("m", (Part("call", "u", 1, 1.0), Part("chain", "u", 10, 3.0)))
    best = limits.best_of(a, b)
    assert [p.seconds for p in best.parts] == [1.0, 1.0] and best.seconds == 11.0
    with pytest.raises(ValueError):
        limits.best_of(a, Limit("m", (Part("call", "u", 1, 1.0),)))


def test_as_dict_round_trips():
    lim = Limit("m", (Part("call", "u", 1, 2.0), Part("chain", "v", 10, 0.5)))
    d = lim.as_dict()
    assert d["seconds"] == 7.0 and d["parts"][1] == {"name": "chain", "unit": "v", "count": 10, "seconds_each": 0.5,
                                                      "seconds": 5.0}
    assert limits.from_dict(d) == lim


def test_measure_combines_the_one_thread_child():
    req = [("gradient", {"T": 2, "B": 1, "D": 1, "H": 1, "x_shape": (2,), "y_shape": (2,), "budget": 0.001})]
    (lim,) = limits.measure(req)
    assert _counts(lim) == {"call": 1, "serial chain (forward + backward)": 2} and lim.seconds > 0


def test_measure_keeps_its_own_measurement_where_the_child_fails(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    req = [("gradient", {"T": 2, "B": 1, "D": 1, "H": 1, "budget": 0.001})]
    (lim,) = limits.measure(req)
    assert _counts(lim) == {"call": 1, "serial chain (forward + backward)": 2}


# ------------------------------------------------------------------ the micro-kernels do the work they time
def test_scalar_chain_computes_the_recurrence_and_its_backward_chain():
    rng = np.random.default_rng(0)
    zx, c, g = rng.uniform(-1, 1, 20), rng.uniform(-0.1, 0.1, 20), rng.uniform(0.1, 0.25, 20)
    wh = 0.5
    hs, dzs = np.empty(20), np.empty(20)
    limits._scalar_chain(zx, c, g, wh, hs, dzs)
    h, want_h = 0.0, []
    for t in range(20):
        h = 1 / (1 + math.exp(-(wh * h + zx[t])))
        want_h.append(h)
    dz, want_dz = 0.0, [0.0] * 20
    for t in reversed(range(20)):
        dz = (wh * dz + c[t]) * g[t]
        want_dz[t] = dz
    np.testing.assert_allclose(hs, want_h, rtol=1e-14)
    np.testing.assert_allclose(dzs, want_dz, rtol=1e-14)
    hp, dp = np.empty(20, np.float32), np.empty(20, np.float32)
    f32 = [v.astype(np.float32) for v in (zx, c, g)]
    limits._scalar_chain_poly(*f32, np.float32(wh), hp, dp)
    np.testing.assert_allclose(hp, want_h, rtol=1e-5)
    np.testing.assert_allclose(dp, want_dz, rtol=1e-4)


@pytest.mark.parametrize("kernel", ["_steps_blas", "_steps_loop", "_steps_lanes"])
def test_step_kernels_chain_m_products(kernel):
    rng = np.random.default_rng(1)
    h = rng.uniform(-1, 1, (5, 3))
    q = limits._orthogonal(3, np.float64)
    a, b = np.empty_like(h), np.empty_like(h)
    got = getattr(limits, kernel)(7, h, q, a, b)
    assert got == pytest.approx((h @ np.linalg.matrix_power(q, 7))[0, 0], rel=1e-12)


def test_elementwise_kernels_compute_the_sigmoid_and_the_derivative_product():
    rng = np.random.default_rng(2)
    a, b, h = rng.uniform(-4, 4, 33), rng.uniform(-1, 1, 33), rng.uniform(0, 1, 33)
    want = 1 / (1 + np.exp(-(a + b)))
    out = np.empty(33)
    limits._sigmoid_pass(a, b, out)
    np.testing.assert_allclose(out, want, rtol=1e-14)
    limits._numpy_sigmoid(a, b, out)
    np.testing.assert_allclose(out, want, rtol=1e-14)
    limits._sigmoid_pass_vec(a, b, out)
    np.testing.assert_allclose(out, want, rtol=1e-14)
    o32 = np.empty(33, np.float32)
    limits._sigmoid_pass_f32(a.astype(np.float32), b.astype(np.float32), o32)
    np.testing.assert_allclose(o32, want, rtol=1e-6)
    limits._derivative_pass(a, b, h, out)
    np.testing.assert_allclose(out, (a + b) * h * (1 - h), rtol=1e-14)
    limits._numpy_derivative(a, b, h, out, np.empty(33))
    np.testing.assert_allclose(out, (a + b) * h * (1 - h), rtol=1e-14)


def test_call_floor_returns_a_loss_and_five_new_arrays():
    x = y = np.zeros(4, np.float32)
    p = [np.zeros(s, np.float32) for s in ((1, 1), (1, 1), (1, 1), (1,), (1,))]
    loss, *grads = limits._call(x, y, *p)
    assert loss == 0.0 and [g.shape for g in grads] == [q.shape for q in p]
    assert all(g is not q for g, q in zip(grads, p))
