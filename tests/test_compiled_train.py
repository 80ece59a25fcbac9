"""The compiled training step (backends.CompiledBackend.fused_step, kernels.train_step) equals the numpy loop."""

from __future__ import annotations

import numpy as np
import pytest

from bptt import optim
from bptt.engine import PARAM_NAMES
from bptt.backends import CompiledBackend, EngineBackend
from bptt.train import Diverged, config_for, load_task, train


def _both(settings: dict, task: str = "binary-addition", options: dict | None = None):
    cfg = config_for(task, options or {}, **settings)
    data = load_task(cfg)
    ref = train(cfg, data=data, backend=EngineBackend(cfg, data.input_size, data.output_size))
    fused = CompiledBackend(cfg, data.input_size, data.output_size)
    got = train(cfg, data=data, backend=fused)
    return ref, got, fused


def _params(res) -> dict[str, np.ndarray]:
    return {k: getattr(res.model, k) for k in PARAM_NAMES}


@pytest.mark.parametrize("settings", [
    {"epochs": 3},  # Adam, clip 1 (the task's defaults; lanes kernel, B = 32)
    {"epochs": 2, "clip": None, "batch_size": 5},  # no clipping; loop kernel (B = 5)
    {"epochs": 2, "optimizer": "sgd", "lr": 0.5, "momentum": 0.9},
    {"epochs": 2, "optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": True, "clip": 0.1},
    {"epochs": 2, "optimizer": "sgd", "lr": 0.5},
    {"epochs": 2, "truncate": 3, "hidden_activation": "tanh"},
    {"epochs": 2, "hidden_size": 40, "batch_size": 4, "schedule": "cosine"},  # one-thread BLAS kernel
    {"epochs": 3, "loss": "bce"},  # binary cross-entropy: lanes kernel
    {"epochs": 2, "loss": "bce", "batch_size": 5, "clip": 0.1},  # loop kernel, clipped
    {"epochs": 2, "loss": "bce", "optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "truncate": 3},
])
def test_fused_step_equals_the_numpy_loop_in_float64(settings):
    ref, got, _ = _both(settings, options={"n_train": 200})
    assert got.history["train_loss"] == pytest.approx(ref.history["train_loss"], rel=1e-12, abs=1e-15)
    assert got.history["val_loss"] == pytest.approx(ref.history["val_loss"], rel=1e-12, abs=1e-15)
    for k, v in _params(ref).items():
        np.testing.assert_allclose(_params(got)[k], v, rtol=1e-12, atol=1e-14)
    assert got.metrics["updates"] == ref.metrics["updates"]


@pytest.mark.parametrize("loss", ["squared_error", "bce"])
def test_the_fused_step_covers_every_compiled_loss(loss):
    cfg = config_for("binary-addition", {"n_train": 64}, epochs=1, loss=loss)
    data = load_task(cfg)
    b = CompiledBackend(cfg, data.input_size, data.output_size)
    assert b.model.criterion.name == loss
    params = b.model.params()
    from bptt.optim import make_optimizer

    x, y = data.train.x[:, :32].copy(), data.train.y[:, :32].copy()
    out = b.fused_step(params, make_optimizer(cfg, params), x, y, None, None, False, 0.01)
    assert out is not None and out[2] == x.shape[0] * 32


def test_the_fused_step_is_taken_and_counts_optimizer_steps():
    cfg = config_for("binary-addition", {"n_train": 64}, epochs=1)
    data = load_task(cfg)
    b = CompiledBackend(cfg, data.input_size, data.output_size)
    params = {k: np.asarray(v).copy() for k, v in train(cfg, data=data, backend=b).model.params().items()}
    from bptt.optim import make_optimizer

    opt = make_optimizer(cfg, params)
    x, y = data.train.x[:, :32].copy(), data.train.y[:, :32].copy()
    out = b.fused_step(params, opt, x, y, None, None, False, 0.01)
    assert out is not None and out[1] is None and out[2] == x.shape[0] * 32 and opt.t == 1
    # not covered: a mask, a carried state, a state to carry, checkpointing -> None, nothing changed
    before = {k: v.copy() for k, v in params.items()}
    assert b.fused_step(params, opt, x, y, np.ones(x.shape[:2], bool), None, False, 0.01) is None
    assert b.fused_step(params, opt, x, y, None, np.zeros((32, cfg.hidden_size)), False, 0.01) is None
    assert b.fused_step(params, opt, x, y, None, None, True, 0.01) is None
    cfg_ck = config_for("binary-addition", {"n_train": 64}, epochs=1, grad_checkpoint="sqrt")
    assert CompiledBackend(cfg_ck, 2, 1).fused_step(params, opt, x, y, None, None, False, 0.01) is None
    assert all(np.array_equal(before[k], params[k]) for k in params) and opt.t == 1


@pytest.mark.slow  # the float32 kernels: a minute of compiling on a cold cache
def test_float32_training_agrees_loosely():
    ref, got, _ = _both({"epochs": 2, "dtype": "float32"}, options={"n_train": 200})
    for k, v in _params(ref).items():
        np.testing.assert_allclose(_params(got)[k], v, rtol=1e-4, atol=1e-5)


def test_tasks_the_step_does_not_cover_fall_back_to_the_usual_path():
    """adding (a mask) and sine (chunks, a carried state) train as before through the same backend."""
    for task, opts, settings in (("adding", {"length": 10, "n_train": 64, "n_val": 16, "n_test": 16}, {"epochs": 1}),
                                 ("sine", {"length": 20, "n_train": 8, "n_val": 4, "n_test": 4}, {"epochs": 1, "chunk": 10})):
        ref, got, _ = _both(settings, task=task, options=opts)
        for k, v in _params(ref).items():
            np.testing.assert_array_equal(_params(got)[k], v)


def test_divergence_is_the_same_one_line_error():
    settings = {"epochs": 2, "lr": 1e300, "clip": None, "hidden_activation": "relu", "output_activation": "identity"}
    msgs = []
    for backend_cls in (EngineBackend, CompiledBackend):
        cfg = config_for("binary-addition", {"n_train": 64}, **settings)
        data = load_task(cfg)
        with pytest.raises(Diverged) as e:
            train(cfg, data=data, backend=backend_cls(cfg, data.input_size, data.output_size))
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] and "\n" not in msgs[0]


