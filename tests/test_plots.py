"""Plots: valid PNGs of the expected size, written atomically, without touching matplotlib's global backend."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bptt import RNN, plots
from bptt import tasks as T

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


@pytest.mark.parametrize("task", ["binary-addition", "sine", "adding", "sunspots"])
def test_predictions_plot_each_task(tmp_path, task):
    opts = {
        "binary-addition": {"bits": 4, "n_train": 10, "n_val": 5, "n_test": 20},
        "sine": {"length": 20, "n_train": 2, "n_val": 2, "n_test": 2},
        "adding": {"length": 10, "n_train": 5, "n_val": 5, "n_test": 30},
        "sunspots": {},
    }[task]
    d = T.load(task, **opts)
    m = RNN(d.input_size, 3, d.output_size, seed=0)
    metrics = T.metrics(d, m)
    p = plots.predictions(d, m, metrics, tmp_path / "pred.png")
    assert _image(p).shape[1] > 300


def test_backend_untouched(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    plots.loss_curves({"train_loss": [1.0, 0.5]}, tmp_path / "l.png")
    assert matplotlib.get_backend() == before
