"""Hostile but fair input, by class: every case is refused with one `error:` line and exit status 2
(or one BPTTError line from the API), and nothing the user had is changed.

Classes: numbers, paths, files read back, encodings, sizes, API arguments, data loss (--force and --out
touch only what bptt wrote: never a user's file named like an output, a link, a FIFO or a device).  Other classes live
beside their modules: concurrency and killed runs (test_train.py), full disks and umask
(test_io.py), damaged model and checkpoint files (test_io.py, test_train.py), ASCII terminals
(test_cli.py), long sequences (test_gradflow.py, test_derive.py), claims files (test_check.py).
"""

from __future__ import annotations

import io
import json
import os
import re
import resource
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import bptt
import bptt.train
from helpers import write_npz
import bptt.untrusted
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


# ------------------------------------------------------------------ data loss: --force touches only bptt's own files
# `bptt train --force` removes or overwrites only files a bptt run wrote (listed in --out/.bptt-run.json with their
# size and sha256, unchanged since); a single-file --out is overwritten only if it is a regular file.
RUN = [*SMALL_ADD, "--plots", "none"]


def _lsnapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root, links not followed and special files not opened: mode, device and bytes (or target)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if p.is_symlink():
            body = os.readlink(p).encode()
        elif stat.S_ISREG(st.st_mode):
            body = p.read_bytes()
        else:
            body = b""
        out[str(p.relative_to(root))] = (st.st_mode, st.st_rdev, body)
    return out


def _refused(capsys, argv: list[str], *words: str) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out[-300:], err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err
    return err


def _ok(capsys, argv: list[str]) -> None:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, (out[-300:], err)


def _user_files_named_like_outputs(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "loss.csv").write_text("x\n")
    (folder / "predictions.xlsx").write_bytes(b"y\n")
    (folder / "gradflow.py").write_text("# a module of the user's source tree\n")
    (folder / "metrics.json.bak").write_text("{}")
    os.chmod(folder / "loss.csv", 0o600)


def test_force_never_removes_user_files_named_like_outputs(tmp_path, capsys):
    r = tmp_path / "r"
    _user_files_named_like_outputs(r)
    before = _lsnapshot(r)
    _refused(capsys, ["train", *RUN, "--out", str(r)], "exists and is not empty", "--force")
    assert _lsnapshot(r) == before
    _ok(capsys, ["train", *RUN, "--out", str(r), "--force", "--plots", "png"])
    after = _lsnapshot(r)
    assert {k: v for k, v in after.items() if k in before} == before  # every user file as it was, mode included
    assert sorted(set(after) - set(before)) == [".bptt-run.json", "checkpoint.npz", "config.json", "gradflow.png",
                                                "loss.png", "metrics.json", "model.npz", "predictions.png"]
    _ok(capsys, ["train", *RUN, "--out", str(r), "--force"])  # --plots none: the earlier run's plots were its own
    after = _lsnapshot(r)
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(set(after) - set(before)) == [".bptt-run.json", "checkpoint.npz", "config.json", "metrics.json",
                                                "model.npz"]


@pytest.mark.parametrize("name", ["model.npz", "config.json", "loss.png", "checkpoint.npz"])
def test_force_refuses_an_output_name_taken_by_a_user_file(tmp_path, capsys, name):
    r = tmp_path / "r"
    _user_files_named_like_outputs(r)
    (r / name).write_text("the user's")
    before = _lsnapshot(r)
    _refused(capsys, ["train", *RUN, "--plots", "png", "--out", str(r), "--force"],
             f"{name} there was not written by bptt", "move it away")
    assert _lsnapshot(r) == before


def test_force_refuses_an_output_the_user_edited_and_keeps_what_it_does_not_write(tmp_path, capsys):
    r = tmp_path / "r"
    _ok(capsys, ["train", *RUN, "--plots", "svg", "--out", str(r)])
    with open(r / "model.npz", "ab") as f:
        f.write(b"edited")  # the user changed the run's model: it is not bptt's any more
    (r / "loss.svg").write_text("<svg>the user's drawing</svg>")
    before = _lsnapshot(r)
    _refused(capsys, ["train", *RUN, "--out", str(r), "--force"], "model.npz there was changed since bptt wrote it")
    assert _lsnapshot(r) == before
    (r / "model.npz").rename(tmp_path / "kept.npz")  # what the message says to do
    _ok(capsys, ["train", *RUN, "--out", str(r), "--force"])
    after = _lsnapshot(r)
    assert after["loss.svg"] == before["loss.svg"]  # edited, and not an output of this run: kept
    assert "predictions.svg" not in after and "gradflow.svg" not in after  # unchanged earlier outputs: removed
    assert (tmp_path / "kept.npz").read_bytes().endswith(b"edited")


def test_force_rerun_replaces_its_own_previous_outputs(tmp_path, capsys):
    r = tmp_path / "r"
    _ok(capsys, ["train", *RUN, "--out", str(r), "--seed", "1"])
    (r / "notes.txt").write_text("mine")
    first = _lsnapshot(r)
    _ok(capsys, ["train", *RUN, "--out", str(r), "--seed", "2", "--force"])
    second = _lsnapshot(r)
    assert sorted(second) == sorted(first)
    assert second["notes.txt"] == first["notes.txt"]
    assert json.loads((r / "config.json").read_text())["seed"] == 2
    assert bptt.io.load_model(r)[1]["config"]["seed"] == 2
    assert second["model.npz"] != first["model.npz"]


