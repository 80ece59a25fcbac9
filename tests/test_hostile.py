"""Hostile but fair input, by class: every case is refused with one `error:` line and exit status 2
(or one BPTTError line from the API), and nothing the user had is changed.

Classes: numbers, paths, files read back, encodings, sizes, API arguments.  Other classes live
beside their modules: concurrency and killed runs (test_train.py), full disks and umask
(test_io.py), damaged model and checkpoint files (test_io.py, test_train.py), ASCII terminals
(test_cli.py), long sequences (test_gradflow.py, test_derive.py), claims files (test_check.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt import BPTTError
from bptt.cli import main

SMALL_ADD = ["--task", "binary-addition", "--bits", "3", "--n-train", "8", "--n-val", "4", "--n-test", "4",
             "--epochs", "1", "--hidden", "2", "--no-progress"]
HUGE = "99999999999999999999"

NUMBERS = [
    ["grad", "--x", "1,nan", "--y", "0.5,0.5"],
    ["grad", "--x", "1,inf", "--y", "0.5,0.5"],
    ["grad", "--x", "1,0", "--y", "0.5,0.5", "--w", "1e999"],
    ["grad", "--x", "1,0", "--y", "0.5,0.5", "--truncate", HUGE],
    ["grad", "--x", "1,0", "--y", "0.5,0.5", "--truncate", "0"],
    ["grad", "--x", "1,0", "--y", "0.5,0.5", "--truncate", "-1"],
    ["grad", "--x", "1,0", "--y", "0.5,0.5", "--truncate", "1.5"],
    ["grad", "--x", "1,0", "--y", "0.5,0.5", "--h0", "abc"],
    ["grad", "--x", "", "--y", "0.5"],
    ["grad", "--x", "1,,2", "--y", "0.5,0.5,0.5"],
    ["grad", "--x", "1,0", "--y", "0.5"],
    ["grad", "--x", "1,0", "--y", "0.5,0.5", "--reduction", "max"],
    ["grad", "--x", "1,0", "--y", "0.5,0.5", "--hidden-activation", "gelu"],
    ["seed", "--y", "1"],
    ["seed", "--y", "nan,1"],
    ["gradflow", "--out", "{tmp}/f.png", "--hidden", "0"],
    ["gradflow", "--out", "{tmp}/f.png", "--length", "1"],
    ["gradflow", "--out", "{tmp}/f.png", "--init-scale", "nan"],
    ["gradflow", "--out", "{tmp}/f.png", "--init-scale", "-1"],
    ["gradflow", "--out", "{tmp}/f.png", "--seed", "-1"],
    ["explain", "--expand", "-1"],
    ["explain", "--expand", "1.5"],
    ["explain", "--x", "1,0", "--y", "0.5"],
] + [["train", *SMALL_ADD, "--out", "{tmp}/run", *bad] for bad in (
    ["--lr", "nan"], ["--lr", "inf"], ["--lr", "-1"], ["--lr", "0"], ["--lr", "1e999"], ["--epochs", "0"],
    ["--epochs", HUGE], ["--batch-size", "0"], ["--hidden", "0"], ["--hidden", str(10**12)], ["--seed", "-1"],
    ["--momentum", "1"], ["--clip", "-1"], ["--clip", "nan"], ["--truncate", "0"], ["--chunk", "0"],
    ["--patience", "-1"], ["--bits", "0"], ["--bits", "1000"], ["--min-lr", "-1"], ["--optimizer", "lbfgs"],
    ["--schedule", "step"], ["--dtype", "float16"], ["--checkpoint-every", "-1"], ["--length", "5"],
    ["--window", "3"], ["--n-train", "0"], ["--grad-checkpoint", "0"], ["--grad-checkpoint", "log"],
    ["--backend", "jax"], ["--nproc", "2"],
)]

PATHS = [
    ["train", *SMALL_ADD, "--out", "/proc/bptt-run"],
    ["train", *SMALL_ADD, "--out", "{tmp}/a_file/run"],
    ["train", *SMALL_ADD, "--out", "{tmp}/a_file"],
    ["train", "--resume", "--out", "{tmp}/nothing_here"],
    ["explain", "--out", "/proc/bptt.md"],
    ["explain", "--out", "{tmp}"],
    ["explain", "--out", "{tmp}/no/such/folder.md"],
    ["explain", "--out", "{tmp}/a_file"],
    ["gradflow", "--out", "/proc/bptt.png"],
    ["gradflow", "--out", "{tmp}/no/such/flow.png"],
    ["gradflow", "--out", "{tmp}/a_file"],
    ["predict", "--model", "{tmp}/nothing_here", "--x", "1"],
    ["predict", "--model", "{tmp}/a_file", "--x", "1"],
    ["predict", "--model", "{tmp}", "--x", "1"],
    ["check", "{tmp}/nothing_here.toml"],
    ["check", "{tmp}"],
    ["gradflow", "--out", "{tmp}/f.png", "--model", "{tmp}/nothing_here"],
]

FILES = [
    ["check", "{tmp}/garbage.toml"],
    ["check", "{tmp}/empty.json"],
    ["check", "{tmp}/latin1.toml"],
    ["predict", "--model", "{tmp}/garbage.npz", "--x", "1"],
    ["train", "--task", "csv", "--csv", "{tmp}/garbage.csv", "--column", "v", "--out", "{tmp}/run"],
    ["train", "--task", "csv", "--csv", "{tmp}/latin1.csv", "--column", "v", "--out", "{tmp}/run"],
    ["train", "--task", "csv", "--csv", "{tmp}/empty.json", "--column", "v", "--out", "{tmp}/run"],
    ["train", "--task", "csv", "--csv", "{tmp}/nothing_here.csv", "--column", "v", "--out", "{tmp}/run"],
    ["train", "--task", "csv", "--csv", "{tmp}/short.csv", "--column", "v", "--out", "{tmp}/run"],
    ["train", "--task", "csv", "--csv", "{tmp}/short.csv", "--column", "nope", "--out", "{tmp}/run"],
]


def _user_files(tmp: Path) -> None:
    """What a user has in the folder before the hostile call: each must be untouched after it."""
    (tmp / "a_file").write_text("the user's notes\n")
    (tmp / "garbage.toml").write_bytes(b"\x00\x01[[[ not toml")
    (tmp / "garbage.npz").write_bytes(b"PK\x03\x04 truncated zip")
    (tmp / "garbage.csv").write_bytes(os.urandom(64) + b"\x00")
    (tmp / "empty.json").write_text("")
    (tmp / "latin1.toml").write_bytes('title = "caf\xe9"\n'.encode("latin-1"))
    (tmp / "latin1.csv").write_bytes("v,caf\xe9\n1,2\n".encode("latin-1"))
    (tmp / "short.csv").write_text("v\n1\n2\n3\n")


def _snapshot(tmp: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(tmp)): (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
            for p in sorted(tmp.rglob("*"))}


@pytest.mark.parametrize("argv", NUMBERS + PATHS + FILES, ids=lambda a: " ".join(a)[:70])
def test_refused_in_one_line_and_nothing_changed(tmp_path, capsys, argv):
    _user_files(tmp_path)
    before = _snapshot(tmp_path)
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (code, out[-300:], err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "Traceback" not in out
    assert _snapshot(tmp_path) == before


API = [
    (lambda: bptt.RNN(1, 2, 1, seed=-1), "seed"),
    (lambda: bptt.RNN(1, 2, 1, seed="abc"), "seed"),
    (lambda: bptt.RNN(1, 10**12, 1), "hidden_size"),
    (lambda: bptt.RNN(True, 2, 1), "input_size"),
    (lambda: bptt.RNN(1, 2, 1, dtype="foo"), "dtype"),
    (lambda: bptt.RNN(1, 2, 1, dtype=np.int32), "dtype"),
    (lambda: bptt.RNN(1, 2, 1, "gelu"), "hidden_activation"),
    (lambda: bptt.RNN(1, 2, 1).set_params(nope=1), "unknown parameter"),
    (lambda: bptt.RNN(1, 2, 1).set_params(b1=[1 + 1j, 0]), "complex"),
    (lambda: bptt.RNN(1, 2, 1).set_params(w_h=np.full((2, 2), np.nan)), "finite"),
    (lambda: bptt.RNN(1, 2, 1).loss_and_grad(np.ones(3), np.ones(3), truncate=2**80), "truncate"),
    (lambda: bptt.RNN(1, 2, 1).loss_and_grad(np.ones(3), np.ones(3), truncate=True), "truncate"),
    (lambda: bptt.RNN(1, 2, 1).loss_and_grad(np.ones(3), np.ones(3), checkpoint=-1), "checkpoint"),
    (lambda: bptt.RNN(1, 2, 1).loss_and_grad(np.ones(3), np.ones(3), reduction="max"), "reduction"),
    (lambda: bptt.RNN(1, 2, 1).loss_and_grad(np.ones(3), np.ones(4)), "y must have shape"),
    (lambda: bptt.RNN(1, 2, 1).loss_and_grad([[1.0], [2.0, 3.0]], np.ones(2)), "numeric"),
    (lambda: bptt.RNN(1, 2, 1).loss_and_grad(np.ones(3) + 1j, np.ones(3)), "complex"),
    (lambda: bptt.RNN(1, 2, 1).loss_and_grad(np.ones((0, 1)), np.ones((0, 1))), "empty"),
    (lambda: bptt.RNN(1, 2, 1).loss_and_grad(np.full(3, 1e300), np.ones(3), backend="numpy"), None),
    (lambda: bptt.RNN(1, 2, 1).forward(np.array(["a", "b"])), "numeric"),
    (lambda: bptt.RNN(1, 2, 1).loss_and_grad(np.ones(3), np.ones(3), h0=[np.inf, 0]), "finite"),
]


@pytest.mark.parametrize("call, word", API, ids=[str(i) for i in range(len(API))])
def test_api_refuses_in_one_line(call, word):
    try:
        call()
    except BPTTError as e:
        assert "\n" not in str(e)
        if word:
            assert word in str(e), str(e)
    else:
        assert word is None  # a case that is valid must compute a finite answer, which it did


def test_torch_layer_refuses_what_it_cannot_do():
    torch = pytest.importorskip("torch")
    from bptt.torch import SigmoidRNN

    for dtype in (torch.int32, torch.bool, torch.complex64):
        with pytest.raises(BPTTError):
            SigmoidRNN(3, 4, 2, dtype=dtype)
    layer = SigmoidRNN(1, 2, 1, dtype=torch.float64)
    with pytest.raises(BPTTError, match="finite"):
        layer(torch.tensor([[[float("nan")]]], dtype=torch.float64))
