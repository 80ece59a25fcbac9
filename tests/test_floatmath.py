"""bptt.floatmath: exp, log, log1p, tanh accurate (against mpmath at 120 bits), right at the edges
(0, -0, inf, NaN, overflow, subnormals), and the same bits on a generic CPU as on this one."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import activations, floatmath, losses

mpmath.mp.prec = 120

# (function, mpmath's, the largest error allowed in float64 ulps of the correctly rounded value)
FUNCS = {"exp": (mpmath.exp, 1), "log": (mpmath.log, 1), "log1p": (mpmath.log1p, 2), "tanh": (mpmath.tanh, 1)}


def _ulps(got: np.ndarray, x: np.ndarray, ref_fn) -> np.ndarray:
    """|got - f(x)| in ulps of f(x) rounded to got's dtype (0 where both are the same non-finite value)."""
    dt = got.dtype
    ref = np.array([float(ref_fn(mpmath.mpf(float(v)))) for v in x.astype(np.float64)])
    with np.errstate(over="ignore"):
        ref_dt = ref.astype(dt)
    same = (got == ref_dt) | (np.isnan(got) & np.isnan(ref_dt))
    spacing = np.spacing(np.abs(ref_dt)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        err = np.abs(got.astype(np.float64) - ref) / spacing
    return np.where(same, 0.0, err)


def _domain(name: str, x: np.ndarray) -> np.ndarray:
    if name == "log":
        return np.abs(x)
    if name == "log1p":
        return np.maximum(x, -1.0)
    return x


@pytest.mark.parametrize("name", list(FUNCS))
def test_float64_within_its_ulp_bound_on_a_wide_grid(name):
    rng = np.random.default_rng(7)
    if name == "log":
        x = 10.0 ** rng.uniform(-320, 308, 4000)
    elif name == "log1p":
        x = np.concatenate([10.0 ** rng.uniform(-17, 3, 2000), -(10.0 ** rng.uniform(-17, -1e-4, 2000))])
    elif name == "exp":
        x = np.concatenate([rng.uniform(-745, 709.7, 3000), rng.normal(0, 2, 1000)])
    else:
        x = np.concatenate([rng.uniform(-25, 25, 2000), rng.normal(0, 0.5, 2000), 10.0 ** rng.uniform(-12, 0, 500)])
    ref_fn, bound = FUNCS[name]
    got = getattr(floatmath, name)(x)
    assert got.dtype == np.float64 and got.shape == x.shape
    assert _ulps(got, x, ref_fn).max() <= bound


@pytest.mark.parametrize("name", list(FUNCS))
def test_float32_within_one_ulp(name):
    rng = np.random.default_rng(8)
    x = {"exp": rng.uniform(-103, 88.7, 3000), "log": 10.0 ** rng.uniform(-44, 38, 3000),
         "log1p": np.concatenate([10.0 ** rng.uniform(-9, 3, 1500), -(10.0 ** rng.uniform(-9, -1e-3, 1500))]),
         "tanh": rng.uniform(-12, 12, 3000)}[name].astype(np.float32)
    ref_fn, _ = FUNCS[name]
    got = getattr(floatmath, name)(x)
    assert got.dtype == np.float32
    assert _ulps(got, x, ref_fn).max() <= 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=40),
       st.sampled_from(list(FUNCS)))
def test_any_float64_agrees_with_mpmath(values, name):
    """Any double, NaN and the infinities included: the bound holds, and non-finite values match mpmath's."""
    x = _domain(name, np.array(values, dtype=np.float64))
    ref_fn, bound = FUNCS[name]
    got = getattr(floatmath, name)(x)
    finite = np.isfinite(x)
    assert _ulps(got[finite], x[finite], ref_fn).max(initial=0) <= bound
    assert np.all(np.isnan(got[np.isnan(x)]))


