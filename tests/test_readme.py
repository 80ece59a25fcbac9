"""The numbers of the README and of the results pages, recomputed by the examples' scripts and compared with the text.

The results live on docs/results/*.md (the README's headline table repeats some of them, each checked
against its page). Deterministic numbers are compared at the precision the pages print them; the
adding-problem table is checked on its rows T = 10 and T = 30 here and on every row in the slow set;
times only for presence.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _page(name: str) -> str:
    return (ROOT / "docs" / name).read_text(encoding="utf-8")


TRAINING = _page("results/training.md")  # examples/readme_results.py's numbers
HF = _page("results/hessian-free.md")  # examples/hf_results.py's numbers
CONTRIBUTING = _page("contributing.md")


def _flat(text: str) -> str:
    """Whitespace collapsed, so that a line break in a paragraph does not matter."""
    return " ".join(text.split())


def _example(name: str):
    """examples/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


R = _example("readme_results")


def _section(text: str, heading: str) -> str:
    """From a heading line to the next heading of the same or a higher level."""
    start = text.index(f"\n{heading}\n")
    level = heading.split()[0]
    ends = [m.start() for m in re.finditer(r"^#{1,%d} " % len(level), text[start + 1:], re.M)][1:]
    return text[start: start + 1 + ends[0]] if ends else text[start:]


def _table(text: str, after: str) -> list[list[str]]:
    """The rows of the first Markdown table after the text ``after`` (header and rule dropped)."""
    text = text[text.index(after):]
    lines = []
    for line in text.splitlines():
        if line.startswith("|"):
            lines.append([c.strip() for c in line.strip("|").split("|")])
        elif lines:
            break
    return lines[2:]


def test_binary_addition_every_seed_exact_and_all_pairs():
    text = _flat(_section(TRAINING, "## Binary addition"))
    assert "**1000 of 1000 test pairs exact for every seed**" in text
    assert "65 536 of 65 536 exact, for all five models" in text
    for run in R.addition()["runs"]:
        assert (run["exact"], run["pairs"], run["all_pairs_exact"]) == (1000, 1000, 65536), run


def test_binary_addition_with_sgd():
    text = _flat(_section(TRAINING, "## Binary addition"))
    assert "--lr 2 --momentum 0.9 --out runs/add_sgd` gives 1000 of 1000" in text
    assert "at `--lr 0.5` it was still on the initial plateau after 30 epochs (0 of 1000)" in text
    assert R.addition_run(0, optimizer="sgd", lr=2.0, momentum=0.9)["exact"] == 1000
    assert R.addition_run(0, optimizer="sgd", lr=0.5, momentum=0.9)["exact"] == 0


def test_sunspots_table_and_its_summary():
    rows = _table(TRAINING, "## Sunspots")
    runs = R.sunspots()
    assert [int(r[0]) for r in rows] == [r["seed"] for r in runs]
    for row, run in zip(rows, runs):
        assert row[1:] == [f"{run['rnn']:.1f}", f"{run['persistence']:.1f}", f"{run['ar9']:.1f}"], (row, run)
    below = sum(r["rnn"] < r["ar9"] for r in runs)
    mean = sum(r["rnn"] for r in runs) / len(runs)
    assert f"{below} of 5 seeds are below AR(9), {5 - below} above, mean {mean:.1f} vs {runs[0]['ar9']:.1f}" in _flat(TRAINING)


def test_sine():
    r = R.sine()
    text = _flat(_section(TRAINING, "## Sine"))
    assert f"test MSE {r['rnn']:.4f} against persistence {r['persistence']:.4f}" in text
    assert f"σ² = {r['noise_floor']:.4f}" in text


def test_gradient_flow_medians():
    g = R.gradflow()

    def fmt(v: float) -> str:
        return f"{v:.2g}" if v >= 0.01 else f"{v:.1e}".replace("e-0", "e−").replace("e-", "e−")

    for name in ("sigmoid", "tanh"):
        values = ", ".join(fmt(g[name][k]) for k in ("1", "5", "10"))
        assert f"{values} and {fmt(g[name]['20'])}" in _flat(TRAINING), (name, values)


def _adding_row(length):
    rows = {int(r[0]): r[1:] for r in _table(TRAINING, "| length T | seed 0 | seed 1 | seed 2 |")}
    cells = [R.adding_cell(length, s) for s in R.ADDING_SEEDS]
    assert rows[length] == [f"{c['mse_ratio']:.3f} ({c['within_0_04']:.2f})" for c in cells]


@pytest.mark.parametrize("length", [10, 30])
def test_adding_table_rows(length):
    """Chaotic in the seed (T = 30), yet the same digits on every machine: products sum in a fixed order."""
    _adding_row(length)


