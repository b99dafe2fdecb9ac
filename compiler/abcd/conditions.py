"""Exponent values and the conditions on them (spec 03 §3.2, §3.3).

Exponents are sympy numbers, ``oo`` (a zero initialisation, b = ∞) or linear forms in real
symbols (``1 - s``). The analyses build piecewise-linear expressions from them with ``Max`` and
``Min`` (a sum of sizes is as large as its largest term), and every verdict is a condition such
as ``Max(…) ≤ 0`` or ``a + b + r = 1``. With one symbol a condition is solved exactly, piece by
piece (:mod:`compiler.abcd.pwl`). Otherwise it becomes a boolean combination of *linear*
(in)equalities through the lattice normal form: any expression built from linear forms with +,
scaling, Max and Min equals Max_i Min_j ℓ_ij (addition distributes over both), and

    Max_i Min_j ℓ_ij ≥ 0  ⟺  ∃i ∀j ℓ_ij ≥ 0,        Max_i Min_j ℓ_ij ≤ 0  ⟺  ∀i ∃j ℓ_ij ≤ 0.

With numbers the result is True or False; with one symbol it is a set of reals (an interval, a
point, a union), e.g. "stable and faithful iff s ∈ [0, 1/2]"; with several symbols it stays a
boolean formula in them.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Iterable
from typing import TypeAlias

import sympy
from sympy.logic.boolalg import Boolean

from compiler.abcd import pwl
from compiler.errors import ParametrizationError
from compiler.ir import Loc

Exp: TypeAlias = sympy.Expr
Lattice = tuple[tuple[Exp, ...], ...]
"""Max over the outer tuple of Min over the inner tuples of linear forms."""

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|"
                    r"(?P<name>[A-Za-z_]\w*)|(?P<op>[-+*/()]))")
_INFINITE = {"inf", "infinity", "oo"}


def symbol(name: str) -> sympy.Symbol:
    """The real symbol of an exponent variable (``up:s``, ``symbols = ["s"]`` in a table)."""
    return sympy.Symbol(name, real=True)


def parse_exponent(value: object, symbols: Iterable[str] = (), what: str = "exponent",
                   loc: Loc | None = None, allow_inf: bool = False) -> Exp:
    """An exponent from a table or the command line: an int, a float (read as the decimal it
    prints as, 0.1 → 1/10), or a string holding a linear form over numbers and the declared
    ``symbols`` (``"1/2"``, ``"1 - s"``, ``"1 + s/2"``). ``"inf"`` (+∞) is accepted only with
    ``allow_inf``, for the letters where it means something (b = ∞: zero initialisation; c = ∞:
    a frozen tensor, learning rate 0): an
    infinite a, d or e_out has no meaning (n^{-∞}·p would be 0 whatever p is, and the invariants
    A = a+b, D = d−a would read ∞ − ∞), and −∞ is never an exponent."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ParametrizationError(f"{what} must be a number or a string like \"1/2\" or "
                                   f"\"1 - s\", got {value!r}", loc)
    if isinstance(value, float) and not math.isfinite(value):
        text = repr(value)  # inf, -inf, nan
    elif isinstance(value, int | float):
        return sympy.Rational(str(value))
    else:
        text = value.strip()
    word = text.lower().replace(" ", "")
    if word.lstrip("+-") in _INFINITE or word == "nan":
        return _infinite(word, what, loc, allow_inf)
    return _parse_linear(text, set(symbols), what, loc)


def _infinite(word: str, what: str, loc: Loc | None, allowed_here: bool) -> Exp:
    allowed = ("only b (inf: zero initialisation) and c (inf: frozen, learning rate 0) may be "
               "infinite")
    if word == "nan":
        raise ParametrizationError(f"{what} must be a number, got nan", loc)
    if word.startswith("-"):
        raise ParametrizationError(f"{what} cannot be −∞ ({allowed}, and only as +inf)", loc)
    if not allowed_here:
        raise ParametrizationError(f"{what} cannot be infinite: {allowed}", loc)
    return sympy.oo


