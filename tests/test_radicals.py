"""Printer round trip for trees sympy builds without evaluating them the way their text does.

sympy makes two kinds of node that its own printed text does not evaluate back to:

* a fractional power of a numeric product is distributed over the factors without recombining
  the radicals it makes: sqrt(7/5·√2) is the tree 10^(1/4)·√35·5^(3/4)/25, whose printed
  factors multiply back to the combined 2^(1/4)·√35/5 (equal numbers, different trees);
* ``Abs(-Abs(u))`` is kept as ``Abs(Abs(u))``, but ``abs(abs(u))`` evaluates to ``abs(u)``.

A formula entering the IR holds the first as its canonical form, the tree its text parses back
to (``compiler/radicals``: the fixed point of c ← parse(print(c)), the same number exactly); the
second prints as ``abs(-abs(u))``, text that the parser evaluates to the very same tree (spec
06 §6, "parses back to the same program"). Exactness is structural equality of the re-parsed
program (no tolerance: these are exact trees); the value of a canonical constant is compared
with the original's exactly (integer powers of radicals are rationals) and at 60 digits.

Known limit: canonical forms are made for products and powers of rationals; in a product
holding π or e, those factors stay as sympy built them and only the rational part (its
coefficient) is made canonical, which the search with π and e below finds sufficient. Every
constant the searches generate (the derandomized default runs, the slow 2000-example run, and
fresh RADICALS_RANDOM=1 runs of 2000) round-trips, reaching its fixed point within one round;
the same holds where a constant's numbers become a product's coefficient. Left alone:
non-numeric subtrees (``Abs(Abs(u))`` is handled by the printer, not made canonical)."""

from __future__ import annotations

import dataclasses
import os

import hypothesis
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.frontend.parse import parse_text
from compiler.ir import Nonlin, OuterNonlin, Param, Program
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


def _canonical_of(c: sympy.Expr) -> sympy.Expr:
    """The constant the IR holds in place of ``c`` (a Nonlin of it alone, ``vec(c)``)."""
    return Nonlin("h", c).formula


def _assert_same_number(a: sympy.Expr, b: sympy.Expr) -> None:
    """Exactly (the L-th powers, L the common denominator of every exponent, are rationals
    sympy computes exactly; the signs agree) and at 60 digits, a check that does not rest on
    sympy's power rules (the values are at most ~10³, so 50 digits are far above the error of
    a 60-digit evaluation)."""
    top = 1
    for e in (a, b):
        for n in sympy.preorder_traversal(e):
            if n.is_Pow and n.exp.is_Rational:
                top = int(sympy.ilcm(top, n.exp.q))
    assert (a**top).is_Rational and a**top == b**top and a.is_negative == b.is_negative
    assert abs(sympy.N(a - b, 60)) <= sympy.Float(10, 60) ** -50 * (1 + abs(sympy.N(a, 60)))


def test_the_known_radical_product_becomes_the_tree_its_text_parses_to():
    """10^(1/4)·√35·5^(3/4)/25 enters the IR as 2^(1/4)·√35/5: the tree the parser builds from
    its printed factors (the old note in test_roundtrip.py), the same number (both to the 4th
    power are 98/25 = (7/5)²·2)."""
    c = sympy.sqrt(R(7, 5) * sympy.sqrt(2))
    assert c.args == (R(1, 25), 5 ** R(3, 4), 10 ** R(1, 4), sympy.sqrt(35))  # uncombined
    assert sympy.Mul(*c.args) != c  # its factors, multiplied, give another tree
    k = _canonical_of(c)
    assert k == 2 ** R(1, 4) * sympy.sqrt(35) / 5 and k != c
    assert c**4 == k**4 == R(98, 25)
    assert format_formula(k) == "2^(1/4)*sqrt(35)/5"
    assert Nonlin("h", c + U0).formula == k + U0
    for f in (c + U0, -c + U0, sympy.tanh(c + U1), (1 + c) ** R(1, 2) * U0, c * sympy.sin(U0)):
        _assert_round_trip(f)


def test_nested_product_from_a_root_round_trips():
    """sqrt(7/5·√10) keeps a product inside the product: 2^(1/4)·5^(3/4)·(5·√7)/25."""
    c = sympy.sqrt(R(7, 5) * sympy.sqrt(10))
    assert any(a.is_Mul for a in c.args)
    _assert_same_number(_canonical_of(c), c)
    for f in (c + U0, U0 - c, sympy.exp(c) * U1, sympy.Abs(c - U0)):
        _assert_round_trip(f)


