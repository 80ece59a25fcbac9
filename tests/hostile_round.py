"""A fresh hostile round against the `bptt` command (issue 20).  Not collected by pytest (no test_ prefix).

    .venv/bin/python tests/hostile_round.py            # every case, a table of verdicts per class
    .venv/bin/python tests/hostile_round.py -k csv     # the cases whose class or name contains 'csv'
    .venv/bin/python tests/hostile_round.py -v         # and each case's verdict and first stderr line

Each case runs alone: a fresh temporary folder (its cwd, and HOME for the cases that need one), the `bptt` script
beside this interpreter under `timeout`, and before/after snapshots of every file there (type, size, mtime, mode,
content hash) outside the outputs the case names as the run's own.  Verdicts:

    clean refusal       status 2 and one stderr line (or a stop by Ctrl-C/SIGTERM: 130/143, at most one line)
    correct acceptance  status 0 and the case's own check of the output holds
    data loss           a file the user had is gone or changed (outside the run's own outputs)
    hang                `timeout` ended it (status 124/137)
    traceback           'Traceback' on stderr
    silent wrong        status 0 where a refusal was due, or an output that fails the case's check
    extra lines         a refusal or stop with more than one stderr line, or another non-zero status
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import math
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from helpers import npy_bytes, write_npz  # tests/helpers.py: this script runs from tests/

ROOT = Path(__file__).resolve().parents[1]
BPTT = str(Path(sys.executable).with_name("bptt")) if Path(sys.executable).with_name("bptt").exists() else None
CMD = [BPTT] if BPTT else [sys.executable, "-m", "bptt"]
TINY = ["--task", "adding", "--length", "6", "--n-train", "16", "--n-val", "8", "--n-test", "8", "--epochs", "1",
        "--hidden", "2", "--no-progress", "--plots", "none"]
NUM = re.compile(r"\b(nan|inf|-inf|NaN|Infinity)\b")


@dataclass
class Case:
    cls: str
    name: str
    argv: list[str]  # after `bptt`; "{d}" is the case's folder
    expect: str = "refuse"  # refuse | accept | either | stop | pipe
    setup: Callable[[Path], None] | None = None
    check: Callable[[Path, str, str], str | None] | None = None  # (folder, stdout, stderr) -> why wrong, or None
    outputs: tuple[str, ...] = ()  # the run's own outputs (relative globs): may change
    env: dict[str, str] = field(default_factory=dict)
    stdout: str = "pipe"  # pipe | full | closed | gone | tty10
    sig: tuple[int, float] | None = None  # (signal, seconds after start)
    timeout: int = 120
    ddp: bool = False


# ------------------------------------------------------------------ helpers for setups
def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)


def user_files(d: Path, names=("loss.csv", "predictions.xlsx", "model.npz", "metrics.json", "notes.txt",
                              "gradflow.py", "plots/loss.png")) -> None:
    for n in names:
        write(d / n, f"the user's {n}\n")


def fifo(path: Path) -> None:
    os.mkfifo(path)


def chardev(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 3))  # what /dev/null is


def npy_header(shape: tuple, descr: str = "<f8") -> bytes:
    h = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    h = h + " " * (64 - (10 + len(h) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h.encode()


_TRAINED: dict[str, Path] = {}


def trained(kind: str) -> Path:
    """A run folder trained once per round (adding or csv), copied into each case that needs it."""
    if kind not in _TRAINED:
        base = Path(tempfile.mkdtemp(prefix=f"hostile-{kind}-"))
        if kind == "csv":
            write(base / "s.csv", "v\n" + "".join(f"{math.sin(i / 5):.4f}\n" for i in range(60)))
            argv = ["train", "--task", "csv", "--csv", "s.csv", "--column", "v", "--epochs", "1", "--hidden", "2",
                    "--no-progress", "--plots", "none", "--out", "run"]
        else:
            argv = ["train", *TINY, "--checkpoint-every", "1", "--out", "run"]
        p = subprocess.run(["timeout", "300", *CMD, *argv], cwd=base, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        _TRAINED[kind] = base
    return _TRAINED[kind]


def copy_run(kind: str, dest: Path, name: str = "run") -> Path:
    base = trained(kind)
    shutil.copytree(base / "run", dest / name)
    if kind == "csv":
        shutil.copy(base / "s.csv", dest / "s.csv")
    return dest / name


def model_members(kind: str = "adding") -> dict[str, bytes]:
    with zipfile.ZipFile(trained(kind) / "run" / "model.npz") as z:
        return {n: z.read(n) for n in z.namelist()}


def ckpt_members() -> dict[str, bytes]:
    with zipfile.ZipFile(trained("adding") / "run" / "checkpoint.npz") as z:
        return {n: z.read(n) for n in z.namelist()}


def has(*words: str) -> Callable[[Path, str, str], str | None]:
    def check(d: Path, out: str, err: str) -> str | None:
        missing = [w for w in words if w not in out]
        return f"stdout lacks {missing}" if missing else None
    return check


def finite_output(d: Path, out: str, err: str) -> str | None:
    m = NUM.search(out)
    return f"stdout shows {m.group(0)!r}" if m else None


def no_escape(d: Path, out: str, err: str) -> str | None:
    return "a raw control character reached the terminal" if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out + err) else None


def files_exist(*names: str) -> Callable[[Path, str, str], str | None]:
    def check(d: Path, out: str, err: str) -> str | None:
        missing = [n for n in names if not (d / n).exists()]
        return f"missing {missing}" if missing else None
    return check


# ------------------------------------------------------------------ the cases
def cases() -> list[Case]:
    c: list[Case] = []
    add = c.append

    # -------- data loss: --force and --out touch only what this run wrote
    F = "data loss"
    for cmd in (["train", *TINY], ["train", *TINY, "--ensemble", "2"]):
        add(Case(F, f"{cmd[0]}{' ensemble' if '--ensemble' in cmd else ''} --force into a folder of user files "
                    "named like outputs", [*cmd, "--out", "r", "--force"], "either",
                 setup=lambda d: user_files(d / "r"), outputs=("r/*", "r/**/*")))
    add(Case(F, "train --force through a symlinked --out", ["train", *TINY, "--out", "link", "--force"], "either",
             setup=lambda d: (user_files(d / "real"), os.symlink("real", d / "link")), outputs=()))
    add(Case(F, "train --out . --force in a folder of user files", ["train", *TINY, "--out", ".", "--force"],
             "either", setup=lambda d: user_files(d)))
    add(Case(F, "train --out . in a copy of a source tree", ["train", *TINY, "--out", "."], "either",
             setup=lambda d: [write(d / n, "x = 1\n") for n in ("gradflow.py", "model.py", "train.py", "plots.py")]))
    add(Case(F, "train --out $HOME", ["train", *TINY, "--out", "{d}/home"], setup=lambda d: user_files(d / "home"),
             env={"HOME": "{d}/home"}))
    add(Case(F, "train --out $HOME --force", ["train", *TINY, "--out", "{d}/home", "--force"],
             setup=lambda d: user_files(d / "home"), env={"HOME": "{d}/home"}))
    add(Case(F, "train --out / --force", ["train", *TINY, "--out", "/", "--force"]))
    add(Case(F, "train --out an existing user file", ["train", *TINY, "--out", "f", "--force"],
             setup=lambda d: write(d / "f", "user data\n")))
    add(Case(F, "train --out a FIFO --force", ["train", *TINY, "--out", "p", "--force"], setup=lambda d: fifo(d / "p")))
    add(Case(F, "train --out a character device --force", ["train", *TINY, "--out", "n", "--force"],
             setup=lambda d: chardev(d / "n")))
    add(Case(F, "train --out r without --force, r has user files", ["train", *TINY, "--out", "r"],
             setup=lambda d: user_files(d / "r")))
    add(Case(F, "train --force rerun over its own earlier run and a user file", ["train", *TINY, "--out", "run",
             "--force"], "accept", setup=lambda d: (copy_run("adding", d), write(d / "run" / "mine.txt", "keep\n")),
             outputs=("run/*", "run/**/*"), check=files_exist("run/mine.txt", "run/model.npz")))
    add(Case(F, "train --resume over a user-edited metrics.json", ["train", "--resume", "--no-progress", "--plots",
             "none", "--out", "run"], "either",
             setup=lambda d: (copy_run("adding", d), write(d / "run" / "metrics.json", "the user's edit\n"))))
    add(Case(F, "train --out where an output name is a symlink to a user file", ["train", *TINY, "--out", "r",
             "--force"], "either", setup=lambda d: (write(d / "precious", "user\n"), (d / "r").mkdir(),
                                                      os.symlink("../precious", d / "r" / "model.npz"))))
    add(Case(F, "train --out where plots/ is a symlink to a user folder", ["train", *TINY, "--out", "r", "--force",
             "--plots", "png"], "either", setup=lambda d: (user_files(d / "mine"), (d / "r").mkdir(),
                                                            os.symlink("../mine", d / "r" / "plots"))))
    for what, make in (("a FIFO", fifo), ("a character device", chardev), ("a symlink to a user file",
                       lambda p: (write(p.parent / "precious.md", "user\n"), os.symlink("precious.md", p))),
                       ("a directory", lambda p: p.mkdir())):
        for cmd, out in ((["explain"], "e.md"), (["gradflow", "--length", "8", "--hidden", "2"], "g.png")):
            add(Case(F, f"{cmd[0]} --out {what} --force", [*cmd, "--out", out, "--force"],
                     setup=lambda d, make=make, out=out: make(d / out)))
    add(Case(F, "explain --out an existing file, no --force", ["explain", "--out", "e.md"],
             setup=lambda d: write(d / "e.md", "user\n")))
    add(Case(F, "explain --out an existing file --force (asked)", ["explain", "--out", "e.md", "--force"], "accept",
             setup=lambda d: write(d / "e.md", "user\n"), outputs=("e.md",), check=files_exist("e.md")))
    add(Case(F, "explain --force over a hard link keeps the other name", ["explain", "--out", "e.md", "--force"],
             "accept", setup=lambda d: (write(d / "other", "user\n"), os.link(d / "other", d / "e.md")),
             outputs=("e.md",), check=lambda d, o, e: None if (d / "other").read_text() == "user\n" else "changed"))
    add(Case(F, "explain --out in a read-only folder (root may write there)", ["explain", "--out", "ro/e.md"],
             "either" if os.geteuid() == 0 else "refuse", setup=lambda d: ((d / "ro").mkdir(), os.chmod(d / "ro", 0o500)),
             outputs=("ro/e.md",)))
    add(Case(F, "gradflow --out an existing png, no --force", ["gradflow", "--length", "8", "--hidden", "2", "--out",
             "g.png"], setup=lambda d: write(d / "g.png", b"\x89PNG user")))
    add(Case(F, "gradflow --out with a newline in its name", ["gradflow", "--length", "8", "--hidden", "2", "--out",
             "a\nb.png"], "either", outputs=("a\nb.png",)))
    add(Case(F, "explain --out a path through a missing folder", ["explain", "--out", "no/such/e.md"]))

    # -------- untrusted files: type and size before reading
    U = "untrusted files"
    for what, make in (("a FIFO", fifo), ("/dev/zero", None), ("/dev/urandom", None), ("a directory",
                       lambda p: p.mkdir()), ("an empty file", lambda p: write(p, ""))):
        path = what if what.startswith("/dev") else "x.csv"
        add(Case(U, f"train --csv {what}", ["train", "--task", "csv", "--csv", path, "--column", "v", "--epochs", "1",
                 "--no-progress", "--plots", "none", "--out", "r"], setup=(lambda d, m=make: m(d / "x.csv"))
                 if make else None, timeout=30))
        add(Case(U, f"predict --csv {what}", ["predict", "--model", "run", "--csv", path, "--column", "v"],
                 setup=lambda d, m=make: (copy_run("csv", d), m(d / "x.csv") if m else None), timeout=30))
        cpath = what if what.startswith("/dev") else "c.toml"
        add(Case(U, f"check {what} as the claims file", ["check", cpath],
                 setup=(lambda d, m=make: m(d / "c.toml")) if make else None, timeout=30))
        mpath = what if what.startswith("/dev") else "m.npz"
        add(Case(U, f"predict --model {what}", ["predict", "--model", mpath, "--x", "1,2"],
                 setup=(lambda d, m=make: m(d / "m.npz")) if make else None, timeout=30))
    bomb = {"w.npy": npy_header((1, 2)) + bytes(16), "junk.npy": npy_header((8 << 20,)) + bytes(8 << 23)}
    add(Case(U, "zip-bomb model.npz (64 MiB in under 1 MiB)", ["predict", "--model", "m.npz", "--x", "1,2"],
             setup=lambda d: write_npz(d / "m.npz", bomb, compress=True)))
    add(Case(U, "zip-bomb checkpoint.npz, train --resume", ["train", "--resume", "--no-progress", "--out", "run"],
             setup=lambda d: (copy_run("adding", d), write_npz(d / "run" / "checkpoint.npz", {**ckpt_members(), **bomb},
                                                        compress=True))))
    for label, data in (("8 TiB", npy_header((1 << 40,))), ("a negative shape", npy_header((-5,))),
                        ("an object dtype", npy_header((2,), "|O")), ("a bad magic", b"NOTNUMPY" + bytes(100)),
                        ("a truncated body", npy_header((1000,)) + bytes(80)), ("a complex dtype", npy_header((2,), "<c16")
                                                                                 + bytes(32))):
        add(Case(U, f"model.npz member with {label}", ["predict", "--model", "m.npz", "--x", "1,2"],
                 setup=lambda d, data=data: write_npz(d / "m.npz", {**model_members(), "w.npy": data})))
    add(Case(U, "model.npz member not .npy", ["predict", "--model", "m.npz", "--x", "1,2"],
             setup=lambda d: write_npz(d / "m.npz", {**model_members(), "evil.pkl": b"\x80\x04K\x01."})))
    add(Case(U, "model.npz with a NaN weight", ["predict", "--model", "m.npz", "--x", "1,2"],
             setup=lambda d: write_npz(d / "m.npz", {**model_members(), "w_h.npy": npy_bytes(np.full((2, 2), np.nan))})))
    add(Case(U, "model.npz with a wrong shape", ["predict", "--model", "m.npz", "--x", "1,2"],
             setup=lambda d: write_npz(d / "m.npz", {**model_members(), "w_h.npy": npy_bytes(np.zeros((3, 2)))})))
    add(Case(U, "model.npz truncated", ["predict", "--model", "m.npz", "--x", "1,2"],
             setup=lambda d: write(d / "m.npz", (trained("adding") / "run" / "model.npz").read_bytes()[:300])))
    add(Case(U, "model.npz that is a text file", ["predict", "--model", "m.npz", "--x", "1,2"],
             setup=lambda d: write(d / "m.npz", "hello\n")))
    ck_json = [n for n in ckpt_members() if not n.endswith(".npy")]
    for label, key, value in (("task_options a list", "task_options", "[1, 2]"), ("task_options null", "task_options",
                              "null"), ("hf damping -1e6", "damping", "-1e6"), ("elapsed -1e300", "elapsed", "-1e300"),
                              ("epoch -5", "epoch", "-5"), ("hidden 2**40", "hidden", str(2 ** 40)),
                              ("lr NaN", "lr", "NaN")):
        add(Case(U, f"checkpoint with {label}", ["train", "--resume", "--no-progress", "--plots", "none", "--out",
                 "run"], "either", setup=lambda d, key=key, value=value: edit_checkpoint(d, key, value),
                 outputs=("run/*",)))
    add(Case(U, "checkpoint with a pickled object member", ["train", "--resume", "--no-progress", "--out", "run"],
             setup=lambda d: (copy_run("adding", d), write_npz(d / "run" / "checkpoint.npz", {
                 **ckpt_members(), "payload.npy": npy_header((1,), "|O") + b"\x80\x04K\x01."}))))
    del ck_json
    add(Case(U, "claims file with a 5000-digit key", ["check", "c.toml"],
             setup=lambda d: write(d / "c.toml", claims({f'"h_{"9" * 5000}"': "0.5"}))))
    add(Case(U, "claims file of binary garbage", ["check", "c.toml"],
             setup=lambda d: write(d / "c.toml", bytes(range(256)) * 40)))
    add(Case(U, "claims file of 30 MB", ["check", "c.toml"],
             setup=lambda d: write(d / "c.toml", claims({}) + "#" * (30 << 20) + "\n")))
    add(Case(U, "claims JSON nested 100000 deep", ["check", "c.json"],
             setup=lambda d: write(d / "c.json", "[" * 100000 + "]" * 100000)))
    add(Case(U, "claims with an unknown quantity", ["check", "c.toml"], "either",
             setup=lambda d: write(d / "c.toml", claims({'"q_1"': "0.5"}))))

    # -------- sizes: bounded before work starts
    S = "sizes"
    for flag, value in (("--hidden", str(2 ** 22)), ("--hidden", str(10 ** 9)), ("--length", str(10 ** 9)),
                        ("--n-train", str(10 ** 9)), ("--batch-size", str(10 ** 12)), ("--ensemble", "100000"),
                        ("--bits", "62"), ("--grad-checkpoint", str(10 ** 9))):
        argv = ["train", *TINY, "--out", "r"]
        i = argv.index(flag) if flag in argv else None
        if i is not None:
            argv[i + 1] = value
        else:
            argv += [flag, value]
        if flag == "--bits":
            argv = ["train", "--task", "binary-addition", "--bits", value, "--epochs", "1", "--no-progress", "--plots",
                    "none", "--out", "r"]
        # a batch bigger than the training set is the whole set, a checkpoint interval past T keeps h_0 only
        add(Case(S, f"train {flag} {value}", argv, "either" if flag in ("--grad-checkpoint", "--batch-size")
                 else "refuse", timeout=60, outputs=("r/*", "r/**/*")))
    add(Case(S, "train --nproc 100000 (torch)", ["train", *TINY, "--backend", "torch", "--nproc", "100000", "--out",
             "r"], timeout=60))
    add(Case(S, "gradflow --length 100000 --max-steps 100000", ["gradflow", "--length", "100000", "--max-steps",
             "100000", "--out", "g.png"], timeout=60))
    add(Case(S, "gradflow --hidden 1000000", ["gradflow", "--hidden", "1000000", "--out", "g.png"], timeout=60))
    add(Case(S, "explain --x with 5000 steps", ["explain", "--x", ",".join(["1"] * 5000)], timeout=60))
    add(Case(S, "grad --x with 25000 steps (an argument's most)", ["grad", "--x", ",".join(["0.5"] * 25000), "--y",
             ",".join(["0.5"] * 25000)], "either", timeout=90, check=finite_output))
    add(Case(S, "predict --csv with 10**6 rows", ["predict", "--model", "run", "--csv", "big.csv", "--column", "v",
             "--json"], "either", setup=lambda d: (copy_run("csv", d), write(d / "big.csv", "v\n" + "0.5\n" * 10 ** 6)),
             timeout=90))
    add(Case(S, "train csv with 10**6 rows", ["train", "--task", "csv", "--csv", "big.csv", "--column", "v", "--epochs",
             "1", "--hidden", "2", "--no-progress", "--plots", "none", "--out", "r"], "either",
             setup=lambda d: write(d / "big.csv", "v\n" + "".join(f"{i % 97}\n" for i in range(10 ** 6))),
             timeout=120, outputs=("r/*", "r/**/*")))
    for n in (20, 60, 155, 355):
        add(Case(S, f"check: {n} claims without targets", ["check", "c.toml"], "either",
                 setup=lambda d, n=n: write(d / "c.toml", many_claims(n)), timeout=90))
    add(Case(S, "check: a claims file with T = 100000", ["check", "c.toml"], "either",
             setup=lambda d: write(d / "c.toml", claims({'"h_1"': "0.88"}, x=[1.0] * 100000)), timeout=90))

    # -------- CSV quirks: strict, never spliced or cut
    C = "csv"
    rows = [f"{math.sin(i / 5):.4f}\n" for i in range(60)]
    ok_series = "".join(rows)
    quirks = [
        ("decimal commas", 'v\n' + "".join(f'"{math.sin(i / 5):.4f}"\n'.replace(".", ",") for i in range(60)), "refuse"),
        ("thousands separators", 'v\n' + "".join(f'"{1000 + i},{i:03d}"\n' for i in range(60)), "refuse"),
        ("underscores", "v\n" + "".join(f"1_00{i % 10}\n" for i in range(60)), "refuse"),
        ("spaces in numbers", "v\n" + "".join(f"1 00{i % 10}\n" for i in range(60)), "refuse"),
        ("duplicate columns", "v,v\n" + "".join(f"{i},{-i}\n" for i in range(60)), "refuse"),
        ("a blank row inside", "v\n" + "".join(r + ("\n" if i == 30 else "") for i, r in enumerate(rows)), "refuse"),
        ("trailing blank rows", "v\n" + ok_series + "\n\n\n", "accept"),
        ("a NaN", "v\n" + ok_series.replace("0.0000", "nan", 1), "refuse"),
        ("an inf", "v\n" + ok_series.replace("0.0000", "inf", 1), "refuse"),
        ("an empty cell", "v,w\n" + "".join(f"{i},\n" if i == 30 else f"{i},1\n" for i in range(60)), "either"),
        ("values near 1e300", "v\n" + "".join(f"{(i % 7) * 1e300:.3e}\n" for i in range(60)), "refuse"),
        ("values near 1e-309", "v\n" + "".join(f"{(i % 7) * 1e-309:.3e}\n" for i in range(60)), "refuse"),
        ("a constant column", "v\n" + "1.5\n" * 60, "either"),
        ("non-ASCII digits", "v\n" + "".join("١٢٣\n" for _ in range(60)), "refuse"),
        ("CRLF line ends", ("v\n" + ok_series).replace("\n", "\r\n"), "accept"),
        ("semicolons", "t;v\n" + "".join(f"{i};{math.sin(i / 5):.4f}\n" for i in range(60)), "refuse"),
        ("a missing column", "w\n" + ok_series, "refuse"),
        ("a header only", "v\n", "refuse"),
        ("three rows", "v\n1\n2\n3\n", "refuse"),
        ("a leading plus and exponents", "v\n" + "".join(f"+{math.sin(i / 5) + 2:.4e}\n" for i in range(60)), "either"),
        ("NUL bytes", "v\n" + "".join(r + ("\x00" if i == 30 else "") for i, r in enumerate(rows)), "refuse"),
        ("a ragged row", "t,v\n" + "".join(f"{i},{math.sin(i / 5):.4f}\n" if i != 20 else "20\n" for i in range(60)),
         "refuse"),
    ]
    for label, text, expect in quirks:
        add(Case(C, f"train csv: {label}", ["train", "--task", "csv", "--csv", "x.csv", "--column", "v", "--epochs", "1",
                 "--hidden", "2", "--no-progress", "--plots", "none", "--out", "r"], expect,
                 setup=lambda d, t=text: write(d / "x.csv", t), outputs=("r/*", "r/**/*"), check=finite_output))
    for label, text, expect in quirks[:6] + quirks[7:9]:
        add(Case(C, f"predict --csv: {label}", ["predict", "--model", "run", "--csv", "x.csv", "--column", "v",
                 "--json"], expect, setup=lambda d, t=text: (copy_run("csv", d), write(d / "x.csv", t))))
    for label, data, expect in (("UTF-16", ("v\n" + ok_series).encode("utf-16"), "either"),
                                ("a UTF-8 BOM", b"\xef\xbb\xbf" + ("v\n" + ok_series).encode(), "either"),
                                ("latin-1 column é", ("é\n" + ok_series).encode("latin-1"), "either"),
                                ("UTF-8 column é", ("é\n" + ok_series).encode(), "accept")):
        col = "é" if "é" in label else "v"
        add(Case(C, f"train csv: {label}", ["train", "--task", "csv", "--csv", "x.csv", "--column", col, "--epochs",
                 "1", "--hidden", "2", "--no-progress", "--plots", "none", "--out", "r"], expect,
                 setup=lambda d, b=data: write(d / "x.csv", b), outputs=("r/*", "r/**/*")))
    add(Case(C, "train csv: a TeX-like column name, plots on", ["train", "--task", "csv", "--csv", "x.csv", "--column",
             "$\\frac{a}{", "--epochs", "1", "--hidden", "2", "--no-progress", "--out", "r"], "either",
             setup=lambda d: write(d / "x.csv", "$\\frac{a}{\n" + ok_series), outputs=("r/*", "r/**/*"), timeout=180))
    add(Case(C, "train csv: an escape code as the column name", ["train", "--task", "csv", "--csv", "x.csv", "--column",
             "\x1b[2J", "--epochs", "1", "--hidden", "2", "--no-progress", "--plots", "none", "--out", "r"], "either",
             setup=lambda d: write(d / "x.csv", "\x1b[2J\n" + ok_series), outputs=("r/*", "r/**/*"), check=no_escape))

    # -------- numbers
    N = "numbers"
    p308 = [f"--{k}=1e308" for k in ("w", "w-x", "w-h", "b1", "b2", "h0")]
    add(Case(N, "explain every parameter 1e308", ["explain", *p308], "either", check=finite_output))
    for fmt in ("text", "tex", "html"):
        add(Case(N, f"explain --format {fmt} every parameter 1e308", ["explain", *p308, "--format", fmt], "either",
                 check=finite_output if fmt != "html" else None))
    add(Case(N, "grad every parameter 1e308", ["grad", *p308, "--x", "1,0", "--y", "0.5,0.5"], "either",
             check=finite_output))
    add(Case(N, "grad relu overflow", ["grad", "--hidden-activation", "relu", "--output-activation", "identity",
             "--w-h", "1e308", "--x", "1e308,1e308", "--y", "0,0"], "either", check=finite_output))
    add(Case(N, "grad w = NaN", ["grad", "--w", "nan", "--x", "1,0", "--y", "0.5,0.5"]))
    add(Case(N, "grad w = 1e-309 (subnormal)", ["grad", "--w", "1e-309", "--x", "1,0", "--y", "0.5,0.5"], "either",
             check=finite_output))
    add(Case(N, "grad x = 1e-309", ["grad", "--x", "1e-309,0", "--y", "0.5,0.5"], "either", check=finite_output))
    add(Case(N, "explain x = 1e-309 values", ["explain", "--x", "1e-309,1e-309", "--w-x", "1e-309"], "either",
             check=finite_output))
    add(Case(N, "explain bce saturated prediction", ["explain", "--loss", "bce", "--b2=100", "--y", "1,1", "--format",
             "text"], "accept", check=lambda d, o, e: finite_output(d, o, e) or ("FAILED" in o and "check failed")))
    add(Case(N, "seed --y 1e-309,1e-309", ["seed", "--y", "1e-309,1e-309"], "either", check=finite_output))
    add(Case(N, "check claims with model w = 1e308", ["check", "c.toml"], "either",
             setup=lambda d: write(d / "c.toml", claims({'"h_1"': "0.88"}, w=1e308)), check=finite_output))
    add(Case(N, "predict: a model whose scaling is ±1e308", ["predict", "--model", "m.npz", "--x", "1,2"],
             setup=lambda d: scaled_model(d, -1e308, 1e308)))
    add(Case(N, "train --lr 1e308", ["train", *TINY, "--lr", "1e308", "--out", "r"], "either",
             outputs=("r/*", "r/**/*"), check=finite_output))
    add(Case(N, "train relu --lr 1e10", ["train", *TINY, "--hidden-activation", "relu", "--output-activation",
             "identity", "--lr", "1e10", "--clip", "none", "--optimizer", "sgd", "--out", "r"], "either",
             outputs=("r/*", "r/**/*"), check=finite_output))
    for flag in ("--hf-damping", "--hf-structural", "--hf-l2", "--hf-cg-decay"):
        add(Case(N, f"train hf {flag} 1e308", ["train", *TINY, "--optimizer", "hf", flag, "1e308", "--out", "r"],
                 "either", outputs=("r/*", "r/**/*"), check=finite_output))
    add(Case(N, "train --momentum with adam", ["train", *TINY, "--optimizer", "adam", "--momentum", "0.9", "--out",
             "r"]))
    add(Case(N, "train --hf-damping with adam", ["train", *TINY, "--optimizer", "adam", "--hf-damping", "2", "--out",
             "r"]))
    add(Case(N, "train --nesterov with hf", ["train", *TINY, "--optimizer", "hf", "--nesterov", "--out", "r"]))
    add(Case(N, "NUMBA_NUM_THREADS=0", ["grad", "--x", "1,0", "--y", "0.5,0.5"], env={"NUMBA_NUM_THREADS": "0"}))
    add(Case(N, "NUMBA_NUM_THREADS=-3", ["seed"], env={"NUMBA_NUM_THREADS": "-3"}))
    add(Case(N, "grad --truncate 10**30", ["grad", "--x", "1,0", "--y", "0.5,0.5", "--truncate", str(10 ** 30)]))
    add(Case(N, "grad --h0 1e400", ["grad", "--x", "1,0", "--y", "0.5,0.5", "--h0", "1e400"]))
    add(Case(N, "grad --x 0x10", ["grad", "--x", "0x10,0", "--y", "0.5,0.5"]))
    add(Case(N, "gradflow --init-scale 1e308", ["gradflow", "--length", "8", "--hidden", "2", "--init-scale", "1e308",
             "--out", "g.png", "--json"], "either", outputs=("g.png",), check=finite_output))

    # -------- output: devices, closed descriptors, terminals, escapes
    O = "output"
    printers = [["seed"], ["seed", "--json"], ["grad", "--x", "1,0", "--y", "0.5,0.5"], ["explain"],
                ["explain", "--format", "html"], ["check", "c.toml", "--json"], ["check", "c.toml"],
                ["gradflow", "--length", "8", "--hidden", "2", "--out", "g.png", "--json"],
                ["predict", "--model", "run", "--x", "1,2", "--json"]]

    def printer_setup(argv):
        def setup(d: Path) -> None:
            if "check" in argv:
                shutil.copy(ROOT / "examples" / "seed_claims.toml", d / "c.toml")
            if "predict" in argv:
                copy_run("csv", d)
        return setup
    for argv in printers:
        add(Case(O, f"{' '.join(argv[:2])} > /dev/full", argv, setup=printer_setup(argv), stdout="full",
                 outputs=("g.png",)))
        add(Case(O, f"{' '.join(argv[:2])} with stdout closed", argv, setup=printer_setup(argv), stdout="closed",
                 outputs=("g.png",)))
        add(Case(O, f"{' '.join(argv[:2])} | reader gone", argv, "pipe", setup=printer_setup(argv), stdout="gone",
                 outputs=("g.png",)))
    for argv, numbers in ((["grad", "--x", "1,0", "--y", "0.5,0.5"], ("0.880797", "0.03700326618")),
                          (["seed"], ("0.88",)), (["check", "c.toml"], ("0.88",))):
        add(Case(O, f"{argv[0]} on a terminal COLUMNS=10", argv, "accept", setup=printer_setup(argv), stdout="tty10",
                 check=has(*numbers)))
        add(Case(O, f"{argv[0]} with PYTHONIOENCODING=ascii", argv, "accept", setup=printer_setup(argv),
                 env={"PYTHONIOENCODING": "ascii"}, check=has(*numbers)))
    for label, title in (("clear screen", "\x1b[2J\x1b[H"), ("window title", "\x1b]0;owned\x07"),
                         ("colours", "\x1b[31mred"), ("a carriage return", "ok\rFAKE"), ("a NUL", "a\x00b")):
        esc = title.encode("unicode_escape").decode()
        for extra in ([], ["--json"]):
            add(Case(O, f"claims title with {label}{' --json' if extra else ''}", ["check", "c.toml", *extra],
                     "either", setup=lambda d, esc=esc: write(d / "c.toml", claims({'"h_1"': "0.88"}, title=esc)),
                     check=no_escape))
    add(Case(O, "a path with a newline and escape codes", ["predict", "--model", "a\nb\x1b[2J", "--x", "1"]))
    add(Case(O, "a warning-raising success shows it after the output", ["grad", "--w", "1e308", "--x", "1,0",
             "--y", "0.5,0.5"], "either", check=finite_output))

    # -------- signals: Ctrl-C and SIGTERM at various moments
    G = "signals"
    for sig in (signal.SIGINT, signal.SIGTERM):
        for delay in (0.05, 0.15, 0.3, 0.6, 1.0, 2.0):
            add(Case(G, f"seed, {signal.Signals(sig).name} after {delay} s", ["seed"], "stop", sig=(sig, delay)))
        for delay in (0.1, 0.5, 1.5, 3.0, 5.0):
            add(Case(G, f"train, {signal.Signals(sig).name} after {delay} s",
                     ["train", "--task", "adding", "--length", "6", "--n-train", "16", "--n-val", "8", "--n-test", "8",
                      "--hidden", "2", "--epochs", "100000", "--no-progress", "--plots", "none", "--out", "r"],
                     "stop", sig=(sig, delay), outputs=("r/*", "r/**/*"), check=resumable))
        for argv in (["gradflow", "--length", "400", "--hidden", "64", "--out", "g.png"],
                     ["check", "c.toml"], ["explain", "--x", "1,0,1,0,1,0", "--expand", "6"]):
            add(Case(G, f"{argv[0]}, {signal.Signals(sig).name} after 0.8 s", argv, "stop", sig=(sig, 0.8),
                     setup=lambda d: write(d / "c.toml", many_claims(60)), outputs=("g.png",)))
    try:
        import torch  # noqa: F401
        for sig in (signal.SIGINT, signal.SIGTERM):
            add(Case(G, f"data-parallel train --nproc 2, {signal.Signals(sig).name} after 12 s",
                     ["train", "--task", "adding", "--length", "30", "--epochs", "400", "--backend", "torch", "--nproc",
                      "2", "--no-progress", "--plots", "none", "--out", "d"], "stop", sig=(sig, 12.0), ddp=True,
                     outputs=("d/*", "d/**/*"), timeout=180))
        add(Case(G, "data-parallel train --nproc 2, rank 1 SIGKILLed after 14 s",
                 ["train", "--task", "adding", "--length", "30", "--epochs", "400", "--backend", "torch", "--nproc",
                  "2", "--no-progress", "--plots", "none", "--out", "d"], "refuse", sig=(-signal.SIGKILL, 14.0),
                 ddp=True, outputs=("d/*", "d/**/*"), timeout=180))
    except ImportError:
        pass
    return c


def resumable(d: Path, out: str, err: str) -> str | None:
    if (d / "r").exists() and (d / "r" / "checkpoint.npz").exists() and "--resume" not in err:
        return "stopped after a checkpoint without naming how to resume"
    return None


def claims(items: dict[str, str], x=(1.0, 0.0), w: float = 1.0, title: str = "t") -> str:
    body = "".join(f"{k} = {v}\n" for k, v in items.items())
    return (f'title = "{title}"\n[model]\nw = {w!r}\nw_x = 1\nw_h = 1\nb1 = 1\nb2 = 1\nh0 = 0\n'
            f'[sequence]\nx = [{", ".join(map(repr, x))}]\n[claims]\n{body}')


def many_claims(n: int) -> str:
    """n claims of E_i, dE_i/dθ... on a T = n // 5 + 2 sequence, without targets (the checker infers them)."""
    T = max(2, n // 5)
    items = {}
    thetas = ("w", "w_x", "w_h", "b1", "b2")
    for i in range(n):
        t = i // 5 % T + 1
        items[f'"dE_{t}/d{thetas[i % 5]}"'] = f"{0.001 * (i % 7 + 1):.3f}"
    return claims(items, x=[float(i % 2) for i in range(T)])


def edit_checkpoint(d: Path, key: str, value: str) -> None:
    import json

    copy_run("adding", d)
    members = ckpt_members()
    for name, data in list(members.items()):
        if name.endswith(".npy"):
            try:
                text = np.load(__import__("io").BytesIO(data), allow_pickle=False)
            except Exception:
                continue
            if text.dtype.kind == "U":
                s = str(text[()]) if text.ndim == 0 else None
                if s and s.lstrip().startswith("{"):
                    obj = json.loads(s)
                    if _set_key(obj, key, json.loads(value)):
                        members[name] = npy_bytes(np.array(json.dumps(obj)))
    write_npz(d / "run" / "checkpoint.npz", members)


def _set_key(obj, key: str, value) -> bool:
    found = False
    if isinstance(obj, dict):
        for k in list(obj):
            if k == key:
                obj[k] = value
                found = True
            else:
                found |= _set_key(obj[k], key, value)
    elif isinstance(obj, list):
        for v in obj:
            found |= _set_key(v, key, value)
    return found


def scaled_model(d: Path, lo: float, hi: float) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    import bptt.io

    m, info = bptt.io.load_model(trained("csv") / "run")
    bptt.io.save_model(d / "m.npz", m, {**info, "scaling": {"lo": lo, "hi": hi}})


# ------------------------------------------------------------------ running one case
def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            body = b""
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    body = hashlib.sha256(f.read()).digest()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(p).encode()
            kind = stat.S_IFMT(st.st_mode)
            out[str(p.relative_to(root))] = (kind, st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                                            st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0,
                                            stat.S_IMODE(st.st_mode), st.st_rdev, body)
    return out


def is_output(rel: str, patterns: tuple[str, ...]) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(rel, p) for p in patterns)


