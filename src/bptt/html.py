"""The document as one self-contained HTML page: `bptt explain --format html`.

The same ``document.Document`` the Markdown, LaTeX and text outputs render, written as HTML:
every formula is typeset in the browser by the KaTeX shipped in the package (``data/katex``,
its script and style inlined, its fonts as ``data:`` URIs), so the page reads offline and
fetches nothing (its Content-Security-Policy forbids it). A figure block becomes an inline SVG
of the unrolled network; the terms of the sums carry ``data-path`` (KaTeX's ``\\htmlData``),
and hovering or clicking one lights its path's edges (``data-edge``) and the factors it multiplies.

With ``live`` (``live_state``; ``bptt explain`` passes it) the page is also live: ``data/live.js``
(inlined) holds the state (sizes, parameters, h_0, sequence, activations, loss, reduction,
truncation) in the URL fragment with ``bptt grad``'s option names as keys, and on every change
recomputes the forward values, the chain-rule factors, every path, term and total, the gradient
flow and the formulas with the numbers in: a second implementation of the recurrence, pinned to
the engine by tests/test_html.py.  The document below it is the one written for the page's own
configuration, marked out of date while the state differs.
"""

from __future__ import annotations

import base64
import html as _html
import json
import re
from functools import lru_cache
from importlib import resources

from .document import MATH, Block, Document, Figure, marks_to

__all__ = ["render", "live_state", "LIVE_MAX_T", "LIVE_MAX_SIZE"]

# the page's own layout (the figure's geometry below)
DX, ROW_Y, R, LEFT = 110, {2: 60, 1: 162, 0: 264}, 21, 70
HEIGHT = 330
LIVE_MAX_T = 50  # the live page recomputes O(T^2) paths and draws a T x T gradient-flow map on every change
LIVE_MAX_SIZE = 4  # every entry of w_h is a control: "small matrices"
_FONT_URL = re.compile(r"src:url\(fonts/([A-Za-z0-9_-]+)\.woff2\) format\(\"woff2\"\)[^;}]*")


@lru_cache(maxsize=1)
def katex_assets() -> tuple[str, str]:
    """(script, style) of the vendored KaTeX, the style's fonts inlined as data: URIs (woff2 only)."""
    root = resources.files("bptt") / "data" / "katex"
    script = (root / "katex.min.js").read_text(encoding="utf-8")
    style = (root / "katex.min.css").read_text(encoding="utf-8")

    def inline(m: re.Match) -> str:
        data = base64.b64encode((root / "fonts" / f"{m.group(1)}.woff2").read_bytes()).decode("ascii")
        return f'src:url(data:font/woff2;base64,{data}) format("woff2")'

    return script, _FONT_URL.sub(inline, style)


@lru_cache(maxsize=1)
def live_assets() -> tuple[str, str]:
    """(script, style) of the live page, ``data/live.js`` and ``data/live.css``."""
    root = resources.files("bptt") / "data"
    return (root / "live.js").read_text(encoding="utf-8"), (root / "live.css").read_text(encoding="utf-8")


def live_state(params: dict, x, h0=0.0, y=None, hidden_activation: str = "sigmoid",
               output_activation: str = "sigmoid", loss: str = "squared_error", reduction: str = "mean",
               truncate: int | None = None, expand: int = 3) -> dict:
    """What the live page starts from: the model (parameters as numbers or arrays of the engine's shapes),
    the sequence x (T,) or (T, D), targets y (None: 0.5 at every step and output, as the derivation keeps
    them symbols), and the tables' names, so the page offers exactly what the engine runs."""
    import numpy as np

    from . import activations, losses
    from .engine import PARAM_NAMES

    p = {k: np.atleast_1d(np.asarray(params[k], dtype=np.float64)) for k in PARAM_NAMES}
    p = {k: (v.reshape(1, 1) if k in ("w", "w_x", "w_h") and v.ndim == 1 else v) for k, v in p.items()}
    H, D = p["w_x"].shape
    O = p["w"].shape[0]
    xs = np.asarray(x, dtype=np.float64).reshape(len(x), D)
    ys = np.full((len(xs), O), 0.5) if y is None else np.asarray(y, dtype=np.float64).reshape(len(xs), O)
    state = {"D": D, "H": H, "O": O, **{k: v.tolist() for k, v in p.items()},
             "h0": np.broadcast_to(np.asarray(h0, dtype=np.float64), (H,)).tolist(), "x": xs.tolist(), "y": ys.tolist(),
             "hidden_activation": hidden_activation, "output_activation": output_activation, "loss": loss,
             "reduction": reduction, "truncate": truncate}
    return {"state": state, "targets_given": y is not None,
            "hidden": list(activations.HIDDEN_ACTIVATIONS), "output": list(activations.OUTPUT_ACTIVATIONS),
            "losses": {n: {"outputs": None if r.outputs is None else list(r.outputs), "formula": r.formula}
                       for n, r in losses.LOSSES.items()},
            "max_T": LIVE_MAX_T, "max_size": LIVE_MAX_SIZE, "expand": expand}


