"""`bptt explain --format html`: the page, opened as a file in headless Chromium (Playwright).

No network: everything the page needs is inside it. The math is typeset by the bundled KaTeX
(as many formulas as the document model has, none in error), the unrolled network is drawn
with one node per state, and hovering a term of a sum lights exactly its path's edges.

Set BPTT_WRITE_SCREENSHOT=1 to write the README's screenshot, docs/explain-html.png.
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
    assert text.count("<script") == 3 and not re.search(r"<(link|img|iframe|object)\b|\bsrc\s*=", markup)
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
    assert page.locator(".katex").count() == n_math
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
    assert o.page.locator("[data-path]").count() == 0
    assert "names the repeated factors" in o.page.locator("figcaption").inner_text()


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
