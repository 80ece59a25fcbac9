"""`bptt explain --format html`: the page, opened as a file in headless Chromium (Playwright).

No network: everything the page needs is inside it. The math is typeset by the bundled KaTeX
(as many formulas as the document model has, none in error), the unrolled network is drawn
with one node per state, and hovering a term of a sum lights exactly its path's edges.

Set BPTT_WRITE_SCREENSHOT=1 to write the README's screenshot, docs/explain-html.png, and the live page's
pictures: docs/explain-live.png (w_h and the activation changed) and the step-through as
docs/explain-live-step-NN.png and docs/explain-live-step.gif.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bptt import derive
from bptt.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEED = {"w": 1.0, "w_x": 1.0, "w_h": 1.0, "b1": 1.0, "b2": 1.0}
X5 = [1.0, 0.0, 0.5, -1.0, 0.25]
THETA = {"w": "w", "wx": "w_x", "wh": "w_h", "b1": "b1", "b2": "b2"}


def _expected_edges(tag: str) -> set[str]:
    """From the tag alone ('E2-wx-k1'): the edges path k of dE_i/dθ runs along, by the chain rule."""
    m = re.fullmatch(r"E(\d+)-(w|wx|wh|b1|b2)-k(\d+)", tag)
    assert m, tag
    i, theta, k = int(m.group(1)), THETA[m.group(2)], int(m.group(3))
    if theta == "w":
        return {f"h{i}-y{i}"}
    if theta == "b2":
        return {f"b2-y{i}"}
    entry = {"w_x": f"x{k}-h{k}", "w_h": f"h{k - 1}-h{k}", "b1": f"b1-h{k}"}[theta]
    return {entry, f"h{i}-y{i}"} | {f"h{j - 1}-h{j}" for j in range(k + 1, i + 1)}


def _all_tags(T: int) -> list[str]:
    tags = []
    for i in range(1, T + 1):
        tags += [f"E{i}-w-k{i}", f"E{i}-b2-k{i}"]
        tags += [f"E{i}-{th}-k{k}" for th in ("wx", "wh", "b1") for k in range(1, i + 1)]
    return tags


# ------------------------------------------------------------------ without a browser
def _page(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    assert main(["explain", "--format", "html", "--out", str(out), *args]) == 0
    return out


def test_page_is_self_contained(tmp_path, capsys):
    text = _page(tmp_path, "seed.html").read_text(encoding="ascii")  # ASCII: other characters as references
    assert text.startswith("<!DOCTYPE html>") and "default-src 'none'" in text  # the page may fetch nothing
    markup = re.sub(r"<(script|style)\b.*?</\1>", "", text, flags=re.S)  # the page's own elements
    assert text.count("<script") == 4 and not re.search(r"<(link|img|iframe|object)\b|\bsrc\s*=", markup)
    assert re.findall(r"url\((?!data:|#)", text) == [] and text.count("url(data:font/woff2;base64,") == 20
    assert "\\htmlData{path=E2-wx-k1}{" in text
    main(["explain", "--format", "html"])  # without --out: the same page on standard output
    assert capsys.readouterr().out == text


def test_import_bptt_stays_light():
    code = "import sys, bptt, bptt.html; print(sorted(m for m in ('sympy', 'playwright') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


# ------------------------------------------------------------------ in a browser
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or (
        "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium executable on PATH (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


class Opened:
    def __init__(self, page, requests):
        self.page, self.requests = page, requests

    def lit(self) -> set[str]:
        return set(self.page.eval_on_selector_all("svg .lit", "els => els.map(e => e.getAttribute('data-edge'))"))


@pytest.fixture
def open_page(browser):
    pages = []

    def go(path: Path) -> Opened:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requests, errors = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.wait_for_selector("html[data-ready]", timeout=60_000)
        assert errors == []
        pages.append(page)
        return Opened(page, requests)

    yield go
    for p in pages:
        p.close()


def _math_count(x, y=None, expand=derive.EXPAND_DEFAULT, params=SEED, **kw) -> int:
    d, n = derive.derive(params, x, y=y, **kw)
    return d.document(n, expand, derive.check_against(d, n)).math_count()


def _check_page(o: Opened, T: int, n_math: int) -> None:
    page = o.page
    assert page.locator(".katex-error").count() == 0
    assert page.locator(".katex").count() - page.locator("#live .katex").count() == n_math  # the document's
    assert page.locator("svg").count() == 1
    nodes = page.eval_on_selector_all("svg [data-node]", "els => els.map(e => e.getAttribute('data-node'))")
    assert sorted(nodes) == sorted([f"h{t}" for t in range(T + 1)] + [f"x{t}" for t in range(1, T + 1)]
                                   + [f"y{t}" for t in range(1, T + 1)])
    assert o.requests and all(u.startswith(("file:", "data:")) for u in o.requests), o.requests


def _hover_each(o: Opened, tags: list[str], where: str) -> None:
    """Hover the first element of each tag in `where` ('.katex' terms or 'button' chips): exactly its edges."""
    page = o.page
    for tag in tags:
        el = page.locator(f'{where} [data-path="{tag}"]' if where == ".katex" else f'{where}[data-path="{tag}"]').first
        el.hover()
        assert o.lit() == _expected_edges(tag), tag
        prefix = tag.rsplit("-", 1)[0]
        assert page.locator(f'.katex [data-prefix="{prefix}"].hl-prefix').count() >= 1, tag  # what it multiplies
        page.mouse.move(1, 1)
        assert o.lit() == set()


def test_seed_page(open_page, tmp_path):
    o = open_page(_page(tmp_path, "seed.html"))
    _check_page(o, 2, _math_count([1.0, 0.0]))
    tags = _all_tags(2)
    assert sorted(o.page.eval_on_selector_all("button[data-path]", "els => els.map(e => e.dataset.path)")) == sorted(tags)
    _hover_each(o, tags, ".katex")
    _hover_each(o, tags, "button")
    # a click pins a path; hovering another shows that one, and leaving it goes back to the pinned one
    o.page.locator('button[data-path="E2-wx-k1"]').click()
    o.page.locator('.katex [data-path="E1-b1-k1"]').first.hover()
    assert o.lit() == _expected_edges("E1-b1-k1")
    o.page.mouse.move(1, 1)
    assert o.lit() == _expected_edges("E2-wx-k1")
    assert "path k = 1" in o.page.locator("#readout").inner_text()


def test_screenshot(open_page, tmp_path):
    """The README's picture: the seed's page with path k = 1 of dE_2/dw_x lit."""
    o = open_page(_page(tmp_path, "seed.html"))
    o.page.locator('button[data-path="E2-wx-k1"]').hover()
    assert o.lit() == _expected_edges("E2-wx-k1")
    target = ROOT / "docs" / "explain-html.png" if os.environ.get("BPTT_WRITE_SCREENSHOT") == "1" else tmp_path / "s.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    o.page.screenshot(path=str(target), clip={"x": 0, "y": 0, "width": 1200, "height": 860})
    assert target.stat().st_size > 20_000


def test_five_steps_every_path(open_page, tmp_path):
    """T = 5 written out (--expand 5): all 55 paths, each lights exactly its edges."""
    o = open_page(_page(tmp_path, "t5.html", "--x", ",".join(map(str, X5)), "--expand", "5"))
    _check_page(o, 5, _math_count(X5, expand=5))
    tags = _all_tags(5)
    _hover_each(o, tags, ".katex")
    assert o.page.locator("button[data-path]").count() == len(tags)


def test_five_steps_named_factors(open_page, tmp_path):
    """T = 5 beyond --expand 3: like the document, the picture stops drawing paths; states and math still there."""
    y = [0.5, 0.5, 0.5, 1.0, 0.0]
    o = open_page(_page(tmp_path, "t5s.html", "--x", ",".join(map(str, X5)), "--y", ",".join(map(str, y))))
    _check_page(o, 5, _math_count(X5, y=y))
    assert o.page.locator("#doc [data-path]").count() == 0  # the document names δ_i and P_i,k instead
    assert "the repeated factors are named once" in o.page.locator("#doc").inner_text()
    assert o.page.locator("#live button[data-path]").count() == len(_all_tags(5))  # the live page draws every path


def test_relu_kink_page(open_page, tmp_path):
    o = open_page(_page(tmp_path, "relu.html", "--hidden-activation", "relu", "--b1=-1", "--y", "0.5,0.5"))
    _check_page(o, 2, _math_count([1.0, 0.0], y=[0.5, 0.5], params=dict(SEED, b1=-1.0), hidden_activation="relu"))
    assert "at a kink of relu" in o.page.locator("main").inner_text()


def test_long_sequence_page(open_page, tmp_path):
    """T = 40, tanh: the tables' math typesets and the picture has its 121 states."""
    x = list(np.round(np.sin(np.arange(40)), 3))
    o = open_page(_page(tmp_path, "t40.html", "--x", ",".join(map(str, x)), "--hidden-activation", "tanh"))
    _check_page(o, 40, _math_count(x, hidden_activation="tanh"))


