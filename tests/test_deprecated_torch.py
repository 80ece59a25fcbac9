"""No deprecated torch API in the code or the tests: torch.jit.* is deprecated (torch 2.13), and torch's forward
mode (torch.func.jvp, jacfwd, hessian, torch.autograd.forward_ad) runs torch.jit.script on first use, 18
DeprecationWarnings a process. The cross-checks use torch.autograd.functional (jvp by two reverse passes)."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent


def test_the_cross_checks_torch_calls_warn_nothing_where_forward_mode_does():
    """A fresh process (torch warns once a process): the calls the tests use give no DeprecationWarning, and
    torch.func.jvp after them gives the jit.script ones, so the check can see them."""
    pytest.importorskip("torch")
    code = """
import warnings
import torch
t = torch.tensor([0.3, -1.2], dtype=torch.float64)
f = lambda a: (torch.softmax(torch.tanh(a) * a.sum(), 0), torch.sigmoid(a))
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    _, (j1, j2) = torch.autograd.functional.jvp(f, (t,), (torch.ones_like(t),))
    torch.autograd.functional.hessian(lambda a: (a ** 3).sum(), t)
    torch.func.vjp(f, t)[1]((t, t))
    mine = [str(x.message) for x in w if issubclass(x.category, DeprecationWarning)]
    torch.func.jvp(torch.tanh, (t,), (torch.ones_like(t),))
    control = sum(issubclass(x.category, DeprecationWarning) and "jit.script" in str(x.message) for x in w)
print(len(mine), control, float(j1.abs().max()))
for m in mine:
    print(m)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    first, *messages = out.stdout.splitlines()
    mine, control, size = first.split()
    assert int(mine) == 0, messages
    assert float(size) > 1e-3  # the jvp computed something
    assert int(control) > 0, "torch.func.jvp no longer warns in this torch: the forward-mode ban below can go"


def test_no_torchscript_or_forward_mode_in_code_tests_or_examples():
    banned = re.compile(r"torch\.jit\.\w+\(|torch\.func\.(jvp|jacfwd|hessian|linearize)\(|\bjacfwd\(|forward_ad\b")  # calls, not prose
    hits = []
    for top in ("src", "tests", "examples"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if path.name == pathlib.Path(__file__).name:
                continue
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if banned.search(line):
                    hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "deprecated torch API (use torch.autograd.functional):\n" + "\n".join(hits)
