"""The benchmark script runs end to end on the tiniest size and prints its table (timings are never checked)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from bptt.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_bench_script_prints_the_table_on_the_seed_size():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--sizes", "seed"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "GEMM peak" in out and "machine:" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("|")]
    assert lines[0].startswith("| size") and set(lines[1]) <= set("|-")
    row = [c.strip() for c in lines[2].split("|")[1:-1]]
    assert row[0] == "T=2 B=1 D=1 H=1" and row[1] == "scalar"
    for col, mod in ((3, "torch"), (4, "jax")):
        present = importlib.util.find_spec(mod) is not None
        assert (row[col] == "absent") != present, (mod, row[col])
    assert "Targets (issue 3):" in out


def test_bench_bad_size_is_one_line_error(capsys):
    assert main(["bench", "--sizes", "huge"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --sizes: unknown size huge") and err.count("\n") == 1
