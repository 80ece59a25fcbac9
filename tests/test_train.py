"""Training: optimizers against torch.optim, clipping, schedule, masked loss, truncated BPTT by hand,
gradient flow against torch autograd, learning binary addition, bitwise reproducibility and resume
after a real SIGKILL, early stopping, and the `bptt train/predict/gradflow` commands and their errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bptt import RNN, BPTTError
from bptt import io as bio
from bptt import tasks
from bptt import gradflow as gf
from bptt import backends, train as tr
from bptt.cli import main
from helpers import crash_env

torch = pytest.importorskip("torch")


# ---------------------------------------------------------------- optimizers, clipping, schedule
def _grad_stream(seed, shapes, n):
    rng = np.random.default_rng(seed)
    return [{k: rng.standard_normal(s) for k, s in shapes.items()} for _ in range(n)]


@pytest.mark.parametrize(
    "kind, kw",
    [
        ("sgd", dict(momentum=0.0, nesterov=False)),
        ("sgd", dict(momentum=0.9, nesterov=False)),
        ("sgd", dict(momentum=0.8, nesterov=True)),
        ("adam", dict(betas=(0.9, 0.999), eps=1e-8)),
        ("adam", dict(betas=(0.5, 0.9), eps=1e-3)),
    ],
)
def test_optimizers_match_torch(kind, kw):
    shapes = {"w": (2, 3), "b1": (3,)}
    rng = np.random.default_rng(0)
    p0 = {k: rng.standard_normal(s) for k, s in shapes.items()}
    ours = {k: v.copy() for k, v in p0.items()}
    tp = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in p0.items()}
    lr = 0.03
    if kind == "sgd":
        opt = tr.SGD(ours, **kw)
        topt = torch.optim.SGD(list(tp.values()), lr=lr, **kw)
    else:
        opt = tr.Adam(ours, **kw)
        topt = torch.optim.Adam(list(tp.values()), lr=lr, **kw)
    for g in _grad_stream(1, shapes, 25):
        opt.step(ours, g, lr)
        for k, t in tp.items():
            t.grad = torch.tensor(g[k])
        topt.step()
    for k in shapes:
        np.testing.assert_allclose(ours[k], tp[k].detach().numpy(), rtol=1e-12, atol=1e-13)


def test_clip_global_norm():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}  # global norm 5
    assert tr.clip_global_norm(g, 10.0) == 5.0 and g["a"][0] == 3.0  # under the bound: untouched
    assert tr.clip_global_norm(g, 1.0) == 5.0
    assert math.sqrt(g["a"] @ g["a"] + g["b"][0, 0] ** 2) == pytest.approx(1.0)
    assert g["a"][0] / g["b"][0, 0] == pytest.approx(0.75)  # direction kept
    g = {"a": np.array([30.0])}
    tr.clip_global_norm(g, None)
    assert g["a"][0] == 30.0


def test_one_optimizer_and_schedule_table_refuses_unknown_names():
    from types import SimpleNamespace

    from bptt import optim

    params = {"w": np.zeros(2)}
    ns = dict(sgd=optim.SGDSettings(0.5, True), adam=optim.AdamSettings((0.9, 0.99), 1e-8), lr=0.1, min_lr=0.0)
    assert isinstance(optim.make_optimizer(SimpleNamespace(optimizer="sgd", **ns), params), optim.SGD)
    assert isinstance(optim.make_optimizer(SimpleNamespace(optimizer="adam", **ns), params), optim.Adam)
    with pytest.raises(BPTTError, match="optimizer 'lbfgs' is not supported; choose one of sgd, adam"):
        optim.make_optimizer(SimpleNamespace(optimizer="lbfgs", **ns), params)  # never a silent fall-through to Adam
    with pytest.raises(BPTTError, match="schedule 'step' is not supported"):
        optim.lr_at(SimpleNamespace(schedule="step", **ns), 0, 10)
    with pytest.raises(BPTTError, match="optimizer 'lbfgs' is not supported"):
        tr.config_for("sine", optimizer="lbfgs")
    assert tr.OPTIMIZERS is optim.OPTIMIZERS and tr.SGD is optim.SGD  # one table, one implementation


def test_cosine_and_constant_schedule():
    cfg = tr.TrainConfig(lr=0.1, schedule="cosine", min_lr=0.01)
    assert tr.lr_at(cfg, 0, 100) == pytest.approx(0.1)
    assert tr.lr_at(cfg, 50, 100) == pytest.approx(0.055)
    assert tr.lr_at(cfg, 100, 100) == pytest.approx(0.01)
    assert tr.lr_at(tr.TrainConfig(lr=0.1), 70, 100) == 0.1


# ---------------------------------------------------------------- losses and gradients
def _masked_loss(m, x, y, mask):
    pred = m.predict(x)
    return 0.5 * np.sum(((pred - y) ** 2)[mask]) / mask.sum()


def test_masked_loss_and_grad_matches_finite_differences():
    rng = np.random.default_rng(2)
    m = RNN(2, 3, 1, seed=4)
    x = rng.uniform(0, 1, (6, 4, 2))
    y = rng.uniform(0, 1, (6, 4, 1))
    mask = rng.uniform(size=(6, 4)) < 0.4
    mask[-1] = True
    h0 = rng.uniform(0, 1, (4, 3))
    loss, grads, h_last, n = backends.masked_loss_and_grad(m, x, y, mask, h0, None)
    assert n == mask.sum()
    assert np.array_equal(h_last, m.forward(x, h0=h0).h[-1])
    assert loss == pytest.approx(0.5 * np.sum(((m.predict(x, h0=h0) - y) ** 2)[mask]) / mask.sum(), rel=1e-12)
    eps = 1e-6
    for name, g in grads.items():
        p = m.params()[name]
        for idx in np.ndindex(p.shape):
            up, dn = p.copy(), p.copy()
            up[idx] += eps
            dn[idx] -= eps
            m.set_params(**{name: up})
            lu = 0.5 * np.sum(((m.predict(x, h0=h0) - y) ** 2)[mask]) / mask.sum()
            m.set_params(**{name: dn})
            ld = 0.5 * np.sum(((m.predict(x, h0=h0) - y) ** 2)[mask]) / mask.sum()
            m.set_params(**{name: p})
            assert g[idx] == pytest.approx((lu - ld) / (2 * eps), rel=1e-6, abs=1e-10)


def test_truncated_bptt_loop_by_hand():
    """One epoch, one stream, chunk 4: each update uses the chunk's gradient from the carried state."""
    cfg = tr.config_for("sine", {"length": 12, "n_train": 1, "n_val": 1, "n_test": 1}, hidden_size=3,
                        optimizer="sgd", lr=0.5, clip=None, epochs=1, batch_size=1, chunk=4)
    res = tr.train(cfg)
    data = tasks.sine(length=12, n_train=1, n_val=1, n_test=1, seed=0)
    m = RNN(1, 3, 1, seed=0)
    h = np.zeros((1, 3))
    for c0 in (0, 4, 8):
        x, y = data.train.x[c0 : c0 + 4], data.train.y[c0 : c0 + 4]  # (4, 1, 1)
        h_next = m.forward(x, h0=h).h[-1]
        _, g = m.loss_and_grad(x, y, h0=h)
        m.set_params(**{k: v - 0.5 * g[k] for k, v in m.params().items()})
        h = h_next
    for k, v in m.params().items():
        assert np.array_equal(res.model.params()[k], v), k
    assert res.metrics["updates"] == 3

