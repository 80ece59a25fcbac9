"""bptt.curvature_kernels: HF's tangent and backward passes with compiled loops, the engine's bits exactly
(np.array_equal, float64 and float32, every activation and loss pair HF takes), G v against the dense
Gauss-Newton matrix J_u^T M J_u from torch autograd and against central differences of the gradient where
G = H, the same bits with 1 and 2 threads, and a whole HF run equal to the engine's."""

import hashlib
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bptt import activations, engine, hf
from bptt import curvature_kernels as ck
from bptt.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from bptt.engine import PARAM_NAMES, Params

from helpers import rel_err

# every (output activation, loss) pair HF takes: the squared error with any output, the matching pairs
PAIRS = [(g, "squared_error") for g in OUTPUT_ACTIVATIONS] + [("sigmoid", "bce"), ("softmax", "cross_entropy")]


def make_problem(rng, T, B, D, H, O, f, g, loss, dtype=np.float64):
    """A random network (weights N(0, 1)), inputs, targets the loss accepts and a mask with a scored step."""
    if not activations.get(g).elementwise:
        O = max(O, 2)  # softmax over one output is the constant 1
    net = hf.Net.named(f, g, loss)
    p = Params(**{k: rng.standard_normal(s).astype(dtype) for k, s in engine.param_shapes(D, H, O).items()})
    x = rng.standard_normal((T, B, D)).astype(dtype)  # (T, B, D)
    y = rng.uniform(0, 1, (T, B, O))  # (T, B, O)
    if loss == "cross_entropy":
        y = y / y.sum(-1, keepdims=True)  # rows of probabilities
    mask = rng.uniform(size=(T, B)) < 0.6  # (T, B)
    mask[-1, 0] = True
    return net, p, hf.Batch(x, y.astype(dtype), mask)


@st.composite
def problems(draw, max_T=6, dtypes=(np.float64,)):
    T, B, D, H, O = (draw(st.integers(1, hi)) for hi in (max_T, 4, 3, 5, 3))
    f = draw(st.sampled_from(HIDDEN_ACTIVATIONS))
    g, loss = draw(st.sampled_from(PAIRS))
    dtype = draw(st.sampled_from(dtypes))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    return (*make_problem(rng, T, B, D, H, O, f, g, loss, dtype), rng)


def direction(p: Params, rng, dtype=None) -> np.ndarray:
    return rng.standard_normal(hf.flatten(p).size).astype(dtype or p.w.dtype)  # (P,)


