"""The command line: output, JSON contract and one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

import bptt
from bptt.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_grad_json_matches_the_api(capsys):
    code, out, _ = run(capsys, "grad", "--w", "0.5", "--w-x", "-1", "--w-h", "2", "--b1", "0.1", "--b2", "-0.3",
                       "--h0", "0.2", "--x", "1,0,0.5", "--y", "0.5,0.5,1", "--hidden-activation", "tanh",
                       "--reduction", "sum", "--json")
    assert code == 0
    data = json.loads(out)
    m = bptt.RNN.scalar(w=0.5, w_x=-1, w_h=2, b1=0.1, b2=-0.3, hidden_activation="tanh")
    loss, grads = m.loss_and_grad([1, 0, 0.5], [0.5, 0.5, 1], h0=0.2, reduction="sum")
    assert data["loss"] == pytest.approx(loss, rel=1e-15)
    assert set(data["grads"]) == {"w", "w_x", "w_h", "b1", "b2"}
    for k in grads:
        assert data["grads"][k] == pytest.approx(float(grads[k].ravel()[0]), rel=1e-15)
    assert len(data["h"]) == 4 and data["h"][0] == 0.2 and len(data["y_pred"]) == 3


def test_grad_loss_bce_is_the_api_with_bce(capsys):
    """`bptt grad --loss bce` prints RNN.scalar(..., loss="bce")'s loss and gradients, not squared error's."""
    argv = ["grad", "--w", "0.5", "--w-x", "-1", "--w-h", "2", "--b1", "0.1", "--b2", "-0.3", "--h0", "0.2",
            "--x", "1,0,0.5", "--y", "1,0,0.25", "--loss", "bce"]
    code, out, _ = run(capsys, *argv, "--json")
    assert code == 0
    data = json.loads(out)
    m = bptt.RNN.scalar(w=0.5, w_x=-1, w_h=2, b1=0.1, b2=-0.3, loss="bce")
    loss, grads = m.loss_and_grad([1, 0, 0.5], [1, 0, 0.25], h0=0.2)
    assert data["loss"] == pytest.approx(loss, rel=1e-15)
    for k in grads:
        assert data["grads"][k] == pytest.approx(float(grads[k].ravel()[0]), rel=1e-15)
    se_loss, _ = bptt.RNN.scalar(w=0.5, w_x=-1, w_h=2, b1=0.1, b2=-0.3).loss_and_grad([1, 0, 0.5], [1, 0, 0.25], h0=0.2)
    assert abs(data["loss"] - se_loss) > 0.1  # the two losses differ here: the test tells them apart
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "loss=bce, reduction=mean" in out and "E_t = -(y log y' + (1 - y) log(1 - y'))" in out
    assert f"{float(grads['w_h'].ravel()[0]):.10g}" in out


def test_grad_table(capsys):
    code, out, _ = run(capsys, "grad", "--x", "1,0", "--y", "0.5,0.5")
    assert code == 0 and "dLoss/dθ" in out and "w_x" in out


def test_grad_truncate_option(capsys):
    _, out, _ = run(capsys, "grad", "--x", "1,0,1", "--y", "0,1,0", "--truncate", "1", "--json")
    _, grads = bptt.RNN.scalar().loss_and_grad([1, 0, 1], [0, 1, 0], truncate=1)
    assert json.loads(out)["grads"]["w_h"] == pytest.approx(float(grads["w_h"][0, 0]))


def test_seed_command_reports_the_example_and_errata(capsys):
    code, out, _ = run(capsys, "seed")
    assert code == 0
    for needle in ("0.880797", "0.866192", "truncated (rounds to 0.868)", "dLoss/dw_x = 0.001122 is the gradient no choice",
                   "Errata", "1/(1 + e^{-x})"):
        assert needle in out.replace("\n", " ") or needle in out, needle


def test_seed_with_given_targets(capsys):
    code, out, _ = run(capsys, "seed", "--y", "0.5,0.5")
    assert code == 0 and "given with --y" in out
    assert run(capsys, "seed", "--y", "0.5")[0] == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["grad", "--x", "1,0", "--y", "1"], "--x has 2 steps but --y has 1"),
        (["grad", "--x", "1,a", "--y", "1,1"], "'a' is not a number"),
        (["grad", "--x", "", "--y", ""], "not a comma-separated list"),
        (["grad", "--x", "1,nan", "--y", "1,1"], "'nan' is not finite"),
        (["grad", "--x", "1", "--y", "1", "--w", "inf"], "'inf' is not finite"),
        (["grad", "--x", "1", "--y", "1", "--hidden-activation", "gelu"], "hidden_activation 'gelu' is not supported"),
        (["grad", "--x", "1", "--y", "1", "--output-activation", "relu"], "output_activation 'relu' is not supported"),
        (["grad", "--x", "1", "--y", "1", "--reduction", "max"], "reduction must be 'mean' or 'sum'"),
        (["grad", "--x", "1"], "required: --y"),
        (["grad", "--x", "1", "--y", "1", "--truncate", "0"], "truncate must be a positive"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_console_script_runs_the_seed():
    exe = [sys.executable, "-m", "bptt"]
    p = subprocess.run([*exe, "seed"], capture_output=True, text=True)
    assert p.returncode == 0 and "Errata" in p.stdout
    p = subprocess.run([*exe, "grad", "--x", "1", "--y", "x"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr


@pytest.mark.parametrize("spelled", [["--x", "-1,0", "--y", "-.5,0.5", "--w", "-1", "--b1", "-.5"],
                                     ["--x=-1,0", "--y=-0.5,0.5", "--w=-1", "--b1=-0.5"],
                                     ["--x", "-1.0,0", "--y", "-5e-1,5e-1", "--w", "-1e0", "--b1", "-0.5"]])
def test_negative_numbers_are_values_however_spelled(capsys, spelled):
    code, out, err = run(capsys, "grad", *spelled, "--json")
    assert code == 0, err
    loss, grads = bptt.RNN.scalar(w=-1, b1=-0.5).loss_and_grad([-1.0, 0.0], [-0.5, 0.5])
    assert json.loads(out)["loss"] == pytest.approx(loss, rel=1e-15)


def test_version_and_python_dash_m():
    p = subprocess.run([sys.executable, "-m", "bptt", "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == f"bptt {bptt.__version__}"


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_text_output_survives_a_terminal_without_theta(encoding):
    env = {**__import__("os").environ, "PYTHONIOENCODING": encoding}
    p = subprocess.run([sys.executable, "-m", "bptt", "grad", "--x", "1,0", "--y", "0.5,0.5"],
                       capture_output=True, env=env)
    assert p.returncode == 0, p.stderr.decode(encoding, "replace")
    text = p.stdout.decode(encoding)
    assert "dLoss/dtheta" in text and "Traceback" not in p.stderr.decode(encoding, "replace")


def test_printable_keeps_what_the_stream_can_encode():
    from bptt.cli._common import printable

    assert printable("dE_1/dθ ∂h Σ", "utf-8") == "dE_1/dθ ∂h Σ"
    assert printable("dE_1/dθ ∂h Σ", "ascii") == "dE_1/dtheta dh sum"
    assert printable("π", "ascii") == "?"
    assert printable("θ", "iso8859-7") == "θ"  # Greek code page: θ is there


def test_a_cold_kernel_cache_is_announced_once(monkeypatch, capsys):
    from bptt.cli import _common

    monkeypatch.setattr(_common, "kernels_cached", lambda modules: False)
    assert main(["grad", "--x", "1,0", "--y", "0.5,0.5", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("bptt: compiling the numba kernels (once per machine") and err.count("\n") == 1
    json.loads(out)  # stdout stays the JSON object
    monkeypatch.setattr(_common, "kernels_cached", lambda modules: True)
    assert main(["grad", "--x", "1,0", "--y", "0.5,0.5", "--json"]) == 0
    assert capsys.readouterr().err == ""


def test_kernels_cache_is_found_after_a_compile():
    from bptt.cli import _common

    bptt.RNN.scalar().loss_and_grad(np.array([1.0, 0.0]), np.array([0.5, 0.5]))  # compiles or loads
    assert _common.kernels_cached(("kernels",))
    assert not _common.kernels_cached(("kernels", "no_such_module"))


def test_each_compiling_command_names_the_modules_its_first_run_compiles(capsys):
    """`bptt seed` compiles floatmath and the fixed-order products, not the kernels: once they are cached it
    announces nothing, whether or not the kernels are (the announcement used to repeat on every run)."""
    from bptt.cli import COMPILING, _common

    assert COMPILING == {"seed": ("_floatmath_compiled", "_products_compiled"), "grad": ("kernels",),
                         "train": ("kernels",), "bench": ("kernels", "limits")}
    assert main(["seed"]) == 0
    capsys.readouterr()
    assert _common.kernels_cached(COMPILING["seed"])


def test_a_new_command_is_one_module(tmp_path, monkeypatch, capsys):
    """Adding a subcommand is adding one module to bptt/cli (shown with a module written here)."""
    import bptt.cli as cli

    (tmp_path / "hello.py").write_text(
        'ORDER = 99\nCOMPILES = False\n\n\ndef add(sub):\n    p = sub.add_parser("hello", help="say hello")\n'
        '    p.add_argument("--name", default="BPTT")\n    p.set_defaults(run=run)\n\n\n'
        'def run(args):\n    print(f"hello {args.name}")\n    return 0\n')
    monkeypatch.setattr(cli, "__path__", [*cli.__path__, str(tmp_path)])
    monkeypatch.setattr(cli, "SUBCOMMANDS", cli._subcommands())
    assert [m.__name__.rsplit(".", 1)[1] for m in cli.SUBCOMMANDS][-1] == "hello"
    assert main(["hello", "--name", "seed"]) == 0
    assert capsys.readouterr().out == "hello seed\n"


def test_a_closed_pipe_is_not_a_traceback(tmp_path):
    """`bptt ... | head`: the reader leaves early; bptt stops quietly (status 141, as Unix tools), no traceback."""
    p = subprocess.Popen([sys.executable, "-m", "bptt", "explain", "--x", ",".join(["1"] * 200)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(10)
    p.stdout.close()  # before bptt has written its 200-step document
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) in (0, 141) and "Traceback" not in err and "Error" not in err, err


def test_seed_json_is_the_check_report_plus_the_errata(capsys):
    assert main(["seed", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == {"check", "h_2", "terms", "identity", "errata"}
    assert d["check"]["targets"]["source"] == "fitted"
    assert [round(v, 4) for v in d["check"]["targets"]["values"]] == [0.8951, 0.5503]
    assert len(d["errata"]) == 13 and all(set(e) == {"what", "printed", "correct"} for e in d["errata"])


def test_bptt_alone_prints_its_help_on_stdout_with_status_0(capsys):
    """As git does: the help on stdout, status 0 (not the help on stdout with status 2)."""
    assert main([]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: bptt") and "COMMAND" in out and err == ""


def test_train_help_names_every_default_and_metavar():
    """--truncate/--patience/--grad-checkpoint say their default; a task option repeated for another task reads
    'adding (default 2000)', not 'adding: (default 2000)'; Hessian-free flags take N or X, not HF_DAMPING."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(buf.getvalue().split())
    for flag in ("--truncate K", "--patience E", "--grad-checkpoint K"):
        assert "(default: none" in text[text.index(flag + " "):][:400], flag
    assert "adding (default 2000)" in text and "adding: (default" not in text
    assert "HF_" not in text and "--hf-damping X" in text and "--hf-max-cg N" in text


