r"""Reference forward pass and BPTT for the seed's recurrent network, in numpy.

The network (the seed's, generalised from scalars to matrices):

    z_t  = w_x x_t + w_h h_{t-1} + b1        (hidden pre-activation)
    h_t  = f(z_t)                            t = 1..T, h_0 given
    u_t  = w h_t + b2                        (output pre-activation)
    y'_t = g(u_t)

    E_t  = E(y'_t, y_t)                      (per step; mean or sum over the batch)
    Loss = (1/T) sum_t E_t   (reduction="mean", the seed's 1/2 sum_{t=1}^{2})
         =       sum_t E_t   (reduction="sum")

E is a record of the loss table (``losses.py``): the seed's E = 1/2 sum_o (y - y')^2,
binary cross-entropy with a sigmoid g, cross-entropy with a softmax g.  The loss
record gives the output pre-activation's error dE/du_t (for the seed's loss
g'(u_t) (y'_t - y_t); the seed drops the minus sign of dE/dy' = -(y - y')).

Backward (BPTT), with c the reduction's scale (1/(T B) or 1):

    du_t     = c dE/du_t
    dh_t     = du_t w + dz_{t+1} w_h          (dz_{T+1} = 0)
    dz_t     = dh_t * f'(z_t)
    dLoss/dw   = sum_t du_t^T h_t      dLoss/db2 = sum_t du_t
    dLoss/dw_x = sum_t dz_t^T x_t      dLoss/dw_h = sum_t dz_t^T h_{t-1}
    dLoss/db1  = sum_t dz_t

Everything is batched: arrays are (T, B, ·). Only the recurrences loop over
t; the input projection and the weight-gradient sums are single matrix
products over all time steps.  Every product is ``mm`` (``bptt.products``), never
a BLAS: its sums run in one fixed order, so results are the same bits on every
BLAS kernel, thread count and load. These functions are pure and unchecked: the
public ``bptt.RNN`` validates input, and ``dispatch`` sends it here or to ``kernels``.

This module is the reference.  Every other implementation of the recurrence, and
the test that pins it to this one (or to finite differences / torch autograd):

    numpy, full BPTT         forward, backward, bptt_full
                             tests/test_engine.py::test_gradients_match_central_finite_differences,
                             ::test_gradients_match_torch_autograd
    numpy, truncated         bptt_truncated
                             tests/test_engine.py::test_truncated_bptt_matches_detached_torch_and_the_path_sum
    numpy, decomposed        decompose (per error term E_i and per path k, the seed's sum; state_errors)
                             tests/test_engine.py::test_decomposition_sums_to_total,
                             ::test_each_error_term_is_its_own_gradient
    numpy, checkpointed      dispatch.NumpyRunner (segments with a carry)
                             tests/test_dispatch.py::test_checkpointed_gradient_equals_full_bptt
    compiled, one unit       kernels.scalar_kernel (ScalarRunner), kernels.scalar_fast
                             tests/test_kernels.py::test_every_kernel_matches_the_reference,
                             ::test_scalar_fast_path_matches_numpy_backend
    compiled, whole sequence kernels.lanes_kernel, kernels.batched_fast (dispatch.fast_kernel's sizes)
                             tests/test_kernels.py::test_the_lanes_kernel_equals_the_reference,
                             ::test_every_input_form_takes_one_compiled_call_and_equals_the_reference
    compiled, batched        kernels.batched_kernel (LoopRunner), ParallelRunner
                             tests/test_kernels.py::test_every_kernel_matches_the_reference,
                             ::test_compiled_path_against_finite_differences,
                             tests/test_dispatch.py::test_every_kernel_checkpointed_equals_reference
    torch layer, full        torch._BPTT (bptt.torch.SigmoidRNN), checkpointed and blocked
                             tests/test_torch_layer.py::test_gradcheck, ::test_equals_plain_autograd_loop,
                             ::test_equals_numpy_engine
    torch layer, truncated   torch._BPTT with truncate
                             tests/test_torch_layer.py::test_truncated_equals_autograd_with_the_graph_cut
    forward mode (tangents)  output_tangent (dy'_t in a parameter direction; check.py's target map)
                             tests/test_engine.py::test_output_tangent_matches_finite_differences_and_torch_jvp
    forward mode, a state    output_tangent_from_state (dy'_t from a perturbation of h_k; check.py's per-step claims)
                             tests/test_engine.py::test_output_tangent_from_state_matches_finite_differences_and_torch_jvp
    forward mode, states     state_tangent (dh_t and dy'_t: J_h v, J_y v; bptt.hf's Gauss-Newton products)
                             tests/test_hf.py::test_state_tangent_matches_finite_differences_and_torch_jvp
    linearised backward      backward_residual (J_y^T r_y + J_h^T r_h; backward with the residual replaced)
                             tests/test_hf.py::test_backward_residual_is_the_vjp_and_backward_is_its_special_case,
                             ::test_gauss_newton_product_matches_torch_jvp_vjp_and_finite_differences
    compiled, HF's passes    curvature_kernels.pre_output_tangent, backward_residual (the engine's bits)
                             tests/test_curvature_kernels.py::test_products_and_passes_are_the_engines_bits,
                             ::test_gauss_newton_product_equals_the_dense_torch_matrix
    gradient flow            gradflow.gradient_flow (||dE_t/dh_k|| from state_errors)
                             tests/test_gradflow.py::test_gradient_flow_matches_torch_autograd
    symbolic                 derive.py (sympy: the seed's chain-rule derivation for any T)
                             tests/test_derive.py::test_symbolic_terms_equal_engine,
                             ::test_chain_rule_form_equals_sympy_diff_of_unrolled_loss
    every loss of the table  losses.py records through the numpy engine, the compiled kernels (bce) and checkpointing
                             tests/test_losses.py::test_network_gradients_match_torch_autograd_and_finite_differences,
                             ::test_network_gradients_match_jax, ::test_hf_gauss_newton_product_matches_torch
    training                 backends.py (masked loss over scored steps, chunks with a carried state)
                             tests/test_train.py::test_masked_loss_and_grad_matches_finite_differences

``tests/test_structure.py::test_engine_docstring_names_real_tests`` checks that every test
named here exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .activations import Activation
from .losses import Loss
from .products import matmul as mm  # a @ b in one fixed order of summation (numba loads on the first product)

PARAM_NAMES = ("w", "w_x", "w_h", "b1", "b2")


def param_shapes(input_size: int, hidden_size: int, output_size: int) -> dict[str, tuple[int, ...]]:
    """The one rule for the parameters' shapes: w (O, H), w_x (H, D), w_h (H, H), b1 (H,), b2 (O,)."""
    D, H, O = input_size, hidden_size, output_size
    return {"w": (O, H), "w_x": (H, D), "w_h": (H, H), "b1": (H,), "b2": (O,)}