def _sig(v: float) -> float:
    return 1 / (1 + np.exp(-v))


def test_bce_page_without_a_browser(tmp_path):
    """--loss bce: the page is the bce document (title, E_i, dE_i/dy'_i), with every path still marked."""
    text = _page(tmp_path, "bce.html", "--loss", "bce").read_text(encoding="ascii")
    assert "loss bce</h1>" in text and "\\htmlData{path=E2-wx-k1}{" in text
    assert "E_i &amp;= -(y_i \\log y&#x27;_i + (1 - y_i) \\log(1 - y&#x27;_i))" in text  # HTML-escaped TeX


def test_bce_page(open_page, tmp_path):
    """--loss bce in the browser: its formulas typeset (E_i, dE_i/dy'_i, the sigmoid + bce cancellation), every
    path lights its edges, and the totals are bce's: dLoss/db_2 = 1/2 sum_i (y'_i - y_i), computed here by hand."""
    o = open_page(_page(tmp_path, "bce.html", "--loss", "bce", "--y", "1,0"))
    _check_page(o, 2, _math_count([1.0, 0.0], y=[1.0, 0.0], loss="bce"))
    text = o.page.locator("main").inner_text()
    assert "binary cross-entropy" in text and "matching pair (sigmoid output, bce)" in text
    h1 = _sig(2.0)
    y1, y2 = _sig(h1 + 1), _sig(_sig(h1 + 1) + 1)
    assert f"{0.5 * ((y1 - 1) + y2):.10g}" in text
    _hover_each(o, _all_tags(2), ".katex")


