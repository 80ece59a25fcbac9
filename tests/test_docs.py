"""The documentation: README.md and docs/ (the MkDocs site).

Every fenced code block is run, or marked illustrative with a reason. The marker is an HTML comment
on the nearest non-blank line above the block (invisible on GitHub and in the built site):

    <!-- docs-test: illustrative: REASON -->   not run; the reason says why
    <!-- docs-test: file PATH -->              the block is that repository file, verbatim
    <!-- docs-test: slow -->                   run only with the tests marked slow

Unmarked blocks, by language:

    python    executed (a fresh namespace, in an empty temporary folder)
    bash      run as one script (`bash -euo pipefail`); it must exit 0
    console   a transcript: each `$ COMMAND` is run and its standard output must equal the lines below
              it; a line `...` stands for any number of lines; a last line `(exit status N)` is the
              last command's status (every other command must exit 0)

Shell blocks run in an empty temporary folder in which `examples/` and `benchmarks/` are the
repository's, with this interpreter's `bptt` and `python` first on PATH. Indented code blocks are
refused (a block the tests cannot see). The site is built with `mkdocs build --strict`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKER = re.compile(r"^<!-- docs-test: (illustrative: \S.*|file \S+|slow) -->$")
RUN_LANGS = ("python", "bash", "console")
BLOCK_TIMEOUT = 1500  # seconds; the slowest block (a few trainings) takes a few minutes on 2 busy cores


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str  # "" when unmarked

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []
    for tok in MarkdownIt("commonmark").parse(text):
        if tok.type not in ("fence", "code_block"):
            continue
        start = tok.map[0]
        above = next((lines[i].strip() for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        marker = above[len("<!-- docs-test: "):-len(" -->")] if MARKER.match(above) else ""
        lang = tok.info.split()[0] if tok.type == "fence" and tok.info.strip() else ""
        found.append(Block(page, start + 1, lang if tok.type == "fence" else "(indented)", tok.content, marker))
    return found


BLOCKS = [b for page in PAGES for b in blocks(page)]


def _param(b: Block):
    return pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.marker == "slow" else [])


def test_every_block_is_run_or_marked():
    """A block is run (python, bash, console), pinned to a file, or illustrative with a reason."""
    bad = [f"{b.id}: indented code block (use a fenced one)" for b in BLOCKS if b.lang == "(indented)"]
    bad += [f"{b.id}: a ```{b.lang or '(no language)'} block needs a docs-test marker" for b in BLOCKS
            if b.lang != "(indented)" and b.lang not in RUN_LANGS and not b.marker]
    bad += [f"{b.id}: marked slow but a ```{b.lang} block is never run" for b in BLOCKS
            if b.marker == "slow" and b.lang not in RUN_LANGS]
    assert not bad, "\n".join(bad)
    assert len([b for b in BLOCKS if b.lang in RUN_LANGS and not b.marker.startswith("illustrative")]) >= 20


def test_the_checker_sees_markers_and_languages(tmp_path):
    """The block reader on a page made here: it finds each kind, and an unmarked text block is flagged."""
    page = tmp_path / "p.md"
    page.write_text(textwrap.dedent("""\
        <!-- docs-test: illustrative: a formula -->

        ```text
        h_t = f(z_t)
        ```

        ```python
        x = 1
        ```

        <!-- docs-test: file examples/seed_claims.toml -->
        ```toml
        a = 1
        ```

            indented
        """), encoding="utf-8")
    got = [(b.lang, b.marker, b.line) for b in blocks(page)]
    assert got == [("text", "illustrative: a formula", 3), ("python", "", 7),
                   ("toml", "file examples/seed_claims.toml", 12), ("(indented)", "", 16)]


def _shell_env(tmp_path: Path) -> dict[str, str]:
    for name in ("examples", "benchmarks"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "200"
    return env


def _transcript(code: str) -> list[tuple[str, list[str], int]]:
    """(command, expected output lines, expected exit status) for each `$ ` line of a console block."""
    steps: list[tuple[str, list[str], int]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], [], 0))
        elif not steps:
            raise AssertionError(f"a console block starts with output, not a `$ ` command: {line!r}")
        elif m := re.fullmatch(r"\(exit status (\d+)\)", line):
            steps[-1] = (steps[-1][0], steps[-1][1], int(m.group(1)))
        else:
            steps[-1][1].append(line)
    return steps


def _matches(expected: list[str], out: str) -> bool:
    """Whether the output's lines are the expected ones, a line `...` matching any number of lines."""
    pattern = "".join(r"(?:.*\n)*?" if line == "..." else re.escape(line) + r"\n" for line in expected)
    return re.fullmatch(pattern, out) is not None


