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
    assert re.fullmatch(r"[0-9.]+ (µs|ms|s)", row[3]) and re.fullmatch(r"[0-9]+ %", row[4]), row[3:5]
    assert "- T=2 B=1 D=1 H=1: >= 70 % of its limit (" in out
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


def _cells(text: str, i: int = 2) -> dict[str, str]:
    lines = text.splitlines()
    head = [c.strip() for c in lines[0].split("|")[1:-1]]
    return dict(zip(head, [c.strip() for c in lines[i].split("|")[1:-1]]))


def test_table_and_targets_give_bptt_as_a_percentage_of_its_limit():
    from bptt.bench import Size, grid_dict, table, targets
    from bptt.limits import Limit, Part

    s = Size("scalar", T=1000, B=1, D=1, H=1)
    lim = Limit("serial chain", (Part("call", "one call from Python", 1, 2e-6), Part("serial chain", "one step", 1000, 1.6e-8)))
    row = {"size": s, "kernel": "scalar", "errors": {"bptt": 1e-7}, "limit": lim,
           "times": {"bptt": 3e-5, "PyTorch": 8e-2, "JAX": 1e-4, "layer": 2e-2}}
    cell = _cells(table([row], peak=100.0))
    assert cell["bptt"] == "30.0 µs" and cell["limit"] == "18.0 µs" and cell["bptt % of limit"] == "60 %"
    assert cell["JAX ÷ bptt"] == "3.3×"  # the peers' ratios stay beside it
    assert "- T=1000 B=1 D=1 H=1: >= 70 % of its limit (18.0 µs): 60 %, NOT met" in targets([row], 100.0)
    fast = dict(row, times=dict(row["times"], bptt=2e-5))
    assert "- T=1000 B=1 D=1 H=1: >= 70 % of its limit (18.0 µs): 90 %, met" in targets([fast], 100.0)
    # a row without a limit says so (no number made up)
    bare = {k: v for k, v in row.items() if k != "limit"}
    assert _cells(table([bare], peak=100.0))["bptt % of limit"] == "not measured"
    assert not any("limit" in line for line in targets([bare], 100.0))
    d = grid_dict({"peak": 100.0, "rows": [row, bare]})["rows"]
    assert d[0]["percent_of_limit"] == pytest.approx(60.0) and d[0]["limit"]["seconds"] == pytest.approx(1.8e-5)
    assert d[0]["limit"]["parts"][1]["count"] == 1000
    assert d[1]["limit"] is None and d[1]["percent_of_limit"] is None


def test_limit_request_matches_bptts_call():
    from bptt.bench import GRID, limit_request

    by = {s.name: s for s in GRID}
    r = limit_request(by["scalar"], quick=True)
    assert (r["T"], r["x_shape"], r["y_shape"], r["dtype"]) == (1000, (1000,), (1000,), "float32")
    assert limit_request(by["scalar3d"], quick=True)["x_shape"] == (1000, 1, 1)
    assert not r["lists"] and limit_request(by["scalarlist"], quick=True)["lists"]
    r = limit_request(by["h4"], quick=False)
    assert (r["B"], r["D"], r["H"], r["x_shape"], r["y_shape"]) == (32, 2, 4, (100, 32, 2), (100, 32, 1))


def test_train_limit_request_is_the_timed_runs_shape():
    from bptt.bench import train_limit_request

    r = train_limit_request(30, quick=True)
    assert r["batches"] == [32] * 31 + [8] and sum(r["batches"]) == 1000  # one epoch of binary addition's 1000 pairs
    assert (r["T"], r["D"], r["H"], r["O"], r["epochs"], r["val_n"], r["test_n"], r["dtype"]) == (
        9, 2, 8, 1, 30, 200, 1000, "float64")


def test_bench_bad_size_is_one_line_error(capsys, monkeypatch):
    from bptt.cli import _common

    # the cold-cache announcement (tests/test_cli.py) comes before the command validates its options: the
    # numba cache's state (which earlier tests compiled) must not decide this test
    monkeypatch.setattr(_common, "kernels_cached", lambda modules: True)
    assert main(["bench", "--sizes", "huge"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --sizes: unknown size huge") and err.count("\n") == 1


def test_bench_json_is_one_object(capsys):
    assert main(["bench", "--quick", "--sizes", "seed", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == {"machine", "gemm_peak_gflops", "rows"} and len(d["rows"]) == 1
    row = d["rows"][0]
    assert row["size"] == {"name": "seed", "T": 2, "B": 1, "D": 1, "H": 1, "O": 1, "form": "auto", "loss": "squared_error"}
    assert row["seconds"]["bptt"] > 0 and all(e <= 2e-3 for e in row["max_rel_error"].values())
    lim = row["limit"]
    assert lim["model"] == "serial chain" and lim["seconds"] > 0
    assert [p["name"] for p in lim["parts"]] == ["call", "serial chain (forward + backward)"]
    assert lim["parts"][1]["count"] == 2  # T steps
    assert row["percent_of_limit"] == pytest.approx(100 * lim["seconds"] / row["seconds"]["bptt"])


def test_bce_row_times_binary_cross_entropy_in_every_peer():
    from bptt.bench import PEERS, Size, available, make_problem, reference, rel_error

    s = Size("tiny", T=3, B=2, D=2, H=3, loss="bce")
    prob = make_problem(s)
    ref = reference(s, prob)
    assert ref[0] != pytest.approx(reference(Size("tiny", T=3, B=2, D=2, H=3), prob)[0])  # not the squared error
    for p in ("bptt", "PyTorch", "JAX", "layer"):
        if available(p):
            assert rel_error(PEERS[p](s, prob)(), ref) <= 2e-3, p


@pytest.mark.slow
def test_jax_epoch_scan_trains_as_the_jax_step_loop():
    pytest.importorskip("jax")
    from bptt.bench import train_jax, train_jax_scan

    # same data, initial weights, mini-batches, clipping and Adam: the task learnt alike (the README's 30 epochs)
    scan, step = train_jax_scan(30), train_jax(30)
    assert scan[0] > 0 and scan[1] == step[1] and scan[1] >= 990


def test_list_rows_call_bptt_with_python_lists(monkeypatch):
    from bptt import bench
    from bptt.model import RNN

    seen = []
    real = RNN.loss_and_grad
    monkeypatch.setattr(RNN, "loss_and_grad", lambda self, x, y, **kw: seen.append((type(x), type(y))) or real(self, x, y, **kw))
    s = bench.Size("tiny", T=4, B=1, D=1, H=1, form="list")
    prob = bench.make_problem(s)
    assert bench.rel_error(bench.bptt_peer(s, prob)(), bench.reference(s, prob)) <= 2e-3
    assert seen[0] == (list, list) and s.label() == "T=4 B=1 D=1 H=1 list input"