# ------------------------------------------------------------------ the live page, pinned to the engine
# The page's script (bptt/data/live.js) is a second implementation of the recurrence. Every number it
# shows carries data-quantity (its name) and data-value (its full double); each is compared here with
# the numpy engine: bptt.RNN (forward, loss_and_grad on numpy, decompose), bptt.engine (output_delta,
# bptt_full, bptt_truncated) and bptt.gradflow.
from bptt import RNN, engine, gradflow, losses  # noqa: E402
from bptt.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS  # noqa: E402
from bptt.engine import PARAM_NAMES  # noqa: E402

LIVE_RTOL = 1e-12


def _fragment(s: dict) -> str:
    """A state as the page's URL fragment (bptt grad's option names; rows ';', entries ',')."""
    def vec(v):
        return ",".join(repr(float(a)) for a in v)

    def rows(m):
        return ";".join(vec(r) for r in m)

    parts = [f"input_size={s['D']}", f"hidden_size={s['H']}", f"output_size={s['O']}"]
    parts += [f"{k}={rows(s[k])}" for k in ("w", "w_x", "w_h")] + [f"{k}={vec(s[k])}" for k in ("b1", "b2", "h0")]
    parts.append("x=" + rows(s["x"]))
    if s["loss"] == "cross_entropy":
        parts.append("y=" + ",".join(str(int(np.argmax(r))) for r in s["y"]))
    else:
        parts.append("y=" + rows(s["y"]))
    parts += [f"{k}={s[k]}" for k in ("hidden_activation", "output_activation", "loss", "reduction")]
    if s.get("truncate"):
        parts.append(f"truncate={s['truncate']}")
    return "&".join(parts)


def _random_state(rng, T=None) -> dict:
    """A random configuration: sizes 1..3, every activation and loss of the tables, truncation sometimes."""
    loss = str(rng.choice(list(losses.LOSSES)))
    g = {"bce": "sigmoid", "cross_entropy": "softmax"}.get(loss) or str(rng.choice(OUTPUT_ACTIVATIONS))
    D, H = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    O = int(rng.integers(2, 4)) if not ACTIVATIONS[g].elementwise else int(rng.integers(1, 4))
    T = int(rng.integers(1, 11)) if T is None else T
    r = lambda *shape: np.round(rng.uniform(-1.5, 1.5, shape), 3)  # noqa: E731
    if loss == "cross_entropy":
        y = np.eye(O)[rng.integers(0, O, T)]
    elif loss == "bce":
        y = np.round(rng.uniform(0, 1, (T, O)), 3)
    else:
        y = r(T, O)
    return {"D": D, "H": H, "O": O, "w": r(O, H), "w_x": r(H, D), "w_h": r(H, H), "b1": r(H), "b2": r(O),
            "h0": r(H), "x": r(T, D), "y": y, "hidden_activation": str(rng.choice(HIDDEN_ACTIVATIONS)),
            "output_activation": g, "loss": loss, "reduction": str(rng.choice(["mean", "sum"])),
            "truncate": int(rng.integers(1, T)) if T > 1 and rng.random() < 0.35 else None}


def _entries(name: str, a) -> dict[str, float]:
    """'dLoss/dw_h' and an array -> {'dLoss/dw_h[0,1]': ...}; one number keeps the bare name (the page's rule)."""
    a = np.asarray(a, dtype=np.float64)
    if a.size == 1:
        return {name: float(a.ravel()[0])}
    if a.ndim == 1:
        return {f"{name}[{i}]": float(v) for i, v in enumerate(a)}
    return {f"{name}[{i},{j}]": float(a[i, j]) for i in range(a.shape[0]) for j in range(a.shape[1])}