# ---------------------------------------------------------------- learning and reproducibility
SMALL_ADDITION = dict(hidden_size=8, lr=0.05, epochs=35, batch_size=16, seed=0)
SMALL_PAIRS = {"bits": 8, "n_train": 300, "n_val": 100, "n_test": 500}


def test_binary_addition_learns_to_carry_exactly():
    """8-bit operands, 8 sigmoid hidden units, 35 epochs over 300 pairs: every one of 500 unseen test pairs exact.

    (Seeds 0 and 2-7 of this configuration all reach 500 of 500; seed 1 stalls on a plateau.)
    """
    res = tr.train(tr.config_for("binary-addition", SMALL_PAIRS, **SMALL_ADDITION))
    assert res.metrics["test_pairs"] == 500
    assert res.metrics["test_pairs_exact"] == 500
    # independent check of the metric: add by the network's thresholded bits
    d = res.data
    got = tasks.bits_to_int(res.model.predict(d.test.x)[..., 0] > 0.5)
    a = tasks.bits_to_int(d.test.x[..., 0])
    b = tasks.bits_to_int(d.test.x[..., 1])
    assert np.array_equal(got, a + b)


def test_same_seed_same_bits_other_seed_differs():
    cfg = dict(hidden_size=4, epochs=3, batch_size=8)
    opts = {"bits": 4, "n_train": 40, "n_val": 10, "n_test": 10}
    a = tr.train(tr.config_for("binary-addition", opts, seed=7, **cfg))
    b = tr.train(tr.config_for("binary-addition", opts, seed=7, **cfg))
    c = tr.train(tr.config_for("binary-addition", opts, seed=8, **cfg))
    for k in a.model.params():
        assert a.model.params()[k].tobytes() == b.model.params()[k].tobytes()
    assert a.history == b.history
    assert any(not np.array_equal(a.model.params()[k], c.model.params()[k]) for k in a.model.params())


