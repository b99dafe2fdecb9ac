"""Dimension reduction before quadrature (spec 01 §1.4 Avg, §1.6): integrate over the span of
the Gaussian arguments, not over the leaves the file happens to name.

An integrand composed by :mod:`runtime.limits.quadgrid` is a sympy expression in leaf symbols ℓ_k,
each an affine form of independent standard normals.  Two rules shrink the Gaussian dimension
of an expectation without changing its value:

* **collapse**: an affine combination of several leaves, c·ℓ + b, is itself one Gaussian; it
  becomes one new leaf (``x1 = relu(U . xi)`` over ten kets |U_j⟩ is a 1-dimensional integral,
  exactly like ``h1 = U . xi`` then ``x1 = relu(h1)``);
* **trig products to sums**: Π cos(a_k) and its sines are sums of cos/sin of sums of
  the a_k (``TR8``), each again one Gaussian after collapsing: E[Π_s cos(e_s)] over S
  correlated e_s is 2^(S−1) one-dimensional integrals;
* **split**: E is linear, so a sum of terms is integrated term by term, each over the span of
  its own leaves — E[(Σ_s erf(4e_s))²] over S correlated e_s is a sum of S² integrals of
  dimension ≤ 2, where a single S-dimensional tensor rule is neither cheap nor accurate.  Terms
  on the same leaves (or a subset of another term's leaves) share one integral.  Splitting is
  used only when the whole integrand spans more than two dimensions (up to two, the rules are
  exact already) and the expansion has at most ``MAX_TERMS`` terms.
"""

from __future__ import annotations

import math
from itertools import product
from typing import TYPE_CHECKING, cast

import numpy as np
import sympy
from sympy.simplify.fu import TR8

if TYPE_CHECKING:
    from runtime.limits.quadrature import Lin

MAX_TERMS = 1024
EXACT_RANK = 2  # the piecewise rules are exact up to this many dimensions


def collapse(expr: sympy.Expr, leaves: dict[sympy.Symbol, Lin], dim: int) -> sympy.Expr:
    """``expr`` with every affine combination of two or more leaves replaced by one new leaf
    (added to ``leaves``; equal forms share a symbol)."""
    from runtime.limits.quadrature import Lin

    forms = {s: (lf.padded(dim), lf.const) for s, lf in leaves.items()}
    known = {_key(*f): s for s, f in forms.items()}
    memo: dict[sympy.Basic, sympy.Basic] = {}

    def leaf(coef: np.ndarray, const: float) -> sympy.Symbol:
        key = _key(coef, const)
        if key not in known:
            sym = sympy.Symbol(f"ℓ{len(leaves)}", real=True)
            leaves[sym], forms[sym], known[key] = Lin(coef, const), (coef, const), sym
        return known[key]

    def walk(e: sympy.Basic) -> sympy.Basic:
        if not e.args or e in forms:
            return e
        if e not in memo:
            args = [walk(a) for a in e.args]
            if isinstance(e, sympy.Add):
                lin = [(a, _affine(a, forms, dim)) for a in args]
                parts = [f for a, f in lin if f is not None and f[0].any()]
                if len(parts) >= 2:
                    coef = np.sum([f[0] for f in parts], axis=0)
                    const = sum(f[1] for a, f in lin if f is not None)
                    rest = [a for a, f in lin if f is None]
                    memo[e] = sympy.Add(leaf(coef, const), *rest)
                    return memo[e]
            memo[e] = e.func(*args)
        return memo[e]

    return cast(sympy.Expr, walk(expr))


def _key(coef: np.ndarray, const: float) -> tuple[bytes, float]:
    return np.trim_zeros(coef, "b").tobytes(), const


def _affine(
    e: sympy.Basic, forms: dict[sympy.Symbol, tuple[np.ndarray, float]], dim: int
) -> tuple[np.ndarray, float] | None:
    """``e`` as (coef, const) when it is a number, a leaf or number × leaf; else None."""
    if e.is_Number:
        return np.zeros(dim), float(cast(sympy.Expr, e))
    if e in forms:
        return forms[cast(sympy.Symbol, e)]
    if isinstance(e, sympy.Mul) and len(e.args) == 2:
        c, x = e.args
        if c.is_Number and x in forms:
            coef, const = forms[cast(sympy.Symbol, x)]
            k = float(cast(sympy.Expr, c))
            return k * coef, k * const
    return None


def split_terms(expr: sympy.Expr, leaves: dict[sympy.Symbol, Lin], dim: int) -> list[sympy.Expr]:
    """``expr`` as a sum of parts, each to be integrated over its own leaves' span: ``[expr]``
    when that spans at most two dimensions or the expansion would be too large."""
    syms = expr.free_symbols & set(leaves)
    if _rank([leaves[s].padded(dim) for s in syms]) <= EXACT_RANK:
        return [expr]
    if _trig_products(expr):
        expr = collapse(cast(sympy.Expr, TR8(expr)), leaves, dim)
        syms = expr.free_symbols & set(leaves)
    if _count(expr) > MAX_TERMS:
        return [expr]
    buckets: dict[frozenset[sympy.Basic], list[sympy.Expr]] = {}
    for term in _distribute(expr):
        buckets.setdefault(frozenset(term.free_symbols & syms), []).append(term)
    merged: list[tuple[frozenset[sympy.Basic], list[sympy.Expr]]] = []
    for key in sorted(buckets, key=len, reverse=True):
        home = next((m for m in merged if key <= m[0]), None)
        if home is None:
            merged.append((key, list(buckets[key])))
        else:
            home[1].extend(buckets[key])
    return [cast(sympy.Expr, sympy.Add(*terms)) for _, terms in merged]


def _trig_products(expr: sympy.Expr) -> bool:
    """Whether ``expr`` multiplies sines and cosines whose sum-of-angles form (at most
    2^(k−1) terms for k factors) is small enough to build."""
    k = sum(1 for e in sympy.preorder_traversal(expr) if isinstance(e, sympy.sin | sympy.cos))
    return k >= 2 and 2 ** (k - 1) <= MAX_TERMS // 8


def _rank(rows: list[np.ndarray]) -> int:
    if not rows:
        return 0
    s = np.linalg.svd(np.stack(rows), compute_uv=False)
    return int(np.sum(s > 1e-10 * max(s[0], 1e-300)))


def _count(e: sympy.Basic) -> int:
    """How many terms :func:`_distribute` gives (without building them)."""
    if isinstance(e, sympy.Add):
        return sum(_count(a) for a in e.args)
    if isinstance(e, sympy.Mul):
        return math.prod(_count(a) for a in e.args)
    if _int_power(e):
        base, n = e.args
        return int(_count(base) ** int(n))
    return 1


def _int_power(e: sympy.Basic) -> bool:
    return isinstance(e, sympy.Pow) and e.args[1].is_Integer and 2 <= int(e.args[1]) <= 8


def _distribute(e: sympy.Basic) -> list[sympy.Expr]:
    """The terms of ``e`` with products and small integer powers of sums multiplied out (the
    arguments of functions are left alone)."""
    if isinstance(e, sympy.Add):
        return [t for a in e.args for t in _distribute(a)]
    if isinstance(e, sympy.Mul):
        return [cast(sympy.Expr, sympy.Mul(*c)) for c in product(*map(_distribute, e.args))]
    if _int_power(e):
        base, n = e.args
        terms = _distribute(base)
        return [cast(sympy.Expr, sympy.Mul(*c)) for c in product(terms, repeat=int(n))]
    return [cast(sympy.Expr, e)]
