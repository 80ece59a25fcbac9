"""Starting weights for the seed's network other than RNN's own (uniform ±1/sqrt(H), as PyTorch's RNN).

sparse   the initialisation of the RNNs Martens & Sutskever (ICML 2011) trained with Hessian-free on the
         pathological problems, as Sutskever, Martens, Dahl & Hinton (ICML 2013, "On the importance of
         initialization and momentum in deep learning", section 4.1 and table 4) give it for the same
         100-unit tanh network: each hidden unit has 15 non-zero incoming recurrent weights drawn from
         N(0, 1), the whole w_h scaled to spectral radius 1.1; input weights 0.001 N(0, 1) (0.1 for
         memorization, which has no distractor inputs); output weights 0.1 N(0, 1); biases 0 (their
         output bias, the outputs' average, is left at 0 here).

A sigmoid network is that tanh network exactly, rescaled: tanh(z) = 2 sigmoid(2 z) - 1, so with
h = 2 s - 1 the sigmoid units s_t = sigmoid(2 W_x x_t + 4 W_h s_{t-1} + 2 (b - W_h 1)) and the output
W_o h + c = 2 W_o s + (c - W_o 1).  (The start state differs: s_0 = 0 is h_0 = -1.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .validation import BPTTError

INITS = ("uniform", "sparse")
FAN_IN = 15  # non-zero incoming recurrent weights per hidden unit
RADIUS = 1.1  # spectral radius of the (tanh) recurrent weights
INPUT_SCALE = 0.001  # many distractor inputs: small input weights keep the hidden state from being overwritten
OUTPUT_SCALE = 0.1


def sparse(input_size: int, hidden_size: int, output_size: int, hidden_activation: str, seed: int,
           input_scale: float = INPUT_SCALE) -> dict[str, np.ndarray]:
    """The five parameters (float64) of the sparse initialisation for ``hidden_activation`` tanh, or the
    same network in sigmoid units; drawn from ``np.random.default_rng([seed, 11])``."""
    if hidden_activation not in ("tanh", "sigmoid"):
        raise BPTTError(f"init sparse is defined for tanh or sigmoid hidden units, got {hidden_activation!r}; "
                        "give --hidden-activation sigmoid or tanh, or leave --init out")
    D, H, O = input_size, hidden_size, output_size
    rng = np.random.default_rng([seed, 11])
    w_h = np.zeros((H, H))
    k = min(FAN_IN, H)
    for i in range(H):  # row i: the weights into unit i (z = w_h h)
        w_h[i, rng.choice(H, size=k, replace=False)] = rng.standard_normal(k)
    rho = float(np.max(np.abs(np.linalg.eigvals(w_h))))
    if rho > 0:
        # rounded, so that the last bits of LAPACK's eigenvalues (which may differ between libraries) never
        # reach the weights: the same bits on any machine
        w_h *= float(f"{RADIUS / rho:.6g}")
    w_x = input_scale * rng.standard_normal((H, D))
    w = OUTPUT_SCALE * rng.standard_normal((O, H))
    b1, b2 = np.zeros(H), np.zeros(O)
    if hidden_activation == "sigmoid":
        b1 = -2.0 * w_h.sum(axis=1)
        b2 = -w.sum(axis=1)
        w_x, w_h, w = 2.0 * w_x, 4.0 * w_h, 2.0 * w
    return {"w": w, "w_x": w_x, "w_h": w_h, "b1": b1, "b2": b2}


def init_field(name: str, v: Any) -> str:
    if v not in INITS:
        raise BPTTError(f"{name} must be one of {', '.join(INITS)}, got {v!r}")
    return v
