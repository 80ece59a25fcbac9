"""Independent references for the gradient tests: finite differences and torch autograd."""

from __future__ import annotations

import numpy as np

import bptt
from bptt.engine import PARAM_NAMES


def random_model(rng, D, H, O, f, g, scale=1.0):
    m = bptt.RNN(D, H, O, hidden_activation=f, output_activation=g, seed=int(rng.integers(1 << 31)))
    for k, s in m.param_shapes().items():
        setattr(m, k, scale * rng.standard_normal(s))
    return m


def finite_difference_grads(m, x, y, h0=None, reduction="mean", eps=1e-6):
    """Central differences of m.loss on every parameter entry (float64)."""
    out = {}
    base = m.params()
    for k in PARAM_NAMES:
        g = np.zeros_like(base[k])
        for idx in np.ndindex(base[k].shape):
            for sign in (+1, -1):
                p = base[k].copy()
                p[idx] += sign * eps
                setattr(m, k, p)
                g[idx] += sign * m.loss(x, y, h0=h0, reduction=reduction)
            g[idx] /= 2 * eps
        setattr(m, k, base[k])
        out[k] = g
    return out


def torch_loss_and_grads(m, x, y, h0=None, reduction="mean"):
    """The same network written as a plain torch loop; autograd computes the gradients."""
    import torch

    f, g = m.hidden_act.torch_value, m.output_act.torch_value  # autograd differentiates them
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in m.params().items()}
    xt = torch.tensor(np.asarray(x, dtype=np.float64))
    yt = torch.tensor(np.asarray(y, dtype=np.float64))
    if xt.dim() == 2:
        xt, yt = xt[:, None], yt[:, None]
    T, B, _ = xt.shape
    h = torch.zeros(B, m.hidden_size, dtype=torch.float64) if h0 is None else torch.tensor(np.broadcast_to(h0, (B, m.hidden_size)).copy())
    loss = 0.0
    for t in range(T):
        h = f(xt[t] @ P["w_x"].T + h @ P["w_h"].T + P["b1"])
        u = h @ P["w"].T + P["b2"]
        loss = loss + m.criterion.torch_value(u, g(u), yt[t]).sum()  # the loss table's torch form
    if reduction == "mean":
        loss = loss / (T * B)
    loss.backward()
    return float(loss.detach()), {k: P[k].grad.numpy() for k in PARAM_NAMES}


def torch_truncated_grads(m, x, y, k, reduction="mean"):
    """Truncated BPTT by construction: E_t sees h_{t-k} as a constant (detached)."""
    import torch

    f, g = m.hidden_act.torch_value, m.output_act.torch_value
    P = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in m.params().items()}
    xt = torch.tensor(np.asarray(x, dtype=np.float64))
    yt = torch.tensor(np.asarray(y, dtype=np.float64))
    T, B, _ = xt.shape
    with torch.no_grad():  # the plain states, to start each window from
        hs = [torch.zeros(B, m.hidden_size, dtype=torch.float64)]
        for t in range(T):
            hs.append(f(xt[t] @ P["w_x"].T + hs[-1] @ P["w_h"].T + P["b1"]))
    loss = 0.0
    for t in range(T):
        start = max(t - k + 1, 0)
        h = hs[start].detach()
        for s in range(start, t + 1):
            h = f(xt[s] @ P["w_x"].T + h @ P["w_h"].T + P["b1"])
        loss = loss + 0.5 * ((yt[t] - g(h @ P["w"].T + P["b2"])) ** 2).sum()
    if reduction == "mean":
        loss = loss / (T * B)
    loss.backward()
    return {n: P[n].grad.numpy() for n in PARAM_NAMES}


def rel_err(a, b):
    """||a - b|| / ||b|| over all elements (b's norm floored at 1e-12)."""
    a, b = np.ravel(a), np.ravel(b)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)



CRASH_DIR = __import__("pathlib").Path(__file__).resolve().parent / "crash"


def crash_env(spec: str) -> dict[str, str]:
    """Environment for a subprocess that dies by SIGKILL after epoch E ("E") or member K's epoch E ("K:E"):
    tests/crash/sitecustomize.py wraps bptt.train.train there (no hook lives in the package)."""
    import os

    path = os.environ.get("PYTHONPATH")
    return {"BPTT_TEST_KILL_AFTER_EPOCH": spec,
            "PYTHONPATH": str(CRASH_DIR) + ("" if not path else os.pathsep + path)}


def outputs_for(g: str, O: int) -> int:
    """O, at least 2 for an output activation over the outputs (softmax of one number is the constant 1,
    refused by RNN)."""
    return O if bptt.ACTIVATIONS[g].elementwise else max(O, 2)


def write_npz(path, members: dict[str, bytes], compress: bool = False) -> None:
    """An .npz (a zip) holding exactly ``members``: name -> raw bytes (hostile files are built from these)."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as the bytes of a .npy file."""
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