def render(doc: Document, live: dict | None = None) -> str:
    """The whole page; with ``live`` (``live_state``) the live panel too."""
    script, style = katex_assets()
    title = next((b.data for b in doc.blocks if b.kind == "h1"), "bptt explain")
    if live is None:
        body = "\n".join(_block(b) for b in doc.blocks)
        page = _PAGE.format(title=_text(re.sub(r"\$", "", title)), katex_css=style, css=_CSS, body=body, main="",
                            data_id="bptt-paths", paths=_json_script(_paths(doc)), katex_js=_script(script),
                            js=_script(_JS_TYPESET + _JS_HOVER), live_css="", live_js="")
    else:
        live_js, live_css = live_assets()
        head = 2 if len(doc.blocks) > 1 and doc.blocks[1].kind == "p" else 1  # the title and its first paragraph
        blocks = [b for b in doc.blocks if b.kind != "figure"]  # the live network takes the figure's place
        body = ("\n".join(_block(b) for b in blocks[:head]) + "\n" + _live_panel(live) + '\n<div id="doc">\n'
                + _STALE + "\n".join(_block(b) for b in blocks[head:]) + "\n</div>")
        page = _PAGE.format(title=_text(re.sub(r"\$", "", title)), katex_css=style, css=_CSS, body=body,
                            main=' class="live"', data_id="bptt-state", paths=_json_script(live), katex_js=_script(script),
                            js=_script(_JS_TYPESET), live_css=f"\n<style>{live_css}</style>",
                            live_js=f"\n<script>{_script(live_js)}</script>")
    # ASCII only: every other character as a character reference (the scripts and styles, where a reference
    # would not be decoded, are ASCII already), so any terminal or file passes the page on unchanged
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")


# ------------------------------------------------------------------ blocks
def _block(b: Block) -> str:
    if b.kind == "h1":
        return f"<h1>{_inline(b.data)}</h1>"
    if b.kind == "h2":
        return f"<h2>{_inline(b.data)}</h2>"
    if b.kind == "p":
        return f"<p>{_inline(b.data)}</p>"
    if b.kind == "list":
        return "<ol>\n" + "\n".join(f"<li>{_inline(s)}</li>" for s in b.data) + "\n</ol>"
    if b.kind == "eq":
        return _display(b.data) if b.data else ""
    if b.kind == "table":
        return _table(*b.data)
    if b.kind == "figure":
        return _figure(b.data)
    raise ValueError(b.kind)  # pragma: no cover - internal


def _tex(latex: str) -> str:
    """LaTeX for KaTeX: each mark becomes \\htmlData{path=...}{...}, HTML-escaped for the element's text."""
    return _text(marks_to(latex, r"\htmlData{{{kind}={tag}}}{{"))


def _display(lines: list[str]) -> str:
    body = " \\\\\n".join(lines)
    return f'<div class="tex display">\\begin{{aligned}}\n{_tex(body)}\n\\end{{aligned}}</div>'


def _inline(s: str) -> str:
    """Text with $math$ and `code´: the text escaped, the math left for KaTeX."""
    parts = MATH.split(s)
    out = []
    for j, part in enumerate(parts):
        if j % 2:
            out.append(f'<span class="tex">{_tex(part)}</span>')
            continue
        glue = re.match(r"[,.;:)]+", part) if j else None  # punctuation right after math stays on its line
        if glue:
            out[-1] = f'<span class="nobr">{out[-1]}{_text(glue.group(0))}</span>'
            part = part[glue.end():]
        out.append(re.sub(r"`([^´]*)´", r"<code>\1</code>", _text(part)))
    return "".join(out)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header) + "</tr>"
    body = "\n".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table>\n<thead>{head}</thead>\n<tbody>\n{body}\n</tbody>\n</table></div>'


