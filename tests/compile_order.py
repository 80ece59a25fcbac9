"""A fingerprint of every compiled path's results, its kernels compiled in the order given:
`python compile_order.py forward|reverse` prints one sha256 (tests/test_kernels.py runs it twice, each
with its own empty NUMBA_CACHE_DIR, and requires the same hash: no result may depend on what the process
compiled before)."""

import hashlib
import sys

import numpy as np

import bptt
from bptt import dispatch
from bptt.losses import LOSSES
from bptt.train import config_for, train

CASES = []
for f in ("sigmoid", "tanh", "relu"):
    for g, loss in (("sigmoid", "squared_error"), ("identity", "squared_error"), ("sigmoid", "bce")):
        for dtype in (np.float64, np.float32):
            for kernel in ("scalar", "loop", "parallel", "fast"):
                CASES.append((f, g, loss, dtype, kernel))


def run(case) -> bytes:
    f, g, loss, dtype, kernel = case
    rng = np.random.default_rng(0)
    D, H, O, B = (1, 1, 1, 1) if kernel == "scalar" else (2, 5, 2, 8)
    m = bptt.RNN(D, H, O, f, g, dtype=dtype, seed=0, loss=loss)
    x = rng.standard_normal((12, B, D)).astype(dtype)
    y = rng.random((12, B, O)).astype(dtype)
    if kernel == "fast":
        value, grads = m.loss_and_grad(x, y)  # one whole-sequence compiled call: lanes, batched_fast or scalar_fast
    else:
        value, grads, _ = dispatch.run_kernel(m.engine_params(), x, y, np.zeros((B, H), dtype), m.hidden_act,
                                              m.output_act, LOSSES[loss], "mean", None, 4, kernel)
    return np.float64(value).tobytes() + b"".join(grads[k].tobytes() for k in sorted(grads))


def fused() -> bytes:
    out = b""
    for f in ("sigmoid", "tanh"):
        for optimizer in ("adam", "sgd"):
            res = train(config_for("binary-addition", {"bits": 4, "n_train": 40, "n_val": 8, "n_test": 8},
                                   hidden_activation=f, optimizer=optimizer, epochs=2, hidden_size=4))
            out += b"".join(v.tobytes() for v in res.model.params().values())
    return out


if __name__ == "__main__":
    parts = [("case", c) for c in CASES] + [("fused", None)]
    if sys.argv[1] == "reverse":
        parts.reverse()
    digest = {}
    for kind, c in parts:
        digest[repr(c)] = run(c) if kind == "case" else fused()
    if len(sys.argv) > 2:  # per-case hashes, to find the path that differs
        for k in sorted(digest):
            print(hashlib.sha256(digest[k]).hexdigest()[:16], k)
    print(hashlib.sha256(b"".join(digest[k] for k in sorted(digest))).hexdigest())
