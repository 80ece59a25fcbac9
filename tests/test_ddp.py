"""The torch backend and data-parallel training (bptt.ddp): the one loop of bptt.train, against the numpy engine.

float64 throughout.  Start-up of a process group costs seconds, so the runs are tiny.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402

import bptt  # noqa: E402
from bptt import BPTTError, ddp  # noqa: E402
from bptt import io as bio  # noqa: E402
from bptt import train as tr  # noqa: E402
from bptt.cli import build_parser, main  # noqa: E402
from bptt.cli.train import train_config_from_args  # noqa: E402
from helpers import crash_env  # noqa: E402

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="torch without gloo")

# adding: a mask (one scored step per sequence); 6 sequences in batches of 4 and 2, chunks of 4 steps:
# with 2 ranks the shares are 2+2 and 1+1; the last chunk (steps 9..10) of most sequences scores nothing
ADDING = {"length": 10, "n_train": 6, "n_val": 3, "n_test": 3}
SGD = dict(hidden_size=3, hidden_activation="tanh", optimizer="sgd", lr=0.3, momentum=0.5, clip=0.5, epochs=3,
           batch_size=4, chunk=4, seed=3)


def _assert_close(a: dict, b: dict, rtol=1e-12, atol=1e-13):
    for k in bptt.PARAM_NAMES:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize("extra", [
    {},
    {"truncate": 2, "schedule": "cosine", "min_lr": 0.01},
    {"optimizer": "adam", "lr": 0.05, "chunk": None, "grad_checkpoint": "sqrt", "patience": 1},
], ids=["sgd-chunks", "truncate-cosine", "adam-grad-checkpoint"])
def test_torch_backend_equals_engine_backend(extra):
    cfg = {**SGD, **extra}
    if cfg["optimizer"] != "sgd":
        del cfg["momentum"]  # SGD's own setting: refused with another optimizer
    engine = tr.train(tr.config_for("adding", ADDING, **cfg))
    torch_ = tr.train(tr.config_for("adding", ADDING, backend="torch", **cfg))
    start = bptt.RNN(2, 3, 1, "tanh", seed=3).params()
    assert any(np.abs(engine.model.params()[k] - start[k]).max() > 1e-3 for k in start)  # it did train
    _assert_close(torch_.model.params(), engine.model.params())
    for name in ("train_loss", "val_loss"):
        np.testing.assert_allclose(torch_.history[name], engine.history[name], rtol=1e-12)
    assert torch_.metrics["updates"] == engine.metrics["updates"] and torch_.metrics["best_epoch"] == engine.metrics["best_epoch"]


def test_torch_backend_share_and_empty_share():
    """One rank of two by hand: the share's gradient / n_global, all-reduced (summed), is the whole batch's."""
    cfg = tr.config_for("adding", ADDING, backend="torch", **SGD)
    data = tr.load_task(cfg)
    params = tr.init_model(cfg, data).params()
    x, y, m = data.train.x[:5, :3], data.train.y[:5, :3], data.train.mask[:5, :3]  # (5, 3, D): 3 sequences
    m = m.copy()
    m[4] = True  # scored steps in this chunk
    whole = tr.make_backend(cfg, 2, 1).loss_and_grad(params, x, y, m, None, True)
    parts = []
    for rank in (0, 1):
        b = tr.make_backend(cfg, 2, 1)
        b.rank, b.world = rank, 2  # this process plays one rank; the sum below is the all-reduce
        parts.append(b.loss_and_grad(params, x, y, m, None, True))
    assert parts[0][2].shape == (2, 3) and parts[1][2].shape == (1, 3)  # each rank carries its share's state
    np.testing.assert_allclose(np.concatenate([parts[0][2], parts[1][2]]), whole[2], rtol=1e-14)
    _assert_close({k: parts[0][1][k] + parts[1][1][k] for k in bptt.PARAM_NAMES}, whole[1], rtol=1e-13, atol=1e-15)
    assert parts[0][0] + parts[1][0] == pytest.approx(whole[0], rel=1e-13) and whole[3] == int(m.sum())
    b = tr.make_backend(cfg, 2, 1)
    b.rank, b.world = 1, 2
    loss, g, h, n = b.loss_and_grad(params, x[:, :1], y[:, :1], m[:, :1], None, True)  # one sequence: rank 1 has none
    assert loss == 0.0 and h.shape == (0, 3) and n == int(m[:, :1].sum())
    assert all(not g[k].any() for k in bptt.PARAM_NAMES)


@pytest.mark.slow
def test_two_processes_equal_one_process_and_engine(tmp_path):
    cfg = tr.config_for("adding", {**ADDING, "n_train": 5}, **SGD)  # batches of 4 and 1: rank 1 idle in the last
    infos = []
    two = ddp.launch(dataclasses.replace(cfg, backend="torch", nproc=2), tmp_path / "two",
                     progress=infos.append)
    assert two.metrics["max_rank_diff"] == 0.0  # the replicas (parameters and best parameters) are bit-identical
    assert [i["epoch"] for i in infos if i.get("done")] == [1, 2, 3]  # rank 0's progress reached this process
    one = tr.train(dataclasses.replace(cfg, backend="torch"))
    engine = tr.train(cfg)
    _assert_close(two.model.params(), one.model.params())
    _assert_close(two.model.params(), engine.model.params())
    np.testing.assert_allclose(two.history["val_loss"], engine.history["val_loss"], rtol=1e-12)
    assert sorted(os.listdir(tmp_path / "two")) == ["checkpoint.npz", "config.json"]  # rank 0 wrote, nobody else


def _cli(args, env=None):
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bptt", *args], capture_output=True, text=True, env=e, timeout=300)


EVERY_OPTION = ["--task", "sine", "--length", "12", "--n-train", "6", "--n-val", "3", "--n-test", "3", "--hidden", "3",
                "--epochs", "5", "--batch-size", "4", "--chunk", "5", "--truncate", "3", "--optimizer", "sgd",
                "--momentum", "0.9", "--nesterov", "--lr", "0.1", "--schedule", "cosine", "--min-lr", "0.01",
                "--clip", "0.5", "--patience", "4", "--checkpoint-every", "2", "--seed", "2", "--no-progress"]
FILES = [".bptt-run.json", "checkpoint.npz", "config.json", "gradflow.png", "loss.png", "metrics.json", "model.npz",
         "predictions.png"]  # .bptt-run.json: bptt train's record of the files it wrote (io.MANIFEST)


def _params(folder: Path) -> dict[str, np.ndarray]:
    return bio.load_model(folder)[0].params()


@pytest.mark.slow
@pytest.mark.parametrize("nproc", [1, 2])
def test_cli_torch_backend_every_option_resume_predict_gradflow(tmp_path, capsys, monkeypatch, nproc):
    """bptt train --backend torch --nproc N takes every option of bptt train, writes what --backend numpy writes
    (the same parameters to 1e-12), resumes bit for bit after SIGKILL, and predict/gradflow read its model."""
    torch_args = ["--backend", "torch", "--nproc", str(nproc)]
    full, killed, numpy_run = tmp_path / "full", tmp_path / "killed", tmp_path / "numpy"
    assert main(["train", *EVERY_OPTION, *torch_args, "--out", str(full)]) == 0, capsys.readouterr().err
    assert main(["train", *EVERY_OPTION, "--out", str(numpy_run)]) == 0
    assert sorted(os.listdir(full)) == sorted(os.listdir(numpy_run)) == FILES
    _assert_close(_params(full), _params(numpy_run))
    info_t, info_n = bio.load_model(full)[1], bio.load_model(numpy_run)[1]
    assert info_t["config"] == {**info_n["config"], "backend": "torch", "nproc": nproc}
    assert {k: v for k, v in info_t.items() if k != "config"} == {k: v for k, v in info_n.items() if k != "config"}

    if nproc == 1:  # the kill hook kills this very process: run it in its own
        r = _cli(["train", *EVERY_OPTION, *torch_args, "--out", str(killed)], env=crash_env("3"))
        assert r.returncode == -9, r.stderr[-2000:]
    else:  # it kills the ranks; the launcher says so
        for k, v in crash_env("3").items():  # the spawned ranks load tests/crash/sitecustomize.py
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        assert main(["train", *EVERY_OPTION, *torch_args, "--out", str(killed)]) == 2
        assert "died (signal SIGKILL)" in capsys.readouterr().err
        monkeypatch.delenv("BPTT_TEST_KILL_AFTER_EPOCH")
    assert not (killed / "model.npz").exists()
    _, meta = bio.load_arrays(killed / "checkpoint.npz", bio.CHECKPOINT_FORMAT)
    assert meta["state"]["epoch"] == 2  # SIGKILL after epoch 3; the last checkpoint is epoch 2's
    assert main(["train", "--resume", "--out", str(killed), "--no-progress"]) == 0
    for k, v in _params(killed).items():
        assert v.tobytes() == _params(full)[k].tobytes(), k
    mk, mf = (json.loads((d / "metrics.json").read_text()) for d in (killed, full))
    assert mk["history"] == mf["history"] and len(mf["history"]["val_loss"]) == 5 and mk["test"] == mf["test"]

    capsys.readouterr()
    assert main(["predict", "--model", str(full), "--x", "0.1,0.5,0.9", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["predictions"]) == 3
    assert main(["gradflow", "--model", str(full), "--out", str(tmp_path / "g.png"), "--json"]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0


@pytest.mark.slow
def test_torchrun_entry(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not installed")
    out = tmp_path / "run"
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "bptt", "train", "--backend", "torch", "--task", "adding", "--length", "8",
           "--n-train", "5", "--n-val", "2", "--n-test", "2", "--hidden", "4", "--lr", "0.05", "--epochs", "3",
           "--batch-size", "4", "--grad-checkpoint", "2", "--no-progress", "--out", str(out)]  # last batch: 1 sequence
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("bptt train") == 1  # rank 0 alone prints (and writes)
    assert sorted(os.listdir(out)) == FILES
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["max_rank_diff"] == 0.0 and metrics["config"]["nproc"] == 2
    cfg = tr.config_for("adding", {"length": 8, "n_train": 5, "n_val": 2, "n_test": 2}, hidden_size=4, lr=0.05, epochs=3,
                        batch_size=4, grad_checkpoint=2)
    one = tr.train(cfg)
    _assert_close(_params(out), one.model.params())
    assert metrics["history"]["val_loss"] == pytest.approx(one.history["val_loss"], rel=1e-12)


def test_ddp_module_is_below_the_command_line():
    """The launcher imports nothing of bptt.cli (torchrun runs `-m bptt train --backend torch`); the task's defaults
    still apply under --backend torch (sine: batches of 16)."""
    assert "bptt.cli" not in Path(ddp.__file__).read_text() and "from .cli" not in Path(ddp.__file__).read_text()
    args = build_parser().parse_args(["train", "--backend", "torch", "--task", "sine", "--length", "30", "--out", "x"])
    cfg = train_config_from_args(args)
    assert cfg == tr.config_for("sine", {"length": 30}, backend="torch")
    assert cfg.batch_size == 16 and cfg.chunk == 25


def test_errors(tmp_path, capsys):
    out = str(tmp_path / "o")
    for argv, match in [
        (["--optimizer", "lbfgs"], "optimizer 'lbfgs' is not supported; choose one of sgd, adam"),
        (["--nproc", "2"], "--nproc needs --backend torch"),
        (["--backend", "jax"], "backend 'jax' is not supported; choose one of numpy, torch"),
        (["--backend", "torch", "--nproc", "0"], "nproc must be an integer from 1 to 64"),
        (["--backend", "torch", "--truncate", "2", "--grad-checkpoint", "sqrt"], "cannot be combined with truncate"),
        (["--grad-checkpoint", "x"], "--grad-checkpoint must be 'sqrt' or a positive integer"),
    ]:
        assert main(["train", "--task", "sine", *argv, "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert match in err and "\n" not in err, err
        assert not (tmp_path / "o").exists()
    with pytest.raises(BPTTError, match="nproc 2 needs backend torch"):
        tr.config_for("sine", nproc=2)
    with pytest.raises(BPTTError, match="runs in a group of 1"):  # nproc 2 but no process group: refused, not run alone
        tr.train(tr.config_for("sine", {"length": 10, "n_train": 2, "n_val": 1, "n_test": 1}, backend="torch", nproc=2))
    with pytest.raises(BPTTError, match="bptt.ddp launches backend torch"):
        ddp.launch(tr.config_for("sine"))