# ------------------------------------------------------------------ the figure
def _figure(fig: Figure) -> str:
    readout = '<div id="readout" aria-live="polite"></div>\n' if fig.paths else ""
    return (f'<figure class="net">\n<figcaption><strong>{_text(fig.title)}.</strong> {_text(fig.caption)} '
            f'{_VALUES_LEGEND}</figcaption>\n{readout}<div class="scroll">{_svg(fig)}</div>\n{_path_list(fig)}</figure>')


_VALUES_LEGEND = ("The number beside each node is its forward value: the input x<sub>t</sub>, the state "
                  "h<sub>t</sub> = f(z<sub>t</sub>), the prediction y&prime;<sub>t</sub> = g(u<sub>t</sub>).")


def _xy(col: int, row: int) -> tuple[int, int]:
    return LEFT + col * DX, ROW_Y[row]


def _svg(fig: Figure) -> str:
    pos = {nd.id: _xy(nd.col, nd.row) for nd in fig.nodes}
    width = LEFT + max(nd.col for nd in fig.nodes) * DX + (260 if fig.paths else 90)  # room for a contribution
    edges = [_edge(e.id, e.src, e.dst, e.param, pos) for e in fig.edges]
    nodes = [_node(nd.id, nd.name, nd.value, *pos[nd.id]) for nd in fig.nodes]
    rows = "".join(f'<text class="rowlabel" x="4" y="{ROW_Y[r] + 4}">{name}</text>'
                   for r, name in ((2, "outputs"), (1, "states"), (0, "inputs")))
    return (f'<svg class="net" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
            f'viewBox="0 0 {width} {HEIGHT}" role="img" aria-label="{_text(fig.title)}">\n'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
            'markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/>'
            '</marker></defs>\n' + rows + "\n"
            + "\n".join(edges) + "\n" + "\n".join(nodes)
            + '\n<text id="contrib" x="0" y="0"></text>\n</svg>')


def _edge(eid: str, src: str, dst: str, param: str, pos: dict) -> str:
    """A line from src to dst, shortened to the circles; a bias (no node) comes in from the upper left."""
    x2, y2 = pos[dst]
    x1, y1 = pos[src] if src in pos else (x2 - 34, y2 - 40)
    dx, dy = x2 - x1, y2 - y1
    length = (dx * dx + dy * dy) ** 0.5
    ux, uy = dx / length, dy / length
    start = R if src in pos else 0
    a = (x1 + ux * start, y1 + uy * start)
    b = (x2 - ux * (R + 2), y2 - uy * (R + 2))
    label = _sub(param, dy=3)
    if src not in pos:  # a bias: its name at the start of its line
        lx, ly, anchor = a[0] - 4, a[1] - 3, "end"
    elif dy == 0:  # w_h: above its line, centred, clear of the arrowhead
        lx, ly, anchor = (a[0] + b[0]) / 2 - 4, a[1] - 7, "middle"
    else:
        lx, ly, anchor = (a[0] + b[0]) / 2 + 5, (a[1] + b[1]) / 2 + 4, "start"
    return (f'<g class="edge-g"><line class="edge" data-edge="{eid}" x1="{a[0]:.1f}" y1="{a[1]:.1f}" '
            f'x2="{b[0]:.1f}" y2="{b[1]:.1f}" marker-end="url(#arrow)"/>'
            f'<text class="param" text-anchor="{anchor}" x="{lx:.1f}" y="{ly:.1f}">{label}</text></g>')


def _node(nid: str, name: str, value: str, x: int, y: int) -> str:
    return (f'<g class="node" data-node="{nid}"><circle cx="{x}" cy="{y}" r="{R}"/>'
            f'<text class="name" x="{x}" y="{y + 5}">{_sub(name)}</text>'
            f'<text class="value" x="{x + R + 3}" y="{y + R + 8}">{_text(value)}</text></g>')


def _sub(name: str, dy: int = 4) -> str:
    """'h_12' -> h<tspan subscript>12</tspan>, for SVG text."""
    base, _, sub = name.partition("_")
    base = _text(base)
    return base if not sub else f'{base}<tspan class="sub" dy="{dy}">{_text(sub)}</tspan>'


