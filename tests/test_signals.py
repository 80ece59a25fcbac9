"""bptt.signals: a Ctrl-C whose KeyboardInterrupt is dropped (inside a C callback: numba compiling) still stops a training;
and the command line's Ctrl-C and SIGTERM from its first line on."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bptt import signals
from bptt.train import config_for, train


def _swallowed_ctrl_c():
    try:
        signals.on_sigint(2, None)  # what the command line's handler does on SIGINT
    except KeyboardInterrupt:
        pass  # dropped, as Python drops an exception raised inside a callback from C


@pytest.mark.parametrize("task", ["binary-addition", "adding"])  # the compiled batches, and the one-by-one loop
def test_a_dropped_ctrl_c_stops_the_training_at_its_next_step(task):
    cfg = config_for(task, {"n_train": 64, "n_val": 16, "n_test": 16} | ({"length": 10} if task == "adding" else {}),
                     epochs=3)
    _swallowed_ctrl_c()
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    train(cfg)  # the interrupt was taken: the next run trains to the end
    signals.check()  # and nothing is left pending


def test_a_ctrl_c_that_reached_the_command_line_is_not_raised_again():
    _swallowed_ctrl_c()
    signals.clear()
    signals.check()  # nothing raised


# ------------------------------------------------------------------ Ctrl-C and SIGTERM from the command's first line
# `import bptt` loads nothing heavy (PEP 562), and bptt.cli takes SIGINT and SIGTERM in its first lines: from then on
# either signal, whenever it comes (imports, the parser, the task, the kernels' load, the loop), ends the process with
# one line and 130 / 143.  The test waits until the child has taken SIGTERM (its SigCgt mask in /proc, Linux), then
# signals after each delay; a run is long (100000 epochs), so it cannot end first, and no timing is asserted.  Before
# bptt's first line (the interpreter's start, the `bptt` script's `import re`: 10-30 ms) is Python's, not bptt's.
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("bptt")  # the console script, as a user runs it
# The child starts with Ctrl-C at its default disposition whatever this process does with it (a parent that ignores
# SIGINT, as `cmd &` in a script, passes the ignoring on, and then bptt rightly ignores Ctrl-C); exec keeps the pid.
DEFAULT_CTRL_C = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"


def _catches(pid: int, signum: int) -> bool | None:
    """Whether process ``pid`` has a handler for ``signum`` (None once it has gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


def _signal_after_takeover(argv: list[str], signum: int, delay: float, cwd: Path) -> tuple[int, str]:
    p = subprocess.Popen([sys.executable, "-c", DEFAULT_CTRL_C, *argv], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, cwd=cwd)
    try:
        deadline = time.monotonic() + 120  # a fence against a child that never takes SIGTERM, not a timing
        while not _catches(p.pid, signal.SIGTERM) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(delay)
        p.send_signal(signum)
        err = p.stderr.read().decode()
        return p.wait(timeout=120), err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _training(out: Path) -> list[str]:
    return ["train", "--task", "adding", "--length", "10", "--n-train", "64", "--epochs", "100000", "--no-progress",
            "--plots", "none", "--out", str(out)]


DELAYS = [0.0, 0.005, 0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the child's signal mask in /proc")
@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
@pytest.mark.parametrize("entry", ["script", "module"])
def test_a_signal_at_any_moment_from_the_first_line_is_one_line_and_130_or_143(tmp_path, signum, code, word, entry):
    if entry == "script" and not SCRIPT.exists():
        pytest.skip("no bptt script beside this interpreter")
    start = [str(SCRIPT)] if entry == "script" else [sys.executable, "-m", "bptt"]
    for i, delay in enumerate(DELAYS if entry == "script" else DELAYS[::3]):
        status, err = _signal_after_takeover([*start, *_training(tmp_path / f"r{i}")], signum, delay, ROOT)
        # the start-up note of a cold kernel cache is not an error line
        err = "".join(line for line in err.splitlines(keepends=True)
                      if not line.startswith("bptt: compiling the numba kernels"))
        assert "Traceback" not in err and err.count("\n") == 1 and err.startswith(f"error: {word}"), (delay, err)
        # -2/-15: CPython ends by the signal itself once a KeyboardInterrupt escaped a Python-level run it made from
        # C, even if caught later; a shell shows 130/143 for both
        assert status in (code, -signum), (delay, status, err)


def test_import_bptt_loads_nothing_heavy_and_its_names_on_first_use():
    code = ("import sys, bptt\n"
            "heavy = [m for m in ('numpy', 'numba', 'torch', 'jax', 'sympy', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "from bptt import RNN, BPTTError, ACTIVATIONS, PARAM_NAMES, ForwardResult, __version__\n"
            "assert RNN.__module__ == 'bptt.model' and issubclass(BPTTError, ValueError) and PARAM_NAMES[0] == 'w'\n"
            "assert set(bptt.__all__) <= set(dir(bptt)) and bptt.model.RNN is RNN\n"
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules\n"
            "try:\n    bptt.no_such_name\nexcept AttributeError as e:\n    print(e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout == "module 'bptt' has no attribute 'no_such_name'\n", p.stderr


# A signal whose exception a library drops (printed "ignored" inside a callback from C) or turns into another (Python
# 3.11 wraps one raised in __set_name__ in a RuntimeError) still ends the command with its one line.
PLUGIN = '''import signal
ORDER = 97
COMPILES = False


def add(sub):
    p = sub.add_parser("swallow")
    p.add_argument("how", choices=["dropped", "wrapped"])
    p.add_argument("--term", action="store_true")
    p.set_defaults(run=run)


class _Finaliser:
    def __init__(self, handler):
        self.handler = handler

    def __del__(self):
        self.handler(0, None)  # raised in __del__: Python prints it as ignored and goes on


def run(args):
    handler = signal.getsignal(signal.SIGTERM if args.term else signal.SIGINT)  # what the command line installed
    if args.how == "dropped":
        _Finaliser(handler)
    else:
        try:
            handler(0, None)
        except KeyboardInterrupt as e:
            raise RuntimeError("Error calling __set_name__") from e
    print("done")
    return 0
'''


@pytest.mark.parametrize("how", ["dropped", "wrapped"])
@pytest.mark.parametrize("term, code, word", [(False, 130, "interrupted"), (True, 143, "terminated")])
def test_an_interrupt_a_library_dropped_or_wrapped_still_ends_the_command(tmp_path, monkeypatch, capsys, how, term,
                                                                         code, word):
    import bptt.cli as cli

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler or \
            signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        pytest.skip("this process handles SIGINT or SIGTERM itself: bptt leaves them alone")
    (tmp_path / "swallow.py").write_text(PLUGIN)
    monkeypatch.setattr(cli, "__path__", [*cli.__path__, str(tmp_path)])
    monkeypatch.setattr(cli, "SUBCOMMANDS", cli._subcommands())
    assert cli.main(["swallow", how, *(["--term"] if term else [])]) == code
    out, err = capsys.readouterr()
    assert err == f"error: {word}\n"  # and no "Exception ignored" report before it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the command's handlers are given back
    signals.check()  # nothing left pending