def _reference(s: dict) -> dict[str, float | list[float]]:
    """Every quantity the live page may show, by name, from the engine."""
    D, H, O, T = s["D"], s["H"], s["O"], len(s["x"])
    m = RNN(D, H, O, s["hidden_activation"], s["output_activation"], loss=s["loss"])
    m.set_params(**{k: np.asarray(s[k], dtype=np.float64).reshape(m.param_shapes()[k]) for k in PARAM_NAMES})
    x, y, h0 = (np.asarray(s[k], dtype=np.float64) for k in ("x", "y", "h0"))
    K = s.get("truncate")
    loss, grads = m.loss_and_grad(x, y, h0=h0, reduction=s["reduction"], truncate=K, backend="numpy")
    dec = m.decompose(x, y, h0=h0, reduction=s["reduction"])
    G = gradflow.gradient_flow(m, x, y, h0=h0)
    f, g, crit, p = m.hidden_act, m.output_act, m.criterion, m.engine_params()
    xb, yb = x[:, None, :], y[:, None, :]
    fwd = engine.forward(p, xb, h0[None, :], f, g)
    du1 = crit.delta(fwd.u, fwd.y_pred, yb, g, 1.0)[:, 0]  # (T, O): dE_t/du_t
    duc = engine.output_delta(fwd, yb, g, crit, s["reduction"])  # (T, 1, O): c dE_t/du_t
    dhd = duc @ p.w  # (T, 1, H)
    fp = f.deriv(fwd.h[1:])  # (T, 1, H)
    kept = np.array([[K is None or K >= T or k > i - K for k in range(T)] for i in range(T)])  # (i, k)
    # dE_i/dh_k by the chain rule, one step back at a time (gradflow's recursion, vectors kept)
    delta = np.zeros((T, T, H))
    for i in range(T):
        d = du1[i] @ p.w
        for k in range(i, -1, -1):
            delta[i, k] = d
            d = (d * fp[k, 0]) @ p.w_h
    if K is None or K >= T:
        dz = engine.bptt_full(p.w_h, dhd, fp)[:, 0]
    else:
        dz = engine.bptt_truncated(p.w_h, dhd, fp, K)[0][:, 0]
    c = 1.0 / T if s["reduction"] == "mean" else 1.0
    dh = np.array([c * sum(delta[i, k] for i in range(k, T) if kept[i, k]) for k in range(T)])  # dLoss/dh_k
    ref: dict = {"Loss": loss, "w": float(p.w.ravel()[0]), "w_h": float(p.w_h.ravel()[0])}
    E = crit.value(fwd.u, fwd.y_pred, yb)[:, 0]
    ref.update(_entries("h_0", h0))
    for t in range(1, T + 1):
        ref[f"E_{t}"] = float(E[t - 1])
        for name, a in ((f"x_{t}", x[t - 1]), (f"y_{t}", y[t - 1]), (f"z_{t}", fwd.z[t - 1, 0]), (f"h_{t}", fwd.h[t, 0]),
                        (f"u_{t}", fwd.u[t - 1, 0]), (f"y'_{t}", fwd.y_pred[t - 1, 0]), (f"f'(z_{t})", fp[t - 1, 0]),
                        (f"dE_{t}/du_{t}", du1[t - 1]), (f"dLoss/dh_{t}", dh[t - 1]), (f"dLoss/dz_{t}", dz[t - 1])):
            ref.update(_entries(name, a))
        yp = fwd.y_pred[t - 1, 0]
        if g.elementwise:
            ref.update(_entries(f"g'(u_{t})", g.deriv(yp)))
            ref.update(_entries(f"dE_{t}/dy'_{t}", yp - y[t - 1]))
            ref.update(_entries(f"y'_{t}(1 - y'_{t})", yp * (1 - yp)))
    for th in PARAM_NAMES:
        shape = m.param_shapes()[th]
        ref.update(_entries(f"dLoss/d{th}", grads[th]))
        ref.update(_entries(f"running dLoss/d{th}", grads[th]))
        for i in range(1, T + 1):
            ks = [k for k in range(T) if kept[i - 1, k]]
            ref.update(_entries(f"dE_{i}/d{th}", dec.paths[th][i - 1, ks].sum(axis=0).reshape(shape)))
            for k in range(1, i + 1):
                ref.update({n + f"|k={k}": v for n, v in
                            _entries(f"dE_{i}/d{th}", dec.paths[th][i - 1, k - 1].reshape(shape)).items()})
                if H == D == O == 1:  # the path's factors after the prefix (one unit): (dh_i/dh_k)(dh_k/dθ)
                    chain = np.prod([fp[j, 0, 0] * p.w_h[0, 0] for j in range(k, i)]) if th in ("w_x", "w_h", "b1") else 1.0
                    dzk = {"w_x": x[k - 1, 0], "w_h": fwd.h[k - 1, 0, 0], "b1": 1.0}.get(th)
                    ref[f"(dh_{i}/dh_{k})(dh_{k}/d{th})"] = (chain * fp[k - 1, 0, 0] * dzk if dzk is not None else
                                                             fwd.h[i, 0, 0] if th == "w" else 1.0)
    for i in range(1, T + 1):
        for k in range(1, i + 1):
            ref[f"||dE_{i}/dh_{k}||"] = float(G[i - 1, k - 1])
            ref[f"dE_{i}/dh_{k}"] = [float(v) for v in delta[i - 1, k - 1]]
    return ref