def _hsub(name: str) -> str:
    """'w_x' -> w<sub>x</sub>, for HTML text."""
    base, _, sub = name.partition("_")
    return _text(base) if not sub else f"{_text(base)}<sub>{_text(sub)}</sub>"


_SUBSCRIPTS = str.maketrans("0123456789xhik", "₀₁₂₃₄₅₆₇₈₉ₓₕᵢₖ")


def _plain(s: str) -> str:
    """'0.1 - 0.2 y_12' -> '0.1 − 0.2 y₁₂': a number or a parameter as plain text, subscripts as characters."""
    s = re.sub(r"_\{?([0-9xhik]+)\}?", lambda m: m.group(1).translate(_SUBSCRIPTS), s)
    return s.replace(" - ", " \u2212 ")


def _path_list(fig: Figure) -> str:
    """Every path of every error term, with its contribution, grouped by term: the chips carry data-path."""
    if not fig.paths:
        return ""
    rows, current = [], None
    for p in fig.paths:
        if (p.theta, p.i) != current:
            current = (p.theta, p.i)
            rows.append(f'<div class="term"><span class="lhs">dE<sub>{p.i}</sub>/d{_hsub(p.theta)} =</span>')
        sep = "" if rows[-1].endswith("</span>") else '<span class="plus"> + </span>'
        rows[-1] += (f'{sep}<button type="button" class="path" data-path="{p.tag}">'
                     f'<span class="k">k = {p.k}</span><span class="v">{_text(_plain(p.value))}</span></button>')
    return '<div class="paths">\n' + "\n".join(r + "</div>" for r in rows) + "\n</div>\n"


def _paths(doc: Document) -> dict:
    """tag -> {edges, prefix, label, value}: what the page's script lights for each path."""
    out = {}
    for b in doc.blocks:
        if b.kind != "figure":
            continue
        for p in b.data.paths:
            route = " \u2190 ".join(_route(p.edges, p.i))
            out[p.tag] = {"edges": list(p.edges), "prefix": p.prefix, "value": _plain(p.value), "end": f"y{p.i}",
                          "label": f"dE{_plain('_' + str(p.i))}/d{_plain(p.theta)}, path k = {p.k} ({route})"}
    return out


def _route(edges: tuple[str, ...], i: int) -> list[str]:
    """E_i <- y'_i <- h_i <- ... : the nodes of a path, from the error back to the parameter."""
    names = [_plain(f"E_{i}")]
    for e in edges:
        src, dst = e.split("-")
        for n in (dst, src):
            label = _node_label(n)
            if label not in names:
                names.append(label)
    return names


def _node_label(n: str) -> str:
    kind, t = n[0], n[1:]
    if n in ("b1", "b2"):
        return _plain("b_" + n[1])
    return {"x": "x", "h": "h", "y": "y'"}[kind] + _plain("_" + t)


# ------------------------------------------------------------------ the live panel (filled by live.js)
_STALE = ('<p id="stale-banner" hidden>The derivation below was written for the page\'s own configuration; the live '
          'part above follows your changes. <button type="button" id="stale-restore">Back to the page\'s '
          'configuration</button></p>\n')