FRESH = {"length": 12, "n_train": 40, "n_val": 20, "n_test": 20, "fresh": 1}


@pytest.mark.parametrize("optimizer", ["adam", "hf"])
def test_fresh_data_same_seed_same_bits_other_seed_differs(optimizer):
    cfg = dict(hidden_size=4, epochs=3, batch_size=8, optimizer=optimizer)
    a, b, c = (tr.train(tr.config_for("adding", FRESH, seed=s, **cfg)) for s in (5, 5, 6))
    for k in a.model.params():
        assert a.model.params()[k].tobytes() == b.model.params()[k].tobytes()
    assert a.history == b.history and a.metrics == b.metrics
    assert a.history["train_loss"] != c.history["train_loss"]
    fixed = tr.train(tr.config_for("adding", {**FRESH, "fresh": 0}, seed=5, **cfg))
    assert fixed.history["train_loss"] != a.history["train_loss"]  # other training data


def test_each_epoch_trains_on_its_own_fresh_set_and_validation_and_test_stay_fixed(tmp_path):
    """HF's training loss of epoch e is L(θ_{e-1}) on the whole training set it used: it equals the loss on
    tasks.training_set(task, seed, e), not on the fixed training split nor on another epoch's set."""
    cfg = dict(hidden_size=4, optimizer="hf", seed=3, hf_max_cg=10)
    one = tr.train(tr.config_for("adding", FRESH, epochs=1, **cfg), out=tmp_path / "one")
    two = tr.train(tr.config_for("adding", FRESH, epochs=2, **cfg))
    assert two.history["train_loss"][0] == one.history["train_loss"][0]
    _, after_one, *_ = tr.load_checkpoint(tmp_path / "one")  # θ_1: the parameters after epoch 1
    model = tr.init_model(two.config, two.data)
    start = model.params()

    def loss_on(params, split):
        model.set_params(**params)
        return tr.evaluate(model, split)

    drawn = {e: tasks.training_set("adding", 3, e, **FRESH) for e in (1, 2)}
    assert one.history["train_loss"][0] == pytest.approx(loss_on(start, drawn[1]), rel=1e-12)
    assert two.history["train_loss"][1] == pytest.approx(loss_on(after_one, drawn[2]), rel=1e-12)
    for other in (drawn[1], two.data.train):
        assert loss_on(after_one, other) != pytest.approx(two.history["train_loss"][1], rel=1e-6)
    fixed = tasks.load("adding", seed=3, **{**FRESH, "fresh": 0})  # the validation and test sets: fresh changes neither
    for name in ("val", "test"):
        got, want = getattr(two.data, name), getattr(fixed, name)
        assert np.array_equal(got.x, want.x) and np.array_equal(got.y, want.y) and np.array_equal(got.mask, want.mask)