def test_the_coefficient_of_a_product_is_one_constant():
    """√(7/5·15^(2/3))·u: the distributed root's factors are the product's coefficient
    15^(1/3)·√35/5, which the parser multiplies into 3^(1/3)·5^(5/6)·√7/5 (found by a search
    over more places than ``_uses``)."""
    c = -7 * R(15) ** R(2, 3) / 5
    f = sympy.sqrt(abs(c)) * U1 - c
    g = Nonlin("h", f).formula
    assert g != f and sympy.expand(g - f) == 0
    _assert_round_trip(f)


def test_formulas_without_such_constants_are_kept_as_they_are():
    """The IR keeps a formula it need not change as the very object (identity memos of the
    printer and verifier rely on it), and so does a pass that rebuilds an instruction."""
    for f in (sympy.tanh(U0 + R(9, 10)), sympy.sqrt(2) * sympy.sqrt(3) + U1, U0 * sympy.pi):
        assert Nonlin("h", f).formula is f
        assert OuterNonlin("h", ("b",), f).formula is f
    c = sympy.sqrt(R(7, 5) * sympy.sqrt(2))
    moved = dataclasses.replace(Nonlin("h", U0), formula=c * U0 + U1)
    assert moved.formula == _canonical_of(c) * U0 + U1


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
            st.builds(lambda a, b, e: sympy.Abs(a * b) ** e, c, c, ROOTS),  # a root of a product
            st.builds(lambda a: -a, c),
        )

    return st.recursive(leaf, extend, max_leaves=5).filter(lambda x: x.is_finite and x != 0)


def _uses(c: sympy.Expr, k: int) -> sympy.Expr:
    """A place in a formula for a constant: a node of its own (0-4), or its factors among a
    product's (5-8: they print as the product's coefficient)."""
    tanh = BUILTINS["tanh"].build
    return [
        c + U0, U1 - c, tanh(c + U0), (1 + U1**2) ** c, sympy.Abs(c - U0),
        c * sympy.sin(U0), sympy.exp(c * U0), sympy.sqrt(abs(c)) * U1 - c, c * (U0 + U1),
    ][k]


def _search(examples: int, randomize: bool, seed: int | None = None):  # type: ignore[no-untyped-def]
    # a fixed seed draws the same examples only without the database's replayed failures
    fixed = {"database": None} if seed is not None else {}
    @settings(max_examples=examples, deadline=None, derandomize=not randomize and seed is None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], **fixed)
    @given(_constants(), st.integers(0, 8), st.booleans())
    def check(c: sympy.Expr, k: int, wrap_abs: bool) -> None:
        k_c = _canonical_of(c)
        _assert_same_number(k_c, c)
        assert _canonical_of(k_c) == k_c  # a fixed point: canonical constants stay as they are
        f = _uses(c, k)
        _assert_round_trip(sympy.Abs(-sympy.Abs(f)) if wrap_abs else f)

    return check if seed is None else hypothesis.seed(seed)(check)


def test_random_radical_constants_round_trip():
    """Fast default: 150 derandomized examples (RADICALS_RANDOM=1, RADICALS_EXAMPLES=N for a
    fresh search)."""
    examples = int(os.environ.get("RADICALS_EXAMPLES", "150"))
    _search(examples, bool(os.environ.get("RADICALS_RANDOM")))()


@pytest.mark.slow
def test_many_random_radical_constants_round_trip():
    """2000 examples of a fixed seed (another sample than the derandomized default's, the same
    in every run): none may fail."""
    _search(2000, True, seed=20261208)()


TRANSCENDENTAL = st.sampled_from(
    [sympy.pi, sympy.sqrt(sympy.pi), 1 / sympy.pi, sympy.E, sympy.pi ** R(1, 3)]
)


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(_constants(), TRANSCENDENTAL, st.sampled_from([R(1, 2), R(2, 3), R(1)]), st.integers(0, 8))
def test_radical_constants_with_pi_and_e_round_trip(c, q, e, k):  # type: ignore[no-untyped-def]
    """A root of a product holding π or e: its rational part is a product's coefficient (a
    fresh search of 1000 found 24 that did not re-parse before canonical constants, 0 after)."""
    _assert_round_trip(_uses((abs(c) * q) ** e, k))


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
        _assert_same_number(_canonical_of(c), c)
        _assert_round_trip(c + U0)
        _assert_round_trip(sympy.tanh(U1 - c))