class Params(NamedTuple):
    """The five parameters, in the seed's names.  w_x (H, D), w_h (H, H), b1 (H,), w (O, H), b2 (O,)."""

    w: np.ndarray
    w_x: np.ndarray
    w_h: np.ndarray
    b1: np.ndarray
    b2: np.ndarray


@dataclass(frozen=True)
class Forward:
    """Every intermediate of one forward pass.

    z (T, B, H)       hidden pre-activations  w_x x_t + w_h h_{t-1} + b1
    h (T+1, B, H)     hidden states h_0..h_T
    u (T, B, O)       output pre-activations  w h_t + b2
    y_pred (T, B, O)  outputs y'_1..y'_T
    """

    z: np.ndarray
    h: np.ndarray
    u: np.ndarray
    y_pred: np.ndarray


def forward(p: Params, x: np.ndarray, h0: np.ndarray, f: Activation, g: Activation, steps=None) -> Forward:
    """Run the recurrence.  x (T, B, D), h0 (B, H).  ``steps(z, h, w_hT)``, if given, runs the loop over t
    below instead, with the same bits (curvature_kernels.forward: compiled)."""
    T, B, _ = x.shape
    H = p.w_h.shape[0]
    z = mm(x, p.w_x.T) + p.b1  # (T, B, H): input projection, one product for all t
    h = np.empty((T + 1, B, H), dtype=x.dtype)  # (T+1, B, H)
    h[0] = h0
    w_hT = np.ascontiguousarray(p.w_h.T)  # (H, H): transposed once, not at every step (the same values)
    if steps is not None:
        steps(z, h, w_hT)
    else:
        for t in range(T):
            z[t] += mm(h[t], w_hT)  # (B, H)
            h[t + 1] = f.value(z[t])  # (B, H)
    u = mm(h[1:], p.w.T) + p.b2  # (T, B, O)
    return Forward(z=z, h=h, u=u, y_pred=g.value(u))