def test_fresh_is_refused_where_the_data_is_fixed_or_the_value_is_not_0_or_1(tmp_path, capsys):
    with pytest.raises(BPTTError, match="^task option fresh must be 0 or 1, got 2$"):
        tr.config_for("adding", {"fresh": 2})
    with pytest.raises(BPTTError, match="^--fresh does not apply to task sunspots"):
        tr.config_for("sunspots", {"fresh": 1})
    assert main(["train", "--task", "binary-addition", "--fresh", "1", "--out", str(tmp_path / "r")]) == 2
    assert "--fresh does not apply to task binary-addition" in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_early_stopping_stops_after_patience():
    cfg = tr.config_for("sunspots", {"window": 10}, hidden_size=4, optimizer="sgd", lr=3.0, clip=None,
                        epochs=60, batch_size=8, patience=3)
    res = tr.train(cfg)
    v = res.history["val_loss"]
    best = res.metrics["best_epoch"]
    assert res.metrics["stopped_early"] and res.metrics["epochs_run"] == best + 3 < 60
    assert v[best - 1] == min(v) and all(x >= v[best - 1] for x in v[best:])
    assert res.metrics["best_val_loss"] == v[best - 1]
    assert tr.evaluate(res.model, res.data.val) == pytest.approx(v[best - 1], rel=1e-12)  # the best model is returned


def _cli(args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "bptt", *args], capture_output=True, text=True, env=e, timeout=300)


def _params(folder: Path) -> dict[str, bytes]:
    m, _ = bio.load_model(folder)
    return {k: v.tobytes() for k, v in m.params().items()}