_READ = """() => Array.from(document.querySelectorAll('#live [data-quantity]')).map(
    e => [e.getAttribute('data-quantity'), e.getAttribute('data-value'), e.textContent, !!e.closest('.katex')])"""


def _compare(shown: list[list[str]], ref: dict, where: str) -> int:
    """Every number the page shows equals the engine's to LIVE_RTOL, relative to the largest of its kind
    (a gradient that cancels to near zero is compared on the scale of its neighbours). Returns the count."""
    assert shown, where
    scale: dict[str, float] = {}
    kind = lambda n: re.sub(r"[0-9]+|\[.*?\]", "#", n)  # noqa: E731  'dE_2/dw_h[0,1]|k=1' -> 'dE_#/dw_h#|k=#'
    for n, v in ref.items():
        scale[kind(n)] = max(scale.get(kind(n), 0.0), float(np.max(np.abs(v))))
    for name, value, *text in shown:
        assert name in ref, f"{where}: the page shows {name!r}, which the test does not know"
        got = np.array([float(v) for v in value.split(",")])
        want = np.atleast_1d(np.asarray(ref[name], dtype=np.float64))
        tol = LIVE_RTOL * max(scale[kind(name)], 1e-300)
        assert got.shape == want.shape and np.all(np.abs(got - want) <= tol), \
            f"{where}: {name} = {value}, the engine's {want.tolist()} (tolerance {tol:.1e})"
        if text:  # what a reader sees is that number, rounded (3 to 10 figures; a formula writes the sign outside)
            try:
                seen = float(text[0].replace("\u00d710", "e").replace("\u2212", "-"))  # typeset: 1.5 x 10^-5
            except ValueError:
                continue  # 'δ = ...', several numbers
            w = float(want[0])
            assert abs((abs(seen) if text[1] else seen) - (abs(w) if text[1] else w)) <= 5e-3 * abs(w) + 1e-300, \
                f"{where}: {name} reads {text[0]!r} but is {w!r}"
    return len(shown)


def _live(o: Opened) -> dict:
    return o.page.evaluate("() => window.bpttLive.state()")


def _state_to_ref(js: dict) -> dict:
    """The page's own state (read back) in the form _reference takes."""
    s = dict(js)
    s["truncate"] = js.get("truncate")
    return s


def test_live_page_markup_without_a_browser(tmp_path):
    text = _page(tmp_path, "seed.html").read_text(encoding="ascii")
    assert text.count("<script") == 4 and 'id="bptt-state"' in text and 'id="live"' in text
    from bptt import html
    js, css = html.live_assets()
    assert js.isascii() and css.isascii()  # the page is ASCII: a reference inside a script would not be decoded
    static = html.render(derive.derive(SEED, [1.0, 0.0])[0].document(derive.derive(SEED, [1.0, 0.0])[1]))
    assert static.count("<script") == 3 and 'id="live"' not in static  # without live_state: the static page
    # what a new reader found unclear: the node values have a legend, a chip's k and value are apart, and the
    # punctuation after a formula is glued to it (a comma never starts a line)
    assert "The number beside each node is its forward value" in static
    assert '<span class="k">k = 1</span><span class="v">' in static
    assert re.search(r'<span class="nobr"><span class="tex">[^<]*</span>,</span>', static)


def test_live_seed_matches_engine(open_page, tmp_path):
    """The page as written (the seed, targets 0.5): every shown number equals the engine's; the address holds it."""
    o = open_page(_page(tmp_path, "seed.html", "--y", "0.5,0.5"))
    page = o.page
    assert page.locator("#live-error").is_hidden()
    s = _live(o)
    assert s["x"] == [[1.0], [0.0]] and s["y"] == [[0.5], [0.5]] and s["w_h"] == [[1.0]]
    assert "#w=1&w_x=1&w_h=1&b1=1&b2=1&h0=0&x=1,0&y=0.5,0.5&hidden_activation=sigmoid" in page.url
    n = _compare(page.evaluate(_READ), _reference(s), "seed")
    assert n > 80
    assert page.locator('#live [data-quantity="dLoss/dw_h"]').count() >= 1