class _PlainSGD:
    """A test-only optimizer: optim.SGD's step under another name, without a fused update."""

    def __init__(self, params):
        self.inner = optim.SGD(params)
        self.t = 0
        self.steps = 0

    def step(self, params, grads, lr):
        self.inner.step(params, grads, lr)
        self.t = self.inner.t
        self.steps += 1

    def state(self):
        return self.inner.state()

    def load_state(self, arrays, t):
        self.inner.load_state(arrays, t)
        self.t = t


def test_an_optimizer_without_a_fused_update_trains_through_the_loop(monkeypatch):
    """An optimizer added to optim.OPTIMIZERS without ``fused_update``: the compiled backend's fused_step
    declines it (None), and the loop trains it end to end with its own step, to plain SGD's result."""
    made = []
    monkeypatch.setitem(optim.OPTIMIZERS, "plain", lambda cfg, params: made.append(_PlainSGD(params)) or made[-1])
    cfg = config_for("binary-addition", {"n_train": 64}, epochs=2, optimizer="plain", lr=0.5)
    data = load_task(cfg)
    fused = CompiledBackend(cfg, data.input_size, data.output_size)
    got = train(cfg, data=data, backend=fused)
    assert made and made[-1].steps == got.metrics["updates"] > 0  # every update by its numpy step
    cfg_sgd = config_for("binary-addition", {"n_train": 64}, epochs=2, optimizer="sgd", lr=0.5)
    ref = train(cfg_sgd, data=data, backend=CompiledBackend(cfg_sgd, data.input_size, data.output_size))
    for k, v in _params(ref).items():
        np.testing.assert_allclose(_params(got)[k], v, rtol=1e-12, atol=1e-14)
    params = got.model.params()
    x, y = data.train.x[:, :32].copy(), data.train.y[:, :32].copy()
    assert fused.fused_step(params, _PlainSGD(params), x, y, None, None, False, 0.01) is None