@pytest.mark.parametrize(
    "args",
    [
        ["--task", "binary-addition", "--bits", "6", "--n-train", "60", "--n-val", "20", "--n-test", "20", "--hidden", "4",
         "--epochs", "7", "--batch-size", "8", "--schedule", "cosine", "--patience", "50"],
        pytest.param(["--task", "sine", "--length", "30", "--n-train", "8", "--n-val", "4", "--n-test", "4", "--hidden", "4",
                      "--chunk", "10", "--batch-size", "4", "--epochs", "7", "--optimizer", "sgd", "--lr", "0.2",
                      "--momentum", "0.9", "--nesterov"], marks=pytest.mark.slow),
        # a fresh training set every epoch (drawn from seed and epoch): the resumed run draws the same ones
        ["--task", "adding", "--length", "12", "--n-train", "40", "--n-val", "20", "--n-test", "20", "--fresh", "1",
         "--hidden", "4", "--epochs", "7", "--batch-size", "8"],
        ["--task", "xor", "--length", "12", "--n-train", "40", "--n-val", "20", "--n-test", "20", "--fresh", "1",
         "--hidden", "4", "--epochs", "7", "--optimizer", "hf", "--hf-max-cg", "10"],
    ],
    ids=["adam-cosine", "sgd-nesterov-tbptt", "adam-fresh", "hf-fresh"],
)
def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path, args):
    args = args + ["--checkpoint-every", "2", "--seed", "3"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    r = _cli(["train", *args, "--out", str(full)])
    assert r.returncode == 0, r.stderr
    r = _cli(["train", *args, "--out", str(killed)], env=crash_env("5"))
    assert r.returncode == -9  # SIGKILL after epoch 5; the last checkpoint is epoch 4's
    assert not (killed / "model.npz").exists()
    _, meta = bio.load_arrays(killed / "checkpoint.npz", bio.CHECKPOINT_FORMAT)
    assert meta["state"]["epoch"] == 4
    r = _cli(["train", "--resume", "--out", str(killed)])
    assert r.returncode == 0, r.stderr
    assert _params(killed) == _params(full)
    mk, mf = (json.loads((d / "metrics.json").read_text()) for d in (killed, full))
    assert mk["history"] == mf["history"] and len(mf["history"]["val_loss"]) == 7
    assert mk["test"] == mf["test"]


# ---------------------------------------------------------------- the commands
FAST = ["--task", "binary-addition", "--bits", "4", "--n-train", "40", "--n-val", "10", "--n-test", "10", "--hidden", "4",
        "--epochs", "2", "--batch-size", "8"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_train_writes_model_metrics_plots_and_predict_adds(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(out)]) == 0
    for f in ("model.npz", "metrics.json", "config.json", "checkpoint.npz", "loss.png", "predictions.png", "gradflow.png"):
        assert (out / f).stat().st_size > 0, f
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "binary-addition" and len(metrics["history"]["train_loss"]) == 2
    assert 0 <= metrics["test"]["test_accuracy"] <= 1
    capsys.readouterr()
    assert main(["predict", "--model", str(out), "--a", "3,15", "--b", "4,15", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["a"], r["b"], r["true"]) for r in rows] == [(3, 4, 7), (15, 15, 30)]
    assert main(["predict", "--model", str(out), "--a", "16", "--b", "1"]) == 2
    assert "does not fit in 4 bits" in _one_error_line(capsys)


def test_csv_train_and_predict_in_user_units(tmp_path, capsys):
    vals = 1000 + 250 * np.sin(0.3 * np.arange(80))
    f = tmp_path / "d.csv"
    f.write_text("t,price\n" + "".join(f"{i},{v!r}\n" for i, v in enumerate(vals.tolist())))
    out = tmp_path / "run"
    assert main(["train", "--task", "csv", "--csv", str(f), "--column", "price", "--window", "8", "--epochs", "3",
                 "--hidden", "4", "--out", str(out)]) == 0
    m, info = bio.load_model(out)
    n_train = info["task_info"]["split"]["train"]
    lo, hi = vals[:n_train].min(), vals[:n_train].max()
    assert info["scaling"] == {"lo": lo, "hi": hi}
    capsys.readouterr()
    xs = [900.0, 1100.0, 1250.0]
    assert main(["predict", "--model", str(out), "--x", ",".join(map(str, xs)), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = lo + (hi - lo) * m.predict((np.array(xs)[:, None] - lo) / (hi - lo))[:, 0]
    np.testing.assert_allclose([p[0] for p in got["predictions"]], want, rtol=1e-12)
    assert got["next"] == pytest.approx(want[-1])
    assert main(["predict", "--model", str(out), "--csv", str(f), "--column", "price", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["predictions"]) == 80
    # gradflow on the user's own series: inputs x_1..x_{T-1}, targets x_2..x_T, scaled as in training
    seq = [900.0, 1000.0, 1200.0, 1100.0, 950.0, 1050.0]
    png = tmp_path / "flow.png"
    assert main(["gradflow", "--model", str(out), "--x", ",".join(map(str, seq)), "--out", str(png), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["decay"]
    u = (np.array(seq)[:, None] - lo) / (hi - lo)
    want = gf.decay_summary(gf.gradient_flow(m, u[:-1], u[1:]))
    assert got["sigmoid (as trained)"] == pytest.approx(want, rel=1e-12) and set(want) == {"1", "2"}
    assert main(["gradflow", "--model", str(out), "--x", "900", "--out", str(tmp_path / "f2.png")]) == 2
    assert "at least 2 values" in _one_error_line(capsys)


def test_gradflow_command(tmp_path, capsys):
    png = tmp_path / "g.png"
    assert main(["gradflow", "--out", str(png), "--length", "12", "--hidden", "4", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    sig, tanh = s["decay"].values()
    assert sig["5"] < tanh["5"]  # same weights: sigmoid's f' <= 1/4 shrinks the signal faster
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = png.read_bytes()
    assert main(["gradflow", "--out", str(png)]) == 2
    assert "exists" in _one_error_line(capsys) and png.read_bytes() == before


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "--task", "nope"], "unknown task 'nope'"),
        (["train", "--task", "sunspots", "--bits", "8"], "--bits does not apply to task sunspots"),
        (["train", "--task", "sunspots", "--window", "300"], "has 309 values but a window of 300"),
        (["train", "--task", "csv", "--column", "x"], "needs a file and a column"),
        (["train", "--task", "binary-addition", "--lr", "-1"], "lr must be a finite number > 0"),
        (["train", "--task", "binary-addition", "--optimizer", "rmsprop"], "optimizer 'rmsprop' is not supported"),
        (["train", "--task", "binary-addition", "--nesterov"], "--nesterov is sgd's setting but the optimizer is adam"),
        (["train", "--task", "binary-addition", "--hidden", "x"], "invalid int value"),
        (["train"], "--task is required"),
    ],
)
def test_train_bad_input_one_line_nothing_written(tmp_path, capsys, argv, match):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    assert match in _one_error_line(capsys)
    assert not out.exists()


def test_csv_bad_files_via_cli(tmp_path, capsys):
    f = tmp_path / "d.csv"
    f.write_text("a,b\n1,2\n3,oops\n")
    out = tmp_path / "out"
    assert main(["train", "--task", "csv", "--csv", str(f), "--column", "b", "--out", str(out)]) == 2
    assert "line 3, column 'b' holds 'oops'" in _one_error_line(capsys)
    assert main(["train", "--task", "csv", "--csv", str(f), "--column", "zz", "--out", str(out)]) == 2
    assert "no column 'zz'" in _one_error_line(capsys)
    f.write_text("a\n" + "".join(f"{i}\n" for i in range(10)))
    assert main(["train", "--task", "csv", "--csv", str(f), "--column", "a", "--out", str(out)]) == 2
    assert "has 10 values but a window of 20" in _one_error_line(capsys)
    assert not out.exists()


def test_existing_out_dir_refused_unless_force(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["train", *FAST, "--out", str(out)]) == 2
    assert "exists and is not empty" in _one_error_line(capsys)
    assert os.listdir(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert main(["train", *FAST, "--out", str(out), "--force"]) == 0
    assert (out / "model.npz").exists() and (out / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", *FAST, "--out", str(empty)]) == 0  # an empty folder is fine


def test_resume_without_checkpoint_and_bad_model_files(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["train", "--resume", "--out", str(out)]) == 2
    assert "no checkpoint.npz to resume from" in _one_error_line(capsys)
    assert main(["train", "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "no such folder to resume" in _one_error_line(capsys)
    (out / "model.npz").write_bytes(b"PK\x03\x04 truncated")
    assert main(["predict", "--model", str(out), "--x", "1"]) == 2
    assert "not a readable .npz file" in _one_error_line(capsys)
    np.savez(out / "model.npz", a=np.zeros(3))
    assert main(["predict", "--model", str(out), "--x", "1"]) == 2
    assert "not a bptt-model file" in _one_error_line(capsys)
    assert main(["gradflow", "--model", str(out), "--out", str(tmp_path / "g.png")]) == 2
    assert "not a bptt-model file" in _one_error_line(capsys)
    assert not (tmp_path / "g.png").exists()


def test_config_round_trip_and_validation():
    cfg = tr.config_for("adding", {"length": 30}, hidden_size=5, betas=(0.8, 0.99), clip=None)
    assert tr.TrainConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    with pytest.raises(BPTTError, match="unknown training setting 'hiden'"):
        tr.config_for("adding", hiden=3)
    with pytest.raises(BPTTError, match="momentum must be a finite number in"):
        tr.config_for("adding", optimizer="sgd", momentum=1.0)
    with pytest.raises(BPTTError, match="epochs must be an integer >= 1"):
        tr.config_for("adding", epochs=0)


@pytest.mark.slow
def test_two_trainings_into_one_new_out_never_mix(tmp_path):
    """Two `bptt train` at once on the same new --out: one runs, the other is refused naming the owner."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "bptt", "train", "--task", "binary-addition", "--bits", "4", "--n-train", "40",
            "--n-val", "8", "--n-test", "8", "--epochs", "40", "--hidden", "3", "--no-progress", "--out", str(out)]
    procs = [subprocess.Popen(argv + ["--seed", str(s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in (0, 1)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    err = next(r[2] for r in results if r[0] == 2)
    assert err.count("\n") == 1 and ("in use by another bptt run (pid" in err or "exists and is not empty" in err), err
    winner = next(i for i, r in enumerate(results) if r[0] == 0)
    cfg = json.loads((out / "config.json").read_text())
    _, info = bio.load_model(out)
    assert cfg["seed"] == winner and info["config"]["seed"] == winner  # config and model from the same run


def test_force_after_a_killed_run_leaves_no_stale_model(tmp_path):
    out = tmp_path / "run"
    base = ["train", "--task", "binary-addition", "--bits", "4", "--n-train", "40", "--n-val", "8", "--n-test", "8",
            "--hidden", "3", "--no-progress", "--out", str(out)]
    assert main(base + ["--epochs", "2"]) == 0
    assert (out / "model.npz").exists() and (out / "loss.png").exists()
    (out / "notes.txt").write_text("mine")
    env = {**os.environ, **crash_env("1")}
    p = subprocess.run([sys.executable, "-m", "bptt", *base, "--epochs", "5", "--seed", "1", "--force"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == -9
    assert not (out / "model.npz").exists() and not (out / "loss.png").exists()  # the old run's outputs are gone
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert (out / "notes.txt").read_text() == "mine"  # what is not a run output stays


def test_divergence_is_reported_as_divergence(tmp_path, capsys):
    code = main(["train", "--task", "binary-addition", "--bits", "4", "--n-train", "40", "--n-val", "8", "--n-test",
                 "8", "--hidden", "3", "--epochs", "3", "--lr", "1e308", "--no-progress", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "training diverged at epoch 1" in err and "lower --lr (now 1e+308)" in err, err


@pytest.mark.parametrize("damage", ["w_h_shape", "missing_moment", "state_epoch", "nan_param"])
def test_damaged_checkpoint_is_one_line_on_resume(tmp_path, capsys, damage):
    out = tmp_path / "run"
    assert main(["train", "--task", "binary-addition", "--bits", "4", "--n-train", "40", "--n-val", "8", "--n-test",
                 "8", "--hidden", "3", "--epochs", "2", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    arrays, meta = bio.load_arrays(out / "checkpoint.npz", bio.CHECKPOINT_FORMAT)
    if damage == "w_h_shape":
        arrays["param.w_h"] = np.zeros((4, 4))
    elif damage == "missing_moment":
        del arrays["opt.v.w"]
    elif damage == "state_epoch":
        meta["state"]["epoch"] = "two"
    else:
        arrays["best.b1"] = np.full_like(arrays["best.b1"], np.nan)
    bio.save_arrays(out / "checkpoint.npz", arrays, meta)
    assert main(["train", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def test_train_json_is_one_object_and_a_loss_to_persistence_is_a_warning(tmp_path, capsys):
    rng = np.random.default_rng(1)
    walk = np.cumsum(rng.standard_normal(300))  # a random walk: persistence is hard to beat
    csv = tmp_path / "walk.csv"
    csv.write_text("v\n" + "\n".join(f"{v:.4f}" for v in walk) + "\n")
    code = main(["train", "--task", "csv", "--csv", str(csv), "--column", "v", "--epochs", "3", "--json",
                 "--plots", "none", "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 0
    obj = json.loads(out)  # stdout is exactly one JSON object
    assert set(obj) == {"schema", "task", "out", "seconds", "test", "in_metrics_json", "files", "warnings"}
    assert obj["schema"] == "bptt-train/1"
    # one shape for every task: numbers in "test", the csv task's prediction arrays only in metrics.json
    assert all(v is None or isinstance(v, (bool, int, float, str)) for v in obj["test"].values())
    whole = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert obj["in_metrics_json"] and all(isinstance(whole[k], (list, dict)) for k in obj["in_metrics_json"])
    assert obj["test"]["test_mse"] > obj["test"]["persistence_mse"]
    assert len(obj["warnings"]) == 1 and "worse than persistence" in obj["warnings"][0]
    assert err.startswith("warning: the RNN's test MSE") and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path / "run")) == [".bptt-run.json", "checkpoint.npz", "config.json", "metrics.json",
                                                   "model.npz"]  # .bptt-run.json: the record of what the run wrote


def test_a_new_optimizer_is_one_record(monkeypatch, tmp_path, capsys):
    """Adding an optimizer is one entry in optim.OPTIMIZERS: config, loop, checkpoint and CLI take it."""
    from bptt import optim

    class SignSGD(optim.SGD):
        def step(self, params, grads, lr):
            super().step(params, {k: np.sign(g) for k, g in grads.items()}, lr)

    monkeypatch.setitem(optim.OPTIMIZERS, "signsgd", lambda cfg, params: SignSGD(params))
    cfg = tr.config_for("binary-addition", {"bits": 3, "n_train": 16, "n_val": 4, "n_test": 4}, hidden_size=2,
                        epochs=2, optimizer="signsgd", lr=0.01)
    res = tr.train(cfg)
    start = RNN(2, 2, 1, seed=0).params()
    for k, v in res.model.params().items():  # every update moves each weight by exactly lr
        steps = np.abs(v - start[k]) / 0.01
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    assert main(["train", "--task", "binary-addition", "--bits", "3", "--n-train", "16", "--n-val", "4", "--n-test",
                 "4", "--hidden", "2", "--epochs", "1", "--optimizer", "signsgd", "--lr", "0.01", "--plots", "none",
                 "--no-progress", "--out", str(tmp_path / "run")]) == 0


def test_hf_settings_on_the_command_line_reach_the_config(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--task", "adding", "--length", "6", "--n-train", "20", "--n-val", "5", "--n-test", "5",
                 "--hidden", "3", "--epochs", "2", "--optimizer", "hf", "--hf-damping", "2", "--hf-structural", "0.1",
                 "--hf-max-cg", "7", "--hf-l2", "1e-6", "--hf-curvature-batch", "10", "--plots", "none",
                 "--no-progress", "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())["hf"]  # HF's settings nested under their owner
    assert (cfg["damping"], cfg["structural"], cfg["max_cg"], cfg["l2"], cfg["curvature_batch"]) == (2.0, 0.1, 7, 1e-6, 10)


def test_owned_settings_flags_are_generated_and_old_flat_configs_still_read():
    """One flag per flagged field of SGDSettings and HFSettings (adding a field adds its flag); a config.json of
    the flat form (momentum, betas, hf_damping, ... at the top) loads as the nested one."""
    import dataclasses

    from bptt.cli import build_parser
    from bptt.hf import HFSettings
    from bptt.optim import AdamSettings, SGDSettings

    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for cls in (SGDSettings, AdamSettings, HFSettings):
        for f in dataclasses.fields(cls):
            assert f.metadata["flag"] is None or f.metadata["flag"] in help_text
    assert "--hf-curvature-batch" in help_text and "--momentum" in help_text
    cfg = tr.config_for("adding", {"length": 6}, optimizer="sgd", momentum=0.5)
    old = dataclasses.replace(cfg, hf=HFSettings(damping=2.0)).to_json()  # every owner's settings non-default
    assert old["sgd"] == {"momentum": 0.5, "nesterov": False} and old["hf"]["damping"] == 2.0
    assert old["adam"] == {"betas": [0.9, 0.999], "eps": 1e-8}
    flat = {k: v for k, v in old.items() if k not in ("sgd", "adam", "hf")}
    flat.update({"hf_" + k: v for k, v in old["hf"].items()})
    flat.update(old["sgd"])
    flat.update(old["adam"])
    assert tr.TrainConfig.from_json(flat) == tr.TrainConfig.from_json(old)
    assert tr.TrainConfig.from_json(old).adam.betas == (0.9, 0.999)  # a tuple again
    with pytest.raises(BPTTError, match="unknown hf setting.*damp; the settings are damping, structural"):
        tr.TrainConfig.from_json({**old, "hf": {"damp": 1}})

def test_a_task_has_defaults_per_optimizer():
    """--optimizer hf takes the task's HF budget (iterations, never seconds); settings given win; other tasks keep theirs."""
    from bptt import tasks
    from bptt.train import config_for

    hf = tasks.get("adding").defaults.hf
    assert config_for("adding", {"length": 100}, optimizer="hf").epochs == hf["epochs"] == 200
    assert config_for("adding", {"length": 100}, optimizer="hf").hf.time_limit is None
    assert config_for("adding", {"length": 100}).epochs == tasks.get("adding").defaults.epochs == 30
    assert config_for("adding", {}, optimizer="hf", epochs=7).epochs == 7
    assert config_for("sunspots", {}, optimizer="hf").epochs == config_for("sunspots", {}).epochs


@pytest.mark.parametrize("settings, match", [
    ({"momentum": 0.9}, "--momentum is sgd's setting but the optimizer is adam; give --optimizer sgd, or leave it out"),
    ({"optimizer": "sgd", "hf_damping": 2.0}, "--hf-damping is hf's setting but the optimizer is sgd"),
    ({"optimizer": "sgd", "betas": (0.5, 0.9)}, "betas is adam's setting but the optimizer is sgd"),
    ({"hf_l2": 1e-6, "hf_max_cg": 5}, "--hf-max-cg, --hf-l2 are hf's settings but the optimizer is adam"),
])
def test_another_optimizers_settings_are_refused_not_ignored(settings, match):
    with pytest.raises(BPTTError, match=match):
        tr.config_for("sine", **settings)


def test_another_optimizers_flag_on_the_command_line_is_one_line(capsys, tmp_path):
    assert main(["train", "--task", "sine", "--momentum", "0.9", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --momentum is sgd's setting but the optimizer is adam; give --optimizer sgd, or leave it out"]