def _children(pid: int) -> list[int]:
    kids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(p.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


def run_case(case: Case) -> dict:
    d = Path(tempfile.mkdtemp(prefix="hostile-"))
    try:
        if case.setup:
            case.setup(d)
        before = snapshot(d)
        argv = [a.replace("{d}", str(d)) for a in case.argv]
        env = {**os.environ, **{k: v.replace("{d}", str(d)) for k, v in case.env.items()}}
        t0 = time.monotonic()
        out_text, err, status, leftovers = run_process(case, argv, env, d)
        wall = time.monotonic() - t0
        after = snapshot(d)
        lost = sorted(k for k, v in before.items() if not is_output(k, case.outputs) and after.get(k) != v)
        lines = err.count("\n") + (1 if err and not err.endswith("\n") else 0)
        return {"case": case, "status": status, "lines": lines, "traceback": "Traceback" in err, "lost": lost,
                "verdict": verdict(case, status, lines, err, out_text, lost, d, leftovers), "err": err,
                "wall": wall, "leftovers": leftovers}
    finally:
        for p in d.rglob("*"):
            try:
                if p.is_dir() and not p.is_symlink():
                    os.chmod(p, 0o700)
            except OSError:
                pass
        shutil.rmtree(d, ignore_errors=True)


def run_process(case: Case, argv: list[str], env: dict, d: Path) -> tuple[str, str, int, list[int]]:
    full = ["timeout", "-k", "5", str(case.timeout), *CMD, *argv]
    if case.stdout == "full":
        with open("/dev/full", "w") as dev:
            p = subprocess.run(full, stdout=dev, stderr=subprocess.PIPE, cwd=d, env=env)
        return "", p.stderr.decode(errors="replace"), p.returncode, []
    if case.stdout == "closed":
        p = subprocess.run(["bash", "-c", 'exec "$@" >&-', "bash", *full], stderr=subprocess.PIPE, cwd=d, env=env)
        return "", p.stderr.decode(errors="replace"), p.returncode, []
    if case.stdout == "gone":
        p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=d, env=env)
        p.stdout.close()
        err = p.stderr.read().decode(errors="replace")
        return "", err, p.wait(), []
    if case.stdout == "tty10":
        import pty

        leader, follower = pty.openpty()
        p = subprocess.Popen(full, stdout=follower, stderr=subprocess.PIPE, cwd=d,
                             env={**env, "COLUMNS": "10", "LINES": "20", "TERM": "xterm"})
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        err = p.stderr.read().decode(errors="replace")
        return b"".join(chunks).decode(errors="replace"), err, p.wait(), []
    if case.sig is None:
        p = subprocess.run(full, capture_output=True, cwd=d, env=env)
        return p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), p.returncode, []
    # a signal: to bptt itself (not `timeout`), as a terminal's Ctrl-C or a `kill` would
    sig, delay = case.sig
    p = subprocess.Popen([*CMD, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=d, env=env)
    time.sleep(delay)
    family = _children(p.pid)
    family += [k for f in family for k in _children(f)]
    if sig < 0:  # SIGKILL one rank (the newest child process)
        ranks = [k for k in family if _alive(k)]
        if ranks:
            os.kill(max(ranks), -sig)
    else:
        p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=case.timeout)
        status = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        status = 124
    deadline = time.monotonic() + 15
    while any(_alive(k) for k in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftovers = [k for k in family if _alive(k)]
    for k in leftovers:
        try:
            os.kill(k, signal.SIGKILL)
        except OSError:
            pass
    return out.decode(errors="replace"), err.decode(errors="replace"), status, leftovers


def verdict(case: Case, status: int, lines: int, err: str, out: str, lost: list[str], d: Path,
            leftovers: list[int]) -> str:
    if status in (124, 137) or leftovers:
        return "hang"
    if "Traceback" in err:
        return "traceback"
    if lost:
        return "data loss"
    err = "".join(line for line in err.splitlines(keepends=True)
                  if not line.startswith("bptt: compiling the numba kernels"))
    lines = err.count("\n")
    if case.expect == "pipe":
        return "clean refusal" if status in (141, 0) and lines == 0 else "extra lines"
    if case.expect == "stop":
        if status == 0:
            return "silent wrong" if case.sig and case.sig[1] < 0.3 else "correct acceptance"  # it may have finished
        if status in (130, 143, -2, -15) and lines <= 1:
            why = case.check(d, out, err) if case.check else None
            return "silent wrong" if why else "clean refusal"
        return "extra lines"
    if status == 1 and case.argv[0] == "check" and lines == 0:
        status = 0  # check's own verdict: some claim does not hold (its report on stdout)
    if status == 0:
        if case.expect == "refuse":
            return "silent wrong"
        why = case.check(d, out, err) if case.check else None
        return "silent wrong" if why else "correct acceptance"
    if status == 2 and lines == 1:
        return "wrong refusal" if case.expect == "accept" else "clean refusal"
    return "extra lines"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only cases whose class or name contains this")
    ap.add_argument("-v", action="store_true", help="each case's verdict and first stderr line")
    opts = ap.parse_args()
    todo = [c for c in cases() if opts.k in c.cls or opts.k in c.name]
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    bad = []
    start = time.monotonic()
    for i, case in enumerate(todo, 1):
        r = run_case(case)
        counts[case.cls][r["verdict"]] += 1
        first = r["err"].strip().splitlines()[-1][:150] if r["err"].strip() else ""
        if opts.v or r["verdict"] not in ("clean refusal", "correct acceptance"):
            print(f"[{i}/{len(todo)}] {case.cls}: {case.name}: {r['verdict']} (status {r['status']}, "
                  f"{r['lines']} stderr lines, {r['wall']:.1f} s){' lost ' + str(r['lost']) if r['lost'] else ''}"
                  f"\n    {first!r}", flush=True)
        if r["verdict"] not in ("clean refusal", "correct acceptance"):
            bad.append((case, r))
    verdicts = ["clean refusal", "correct acceptance", "data loss", "hang", "traceback", "silent wrong", "extra lines",
                "wrong refusal"]
    width = max(len(k) for k in counts) + 2
    print(f"\n{'class':{width}}{'cases':>6}" + "".join(f"{v:>20}" for v in verdicts))
    total = collections.Counter()
    for cls, cnt in counts.items():
        total.update(cnt)
        print(f"{cls:{width}}{sum(cnt.values()):>6}" + "".join(f"{cnt[v]:>20}" for v in verdicts))
    print(f"{'all':{width}}{sum(total.values()):>6}" + "".join(f"{total[v]:>20}" for v in verdicts))
    print(f"\n{len(todo)} cases in {time.monotonic() - start:.0f} s; {len(bad)} not clean")
    for base in _TRAINED.values():
        shutil.rmtree(base, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
