"""Data-parallel training (bptt.ddp): 2 processes, gloo over 127.0.0.1, against one process and numpy."""

from __future__ import annotations

import json
import math
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
from bptt import ddp  # noqa: E402
from bptt import io as bio  # noqa: E402

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="torch without gloo")


def data(seed=0, T=6, N=7, D=2, O=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, N, D))
    y = rng.uniform(size=(T, N, O))
    mask = rng.uniform(size=(T, N)) < 0.6
    mask[-1] = True  # every sequence scores its last step
    return x, y, mask


def numpy_reference(x, y, mask, cfg: ddp.DDPConfig):
    """The same run with the numpy engine and SGD written out here: no torch anywhere."""
    T, N, D = x.shape
    m = bptt.RNN(D, cfg.hidden_size, y.shape[2], cfg.hidden_activation, cfg.output_activation, seed=cfg.seed)
    p = m.params()
    v = {k: np.zeros_like(a) for k, a in p.items()}
    bs = cfg.batch_size or N
    losses = []
    for epoch in range(1, cfg.epochs + 1):
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(N) if bs < N else np.arange(N)
        for lo in range(0, N, bs):
            idx = perm[lo : lo + bs]
            xb, yb, mb = x[:, idx], y[:, idx], mask[:, idx]
            n = int(mb.sum())
            y_eff = np.where(mb[..., None], yb, m.predict(xb))  # unscored steps: zero error
            loss, g = m.loss_and_grad(xb, y_eff, reduction="sum")
            g = {k: a / n for k, a in g.items()}
            losses.append(loss / n)
            norm = math.sqrt(sum(float(np.sum(a * a)) for a in g.values()))
            if cfg.clip is not None and norm > cfg.clip:
                g = {k: a * cfg.clip / (norm + 1e-12) for k, a in g.items()}
            for k in p:  # torch.optim.SGD: v = momentum v + g; p -= lr v
                v[k] = cfg.momentum * v[k] + g[k]
                p[k] = p[k] - cfg.lr * v[k]
            m.set_params(**p)
    return p, losses


CFG = ddp.DDPConfig(hidden_size=3, hidden_activation="tanh", optimizer="sgd", lr=0.3, momentum=0.5,
                    clip=0.5, epochs=3, batch_size=5, seed=3)


def test_two_processes_equal_one_process_and_numpy():
    x, y, mask = data()
    two = ddp.train(x, y, mask, CFG, nproc=2)  # batches of 5 and 2 sequences: shares 3+2 and 1+1
    assert two.nproc == 2 and len(two.rank_params) == 2
    for k in bptt.PARAM_NAMES:  # both replicas end bit-for-bit identical
        np.testing.assert_array_equal(two.rank_params[0][k], two.rank_params[1][k])
    assert two.max_rank_diff == 0.0
    one = ddp.train(x, y, mask, CFG, nproc=1)
    ref, ref_losses = numpy_reference(x, y, mask, CFG)
    assert len(two.losses) == len(one.losses) == len(ref_losses) == 6
    np.testing.assert_allclose(two.losses, one.losses, rtol=1e-12)
    np.testing.assert_allclose(two.losses, ref_losses, rtol=1e-10)
    start = bptt.RNN(2, 3, 1, "tanh", seed=3).params()
    for k in bptt.PARAM_NAMES:
        np.testing.assert_allclose(two.params[k], one.params[k], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(two.params[k], ref[k], rtol=1e-10, atol=1e-12)
        assert np.abs(two.params[k] - start[k]).max() > 1e-3  # it did train


def test_torchrun_entry(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not installed")
    x, y, mask = data(seed=1, N=6)
    np.savez(tmp_path / "d.npz", x=x, y=y, mask=mask)
    out = tmp_path / "run"
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "bptt.ddp", "--data", str(tmp_path / "d.npz"),
           "--out", str(out), "--hidden", "4", "--optimizer", "adam", "--lr", "0.05", "--epochs", "4",
           "--batch-size", "5", "--checkpoint", "2"]  # last batch: 1 sequence, rank 1 idle
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["nproc"] == 2 and metrics["max_rank_diff"] == 0.0
    model, info = bio.load_model(out)
    cfg = ddp.DDPConfig(hidden_size=4, optimizer="adam", lr=0.05, epochs=4, batch_size=5, checkpoint=2)
    one = ddp.train(x, y, mask, cfg, nproc=1)
    np.testing.assert_allclose(metrics["losses"], one.losses, rtol=1e-12)
    for k in bptt.PARAM_NAMES:
        np.testing.assert_allclose(model.params()[k], one.params[k], rtol=1e-11, atol=1e-12)
    assert info["backend"] == "torch" and info["nproc"] == 2


def test_cli_errors(tmp_path, capsys):
    assert ddp.main(["--out", str(tmp_path / "o")]) == 2
    assert "exactly one of --task" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("keep me")
    assert ddp.main(["--task", "sine", "--out", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "full" / "f").read_text() == "keep me"
    assert ddp.main(["--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert ddp.main(["--task", "sine", "--out", str(tmp_path / "o"), "--optimizer", "lbfgs"]) == 2
    assert "optimizer" in capsys.readouterr().err
    with pytest.raises(bptt.BPTTError, match="nproc"):
        ddp.train(*data(), nproc=0)


def test_bptt_train_backend_torch(tmp_path, capsys):
    from bptt import cli
    from bptt import tasks

    out = tmp_path / "run"
    argv = ["train", "--task", "binary-addition", "--bits", "4", "--n-train", "12", "--n-val", "4", "--n-test", "4",
            "--backend", "torch", "--nproc", "1", "--epochs", "2", "--batch-size", "5", "--hidden", "3",
            "--optimizer", "sgd", "--lr", "0.5", "--out", str(out)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    model, info = bio.load_model(out)
    assert info["task"] == "binary-addition" and info["backend"] == "torch"
    d = tasks.load("binary-addition", seed=0, bits=4, n_train=12, n_val=4, n_test=4)
    # bptt train's defaults for the rest: clip 1, seed 0
    cfg = ddp.DDPConfig(hidden_size=3, optimizer="sgd", lr=0.5, epochs=2, batch_size=5, clip=1.0)
    ref, _ = numpy_reference(d.train.x, d.train.y, np.ones(d.train.x.shape[:2], bool), cfg)
    for k in bptt.PARAM_NAMES:
        np.testing.assert_allclose(model.params()[k], ref[k], rtol=1e-10, atol=1e-12)
    assert cli.main(argv) == 2  # the folder is not empty now
    assert "not empty" in capsys.readouterr().err
    assert cli.main(argv[:-2] + ["--chunk", "2", "--out", str(tmp_path / "x")]) == 2
    assert "--chunk is not supported" in capsys.readouterr().err
    assert cli.main(["train", "--task", "sine", "--nproc", "2", "--out", str(tmp_path / "y")]) == 2
    assert "--nproc needs --backend torch" in capsys.readouterr().err
