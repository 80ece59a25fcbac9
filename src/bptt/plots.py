"""Plots with matplotlib's Agg canvas (no display, no global backend switch), as PNG, SVG or PDF.

loss_curves          train and validation loss per epoch (log scale), the kept epoch marked
member_loss_curves   the same for every member of an ensemble, on one plot
predictions          test predictions against targets (what the task's record says to show; a view of
                     sums bit by bit: wrong bits by position, with or without a carry in, and a few sums)
gradient_flow_maps   gradient-flow maps (``gradflow.FlowMap``), one panel per map, side by side
race_curves          a value over time for several methods and seeds: a colour per seed, a line style per method
write_run_plots      the three plots of a training run, in one format (what `bptt train --plots` writes)

Every function writes the format its path's ending names (``FORMATS``), atomically, and refuses
any other ending before drawing.  matplotlib is imported inside the functions: ``import bptt``
stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import gradflow
from . import io as bio
from . import tasks
from .validation import check_choice

FORMATS = ("png", "svg", "pdf")
RUN_PLOTS = FORMATS + ("none",)  # `bptt train --plots`: a format, or no plots
_METADATA = {"png": None, "svg": {"Date": None}, "pdf": {"CreationDate": None}}  # no dates: same run, same bytes
_LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0, "fontsize": 8}


def plot_format(path: str | Path) -> str:
    """The format a plot file's ending names: png, svg or pdf (anything else: one-line BPTTError)."""
    p = Path(path)
    return check_choice(f"{p.name}: plot format", p.suffix.lower().lstrip("."), FORMATS)


def _figure(width: float, height: float, dpi: int = 110):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    import io

    import matplotlib

    path = Path(path)
    fmt = plot_format(path)
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "bptt"}):  # fixed SVG ids (restored after): same plot, same bytes
        fig.savefig(buf, format=fmt, bbox_inches="tight", pad_inches=0.05, metadata=_METADATA[fmt])
    bio.atomic_write_bytes(path, buf.getvalue())
    return path


def loss_curves(history: dict[str, list[float]], path: str | Path, title: str = "loss per epoch",
                scaled: bool = False, best_epoch: int | None = None) -> Path:
    """history {"train_loss": [...], "val_loss": [...]} -> a plot at ``path`` (png, svg or pdf).

    scaled: the targets were scaled to [0, 1] (series tasks), so the loss is in those units.
    best_epoch: the epoch whose model was kept (lowest validation loss), marked with a dotted line.
    """
    plot_format(path)
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        v = np.asarray(history.get(key, []), dtype=float)  # (epochs,)
        if v.size:
            ax.plot(np.arange(1, v.size + 1), v, "-" if v.size > 1 else "o", label=label)
    if best_epoch:
        ax.axvline(best_epoch, color="0.4", ls=":", lw=1, label=f"kept: epoch {best_epoch}")
    return _save_loss_axes(fig, ax, path, "epoch", title, scaled)


def member_loss_curves(histories: list[dict[str, list[float]]], path: str | Path, title: str = "loss per epoch",
                       scaled: bool = False, best_epochs: list[int] | None = None) -> Path:
    """An ensemble's members' losses: one colour per member, train solid, validation dashed, kept epoch dotted."""
    plot_format(path)
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    labelled = len(histories) <= 10  # a legend entry per member while the legend stays readable
    for k, history in enumerate(histories):
        colour = f"C{k % 10}"
        for key, style, what in (("train_loss", "-", "train"), ("val_loss", "--", "validation")):
            v = np.asarray(history.get(key, []), dtype=float)  # (epochs,)
            if v.size:
                label = f"member {k} {what}" if labelled else (what if k == 0 else None)
                ax.plot(np.arange(1, v.size + 1), v, style if v.size > 1 else "o", color=colour, lw=1, label=label)
        if best_epochs and best_epochs[k]:
            ax.axvline(best_epochs[k], color=colour, ls=":", lw=0.8)
    return _save_loss_axes(fig, ax, path, "epoch (dotted: each member's kept epoch)", title, scaled)


def _save_loss_axes(fig, ax, path: str | Path, x_label: str, title: str, scaled: bool) -> Path:
    """The loss plots' axes (log loss over whole epochs, units named, legend outside), then the file."""
    from matplotlib.ticker import MaxNLocator

    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(x_label)
    units = "targets scaled to [0, 1]" if scaled else "targets in the task's own units"
    ax.set_ylabel(f"loss = mean of ½ (y − y')²\n({units})")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(**_LEGEND_OUTSIDE)
    return _save(fig, path)


