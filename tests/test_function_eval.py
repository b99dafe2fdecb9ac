"""Our functions evaluate only on numbers they can decide (compiler/symbols.py): a real number
sympy cannot order (softplus(2)) stays symbolic instead of crashing the parser, and no
assumption inference runs on symbolic arguments."""

from __future__ import annotations

import sympy

from compiler.frontend.parse import parse_text
from compiler.symbols import relu, sigmoid, softplus, step


def test_decidable_numbers_evaluate() -> None:
    assert sigmoid(sympy.Integer(0)) == sympy.Rational(1, 2)
    assert softplus(sympy.Integer(0)) == sympy.log(2)
    assert relu(sympy.Integer(-3)) == 0 and relu(sympy.Rational(5, 2)) == sympy.Rational(5, 2)
    assert step(sympy.Integer(2)) == 1 and step(sympy.Integer(-2)) == 0


def test_an_unorderable_real_number_stays_symbolic() -> None:
    assert isinstance(relu(softplus(2)), relu) and isinstance(step(softplus(2)), step)
    text = ("arch a {\n    param u : vector\n"
            "    output u*relu(softplus(2)) + step(softplus(2))*u\n}\n")
    program = parse_text(text, "sp.nx")
    assert len(program.body) >= 1


def test_symbolic_arguments_are_left_alone() -> None:
    v = sympy.Symbol("v", real=True)
    assert isinstance(sigmoid(v - v + sympy.tanh(v)), sigmoid)
    assert isinstance(softplus(sympy.tanh(v) ** 2), softplus)