def _live_panel(live: dict) -> str:
    targets = "" if live.get("targets_given") else (
        " The derivation below keeps the targets as symbols; the live part needs numbers, so it starts every "
        "y<sub>t</sub> at 0.5.")
    return f"""<section id="live" aria-labelledby="live-h">
<h2 id="live-h">Live: change any number and every value below follows</h2>
<p>Every control recomputes, in the page, the forward pass, each chain-rule factor, every path of every error term,
the gradients and the gradient flow (the same arithmetic as <code>bptt grad</code>). The page's address holds the
configuration: copy it to share exactly this state.{targets}</p>
<div id="live-error" role="alert" hidden></div>
<p id="live-note" aria-live="polite"></p>
<div class="live-grid">
<div id="live-controls" role="group" aria-label="the network and the sequence"></div>
<div class="live-out">
<div class="linkbar"><button type="button" id="live-copy">Copy link</button>
<input type="text" id="live-link" readonly aria-label="link to this configuration">
<button type="button" id="live-restore">Back to the page's configuration</button></div>
<figure class="net live"><figcaption><strong id="live-net-title">The unrolled network</strong>. {_VALUES_LEGEND}
Hover or click a path below (or a term of a formula) to light its edges; during the backward step-through
&delta; = dE<sub>i</sub>/dh<sub>k</sub> appears above h<sub>k</sub>.</figcaption>
<div id="readout" aria-live="polite"></div>
<div class="scroll" id="live-net"></div>
</figure>
<div class="stepper" role="group" aria-label="step-through">
<strong>Step through:</strong>
<button type="button" data-step="start">Start</button>
<button type="button" data-step="prev">&larr; Back</button>
<button type="button" data-step="next">Next &rarr;</button>
<button type="button" data-step="play">Play / pause</button>
<button type="button" data-step="backward">Jump to the backward pass</button>
<button type="button" data-step="end">End</button>
<button type="button" data-step="exit">Show all</button>
<p id="step-status" aria-live="polite"></p>
<div id="step-running"></div><span id="live-steps-done" hidden></span>
</div>
<div id="live-summary"></div>
<div class="scroll" id="live-totals"></div>
<h3>Every path</h3>
<p>Path k of dE<sub>i</sub>/d&theta; is (dE<sub>i</sub>/dy'<sub>i</sub>)(dy'<sub>i</sub>/dh<sub>i</sub>)(dh<sub>i</sub>/dh<sub>k</sub>)(&part;h<sub>k</sub>/&part;&theta;).
<label>Formulas and paths for <select id="live-focus-select"></select></label></p>
<div id="live-formulas"></div>
<div id="live-paths" class="paths"></div>
<div class="scroll" id="live-terms"></div>
<h3>Forward values and chain-rule factors</h3>
<div class="scroll" id="live-steps"></div>
<h3>Gradient flow</h3>
<div class="scroll" id="live-flow"></div>
<h3>Gradient descent</h3>
<p><label>learning rate <input type="text" id="gd-lr" value="0.5" size="6"></label>
<label>steps <input type="text" id="gd-steps" value="300" size="6"></label>
<button type="button" id="gd-run">Train on this sequence</button>
<button type="button" id="gd-undo" disabled>Undo the training</button></p>
<div id="gd-curve"></div>
</div>
</div>
</section>"""


# ------------------------------------------------------------------ escaping
def _text(s: str) -> str:
    return _html.escape(s, quote=True)


def _script(js: str) -> str:
    """A script body that cannot close its element early."""
    return js.replace("</script", "<\\/script")


