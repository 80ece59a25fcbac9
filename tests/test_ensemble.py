"""Ensembles (`bptt train --ensemble K`): K networks seeded 10 s + k, predictions averaged.

K = 1 is the single network bit for bit; K = 3 equals three networks trained by hand and averaged;
the sunspots ensemble equals examples/hf_results.py's ``sunspots_ensemble``; a run killed in the
middle of member 1 resumes to the uninterrupted run's bytes; predict/gradflow on an ensemble; bad
--ensemble values and damaged ensemble files are one line; --force removes the members' files only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bptt import BPTTError
from bptt import io as bio
from bptt import tasks
from bptt import train as tr
from bptt.cli import main
from bptt.model import Ensemble
from helpers import crash_env

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--task", "binary-addition", "--bits", "4", "--n-train", "40", "--n-val", "10", "--n-test", "10", "--hidden", "4",
         "--batch-size", "8", "--no-progress", "--plots", "none"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "bptt", *args], capture_output=True, text=True, env=e, timeout=300)


def _arrays(path: Path) -> dict[str, bytes]:
    arrays, _ = bio.load_arrays(path, bio.FORMAT)
    return {k: v.tobytes() for k, v in arrays.items()}


@pytest.fixture(scope="module")
def sun_run(tmp_path_factory):
    """A small sunspots ensemble of 2 (Adam, 2 epochs), with plots: the folder."""
    out = tmp_path_factory.mktemp("ens") / "sun"
    assert main(["train", "--task", "sunspots", "--window", "5", "--hidden", "3", "--epochs", "2", "--ensemble", "2",
                 "--seed", "4", "--no-progress", "--out", str(out)]) == 0
    return out


def test_ensemble_of_one_is_the_single_network_bit_for_bit(tmp_path):
    one, plain = tmp_path / "one", tmp_path / "plain"
    assert main(["train", *SMALL, "--epochs", "2", "--ensemble", "1", "--out", str(one)]) == 0
    assert main(["train", *SMALL, "--epochs", "2", "--out", str(plain)]) == 0
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in plain.iterdir()) == \
        [".bptt-run.json", "checkpoint.npz", "config.json", "metrics.json", "model.npz"]  # .bptt-run.json: what it wrote
    for name in ("checkpoint.npz", "config.json", "metrics.json", "model.npz"):
        assert (one / name).read_bytes() == (plain / name).read_bytes(), name
    assert "ensemble" not in json.loads((one / "config.json").read_text())  # the files of before ensembles
    m, _ = bio.load_model(one)
    assert not isinstance(m, Ensemble)


def test_ensemble_equals_members_trained_by_hand():
    """Member k: the same config with seed 10 s + k, on the ensemble's data (seed s); metrics of the mean."""
    opts = {"bits": 4, "n_train": 40, "n_val": 10, "n_test": 10}
    cfg = tr.config_for("binary-addition", opts, hidden_size=4, epochs=3, batch_size=8, seed=2, ensemble=3)
    res = tr.train(cfg)
    data = tasks.load("binary-addition", seed=2, **opts)
    by_hand = [tr.train(tr.config_for("binary-addition", opts, hidden_size=4, epochs=3, batch_size=8, seed=20 + k),
                        data=data) for k in range(3)]
    assert isinstance(res.model, Ensemble) and len(res.model) == 3 and len(res.members) == 3
    for mine, hand in zip(res.model.members, by_hand):
        assert {k: v.tobytes() for k, v in mine.params().items()} == {k: v.tobytes() for k, v in hand.model.params().items()}
    pred = np.mean([h.model.predict(data.test.x) for h in by_hand], axis=0)  # (T, N, 1): the members' mean
    want = tasks.get("binary-addition").metrics(data, pred)
    assert {k: res.metrics[k] for k in want} == want  # exact pairs of the thresholded mean
    assert res.metrics["test_mse_scaled"] == tasks.masked_mse(pred, data.test.y, None)
    assert res.metrics["member_seeds"] == [20, 21, 22] and res.metrics["ensemble"] == 3
    assert [m["best_epoch"] for m in res.metrics["members"]] == [h.metrics["best_epoch"] for h in by_hand]


