"""The benchmark script runs end to end on the tiniest size and prints its table (timings are never checked)."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bptt.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
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
    assert "Speed targets:" in out
    # the bptt.torch layer column: a time where torch is installed (its gradient passed the float64 check)
    head = [c.strip() for c in lines[0].split("|")[1:-1]]
    assert len(row) == len(head)
    cell = dict(zip(head, row))
    has_torch = importlib.util.find_spec("torch") is not None
    layer = cell["bptt.torch layer (CPU)"]
    if has_torch:
        assert re.fullmatch(r"[0-9.]+ (µs|ms|s)", layer), layer
        assert re.fullmatch(r"[0-9.]+×", cell["PyTorch eager ÷ layer"]), cell["PyTorch eager ÷ layer"]
        assert "layer " in cell["max rel. error vs float64"]
        import torch

        if torch.cuda.is_available():
            assert re.fullmatch(r"[0-9.]+ (µs|ms|s)", cell["bptt.torch layer (CUDA)"])
        else:
            assert "bptt.torch layer (CUDA)" not in head and "CUDA: not measured (no CUDA device)" in out
    else:
        assert layer == "absent" and cell["PyTorch eager ÷ layer"] == "absent"
        assert "CUDA: not measured (torch not installed)" in out


def test_table_puts_a_cuda_layer_column_where_one_was_measured():
    from bptt.bench import Size, table

    s = Size("seed", T=2, B=1, D=1, H=1)
    row = {"size": s, "kernel": "scalar", "errors": {"bptt": 1e-6},
           "times": {"bptt": 1e-5, "PyTorch": 8e-4, "JAX": 1e-4, "layer": 4e-4, "layer-CUDA": 2e-3}}
    lines = table([row], peak=100.0).splitlines()
    head = [c.strip() for c in lines[0].split("|")[1:-1]]
    cell = dict(zip(head, [c.strip() for c in lines[2].split("|")[1:-1]]))
    assert cell["bptt.torch layer (CPU)"] == "400.0 µs" and cell["bptt.torch layer (CUDA)"] == "2.00 ms"
    assert cell["PyTorch eager ÷ layer"] == "2.0×" and cell["bptt ÷ fastest peer"] == "0.10"
    no_cuda = dict(row, times={k: v for k, v in row["times"].items() if k != "layer-CUDA"})
    assert "CUDA" not in table([no_cuda], peak=100.0)


def test_bench_bad_size_is_one_line_error(capsys):
    assert main(["bench", "--sizes", "huge"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --sizes: unknown size huge") and err.count("\n") == 1


def test_bench_json_is_one_object(capsys):
    assert main(["bench", "--quick", "--sizes", "seed", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == {"machine", "gemm_peak_gflops", "rows"} and len(d["rows"]) == 1
    row = d["rows"][0]
    assert row["size"] == {"name": "seed", "T": 2, "B": 1, "D": 1, "H": 1, "O": 1, "form": "auto"}
    assert row["seconds"]["bptt"] > 0 and all(e <= 2e-3 for e in row["max_rel_error"].values())