def _json_script(data) -> str:
    return json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("</", "<\\/")


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'; font-src data:; img-src data:">
<title>{title}</title>
<style>{katex_css}</style>
<style>{css}</style>{live_css}
</head>
<body>
<main{main}>
{body}
</main>
<script type="application/json" id="{data_id}">{paths}</script>
<script>{katex_js}</script>
<script>{js}</script>{live_js}
</body>
</html>
"""

_CSS = """
body { margin: 0; background: #fdfdfb; color: #1d1d1f; font: 16px/1.5 "KaTeX_Main", Georgia, serif; }
main { max-width: 64rem; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0 0.75rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 0.5rem; border-bottom: 1px solid #ddd; }
code { font-family: "KaTeX_Typewriter", monospace; font-size: 0.95em; background: #f1f1ee; padding: 0 0.2em; }
.tex.display { display: block; overflow-x: auto; overflow-y: hidden; padding: 0.25rem 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { padding: 0.15rem 0.6rem; text-align: right; border-bottom: 1px solid #eee; }
figure.net { margin: 1rem 0 1.5rem; padding: 0.75rem; border: 1px solid #ddd; border-radius: 6px; background: #fff; }
figcaption { font-size: 0.95rem; margin-bottom: 0.5rem; }
svg text { font-family: "KaTeX_Main", Georgia, serif; }
svg .node circle { fill: #f4f6fb; stroke: #44506a; stroke-width: 1.5; }
svg .node text.name { font-size: 16px; font-style: italic; text-anchor: middle; }
svg .node text.value { font-size: 12px; fill: #555; }
svg .node.on circle { fill: #fff1d6; stroke: #c46a00; }
svg tspan.sub { font-size: 11px; }
svg line.edge { stroke: #9aa3b5; stroke-width: 1.5; }
svg line.edge.lit { stroke: #d9480f; stroke-width: 4; }
svg text.param { font-size: 11px; fill: #7a8296; font-style: italic; }
#readout { height: 1.5em; line-height: 1.5em; overflow: hidden; white-space: nowrap; text-overflow: ellipsis;
  color: #b33c0a; font-size: 0.95rem; }
svg text.param { paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg text.rowlabel { font-size: 11px; fill: #8a8f98; }
.nobr { white-space: nowrap; }
svg #contrib { font-size: 13px; fill: #b33c0a; font-weight: bold; }
.paths { font-size: 0.85rem; margin-top: 0.5rem; }
.paths .term { margin: 0.15rem 0; }
.paths .lhs { display: inline-block; min-width: 7.5rem; }
button.path { font: inherit; border: 1px solid #ccd; border-radius: 4px; background: #f7f8fb; padding: 0 0.35rem;
  cursor: pointer; }
button.path .k { color: #667; margin-right: 0.45em; }
button.path .k::after { content: ":"; }
button.path.hl, [data-path].hl { background: #ffe3c4; outline: 1px solid #d9480f; }
[data-prefix].hl-prefix { background: #e2ecff; outline: 1px solid #5c7cfa; }
[data-path] { cursor: pointer; }
/* KaTeX stacks the rows of an aligned block as relatively positioned boxes that overlap (their struts):
   lift the marked terms above them, or the next row would take the pointer */
.katex [data-path], .katex [data-prefix] { position: relative; z-index: 1; }
"""

_JS_TYPESET = r"""
(function () {
  "use strict";
  var opts = {throwOnError: false, strict: "ignore", output: "html", maxExpand: 1000000,
              trust: function (c) { return c.command === "\\htmlData"; }};
  document.querySelectorAll(".tex").forEach(function (el) {
    katex.render(el.textContent, el, Object.assign({displayMode: el.classList.contains("display")}, opts));
  });
})();
"""

# the static page's hovering (the live page's script does its own, from the live numbers)
_JS_HOVER = r"""
(function () {
  "use strict";
  var P = JSON.parse(document.getElementById("bptt-paths").textContent);
  var readout = document.getElementById("readout");
  var contrib = document.getElementById("contrib");
  var pinned = null;
  function each(sel, f) { document.querySelectorAll(sel).forEach(f); }
  function clear() {
    each(".lit", function (e) { e.classList.remove("lit"); });
    each(".hl", function (e) { e.classList.remove("hl"); });
    each(".hl-prefix", function (e) { e.classList.remove("hl-prefix"); });
    each(".node.on", function (e) { e.classList.remove("on"); });
    if (readout) readout.textContent = "";
    if (contrib) contrib.textContent = "";
  }
  function show(tag) {
    clear();
    var p = tag && P[tag];
    if (!p) return;
    p.edges.forEach(function (id) {
      each('[data-edge="' + id + '"]', function (e) { e.classList.add("lit"); });
      id.split("-").forEach(function (n) { each('[data-node="' + n + '"]', function (e) { e.classList.add("on"); }); });
    });
    each('[data-path="' + tag + '"]', function (e) { e.classList.add("hl"); });
    each('[data-prefix="' + p.prefix + '"]', function (e) { e.classList.add("hl-prefix"); });
    if (readout) readout.textContent = p.label + ": " + p.value;
    var end = document.querySelector('[data-node="' + p.end + '"] circle');
    if (contrib && end) {
      contrib.setAttribute("x", +end.getAttribute("cx") + 25);
      contrib.setAttribute("y", +end.getAttribute("cy") - 8);
      contrib.textContent = p.value;
    }
  }
  function tagOf(ev) {
    var t = ev.target.closest && ev.target.closest("[data-path]");
    return t ? t.getAttribute("data-path") : null;
  }
  document.addEventListener("mouseover", function (ev) { var t = tagOf(ev); if (t) show(t); });
  document.addEventListener("mouseout", function (ev) { if (tagOf(ev)) show(pinned); });
  document.addEventListener("click", function (ev) {
    var t = tagOf(ev);
    if (!t) return;
    pinned = pinned === t ? null : t;
    show(pinned || t);
  });
  document.documentElement.setAttribute("data-ready", "1");
})();
"""
