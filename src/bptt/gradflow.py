"""Gradient flow: how much of the error E_t's signal reaches each earlier hidden state h_k.

    G[t, k] = ||dE_t/dh_k||,   dE_t/dh_{k-1} = (dE_t/dh_k * f'(z_k)) w_h

the seed's dh_i/dh_k factor, one step at a time.  These functions return arrays;
``bptt gradflow`` and ``bptt train`` draw them (plots.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import activations, engine, floatmath, tasks
from .products import matmul as mm
from .model import RNN
from .validation import BPTTError, check_choice, check_int


def gradient_flow(model: RNN, x: Any, y: Any, h0: Any = None) -> np.ndarray:
    """G[t, k] = ||∂E_t/∂h_k||, E_t the model's loss at step t, for one sequence.  Returns (T, T), NaN for k > t.

    x (T, D), y (T, O).  Indices are 0-based: row t is E_{t+1}, column k is h_{k+1}.
    ∂E_t/∂h_t = (∂E_t/∂u_t) w (the loss table's dE/du), then the seed's dh_i/dh_k factor one step at a
    time (``engine.state_errors``).
    """
    fwd = model.forward(x, h0=h0)  # unbatched: h (T+1, H), y_pred (T, O)
    yv = np.asarray(y, dtype=np.float64).reshape(fwd.y_pred.shape)
    p = model.engine_params()
    Tn = fwd.y_pred.shape[0]
    du = model.criterion.delta(fwd.u, fwd.y_pred, yv, model.output_act, 1.0)  # (T, O): ∂E_t/∂u_t
    fprime = model.hidden_act.deriv(fwd.h[1:])  # (T, H)
    G = np.full((Tn, Tn), np.nan)
    for t in range(Tn):
        for k, dh, _ in engine.state_errors(p.w_h, mm(du[t], p.w), fprime, t):
            G[t, k] = np.linalg.norm(dh)
    return G


def gradflow_sequence(data: tasks.TaskData, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One test sequence x (T, D), y (T, O).

    A series window's unscored steps still have true next-value targets, so every row is kept;
    the adding problem has no target before its last step, so those rows get NaN (left blank).
    """
    if not 0 <= index < data.test.n:
        raise BPTTError(f"sequence index {index} is out of range; the test split has {data.test.n} sequences (0..{data.test.n - 1})")
    x = data.test.x[:, index]
    y = data.test.y[:, index].copy()
    if data.test.mask is not None and data.series is None:
        y[~data.test.mask[:, index]] = np.nan
    return x, y


def gradflow_pair(model: RNN, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The model's map and the map of the same weights with the other hidden activation (sigmoid <-> tanh).

    Rows whose target is NaN (unscored steps) are NaN.
    """
    other = "tanh" if model.hidden_activation != "tanh" else "sigmoid"
    twin = RNN(model.input_size, model.hidden_size, model.output_size, other, model.output_activation, model.dtype)
    twin.set_params(**model.params())
    rows = ~np.any(np.isnan(y), axis=-1)  # (T,)
    y0 = np.where(np.isnan(y), 0.0, y)
    out = {}
    for label, m in ((f"{model.hidden_activation} (as trained)", model), (f"{other} (same weights)", twin)):
        G = gradient_flow(m, x, y0)
        G[~rows] = np.nan
        out[label] = G
    return out

def decay_summary(G: np.ndarray, lags: tuple[int, ...] = (1, 2, 5, 10, 20, 40)) -> dict[str, float]:
    """Median over t of ||∂E_t/∂h_{t-lag}|| / ||∂E_t/∂h_t||: the error signal left after `lag` steps back."""
    out = {}
    for lag in lags:
        if lag >= G.shape[0]:
            break
        r = [G[t, t - lag] / G[t, t] for t in range(lag, G.shape[0]) if np.isfinite(G[t, t]) and G[t, t] > 0]
        if r:
            out[str(lag)] = float(np.median(r))
    return out


# ---------------------------------------------------------------- normalised, bounded maps (what the plots draw)
MAX_MAP_STEPS = 500  # at most this many rows and columns in a drawn map, whatever T is
DECAY_LAGS = (1, 2, 5, 10, 20, 40)
SAMPLINGS = ("last", "even")  # which steps a long sequence's map shows: the last ones, or evenly spread


def normalise_flow(G: np.ndarray) -> np.ndarray:
    """R[t, k] = G[t, k] / G[t, t]: the part of E_t's own signal ‖∂E_t/∂h_t‖ that reaches h_k.

    G (n, n), rows and columns over the same steps (the diagonal is k = t).  Returns R (n, n);
    a row whose diagonal is 0 or not finite (no error at t, or an unscored step) is NaN.
    Dividing by the diagonal keeps the size of the error y'_t - y_t out of the picture:
    what is left is the decay through ∂h_t/∂h_k alone.
    """
    G = np.asarray(G, dtype=np.float64)  # (n, n)
    d = np.diagonal(G)  # (n,)
    ok = np.isfinite(d) & (d > 0)  # (n,)
    R = np.full(G.shape, np.nan)  # (n, n)
    R[ok] = G[ok] / d[ok, None]
    return R


def choose_steps(length: int, max_steps: int = MAX_MAP_STEPS, sampling: str = "last") -> np.ndarray:
    """The 0-based steps a map of a T-step sequence shows, at most ``max_steps`` of them, increasing.

    "last": the last min(T, max_steps) steps, every one; "even": every s-th step, s = ceil(T / max_steps),
    ending at the last step.  Both are all T steps when T <= max_steps.
    """
    T = check_int("the sequence length", length, 1)
    n = check_int("max_steps", max_steps, 1)
    check_choice("sampling", sampling, SAMPLINGS)
    if sampling == "last":
        return np.arange(max(0, T - n), T)  # (min(T, n),)
    stride = -(-T // n)
    return np.arange(T - 1, -1, -stride)[::-1].copy()  # (ceil(T / stride),)


@dataclass(frozen=True)
class FlowMap:
    """A gradient-flow map over chosen steps of one sequence (``flow_map``).

    values  (n, n): row i is E_t, column j is h_k, for t = steps[i], k = steps[j]; either the
            normalised R[t, k] = ‖∂E_t/∂h_k‖ / ‖∂E_t/∂h_t‖ or the raw ‖∂E_t/∂h_k‖; NaN for k > t
            and for unscored rows
    steps   (n,): the 0-based steps shown, increasing, evenly spaced (``stride`` apart)
    length  T, the whole sequence's length
    decay   median over the shown rows t of R[t, t - lag], by lag (str): the signal left `lag` steps back
    """

    values: np.ndarray
    steps: np.ndarray
    length: int
    normalised: bool
    decay: dict[str, float]

    @property
    def stride(self) -> int:
        return int(self.steps[1] - self.steps[0]) if len(self.steps) > 1 else 1

    def describe(self) -> str:
        """Which steps the map shows, in words (1-based, as the plots label them)."""
        n, T = len(self.steps), self.length
        if n == T:
            return f"all {T} steps"
        first, last = int(self.steps[0]) + 1, int(self.steps[-1]) + 1
        if self.stride == 1:
            return f"last {n} of {T} steps (t = {first}..{last})"
        return f"{n} of {T} steps, {self.stride} apart (t = {first}..{last})"


def flow_map(model: RNN, x: Any, y: Any, h0: Any = None, *, normalise: bool = True, steps: Any = None,
             lags: tuple[int, ...] = DECAY_LAGS) -> FlowMap:
    """The gradient-flow map of one sequence over ``steps`` (default ``choose_steps(T)``), bounded in T.

    x (T, D), y (T, O); a row of y with a NaN is an unscored step (its map row is NaN).
    Normalised (default): R[t, k] = ‖∂E_t/∂h_k‖ / ‖∂E_t/∂h_t‖ (``normalise_flow``); else the raw norms.

    All chosen rows go back together, one step at a time, from the last chosen step down to
    the first (and max(lags) further, for ``decay``): a (rows, H) @ (H, H) product per step.
    Each row's vector is rescaled to unit length (every 16 steps and wherever it is recorded) with
    its log norm carried beside it, so signals far below 1e-308 neither underflow nor slow down,
    and ratios are taken of logs.
    Bounds, with n = len(steps) <= MAX_MAP_STEPS by default and S the steps swept
    (S <= n + max(lags) for "last", S <= T for "even"):
        memory  O(T (H + O)) for the forward pass + O(n^2) for the map + O(n H)   — never T x T
        time    O(T H (D + H)) forward + O(S n H^2) sweep
    so a T = 100000 sequence costs a few MB and seconds, not the 75 GiB of a full T x T map.
    """
    fwd = model.forward(x, h0=h0)  # unbatched: h (T+1, H), y_pred (T, O)
    T = fwd.y_pred.shape[0]
    steps = choose_steps(T) if steps is None else _checked_steps(steps, T)
    yv = np.asarray(y, dtype=np.float64).reshape(fwd.y_pred.shape)  # (T, O)
    scored = ~np.isnan(yv).any(axis=1)  # (T,)
    g = activations.get(model.output_activation)
    du = np.where(scored[:, None], model.criterion.delta(fwd.u, fwd.y_pred, np.nan_to_num(yv), g, 1.0), 0.0)  # (T, O)
    fprime = activations.get(model.hidden_activation).deriv(fwd.h[1:])  # (T, H): f'(z_k)
    L, lag_logs = _log_flow(mm(du, model.w), fprime, model.w_h, steps, lags)  # (n, n), (n, len(lags))
    rows_ok = scored[steps]  # (n,)
    diag = np.where(rows_ok, np.diagonal(L), -np.inf)  # (n,)
    with np.errstate(invalid="ignore"):
        V = floatmath.exp(L - diag[:, None]) if normalise else floatmath.exp(L)  # (n, n)
    V[np.triu(np.ones(V.shape, dtype=bool), 1)] = np.nan  # k > t
    V[~(np.isfinite(diag) if normalise else rows_ok)] = np.nan
    return FlowMap(V, steps, T, normalise, _decay(lag_logs, diag, steps, lags))


def _checked_steps(steps: Any, T: int) -> np.ndarray:
    s = np.asarray(steps)
    if s.ndim != 1 or s.size == 0 or s.dtype.kind not in "iu" or s[0] < 0 or s[-1] >= T or np.any(np.diff(s) <= 0):
        raise BPTTError(f"steps must be increasing integers in 0..{T - 1} (the sequence has {T} steps), got {s.size} values")
    return s.astype(np.int64)


_RESCALE_EVERY = 16  # steps between rescalings: 16 steps cannot take a unit vector out of float64's range


def _log_flow(dh: np.ndarray, fprime: np.ndarray, w_h: np.ndarray, steps: np.ndarray,
              lags: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """L[i, j] = log ‖∂E_t/∂h_k‖ for t = steps[i], k = steps[j] <= t (-inf elsewhere), and the same at k = t - lag.

    dh (T, H): ∂E_t/∂h_t; fprime (T, H): f'(z_k); w_h (H, H).  Returns L (n, n), lag_logs (n, len(lags)).
    """
    n = len(steps)
    L = np.full((n, n), -np.inf)  # (n, n)
    lag_logs = np.full((n, len(lags)), np.nan)  # (n, len(lags))
    column = {int(k): j for j, k in enumerate(steps)}
    lag_at: dict[int, list[tuple[int, int]]] = {}  # step k -> [(row i, lag index)] with steps[i] - lag = k
    for i, t in enumerate(steps):
        for li, lag in enumerate(lags):
            if t - lag >= 0:
                lag_at.setdefault(int(t - lag), []).append((i, li))
    D = np.zeros((n, dh.shape[1]))  # (n, H): ∂E_t/∂h_k / exp(logn), row per t
    logn = np.full(n, -np.inf)  # (n,): log of the scale taken out of each row
    a = n  # rows a.. have started (steps[i] >= k)
    bottom = max(0, int(steps[0]) - max(lags, default=0))
    since = 0  # steps since the rows were last rescaled to unit length
    with np.errstate(divide="ignore"):
        for k in range(int(steps[-1]), bottom - 1, -1):
            if a > 0 and steps[a - 1] == k:  # row a-1 starts at its own step: ∂E_k/∂h_k
                a -= 1
                D[a:a + 1], logn[a:a + 1] = _unit(dh[k][None, :])
            record = k in column or k in lag_at
            if record or since >= _RESCALE_EVERY:  # rows back to unit length: logn is then log ‖∂E_t/∂h_k‖
                D[a:], scale_log = _unit(D[a:])  # (rows, H), (rows,)
                logn[a:] += scale_log
                since = 0
            if k in column:
                L[a:, column[k]] = logn[a:]
            for i, li in lag_at.get(k, ()):
                lag_logs[i, li] = logn[i]
            if k > bottom:  # ∂E_t/∂h_{k-1} = (∂E_t/∂h_k * f'(z_k)) w_h
                D[a:] = mm(D[a:] * fprime[k], w_h)  # (rows, H)
                since += 1
    return L, lag_logs


def _unit(V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of V (m, H) scaled to unit length (zero rows stay zero), and their log norms (m,) (-inf for zero)."""
    nrm = np.sqrt(np.einsum("ij,ij->i", V, V))  # (m,)
    return V / np.where(nrm > 0, nrm, 1.0)[:, None], floatmath.log(nrm)


def _decay(lag_logs: np.ndarray, diag: np.ndarray, steps: np.ndarray, lags: tuple[int, ...]) -> dict[str, float]:
    """Median over rows with a finite diagonal of exp(lag_logs - diag), per lag (lags reaching before step 0 skipped)."""
    out = {}
    for li, lag in enumerate(lags):
        ok = np.isfinite(diag) & (steps - lag >= 0)  # (n,)
        if ok.any():
            out[str(lag)] = float(np.median(floatmath.exp(lag_logs[ok, li] - diag[ok])))
    return out


def flow_map_pair(model: RNN, x: np.ndarray, y: np.ndarray, *, normalise: bool = True, steps: Any = None) -> dict[str, FlowMap]:
    """``flow_map`` of the model and of the same weights with the other hidden activation (sigmoid <-> tanh)."""
    other = "tanh" if model.hidden_activation != "tanh" else "sigmoid"
    twin = RNN(model.input_size, model.hidden_size, model.output_size, other, model.output_activation, model.dtype)
    twin.set_params(**model.params())
    return {f"{model.hidden_activation} (as trained)": flow_map(model, x, y, normalise=normalise, steps=steps),
            f"{other} (same weights)": flow_map(twin, x, y, normalise=normalise, steps=steps)}


def describe_sequence(data: tasks.TaskData, index: int = 0) -> str:
    """What test sequence ``index`` is, for a plot's title: the operands, the years or rows, or its length."""
    x = data.test.x[:, index]  # (T, D)
    T = x.shape[0]
    if data.series is not None:
        first_target = len(data.series) - data.test.n + index  # 0-based position of its last target
        first_input = first_target - T
        years = data.info.get("years")
        if years:
            y0 = years["train"][0]
            return f"inputs {y0 + first_input}–{y0 + first_target - 1}, targets {y0 + first_input + 1}–{y0 + first_target}"
        return f"inputs t = {first_input + 1}..{first_target}, targets t = {first_input + 2}..{first_target + 1}"
    if "bits" in data.info:
        a, b = (int(v) for v in tasks.bits_to_int(x))  # x (T, 2): the operands' bits, LSB first
        return f"a = {a}, b = {b}"
    mask = data.test.mask
    if mask is not None and not mask[:, index].all():
        scored = np.flatnonzero(mask[:, index]) + 1  # (m,): 1-based scored steps
        at = ", ".join(str(t) for t in scored[:5]) + (", ..." if scored.size > 5 else "")
        return f"{T} steps, scored at t = {at}"
    return f"{T} steps"