def predictions(data, model, metrics: dict[str, Any], path: str | Path) -> Path:
    """Test predictions against targets, as the task's record says (``tasks.prediction_view``); an
    ensemble's (``bptt.model.Ensemble``) are its members' mean, and the title says so."""
    plot_format(path)
    view = tasks.prediction_view(data, model, metrics)
    table = getattr(view, "bits", None)  # a view of sums bit by bit (binary addition): drawn as bits, not curves
    if table is not None:
        return _bit_predictions(view, table, model, path)
    fig = _figure(8.0, 4.2)
    ax = fig.add_subplot()
    for c in view.curves:
        ax.plot(c.x, c.y, c.style, ms=c.marker_size, label=c.label)
    if view.diagonal:
        lo, hi = _span(view.curves)
        pad = 0.04 * (hi - lo or 1.0)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="prediction = target")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    if view.integer_x:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(view.x_label)
    ax.set_ylabel(view.y_label)
    if any(c.label for c in view.curves):
        ax.legend(**_LEGEND_OUTSIDE)
    members = getattr(model, "members", None)
    ensemble = "" if members is None else f"\nmean prediction of an ensemble of {len(members)} networks"
    ax.set_title((view.title or f"{data.name}: test set") + ensemble)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


_SHOWN_SUMS = 3  # test sums drawn bit by bit: wrong ones first, then the longest carry chains


def _bit_predictions(view, table, model, path: str | Path) -> Path:
    """Sums bit by bit (``table``: a, b, carry, target, output, each (T, N), least significant first; the
    output from 0 to 1, its bit above 0.5).  Left, the share of wrong output bits at each position
    (1 = least significant) among pairs with a carry coming in and without; right, a few sums, wrong
    ones first, then the longest carry chains: operands, carries, true sum and the network's bits
    (shaded by its output, red where wrong)."""
    bits = {k: np.asarray(getattr(table, k)) for k in ("a", "b", "carry", "target", "output")}  # (T, N) each
    bits["network"] = (bits["output"] > 0.5).astype(np.int64)
    bits["carry"] = bits["carry"].astype(bool)
    T, N = bits["target"].shape
    fig = _figure(12.0, 4.6)
    left, right = fig.subplots(1, 2, width_ratios=(1.0, 1.25))
    pos = np.arange(1, T + 1)  # 1-based bit positions, least significant first
    wrong = bits["network"] != bits["target"]  # (T, N)
    top = 0.0
    for shift, has, colour, what in ((-0.2, True, "C3", "carry in"), (0.2, False, "C0", "no carry in")):
        sel = bits["carry"] == has  # (T, N)
        n = sel.sum(axis=1)  # (T,)
        rate = (wrong & sel).sum(axis=1) / np.maximum(n, 1)  # (T,): 0 where no pair has this case
        top = max(top, float(rate.max()))
        left.bar(pos + shift, rate, 0.38, color=colour, label=f"{what} (pairs at a position: {int(n.min())}–{int(n.max())})")
    exact = int((~wrong).all(axis=0).sum())
    left.set_xticks(pos)
    left.set_xlabel("bit position (1 = least significant)")
    left.set_ylabel("share of test pairs with this output bit wrong")
    left.set_ylim(0, min(1.05, max(0.05, 1.2 * top)))
    if not wrong.any():
        left.text(0.5, 0.5, f"no wrong bit in {N} test sums", transform=left.transAxes, ha="center", va="center")
    left.legend(fontsize=8, loc="upper left")
    left.set_title(f"wrong bits by position: {exact} of {N} sums exact", fontsize=10)
    left.grid(True, axis="y", alpha=0.3)
    _carry_chains(right, bits)
    members = getattr(model, "members", None)
    ensemble = "" if members is None else f"\nmean output of an ensemble of {len(members)} networks"
    fig.suptitle((view.title or "test set") + ensemble)
    return _save(fig, path)