def _run_python(block: Block, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(block.code, block.id, "exec"), {"__name__": "__docs__"})


def _run_bash(block: Block, tmp_path: Path) -> None:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=tmp_path, env=_shell_env(tmp_path),
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    assert proc.returncode == 0, f"{block.id}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def _run_console(block: Block, tmp_path: Path) -> None:
    env = _shell_env(tmp_path)
    for command, expected, status in _transcript(block.code):
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=BLOCK_TIMEOUT)
        where = f"{block.id}: $ {command}"
        assert proc.returncode == status, f"{where}: exit {proc.returncode}, not {status}\n{proc.stderr[-3000:]}"
        assert _matches(expected, proc.stdout), f"{where}: printed\n{proc.stdout}"


def test_transcript_matching():
    assert _transcript("$ a\nx\n...\n$ b\n(exit status 1)\n") == [("a", ["x", "..."], 0), ("b", [], 1)]
    assert _matches(["x", "...", "z"], "x\ny\ny\nz\n") and _matches(["x", "...", "z"], "x\nz\n")
    assert not _matches(["x", "z"], "x\ny\nz\n") and not _matches(["x"], "x\nextra\n")
    assert not _matches(["a.b"], "axb\n")  # expected text is literal, not a pattern


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS if b.lang in RUN_LANGS and not b.marker.startswith(
    ("illustrative", "file"))])
def test_block_runs(block: Block, tmp_path, monkeypatch):
    {"python": lambda: _run_python(block, tmp_path, monkeypatch),
     "bash": lambda: _run_bash(block, tmp_path),
     "console": lambda: _run_console(block, tmp_path)}[block.lang]()


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS if b.marker.startswith("file ")])
def test_block_is_the_file(block: Block):
    path = ROOT / block.marker.split(" ", 1)[1]
    assert block.code == path.read_text(encoding="utf-8"), f"{block.id} differs from {path.relative_to(ROOT)}"


def test_readme_fits_and_links_resolve():
    """The README is a front door (at most 250 lines), and every relative link in it names a file here."""
    text = PAGES[0].read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert local, "the README links to the documentation"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, missing


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=config.parent, capture_output=True, text=True, timeout=600)


def test_site_builds_strictly(tmp_path):
    proc = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-5000:]
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("loss_and_grad", "config_for", "SigmoidRNN", "HFSettings"):
        assert name in api, name
    assert (tmp_path / "site" / "tutorial" / "index.html").exists()


def test_strict_build_fails_on_a_broken_link(tmp_path):
    """The strict build is a real check: the same site with one broken link does not build."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("docs", "src"):
        (copy / name).symlink_to(ROOT / name)
    (copy / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text(encoding="utf-8").replace(
        "docs_dir: docs", "docs_dir: docs_broken"), encoding="utf-8")
    import shutil

    shutil.copytree(ROOT / "docs", copy / "docs_broken")
    page = copy / "docs_broken" / "index.md"
    page.write_text(page.read_text(encoding="utf-8") + "\n[gone](no-such-page.md)\n", encoding="utf-8")
    proc = _build(copy / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0 and "no-such-page.md" in proc.stderr, proc.stderr[-3000:]


def test_ci_runs_the_readme_test_command():
    """`.ci/run` runs the test command the README gives, verbatim."""
    readme = PAGES[0].read_text(encoding="utf-8")
    command = re.search(r"runs the test suite.*?```bash\n(.+?)\n```", readme, re.S)
    assert command, "the README gives the test command"
    assert command.group(1) in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