def test_live_controls_recompute_once_and_match_engine(open_page, tmp_path):
    """Changing w_h, the activation, adding a step and truncating: each change is one recompute, and
    every shown number follows (compared with the engine after each)."""
    o = open_page(_page(tmp_path, "seed.html", "--y", "0.5,0.5"))
    page = o.page
    count = lambda: int(page.evaluate("document.documentElement.dataset.recomputes"))  # noqa: E731
    before = count()
    typesets, draws = page.evaluate("[window.bpttLive.typesets(), window.bpttLive.draws()]")
    page.fill('input[data-key="w_h"]', "0.2")
    assert count() == before + 1 and _live(o)["w_h"] == [[0.2]]
    # same structure: new digits into the drawn tables, network and typeset formulas, nothing rebuilt
    assert page.evaluate("[window.bpttLive.typesets(), window.bpttLive.draws()]") == [typesets, draws]
    assert "w_h=0.2" in page.url
    _compare(page.evaluate(_READ), _reference(_state_to_ref(_live(o))), "w_h = 0.2")
    page.select_option('select[data-key="hidden_activation"]', "tanh")
    assert count() == before + 2 and _live(o)["hidden_activation"] == "tanh"
    page.click("#add-step")
    page.fill('input[data-key="x_3"]', "-0.7")
    page.fill('input[data-key="y_3"]', "0.25")
    assert count() == before + 5 and len(_live(o)["x"]) == 3
    page.select_option('select[data-key="truncate"]', "1")
    s = _live(o)
    assert s["truncate"] == 1 and "truncate=1" in page.url
    _compare(page.evaluate(_READ), _reference(_state_to_ref(s)), "tanh, T = 3, truncate 1")
    # a bad number is one line, marks its box, and changes nothing
    n = count()
    page.fill('input[data-key="w"]', "abc")
    assert count() == n and "is not a number" in page.locator("#live-error").inner_text()
    assert page.locator('input[data-key="w"]').get_attribute("aria-invalid") == "true"
    page.fill('input[data-key="w"]', "0.5")
    assert count() == n + 1 and page.locator("#live-error").is_hidden()
    # removing a step, and the loss (bce pulls a sigmoid output along)
    page.click('button[data-remove="0"]')
    page.select_option('select[data-key="loss"]', "bce")
    s = _live(o)
    assert len(s["x"]) == 2 and s["loss"] == "bce"
    _compare(page.evaluate(_READ), _reference(_state_to_ref(s)), "bce after a removed step")
    ms = float(page.evaluate("document.documentElement.dataset.lastMs"))
    print(f"last change recomputed and drawn in {ms:.1f} ms")  # measured, reported, not asserted (load varies)


def test_live_matrix_controls(open_page, tmp_path):
    """Sizes: hidden_size 2 gives every entry of w_h a control; softmax with cross-entropy takes class labels."""
    o = open_page(_page(tmp_path, "seed.html", "--y", "0.5,0.5"))
    page = o.page
    page.fill('input[data-size="hidden_size"]', "2")
    page.locator('input[data-size="hidden_size"]').dispatch_event("change")
    assert _live(o)["H"] == 2 and page.locator('input[data-key^="w_h["]').count() == 4
    page.fill('input[data-key="w_h[0,1]"]', "-0.4")
    page.select_option('select[data-key="loss"]', "cross_entropy")
    s = _live(o)
    assert s["output_activation"] == "softmax" and s["O"] == 2 and s["w_h"][0][1] == -0.4
    page.select_option('select[data-class="1"]', "0")
    s = _live(o)
    assert s["y"][1] == [1.0, 0.0]
    assert "hidden_size=2" in page.url and "loss=cross_entropy" in page.url
    _compare(page.evaluate(_READ), _reference(_state_to_ref(s)), "H = 2, softmax + cross-entropy")


def test_live_opens_from_a_url_fragment(browser, tmp_path):
    """A shared link reopens exactly its state (opened fresh, from the file); a bad fragment is one line."""
    path = _page(tmp_path, "seed.html", "--y", "0.5,0.5")
    s = _random_state(np.random.default_rng(7), T=4)
    s.update(hidden_activation="tanh", truncate=2, loss="squared_error", output_activation="identity")
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(path.as_uri() + "#" + _fragment(s))
        page.wait_for_selector("html[data-ready]", timeout=60_000)
        assert errors == [] and page.locator("#live-error").is_hidden()
        js = page.evaluate("() => window.bpttLive.state()")
        assert js["H"] == s["H"] and js["truncate"] == 2 and np.allclose(js["w_h"], s["w_h"], rtol=0, atol=0)
        _compare(page.evaluate(_READ), _reference(s), "opened from a link")
        assert page.locator("#doc").get_attribute("class") == "stale"  # the written derivation is another state's
        # the keys as bptt grad spells the flags work too, and a bad value says what and how
        page.evaluate("() => { location.hash = 'w-h=0.3&hidden-activation=relu'; }")
        page.wait_for_function("() => window.bpttLive.state().hidden_activation === 'relu'")
        assert page.evaluate("() => window.bpttLive.state()")["w_h"] == [[0.3]]
        page.evaluate("() => { location.hash = 'w_h=abc'; }")
        page.wait_for_function("() => !document.getElementById('live-error').hidden")
        msg = page.locator("#live-error").inner_text()
        assert "w_h" in msg and "is not a number" in msg and "\n" not in msg.strip()
        assert page.evaluate("() => window.bpttLive.state()")["w_h"] == [[1.0]]  # the page's own state instead
    finally:
        page.close()


