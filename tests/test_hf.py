"""Hessian-free training (bptt.hf): the tangents and Gauss-Newton products against finite differences
and torch's autograd (float64, random shapes, every activation of the table), CG, damping, and a real run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bptt import engine, hf
from bptt import io as bio
from bptt import train as tr
from bptt.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from bptt.engine import PARAM_NAMES, Params
from bptt.validation import BPTTError

from helpers import random_model, rel_err, crash_env, outputs_for

torch = pytest.importorskip("torch")


@st.composite
def problems(draw, max_T=6):
    """A random network, inputs, targets and mask (at least one scored step); float64."""
    T = draw(st.integers(1, max_T))
    B = draw(st.integers(1, 3))
    D = draw(st.integers(1, 3))
    H = draw(st.integers(1, 4))
    O = draw(st.integers(1, 2))
    f = draw(st.sampled_from(HIDDEN_ACTIVATIONS))
    g = draw(st.sampled_from(OUTPUT_ACTIVATIONS))
    O = outputs_for(g, O)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    m = random_model(rng, D, H, O, f, g)
    x = rng.standard_normal((T, B, D))  # (T, B, D)
    y = rng.uniform(0, 1, (T, B, O))  # (T, B, O)
    mask = rng.uniform(size=(T, B)) < 0.6  # (T, B)
    mask[-1, 0] = True
    net = hf.Net(m.hidden_act, m.output_act, m.criterion)
    return net, m.engine_params(), hf.Batch(x, y, mask), rng


def gn_product_dense(net: hf.Net, p: Params, b: hf.Batch) -> np.ndarray:
    """G (P, P) column by column, from hf.Curvature.gn (small shapes only)."""
    c = hf.Curvature.at(net, p, b)
    P = hf.flatten(p).size
    return np.stack([c.gn(e) for e in np.eye(P, dtype=b.x.dtype)], axis=1)  # (P, P)


def close(a, b, rel, abs_):
    return rel_err(a, b) < rel or np.max(np.abs(np.asarray(a) - np.asarray(b))) < abs_


def random_direction(p: Params, rng) -> Params:
    return Params(*(rng.standard_normal(a.shape) for a in p))


def torch_states(net: hf.Net, b: hf.Batch):
    """(w, w_x, w_h, b1, b2) -> (y' (T, B, O), h_1..h_T (T, B, H)) as a plain torch loop."""
    f, g = net.f.torch_value, net.g.torch_value
    xt = torch.tensor(b.x)

    def run(w, w_x, w_h, b1, b2):
        h = torch.zeros(xt.shape[1], w_h.shape[0], dtype=torch.float64)
        ys, hs = [], []
        for t in range(xt.shape[0]):
            h = f(xt[t] @ w_x.T + h @ w_h.T + b1)
            hs.append(h)
            ys.append(g(h @ w.T + b2))
        return torch.stack(ys), torch.stack(hs)

    return run


def as_torch(p: Params):
    return tuple(torch.tensor(a) for a in p)


# ---------------------------------------------------------------- tangents and the linearised backward pass
@given(problems())
def test_state_tangent_matches_finite_differences_and_torch_jvp(problem):
    net, p, b, rng = problem
    dp = random_direction(p, rng)
    fwd = net.forward(p, b)
    dh, dy = engine.state_tangent(p, b.x, fwd, net.f, net.g, dp)  # (T, B, H), (T, B, O)
    assert np.array_equal(dy, engine.output_tangent(p, b.x, fwd, net.f, net.g, dp)) or rel_err(
        dy, engine.output_tangent(p, b.x, fwd, net.f, net.g, dp)) < 1e-14

    eps = 1e-6
    plus = net.forward(Params(*(a + eps * d for a, d in zip(p, dp))), b)
    minus = net.forward(Params(*(a - eps * d for a, d in zip(p, dp))), b)
    assert close(dh, (plus.h[1:] - minus.h[1:]) / (2 * eps), 1e-6, 1e-8)
    assert close(dy, (plus.y_pred - minus.y_pred) / (2 * eps), 1e-6, 1e-8)

    _, (jy, jh) = torch.autograd.functional.jvp(torch_states(net, b), as_torch(p), as_torch(dp))
    assert close(dh, jh.numpy(), 1e-10, 1e-13)
    assert close(dy, jy.numpy(), 1e-10, 1e-13)


@given(problems())
def test_backward_residual_is_the_vjp_and_backward_is_its_special_case(problem):
    net, p, b, rng = problem
    fwd = net.forward(p, b)
    r_y = rng.standard_normal(fwd.y_pred.shape)  # (T, B, O)
    r_h = rng.standard_normal(fwd.h[1:].shape)  # (T, B, H)
    got = engine.backward_residual(p, b.x, fwd, net.f, net.g.jvp(fwd.y_pred, r_y), r_h)  # r_u = g'(u)^T r_y
    _, vjp = torch.func.vjp(torch_states(net, b), *as_torch(p))
    want = vjp((torch.tensor(r_y), torch.tensor(r_h)))
    for k, w in zip(PARAM_NAMES, want):
        assert close(got[k], w.numpy(), 1e-10, 1e-13), k

    # engine.backward is the same pass with r_u = c dE/du: the residual replaced, nothing else
    grads, _ = engine.backward(p, b.x, fwd, b.y, net.f, net.g, net.criterion, "mean")
    again = engine.backward_residual(p, b.x, fwd, net.f, engine.output_delta(fwd, b.y, net.g, net.criterion, "mean"))
    for k in PARAM_NAMES:
        np.testing.assert_allclose(again[k], grads[k], rtol=1e-12, atol=1e-15)


@given(problems())
def test_masked_loss_gradient_matches_torch(problem):
    net, p, b, _ = problem
    value, grad = hf.loss_and_grad(net, p, b, l2=0.1)
    P = [t.requires_grad_() for t in as_torch(p)]
    y_pred, _ = torch_states(net, b)(*P)
    m = torch.tensor(b.mask, dtype=torch.float64)[..., None]
    L = 0.5 * (((y_pred - torch.tensor(b.y)) ** 2) * m).sum() / b.n + 0.05 * sum((a * a).sum() for a in P)
    L.backward()
    assert value == pytest.approx(float(L.detach()), rel=1e-12)
    assert close(grad, hf.flatten({k: a.grad.numpy() for k, a in zip(PARAM_NAMES, P)}), 1e-10, 1e-13)
    assert value == pytest.approx(hf.loss(net, p, b, l2=0.1), rel=1e-12)


# ---------------------------------------------------------------- the Gauss-Newton product
@given(problems())
def test_gauss_newton_product_matches_torch_jvp_vjp_and_finite_differences(problem):
    """G v = J^T (mask / n) J v with J = dy'/dθ: torch's jvp then vjp, and J from central differences."""
    net, p, b, rng = problem
    v = hf.flatten(random_direction(p, rng))  # (P,)
    curv = hf.Curvature.at(net, p, b)
    gv, sv = curv.products(v)
    assert np.array_equal(gv, curv.gn(v))

    shapes = hf.shapes_of(p)
    run = torch_states(net, b)
    _, (jy, jh) = torch.autograd.functional.jvp(run, as_torch(p), as_torch(hf.unflatten(v, shapes)))
    _, vjp = torch.func.vjp(run, *as_torch(p))
    m = torch.tensor(b.mask, dtype=torch.float64)[..., None]
    want_g = hf.flatten(dict(zip(PARAM_NAMES, (a.numpy() for a in vjp((jy * m / b.n, torch.zeros_like(jh)))))))
    want_s = hf.flatten(dict(zip(PARAM_NAMES, (a.numpy() for a in vjp((torch.zeros_like(jy), jh / b.x.shape[1]))))))
    assert close(gv, want_g, 1e-10, 1e-13)
    assert close(sv, want_s, 1e-10, 1e-13)

    # J column by column from central differences of the outputs
    theta, eps = hf.flatten(p), 1e-6
    cols = []
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = eps
        up = net.forward(hf.unflatten(theta + e, shapes), b).y_pred
        down = net.forward(hf.unflatten(theta - e, shapes), b).y_pred
        cols.append(((up - down) / (2 * eps)).ravel())
    J = np.stack(cols, axis=1)  # (T B O, P)
    w = np.repeat(b.mask.ravel(), b.y.shape[2]) / b.n  # (T B O,): the diagonal of H_L
    assert close(gv, J.T @ (w * (J @ v)), 1e-6, 1e-8)


@pytest.mark.parametrize("g", OUTPUT_ACTIVATIONS)
@pytest.mark.parametrize("f", HIDDEN_ACTIVATIONS)
def test_gauss_newton_is_the_hessian_at_zero_residual_so_g_prime_enters_twice(f, g):
    """Where y = y' the dropped term Σ (y' - y) ∇²y' vanishes: G must equal torch's exact Hessian.
    A G with g'(u) once (the matching-loss form) would not, for a sigmoid output."""
    rng = np.random.default_rng(1)
    m = random_model(rng, 2, 3, 2, f, g)
    net = hf.Net(m.hidden_act, m.output_act, m.criterion)
    p = m.engine_params()
    x = rng.standard_normal((4, 3, 2))  # (T, B, D)
    mask = rng.uniform(size=(4, 3)) < 0.7
    mask[-1] = True
    y = net.forward(p, hf.Batch.of(x, np.zeros((4, 3, 2)), mask)).y_pred  # (T, B, O): zero residual
    b = hf.Batch.of(x, y, mask)
    G = gn_product_dense(net, p, b)  # (P, P)
    shapes = hf.shapes_of(p)
    run = torch_states(net, b)

    def L(theta):
        q = []
        o = 0
        for k in PARAM_NAMES:
            n = int(np.prod(shapes[k]))
            q.append(theta[o : o + n].reshape(shapes[k]))
            o += n
        yp, _ = run(*q)
        mt = torch.tensor(mask, dtype=torch.float64)[..., None]
        return 0.5 * (((yp - torch.tensor(y)) ** 2) * mt).sum() / int(mask.sum())

    Hess = torch.autograd.functional.hessian(L, torch.tensor(hf.flatten(p))).numpy()
    np.testing.assert_allclose(G, Hess, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(G, G.T, rtol=1e-12, atol=1e-15)
    assert np.linalg.eigvalsh(G).min() > -1e-12  # positive semi-definite


def test_damped_product_adds_lambda_l2_and_structural_term(rng):
    m = random_model(rng, 2, 3, 1, "sigmoid", "sigmoid")
    net = hf.Net(m.hidden_act, m.output_act, m.criterion)
    p = m.engine_params()
    b = hf.Batch.of(rng.standard_normal((5, 4, 2)), rng.uniform(size=(5, 4, 1)), None)
    curv = hf.Curvature.at(net, p, b)
    v = rng.standard_normal(hf.flatten(p).size)
    gv, sv = curv.products(v)
    np.testing.assert_allclose(curv.damped(0.3, 0.5, 0.01)(v), gv + 0.31 * v + 0.15 * sv, rtol=1e-13)
    np.testing.assert_allclose(curv.damped(0.3, 0.0)(v), gv + 0.3 * v, rtol=1e-13)


# ---------------------------------------------------------------- CG, damping, line search
def test_cg_solves_an_spd_system_and_keeps_the_geometric_iterates(rng):
    P = 40
    Q = rng.standard_normal((P, P))
    A = Q @ Q.T + 0.1 * np.eye(P)  # (P, P) SPD
    grad = rng.standard_normal(P)
    res = hf.cg(lambda v: A @ v, grad, np.zeros(P), max_iters=400, tol=1e-12)
    exact = np.linalg.solve(A, -grad)
    assert rel_err(res.last, exact) < 1e-6
    kept = [i for i, _, _ in res.kept]
    assert kept[:5] == [2, 3, 4, 5, 7] and kept[-1] == res.iterations  # ceil(1.3^j), then the last
    for _, xi, phi in res.kept:  # φ as CG tracks it is grad^T x + 1/2 x^T A x
        assert phi == pytest.approx(grad @ xi + 0.5 * xi @ A @ xi, rel=1e-9, abs=1e-12)
    phis = [phi for _, _, phi in res.kept]
    assert all(a >= b - 1e-12 for a, b in zip(phis, phis[1:]))  # CG decreases φ monotonically
    # a warm start at the solution stops at once; the relative-progress rule stops a loose solve early
    assert hf.cg(lambda v: A @ v, grad, exact, 50).iterations <= 11
    assert hf.cg(lambda v: A @ v, grad, np.zeros(P), max_iters=400, tol=1e-1).iterations < res.iterations


def test_backtracking_damping_and_line_search():
    kept = [(1, np.array([1.0]), -1.0), (2, np.array([2.0]), -2.0), (3, np.array([3.0]), -3.0)]
    # objective best at δ = 2: backtracking from δ = 3 stops there
    assert hf.backtrack(kept, lambda d: float((d[0] - 2) ** 2))[0] == 2
    assert hf.backtrack(kept, lambda d: -float(d[0]))[0] == 3
    assert hf.adjust_damping(1.0, 0.1) == 1.5 and hf.adjust_damping(1.0, 0.9) == pytest.approx(2 / 3)
    assert hf.adjust_damping(1.0, 0.5) == 1.0 and hf.adjust_damping(1.0, -np.inf) == 1.5
    assert hf.reduction_ratio(-1.0, -2.0) == 0.5 and hf.reduction_ratio(-1.0, 0.0) == -np.inf
    # f(α) = (α - 0.3)^2 from f0 = 0.09 with slope -0.6: α = 1 fails Armijo, 0.8^k shrinks into it
    alpha, value = hf.line_search(lambda a: (a - 0.3) ** 2, 0.09, -0.6, 0.49)
    assert 0 < alpha < 0.6 and value <= 0.09 + 1e-2 * alpha * -0.6
    assert hf.line_search(lambda a: 1.0, 0.0, -1.0, 1.0) == (0.0, 0.0)  # no decrease anywhere: no step


# ---------------------------------------------------------------- training
def test_hf_learns_the_adding_problem_in_40_iterations():
    """A small deterministic run (fixed seed): the adding problem at T = 15 below 0.1 of the predict-the-mean
    MSE in 40 HF iterations (0.017 when written).  Every product runs in a fixed order, so the count of
    iterations, not the clock, is the bound.  Determinism: the resume test below."""
    cfg = tr.config_for("adding", {"length": 15, "n_train": 300, "n_val": 200, "n_test": 500}, optimizer="hf",
                        epochs=40, seed=0, hf_curvature_batch=150)
    res = tr.train(cfg)
    assert res.metrics["epochs_run"] == 40 and not res.metrics["stopped_early"], res.metrics
    assert res.metrics["mse_ratio"] < 0.1, res.metrics


class _FakeClock:
    """time.perf_counter for bptt.hf: every reading is `tick` seconds after the last."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


def test_hf_time_limit_stops_training_and_hf_is_an_epoch_runner(monkeypatch):
    """hf_time_limit counts the seconds inside HF iterations: on a fake clock where each iteration takes
    0.125 s (exact in binary), a limit of 0.5 s stops after exactly 4 of the 10 000 epochs, whatever the
    machine or its load."""
    monkeypatch.setattr(hf, "time", _FakeClock(0.125))
    cfg = tr.config_for("adding", {"length": 10, "n_train": 100, "n_val": 50, "n_test": 50}, optimizer="hf",
                        epochs=10_000, hf_time_limit=0.5)
    res = tr.train(cfg)
    assert res.metrics["stopped_early"] and res.metrics["epochs_run"] == 4, res.metrics
    opt = tr.make_optimizer(cfg, res.model.params())
    assert hasattr(opt, "run_epoch") and not hasattr(opt, "step")  # the loop runs its epochs; no gradient steps


@pytest.mark.parametrize("bad, match", [
    ({"hf_damping": 0}, "hf_damping"), ({"hf_max_cg": 0}, "hf_max_cg"), ({"hf_cg_decay": 1.5}, "hf_cg_decay"),
    ({"chunk": 5}, "chunk"), ({"truncate": 3}, "truncate"), ({"backend": "torch"}, "backend"),
])
def test_bad_hf_settings_are_one_line_errors(bad, match):
    with pytest.raises(BPTTError, match=match) as e:
        tr.config_for("adding", {"length": 10}, optimizer="hf", **bad)
    assert "\n" not in str(e.value)


def _cli(args, env=None):
    return subprocess.run([sys.executable, "-m", "bptt", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_hf_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    args = ["--task", "adding", "--length", "8", "--n-train", "60", "--n-val", "20", "--n-test", "20", "--hidden", "4",
            "--optimizer", "hf", "--epochs", "7", "--checkpoint-every", "2", "--seed", "3", "--plots", "none"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert _cli(["train", *args, "--out", str(full)]).returncode == 0
    assert _cli(["train", *args, "--out", str(killed)], env=crash_env("5")).returncode == -9
    r = _cli(["train", "--resume", "--out", str(killed), "--plots", "none"])
    assert r.returncode == 0, r.stderr
    mk, mf = (bio.load_model(d)[0].params() for d in (killed, full))
    assert all(mk[k].tobytes() == mf[k].tobytes() for k in PARAM_NAMES)
    hk, hfull = (json.loads((d / "metrics.json").read_text())["history"] for d in (killed, full))
    assert hk == hfull