def _longest_run(flags: np.ndarray) -> int:
    """The longest run of True in a 1-D boolean array."""
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def _carry_chains(ax, bits: dict[str, np.ndarray]) -> None:
    """A few sums as rows of bits, most significant left as written: a, b, carry in, a + b, the network's
    bits on its output's shade (0 white, 1 dark), red where a bit is wrong; the longest carry chains first,
    wrong sums before right ones."""
    from matplotlib.colors import ListedColormap

    T, N = bits["target"].shape
    wrong = (bits["network"] != bits["target"]).any(axis=0)  # (N,)
    chain = np.array([_longest_run(bits["carry"][:, i]) for i in range(N)])  # (N,)
    order = np.lexsort((np.arange(N), -chain, ~wrong))[:_SHOWN_SUMS]  # wrong first, then the longest chains
    rows, labels, kinds = [], [], []
    for k, i in enumerate(order):
        ints = {key: int((bits[key][:, i] << np.arange(T)).sum()) for key in ("a", "b", "target", "network")}
        ok = "right" if ints["network"] == ints["target"] else "WRONG"
        for key, label in (("a", f"a = {ints['a']}"), ("b", f"b = {ints['b']}"), ("carry", "carry in"),
                           ("target", f"a + b = {ints['target']}"), ("output", f"network: {ints['network']} ({ok})")):
            rows.append(bits[key][::-1, i].astype(float))  # (T,): most significant first
            labels.append(label)
            kinds.append((key, i))
        if k < len(order) - 1:
            rows.append(np.full(T, np.nan))
            labels.append("")
            kinds.append(None)
    V = np.array(rows)  # (rows, T)
    grey = ListedColormap([(1 - 0.4 * v,) * 3 for v in np.linspace(0, 1, 64)]).with_extremes(bad="white")
    ax.imshow(V, cmap=grey, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    for r, kind in enumerate(kinds):
        if kind is None:
            continue
        key, i = kind
        col = bits["network" if key == "output" else key][::-1, i]  # (T,)
        bad = (bits["network"][::-1, i] != bits["target"][::-1, i]) if key == "output" else np.zeros(T, bool)
        for c in range(T):
            ax.text(c, r, str(int(col[c])), ha="center", va="center", fontsize=8,
                    color="C3" if bad[c] else "black", fontweight="bold" if bad[c] else "normal")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xticks(range(T), [str(T - c) for c in range(T)], fontsize=8)
    ax.set_xlabel("bit position (most significant left, as written)")
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(f"{len(order)} test sums bit by bit: wrong ones first, then the longest carry chains\n"
                 "(shade: the bit, or the network's output from 0 to 1)", fontsize=10)


def _span(curves) -> tuple[float, float]:
    """The smallest and largest x or y value over the curves (the y = x line's ends)."""
    v = np.concatenate([np.concatenate([np.ravel(c.x), np.ravel(c.y)]) for c in curves]).astype(float)  # (m,)
    v = v[np.isfinite(v)]
    return (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)


def gradient_flow_maps(maps: dict[str, Any], path: str | Path, title: str = "gradient flow",
                       caption: str = "") -> Path:
    """Heat maps of gradient-flow maps, side by side, on one shared log10 colour scale.

    maps: label -> ``gradflow.FlowMap`` (normalised or raw, over its chosen steps), or a full raw
    (T, T) array of ‖∂E_t/∂h_k‖ as ``gradflow.gradient_flow`` returns.  NaN cells (k > t,
    unscored rows) stay blank.  Axes are 1-based steps with integer ticks; the title names
    which steps are shown when a long sequence's map is sub-sampled.  Normalised maps carry a
    caption saying what the ratio is, marking 1 and naming the panels where it exceeds 1;
    ``caption`` adds a line of the caller's (what the panels are).
    """
    plot_format(path)
    fmaps = {label: _as_flow_map(m) for label, m in maps.items()}
    first = next(iter(fmaps.values()))
    vmin, vmax = _colour_range([m.values for m in fmaps.values()], first.normalised)
    fig = _figure(4.3 * len(fmaps) + 1.4, 4.4)
    axes = fig.subplots(1, len(fmaps), squeeze=False, sharey=True)[0]
    what = "‖∂E_t/∂h_k‖ / ‖∂E_t/∂h_t‖" if first.normalised else "‖∂E_t/∂h_k‖"
    shown = "" if len(first.steps) == first.length else f"\n{first.describe()}"
    fig.suptitle(title + shown)
    as_lines = max(_scored_rows(m).size for m in fmaps.values()) <= _MAX_LINE_ROWS
    said = [_ratio_caption(fmaps, "the dotted line" if as_lines else "the black line on the colour bar")] if first.normalised else []
    if said or caption:
        import textwrap

        width = int(13 * fig.get_figwidth())  # characters of 8.5 pt across the figure
        text = "\n".join(textwrap.fill(line, width) for part in said + [caption] if part for line in part.split("\n"))
        fig.text(0.5, 0.0, text, ha="center", va="top", fontsize=8.5)
    if as_lines:
        for ax, (label, fm) in zip(axes, fmaps.items()):
            _flow_lines(ax, fm, label, vmin, vmax)
            if fm.normalised:
                ax.axhline(1.0, color="0.3", ls=":", lw=0.9)
        axes[0].set_ylabel(f"{what} (log scale)")
        return _save(fig, path)
    im = None
    for ax, (label, fm) in zip(axes, fmaps.items()):
        im = _flow_panel(ax, fm, label, vmin, vmax)
    axes[0].set_ylabel("t (error term E_t)")
    bar = fig.colorbar(im, ax=list(axes), label=f"{what} (log scale)", extend="min", shrink=0.9)
    if first.normalised:  # the diagonal's level (the top when nothing exceeds it): above it the gradient grew
        bar.ax.axhline(1.0, color="white", lw=2.0)
        bar.ax.axhline(1.0, color="black", lw=0.8)
    return _save(fig, path)


def _ratio_caption(fmaps: dict[str, gradflow.FlowMap], one: str) -> str:
    """What a normalised map's value is, where 1 is drawn (``one``), and which panels exceed 1, by how much."""
    over = []
    for label, fm in fmaps.items():
        v = fm.values[np.isfinite(fm.values)]  # (m,)
        if v.size and v.max() > 1.0:
            over.append(f"{label}: up to {v.max():.3g}")
    said = ("‖∂E_t/∂h_k‖ / ‖∂E_t/∂h_t‖: the size of E_t's gradient at h_k relative to where it enters, at h_t "
            f"(1, {one}); below 1 it shrank going back from t to k, above 1 it grew.")
    return said + ("\nAbove 1: " + "; ".join(over) + "." if over else "")


_MAX_LINE_ROWS = 3  # a map with this few scored rows (the adding problem: one) is drawn as lines over k


def _scored_rows(fm: gradflow.FlowMap) -> np.ndarray:
    """Indices of the map's rows with any finite cell."""
    return np.flatnonzero(np.isfinite(fm.values).any(axis=1))  # (rows,)


def _flow_lines(ax, fm: gradflow.FlowMap, label: str, vmin: float, vmax: float) -> None:
    """The scored rows of a sparse map as lines of the value against k (log y): one line per E_t."""
    from matplotlib.ticker import MaxNLocator

    for i in _scored_rows(fm):
        k = fm.steps[: i + 1] + 1  # (i+1,): 1-based steps k <= t
        v = np.clip(fm.values[i, : i + 1], vmin, None)  # (i+1,)
        ax.plot(k, v, "-o", ms=2.5, label=f"E_t, t = {fm.steps[i] + 1}")
    ax.set_yscale("log")
    ax.set_ylim(vmin, vmax * 1.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    ax.set_xlabel("k (hidden state h_k)")
    ax.set_title(label, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def _as_flow_map(m: Any) -> gradflow.FlowMap:
    """A FlowMap as is; a full (T, T) raw array as the FlowMap of all its steps."""
    if isinstance(m, gradflow.FlowMap):
        return m
    G = np.asarray(m, dtype=float)  # (T, T)
    return gradflow.FlowMap(G, np.arange(G.shape[0]), G.shape[0], False, gradflow.decay_summary(G))


def _colour_range(values: list[np.ndarray], normalised: bool) -> tuple[float, float]:
    """(vmin, vmax) of the positive finite cells; at most 16 decades (normalised: the top is 1, the diagonal)."""
    vals = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in values])  # (m,)
    if vals.size == 0:
        return 1e-16, 1.0
    vmax = max(float(vals.max()), 1.0) if normalised else float(vals.max())
    return max(float(vals.min()), vmax * 1e-16), vmax


def _flow_panel(ax, fm: gradflow.FlowMap, label: str, vmin: float, vmax: float):
    """One map on ``ax``: cell (t, k) at 1-based steps, integer ticks; returns the image (for the colour bar)."""
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import MaxNLocator

    V = np.where(np.isfinite(fm.values) & (fm.values > 0), fm.values, np.nan)  # (n, n)
    V = np.where(np.isnan(fm.values) | (fm.values > 0), V, vmin)  # exact zeros: the bottom colour, not blank
    s = fm.stride
    lo, hi = fm.steps[0] + 1 - s / 2, fm.steps[-1] + 1 + s / 2  # cell edges, 1-based steps
    im = ax.imshow(V, origin="lower", norm=LogNorm(vmin=vmin, vmax=vmax), cmap="viridis",
                   extent=(lo, hi, lo, hi), interpolation="nearest", aspect="equal")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    ax.set_xlabel("k (hidden state h_k)")
    ax.set_title(label, fontsize=10)
    return im


_METHOD_STYLES = ("-", "--", ":", "-.")


def race_curves(curves: dict[str, dict[str, Any]], path: str | Path, *, x_label: str, y_label: str, title: str,
                level: float | None = None, level_label: str = "", log_y: bool = True) -> Path:
    """A value over time for several methods and seeds (e.g. validation loss against wall-clock seconds of
    Hessian-free and Adam): one colour per group (a seed), one line style per method, so one seed's runs
    read as a pair; ``level``: a labelled horizontal line (a target such as 0.1).

    curves: group -> method -> (n, 2) points (x, y), or a list of (x, y) pairs; empty ones are skipped.
    """
    plot_format(path)
    fig = _figure(9.0, 5.0, dpi=150)
    ax = fig.add_subplot()
    methods = list(dict.fromkeys(m for runs in curves.values() for m in runs))
    for g, (group, runs) in enumerate(curves.items()):
        for method, pts in runs.items():
            pts = np.asarray(pts, dtype=float).reshape(-1, 2)  # (n, 2): x, y
            if len(pts):
                style = _METHOD_STYLES[methods.index(method) % len(_METHOD_STYLES)]
                ax.plot(pts[:, 0], pts[:, 1], style, color=f"C{g % 10}", lw=1.4, label=f"{method}, {group}")
    if level is not None:
        ax.axhline(level, color="0.35", lw=0.9, ls=(0, (1, 2)), label=level_label or f"level {level:g}")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(**_LEGEND_OUTSIDE)
    return _save(fig, path)


def write_run_plots(out_dir: str | Path, fmt: str, *, history: dict[str, list[float]], data, model,
                    metrics: dict[str, Any]) -> dict[str, Path]:
    """loss.FMT, predictions.FMT and gradflow.FMT of a training run in ``out_dir``; fmt "none": nothing.

    Returns {"loss_plot": path, "predictions_plot": path, "gradflow_plot": path} (empty for "none").
    The gradient-flow map is the normalised map of the first test sequence, bounded for any T
    (at most ``gradflow.MAX_MAP_STEPS`` rows and columns: the last ones of a long sequence).
    An ensemble (``model.members``; history {"members": [...]}, metrics["members"]): the loss of every
    member, the predictions of the ensemble (the members' mean), the gradient flow of member 0.
    """
    fmt = check_choice("plot format", fmt, RUN_PLOTS)
    if fmt == "none":
        return {}
    out = Path(out_dir)
    members = getattr(model, "members", None)
    scaled = data.scaling is not None
    if members is None:
        loss = loss_curves(history, out / f"loss.{fmt}", title=f"{data.name}: loss per epoch", scaled=scaled,
                           best_epoch=metrics.get("best_epoch"))
    else:
        loss = member_loss_curves(history["members"], out / f"loss.{fmt}", scaled=scaled,
                                  title=f"{data.name}: loss per epoch of the {len(members)} members of the ensemble",
                                  best_epochs=[m.get("best_epoch") for m in metrics.get("members", [])])
    paths = {"loss_plot": loss, "predictions_plot": predictions(data, model, metrics, out / f"predictions.{fmt}")}
    x, y = gradflow.gradflow_sequence(data)
    maps = gradflow.flow_map_pair(model if members is None else members[0], x, y)
    title = f"{data.name}, first test sequence ({gradflow.describe_sequence(data, 0)}): how E_t's signal reaches h_k"
    if members is not None:
        title = f"member 0 of the ensemble of {len(members)}: " + title
    trained, twin = list(maps)
    note = (f"Left: the trained network. Right: {twin}: its trained weights run with the other hidden activation, "
            f"not retrained, to show how the activation's slope carries the signal back.")
    paths["gradflow_plot"] = gradient_flow_maps(maps, out / f"gradflow.{fmt}", title=title, caption=note)
    return paths