def same(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


# ---------------------------------------------------------------- the engine's bits
@given(problems(max_T=8, dtypes=(np.float64, np.float32)), st.sampled_from([1.0, 8.0, 300.0]))
def test_forward_is_the_engines_bits(problem, scale):
    """The compiled forward loop against engine.forward: z, h, u and y' the same bits, saturating weights
    (scale 300: e^{-|z|} underflows) included; activations without a compiled form run the engine's loop."""
    net, p, b, rng = problem
    p = Params(*(a * a.dtype.type(scale) for a in p))
    h0 = rng.standard_normal((b.x.shape[1], p.w_h.shape[0])).astype(b.x.dtype)  # (B, H)
    got, want = ck.forward(p, b.x, h0, net.f, net.g), engine.forward(p, b.x, h0, net.f, net.g)
    for name in ("z", "h", "u", "y_pred"):
        assert same(getattr(got, name), getattr(want, name)), name


@given(problems(dtypes=(np.float64, np.float32)), st.booleans())
def test_products_and_passes_are_the_engines_bits(problem, wide_v):
    """Compiled against the engine's own loops (hf's reference=True): the same bits for the tangents, the
    backward pass with both residuals, G v and S v; float32 data with float32 or float64 vectors (CG's)."""
    net, p, b, rng = problem
    v = direction(p, rng, np.float64 if wide_v else None)
    comp, ref = hf.Curvature.at(net, p, b), hf.Curvature.at(net, p, b, reference=True)
    (gv, sv), (gv_ref, sv_ref) = comp.products(v), ref.products(v)
    assert same(gv, gv_ref) and same(sv, sv_ref)
    assert same(comp.gn(v), gv_ref) and same(comp.damped(0.3, 0.0, 0.01)(v), ref.damped(0.3, 0.0, 0.01)(v))
    assert same(comp.damped(0.3, 0.7)(v), ref.damped(0.3, 0.7)(v))

    dp = hf.unflatten(v, hf.shapes_of(p))
    for got, want in zip(ck.pre_output_tangent(p, b.x, comp.fwd, net.f, dp),
                         engine.pre_output_tangent(p, b.x, comp.fwd, net.f, dp)):
        assert same(got, want)
    r_u = rng.standard_normal(comp.fwd.u.shape).astype(v.dtype)  # (T, B, O)
    r_h = rng.standard_normal(comp.fwd.h[1:].shape).astype(p.w.dtype)  # (T, B, H)
    for rh in (None, r_h):
        got = ck.backward_residual(p, b.x, comp.fwd, net.f, r_u, rh)
        want = engine.backward_residual(p, b.x, comp.fwd, net.f, r_u, rh)
        assert all(same(got[k], want[k]) for k in PARAM_NAMES)

    (value, grad), (value_ref, grad_ref) = hf.loss_and_grad(net, p, b, 0.01), hf.loss_and_grad(net, p, b, 0.01, True)
    assert value == value_ref and same(grad, grad_ref)


def test_no_activation_reaches_compiled_code_so_a_record_without_a_code_runs_the_same(rng):
    """f' enters the compiled loops as an array from the record's numpy deriv: a hidden activation without
    a compiled branch (code None) gives the same bits, never another activation's."""
    net, p, b = make_problem(rng, 4, 2, 2, 3, 1, "tanh", "sigmoid", "squared_error")
    uncoded = hf.Net(replace(net.f, code=None), net.g, net.criterion)
    v = direction(p, rng)
    assert same(hf.Curvature.at(uncoded, p, b).gn(v), hf.Curvature.at(net, p, b, reference=True).gn(v))
    assert same(hf.loss_and_grad(uncoded, p, b)[1], hf.loss_and_grad(net, p, b, reference=True)[1])


# ---------------------------------------------------------------- against torch autograd and finite differences
torch = pytest.importorskip("torch")


def dense_gauss_newton(net: hf.Net, p: Params, b: hf.Batch) -> np.ndarray:
    """G = sum_S (1/n) J_tb^T M_tb J_tb (P, P) from torch alone: J_tb = du_tb/dθ by autograd's jacobian, M_tb
    J_g^T J_g for the squared error (E's Hessian in y' is I) and E's Hessian in u for the matching pairs."""
    shapes = hf.shapes_of(p)
    f, g = net.f.torch_value, net.g.torch_value
    xt, yt = torch.tensor(b.x), torch.tensor(b.y)

    def u_of(theta):  # (T, B, O)
        q, o = {}, 0
        for k in PARAM_NAMES:
            size = int(np.prod(shapes[k]))
            q[k] = theta[o : o + size].reshape(shapes[k])
            o += size
        h = torch.zeros(xt.shape[1], shapes["w_h"][0], dtype=torch.float64)
        us = []
        for t in range(xt.shape[0]):
            h = f(xt[t] @ q["w_x"].T + h @ q["w_h"].T + q["b1"])
            us.append(h @ q["w"].T + q["b2"])
        return torch.stack(us)

    theta = torch.tensor(hf.flatten(p))
    J = torch.autograd.functional.jacobian(u_of, theta)  # (T, B, O, P)
    u = u_of(theta)
    G = torch.zeros(theta.numel(), theta.numel(), dtype=torch.float64)
    for t, bb in zip(*np.nonzero(b.mask)):
        if net.criterion.name == "squared_error":
            Jg = torch.autograd.functional.jacobian(g, u[t, bb])  # (O, O)
            M = Jg.T @ Jg
        else:
            M = torch.autograd.functional.hessian(lambda v: net.criterion.torch_value(v, g(v), yt[t, bb]), u[t, bb])
        G += J[t, bb].T @ M @ J[t, bb] / b.n
    return G.numpy()


@given(problems(max_T=4))
def test_gauss_newton_product_equals_the_dense_torch_matrix(problem):
    net, p, b, rng = problem
    v = direction(p, rng)
    G = dense_gauss_newton(net, p, b)  # (P, P)
    gv = hf.Curvature.at(net, p, b).gn(v)
    assert rel_err(gv, G @ v) < 1e-10 or np.max(np.abs(gv - G @ v)) < 1e-13


@given(problems(max_T=5))
def test_gauss_newton_product_is_the_hessian_product_by_central_differences_at_zero_residual(problem):
    """Identity output, squared error and targets equal to the outputs: the term G drops, sum (y' - y) ∇²u,
    vanishes, so G v = H v = (∇L(θ + εv) - ∇L(θ - εv)) / 2ε, the gradient being the compiled one too."""
    net, p, b, rng = problem
    net = hf.Net.named(net.f.name, "identity", "squared_error")
    O = p.w.shape[0]
    b = hf.Batch(b.x, np.zeros(b.x.shape[:2] + (O,)), b.mask)
    fwd = net.forward(p, b)
    assume(net.f.name != "relu" or np.min(np.abs(fwd.z)) > 1e-3)  # no kink within ε
    b = hf.Batch(b.x, fwd.y_pred, b.mask)  # zero residual
    v = direction(p, rng)
    theta, shapes, eps = hf.flatten(p), hf.shapes_of(p), 1e-5
    up = hf.loss_and_grad(net, hf.unflatten(theta + eps * v, shapes), b)[1]
    down = hf.loss_and_grad(net, hf.unflatten(theta - eps * v, shapes), b)[1]
    gv = hf.Curvature.at(net, p, b).gn(v)
    fd = (up - down) / (2 * eps)
    assert rel_err(gv, fd) < 1e-6 or np.max(np.abs(gv - fd)) < 1e-9


# ---------------------------------------------------------------- threads and a whole run
_THREADS_SCRIPT = r"""
import hashlib, numpy as np
from bptt import hf
from bptt.engine import Params, param_shapes
rng = np.random.default_rng(7)
T, B, D, H, O = 40, 160, 3, 32, 2  # all-steps products above products.PARALLEL_MIN_MACS: numba's threads
p = Params(**{k: 0.5 * rng.standard_normal(s) for k, s in param_shapes(D, H, O).items()})
b = hf.Batch.of(rng.standard_normal((T, B, D)), rng.uniform(size=(T, B, O)), rng.uniform(size=(T, B)) < 0.5)
net = hf.Net.named("sigmoid", "sigmoid", "squared_error")
gv, sv = hf.Curvature.at(net, p, b).products(rng.standard_normal(hf.flatten(p).size))
grad = hf.loss_and_grad(net, p, b)[1]
print(hashlib.sha256(gv.tobytes() + sv.tobytes() + grad.tobytes()).hexdigest())
"""


def test_products_have_the_same_bits_with_one_and_two_threads():
    digests = []
    for threads in ("1", "2"):
        r = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "NUMBA_NUM_THREADS": threads})
        assert r.returncode == 0, r.stderr
        digests.append(r.stdout.strip())
    assert len(digests[0]) == 64 and digests[0] == digests[1]