@pytest.mark.slow
@pytest.mark.parametrize("length", [20, 40, 50, 100])
def test_adding_table_long_rows(length):
    _adding_row(length)


def _tanh_text(values: list[float]) -> str:
    lengths = R.ADDING_LENGTHS
    first = f"did no better: {values[0]:.3f} (T = {lengths[0]}), "
    return first + ", ".join(f"{v:.3f} ({L})" for v, L in zip(values[1:], lengths[1:]))


def test_adding_tanh_comparison_at_t10():
    c = R.adding_cell(10, 0, "tanh")
    assert f"did no better: {c['mse_ratio']:.3f} (T = 10)" in _flat(TRAINING)


@pytest.mark.slow
def test_adding_tanh_comparison_every_length():
    values = [R.adding_cell(L, 0, "tanh")["mse_ratio"] for L in R.ADDING_LENGTHS]
    text = _tanh_text(values)
    assert text in _flat(TRAINING), text


def test_adding_conclusions_follow_the_table():
    rows = {int(r[0]): [float(c.split()[0]) for c in r[1:]] for r in _table(TRAINING, "| length T | seed 0 | seed 1 | seed 2 |")}
    flat = _flat(TRAINING)
    assert all(v < 0.1 for L in (10, 20) for v in rows[L])  # "Up to T = 20 every seed learns"
    learned_30 = [v for v in rows[30] if v < 0.1]
    learned_40 = sorted((v for v in rows[40] if v < 0.1), reverse=True)
    assert (len(learned_30), len(learned_40)) == (1, 2) and learned_40[0] > 0.09  # "one seed ... two do (..., only just"
    assert f"below 0.1 of the baseline ({learned_30[0]:.3f}) and at T = 40 two do ({learned_40[0]:.3f}, only just, and {learned_40[1]:.3f})" in flat
    assert rows[30][2] >= 0.1 > rows[40][2]  # "seed 2 stays on it at T = 30 and escapes at T = 40"
    assert all(v >= 0.1 for L in (50, 100) for v in rows[L])  # "from T = 50 on no seed does"
    assert f"the best is {min(rows[50]):.3f} at T = 50" in flat


def test_times_are_stated_with_their_run():
    assert re.search(r"Times\s+are from one run on \d{4}-\d\d-\d\d", TRAINING)


def test_layout_names_real_files_and_tests():
    """The Layout section's files exist, and each test it cites as showing an addition exists."""
    layout = _section(CONTRIBUTING, "## Layout")
    paths = re.findall(r"^((?:src/bptt|examples|benchmarks|docs|tests)/[\w./]*)", layout, re.M)
    assert len(paths) > 20, paths
    for path in paths:
        assert (ROOT / path).exists(), path
    for path, name in re.findall(r"`(tests/test_\w+\.py)::(test_\w+)`", layout):
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(encoding="utf-8"), re.M), f"{path}::{name}"
    listed = set(re.findall(r"^src/bptt/(\w+)\.py", layout, re.M))
    modules = {p.stem for p in (ROOT / "src" / "bptt").glob("*.py") if not p.stem.startswith("_")}
    assert modules <= listed, modules - listed


