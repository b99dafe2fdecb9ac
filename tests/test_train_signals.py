"""Error signals (spec 04 §4.2, compiler.train.signals) and exact numbers."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from compiler.numbers import decimal_rational, float_rational
from compiler.printer import format_formula
from compiler.train import OptionError, parse_signal

B = 4


def _values(chi, f, y, fv, yv):
    subs = dict(zip(f, fv, strict=True)) | dict(zip(y, yv, strict=True))
    return np.array([float(c.xreplace(subs)) for c in chi])


def _symbols(k):
    return sympy.symbols(f"f0:{k}", real=True), sympy.symbols(f"y0:{k}", real=True)


def test_mse_is_the_gradient_of_half_the_mean_square():
    f, y = _symbols(3)
    chi = parse_signal("mse").chi(f, y, B)
    loss = sympy.Add(*((fj - yj) ** 2 for fj, yj in zip(f, y, strict=True))) / (2 * B)
    assert all(sympy.simplify(c - sympy.diff(loss, fj)) == 0 for c, fj in zip(chi, f, strict=True))


def test_ce_is_the_gradient_of_the_cross_entropy():
    """χ = (softmax(f) − onehot(y))/B, checked against −log softmax(f)·y by finite differences
    and numerically stable at large logits (the softmax is shifted by max f)."""
    f, y = _symbols(3)
    chi = parse_signal("ce").chi(f, y, B)
    fv, yv = np.array([0.3, -1.2, 2.0]), np.array([0.0, 1.0, 0.0])

    def loss(v):
        return -(v - np.log(np.sum(np.exp(v)))) @ yv / B

    h = 1e-6
    fd = [(loss(fv + h * e) - loss(fv - h * e)) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(_values(chi, f, y, fv, yv), fd, atol=1e-8)
    big = _values(chi, f, y, fv + 800.0, yv)
    assert np.all(np.isfinite(big)) and abs(big.sum()) < 1e-12  # rows of softmax − onehot sum to 0


def test_custom_chi_and_loss():
    f, y = _symbols(2)
    by_chi = parse_signal("formula(chi = (f - y)^3)").chi(f, y, B)
    by_loss = parse_signal("formula(loss = (f - y)^4/4)").chi(f, y, B)
    assert all(sympy.expand(a - b) == 0 for a, b in zip(by_chi, by_loss, strict=True))
    assert by_chi[1] == (f[1] - y[1]) ** 3 / B


@pytest.mark.parametrize(("text", "column", "words"), [
    ("l2", 1, "unknown error signal 'l2' (known: mse, ce, formula)"),
    ("formula(chi = f - z)", 19, "unknown name 'z'"),
    ("formula(grad = f)", 9, "expected chi = … or loss = …"),
    ("mse(2)", 4, "unexpected '('"),
])
def test_signal_errors_are_located(text, column, words):
    with pytest.raises(OptionError) as e:
        parse_signal(text)
    assert words in e.value.message and e.value.column == column
    assert e.value.render().startswith("error: --loss: ")


@pytest.mark.parametrize(("text", "value"), [
    ("0.9", sympy.Rational(9, 10)), ("1e-8", sympy.Rational(1, 10**8)),
    (".5", sympy.Rational(1, 2)),
    ("2.5E3", sympy.Integer(2500)), ("-0.125", sympy.Rational(-1, 8)),
])
def test_decimal_rational_is_exact(text, value):
    assert decimal_rational(text) == value


@pytest.mark.parametrize("text", ["x", "1e999", "1e-400", "1.2.3", "", "nan", "inf"])
def test_decimal_rational_refuses(text):
    with pytest.raises(ValueError):
        decimal_rational(text)


def test_floats_print_as_their_shortest_decimal():
    """The printer reads a float through its repr: 0.9 prints 9/10, and a float that is not the
    decimal it looks like keeps every digit (0.1 + 0.2 = 0.30000000000000004)."""
    x = sympy.Symbol("x")
    assert format_formula(sympy.Float(0.9) * x) == "9/10*x"
    assert float_rational(0.1 + 0.2) == sympy.Rational("0.30000000000000004")
    assert float(float_rational(0.1 + 0.2)) == 0.1 + 0.2
    assert "9007199254740992" not in format_formula(sympy.Float(0.9) + x)
    assert float_rational(sympy.Float("0.1", 30)) == sympy.Rational(1, 10)