@pytest.mark.parametrize("structural", [0.0, 0.5])
def test_hf_iterations_equal_the_engines(structural):
    """Three HF iterations (adding problem, T = 12) with the compiled passes and with the engine's loops: the
    same parameters, bit for bit, and the same record of each iteration but its seconds."""
    from bptt import train as tr

    cfg = tr.config_for("adding", {"length": 12, "n_train": 80, "n_val": 20, "n_test": 20}, optimizer="hf",
                        hidden_size=5, seed=2, hf_structural=structural, hf_curvature_batch=40, hf_l2=1e-4)
    data = tr.load_task(cfg)
    runs = []
    for reference in (False, True):
        params = tr.init_model(cfg, data).params()
        opt = hf.HessianFree.from_config(cfg, params)
        opt.reference = reference
        infos = []
        for epoch in range(1, 4):
            order = np.random.default_rng([cfg.seed, epoch]).permutation(data.train.n)
            opt.run_epoch(params, data.train.x, data.train.y, data.train.mask, order)
            infos.append(replace(opt.last, seconds=0.0))
        runs.append((hashlib.sha256(b"".join(params[k].tobytes() for k in PARAM_NAMES)).hexdigest(), infos))
    assert runs[0] == runs[1]
    assert runs[0][1][-1].cg_iters > 0 and runs[0][1][-1].alpha > 0  # the run did take steps