def _parse_linear(text: str, names: set[str], what: str, loc: Loc | None) -> Exp:
    pos, parts = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ParametrizationError(f"{what}: cannot read {text!r} at {text[pos:]!r}", loc)
        pos = m.end()
        if m.group("num"):
            parts.append(f"Rational('{m.group('num')}')")
        elif m.group("name"):
            name = m.group("name")
            if name not in names:
                hint = (f"to use a symbol, declare it: symbols = [\"{name}\"]" if name != "n"
                        else "the width n cannot appear in an exponent")
                raise ParametrizationError(f"{what}: {text!r} is not a number ({hint})", loc)
            parts.append(f"Symbol('{name}', real=True)")
        elif m.group("op"):
            parts.append(m.group("op"))
    if not parts:
        raise ParametrizationError(f"{what} is empty", loc)
    try:  # only numbers, declared symbols and + - * / ( ) reach eval
        expr = eval(" ".join(parts), {"__builtins__": {}},
                    {"Rational": sympy.Rational, "Symbol": sympy.Symbol})
    except (SyntaxError, ZeroDivisionError, TypeError) as e:
        msg = f"{what}: {text!r} is not a valid expression ({e})"
        raise ParametrizationError(msg, loc) from None
    expr = sympy.sympify(expr)
    if expr.has(sympy.zoo, sympy.nan):
        raise ParametrizationError(f"{what}: {text!r} divides by zero", loc)
    if not _is_linear(expr):
        raise ParametrizationError(f"{what}: {text!r} is not a linear form in the symbols", loc)
    return sympy.expand(expr)


def _is_linear(expr: Exp) -> bool:
    syms = expr.free_symbols
    if not syms:
        return expr.is_real is not False
    poly = sympy.Poly(expr, *syms) if expr.is_polynomial(*syms) else None
    return poly is not None and poly.total_degree() <= 1


# -- lattice normal form --------------------------------------------------------------------------
def _prune_min(terms: Iterable[Exp]) -> tuple[Exp, ...]:
    """Distinct terms of a Min, keeping the smallest of terms that differ by a number."""
    best: dict[Exp, Exp] = {}
    for t in terms:
        const, rest = t.as_coeff_Add() if t.is_finite is not False else (t, sympy.S.Zero)
        if rest in best:
            best[rest] = sympy.Min(best[rest], const)
        else:
            best[rest] = const
    return tuple(sorted((c + r for r, c in best.items()), key=sympy.default_sort_key))


def _prune_max(rows: Iterable[tuple[Exp, ...]]) -> Lattice:
    rows = set(rows)
    singles: dict[Exp, Exp] = {}
    out = []
    for row in rows:
        if len(row) == 1 and row[0].is_finite is not False:
            const, rest = row[0].as_coeff_Add()
            singles[rest] = sympy.Max(singles.get(rest, const), const)
        else:
            out.append(row)
    out += [(c + r,) for r, c in singles.items()]
    return tuple(sorted(out, key=lambda r: [sympy.default_sort_key(t) for t in r]))


def lattice(expr: Exp) -> Lattice:
    """Max_i Min_j ℓ_ij with linear ℓ_ij equal to ``expr`` (built from linear forms, +, numeric
    scaling, Max, Min)."""
    if isinstance(expr, sympy.Max):
        return _prune_max(row for a in expr.args for row in lattice(a))
    if isinstance(expr, sympy.Min):
        return _lattice_min([lattice(a) for a in expr.args])
    if isinstance(expr, sympy.Add) and expr.has(sympy.Max, sympy.Min):
        acc: Lattice = ((sympy.S.Zero,),)
        for term in expr.args:
            acc = _lattice_add(acc, lattice(term))
        return acc
    if isinstance(expr, sympy.Mul) and expr.has(sympy.Max, sympy.Min):
        coeff, rest = expr.as_coeff_Mul()
        if isinstance(rest, sympy.Mul):
            raise ValueError(f"not piecewise linear: {expr}")
        return _lattice_scale(lattice(rest), coeff)
    return ((expr,),)


