"""Gradient flow: how much of the error E_t's signal reaches each earlier hidden state h_k.

    G[t, k] = ||dE_t/dh_k||,   dE_t/dh_{k-1} = (dE_t/dh_k * f'(z_k)) w_h

the seed's dh_i/dh_k factor, one step at a time.  These functions return arrays;
``bptt gradflow`` and ``bptt train`` draw them (plots.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import tasks
from .model import RNN
from .validation import BPTTError


def gradient_flow(model: RNN, x: Any, y: Any, h0: Any = None) -> np.ndarray:
    """G[t, k] = ||∂E_t/∂h_k||, E_t = 1/2 ||y_t - y'_t||^2, for one sequence.  Returns (T, T), NaN for k > t.

    x (T, D), y (T, O).  Indices are 0-based: row t is E_{t+1}, column k is h_{k+1}.
    ∂E_t/∂h_t = (y'_t - y_t) g'(u_t) w, and ∂E_t/∂h_{k-1} = (∂E_t/∂h_k * f'(z_k)) w_h:
    the seed's dh_i/dh_k factor, one step at a time.
    """
    fwd = model.forward(x, h0=h0)  # unbatched: h (T+1, H), y_pred (T, O)
    yv = np.asarray(y, dtype=np.float64).reshape(fwd.y_pred.shape)
    f = model.hidden_act
    g = model.output_act
    Tn = fwd.y_pred.shape[0]
    du = (fwd.y_pred - yv) * g.deriv(fwd.y_pred)  # (T, O)
    fprime = f.deriv(fwd.h[1:])  # (T, H)
    G = np.full((Tn, Tn), np.nan)
    for t in range(Tn):
        delta = du[t] @ model.w  # (H,): ∂E_t/∂h_t
        G[t, t] = np.linalg.norm(delta)
        for k in range(t - 1, -1, -1):
            delta = (delta * fprime[k + 1]) @ model.w_h  # ∂E_t/∂h_k
            G[t, k] = np.linalg.norm(delta)
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