def test_sunspots_ensemble_equals_hf_results_sunspots_ensemble(tmp_path, capsys):
    """One command gives examples/hf_results.py's ensemble numbers (here with 3 HF iterations, not 60)."""
    spec = importlib.util.spec_from_file_location("hf_results", ROOT / "examples" / "hf_results.py")
    hf_results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hf_results)
    val, test, _ = hf_results.sunspots_ensemble({**hf_results.SUN_HF, "epochs": 3}, {"window": 10}, 5, 1)
    out = tmp_path / "sun"
    capsys.readouterr()
    assert main(["train", "--task", "sunspots", "--window", "10", "--optimizer", "hf", "--epochs", "3",
                 "--hf-curvature-batch", "all", "--ensemble", "5", "--seed", "1", "--out", str(out), "--plots", "none",
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    got = printed["test"]
    assert got["test_mse"] == pytest.approx(test, rel=1e-12) and got["val_mse"] == pytest.approx(val, rel=1e-12)
    assert "member_seeds" in printed["in_metrics_json"]  # a list: in metrics.json, named in --json
    assert json.loads((out / "metrics.json").read_text())["test"]["member_seeds"] == [10, 11, 12, 13, 14]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["hf"]["curvature_batch"] is None and cfg["ensemble"] == 5
    assert main(["train", "--task", "sunspots", "--hf-curvature-batch", "most", "--out", str(tmp_path / "x")]) == 2
    assert "--hf-curvature-batch must be a positive integer or 'all', got 'most'" in _one_error_line(capsys)


def test_resume_after_sigkill_in_member_1_equals_uninterrupted_run(tmp_path):
    args = ["train", *SMALL, "--epochs", "7", "--checkpoint-every", "2", "--seed", "3", "--ensemble", "3"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    r = _cli([*args, "--out", str(full)])
    assert r.returncode == 0, r.stderr
    r = _cli([*args, "--out", str(killed)], env=crash_env("1:5"))  # member 1 dies after its epoch 5
    assert r.returncode == -9, r.stderr
    assert not (killed / "model.npz").exists()
    epochs = [bio.load_arrays(killed / "members" / str(k) / "checkpoint.npz", bio.CHECKPOINT_FORMAT)[1]["state"]["epoch"]
              for k in (0, 1)]
    assert epochs == [7, 4] and not (killed / "members" / "2").exists()
    r = _cli(["train", "--resume", "--out", str(killed)])
    assert r.returncode == 0, r.stderr
    assert "member 0/3" not in r.stdout  # finished: not retrained
    assert "member 1/3  epoch 5/7" in r.stdout and "member 1/3  epoch 4/7" not in r.stdout  # from its checkpoint
    assert _arrays(killed / "model.npz") == _arrays(full / "model.npz")
    mk, mf = (json.loads((d / "metrics.json").read_text()) for d in (killed, full))
    assert mk == mf


def test_predict_and_gradflow_on_an_ensemble(sun_run, tmp_path, capsys):
    ens, info = bio.load_model(sun_run)
    assert isinstance(ens, Ensemble) and len(ens.members) == 2 and info["config"]["ensemble"] == 2
    assert set(info) == {"task", "task_info", "scaling", "config"}
    assert {p.name for p in sun_run.iterdir()} == {"model.npz", "metrics.json", "config.json", "members", "loss.png",
                                                   "predictions.png", "gradflow.png", ".bptt-run.json"}
    capsys.readouterr()
    assert main(["predict", "--model", str(sun_run), "--x", "10,40,90,150,120,80", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    sc = tasks.Scaling(**info["scaling"])
    x = sc.to_unit(np.array([10, 40, 90, 150, 120, 80.0])[:, None])  # (6, 1)
    mean = np.mean([m.predict(x) for m in ens.members], axis=0)  # (6, 1)
    assert got["ensemble"] == 2 and np.allclose(got["predictions"], sc.from_unit(mean), rtol=1e-12, atol=0)
    assert main(["predict", "--model", str(sun_run)]) == 0
    assert capsys.readouterr().out.startswith("ensemble of 2 networks")
    # gradflow: member 0's map, said in one line
    single = tmp_path / "member0.npz"
    bio.save_model(single, ens.members[0], info)
    assert main(["gradflow", "--model", str(sun_run), "--out", str(tmp_path / "e.png"), "--json"]) == 0
    cap = capsys.readouterr()
    flow = json.loads(cap.out)
    assert cap.err.strip() == "ensemble of 2 networks: the gradient flow of member 0"
    assert main(["gradflow", "--model", str(single), "--out", str(tmp_path / "s.png"), "--json"]) == 0
    assert flow["decay"] == json.loads(capsys.readouterr().out)["decay"] and (flow["ensemble"], flow["member"]) == (2, 0)
    assert main(["gradflow", "--model", str(sun_run), "--out", str(tmp_path / "t.png")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "ensemble of 2 networks: the gradient flow of member 0"


@pytest.mark.parametrize("value, match", [
    ("0", "ensemble must be an integer from 1 to 64 (networks whose predictions are averaged), got 0"),
    ("-3", "got -3"), ("1000", "got 1000; give --ensemble K with 1 <= K <= 64"),
    ("1.5", "--ensemble must be an integer from 1 to 64 (networks averaged), got '1.5'"), ("abc", "got 'abc'"),
])
def test_bad_ensemble_is_one_line_and_nothing_written(tmp_path, capsys, value, match):
    out = tmp_path / "out"
    assert main(["train", *SMALL, "--ensemble", value, "--out", str(out)]) == 2
    assert match in _one_error_line(capsys)
    assert not out.exists()


def test_ensemble_is_not_data_parallel_and_seeds_stay_in_range(tmp_path, capsys):
    assert main(["train", *SMALL, "--ensemble", "2", "--backend", "torch", "--nproc", "2", "--out", str(tmp_path / "o")]) == 2
    assert "ensemble 2 with nproc 2 is not supported" in _one_error_line(capsys)
    with pytest.raises(BPTTError, match="ensemble must be an integer from 1 to 64"):
        tr.config_for("adding", ensemble=True)
    with pytest.raises(BPTTError, match="the members' seeds 10 seed \\+ k exceed"):
        tr.config_for("adding", ensemble=2, seed=2**63 - 1)


def _rewrite(src: Path, dst: Path, change) -> None:
    arrays, meta = bio.load_arrays(src, bio.FORMAT)
    change(arrays, meta)
    bio.save_arrays(dst, arrays, meta)


@pytest.mark.parametrize("damage, match", [
    (lambda a, m: m.update(ensemble=3), "says ensemble 3 but holds w of shape (2, 1, 3)"),
    (lambda a, m: a.update(w_h=a["w_h"][:, :2]), "model file is inconsistent"),
    (lambda a, m: m.update(ensemble="two"), "model file field ensemble must be an integer in [1, 64]"),
    (lambda a, m: a.update(b1=a["b1"][0]), "says ensemble 2 but holds b1 of shape (3,)"),
])
def test_damaged_ensemble_file_is_one_line(sun_run, tmp_path, capsys, damage, match):
    bad = tmp_path / "bad.npz"
    _rewrite(sun_run / "model.npz", bad, damage)
    with pytest.raises(BPTTError, match="re-train or re-save it") as e:
        bio.load_model(bad)
    assert match in str(e.value) and "\n" not in str(e.value)
    assert main(["predict", "--model", str(bad)]) == 2
    assert match in _one_error_line(capsys)


def test_force_removes_the_members_files_and_nothing_else(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--ensemble", "2", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    (out / "members" / "mine.txt").write_text("mine too")
    (out / "members" / "1" / "log.txt").write_text("and this")
    assert main(["train", *SMALL, "--epochs", "1", "--force", "--out", str(out)]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [  # .bptt-run.json: what the run wrote
        ".bptt-run.json", "checkpoint.npz", "config.json", "members", "members/1", "members/1/log.txt", "members/mine.txt",
        "metrics.json", "model.npz", "notes.txt"]
    assert sorted(bio.read_manifest(out)["files"]) == ["checkpoint.npz", "config.json", "metrics.json", "model.npz"]
    assert main(["train", *SMALL, "--epochs", "1", "--ensemble", "2", "--force", "--out", str(out)]) == 0
    assert main(["train", *SMALL, "--epochs", "1", "--force", "--out", str(out)]) == 0
    (out / "members" / "mine.txt").unlink()
    (out / "members" / "1" / "log.txt").unlink()
    assert main(["train", *SMALL, "--epochs", "1", "--ensemble", "2", "--force", "--out", str(out)]) == 0
    assert main(["train", *SMALL, "--epochs", "1", "--force", "--out", str(out)]) == 0
    assert not (out / "members").exists()  # emptied of the run's files: gone
