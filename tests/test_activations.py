import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from bptt import BPTTError
from bptt.activations import ACTIVATIONS, get


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@given(z=st.floats(-30, 30).filter(lambda v: abs(v) > 1e-3))
def test_derivative_from_output_matches_finite_difference(name, z):
    a = ACTIVATIONS[name]
    eps = 1e-6
    numeric = (a.value(np.array(z + eps)) - a.value(np.array(z - eps))) / (2 * eps)
    assert a.deriv(a.value(np.array(z))) == pytest.approx(float(numeric), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_symbolic_and_numeric_agree(name):
    a = ACTIVATIONS[name]
    u = sp.Symbol("u", real=True)
    for z in (-2.5, -0.3, 0.7, 3.0):
        sym_val = float(a.sym_value(u).subs(u, z))
        assert sym_val == pytest.approx(float(a.value(np.array(z))), rel=1e-14)
        sym_d = float(a.sym_deriv(sp.Float(sym_val)))
        assert sym_d == pytest.approx(float(a.deriv(np.array(a.value(np.array(z))))), rel=1e-14)
        # and the symbolic derivative of the symbolic value is the table's derivative
        dz = float(sp.diff(a.sym_value(u), u).subs(u, z))
        assert dz == pytest.approx(sym_d, rel=1e-12)


def test_sigmoid_is_stable_for_huge_inputs():
    z = np.array([-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = ACTIVATIONS["sigmoid"].value(z)
    assert np.all(np.isfinite(s))
    assert s[0] == 0.0 and s[-1] == 1.0 and s[3] == 0.5
    assert np.all(np.diff(s) >= 0)


def test_sigmoid_keeps_float32():
    z = np.linspace(-5, 5, 7, dtype=np.float32)
    assert ACTIVATIONS["sigmoid"].value(z).dtype == np.float32


def test_sigmoid_is_the_plus_sign_logistic():
    # The seed prints 1/(1 - e^-x); its own sgm(2) = 0.88 needs 1/(1 + e^-x).
    assert float(ACTIVATIONS["sigmoid"].value(np.array(2.0))) == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert round(float(ACTIVATIONS["sigmoid"].value(np.array(2.0))), 2) == 0.88


def test_unknown_activation_is_one_clear_line():
    with pytest.raises(BPTTError, match="'softsign' is not supported; choose one of sigmoid, tanh"):
        get("softsign", ("sigmoid", "tanh"), "hidden_activation")
