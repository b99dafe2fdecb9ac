"""Canonical numeric constants: the form of a radical product that its own printed text parses
back to (spec 06 §6: the printed program parses back to the same program).

sympy distributes a fractional power over a numeric product without recombining the radicals it
makes: sqrt(7/5*sqrt(2)) is the tree 10^(1/4)*sqrt(35)*5^(3/4)/25, whose printed factors the
parser multiplies back to the combined 2^(1/4)*sqrt(35)/5 — equal numbers, different trees. A
formula entering the IR (:class:`compiler.ir.Nonlin`, :class:`compiler.ir.OuterNonlin`) holds
instead the constant its text evaluates to: each maximal product or power of rationals is
replaced by the fixed point of c ← parse(print(c)), reached in one round on every constant the
random search of ``tests/test_radicals.py`` makes (at most :data:`_MAX_ROUNDS` are tried). The
fixed point is a tree the printer prints plainly and the parser builds back, so no printed form
has to be searched for; its value is checked to be the same number exactly
(:func:`_same_number`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy

_MAX_ROUNDS = 4  # print→parse rounds tried; one has always sufficed (the search in the tests)
_MAX_KNOWN = 4096  # canonical forms remembered (a program holds a handful of such constants)


def _is_radical(f: sympy.Basic) -> bool:
    """A rational to a fractional power (``5^(3/4)``)."""
    return bool(f.is_Pow and f.base.is_Rational and f.exp.is_Rational and not f.exp.is_Integer)


def may_recombine(expr: sympy.Mul) -> bool:
    """Whether ``expr`` is a product of numbers only, with two radicals or a nested product
    among them: the only products whose factors a re-parse may combine (cheap: no tree walk)."""
    return _factors_may_recombine(expr.args)


def _factors_may_recombine(factors: Sequence[sympy.Basic]) -> bool:
    radicals = 0
    for f in factors:
        if f.is_Mul:
            if not may_recombine(f) and not all(g.is_Rational or _is_radical(g) for g in f.args):
                return False
            radicals += 2
        elif _is_radical(f):
            radicals += 1
        elif not f.is_Rational:
            return False
    return radicals >= 2


def _numbers_may_recombine(expr: sympy.Mul) -> bool:
    """:func:`may_recombine` of the factors of ``expr`` that are products or powers of
    rationals (its coefficient, as in 15^(1/3)·√35·u/5)."""
    numbers = [f for f in expr.args if f.is_Rational or _is_radical(f) or f.is_Mul]
    return len(numbers) >= 2 and _factors_may_recombine(numbers)


def holds_uncanonical(formula: sympy.Basic) -> bool:
    """Whether ``formula`` holds a product whose numbers :func:`may_recombine` (one walk, no
    recursion: a formula may be nested deeper than Python's stack). False: it is canonical."""
    stack, seen = [formula], set[int]()
    while stack:
        node = stack.pop()
        if node.is_Mul and _numbers_may_recombine(node):
            return True
        stack.extend(a for a in node.args if a.args and id(a) not in seen)
        seen.update(map(id, node.args))
    return False


def canonical_constants(formula: sympy.Expr) -> sympy.Expr:
    """``formula`` with every maximal product or power of rationals that may recombine
    replaced by its canonical form (:func:`canonical_constant`). Rebuilding a parent may
    distribute a power over a new product, so the rebuild repeats until nothing changes. A
    formula too deep to rebuild is returned as it is: the verifier refuses it (it is deeper
    than ``MAX_FORMULA_DEPTH``, within which the rebuild's recursion stays)."""
    for _ in range(_MAX_ROUNDS):
        if not holds_uncanonical(formula):
            return formula
        try:
            new, constant = _rebuild(formula)
        except RecursionError:
            return formula
        if constant:  # the whole formula is a constant (``vec(…)``)
            new = canonical_constant(new)
        if new == formula:
            return formula
        formula = new
    return formula


def _rebuild(expr: sympy.Expr) -> tuple[sympy.Expr, bool]:
    """(``expr`` with its maximal constants canonical, whether ``expr`` is itself a product or
    power of rationals). Recursive: a formula the verifier accepts is at most
    ``MAX_FORMULA_DEPTH`` levels deep."""
    if not expr.args:
        return expr, bool(expr.is_Rational)
    built = [_rebuild(a) for a in expr.args]
    constant = (expr.is_Mul or expr.is_Pow) and all(c for _, c in built)
    if constant:
        return expr, True  # its parent decides: only a maximal constant is rebuilt
    args = [canonical_constant(a) if c and a.args else a for a, c in built]
    if expr.is_Mul and _numbers_may_recombine(expr):
        # its numbers print together, as its coefficient (15^(1/3)*sqrt(35)*u/5): one constant
        numbers = [a for a, (_, c) in zip(args, built, strict=True) if c]
        rest = [a for a, (_, c) in zip(args, built, strict=True) if not c]
        args = [canonical_constant(sympy.Mul(*numbers)), *rest]
    if len(args) == len(expr.args) and all(n is o for n, o in zip(args, expr.args, strict=True)):
        return expr, False
    return expr.func(*args), False


def canonical_constant(c: sympy.Expr) -> sympy.Expr:
    """The fixed point of c ← parse(print(c)) for a product or power of rationals (``c`` itself
    when its text already parses back to it, or when no fixed point of the same value is found
    within :data:`_MAX_ROUNDS` rounds)."""
    if not any(n.is_Mul and may_recombine(n) for n in sympy.preorder_traversal(c)):
        return c
    known = _known.get(c)
    if known is None:
        known = _canonical(c)
        if len(_known) >= _MAX_KNOWN:
            _known.clear()
        _known[c] = _known[known] = known  # a canonical constant is its own canonical form
    return known


_known: dict[sympy.Expr, sympy.Expr] = {}


def _canonical(c: sympy.Expr) -> sympy.Expr:
    current = c
    for _ in range(_MAX_ROUNDS):
        parsed = _parse_constant(_plain_text(current))
        if parsed == current:
            return current if _same_number(current, c) else c
        current = parsed
    return c


def _same_number(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Whether two products of rational powers of rationals are the same number, exactly: their
    L-th powers (L the common denominator of every exponent) are rationals sympy computes
    exactly, and the signs agree (an odd L leaves the sign in the power; an even one not)."""
    if a == b:
        return True
    top = 1
    for e in (a, b):
        for n in sympy.preorder_traversal(e):
            if n.is_Pow and n.exp.is_Rational:
                top = int(sympy.ilcm(top, n.exp.q))
    pa, pb = a**top, b**top
    return bool(pa.is_Rational and pa == pb and (a.is_negative == b.is_negative))


def _plain_text(c: sympy.Expr) -> str:
    from compiler.printer import format_formula  # the printer imports the IR, which imports this

    return format_formula(c)


def _parse_constant(text: str) -> sympy.Expr:
    """The value the parser gives the formula ``text``: the body of ``def c() = text`` (a def
    body is evaluated as any formula is, and emits no instruction)."""
    from compiler.frontend.flatten import Flattener
    from compiler.frontend.syntax import parse_tree

    source = f"def c() = {text}\n"
    flattener = Flattener("<constant>", source)
    flattener.define_function(parse_tree(source, "<constant>").children[0])
    return flattener.functions["c"].body