def _lattice_add(x: Lattice, y: Lattice) -> Lattice:
    return _prune_max(_prune_min(a + b for a, b in itertools.product(rx, ry))
                      for rx, ry in itertools.product(x, y))


def _lattice_min(parts: list[Lattice]) -> Lattice:
    # Min_k Max_i Min_j ℓ = Max over choices (one row per part) of the Min of the chosen rows
    return _prune_max(_prune_min(t for row in choice for t in row)
                      for choice in itertools.product(*parts))


def _lattice_scale(x: Lattice, k: Exp) -> Lattice:
    if k >= 0:
        return _prune_max(_prune_min(k * t for t in row) for row in x)
    # -Max_i Min_j ℓ = Min_i Max_j (-ℓ): each row becomes a Max of singletons
    return _lattice_min([tuple((k * t,) for t in row) for row in x])


# -- conditions ---------------------------------------------------------------------------------
OPS = {">=": "≥", "<=": "≤", "==": "=", ">": ">", "<": "<"}


def relation(lhs: Exp, op: str, rhs: Exp) -> Boolean:
    """The condition ``lhs op rhs`` as a boolean combination of linear (in)equalities."""
    lhs, rhs = sympy.sympify(lhs), sympy.sympify(rhs)
    if op == "==":
        return sympy.And(relation(lhs, ">=", rhs), relation(lhs, "<=", rhs))
    if lhs.has(sympy.oo, -sympy.oo) or rhs.has(sympy.oo, -sympy.oo):
        return _relation_infinite(lhs, op, rhs)
    diff = sympy.expand(lhs - rhs)
    if len(diff.free_symbols) == 1:
        s = next(iter(diff.free_symbols))
        got = pwl.solve(diff, op, s)
        if got is not None:
            return got.as_relational(s) if got not in (sympy.S.Reals, sympy.S.EmptySet) else (
                sympy.true if got == sympy.S.Reals else sympy.false)
    rows = lattice(diff)
    rel = {">=": sympy.Ge, "<=": sympy.Le, ">": sympy.Gt, "<": sympy.Lt}[op]
    if op in (">=", ">"):
        return sympy.Or(*(sympy.And(*(rel(t, 0) for t in row)) for row in rows))
    return sympy.And(*(sympy.Or(*(rel(t, 0) for t in row)) for row in rows))


def _relation_infinite(lhs: Exp, op: str, rhs: Exp) -> Boolean:
    # b = ∞ (zero init) only ever appears added to finite forms: compare the infinite parts
    value = {">=": sympy.Ge, "<=": sympy.Le, ">": sympy.Gt, "<": sympy.Lt}[op](lhs, rhs)
    if value in (sympy.true, sympy.false):
        return value
    raise ValueError(f"cannot decide {lhs} {op} {rhs}")


def free_symbols(*exprs: Exp) -> set[sympy.Symbol]:
    return set().union(*(e.free_symbols for e in exprs)) if exprs else set()


def condition_set(cond: Boolean) -> sympy.Set | Boolean:
    """The set of values satisfying ``cond``: a subset of the reals for one symbol (Reals or
    EmptySet for a decided condition); the boolean itself for several symbols."""
    if cond is sympy.true:
        return sympy.S.Reals
    if cond is sympy.false:
        return sympy.S.EmptySet
    syms = cond.free_symbols
    if len(syms) != 1:
        return cond
    s = next(iter(syms))
    return _as_set(cond, s)