@pytest.mark.parametrize("count, seed", [(60, 2024), pytest.param(300, 7, marks=pytest.mark.slow)])
def test_live_random_configurations_match_engine(open_page, tmp_path, count, seed):
    """Random configurations (T 1..10, sizes 1..3, every activation, loss and reduction, truncation), each set
    through the URL fragment: every number the page shows equals the engine's to 1e-12 (relative). 60 in the
    default run (a minute under load), 300 with -m slow."""
    o = open_page(_page(tmp_path, "seed.html", "--y", "0.5,0.5"))
    page = o.page
    rng = np.random.default_rng(seed)
    seen, total, times = set(), 0, []
    for n in range(count):
        s = _random_state(rng)
        before = int(page.evaluate("document.documentElement.dataset.recomputes"))
        page.evaluate("f => { location.hash = f; }", _fragment(s))
        page.wait_for_function(f"+document.documentElement.dataset.recomputes > {before}")
        assert page.locator("#live-error").is_hidden(), (n, page.locator("#live-error").inner_text())
        total += _compare(page.evaluate(_READ), _reference(s), f"configuration {n}: {_fragment(s)}")
        times.append(float(page.evaluate("document.documentElement.dataset.lastMs")))
        seen.add((s["hidden_activation"], s["output_activation"], s["loss"], s["truncate"] is not None))
    hidden = {h for h, *_ in seen}
    assert hidden == set(HIDDEN_ACTIVATIONS) and {g for _, g, *_ in seen} == set(OUTPUT_ACTIVATIONS)
    assert {loss for _, _, loss, _ in seen} == set(losses.LOSSES) and {t for *_, t in seen} == {True, False}
    print(f"{total} numbers compared; recompute + redraw: median {np.median(times):.1f} ms, max {max(times):.1f} ms")


def test_live_step_through_ends_at_the_totals(open_page, tmp_path):
    """Forward step by step, then every path of the backward pass: the gradients accumulated path by path end
    equal to the engine's totals, and the δ shown on the graph is dE_i/dh_k."""
    o = open_page(_page(tmp_path, "t3.html", "--x", "1,0,0.5", "--y", "0.5,0.5,1", "--hidden-activation", "tanh"))
    page = o.page
    page.click('button[data-step="start"]')
    page.click('button[data-step="next"]')
    assert page.locator('#live-net [data-node="h2"].pending').count() == 1  # h_2 not computed yet
    assert "Forward, step 1 of 3" in page.locator("#step-status").inner_text()
    for _ in range(3):
        page.click('button[data-step="next"]')
    assert "Backward, error E_3, path k = 3" in page.locator("#step-status").inner_text()
    assert page.locator('#live-net [data-node="h3"] text.delta').get_attribute("data-quantity") == "dE_3/dh_3"
    ref = _reference(_state_to_ref(_live(o)))
    shown = page.evaluate(_READ)
    _compare([q for q in shown if not q[0].startswith("running ")], ref, "first backward step")
    assert float(page.locator('[data-quantity="running dLoss/dw"]').get_attribute("data-value")) == pytest.approx(
        ref["dE_3/dw|k=3"] / 3, rel=1e-12)  # c times path (3, 3) alone so far
    page.click('button[data-step="end"]')
    assert page.locator("#live-steps-done").get_attribute("data-value") == str(3 + 6)  # T forward + T(T+1)/2 paths
    running = page.eval_on_selector_all('[data-quantity^="running "]', "els => els.map(e => [e.dataset.quantity, e.dataset.value])")
    assert len(running) == 5
    _compare(running, ref, "end of the step-through")  # equals dLoss/dθ of the engine (and the page's totals)