def test_an_interrupt_that_leaves_a_half_built_object_is_still_one_line(capsys, monkeypatch):
    """An interrupt can land inside a constructor (np.savez's ZipFile before its __init__ sets _writing); the
    object's failing __del__ runs when the stopped frames are freed.  One line, status 130, no traceback, even
    after the process's own collection (the object was freed by then)."""
    import argparse
    import gc

    from bptt.cli import _run_command

    freed = []

    class HalfBuilt:
        def __init__(self):
            raise KeyboardInterrupt  # as if the signal came here, before the attribute below is set
            self.ready = True  # noqa: unreachable

        def __del__(self):
            freed.append(1)
            if not self.ready:  # AttributeError: what ZipFile.__del__ raises after such an interrupt
                pass

    def run(args):
        try:
            HalfBuilt()
        except KeyboardInterrupt:  # as bptt train does: re-raised with how to resume, the first in its context
            raise KeyboardInterrupt("continue from the last checkpoint") from None

    parser = argparse.ArgumentParser(prog="bptt")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("boom").set_defaults(run=run)
    printed = []  # what the process's unraisable hook would print (the default hook prints a traceback)
    monkeypatch.setattr(sys, "unraisablehook", printed.append)
    assert _run_command(parser, ["boom"]) == 130
    gc.collect()
    err = capsys.readouterr().err
    assert err == "error: interrupted; continue from the last checkpoint\n" and freed == [1] and printed == [], (err, printed)