def output_tangent(p: Params, x: np.ndarray, fwd: Forward, f: Activation, g: Activation, dp: Params) -> np.ndarray:
    """dy'_t in the parameter direction dp: forward-mode differentiation (the R-operator's forward pass).

        dz_t = dw_x x_t + dw_h h_{t-1} + w_h dh_{t-1} + db1     dh_0 = 0
        dh_t = f'(z_t) * dz_t
        dy'_t = g'(u_t) * (dw h_t + w dh_t + db2)

    x (T, B, D); fwd from ``forward``; dp shaped like p.  Returns dy' (T, B, O).  One pass
    costs one forward pass, so the Jacobian dy'/dθ of a P-parameter model takes P passes.
    (``state_tangent`` runs the recurrence and also returns the dh_t it carries.)
    """
    return state_tangent(p, x, fwd, f, g, dp)[1]


def loss_scale(T: int, B: int, reduction: str) -> float:
    """c in Loss = c * sum_{t,b} E(y'_tb, y_tb)."""
    return 1.0 / (T * B) if reduction == "mean" else 1.0


def loss(fwd: Forward, y: np.ndarray, criterion: Loss, reduction: str) -> float:
    """Loss = c * sum_{t,b} E(y'_tb, y_tb).  y (T, B, O)."""
    T, B, _ = y.shape
    return float(loss_scale(T, B, reduction) * np.sum(criterion.value(fwd.u, fwd.y_pred, y)))


def output_delta(fwd: Forward, y: np.ndarray, g: Activation, criterion: Loss, reduction: str) -> np.ndarray:
    """du_t = c dE/du_t (the seed's loss: c (y'_t - y_t) g'(u_t)).  Returns (T, B, O)."""
    T, B, _ = y.shape
    return criterion.delta(fwd.u, fwd.y_pred, y, g, loss_scale(T, B, reduction))