def test_live_gradient_descent(open_page, tmp_path):
    """Twenty steps of gradient descent in the page equal twenty steps with the engine's gradients."""
    o = open_page(_page(tmp_path, "seed.html", "--y", "0.2,0.9"))
    page = o.page
    page.fill("#gd-lr", "0.5")
    page.fill("#gd-steps", "20")
    page.click("#gd-run")
    page.wait_for_selector('html[data-gd="done"]')  # drawn as it goes, over a few frames
    s = _live(o)
    m = RNN.scalar()
    x, y = np.array([1.0, 0.0]), np.array([0.2, 0.9])
    curve = [m.loss(x, y)]
    for _ in range(20):
        _, g = m.loss_and_grad(x, y, backend="numpy")
        m.set_params(**{k: m.params()[k] - 0.5 * g[k] for k in PARAM_NAMES})
        curve.append(m.loss(x, y))
    for k in PARAM_NAMES:
        assert np.allclose(s[k], m.params()[k].reshape(np.shape(s[k])), rtol=1e-11, atol=0), k
    last = float(page.locator('[data-quantity="gd loss[20]"]').get_attribute("data-value"))
    assert abs(last - curve[-1]) <= 1e-11 * curve[-1] and curve[-1] < curve[0]
    assert page.locator("#gd-curve svg polyline").count() == 1
    page.click("#gd-undo")
    assert _live(o)["w"] == [[1.0]]
    # a learning rate that blows up: stopped at the last finite weights, one line saying so
    page.evaluate("() => { location.hash = 'hidden_activation=relu&output_activation=identity&x=1,2,3&y=5,5,5'; }")
    page.wait_for_function("() => window.bpttLive.state().x.length === 3")
    page.fill("#gd-lr", "50")
    page.fill("#gd-steps", "300")
    page.click("#gd-run")
    page.wait_for_selector('html[data-gd="done"]')
    msg = page.locator("#live-error").inner_text()
    assert "diverged after" in msg and "smaller learning rate" in msg
    s = _live(o)
    assert all(np.all(np.isfinite(np.asarray(s[k], dtype=float))) for k in PARAM_NAMES)
    assert np.isfinite(float(page.locator('[data-quantity="Loss"]').first.get_attribute("data-value")))


def test_live_formula_digits_follow_in_place(open_page, tmp_path):
    """T = 6 with a small w_h: paths of 1e-10 are typeset as m x 10^e; changing w_h keeps every formula's form, so
    only the digits are replaced (no new typesetting), and every formula still reads the engine's numbers."""
    o = open_page(_page(tmp_path, "t6.html", "--x", "1,0,0.5,-1,0.25,2", "--y", "0.5,0.5,1,0,0.5,1", "--w-h", "0.01"))
    page = o.page
    assert "\u00d710" in page.locator("#live-formulas").inner_text()  # some numbers in scientific form
    typesets = page.evaluate("window.bpttLive.typesets()")
    page.fill('input[data-key="w_h"]', "0.02")
    assert page.evaluate("window.bpttLive.typesets()") == typesets
    shown = page.evaluate(_READ)
    assert sum(1 for q in shown if q[3]) > 40  # the formulas' numbers are among those compared
    _compare(shown, _reference(_state_to_ref(_live(o))), "w_h = 0.02, digits replaced in place")


def test_live_pictures(open_page, tmp_path):
    """The docs' pictures of the live page: after changing w_h and the activation, and the step-through, one
    image a step (forward, then the backward pass path by path), and the same as an animated GIF."""
    from PIL import Image

    o = open_page(_page(tmp_path, "t3.html", "--x", "1,0,0.5", "--y", "0.5,0.5,1"))
    page = o.page
    page.fill('input[data-key="w_h"]', "0.5")
    page.select_option('select[data-key="hidden_activation"]', "tanh")
    out = ROOT / "docs" if os.environ.get("BPTT_WRITE_SCREENSHOT") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / "explain-live.png"), clip={"x": 0, "y": 0, "width": 1200, "height": 900})
    page.click('button[data-step="start"]')
    page.set_viewport_size({"width": 1200, "height": 1500})  # the figure and the step-through in view at once
    box = page.locator(".live-out").bounding_box()
    step = page.locator(".stepper").bounding_box()
    clip = {"x": box["x"], "y": page.locator("figure.live").bounding_box()["y"], "width": box["width"]}
    clip["height"] = step["y"] + step["height"] - clip["y"]
    frames = []
    for n in range(3 + 6 + 1):  # start, 3 forward steps, 6 paths
        path = out / f"explain-live-step-{n:02d}.png"
        page.screenshot(path=str(path), clip=clip)
        frames.append(Image.open(path).convert("P", palette=Image.ADAPTIVE))
        page.click('button[data-step="next"]')
    frames[0].save(out / "explain-live-step.gif", save_all=True, append_images=frames[1:], duration=1200, loop=0)
    assert len(frames) == 10 and (out / "explain-live-step.gif").stat().st_size > 20_000
    assert "Backward, error E_1, path k = 1" in page.locator("#step-status").inner_text()


def test_live_panel_stops_at_its_length(tmp_path, capsys):
    """Beyond html.LIVE_MAX_T steps the page is the static one, and the CLI says so on stderr."""
    from bptt import html
    x = ",".join(["0.5"] * (html.LIVE_MAX_T + 1))
    text = _page(tmp_path, "long.html", "--x", x).read_text(encoding="ascii")
    assert 'id="live"' not in text and 'id="bptt-paths"' in text
    assert f"live controls stop at T = {html.LIVE_MAX_T}" in capsys.readouterr().err
    x = ",".join(["0.5"] * html.LIVE_MAX_T)
    assert 'id="live"' in _page(tmp_path, "edge.html", "--x", x).read_text(encoding="ascii")