@pytest.mark.slow
def test_hf_sunspots_ensemble_table_is_one_bptt_train_command_per_seed(tmp_path):
    """The chosen sunspots setup: each row is `bptt train ... --ensemble 5 --seed S`, to the digit."""
    import json
    import subprocess
    import sys

    text = _flat(HF)
    command = re.search(r"(bptt train --task sunspots --window 10 --optimizer hf [^\n]*?--seed S) --out runs/sunS", text)
    assert command, "the page states the command"
    rows = _table(HF, "| seed | validation MSE | test MSE 1979–2008 | AR(9) |")
    tests, vals = [], []
    for row in rows[:-1]:
        seed = int(row[0])
        args = command.group(1).replace("--seed S", f"--seed {seed}").split()[1:]
        out = tmp_path / f"sun{seed}"
        proc = subprocess.run([sys.executable, "-m", "bptt", *args, "--out", str(out), "--plots", "none", "--json"],
                              capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, proc.stderr[-2000:]
        m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["test"]
        assert row[1:] == [f"{m['val_mse']:.1f}", f"{m['test_mse']:.1f}", f"{m['ar9_mse']:.1f}"], (row, m)
        tests.append(m["test_mse"])
        vals.append(m["val_mse"])
    mean = rows[-1]
    assert mean[1:3] == [f"{sum(vals) / len(vals):.1f}", f"{sum(tests) / len(tests):.1f}"]
    ratio = sum(tests) / len(tests) / m["ar9_mse"]
    assert f"Mean test MSE {sum(tests) / len(tests):.1f} = {ratio:.2f} × AR(9)" in text


@pytest.mark.slow
@pytest.mark.parametrize("length,seed", [(50, 0), (50, 1), (50, 2), (100, 0)])
def test_hf_adding_table_row(length, seed):
    """A row of the HF adding table: `bptt train --task adding --length T --optimizer hf --fresh 0 --epochs 100 --seed S`."""
    from bptt import tasks
    from bptt.train import config_for

    H = _example("hf_results")
    rows = {(int(r[0]), int(r[1])): r[2:5] for r in _table(HF, "| T | seed | HF test mse_ratio |")}
    data = tasks.load("adding", seed=seed, length=length)
    m, curve, _ = H.timed_run(config_for("adding", {"length": length, "fresh": 0}, optimizer="hf", seed=seed, epochs=100),
                              data, H.val_baseline(data))
    assert m["epochs_run"] == 100  # the budget, in iterations
    got = [f"{m['mse_ratio']:.4f}", f"{m['test_within_0_04']:.3f}", str(H.first_below(curve, 0.1))]
    assert rows[(length, seed)] == got


@pytest.mark.slow
def test_hf_sunspots_sweep_table():
    """The validation numbers that chose the sunspots setup (examples/hf_results.py sunspots-sweep), every row."""
    H = _example("hf_results")
    rows = {r[0].strip("*"): r[1:] for r in _table(HF, "| setup (HF: 60 iterations, curvature on the whole batch) |")}
    assert list(rows) == [name for name, *_ in H.SUN_SWEEP]
    best = min(H.SUN_SWEEP, key=lambda s: float(rows[s[0]][0].strip("*")))
    assert best == H.SUN_CHOSEN  # the chosen setup is the sweep's lowest validation MSE
    for setup in H.SUN_SWEEP:
        r = H.sweep_row(*setup)
        assert [rows[r["setup"]][0].strip("*"), rows[r["setup"]][1]] == [
            f"{r['mean']:.1f}", " ".join(f"{v:.0f}" for v in r["per_seed"])], r


@pytest.mark.slow
def test_adam_at_t100_for_600_epochs_seed_1():
    """The Adam comparison beside the HF table: the seed that learns (600 epochs, the other settings the task's)."""
    from bptt.train import config_for, train

    m = train(config_for("adding", {"length": 100}, seed=1, epochs=600)).metrics
    stated = re.search(r"test MSE ratio ([\d.]+), ([\d.]+) and ([\d.]+) for seeds 0, 1 and 2", _flat(HF))
    assert stated, "the page states the three seeds' ratios"
    assert stated.group(2) == f"{m['mse_ratio']:.4f}" and m["mse_ratio"] < 0.1, (stated.groups(), m["mse_ratio"])


def test_chars_table_is_the_pinned_runs():
    """The chars table's test bits per character are the ones tests/test_tasks.py::test_chars_readme_runs reruns."""
    from test_tasks import CHARS_README

    section = _section(TRAINING, "## Character-level language model")
    rows = dict(re.findall(r"^\| (\d+) \| ([\d.]+) \|", section, re.M))
    assert {int(k): float(v) for k, v in rows.items()} == CHARS_README


def test_readme_headline_figures_are_on_their_pages():
    """Every number in the README's results table is on the page its row links to (where it is pinned)."""
    rows = _table(README, "| result | figure | page |")
    assert len(rows) >= 6
    for result, figure, link in rows:
        target = re.fullmatch(r"\[[^]]+\]\((docs/[\w/.-]+\.md)(#[\w-]+)?\)", link)
        assert target, link
        page = (ROOT / target.group(1)).read_text(encoding="utf-8")
        section = _flat(page)
        if target.group(2):
            anchor = target.group(2)[1:]
            headings = {re.sub(r"[^\w\s-]", "", h).strip().lower().replace(" ", "-"): h
                        for h in re.findall(r"^#+ (.+)$", page, re.M)}
            assert anchor in headings, (link, sorted(headings))
            level = re.search(rf"^(#+) {re.escape(headings[anchor])}$", page, re.M).group(1)
            section = _flat(_section(page, f"{level} {headings[anchor]}"))
        for number in re.findall(r"\d+(?:[.,]\d+)*", figure):
            assert re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", section), (result, number, link)


def test_readme_results_help_names_its_sections(capsys):
    """`python examples/readme_results.py --help` lists the sections plainly (no `{a,b,}` or `[]` choices)."""
    with pytest.raises(SystemExit) as stop:
        R.main(["--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and "{" not in out and "[]" not in out, out
    assert f"one or more of {', '.join(R.SECTIONS)}" in " ".join(out.split())
    with pytest.raises(SystemExit) as stop:
        R.main(["sunspot"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "unknown section 'sunspot'; choose from addition, sunspots" in err, err
