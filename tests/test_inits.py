"""bptt.inits: Martens & Sutskever's sparse initialisation (Sutskever et al. 2013, table 4) and its exact
sigmoid form, and the task option init that selects it."""

from __future__ import annotations

import numpy as np
import pytest

from bptt import activations, engine, inits, tasks
from bptt import train as tr
from bptt.validation import BPTTError


def _params(p):
    return engine.Params(**{k: p[k] for k in engine.PARAM_NAMES})


def test_sparse_tanh_weights_have_15_incoming_and_spectral_radius_1_1():
    p = inits.sparse(2, 40, 3, "tanh", seed=0)
    assert p["w_h"].shape == (40, 40) and all((p["w_h"] != 0).sum(axis=1) == 15)
    assert max(abs(np.linalg.eigvals(p["w_h"]))) == pytest.approx(1.1, rel=1e-5)
    assert not p["b1"].any() and not p["b2"].any()
    assert p["w_x"].std() == pytest.approx(0.001, rel=0.3) and p["w"].std() == pytest.approx(0.1, rel=0.3)
    small = inits.sparse(1, 4, 1, "tanh", seed=0)  # fewer than 15 units: every connection
    assert (small["w_h"] != 0).all() and max(abs(np.linalg.eigvals(small["w_h"]))) == pytest.approx(1.1, rel=1e-5)


def test_the_sigmoid_network_is_the_tanh_network_rescaled():
    """tanh(z) = 2 sigmoid(2z) - 1: the sigmoid weights give h = 2 s - 1 and the same outputs, step for step
    (the sigmoid network started from s_0 = 1/2, the tanh one from h_0 = 0)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 5, 2)) * 50  # large inputs: the 0.001 input weights still matter
    t = inits.sparse(2, 20, 3, "tanh", seed=4)
    s = inits.sparse(2, 20, 3, "sigmoid", seed=4)
    ident = activations.get("identity")
    ft = engine.forward(_params(t), x, np.zeros((5, 20)), activations.get("tanh"), ident)
    fs = engine.forward(_params(s), x, np.full((5, 20), 0.5), activations.get("sigmoid"), ident)
    np.testing.assert_allclose(2 * fs.h - 1, ft.h, atol=1e-12)
    np.testing.assert_allclose(fs.y_pred, ft.y_pred, atol=1e-12)
    assert np.abs(ft.h[1:]).max() > 0.05  # the dynamics are not trivially zero


def test_init_sparse_is_the_task_option_and_bad_values_are_one_line():
    cfg = tr.config_for("adding", {"length": 10, "n_train": 20, "n_val": 5, "n_test": 5, "init": "sparse"}, hidden_size=20)
    model = tr.init_model(cfg, tr.load_task(cfg))
    want = inits.sparse(2, 20, 1, "sigmoid", seed=0)
    assert all(np.array_equal(model.params()[k], want[k]) for k in want)
    plain = tr.config_for("adding", {"length": 10, "n_train": 20, "n_val": 5, "n_test": 5}, hidden_size=20)
    assert not np.array_equal(tr.init_model(plain, tr.load_task(plain)).params()["w_h"], want["w_h"])
    with pytest.raises(BPTTError, match="^task option init must be one of uniform, sparse, got 'dense'$"):
        tr.config_for("adding", {"init": "dense"})
    with pytest.raises(BPTTError, match="^init sparse is defined for tanh or sigmoid hidden units, got 'relu'"):
        inits.sparse(2, 4, 1, "relu", seed=0)
    assert tasks.get("xor").option("init").default == "uniform"
