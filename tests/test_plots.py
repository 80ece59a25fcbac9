"""Plots: valid PNGs of the expected size, written atomically, without touching matplotlib's global backend."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from bptt import RNN, BPTTError, plots, tasks

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


# ---------------------------------------------------------------- formats, labels, ticks, legends
MAGIC = {"png": PNG, "svg": b"<?xml", "pdf": b"%PDF-"}


def _svg_texts(path) -> list[str]:
    """The texts of an SVG matplotlib wrote (it keeps each one as a comment beside its glyphs)."""
    import re

    return re.findall(r"<!-- (.*?) -->", path.read_text(encoding="utf-8"))


def _flow(T: int = 10) -> np.ndarray:
    G = np.exp(-np.subtract.outer(np.arange(T), np.arange(T)).astype(float))  # (T, T)
    G[np.triu_indices(T, 1)] = np.nan
    return G


def _draw_all(tmp_path, fmt: str) -> list:
    d = tasks.load("sine", **SMALL["sine"])
    m = RNN(1, 3, 1, seed=0)
    return [plots.loss_curves({"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}, tmp_path / f"l.{fmt}"),
            plots.predictions(d, m, tasks.metrics(d, m), tmp_path / f"p.{fmt}"),
            plots.gradient_flow_maps({"sigmoid": _flow()}, tmp_path / f"g.{fmt}")]


@pytest.mark.parametrize("fmt", plots.FORMATS)
def test_every_plot_writes_the_format_its_ending_names(tmp_path, fmt):
    for p in _draw_all(tmp_path, fmt):
        data = p.read_bytes()
        assert data.startswith(MAGIC[fmt]), (p, data[:20])
        if fmt == "svg":
            assert b"<svg" in data[:2000]
    assert len(os.listdir(tmp_path)) == 3  # no temporary files left


def test_svg_and_pdf_are_the_same_bytes_each_time(tmp_path):
    for fmt in ("svg", "pdf"):
        a = plots.gradient_flow_maps({"sigmoid": _flow()}, tmp_path / f"a.{fmt}").read_bytes()
        b = plots.gradient_flow_maps({"sigmoid": _flow()}, tmp_path / f"b.{fmt}").read_bytes()
        assert a == b  # no creation date inside


@pytest.mark.parametrize("name", ["plot.gif", "plot.jpg", "plot", "plot.png.txt", "plot.svgz"])
def test_other_endings_are_refused_before_drawing(tmp_path, name):
    d = tasks.load("sine", **SMALL["sine"])
    m = RNN(1, 3, 1, seed=0)
    calls = [lambda p: plots.loss_curves({"train_loss": [1.0]}, p),
             lambda p: plots.predictions(d, m, {}, p),  # refused before the view is asked for (it needs metrics)
             lambda p: plots.gradient_flow_maps({"sigmoid": _flow()}, p)]
    for call in calls:
        with pytest.raises(BPTTError) as e:
            call(tmp_path / name)
        msg = str(e.value)
        assert "\n" not in msg and name in msg and "choose one of png, svg, pdf" in msg
    assert os.listdir(tmp_path) == []


def test_plot_format():
    assert [plots.plot_format(f"a.{e}") for e in ("png", "SVG", "Pdf")] == ["png", "svg", "pdf"]
    with pytest.raises(BPTTError, match="'bmp' is not supported"):
        plots.plot_format("x/a.bmp")


def test_gradient_flow_map_ticks_are_whole_steps(tmp_path):
    from bptt import gradflow as gf

    short = plots.gradient_flow_maps({"sigmoid": _flow(10), "tanh": _flow(10)}, tmp_path / "s.svg")
    m = RNN(1, 2, 1, seed=0)
    x = np.random.default_rng(0).uniform(size=(5000, 1))
    fm = gf.flow_map(m, x, x, steps=gf.choose_steps(5000, 200, "even"))
    long = plots.gradient_flow_maps({"sigmoid": fm}, tmp_path / "l.svg", title="long")
    for p in (short, long):
        ticks = [t for t in _svg_texts(p) if t.replace(".", "").replace("−", "").isdigit()]
        assert ticks and all("." not in t for t in ticks), ticks  # no 2.5, 7.5
    assert "200 of 5000 steps, 25 apart (t = 25..5000)" in " ".join(_svg_texts(long))  # the title says what is shown


def test_normalised_map_says_so_and_sparse_maps_are_lines(tmp_path):
    from bptt import gradflow as gf

    d = tasks.load("adding", length=8, n_train=5, n_val=5, n_test=5)
    m = RNN(2, 3, 1, seed=0)
    x, y = gf.gradflow_sequence(d)
    p = plots.gradient_flow_maps(gf.flow_map_pair(m, x, y), tmp_path / "a.svg", title="adding")
    texts = " ".join(_svg_texts(p))
    assert "‖∂E_t/∂h_k‖ / ‖∂E_t/∂h_t‖ (log scale)" in texts and "E_t, t = 8" in texts  # one scored row: a line


def test_loss_plot_states_its_units_and_the_kept_epoch(tmp_path):
    h = {"train_loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.6, 0.7]}
    scaled = " ".join(_svg_texts(plots.loss_curves(h, tmp_path / "s.svg", scaled=True, best_epoch=2)))
    assert "targets scaled to [0, 1]" in scaled and "kept: epoch 2" in scaled
    plain = " ".join(_svg_texts(plots.loss_curves(h, tmp_path / "p.svg")))
    assert "own units" in plain and "scaled" not in plain


def test_sunspots_prediction_plot_names_its_unit_and_years(tmp_path):
    d = tasks.load("sunspots")
    m = RNN(1, 3, 1, seed=0)
    texts = _svg_texts(plots.predictions(d, m, tasks.metrics(d, m), tmp_path / "p.svg"))
    assert "sunspot number (yearly mean)" in texts and "year" in texts and "value" not in texts
    assert any("1979–2008" in t for t in texts)


def _figures(monkeypatch) -> list:
    seen = []
    save = plots._save

    def keep(fig, path):
        seen.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return seen


def test_legends_stay_off_the_data(tmp_path, monkeypatch):
    seen = _figures(monkeypatch)
    _draw_all(tmp_path, "png")
    for fig in seen[:2]:  # loss curves and the sine's predictions: lines over the whole axes
        ax = fig.axes[0]
        renderer = fig.canvas.get_renderer()
        legend, box = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
        assert legend.x0 >= box.x1  # to the right of the axes, not over the curves


def test_write_run_plots(tmp_path):
    d = tasks.load("sine", **SMALL["sine"])
    m = RNN(1, 3, 1, seed=0)
    run = dict(history={"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6]}, data=d, model=m,
               metrics=dict(tasks.metrics(d, m), best_epoch=2))
    assert plots.write_run_plots(tmp_path, "none", **run) == {} and os.listdir(tmp_path) == []
    paths = plots.write_run_plots(tmp_path, "svg", **run)
    assert {k: p.name for k, p in paths.items()} == {"loss_plot": "loss.svg", "predictions_plot": "predictions.svg",
                                                     "gradflow_plot": "gradflow.svg"}
    assert all(p.read_bytes().startswith(b"<?xml") for p in paths.values())
    assert plots.RUN_PLOTS == ("png", "svg", "pdf", "none")
    with pytest.raises(BPTTError, match="choose one of png, svg, pdf, none"):
        plots.write_run_plots(tmp_path, "jpg", **run)


@pytest.mark.slow
def test_write_run_plots_bounded_for_a_long_sequence(tmp_path):
    """`bptt train --task sine --length 100000` must not ask for a T x T map."""
    d = tasks.load("sine", length=100_000, n_train=1, n_val=1, n_test=1)
    m = RNN(1, 2, 1, seed=0)
    run = dict(history={"train_loss": [1.0]}, data=d, model=m, metrics=tasks.metrics(d, m))
    p = plots.write_run_plots(tmp_path, "png", **run)["gradflow_plot"]
    assert _image(p).shape[1] > 300


# ---------------------------------------------------------------- binary addition, flow captions, races
@dataclasses.dataclass(frozen=True)
class _Bits:
    """Sums bit by bit, (T, N) each, least significant first (what a task's view may carry as ``bits``)."""

    a: np.ndarray
    b: np.ndarray
    carry: np.ndarray
    target: np.ndarray
    output: np.ndarray


@dataclasses.dataclass(frozen=True)
class _BitView(tasks.PredictionView):
    bits: _Bits | None = None


def _flip_after_carry(N: int, T: int, pos: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, _Bits]:
    """N random sums of (T - 1)-bit numbers from the integers; the output is the sum's bits but bit ``pos``
    (0-based) flipped wherever a carry comes into it, as outputs in (0, 1), not bits."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2 ** (T - 1), size=(2, N))  # (N,) each
    t = np.arange(T)[:, None]  # (T, 1)
    bits = lambda v: (v >> t) & 1  # noqa: E731  (T, N)
    carry = (a % 2**t + b % 2**t) >= 2**t  # (T, N): into position t
    target = bits(a + b)
    out = target.astype(float)
    out[pos, carry[pos]] = 1 - out[pos, carry[pos]]
    return a, b, _Bits(bits(a), bits(b), carry, target, 0.1 + 0.8 * out)


def _draw_bits(tmp_path, monkeypatch, table: _Bits, name: str):
    d = tasks.load("adding", length=6, n_train=5, n_val=5, n_test=5)  # the view below replaces what it shows
    view = _BitView((), "", "", title="sums of 6-bit numbers", bits=table)
    monkeypatch.setitem(tasks.TASKS, "adding", dataclasses.replace(tasks.get("adding"), view=lambda *_: view))
    return plots.predictions(d, RNN(d.input_size, 2, d.output_size, seed=0), {}, tmp_path / name)


def test_a_bit_view_shows_wrong_bits_by_position_and_carry(tmp_path, monkeypatch):
    a, b, table = _flip_after_carry(200, 7, 3)
    seen = _figures(monkeypatch)
    texts = " ".join(_svg_texts(_draw_bits(tmp_path, monkeypatch, table, "a.svg")))
    carry, plain = seen[0].axes[0].containers  # the "carry in" and "no carry in" bars, one per bit position
    assert [round(r.get_height(), 12) for r in carry] == [0, 0, 0, 1, 0, 0, 0]  # every sum with a carry into bit 4
    assert [r.get_height() for r in plain] == [0] * 7
    assert "bit position (1 = least significant)" in texts and "carry in" in texts and "sums of 6-bit numbers" in texts
    wrong = (a % 8 + b % 8) >= 8
    assert f"{int((~wrong).sum())} of 200 sums exact" in texts
    assert texts.count("(WRONG)") == 3  # wrong sums are drawn first, bit by bit, with their operands
    got = a + b + np.where((a + b) & 8, -8, 8)  # bit 4 flipped
    assert any(f"a = {a[i]} b = {b[i]} carry in a + b = {a[i] + b[i]} network: {got[i]} (WRONG)" in texts
               for i in np.flatnonzero(wrong))


def test_a_bit_view_says_when_no_bit_is_wrong(tmp_path, monkeypatch):
    _, _, table = _flip_after_carry(30, 5, 0)  # no carry ever comes into bit 1: nothing flipped
    texts = " ".join(_svg_texts(_draw_bits(tmp_path, monkeypatch, table, "r.svg")))
    assert "no wrong bit in 30 test sums" in texts and "30 of 30 sums exact" in texts and "(WRONG)" not in texts


def _normalised(values: np.ndarray):
    from bptt import gradflow as gf

    T = values.shape[0]
    return gf.FlowMap(values, np.arange(T), T, True, gf.decay_summary(values))


def test_normalised_flow_maps_say_what_the_ratio_is_and_where_it_exceeds_1(tmp_path):
    grows = _flow(6)
    grows[5, 0] = 5.07
    p = plots.gradient_flow_maps({"sigmoid (as trained)": _normalised(_flow(6)), "tanh (same weights)": _normalised(grows)},
                                 tmp_path / "g.svg", caption="Right: the same weights, tanh.")
    texts = " ".join(_svg_texts(p))
    assert "the size of E_t's gradient at h_k relative to where it enters" in texts
    assert "Above 1: tanh (same weights): up to 5.07." in texts and "sigmoid (as trained): up to" not in texts
    assert "Right: the same weights, tanh." in texts
    quiet = " ".join(_svg_texts(plots.gradient_flow_maps({"s": _normalised(_flow(6))}, tmp_path / "q.svg")))
    assert "relative to where it enters" in quiet and "Above 1" not in quiet
    raw = " ".join(_svg_texts(plots.gradient_flow_maps({"s": _flow(6)}, tmp_path / "raw.svg")))
    assert "relative to where it enters" not in raw  # a raw map is not a ratio


def test_run_gradient_flow_plot_explains_its_same_weights_panel(tmp_path):
    d = tasks.load("binary-addition", bits=4, n_train=10, n_val=5, n_test=5)
    m = RNN(d.input_size, 3, d.output_size, seed=0)
    run = dict(history={"train_loss": [1.0]}, data=d, model=m, metrics=tasks.metrics(d, m))
    texts = " ".join(_svg_texts(plots.write_run_plots(tmp_path, "svg", **run)["gradflow_plot"]))
    assert "tanh (same weights): its trained weights run with the other hidden activation" in texts


def test_race_curves_pair_each_seeds_runs_by_colour_and_label_the_level(tmp_path, monkeypatch):
    seen = _figures(monkeypatch)
    t = np.linspace(1.0, 30.0, 12)
    curves = {f"seed {s}": {"HF": np.c_[t, np.exp(-t / (5 + s))], "Adam": [(float(x), 0.5) for x in t]}
              for s in range(3)}
    curves["seed 3"] = {"HF": [], "Adam": np.c_[t, t * 0 + 0.3]}  # an empty run is skipped
    p = plots.race_curves(curves, tmp_path / "r.png", x_label="wall clock (s)", y_label="ratio", title="race",
                          level=0.1, level_label="0.1: success")
    lines = {ln.get_label(): ln for ln in seen[0].axes[0].get_lines()}
    assert "HF, seed 3" not in lines and "Adam, seed 3" in lines
    for s in range(3):
        hf, adam = lines[f"HF, seed {s}"], lines[f"Adam, seed {s}"]
        assert hf.get_color() == adam.get_color() and hf.get_linestyle() != adam.get_linestyle()
    assert len({lines[f"HF, seed {s}"].get_color() for s in range(3)}) == 3  # seeds apart
    assert lines["0.1: success"].get_ydata()[0] == 0.1
    assert "0.1: success" in [x.get_text() for x in seen[0].axes[0].get_legend().get_texts()]
    img = _image(p)
    assert img.shape[1] >= 1200 and img.shape[0] >= 600  # not a 600 x 350 thumbnail