@pytest.mark.parametrize("x, exp, log, log1p, tanh", [
    (0.0, 1.0, -np.inf, 0.0, 0.0),
    (-0.0, 1.0, -np.inf, -0.0, -0.0),
    (np.inf, np.inf, np.inf, np.inf, 1.0),
    (-np.inf, 0.0, np.nan, np.nan, -1.0),
    (-1.0, np.exp(-1.0), np.nan, -np.inf, np.tanh(-1.0)),
    (709.79, np.inf, np.log(709.79), np.log1p(709.79), 1.0),  # exp overflows
    (-745.14, 0.0, np.nan, np.nan, -1.0),  # exp underflows to 0
    (-745.13, 5e-324, np.nan, np.nan, -1.0),  # exp is the smallest subnormal
    (5e-324, 1.0, np.log(5e-324), 5e-324, 5e-324),
])
def test_edges_float64(x, exp, log, log1p, tanh):
    for name, want in (("exp", exp), ("log", log), ("log1p", log1p), ("tanh", tanh)):
        got = getattr(floatmath, name)(x)
        if np.isnan(want):
            assert np.isnan(got), (name, x, got)
        else:
            assert got == pytest.approx(want, rel=3e-16, abs=0), (name, x, got)
            assert np.signbit(got) == np.signbit(want), (name, x, got)


def test_edges_float32_exp():
    x = np.array([88.72, 88.73, -87.0, -103.9, -104.0, np.inf, -np.inf], dtype=np.float32)
    got = floatmath.exp(x)
    assert got.dtype == np.float32
    assert np.isfinite(got[0]) and got[1] == np.inf  # float32's largest e^x is at 88.7228
    assert got[2] == np.float32(np.exp(-87.0)) and got[3] > 0 and got[4] == 0  # subnormals, then 0
    assert got[5] == np.inf and got[6] == 0
    assert np.isnan(floatmath.exp(np.float32(np.nan)))


def test_shapes_dtypes_and_scalars():
    z = np.arange(24, dtype=np.float64).reshape(2, 3, 4)[:, ::2]  # not contiguous
    out = floatmath.exp(-z)
    assert out.shape == z.shape and out.dtype == np.float64 and np.array_equal(out, floatmath.exp(np.ascontiguousarray(-z)))
    assert np.ndim(floatmath.exp(1.0)) == 0 and floatmath.exp(1.0) == pytest.approx(np.e, rel=1e-16)
    assert floatmath.exp(np.arange(3)).dtype == np.float64  # integers compute in float64, as numpy does
    assert floatmath.tanh(np.zeros((0, 3), np.float32)).shape == (0, 3)


def test_the_tables_use_floatmath():
    """The engine's activations and losses are floatmath's functions, not numpy's (the bits must be)."""
    z = np.random.default_rng(0).normal(0, 4, (50, 7))
    e = floatmath.exp(-np.abs(z))
    assert np.array_equal(activations.get("sigmoid").value(z), np.where(z >= 0, 1 / (1 + e), e / (1 + e)))
    assert np.array_equal(activations.get("tanh").value(z), floatmath.tanh(z))
    s = floatmath.exp(z - z.max(-1, keepdims=True))
    assert np.array_equal(activations.get("softmax").value(z), s / s.sum(-1, keepdims=True))
    y = (z > 0).astype(float)
    bce = losses.get("bce").value(z, None, y)
    soft = np.maximum(z, 0) + floatmath.log1p(floatmath.exp(-np.abs(z)))
    assert np.array_equal(bce, (soft - y * z).sum(-1))


_HASH = """
import hashlib, numpy as np
from bptt import floatmath as fm
rng = np.random.default_rng(0)
x = np.concatenate([rng.uniform(-800, 800, 20000), rng.normal(0, 3, 20000), 10.0 ** rng.uniform(-320, 308, 10000),
                    [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -1.0, 709.78, -745.13, 88.72, -87.0, -103.9]])
h = hashlib.sha256()
for dt in (np.float64, np.float32):
    with np.errstate(all="ignore"):
        xx = x.astype(dt)
    for f in (fm.exp, fm.log, fm.log1p, fm.tanh):
        h.update(f(xx).tobytes())
print(h.hexdigest())
"""


def test_the_same_bits_when_compiled_for_a_generic_cpu(tmp_path):
    """Built for a generic x86-64 (no AVX, no FMA) the functions give this CPU's bits."""
    def run(extra):
        env = dict(os.environ, **extra)
        proc = subprocess.run([sys.executable, "-c", _HASH], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout.strip()

    here = run({})
    generic = run({"NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(tmp_path / "numba")})
    assert len(here) == 64 and here == generic
    assert hashlib.sha256(b"").hexdigest() != here
