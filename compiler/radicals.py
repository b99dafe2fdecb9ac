"""Uncombined radical products and the powers they are roots of (spec 06 §6: the printed
program parses back to the same program).

sympy distributes a fractional power over a numeric product without recombining the radicals it
makes: sqrt(7/5*sqrt(2)) is the tree 10^(1/4)*sqrt(35)*5^(3/4)/25, whose printed factors the
parser multiplies back to the combined 2^(1/4)*sqrt(35)/5 — equal numbers, different trees. Such
a tree prints as a power ±m^(p/k) that evaluates back to it (:func:`root_form`), found by search
and checked by evaluating it as the parser will (``m ** e``, and ``-x`` by ``Mul.__neg__``).
"""

from __future__ import annotations

import functools
import itertools
import math

import sympy


def _is_radical(f: sympy.Basic) -> bool:
    """A rational to a fractional power (``5^(3/4)``)."""
    return bool(f.is_Pow and f.base.is_Rational and f.exp.is_Rational and not f.exp.is_Integer)


def may_recombine(expr: sympy.Mul) -> bool:
    """Whether ``expr`` is a product of numbers only, with two radicals or a nested product
    among them: the only products whose factors a re-parse may combine (cheap: no tree walk)."""
    radicals = 0
    for f in expr.args:
        if f.is_Mul:
            if not may_recombine(f) and not all(g.is_Rational or _is_radical(g) for g in f.args):
                return False
            radicals += 2
        elif _is_radical(f):
            radicals += 1
        elif not f.is_Rational:
            return False
    return radicals >= 2


_MAX_NUMERATOR = 4  # powers m^(p/k) tried: p ≤ 4 (the constants of real programs have p ≤ 3)


def root_form(c: sympy.Mul) -> tuple[sympy.Expr, sympy.Rational, str] | None:
    """(m, e, sign) with sign·m^e == ``c`` as trees (sign "" or "-", e = p/k), when the printed
    factors of ``c`` would not re-parse to ``c``; None when they would (or no such power is
    found).

    sympy distributes a fractional power over a numeric product without recombining the
    radicals it makes: sqrt(7/5*sqrt(2)) is the tree 10^(1/4)*sqrt(35)*5^(3/4)/25, whose
    printed factors multiply back to the combined 2^(1/4)*sqrt(35)/5 (equal numbers, different
    trees). Such a tree is m^(p/k) for m the p-th root of its k-th power (k dividing the common
    denominator of its exponents), which the parser rebuilds the same way; each candidate is
    checked by evaluating it as the parser will."""
    if sympy.Mul(*c.args) == c:  # the factors multiply back to this tree
        return None
    # a negative product is the negation (Mul.__neg__, as the parser's minus) of a positive one
    negative = c.as_coeff_Mul()[0].is_negative
    d = -c if negative else c
    denominators = [f.exp.q for f in sympy.preorder_traversal(c) if _is_radical(f)]
    top = int(functools.reduce(sympy.ilcm, denominators, 1))
    for k in _divisors(top):
        for sign in (1, -1):  # m^(p/k), then m^(-p/k) (m = 1/(p-th root of d^k))
            powers = _powers(d**sign, k, top // k)
            for p in range(1, _MAX_NUMERATOR + 1):
                e = sympy.Rational(sign * p, k)
                found = _first_root(c, negative, powers, e) if math.gcd(p, k) == 1 else None
                if found is not None:
                    return found, e, "-" if negative else ""
    return None


def _first_root(
    c: sympy.Mul, negative: bool, powers: list[sympy.Expr], e: sympy.Rational
) -> sympy.Expr | None:
    """The first m among the |p|-th roots of ``powers`` (e = ±p/k) and ±c^(1/e) (the power
    distributed over the factors of ``c``) whose m^e (negated if ``negative``, as the parser
    evaluates ``-(m)^(e)``) is the tree ``c``."""
    p, d = abs(e.p), -c if negative else c
    for m in itertools.chain(
        (b if p == 1 else b ** sympy.Rational(1, p) for b in powers), (d ** (1 / e),)
    ):
        root = m**e
        if (-root if negative else root) == c:
            return m
    return None


def _divisors(top: int) -> list[int]:
    return [k for k in range(2, top + 1) if top % k == 0]


def _powers(d: sympy.Expr, k: int, rest: int) -> list[sympy.Expr]:
    """Candidates for d^k as the tree a root was taken of: d^k itself, and the j-th roots of
    d^(k·j) (a root of a root: that tree was itself an uncombined product)."""
    return [d**k, *((d ** (k * j)) ** sympy.Rational(1, j) for j in _divisors(rest))]
