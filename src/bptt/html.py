"""The document as one self-contained HTML page: `bptt explain --format html`.

The same ``document.Document`` the Markdown, LaTeX and text outputs render, written as HTML:
every formula is typeset in the browser by the KaTeX shipped in the package (``data/katex``,
its script and style inlined, its fonts as ``data:`` URIs), so the page reads offline and
fetches nothing (its Content-Security-Policy forbids it). A figure block becomes an inline SVG
of the unrolled network; the terms of the sums carry ``data-path`` (KaTeX's ``\\htmlData``),
and hovering or clicking one lights its path's edges (``data-edge``) and the factors it multiplies.
"""

from __future__ import annotations

import base64
import html as _html
import json
import re
from functools import lru_cache
from importlib import resources

from .document import MATH, Block, Document, Figure, marks_to

__all__ = ["render"]

# the page's own layout (the figure's geometry below)
DX, ROW_Y, R = 96, {2: 48, 1: 150, 0: 252}, 21
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


def render(doc: Document) -> str:
    """The whole page."""
    script, style = katex_assets()
    title = next((b.data for b in doc.blocks if b.kind == "h1"), "bptt explain")
    body = "\n".join(_block(b) for b in doc.blocks)
    page = _PAGE.format(title=_text(re.sub(r"\$", "", title)), katex_css=style, css=_CSS, body=body,
                        paths=_json_script(_paths(doc)), katex_js=_script(script), js=_JS)
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
        else:
            out.append(re.sub(r"`([^´]*)´", r"<code>\1</code>", _text(part)))
    return "".join(out)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header) + "</tr>"
    body = "\n".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table>\n<thead>{head}</thead>\n<tbody>\n{body}\n</tbody>\n</table></div>'


# ------------------------------------------------------------------ the figure
def _figure(fig: Figure) -> str:
    readout = '<div id="readout" aria-live="polite"></div>\n' if fig.paths else ""
    return (f'<figure class="net">\n<figcaption><strong>{_text(fig.title)}.</strong> {_text(fig.caption)}'
            f'</figcaption>\n{readout}<div class="scroll">{_svg(fig)}</div>\n{_path_list(fig)}</figure>')


def _xy(col: int, row: int) -> tuple[int, int]:
    return 60 + col * DX, ROW_Y[row]


def _svg(fig: Figure) -> str:
    pos = {nd.id: _xy(nd.col, nd.row) for nd in fig.nodes}
    width = 60 + max(nd.col for nd in fig.nodes) * DX + (260 if fig.paths else 90)  # room for a contribution
    edges = [_edge(e.id, e.src, e.dst, e.param, pos) for e in fig.edges]
    nodes = [_node(nd.id, nd.name, nd.value, *pos[nd.id]) for nd in fig.nodes]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="300" viewBox="0 0 {width} 300" '
            f'role="img" aria-label="{_text(fig.title)}">\n'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
            'markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/>'
            '</marker></defs>\n'
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
    label = _sub(param)
    lx, ly = (a[0] - 14, a[1] - 2) if src not in pos else ((a[0] + b[0]) / 2 + 5, (a[1] + b[1]) / 2 - 5)
    return (f'<g class="edge-g"><line class="edge" data-edge="{eid}" x1="{a[0]:.1f}" y1="{a[1]:.1f}" '
            f'x2="{b[0]:.1f}" y2="{b[1]:.1f}" marker-end="url(#arrow)"/>'
            f'<text class="param" x="{lx:.1f}" y="{ly:.1f}">{label}</text></g>')


def _node(nid: str, name: str, value: str, x: int, y: int) -> str:
    return (f'<g class="node" data-node="{nid}"><circle cx="{x}" cy="{y}" r="{R}"/>'
            f'<text class="name" x="{x}" y="{y + 5}">{_sub(name)}</text>'
            f'<text class="value" x="{x + R + 3}" y="{y + R + 8}">{_text(value)}</text></g>')


def _sub(name: str) -> str:
    """'h_12' -> h<tspan subscript>12</tspan>, for SVG text."""
    base, _, sub = name.partition("_")
    base = _text(base)
    return base if not sub else f'{base}<tspan class="sub" dy="4">{_text(sub)}</tspan>'


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
        sep = "" if rows[-1].endswith("</span>") else " + "
        rows[-1] += (f'{sep}<button type="button" class="path" data-path="{p.tag}">'
                     f'<span class="k">k = {p.k}</span> {_text(_plain(p.value))}</button>')
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
<style>{css}</style>
</head>
<body>
<main>
{body}
</main>
<script type="application/json" id="bptt-paths">{paths}</script>
<script>{katex_js}</script>
<script>{js}</script>
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
#readout { min-height: 1.5em; color: #b33c0a; font-size: 0.95rem; }
svg #contrib { font-size: 13px; fill: #b33c0a; font-weight: bold; }
.paths { font-size: 0.85rem; margin-top: 0.5rem; }
.paths .term { margin: 0.15rem 0; }
.paths .lhs { display: inline-block; min-width: 7.5rem; }
button.path { font: inherit; border: 1px solid #ccd; border-radius: 4px; background: #f7f8fb; padding: 0 0.35rem;
  cursor: pointer; }
button.path .k { color: #667; }
button.path.hl, [data-path].hl { background: #ffe3c4; outline: 1px solid #d9480f; }
[data-prefix].hl-prefix { background: #e2ecff; outline: 1px solid #5c7cfa; }
[data-path] { cursor: pointer; }
/* KaTeX stacks the rows of an aligned block as relatively positioned boxes that overlap (their struts):
   lift the marked terms above them, or the next row would take the pointer */
.katex [data-path], .katex [data-prefix] { position: relative; z-index: 1; }
"""

_JS = r"""
(function () {
  "use strict";
  var opts = {throwOnError: false, strict: "ignore", output: "html", maxExpand: 1000000,
              trust: function (c) { return c.command === "\\htmlData"; }};
  document.querySelectorAll(".tex").forEach(function (el) {
    katex.render(el.textContent, el, Object.assign({displayMode: el.classList.contains("display")}, opts));
  });
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