def backward(
    p: Params,
    x: np.ndarray,
    fwd: Forward,
    y: np.ndarray,
    f: Activation,
    g: Activation,
    criterion: Loss,
    reduction: str = "mean",
    truncate: int | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Exact BPTT.  Returns (the five gradients, dLoss/dh_0 (B, H)).

    truncate=k: each error E_t sends its signal back at most k steps, i.e. the
    seed's sum over paths keeps only k in t-k+1..t (k=1 keeps dh_t/dθ alone).
    """
    T = x.shape[0]
    du = output_delta(fwd, y, g, criterion, reduction)  # (T, B, O)
    dh_direct = mm(du, p.w)  # (T, B, H): dE_t/dh_t
    fprime = f.deriv(fwd.h[1:])  # (T, B, H): f'(z_t)
    if truncate is None or truncate >= T:
        dz = bptt_full(p.w_h, dh_direct, fprime)  # (T, B, H)
        dh0 = mm(dz[0], p.w_h)  # (B, H)
    else:
        dz, dh0 = bptt_truncated(p.w_h, dh_direct, fprime, truncate)
    grads = weight_grads(x, fwd.h, dz, du)
    return grads, dh0


def bptt_full(w_h: np.ndarray, dh_direct: np.ndarray, fprime: np.ndarray) -> np.ndarray:
    """dz_t = (dE_t/dh_t + dz_{t+1} w_h) * f'(z_t), backwards in t.  Returns (T, B, H)."""
    dz = np.empty_like(dh_direct)  # (T, B, H)
    carry = np.zeros_like(dh_direct[0])  # (B, H): dz_{t+1} w_h
    for t in range(dh_direct.shape[0] - 1, -1, -1):
        dz[t] = (dh_direct[t] + carry) * fprime[t]
        carry = mm(dz[t], w_h)
    return dz


def bptt_truncated(
    w_h: np.ndarray, dh_direct: np.ndarray, fprime: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each E_t backpropagates through at most k steps (t-k+1..t).  O(T k) products."""
    T = dh_direct.shape[0]
    dz = np.zeros_like(dh_direct)  # (T, B, H): summed over error terms
    dh0 = np.zeros_like(dh_direct[0])  # (B, H)
    for t in range(T):
        delta = dh_direct[t]  # (B, H): dE_t/dh_s at s = t
        for s in range(t, max(t - k, -1), -1):
            dzs = delta * fprime[s]  # (B, H)
            dz[s] += dzs
            delta = mm(dzs, w_h)  # dE_t/dh_{s-1}
            if s == 0:
                dh0 += delta
    return dz, dh0


def weight_grads(x: np.ndarray, h: np.ndarray, dz: np.ndarray, du: np.ndarray) -> dict[str, np.ndarray]:
    """The five gradients as single products over all (t, b).

    x (T, B, D), h (T+1, B, H), dz (T, B, H), du (T, B, O).
    """
    T, B, D = x.shape
    H = h.shape[2]
    O = du.shape[2]
    dz2 = dz.reshape(T * B, H)  # (T B, H)
    du2 = du.reshape(T * B, O)  # (T B, O)
    return {
        "w": mm(du2.T, h[1:].reshape(T * B, H)),  # (O, H)
        "w_x": mm(dz2.T, x.reshape(T * B, D)),  # (H, D)
        "w_h": mm(dz2.T, h[:-1].reshape(T * B, H)),  # (H, H)
        "b1": dz2.sum(axis=0),  # (H,)
        "b2": du2.sum(axis=0),  # (O,)
    }


@dataclass(frozen=True)
class Decomposition:
    """The seed's sum, term by term and path by path.

    For each parameter θ:
      paths[θ] (T, T, *θ.shape): paths[θ][i, k] = (dE_i/dy'_i)(dy'_i/dh_i)(dh_i/dh_k)(∂h_k/∂θ),
          the contribution of path k to the gradient of error term E_{i}
          (0-based i, k; zero where k > i). For w and b2, which reach E_i
          without passing through any h, the single term sits at k = i.
      terms[θ] (T, *θ.shape) = paths[θ].sum(axis=1) = dE_i/dθ.
    Loss = weight * sum_i E_i, so weight * terms[θ].sum(0) = dLoss/dθ.
    E_i here is the loss of step i, averaged (mean) or summed (sum) over the batch.
    """

    terms: dict[str, np.ndarray]
    paths: dict[str, np.ndarray]
    weight: float


def decompose(
    p: Params, x: np.ndarray, fwd: Forward, y: np.ndarray, f: Activation, g: Activation, criterion: Loss,
    reduction: str = "mean",
) -> Decomposition:
    """Per-error-term, per-path gradients.  O(T^2) memory and time: for teaching-size problems."""
    T, B, D = x.shape
    H = p.w_h.shape[0]
    O = p.w.shape[0]
    batch_scale = 1.0 / B if reduction == "mean" else 1.0
    du = criterion.delta(fwd.u, fwd.y_pred, y, g, batch_scale)  # (T, B, O): dE_i/du_i
    fprime = f.deriv(fwd.h[1:])  # (T, B, H)
    paths = {
        "w": np.zeros((T, T, O, H), x.dtype),
        "b2": np.zeros((T, T, O), x.dtype),
        "w_x": np.zeros((T, T, H, D), x.dtype),
        "w_h": np.zeros((T, T, H, H), x.dtype),
        "b1": np.zeros((T, T, H), x.dtype),
    }
    for i in range(T):
        paths["w"][i, i] = mm(du[i].T, fwd.h[i + 1])  # (O, H)
        paths["b2"][i, i] = du[i].sum(axis=0)  # (O,)
        for k, _, dz in state_errors(p.w_h, mm(du[i], p.w), fprime, i):  # dz (B, H): dE_i/dz_k
            paths["w_x"][i, k] = mm(dz.T, x[k])  # (H, D)
            paths["w_h"][i, k] = mm(dz.T, fwd.h[k])  # (H, H): h_{k-1} is h[k]
            paths["b1"][i, k] = dz.sum(axis=0)  # (H,)
    terms = {name: a.sum(axis=1) for name, a in paths.items()}
    return Decomposition(terms=terms, paths=paths, weight=1.0 / T if reduction == "mean" else 1.0)


def state_errors(w_h: np.ndarray, dh_i: np.ndarray, fprime: np.ndarray, i: int):
    """The seed's chain dh_i/dh_k, one step at a time, for the error term E_i.

    Yields (k, dE_i/dh_k, dE_i/dz_k) for k = i, i-1, ..., 0 (0-based steps: h_k is Forward's h[k + 1]):
        dE_i/dz_k = dE_i/dh_k * f'(z_k),   dE_i/dh_{k-1} = dE_i/dz_k w_h
    dh_i = dE_i/dh_i = (dE_i/du_i) w, (B, H) or (H,); fprime (T, B, H) or (T, H) = f'(z_t).
    """
    dh = dh_i
    for k in range(i, -1, -1):
        dz = dh * fprime[k]  # (B, H)
        yield k, dh, dz
        if k:
            dh = mm(dz, w_h)  # (B, H): dE_i/dh_{k-1}


def output_tangent_from_state(p: Params, fwd: Forward, f: Activation, g: Activation, k: int, dh: np.ndarray) -> np.ndarray:
    """dy'_t for a perturbation dh (B, H) of the state h_k, parameters and inputs held fixed.

        dy'_k = g'(u_k) * (w dh)                   (k >= 1; h_0 has no output)
        dh_t  = f'(z_t) * (w_h dh_{t-1}),  dy'_t = g'(u_t) * (w dh_t)      t = k+1..T

    k in 0..T (h_0..h_T). Returns dy' (T, B, O), zero before step k. With dh = f'(z_k) * v it is
    the tangent of a perturbation v of z_k; with v = dw_x x_k + dw_h h_{k-1} + db1 that of the
    copies of w_x, w_h, b1 used at step k alone (the unrolled network's per-step weights).
    """
    T = fwd.u.shape[0]
    fprime = f.deriv(fwd.h[1:])  # (T, B, H)
    du = np.zeros_like(fwd.y_pred)  # (T, B, O)
    if k >= 1:
        du[k - 1] = mm(dh, p.w.T)
    w_hT, wT = np.ascontiguousarray(p.w_h.T), np.ascontiguousarray(p.w.T)  # (H, H), (H, O): once, not per step
    for t in range(k, T):  # 0-based t is step t + 1
        dh = fprime[t] * mm(dh, w_hT)  # (B, H)
        du[t] = mm(dh, wT)  # (B, O)
    return g.jvp(fwd.y_pred, du)  # (T, B, O): dy' = g'(u) du


# ---------------------------------------------------------------- Gauss-Newton building blocks (bptt.hf)
def state_tangent(
    p: Params, x: np.ndarray, fwd: Forward, f: Activation, g: Activation, dp: Params
) -> tuple[np.ndarray, np.ndarray]:
    """Hidden-state and output tangents in the parameter direction dp: (J_h dp, J_y dp).

        dz_t = dw_x x_t + dw_h h_{t-1} + w_h dh_{t-1} + db1     dh_0 = 0
        dh_t = f'(z_t) * dz_t                                   (J_h dp)_t
        dy'_t = g'(u_t) * (dw h_t + w dh_t + db2)               (J_y dp)_t

    The recurrence of ``output_tangent``, also returning the dh_t it carries.
    Returns dh (T, B, H) for h_1..h_T and dy' (T, B, O).
    """
    dh, du = pre_output_tangent(p, x, fwd, f, dp)
    return dh, g.jvp(fwd.y_pred, du)  # (T, B, O): dy' = g'(u) du


def pre_output_tangent(
    p: Params, x: np.ndarray, fwd: Forward, f: Activation, dp: Params
) -> tuple[np.ndarray, np.ndarray]:
    """(J_h dp, J_u dp): ``state_tangent`` stopped before g, du_t = dw h_t + w dh_t + db2.

    Returns dh (T, B, H) and du (T, B, O); bptt.hf's Gauss-Newton products J_u^T M J_u for any loss.
    """
    T = x.shape[0]
    fprime = f.deriv(fwd.h[1:])  # (T, B, H)
    direct = mm(x, dp.w_x.T) + mm(fwd.h[:-1], dp.w_h.T) + dp.b1  # (T, B, H)
    dh = np.empty_like(fwd.h[1:])  # (T, B, H)
    prev = np.zeros_like(fwd.h[0])  # (B, H): dh_0 = 0
    w_hT = np.ascontiguousarray(p.w_h.T)  # (H, H): once, not per step
    for t in range(T):
        prev = fprime[t] * (direct[t] + mm(prev, w_hT))  # (B, H)
        dh[t] = prev
    du = mm(fwd.h[1:], dp.w.T) + mm(dh, p.w.T) + dp.b2  # (T, B, O)
    return dh, du


def backward_residual(
    p: Params, x: np.ndarray, fwd: Forward, f: Activation,
    r_u: np.ndarray, r_h: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """J_u^T r_u + J_h^T r_h: the backward pass of the network linearised at ``fwd``.

    r_u (T, B, O) takes the place of dLoss/du_t = c dE/du_t in ``backward``, and
    r_h (T, B, H) (optional) is added to dLoss/dh_t directly:

        du_t = r_u,t
        dh_t = du_t w + r_h,t + dz_{t+1} w_h
        dz_t = dh_t * f'(z_t)

    and the five sums of ``weight_grads``.  With r_u = ``output_delta`` and r_h = None this is
    ``backward`` exactly; with r_u = c M J_u v (M the loss's curvature in u) it is the
    Gauss-Newton product J_u^T (c M) J_u v.
    """
    du = r_u  # (T, B, O)
    dh_direct = mm(du, p.w)  # (T, B, H)
    if r_h is not None:
        dh_direct = dh_direct + r_h  # (T, B, H)
    dz = bptt_full(p.w_h, dh_direct, f.deriv(fwd.h[1:]))  # (T, B, H)
    return weight_grads(x, fwd.h, dz, du)
