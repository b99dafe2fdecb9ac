"""Printer round trip for trees sympy builds without evaluating them the way their text does.

sympy makes two kinds of node that its own printed text does not evaluate back to:

* a fractional power of a numeric product is distributed over the factors without recombining
  the radicals it makes: sqrt(7/5·√2) is the tree 10^(1/4)·√35·5^(3/4)/25, whose printed
  factors multiply back to the combined 2^(1/4)·√35/5 (equal numbers, different trees);
* ``Abs(-Abs(u))`` is kept as ``Abs(Abs(u))``, but ``abs(abs(u))`` evaluates to ``abs(u)``.

The printer prints the first as the root it came from, ``(7*sqrt(2)/5)^(1/2)``, and the second
as ``abs(-abs(u))``: text that the parser evaluates to the very same tree (spec 06 §6, "parses
back to the same program"). Exactness is structural equality of the re-parsed program (no
tolerance: these are exact trees).

Known limit: the root is found by search (m^(±p/k), p ≤ 4, m from powers of the tree), and
a fresh random search (RADICALS_RANDOM=1) still finds about one uncombined tree in ten that it
cannot rebuild — a product of such a root with other radicals, or a root of a product that was
itself built along another path; the derandomized default run holds none of them."""

from __future__ import annotations

import os

import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.frontend.parse import parse_text
from compiler.ir import Nonlin, Param, Program
from compiler.printer import format_formula, print_program
from compiler.symbols import BUILTINS, sym
from compiler.verify import verify

U0, U1 = sym("u[0]"), sym("u[1]")
R = sympy.Rational


def _program(f: sympy.Expr) -> Program:
    params = (Param("u", "vector", (2,)), Param("s", "scalar", (), R(1, 2)))
    body = (Nonlin("h", f), Nonlin("o", sym("h") * U0))
    return verify(Program("r", (), params, body, ("o",)))


def _assert_round_trip(f: sympy.Expr) -> None:
    p = _program(f)
    text = print_program(p)
    assert parse_text(text) == p, text


def test_the_known_radical_product_round_trips():
    """The case of the old note in test_roundtrip.py: 10^(1/4)·√35·5^(3/4)/25 stays as it is."""
    c = sympy.sqrt(R(7, 5) * sympy.sqrt(2))
    assert c.args == (R(1, 25), 5 ** R(3, 4), 10 ** R(1, 4), sympy.sqrt(35))  # uncombined
    assert sympy.Mul(*c.args) != c  # its factors, multiplied, give another tree
    assert format_formula(c) == "(7*sqrt(2)/5)^(1/2)"
    for f in (c + U0, -c + U0, sympy.tanh(c + U1), (1 + c) ** R(1, 2) * U0, c * sympy.sin(U0)):
        _assert_round_trip(f)


def test_nested_product_from_a_root_round_trips():
    """sqrt(7/5·√10) keeps a product inside the product: 2^(1/4)·5^(3/4)·(5·√7)/25."""
    c = sympy.sqrt(R(7, 5) * sympy.sqrt(10))
    assert any(a.is_Mul for a in c.args)
    for f in (c + U0, U0 - c, sympy.exp(c) * U1, sympy.Abs(c - U0)):
        _assert_round_trip(f)


def test_abs_of_abs_round_trips():
    """Abs(-Abs(u)) is kept as Abs(Abs(u)): it prints as abs(-abs(u)), not abs(abs(u))."""
    f = sympy.Abs(-sympy.Abs(U0))
    assert f.args[0] == sympy.Abs(U0)
    assert format_formula(f) == "abs(-abs(u[0]))"
    for g in (f, 2 * f + U1, f / (1 + U1**2), sympy.Abs(-sympy.Abs(U0 + U1)) * U1):
        _assert_round_trip(g)


def test_ordinary_numbers_print_as_before():
    """Only trees that would not re-parse change: typed numbers and combined radicals print
    as sympy prints them."""
    cases = {R(9, 10): "9/10", sympy.sqrt(2) * sympy.sqrt(3): "sqrt(6)",
             2 ** R(1, 4) * sympy.sqrt(35) / 5: "2^(1/4)*sqrt(35)/5",
             sympy.Abs(U0): "abs(u[0])", sympy.Abs(U0 - 1): "abs(u[0] - 1)"}
    for f, text in cases.items():
        assert format_formula(f) == text


RATIONALS = st.sampled_from([R(2), R(3), R(5), R(7, 5), R(1, 3), R(10), R(-7, 5), R(35, 4)])
ROOTS = st.sampled_from([R(1, 2), R(1, 3), R(1, 4), R(3, 4), R(-1, 2), R(2, 3)])


def _constants() -> st.SearchStrategy[sympy.Expr]:
    """Powers of products of rationals and radicals: the constants that sympy leaves
    uncombined (a root of a product is distributed, then multiplied and rooted again)."""
    leaf = st.builds(lambda a, e: abs(a) ** e, RATIONALS, ROOTS) | RATIONALS

    def extend(c: st.SearchStrategy[sympy.Expr]) -> st.SearchStrategy[sympy.Expr]:
        return st.one_of(
            st.builds(lambda a, b: a * b, c, c),
            st.builds(lambda a, e: sympy.Abs(a) ** e, c, ROOTS),
            st.builds(lambda a: -a, c),
        )

    return st.recursive(leaf, extend, max_leaves=5).filter(lambda x: x.is_finite and x != 0)


def _uses(c: sympy.Expr, k: int) -> sympy.Expr:
    """A place in a formula where a constant stays a node of its own (a product would merge
    it with the other factors)."""
    tanh = BUILTINS["tanh"].build
    return [c + U0, U1 - c, tanh(c + U0), (1 + U1**2) ** c, sympy.Abs(c - U0)][k]


def _search(examples: int, randomize: bool):  # type: ignore[no-untyped-def]
    @settings(max_examples=examples, deadline=None, derandomize=not randomize,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(_constants(), st.integers(0, 4), st.booleans())
    def check(c: sympy.Expr, k: int, wrap_abs: bool) -> None:
        f = _uses(c, k)
        _assert_round_trip(sympy.Abs(-sympy.Abs(f)) if wrap_abs else f)

    return check


def test_random_radical_constants_round_trip():
    """Fast default: 150 derandomized examples (RADICALS_RANDOM=1, RADICALS_EXAMPLES=N for a
    fresh search)."""
    examples = int(os.environ.get("RADICALS_EXAMPLES", "150"))
    _search(examples, bool(os.environ.get("RADICALS_RANDOM")))()


def test_found_powers_of_radical_products_round_trip():
    """Found by the random search (RADICALS_RANDOM=1): powers 2/3, 3/4 and -1/2 of products,
    and a negated one, leave their radicals uncombined as a square root does."""
    cases = [
        (R(7, 5) ** R(3, 4) * R(7, 5) ** R(2, 3) * sympy.sqrt(2)) ** R(2, 3),
        (R(7, 5) ** R(1, 4) * R(35, 4)) ** R(3, 4),
        (R(7, 5) * R(7, 5) ** R(3, 4)) ** R(3, 4),
        -((R(35, 4) * 10 ** R(2, 3)) ** R(2, 3)),
        (R(35, 4) ** R(2, 3)) ** R(-1, 2),
    ]
    for c in cases:
        assert sympy.Mul(*c.args) != c  # uncombined: its factors multiply to another tree
        _assert_round_trip(c + U0)
        _assert_round_trip(sympy.tanh(U1 - c))