def test_symlinked_out_is_refused_and_nothing_changes(tmp_path, capsys):
    real = tmp_path / "real"
    _ok(capsys, ["train", *RUN, "--out", str(real)])
    _user_files_named_like_outputs(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    before = _lsnapshot(tmp_path)
    for extra in (["--force"], [], ["--resume"]):
        argv = ["train", "--resume", "--out", str(link)] if extra == ["--resume"] else ["train", *RUN, "--out", str(link), *extra]
        _refused(capsys, argv, "is a symbolic link", "never writes or removes files through a link")
        assert _lsnapshot(tmp_path) == before


def test_a_symlink_or_fifo_where_an_output_goes_is_refused(tmp_path, capsys):
    r = tmp_path / "r"
    r.mkdir()
    (tmp_path / "precious.npz").write_text("elsewhere")
    (r / "model.npz").symlink_to(tmp_path / "precious.npz")
    os.mkfifo(r / "metrics.json")
    before = _lsnapshot(tmp_path)
    _refused(capsys, ["train", *RUN, "--out", str(r), "--force"], "is a ", "not a file bptt wrote")
    assert _lsnapshot(tmp_path) == before


def test_out_dot_in_a_source_tree_writes_beside_it(tmp_path, capsys, monkeypatch):
    src = tmp_path / "src"
    _user_files_named_like_outputs(src)
    (src / "loss.py").write_text("print('the user')\n")
    monkeypatch.chdir(src)
    before = _lsnapshot(src)
    _refused(capsys, ["train", *RUN, "--out", "."], "exists and is not empty")
    assert _lsnapshot(src) == before
    for _ in range(2):  # the second --force replaces the first run's outputs, nothing of the user's
        _ok(capsys, ["train", *RUN, "--out", ".", "--force", "--plots", "png"])
        after = _lsnapshot(src)
        assert {k: v for k, v in after.items() if k in before} == before
        assert len(after) == len(before) + 8


def test_out_at_root_or_a_home_folder_is_refused(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "model.npz").write_text("the user's")
    monkeypatch.setenv("HOME", str(home))
    before = _lsnapshot(tmp_path)
    _refused(capsys, ["train", *RUN, "--out", str(home), "--force"], "is a home folder")
    _refused(capsys, ["train", *RUN, "--out", "/", "--force"], "is the root folder")
    monkeypatch.chdir(home)
    _refused(capsys, ["train", *RUN, "--out", ".", "--force"], "is a home folder")
    assert _lsnapshot(tmp_path) == before


def _special(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod of a character device needs root")
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # what /dev/null is


@pytest.mark.parametrize("kind", ["fifo", "char_device"])
@pytest.mark.parametrize("command", ["explain", "gradflow", "train"])
def test_force_never_replaces_a_fifo_or_device_given_as_out(tmp_path, capsys, kind, command):
    node = tmp_path / ("n.png" if command == "gradflow" else "n")
    _special(node, kind)
    (tmp_path / "link.md").symlink_to(tmp_path / "a_target.md")
    (tmp_path / "a_target.md").write_text("kept")
    before = _lsnapshot(tmp_path)
    argv = {"explain": ["explain"], "gradflow": ["gradflow", "--length", "4", "--hidden", "2"],
            "train": ["train", *RUN]}[command]
    what = "FIFO (named pipe)" if kind == "fifo" else "character device"
    _refused(capsys, [*argv, "--out", str(node), "--force"], what)
    if command == "explain":  # a link as --out FILE: refused too, neither the link nor its target replaced
        _refused(capsys, ["explain", "--out", str(tmp_path / "link.md"), "--force"], "symbolic link")
    assert _lsnapshot(tmp_path) == before


def test_ensemble_members_files_of_the_user_stay(tmp_path, capsys):
    r = tmp_path / "r"
    ens = [*RUN, "--ensemble", "2"]
    _ok(capsys, ["train", *ens, "--out", str(r)])
    (r / "members" / "0" / "notes.txt").write_text("mine")
    (r / "members" / "1" / "checkpoint.npz").write_bytes(b"the user's own checkpoint")
    (r / "members" / "7").mkdir()
    (r / "members" / "7" / "config.json").write_text("the user's")
    before = _lsnapshot(r)
    _refused(capsys, ["train", *ens, "--out", str(r), "--force"],
             "members/1/checkpoint.npz there was changed since bptt wrote it")
    assert _lsnapshot(r) == before
    _ok(capsys, ["train", *RUN, "--out", str(r), "--force"])  # a single network: writes no members' files
    after = _lsnapshot(r)
    for kept in ("members/0/notes.txt", "members/1/checkpoint.npz", "members/7/config.json"):
        assert after[kept] == before[kept]
    assert "members/0/config.json" not in after and "members/1/config.json" not in after  # the run's own: removed
    shutil.rmtree(r / "members")
    (tmp_path / "elsewhere").mkdir()
    (r / "members").symlink_to(tmp_path / "elsewhere")
    before = _lsnapshot(tmp_path)
    _refused(capsys, ["train", *ens, "--out", str(r), "--force"], "members there is a symbolic link")
    assert _lsnapshot(tmp_path) == before


def test_resume_rewrites_only_its_own_files(tmp_path, capsys):
    r = tmp_path / "r"
    _ok(capsys, ["train", *RUN, "--out", str(r)])
    _ok(capsys, ["train", "--resume", "--plots", "none", "--no-progress", "--out", str(r)])  # finished: rewritten
    (r / "metrics.json").write_text("the user's edit")
    before = _lsnapshot(r)
    _refused(capsys, ["train", "--resume", "--plots", "none", "--no-progress", "--out", str(r)],
             "metrics.json there was changed since bptt wrote it")
    assert _lsnapshot(r) == before


# ------------------------------------------------------------------ output: full devices, closed pipes, narrow terminals
# Standard output that cannot be written is one `error:` line and status 2 (as a file that cannot be written); a
# reader that leaves early (`bptt seed | head -2`) stops bptt quietly with 141, as Unix tools; a terminal narrower
# than the tables still shows their numbers.  Every case is a real process under `timeout`.
BPTT = [sys.executable, "-m", "bptt"]
PRINTERS = [["seed"], ["seed", "--json"], ["grad", "--x", "1,0", "--y", "0.5,0.5"],
            ["grad", "--x", "1,0", "--y", "0.5,0.5", "--json"], ["explain"],
            ["check", "examples/seed_claims.toml", "--json"]]
ROOT = Path(__file__).resolve().parents[1]


def _bptt(argv, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["timeout", str(timeout), *BPTT, *argv], capture_output=True, cwd=ROOT, **kwargs)


@pytest.mark.parametrize("argv", PRINTERS, ids=lambda a: " ".join(a))
def test_a_full_device_as_stdout_is_one_line_and_status_2(argv):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    with open("/dev/full", "w") as full:
        p = subprocess.run(["timeout", "120", *BPTT, *argv], stdout=full, stderr=subprocess.PIPE, cwd=ROOT)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert err.startswith("error: cannot write to standard output: No space left on device") and err.count("\n") == 1, err


@pytest.mark.parametrize("argv", PRINTERS[:4], ids=lambda a: " ".join(a))
def test_a_reader_that_has_gone_stops_bptt_quietly_with_141(argv):
    """The pipe's reader closes before bptt writes (deterministic: `| head -2` after head has exited)."""
    p = subprocess.Popen(["timeout", "120", *BPTT, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=150) == 141, err
    assert err == ""


def test_head_of_seed_and_grad_in_a_shell_pipeline():
    script = (f"{shlex.join(BPTT)} seed | head -2; echo seed=${{PIPESTATUS[0]}}; "
              f"{shlex.join(BPTT)} grad --x 1,0 --y 0.5,0.5 | head -1; echo grad=${{PIPESTATUS[0]}}")
    p = subprocess.run(["timeout", "240", "bash", "-c", script], capture_output=True, text=True, cwd=ROOT)
    lines = p.stdout.splitlines()
    assert lines[0].startswith("The seed's worked example") and len(lines) == 5, p.stdout
    assert lines[2] in ("seed=141", "seed=0") and lines[4] in ("grad=141", "grad=0"), p.stdout  # 0: it had written all
    assert p.stderr == ""


def test_stdout_closed_at_start_is_one_line():
    p = subprocess.run(["timeout", "120", "bash", "-c", f"{shlex.join(BPTT)} seed >&-"], capture_output=True,
                       text=True, cwd=ROOT)
    assert p.returncode == 2 and p.stderr.startswith("error: standard output is closed") and p.stderr.count("\n") == 1


def test_a_terminal_ten_columns_wide_still_shows_the_numbers():
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "10", "LINES": "20", "TERM": "xterm"}
    p = subprocess.Popen(["timeout", "120", *BPTT, "grad", "--x", "1,0", "--y", "0.5,0.5"], stdout=follower,
                         stderr=subprocess.PIPE, cwd=ROOT, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal's other end closed: bptt has exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert p.wait(timeout=150) == 0, p.stderr.read()
    text = b"".join(chunks).decode()
    for number in ("0.880797", "0.867703", "0.03700326618", "0.04232660347"):
        assert number in text, text


def test_warnings_are_held_back_before_a_refusal_and_shown_after_a_success(tmp_path, monkeypatch, capsys):
    """A command that warns and then refuses prints one line; one that warns and succeeds shows the warning."""
    import bptt.cli as cli

    (tmp_path / "noisy.py").write_text(
        "import warnings\nimport numpy as np\nfrom bptt import BPTTError\nORDER = 98\nCOMPILES = False\n\n\n"
        "def add(sub):\n    p = sub.add_parser('noisy')\n    p.add_argument('--fail', action='store_true')\n"
        "    p.set_defaults(run=run)\n\n\n"
        "def run(args):\n    np.float64(1e308) * 10\n    warnings.warn('a library notice')\n"
        "    if args.fail:\n        raise BPTTError('the one line')\n    print('done')\n    return 0\n")
    monkeypatch.setattr(cli, "__path__", [*cli.__path__, str(tmp_path)])
    monkeypatch.setattr(cli, "SUBCOMMANDS", cli._subcommands())
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert main(["noisy", "--fail"]) == 2
    out, err = capsys.readouterr()
    assert err == "error: the one line\n" and out == "" and shown == []
    with pytest.warns(RuntimeWarning, match="overflow"), pytest.warns(UserWarning, match="a library notice"):
        assert main(["noisy"]) == 0
    assert capsys.readouterr().out == "done\n"


def test_help_points_to_the_documentation(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "docs/index.md" in capsys.readouterr().out


# ------------------------------------------------------------------ signals: Ctrl-C and SIGTERM end every process
def _processes_under(pid: int) -> list[int]:
    """Every process whose parent is ``pid`` (from /proc; Linux)."""
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat_line = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat_line.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _interrupt_a_training(tmp_path: Path, extra: list[str], sig: int) -> tuple[int, str, list[int], Path]:
    """Start a long `bptt train`, wait for its first checkpoint, send ``sig``; (status, stderr, its processes, out)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc")
    out = tmp_path / "d"
    # The child starts with Ctrl-C at its default disposition, as from a terminal.  A process whose parent ignores
    # SIGINT (nohup, `cmd &` in a script) inherits the ignoring, and then bptt, like any program, ignores Ctrl-C:
    # in CI's full run this test's child once ran to the end with status 0, as if so (the parent's disposition at
    # this point goes into the failure message below).
    # (set in the child's first line: a preexec_fn would fork this multithreaded process, which can deadlock)
    parent = signal.getsignal(signal.SIGINT)
    default_ctrl_c = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                      "runpy.run_module('bptt', run_name='__main__', alter_sys=True)")
    p = subprocess.Popen([sys.executable, "-c", default_ctrl_c, "train", "--task", "adding", "--length", "30",
                          "--epochs", "400", "--no-progress", "--checkpoint-every", "1", "--out", str(out), *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        # Signal once the loop runs: after the checkpoint of epoch 1 (the one of epoch 0 is written before the first
        # compiled call).  This test is about the loop; a signal at any earlier moment: tests/test_signals.py.
        first = None
        for _ in range(12000):  # up to 10 min: a cold numba cache compiles for tens of seconds under load
            if p.poll() is not None:
                break
            ck = out / "checkpoint.npz"
            mtime = ck.stat().st_mtime_ns if ck.exists() else None
            if first is None:
                first = mtime
            elif mtime is not None and mtime != first:
                break
            time.sleep(0.05)
        assert p.poll() is None, p.stderr.read().decode()
        family = _processes_under(p.pid)
        family += [k for f in family for k in _processes_under(f)]
        p.send_signal(sig)
        err = p.stderr.read().decode()  # until every process holding the pipe has gone
        code = p.wait(timeout=30)
        # the start-up note of a cold kernel cache (another test or an edit may have invalidated it) is not an error
        err = "".join(line for line in err.splitlines(keepends=True)
                      if not line.startswith("bptt: compiling the numba kernels"))
    finally:
        if p.poll() is None:
            p.kill()
    if code == 0:
        err += f"(the test process's SIGINT handler: {parent!r})"
    return code, err, family, out


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_or_sigterm_stops_a_training_with_one_line_and_a_checkpoint(tmp_path, sig, code, word):
    status, err, _, out = _interrupt_a_training(tmp_path, [], sig)
    # 130/143, or ended by the signal itself (-2/-15: CPython re-raises SIGINT at exit once a KeyboardInterrupt has
    # escaped any Python-level run, even if caught later); a shell shows 130/143 for both
    assert status in (code, -sig), (status, err)
    assert err == f"error: {word}; continue from the last checkpoint with: bptt train --resume --out {out}\n", err
    cfg, *_, state, _ = bptt.train.load_checkpoint(out)
    assert 0 <= state["epoch"] < 400 and cfg.epochs == 400


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_stops_every_rank_of_a_data_parallel_training(tmp_path, sig, code, word):
    """The issue's deadlock: rank 0 blocked on a progress pipe nobody read, rank 1 in the all-reduce, the parent
    waiting for both.  Now every process ends within seconds, with one line, and the checkpoint resumes."""
    pytest.importorskip("torch")
    start = time.monotonic()
    status, err, family, out = _interrupt_a_training(tmp_path, ["--backend", "torch", "--nproc", "2"], sig)
    assert status in (code, -sig), (status, err)
    assert err == (f"error: {word}; the 2 training processes are stopped; continue from the last checkpoint with: "
                   f"bptt train --resume --out {out}\n"), err
    assert len(family) >= 2
    deadline = time.monotonic() + 10
    while any(_alive(k) for k in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [k for k in family if _alive(k)], "a rank outlived the interrupted run"
    cfg, *_, state, _ = bptt.train.load_checkpoint(out)
    assert 0 <= state["epoch"] < 400 and cfg.nproc == 2
    assert time.monotonic() - start < 600


# ------------------------------------------------------------------ untrusted files: bounded before they are read
# A model, checkpoint or CSV file is opened without blocking, checked to be a regular file of a bounded size, and
# an npz's members are checked (names, declared sizes, .npy headers, dtypes) before any array is allocated.
def _refused_process(argv: list[str], *words: str, timeout: int = 60) -> str:
    """A real `bptt` process under `timeout`: status 2, one error line naming ``words`` (a hang fails with 124)."""
    p = subprocess.run(["timeout", str(timeout), *BPTT, *argv], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2, (p.returncode, p.stdout[-300:], p.stderr[-600:])
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    for w in words:
        assert w in p.stderr, p.stderr
    return p.stderr


def _csv_model(tmp: Path, capsys) -> Path:
    """A small series model trained on a CSV column (what `predict --csv` reads into)."""
    (tmp / "series.csv").write_text("v\n" + "".join(f"{np.sin(i / 3):.6f}\n" for i in range(40)))
    run = tmp / "csvrun"
    _ok(capsys, ["train", "--task", "csv", "--csv", str(tmp / "series.csv"), "--column", "v", "--window", "3",
                 "--epochs", "1", "--hidden", "2", "--no-progress", "--plots", "none", "--out", str(run)])
    return run


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "/dev/urandom"])
def test_a_fifo_or_device_as_a_csv_or_model_file_is_refused_at_once(tmp_path, kind):
    if kind == "fifo":
        node = tmp_path / "data.csv"
        os.mkfifo(node)
        what = "FIFO (named pipe)"
    else:
        if not os.path.exists(kind):
            pytest.skip(f"no {kind}")
        node, what = Path(kind), "character device"
    model = tmp_path / "m.npz"
    if kind == "fifo":
        os.mkfifo(model)
    else:
        model = node
    _refused_process(["train", "--task", "csv", "--csv", str(node), "--column", "v", "--out", str(tmp_path / "r")],
                     what, "not a regular file")
    _refused_process(["predict", "--model", str(model), "--x", "1"], what, "not a regular file")
    _refused_process(["gradflow", "--model", str(model), "--out", str(tmp_path / "f.png")], what)
    assert not (tmp_path / "r").exists()


def test_a_fifo_as_checkpoint_is_refused_at_once(tmp_path):
    out = tmp_path / "r"
    p = subprocess.run(["timeout", "120", *BPTT, "train", *RUN, "--out", str(out)], capture_output=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    (out / "checkpoint.npz").unlink()
    os.mkfifo(out / "checkpoint.npz")
    with pytest.raises(BPTTError, match="FIFO"):  # the API's door: no run folder in between
        bptt.train.load_checkpoint(out)
    _refused_process(["train", "--resume", "--out", str(out), "--no-progress"], "FIFO")


def _npy_header(shape: tuple, descr: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _a_model_file(tmp: Path) -> dict[str, bytes]:
    m = bptt.RNN(1, 2, 1, seed=0)
    bptt.io.save_model(tmp / "good.npz", m)
    with zipfile.ZipFile(tmp / "good.npz") as z:
        return {n: z.read(n) for n in z.namelist()}


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path, capsys):
    members = _a_model_file(tmp_path)
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        with z.open("padding.npy", "w", force_zip64=True) as f:  # 64 MiB of zeros: ~64 kB deflated
            f.write(_npy_header((8 << 20,), "<f8"))
            block = bytes(1 << 20)
            for _ in range(64):
                f.write(block)
    assert bomb.stat().st_size < 1 << 20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _refused(capsys, ["predict", "--model", str(bomb), "--x", "1"], "would inflate", "zip bomb")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 32 << 10  # kB: nothing near 64 MiB inflated


@pytest.mark.parametrize("case, words", [
    ("tib_header", ("header says shape (1099511627776,)", "8 TiB")),
    ("not_npy", ("'notes.txt' is not one .npy array",)),
    ("object_dtype", ("holds object, not numbers",)),
    ("duplicate", ("is not one .npy array",)),
    ("no_marker", ("no bptt marker",)),
    ("bad_magic", ("has no valid .npy header",)),
])
def test_damaged_npz_members_are_refused_before_allocation(tmp_path, capsys, case, words):
    members = _a_model_file(tmp_path)
    if case == "tib_header":
        members["w_h.npy"] = _npy_header((1 << 40,), "<f8") + bytes(8)
    elif case == "not_npy":
        members["notes.txt"] = b"hello"
    elif case == "object_dtype":
        members["w_h.npy"] = _npy_header((2,), "|O") + bytes(16)
    elif case == "no_marker":
        del members["__bptt__.npy"]
    elif case == "bad_magic":
        members["w_h.npy"] = b"\x93NUMPY\x09\x00" + bytes(40)
    path = tmp_path / "damaged.npz"
    if case == "duplicate":
        with zipfile.ZipFile(path, "w") as z, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it writes
            for name, data in [*members.items(), ("w_h.npy", members["w_h.npy"])]:
                z.writestr(name, data)
    else:
        write_npz(path, members)
    _refused(capsys, ["predict", "--model", str(path), "--x", "1"], *words)
    with pytest.raises(BPTTError):
        bptt.io.load_model(path)


def test_a_model_written_and_read_back_is_the_same(tmp_path):
    """The bounded reader reads what save_model writes, bit for bit (a file of savez_compressed too)."""
    m = bptt.RNN(2, 3, 2, hidden_activation="tanh", output_activation="identity", seed=4)
    bptt.io.save_model(tmp_path / "m.npz", m, {"note": "x"})
    back, info = bptt.io.load_model(tmp_path / "m.npz")
    for k, v in m.params().items():
        assert np.array_equal(back.params()[k], v) and back.params()[k].flags.writeable
    members = _a_model_file(tmp_path)
    write_npz(tmp_path / "c.npz", members, compress=True)
    back, _ = bptt.io.load_model(tmp_path / "c.npz")
    assert np.array_equal(back.w_h, bptt.RNN(1, 2, 1, seed=0).w_h)


# ------------------------------------------------------------------ CSV numbers: read strictly, never spliced or cut
CSV_BAD = [
    ("v\n1\n50,126\n3\n", "line 3 has 2 fields but the header has 1"),
    ('v\n1\n"50,126"\n3\n', "decimal comma or a thousands separator"),
    ('v,w\n1,2\n"1,000.5",3\n', "decimal comma or a thousands separator"),
    ("v\n1\n1_000\n3\n", "decimal comma or a thousands separator"),
    ("v\n1\n1 000\n3\n", "decimal comma or a thousands separator"),
    ("v,v\n1,2\n3,4\n", "names column 'v' 2 times"),
    ("v\n1\n2\n\n3\n4\n", "line 4 is blank, between rows of numbers"),
    ("v\n1\n2\n,\n3\n", "line 4 is blank"),
    ("v\n1\n\u0663\n", "not a finite number"),
    ("v\n1\nnan\n", "not a finite number"),
    ("v\n1\n1e999\n", "beyond +-1e+150"),
    ("v\n-1e308\n1e308\n", "beyond +-1e+150"),
    ("v\n0\n1e-309\n2e-309\n", "below 1e-150"),
    ("v\n1\n0x10\n", "not a finite number"),
]


@pytest.mark.parametrize("text, words", CSV_BAD, ids=[repr(t)[:40] for t, _ in CSV_BAD])
def test_csv_numbers_are_read_strictly(tmp_path, capsys, text, words):
    f = tmp_path / "bad.csv"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(BPTTError, match=re.escape(words)):
        bptt.untrusted.read_csv_columns(f, ["v"])
    before = _snapshot(tmp_path)
    _refused(capsys, ["train", "--task", "csv", "--csv", str(f), "--column", "v", "--window", "1", "--n-val", "1",
                      "--n-test", "1", "--out", str(tmp_path / "r")], words)
    assert _snapshot(tmp_path) == before


def test_predict_csv_refuses_what_train_refuses(tmp_path, capsys):
    run = _csv_model(tmp_path, capsys)
    for text, words in CSV_BAD:
        (tmp_path / "in.csv").write_text(text, encoding="utf-8")
        _refused(capsys, ["predict", "--model", str(run), "--csv", str(tmp_path / "in.csv"), "--column", "v"], words)


def test_csv_that_is_plain_is_read_exactly(tmp_path):
    f = tmp_path / "ok.csv"
    f.write_text("\ufefft, v ,w\n1,0.5,x\n2,-1e-3,y\n3,\"7\",z\n\n\n", encoding="utf-8")  # BOM, spaces, trailing blanks
    (v,) = bptt.untrusted.read_csv_columns(f, ["v"])
    assert v.tolist() == [0.5, -0.001, 7.0]


# ------------------------------------------------------------------ sizes: refused before anything is allocated
SIZES = [
    (["train", "--task", "adding", "--hidden", str(2**22), "--out", "{tmp}/r"], "give a hidden size of at most"),
    (["train", "--task", "adding", "--n-train", str(10**9), "--out", "{tmp}/r"], "give fewer sequences"),
    (["train", "--task", "adding", "--length", str(10**9), "--out", "{tmp}/r"], "or a shorter --length"),
    (["train", "--task", "sine", "--length", str(10**9), "--out", "{tmp}/r"], "or a shorter --length"),
    (["train", "--task", "adding", "--backend", "torch", "--nproc", "100000", "--out", "{tmp}/r"],
     "nproc must be an integer from 1 to 64"),
    (["gradflow", "--length", "100000", "--max-steps", "100000", "--out", "{tmp}/f.png"], "give a smaller --max-steps"),
    (["gradflow", "--hidden", str(2**22), "--out", "{tmp}/f.png"], "give a hidden size of at most"),
    (["gradflow", "--length", str(10**10), "--out", "{tmp}/f.png"], "give a shorter --length"),
    (["gradflow", "--hidden", "3000", "--length", "1000", "--out", "{tmp}/f.png"], "multiply-adds"),
]


@pytest.mark.parametrize("argv, words", SIZES, ids=lambda a: " ".join(a)[:60] if isinstance(a, list) else "")
def test_sizes_beyond_this_machine_are_refused_before_allocating(tmp_path, capsys, argv, words):
    _user_files(tmp_path)
    before = _snapshot(tmp_path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _refused(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv], words, "available on this machine"
             if "nproc" not in words and "multiply" not in words else "")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 256 << 10  # kB: nothing big was allocated
    assert _snapshot(tmp_path) == before


def test_the_limits_follow_the_memory_available(monkeypatch):
    import bptt.ddp
    from bptt import validation

    with pytest.raises(BPTTError, match=r"give --nproc 2 or fewer"):
        monkeypatch.setattr(bptt.ddp, "memory_available", lambda: 1 << 30)
        bptt.ddp.check_ranks(4)
    bptt.ddp.check_ranks(2)
    # (H^2 + 3 H + 1) 8 bytes <= 2^30: H = 11583 gives 1073605112, H = 11584 gives 1073790472 > 1073741824
    with pytest.raises(BPTTError, match=r"give a hidden size of at most 11583$"):
        validation.check_network_size(1, 20000, 1, copies=1, available=1 << 30)
    validation.check_network_size(1, 11583, 1, copies=1, available=1 << 30)
    with pytest.raises(BPTTError, match="give a hidden size of at most 11583"):
        validation.check_network_size(1, 11584, 1, copies=1, available=1 << 30)


# ------------------------------------------------------------------ numbers read back from files
def test_predict_warns_only_after_its_output_is_written(tmp_path, capsys):
    """A short --x draws a warning; it came before the output, so a full disk printed it and the error (two lines)
    and a reader that had gone left it alone on stderr with status 141.  Now the output goes first."""
    run = _csv_model(tmp_path, capsys)
    argv = ["predict", "--model", str(run), "--x", "0.1,0.2", "--json"]
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            p = subprocess.run(["timeout", "120", *BPTT, *argv], stdout=full, stderr=subprocess.PIPE, cwd=ROOT)
        err = p.stderr.decode()
        assert p.returncode == 2 and err.startswith("error: cannot write to standard output") and err.count("\n") == 1, err
    p = subprocess.Popen(["timeout", "120", *BPTT, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=150) == 141 and err == "", err
    p = _bptt(argv)
    assert p.returncode == 0 and json.loads(p.stdout)["warnings"], p.stderr
    assert p.stderr.decode().startswith("warning: --x has 2 values but the model was trained on windows of 3")


def test_a_model_whose_scaling_overflows_is_refused(tmp_path, capsys):
    run = _csv_model(tmp_path, capsys)
    m, info = bptt.io.load_model(run)
    for lo, hi, words in [(-1e308, 1e308, "beyond +-1e+150"), (0.0, 1e-309, "below 1e-150")]:
        bptt.io.save_model(tmp_path / "m.npz", m, {**info, "scaling": {"lo": lo, "hi": hi}})
        _refused(capsys, ["predict", "--model", str(tmp_path / "m.npz"), "--x", "1,2,3"], words)


def test_a_prediction_that_overflows_in_the_data_units_is_an_error_not_inf(tmp_path, capsys):
    """An identity output of 1e200 in [0, 1] units, times a span of 1e150 (allowed): inf in the data's units."""
    run = _csv_model(tmp_path, capsys)
    m, info = bptt.io.load_model(run)
    net = bptt.RNN(1, 2, 1, output_activation="identity", seed=0)
    net.set_params(w=np.zeros((1, 2)), b2=np.array([1e200]))
    bptt.io.save_model(tmp_path / "m.npz", net, {**info, "scaling": {"lo": 0.0, "hi": 1e150}})
    _refused(capsys, ["predict", "--model", str(tmp_path / "m.npz"), "--x", "1,2,3"], "is [inf], not finite")


@pytest.mark.parametrize("optimizer, name, value, words", [
    ("hf", "damping", -1e6, "hf state damping = -1e+06, which must be > 0"),
    ("hf", "elapsed", -1e300, "hf state elapsed = -1e+300, which must be >= 0"),
    ("adam", "v.w_h", -1.0, "adam state v.w_h = -1, which must be >= 0"),
])
def test_a_checkpoint_with_impossible_optimizer_state_is_refused(tmp_path, optimizer, name, value, words):
    from bptt.train import config_for, train

    opts = {"bits": 3, "n_train": 8, "n_val": 4, "n_test": 4}
    cfg = config_for("binary-addition", opts, epochs=1, hidden_size=2, optimizer=optimizer)
    train(cfg, tmp_path)
    arrays, meta = bptt.io.load_arrays(tmp_path / "checkpoint.npz", bptt.io.CHECKPOINT_FORMAT)
    arrays = {k: np.array(v) for k, v in arrays.items()}
    arrays[f"opt.{name}"].flat[0] = value
    bptt.io.save_arrays(tmp_path / "checkpoint.npz", arrays, meta)
    with pytest.raises(BPTTError, match=re.escape(words)):
        train(cfg, tmp_path, resume=True)


@pytest.mark.parametrize("value, words", [([1], "task_options must be an object"), (None, "task_options must be an object"),
                                          ({"bits": "abc"}, "task option bits must be an integer"),
                                          ({"bits": 1.5}, "task option bits must be an integer")])
def test_a_checkpoint_whose_task_options_are_not_options_is_refused(tmp_path, capsys, value, words):
    out = tmp_path / "r"
    _ok(capsys, ["train", *RUN, "--out", str(out)])
    arrays, meta = bptt.io.load_arrays(out / "checkpoint.npz", bptt.io.CHECKPOINT_FORMAT)
    meta["config"]["task_options"] = value
    bptt.io.save_arrays(out / "checkpoint.npz", arrays, meta)
    before = _lsnapshot(out)
    _refused(capsys, ["train", "--resume", "--no-progress", "--out", str(out)], words)
    assert _lsnapshot(out) == before


@pytest.mark.parametrize("flag", ["--hf-damping", "--hf-structural", "--hf-l2"])
def test_hf_settings_that_would_change_nothing_or_overflow_are_refused(tmp_path, capsys, flag):
    _refused(capsys, ["train", *SMALL_ADD, "--optimizer", "hf", flag, "1e308", "--out", str(tmp_path / "r")],
             f"give {flag} 1e+08 or less")
    assert not (tmp_path / "r").exists()


EVERY_PARAMETER_1E308 = [f"--{k}=1e308" for k in ("w", "w-x", "w-h", "b1", "b2", "h0")]


@pytest.mark.parametrize("fmt", ["md", "text", "tex", "html"])
def test_explain_with_every_parameter_1e308_names_the_number_beyond_float64(capsys, fmt):
    """z_1 = 1e308 * 1 + 1e308 * 1e308 + 1e308 is 1e616: sympy evaluates it, float64 cannot (was a traceback in the
    number formatter).  grad computes the same case in float64 (h = 1, every gradient 0) and prints it."""
    _refused(capsys, ["explain", *EVERY_PARAMETER_1E308, "--format", fmt], "z_1 is inf in float64")
    _ok(capsys, ["grad", *EVERY_PARAMETER_1E308, "--x", "1,0", "--y", "0.5,0.5"])


@pytest.mark.parametrize("argv, words", [
    # the first sum or product of the forward pass beyond float64, wherever it arises
    (["--w-x=1e308", "--x", "1,2"], "z_2 is inf"),
    (["--w=1e308", "--b2=1e308", "--output-activation", "identity"], "u_1 is inf"),
    (["--w=1e200", "--w-x=1e-309", "--b2=1e200", "--output-activation", "identity"], "dE_i/dw_x (i = 1) is inf"),
    (["--w=-1e308", "--w-h=-1e308", "--hidden-activation", "relu", "--output-activation", "identity"], "u_1 is -inf"),
])
def test_explain_refuses_any_number_beyond_float64_in_one_line(capsys, argv, words):
    _refused(capsys, ["explain", *argv], words)


def test_explain_bce_with_a_saturated_prediction_writes_finite_numbers(capsys):
    """y' rounds to 1 at 30 digits: bce's 1/(y'(1 - y')) is infinite, but with a sigmoid output its product with
    g'(u) is exactly 1 (was `Cannot convert complex to float`); sympy's unrolled loss (log 0) is not compared, and the
    document says so instead of reporting a failed check of 'nan'."""
    assert main(["explain", "--loss", "bce", "--b2=100", "--y", "1,1", "--format", "text"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "FAILED" not in out and not re.search(r"\b(nan|inf)\b", out), out[-2000:]
    assert "Check: these numbers equal the numeric BPTT engine" in out
    assert "Sympy's derivative of the fully unrolled E_i (every dE_i/dθ) is undefined at these numbers" in out
    _ok(capsys, ["explain", "--hidden-activation", "relu", "--loss", "bce", "--x", "1,0", "--w=1", "--w-x=5e-324",
                 "--w-h=-745", "--b1=700", "--b2=1e154", "--h0=0", "--y", "1,1"])


# ------------------------------------------------------------------ API arrays numpy cannot read as plain numbers
def test_masked_arrays_and_unreadable_tensors_are_one_line():
    m = bptt.RNN(1, 2, 1, seed=0)
    with pytest.raises(BPTTError, match="masked array"):
        m.loss_and_grad(np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]), np.ones(3))
    torch = pytest.importorskip("torch")
    with pytest.raises(BPTTError, match=r"x could not be read as numbers .*detach"):
        m.loss_and_grad(torch.ones(3, requires_grad=True), np.ones(3))
    with pytest.raises(BPTTError, match="x "):
        m.loss_and_grad(torch.ones(3, device="meta"), np.ones(3))
    assert np.isfinite(m.loss_and_grad(torch.ones(3), np.ones(3))[0])  # a plain tensor is read as numbers


# ------------------------------------------------------------------ the one error line stays one line
def test_a_path_with_a_newline_or_escape_codes_is_one_escaped_line(tmp_path, capsys):
    bad = str(tmp_path / "a\nb\x1b[2J\x1b]0;title\x07")
    err = _refused(capsys, ["predict", "--model", bad, "--x", "1"], "a\\nb\\x1b[2J\\x1b]0;title\\x07", "no such file")
    assert "\x1b" not in err and "\x07" not in err


def test_a_bad_numba_thread_count_is_one_line():
    p = subprocess.run(["timeout", "120", *BPTT, "grad", "--x", "1,0", "--y", "0.5,0.5"], capture_output=True,
                       text=True, cwd=ROOT, env={**os.environ, "NUMBA_NUM_THREADS": "0"})
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: NUMBA_NUM_THREADS=0") and p.stderr.count("\n") == 1, p.stderr


def test_ctrl_c_while_the_command_line_loads_is_one_line():
    """SIGINT arrives while bptt.cli imports its subcommands (delivered from an import hook, so exactly then)."""
    code = ("import os, signal, sys\n"
            "class Hook:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'bptt.cli.train':\n"
            "            os.kill(os.getpid(), signal.SIGINT)\n"
            "        return None\n"
            "import bptt\n"
            "sys.meta_path.insert(0, Hook())\n"
            "from bptt.cli import main\n"
            "sys.exit(main(['seed']))\n")
    p = subprocess.run(["timeout", "120", sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 130 and p.stderr == "error: interrupted\n" and p.stdout == "", p.stderr


def test_the_decomposition_of_a_long_sequence_is_refused_before_computing():
    """The validator RNN.decompose calls: T = 200000 with the seed's 5 parameters needs 3.2 TB."""
    from bptt.validation import check_decomposition_size

    with pytest.raises(BPTTError, match=r"decompose at most 1000 steps"):
        check_decomposition_size(200_000, 5, 8, available=1000 * 1000 * 2 * 5 * 8)
    check_decomposition_size(1000, 5, 8, available=1000 * 1000 * 2 * 5 * 8)
    with pytest.raises(BPTTError, match="decomposing a 200000-step sequence"):
        check_decomposition_size(200_000, 5)  # any machine of today: 3.2 TB


@pytest.mark.slow
def test_a_killed_rank_is_one_line_and_no_rank_is_left(tmp_path):
    """SIGKILL to rank 1 mid-run: the parent stops rank 0 and says so in one line (no torch or gloo lines)."""
    pytest.importorskip("torch")
    out = tmp_path / "d"
    p = subprocess.Popen([*BPTT, "train", "--task", "adding", "--length", "30", "--epochs", "400", "--no-progress",
                          "--checkpoint-every", "1", "--backend", "torch", "--nproc", "2", "--out", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        # Signal once the loop runs: after the checkpoint of epoch 1 (the one of epoch 0 is written before the first
        # compiled call).  This test is about the loop; a signal at any earlier moment: tests/test_signals.py.
        first = None
        for _ in range(12000):  # up to 10 min: a cold numba cache compiles for tens of seconds under load
            if p.poll() is not None:
                break
            ck = out / "checkpoint.npz"
            mtime = ck.stat().st_mtime_ns if ck.exists() else None
            if first is None:
                first = mtime
            elif mtime is not None and mtime != first:
                break
            time.sleep(0.05)
        assert p.poll() is None, p.stderr.read().decode()
        ranks = [k for k in _processes_under(p.pid)
                 if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]
        assert len(ranks) == 2
        os.kill(max(ranks), signal.SIGKILL)  # the later-started process: rank 1 (either would do)
        err = p.stderr.read().decode()
        assert p.wait(timeout=60) == 2, err
    finally:
        if p.poll() is None:
            p.kill()
    assert err.startswith("error: training process ") and "died (signal SIGKILL)" in err and err.count("\n") == 1, err
    deadline = time.monotonic() + 10
    while any(_alive(k) for k in ranks) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [k for k in ranks if _alive(k)]