def _as_set(cond: Boolean, s: sympy.Symbol) -> sympy.Set:
    if cond is sympy.true:
        return sympy.S.Reals
    if cond is sympy.false:
        return sympy.S.EmptySet
    # fold pairwise: sympy 1.14's n-ary Intersection can fail on several point sets
    if isinstance(cond, sympy.And):
        return functools.reduce(sympy.Intersection, (_as_set(a, s) for a in cond.args))
    if isinstance(cond, sympy.Or):
        return functools.reduce(sympy.Union, (_as_set(a, s) for a in cond.args))
    if isinstance(cond, sympy.Not):
        return sympy.Complement(sympy.S.Reals, _as_set(cond.args[0], s))
    if isinstance(cond, sympy.core.relational.Relational):
        diff = sympy.expand(cond.lhs - cond.rhs)
        b, a = diff.coeff(s), diff.subs(s, 0)
        if b.is_Rational and a.is_Rational and sympy.expand(diff - b * s - a) == 0:
            op = {sympy.Ge: ">=", sympy.Le: "<=", sympy.Gt: ">", sympy.Lt: "<",
                  sympy.Eq: "=="}.get(type(cond))
            if op is not None:
                return pwl.linear_set(b, a, op)
    return cond.as_set().intersect(sympy.S.Reals)


def decided(cond: Boolean) -> bool | None:
    """True/False when ``cond`` holds for every/no value of its symbols, else None."""
    got = condition_set(cond)
    if got == sympy.S.Reals:
        return True
    if got is sympy.S.EmptySet or got == sympy.S.EmptySet:
        return False
    return None


def fmt(expr: Exp | None) -> str:
    """An exponent in plain text: 1/2, 1 - s, Max(0, s - 1/2), ∞, − (no such term)."""
    if expr is None:
        return "−∞"
    if expr == sympy.oo:
        return "∞"
    if expr == -sympy.oo:
        return "−∞"
    text = str(expr)
    return text.replace("**", "^")


def npow(expr: Exp | None, base: str = "n") -> str:
    """``base`` to the power ``expr`` in plain text: n^2, n^1/2, n^-1/2, n^s, n^(s - 1),
    n^(-s - 1/2); a compound exponent is parenthesised, so a negated sum never reads as
    n^-1 - s."""
    text = fmt(expr)
    simple = expr is None or not isinstance(expr, sympy.Add | sympy.Mul | sympy.Max | sympy.Min)
    if isinstance(expr, sympy.Mul) and expr.as_coeff_Mul()[1].is_Symbol:
        simple = expr.as_coeff_Mul()[0] == -1  # -s stays n^-s; 2*s becomes n^(2*s)
    return f"{base}^{text}" if simple else f"{base}^({text})"


def fmt_set(got: sympy.Set | Boolean, name: str = "") -> str:
    """A condition set in words: "s ∈ [0, 1/2]", "s = 0", "always", "never"."""
    if got == sympy.S.Reals:
        return "always"
    if got == sympy.S.EmptySet:
        return "never"
    if isinstance(got, sympy.FiniteSet):
        vals = ", ".join(str(v) for v in got.args)
        return f"{name} = {vals}" if len(got.args) == 1 else f"{name} ∈ {{{vals}}}"
    if isinstance(got, sympy.Set):
        return f"{name} ∈ {_interval_text(got)}"
    return str(got)


def _interval_text(got: sympy.Set) -> str:
    if isinstance(got, sympy.Interval):
        lo = "(" if got.left_open else "["
        hi = ")" if got.right_open else "]"
        left = "−∞" if got.start == -sympy.oo else str(got.start)
        right = "∞" if got.end == sympy.oo else str(got.end)
        return f"{lo}{left}, {right}{hi}"
    if isinstance(got, sympy.Union):
        return " ∪ ".join(_interval_text(a) for a in got.args)
    if isinstance(got, sympy.FiniteSet):
        return "{" + ", ".join(str(v) for v in got.args) + "}"
    return str(got)