@pytest.mark.parametrize("base", [optim.SGD, optim.Adam])
def test_a_subclass_with_its_own_step_has_no_fused_update(base):
    """Its step is not the compiled twin's: fused_step declines it and the loop runs its step."""

    class Signed(base):
        def step(self, params, grads, lr):
            super().step(params, {k: np.sign(g) for k, g in grads.items()}, lr)

    class Same(base):  # the step inherited unchanged: the twin still applies
        pass

    params = {k: np.zeros(2) for k in PARAM_NAMES}
    assert Signed(params).fused_update(0.1, 1) is None and Same(params).fused_update(0.1, 1) is not None
    cfg = config_for("binary-addition", {"n_train": 64}, epochs=1)
    data = load_task(cfg)
    b = CompiledBackend(cfg, data.input_size, data.output_size)
    p = b.model.params()
    x, y = data.train.x[:, :32].copy(), data.train.y[:, :32].copy()
    assert b.fused_step(p, Signed(p), x, y, None, None, False, 0.01) is None


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_each_fused_optimizer_declares_its_own_update(name):
    """The update's code and state come from the optimizer's record, not from the backend."""
    cfg = config_for("binary-addition", {"n_train": 64}, epochs=1, optimizer=name,
                     **({"momentum": 0.9} if name == "sgd" else {}))  # SGD's own setting
    params = {k: np.zeros(2) for k in PARAM_NAMES}
    opt = optim.make_optimizer(cfg, params)
    fu = opt.fused_update(0.1, 3)
    assert fu.code == {"adam": optim.FUSED_ADAM, "sgd": optim.FUSED_SGD}[name]
    assert fu.s1 is (opt.m if name == "adam" else opt.v) and fu.s2 is opt.v
    if name == "adam":
        b1, b2 = cfg.adam.betas
        assert fu.numbers == (0.1, 1 - b1**3, 1 - b2**3, b1, b2, cfg.adam.eps, 0.0, 0.0)


def test_an_update_code_without_a_branch_raises():
    from bptt import _optim_compiled

    a = np.zeros(3)
    with pytest.raises(ValueError, match="no compiled update"):
        _optim_compiled.update(99, a, a.copy(), a.copy(), a.copy(), np.zeros(13))


class _OneBatchAtATime(CompiledBackend):
    """The compiled backend without fused_steps: the loop calls fused_step batch by batch."""

    fused_steps = None


@pytest.mark.parametrize("settings", [
    {"epochs": 3},  # Adam; 200 sequences: six batches of 32 and a short one of 8 (lanes, then the loop kernel)
    {"epochs": 2, "optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": True, "clip": 0.1},
    {"epochs": 2, "loss": "bce", "schedule": "cosine", "batch_size": 5},
])
@pytest.mark.parametrize("at_once", [1, 3, 64])
def test_many_batches_in_one_call_are_the_same_bits_as_one_at_a_time(settings, at_once, monkeypatch):
    import bptt.train

    cfg = config_for("binary-addition", {"n_train": 200}, **settings)
    data = load_task(cfg)
    ref = train(cfg, data=data, backend=_OneBatchAtATime(cfg, data.input_size, data.output_size))
    monkeypatch.setattr(bptt.train, "STEPS_AT_ONCE", at_once)
    seen = []
    got = train(cfg, data=data, backend=CompiledBackend(cfg, data.input_size, data.output_size),
                progress=lambda info: seen.append(info.get("batch")))
    assert got.history == ref.history and got.metrics == ref.metrics
    for k, v in _params(ref).items():
        assert np.array_equal(_params(got)[k], v), k
    batches = -(-200 // cfg.batch_size)
    assert [b for b in seen if b is not None][: -(-batches // at_once)][-1] == batches  # progress per call


def test_fused_steps_stop_at_the_batch_that_diverges():
    """A batch whose update makes a parameter non-finite ends the call there: the same Diverged line and
    step count as batch by batch."""
    settings = {"epochs": 2, "lr": 1e300, "clip": None, "hidden_activation": "relu", "output_activation": "identity"}
    cfg = config_for("binary-addition", {"n_train": 64}, **settings)
    data = load_task(cfg)
    msgs = []
    for backend_cls in (_OneBatchAtATime, CompiledBackend):
        with pytest.raises(Diverged) as e:
            train(cfg, data=data, backend=backend_cls(cfg, data.input_size, data.output_size))
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] and "\n" not in msgs[0]
