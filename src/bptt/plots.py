"""PNG plots with matplotlib's Agg canvas (no display, no global backend switch).

loss_curves          train and validation loss per epoch (log scale)
predictions          test predictions against targets (what the task's record says to show)
gradient_flow_maps   ‖∂E_t/∂h_k‖ over (t, k), one panel per map, side by side (log colour scale)

matplotlib is imported inside each function: ``import bptt`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import io as bio
from . import tasks


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    import io

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    bio.atomic_write_bytes(path, buf.getvalue())
    return path


def loss_curves(history: dict[str, list[float]], path: str | Path, title: str = "loss per epoch") -> Path:
    """history {"train_loss": [...], "val_loss": [...]} -> PNG."""
    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot()
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        v = np.asarray(history.get(key, []), dtype=float)
        if v.size:
            ax.plot(np.arange(1, v.size + 1), v, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Loss = mean of 1/2 (y - y')²")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def predictions(data, model, metrics: dict[str, Any], path: str | Path) -> Path:
    """Test predictions against targets, as the task's record says (``tasks.prediction_view``)."""
    view = tasks.prediction_view(data, model, metrics)
    fig = _figure(7.0, 4.2)
    ax = fig.add_subplot()
    for c in view.curves:
        ax.plot(c.x, c.y, c.style, ms=c.marker_size, label=c.label)
    if view.diagonal:
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel(view.x_label)
    ax.set_ylabel(view.y_label)
    if any(c.label for c in view.curves):
        ax.legend(fontsize=8)
    ax.set_title(f"{data.name}: test set")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def gradient_flow_maps(maps: dict[str, np.ndarray], path: str | Path, title: str = "‖∂E_t/∂h_k‖") -> Path:
    """Heat maps of G[t, k] = ‖∂E_t/∂h_k‖ (T, T), side by side, on one shared log10 colour scale.

    NaN cells (k > t, unscored rows) stay blank.
    """
    from matplotlib.colors import LogNorm

    vals = np.concatenate([m[np.isfinite(m) & (m > 0)] for m in maps.values()] or [np.array([1.0])])
    if vals.size == 0:
        vals = np.array([1e-12, 1.0])
    vmax = float(vals.max())
    vmin = max(float(vals.min()), vmax * 1e-16)
    fig = _figure(5.0 * len(maps) + 1.2, 4.6)
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    im = None
    for ax, (label, G) in zip(axes, maps.items()):
        Gm = np.where(np.isfinite(G) & (G > 0), G, np.nan)
        T = G.shape[0]
        im = ax.imshow(Gm, origin="lower", norm=LogNorm(vmin=vmin, vmax=vmax), cmap="viridis",
                       extent=(0.5, T + 0.5, 0.5, T + 0.5), interpolation="nearest")
        ax.set_xlabel("k (hidden state h_k)")
        ax.set_ylabel("t (error term E_t)")
        ax.set_title(label)
    fig.suptitle(title)
    fig.colorbar(im, ax=list(axes), label="‖∂E_t/∂h_k‖ (log scale)")
    return _save(fig, path)
