"""A tiny document model: one source, rendered as Markdown, LaTeX, plain text (here) or HTML (``bptt.html``).

Blocks are headings, paragraphs (text with ``$inline math$``; ```code´`` for code), display
equations (lines of LaTeX, '&' marks the alignment point), tables, lists and figures
(``Figure``: a picture of the unrolled network, drawn only by the HTML renderer).

Inside LaTeX a part may be *marked* (``mark``): the HTML page ties it to a path of the
figure (hover it and the path lights up); every other format drops the marks, so a
marked document renders byte for byte as an unmarked one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

# ------------------------------------------------------------------ marks
MARK_OPEN, MARK_SEP, MARK_CLOSE = "\ue000", "\ue001", "\ue002"
_MARK = re.compile(MARK_OPEN + "([a-z]+)=([A-Za-z0-9-]+)" + MARK_SEP)


def mark(kind: str, tag: str, latex: str) -> str:
    """latex, marked as part `tag` of kind 'path' (one path k of a sum) or 'prefix' (the factor
    that multiplies all of a term's paths)."""
    return f"{MARK_OPEN}{kind}={tag}{MARK_SEP}{latex}{MARK_CLOSE}"


def unmark(s: str) -> str:
    """s without its marks."""
    return _MARK.sub("", s).replace(MARK_CLOSE, "")


def marks_to(s: str, fmt: str) -> str:
    """Each mark as fmt.format(kind=..., tag=...) followed by the marked text and a closing '}'."""
    return _MARK.sub(lambda m: fmt.format(kind=m.group(1), tag=m.group(2)), s).replace(MARK_CLOSE, "}")


def _unmark_data(x: Any) -> Any:
    if isinstance(x, str):
        return unmark(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_unmark_data(v) for v in x)
    return x


# ------------------------------------------------------------------ the figure
@dataclass(frozen=True)
class Node:
    """A state of the unrolled network: id ('x1', 'h0', 'y2'), its name (plain text), value, grid place."""

    id: str
    name: str
    value: str
    col: int
    row: int  # 0: inputs x_t, 1: states h_t, 2: predictions y'_t


@dataclass(frozen=True)
class Edge:
    """A dependence: id 'src-dst' ('h1-h2', 'x1-h1', 'b1-h1': a bias has no node), the parameter on it."""

    id: str
    src: str
    dst: str
    param: str


@dataclass(frozen=True)
class PathInfo:
    """One path k of dE_i/dθ: its tag (the mark's), edges, contribution (plain text), and the prefix tag."""

    tag: str
    theta: str
    i: int
    k: int
    edges: tuple[str, ...]
    value: str
    prefix: str


@dataclass(frozen=True)
class Figure:
    """The unrolled network; ``paths`` is empty when the document does not write paths out."""

    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    paths: tuple[PathInfo, ...]
    caption: str


MATH = re.compile(r"\$([^$]+)\$")  # inline math in text


@dataclass
class Block:
    kind: str  # 'h1', 'h2', 'p', 'eq', 'table', 'list', 'figure'
    data: Any


@dataclass
class Document:
    """Headings, paragraphs (text with $inline math$), display equations (lines of LaTeX,
    '&' marks the alignment point), tables, lists and figures, rendered as md / tex / text
    (figures left out) by ``render`` and as HTML by ``bptt.html.render``."""

    blocks: list[Block] = field(default_factory=list)

    def h1(self, s):
        self.blocks.append(Block("h1", s))

    def h2(self, s):
        self.blocks.append(Block("h2", s))

    def p(self, s):
        self.blocks.append(Block("p", s))

    def eq(self, *lines):
        self.blocks.append(Block("eq", [ln for ln in lines if ln]))

    def table(self, header, rows):
        self.blocks.append(Block("table", (header, rows)))

    def bullets(self, items):
        self.blocks.append(Block("list", items))

    def figure(self, fig: Figure):
        self.blocks.append(Block("figure", fig))

    def render(self, fmt: str) -> str:
        """'md', 'tex' or 'text': the marks dropped, the figures left out."""
        return {"md": self._md, "tex": self._tex, "text": self._text}[fmt](self.unmarked().blocks)

    def unmarked(self) -> "Document":
        """The same document with every mark removed and without figures."""
        return Document([replace(b, data=_unmark_data(b.data)) for b in self.blocks if b.kind != "figure"])

    def math_count(self) -> int:
        """How many formulas the document typesets: each $...$ in text, each non-empty display equation."""
        n = 0
        for b in self.blocks:
            if b.kind == "eq":
                n += 1 if b.data else 0
            elif b.kind in ("h1", "h2", "p"):
                n += len(MATH.findall(b.data))
            elif b.kind == "list":
                n += sum(len(MATH.findall(s)) for s in b.data)
            elif b.kind == "table":
                header, rows = b.data
                n += sum(len(MATH.findall(c)) for r in [header, *rows] for c in r)
        return n

    # -- Markdown with LaTeX math (GitHub / MathJax / KaTeX)
    def _md(self, blocks: list[Block]) -> str:
        out = []
        for b in blocks:
            if b.kind == "h1":
                out.append(f"# {b.data}\n")
            elif b.kind == "h2":
                out.append(f"## {b.data}\n")
            elif b.kind == "p":
                out.append(b.data.replace("´", "`") + "\n")
            elif b.kind == "list":
                out.append("\n".join(f"{i}. {s.replace('´', '`')}" for i, s in enumerate(b.data, 1)) + "\n")
            elif b.kind == "eq":
                body = " \\\\\n".join(b.data)
                out.append("$$\n\\begin{aligned}\n" + body + "\n\\end{aligned}\n$$\n")
            elif b.kind == "table":
                header, rows = b.data
                lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
                lines += ["| " + " | ".join(r) + " |" for r in rows]
                out.append("\n".join(lines) + "\n")
        return "\n".join(out)

    # -- a complete LaTeX document (amsmath and longtable, both in a basic TeX install)
    def _tex(self, blocks: list[Block]) -> str:
        out = [
            r"\documentclass[10pt]{article}",
            r"\usepackage[T1]{fontenc}",
            r"\usepackage{amsmath}",
            r"\usepackage{longtable}",
            r"\allowdisplaybreaks\emergencystretch=3em",
            r"\setlength{\textwidth}{6.5in}\setlength{\oddsidemargin}{0in}\setlength{\evensidemargin}{0in}",
            r"\setlength{\textheight}{9in}\setlength{\topmargin}{-0.5in}",
            r"\begin{document}",
        ]
        for b in blocks:
            if b.kind == "h1":
                out.append(r"\section*{" + _tex_text(b.data) + "}")
            elif b.kind == "h2":
                out.append(r"\subsection*{" + _tex_text(b.data) + "}")
            elif b.kind == "p":
                out.append(_tex_text(b.data) + "\n")
            elif b.kind == "list":
                out.append(r"\begin{enumerate}")
                out += [r"\item " + _tex_text(s) for s in b.data]
                out.append(r"\end{enumerate}")
            elif b.kind == "eq":
                body = " \\\\\n".join(ln if "&" in ln else "&" + ln for ln in b.data)
                out.append("\\begin{align*}\n" + body + "\n\\end{align*}")
            elif b.kind == "table":
                header, rows = b.data
                spec = "r" * len(header)
                out.append(r"{\footnotesize\setlength{\tabcolsep}{3pt}\begin{longtable}{" + spec + "}")
                out.append(" & ".join(_tex_text(c) for c in header) + r" \\ \hline\endhead")
                out += [" & ".join(_tex_text(c) for c in r) + r" \\" for r in rows]
                out.append(r"\end{longtable}}")
        out.append(r"\end{document}")
        return "\n".join(out) + "\n"

    # -- plain terminal text
    def _text(self, blocks: list[Block]) -> str:
        out = []
        for b in blocks:
            if b.kind == "h1":
                s = _plain_text(b.data)
                out.append(s + "\n" + "=" * len(s) + "\n")
            elif b.kind == "h2":
                s = _plain_text(b.data)
                out.append(s + "\n" + "-" * len(s) + "\n")
            elif b.kind == "p":
                out.append(_wrap(_plain_text(b.data)) + "\n")
            elif b.kind == "list":
                out.append("\n".join(_wrap(f"{i:2d}. " + _plain_text(s), indent="    ")
                                     for i, s in enumerate(b.data, 1)) + "\n")
            elif b.kind == "eq":
                rows = [tex_to_text(ln).split("&", 1) if "&" in ln else ["", tex_to_text(ln)] for ln in b.data]
                width = max(len(r[0].rstrip()) for r in rows)
                out.append("\n".join("    " + r[0].rstrip().rjust(width)
                                     + (" " + r[1].strip() if r[0].strip() else r[1].rstrip()) for r in rows) + "\n")
            elif b.kind == "table":
                header, rows = b.data
                cells = [[_plain_text(c) for c in header]] + [[_plain_text(c) for c in r] for r in rows]
                widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
                lines = ["  ".join(c.rjust(wd) for c, wd in zip(r, widths)) for r in cells]
                lines.insert(1, "  ".join("-" * wd for wd in widths))
                out.append("\n".join("    " + ln for ln in lines) + "\n")
        return "\n".join(out)


def _wrap(s: str, width: int = 100, indent: str = "") -> str:
    import textwrap

    return textwrap.fill(s, width=width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def _tex_text(s: str) -> str:
    """Paragraph text with $math$ for LaTeX: escape the text parts, keep the math."""
    parts = MATH.split(s)
    out = []
    for j, part in enumerate(parts):
        if j % 2:
            out.append(f"${part}$")
        else:
            part = part.replace("\\", r"\textbackslash{}")
            for ch in "&%#_{}":
                part = part.replace(ch, "\\" + ch)
            part = part.replace("`", r"\texttt{").replace("´", "}")
            part = part.replace("~", r"\textasciitilde{}").replace("^", r"\textasciicircum{}")
            part = part.replace("θ", r"$\theta$").replace("δ", r"$\delta$").replace("∂", r"$\partial$")
            out.append(part)
    return "".join(out)


def _plain_text(s: str) -> str:
    return MATH.sub(lambda m: tex_to_text(m.group(1)), s).replace("`", "").replace("´", "")


def _brace(s: str, i: int) -> tuple[str, int]:
    """s[i] == '{': the balanced content and the index after the closing brace."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1:j], j + 1
    return s[i + 1:], len(s)


_SYMBOLS = {
    r"\cdot": "·", r"\partial": "∂", r"\theta": "θ", r"\delta": "δ", r"\sum": "Σ", r"\prod": "Π",
    r"\approx": "≈", r"\le": "≤", r"\ge": "≥", r"\ne": "≠", r"\times": "×", r"\in": "∈", r"\ldots": "...",
    r"\to": "->", r"\qquad": "    ", r"\quad": "  ", r"\,": " ", r"\;": " ", r"\!": "", r"\Big": "", r"\big": "",
    r"\left": "", r"\right": "", r"\tanh": "tanh", r"\max": "max", r"\exp": "exp", r"\mid": "|", r"\ ": " ",
    r"\infty": "inf", r"\sigma": "σ", r"\phantom": "",
}


_GLUE = {r"\partial", r"\left", r"\right", r"\Big", r"\big"}


def tex_to_text(s: str) -> str:
    """The LaTeX this module writes, as plain text: \\frac{a}{b} -> a/b, \\operatorname{sgm} -> sgm, ..."""
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", s[i:])
            assert m
            cmd = "\\" + m.group(1)
            i += len(m.group(0))
            if cmd == r"\frac":
                a, i = _brace(s, i)
                b, i = _brace(s, i)
                a, b = tex_to_text(a), tex_to_text(b)
                wrap = lambda v: f"({v})" if re.search(r"[ +\-]", v.strip()) and not re.fullmatch(r"\(.*\)", v.strip()) else v
                out.append(f"{wrap(a)}/{wrap(b)}")
            elif cmd in (r"\operatorname", r"\text", r"\mathrm", r"\textrm", r"\mathit"):
                a, i = _brace(s, i)
                out.append(tex_to_text(a))
            elif cmd == r"\\":
                out.append("\n")
            elif cmd in _SYMBOLS:
                out.append(_SYMBOLS[cmd])
                if cmd in _GLUE:  # '\partial h' is one symbol: ∂h
                    while i < len(s) and s[i] == " ":
                        i += 1
            else:
                out.append(cmd[1:])
        elif c in "_^" and i + 1 < len(s) and s[i + 1] == "{":
            a, j = _brace(s, i + 1)
            a = tex_to_text(a)
            simple = re.fullmatch(r"[A-Za-z0-9']+", a) is not None
            out.append(c + (a if simple else "{" + a + "}"))
            i = j
        elif c == "{" or c == "}":
            i += 1
        else:
            out.append(c)
            i += 1
    text = "".join(out)
    return re.sub(r"[ ]{2,}(?=\S)", lambda m: m.group(0) if len(m.group(0)) >= 4 else " ", text)
