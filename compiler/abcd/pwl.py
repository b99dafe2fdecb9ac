"""Exact piecewise-linear functions of one symbol, to keep symbolic exponents small.

The analyses combine exponents with +, numeric scaling, Max and Min. With one symbol s (``up:s``)
every such expression is a continuous piecewise-linear function of s with rational breakpoints,
but sympy's nested ``Max(0, -s + Max(0, -s + …))`` grows with the depth of the network. Each
exponent is therefore put in the canonical form

    f(s) = a + b·s + Σ_k δ_k · Max(0, s − t_k)        (t_1 < t_2 < …, δ_k the slope changes)

which has one term per breakpoint, and conditions f(s) op 0 are solved piece by piece into exact
sets of reals. Expressions with several symbols or infinities are left to sympy.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from functools import lru_cache

import sympy

Rat = sympy.Rational


@dataclass(frozen=True)
class PL:
    """Breakpoints t_1 < … < t_k and the (slope, intercept) of the k+1 pieces between them."""

    bps: tuple[sympy.Rational, ...]
    pieces: tuple[tuple[sympy.Rational, sympy.Rational], ...]

    def piece_at(self, x: sympy.Rational) -> tuple[sympy.Rational, sympy.Rational]:
        """The piece on the open interval containing ``x`` (x not a breakpoint)."""
        return self.pieces[bisect.bisect_right(self.bps, x)]

    @staticmethod
    def linear(slope: sympy.Rational, intercept: sympy.Rational) -> PL:
        return PL((), ((slope, intercept),))

    def scale(self, k: sympy.Rational) -> PL:
        return PL(self.bps, tuple((k * b, k * a) for b, a in self.pieces))

    def tidy(self) -> PL:
        """Drop breakpoints where the two neighbouring pieces agree."""
        bps, pieces = [], [self.pieces[0]]
        for t, p in zip(self.bps, self.pieces[1:], strict=True):
            if p != pieces[-1]:
                bps.append(t)
                pieces.append(p)
        return PL(tuple(bps), tuple(pieces))


def _cells(bps: list[sympy.Rational]) -> list[sympy.Rational]:
    """A point inside each open cell of the partition by ``bps``."""
    if not bps:
        return [Rat(0)]
    inner = [(a + b) / 2 for a, b in itertools.pairwise(bps)]
    return [bps[0] - 1, *inner, bps[-1] + 1]


def combine(fs: list[PL], op: str) -> PL:
    """Sum, Max or Min of piecewise-linear functions (op: "add", "max", "min")."""
    bps = sorted(set().union(*(f.bps for f in fs)))
    if op != "add":  # the pieces may cross inside a cell: add the crossings as breakpoints
        extra = set()
        for mid, (lo, hi) in zip(_cells(bps), _bounds(bps), strict=True):
            extra |= _all_crossings([f.piece_at(mid) for f in fs], lo, hi)
        bps = sorted(set(bps) | extra)
    pieces = []
    for mid in _cells(bps):
        lines = [f.piece_at(mid) for f in fs]
        if op == "add":
            pieces.append((sum(b for b, _ in lines), sum(a for _, a in lines)))
        else:
            pick = max if op == "max" else min
            pieces.append(pick(lines, key=lambda p: p[0] * mid + p[1]))
    return PL(tuple(bps), tuple(pieces)).tidy()


def _all_crossings(lines: list[tuple], lo: object, hi: object) -> set:
    out = set()
    for i, (b1, a1) in enumerate(lines):
        for b2, a2 in lines[i + 1:]:
            if b1 != b2:
                x = (a2 - a1) / (b1 - b2)
                if (lo is None or x > lo) and (hi is None or x < hi):
                    out.add(x)
    return out


def _bounds(bps: list[sympy.Rational]) -> list[tuple[object, object]]:
    edges = [None, *bps, None]
    return list(itertools.pairwise(edges))


def to_pl(expr: sympy.Expr, s: sympy.Symbol) -> PL | None:
    """``expr`` (built from s, rationals, +, numeric *, Max, Min) as a PL, or None."""
    if expr == s:
        return PL.linear(Rat(1), Rat(0))
    if expr.is_Rational:
        return PL.linear(Rat(0), expr)
    if isinstance(expr, sympy.Add | sympy.Max | sympy.Min):
        parts = [to_pl(a, s) for a in expr.args]
        if any(p is None for p in parts):
            return None
        op = {sympy.Add: "add", sympy.Max: "max", sympy.Min: "min"}[type(expr)]
        return combine(parts, op)  # type: ignore[arg-type]
    if isinstance(expr, sympy.Mul):
        coeff, rest = expr.as_coeff_Mul()
        inner = to_pl(rest, s) if coeff.is_Rational and rest != expr else None
        return None if inner is None else inner.scale(coeff)
    return None


def from_pl(f: PL, s: sympy.Symbol) -> sympy.Expr:
    """The canonical sympy form a + b·s + Σ δ_k Max(0, s − t_k)."""
    b0, a0 = f.pieces[0]
    out = a0 + b0 * s
    for t, (b_prev, _), (b, _) in zip(f.bps, f.pieces[:-1], f.pieces[1:], strict=True):
        out += (b - b_prev) * sympy.Max(0, s - t, evaluate=False)
    return out


@lru_cache(maxsize=65536)
def _cached_pl(expr: sympy.Expr, s: sympy.Symbol) -> PL | None:
    return to_pl(expr, s)


def _one_symbol(exprs: tuple[sympy.Expr, ...]) -> sympy.Symbol | None:
    syms = set().union(*(e.free_symbols for e in exprs))
    if len(syms) != 1 or any(e.has(sympy.oo, -sympy.oo) for e in exprs):
        return None
    return next(iter(syms))


def apply(op: str, *exprs: sympy.Expr) -> sympy.Expr:
    """Max, Min or sum of exponents ("max", "min", "add"), in canonical form when they are
    piecewise linear in one symbol (without building sympy's nested Max/Min first)."""
    s = _one_symbol(exprs)
    pls = None if s is None else [_cached_pl(e, s) for e in exprs]
    if pls is None or any(p is None for p in pls):
        return {"max": sympy.Max, "min": sympy.Min, "add": sympy.Add}[op](*exprs)
    return from_pl(combine(pls, op), s)  # type: ignore[arg-type]


def canonical(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` in canonical form when it is a piecewise-linear function of one symbol."""
    s = _one_symbol((expr,))
    if s is None or not expr.has(sympy.Max, sympy.Min):
        return expr
    f = _cached_pl(expr, s)
    return expr if f is None else from_pl(f, s)


def solve(expr: sympy.Expr, op: str, s: sympy.Symbol) -> sympy.Set | None:
    """The exact set {s : expr op 0}, or None when expr is not piecewise linear in s."""
    f = _cached_pl(expr, s)
    if f is None:
        return None
    out = sympy.S.EmptySet
    for (lo, hi), (b, a) in zip(_bounds(list(f.bps)), f.pieces, strict=True):
        cell = sympy.Interval(-sympy.oo if lo is None else lo, sympy.oo if hi is None else hi)
        out = sympy.Union(out, sympy.Intersection(cell, linear_set(b, a, op)))
    return out


def linear_set(b: sympy.Rational, a: sympy.Rational, op: str) -> sympy.Set:
    """{s : b·s + a op 0} for op in >=, <=, >, <, ==."""
    if op == "==":
        if b != 0:
            return sympy.FiniteSet(-a / b)
        return sympy.S.Reals if a == 0 else sympy.S.EmptySet
    if b == 0:
        holds = {">=": a >= 0, "<=": a <= 0, ">": a > 0, "<": a < 0}[op]
        return sympy.S.Reals if holds else sympy.S.EmptySet
    x, up = -a / b, (op in (">=", ">")) == (b > 0)
    strict = op in (">", "<")
    if up:
        return sympy.Interval(x, sympy.oo, left_open=strict)
    return sympy.Interval(-sympy.oo, x, right_open=strict)


def restrict(expr: sympy.Expr, s: sympy.Symbol, region: sympy.Set) -> sympy.Expr:
    """An expression equal to ``expr`` on the convex hull of ``region`` with only the pieces
    that meet it (``2*s - Max(0, s)`` on [0, 1/2] is ``s``); ``expr`` itself when it is not
    piecewise linear in s or the region is unbounded on both sides."""
    f = _cached_pl(expr, s) if expr.has(sympy.Max, sympy.Min) else None
    lo, hi = region.inf, region.sup
    if f is None or (lo == -sympy.oo and hi == sympy.oo):
        return expr
    if lo == hi:
        return expr.subs(s, lo)
    keep = [k for k, t in enumerate(f.bps) if lo < t < hi]
    first = bisect.bisect_right(f.bps, lo) if lo != -sympy.oo else 0
    bps = tuple(f.bps[k] for k in keep)
    pieces = f.pieces[first: first + len(bps) + 1]
    return from_pl(PL(bps, pieces).tidy(), s)
