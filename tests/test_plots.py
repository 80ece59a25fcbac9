"""Plots: valid PNGs of the expected size, written atomically, without touching matplotlib's global backend."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from bptt import RNN, plots, tasks

PNG = b"\x89PNG\r\n\x1a\n"


def _image(path):
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG
    return mpimg.imread(path)  # (rows, cols, 4)


def test_loss_curves(tmp_path):
    p = plots.loss_curves({"train_loss": [1.0, 0.5, 0.2], "val_loss": [1.1, 0.6, 0.3]}, tmp_path / "loss.png")
    img = _image(p)
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert img[..., :3].std() > 0.05  # not a blank canvas
    plots.loss_curves({"train_loss": [0.3], "val_loss": []}, tmp_path / "one.png")  # one epoch, no validation
    assert sorted(os.listdir(tmp_path)) == ["loss.png", "one.png"]  # no temporary files left


def test_gradient_flow_maps_side_by_side_with_nan(tmp_path):
    G = np.tril(np.exp(-np.subtract.outer(np.arange(6), np.arange(6)).clip(0))).astype(float)
    G[G == 0] = np.nan
    H = G.copy()
    H[:3] = np.nan  # unscored rows stay blank
    p = plots.gradient_flow_maps({"sigmoid": G, "tanh": H}, tmp_path / "g.png")
    one = plots.gradient_flow_maps({"sigmoid": G}, tmp_path / "g1.png")
    wide, narrow = _image(p), _image(one)
    assert wide.shape[1] > 1.5 * narrow.shape[1]  # two panels are wider than one


SMALL = {
    "binary-addition": {"bits": 4, "n_train": 10, "n_val": 5, "n_test": 20},
    "sine": {"length": 20, "n_train": 2, "n_val": 2, "n_test": 2},
    "adding": {"length": 10, "n_train": 5, "n_val": 5, "n_test": 30},
}


@pytest.mark.parametrize("task", list(tasks.TASKS))
def test_predictions_plot_each_task(tmp_path, task):
    opts = dict(SMALL.get(task, {}))  # a task not listed here is drawn with its defaults
    if task == "csv":
        f = tmp_path / "s.csv"
        f.write_text("v\n" + "".join(f"{float(np.sin(0.4 * i)) + 0.02 * i!r}\n" for i in range(60)))
        opts = {"path": str(f), "column": "v", "window": 5}
    d = tasks.load(task, **opts)
    m = RNN(d.input_size, 3, d.output_size, seed=0)
    metrics = tasks.metrics(d, m)
    p = plots.predictions(d, m, metrics, tmp_path / "pred.png")
    assert _image(p).shape[1] > 300


def test_predictions_plot_draws_the_records_view(tmp_path, monkeypatch):
    """plots.predictions draws what the task's view returns: its curves, axis labels and y = x line."""
    d = tasks.load("adding", length=6, n_train=5, n_val=5, n_test=5)
    m = RNN(d.input_size, 2, d.output_size, seed=0)
    seen = []

    def view(data, model, metrics):
        seen.append((data.name, metrics))
        return tasks.PredictionView((tasks.Curve(np.arange(3.0), np.ones(3), "r-", "flat"),), "when", "how much", True)

    monkeypatch.setitem(tasks.TASKS, "adding", dataclasses.replace(tasks.get("adding"), view=view))
    p = plots.predictions(d, m, {"k": 1.0}, tmp_path / "a.png")
    assert seen == [("adding", {"k": 1.0})] and _image(p)[..., :3].std() > 0.05


def test_backend_untouched(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    plots.loss_curves({"train_loss": [1.0, 0.5]}, tmp_path / "l.png")
    assert matplotlib.get_backend() == before
