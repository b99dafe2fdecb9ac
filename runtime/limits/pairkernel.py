"""Pair sums from the ψ formula: separable terms as window sums, the rest by the fastest pass.

A copy average (spec 01 §1.4, §1.6; the pair layout of :mod:`runtime.limits.outer`) costs
O(P·span) ψ evaluations per replica and column.  When ψ is known symbolically two rewrites apply:

* **Separable terms.** After ``sympy.expand`` ψ = Σ_k f_k(own)·g_k(copy¹)·h_k(copy²) + rest, where
  each f_k reads only the own particle's kets and scalars, g_k only copy 1 (and scalars), h_k only
  copy 2.  For such a term the pair sum factors (the "matrix product" of a rank-K ψ):

      order 1:  Σ_{i=1..span} ψ(p; p+i)          = Σ_k f_k(p) · Σ_{i=1..span} g_k(p+i)
      order 2:  Σ_{s≤S} Σ_{i≤span−s} ψ(p; p+i; p+i+s) = Σ_k f_k(p) · Σ_s Σ_i g_k(p+i) h_k(p+i+s)

  and each inner sum is a cyclic window sum of one sequence, read off a cumulative sum in O(P):
  O(P) instead of O(P·span) per term (O(S·P) for order 2).  It is the same average over the same
  pairs, so it is exact up to rounding (tests/test_pairkernel.py: 1e-12 relative against the
  pair-by-pair pass).  The cumulative sum is of the *centred* sequence (the window's mean times
  its width is added back) so that its rounding is that of a random walk of O(σ√P), not of the
  running total O(|mean|·P).
* **The rest** (terms with a factor that mixes the own particle and a copy, e.g. tanh(c + u·x[b])),
  pair by pair: by the compiled kernel of :mod:`runtime.limits.pairkernel_numba` (numba, fused ψ,
  no temporaries) when it is importable and the pass is large enough to repay its compilation,
  else by the numpy pass :func:`runtime.limits.outer.copy_average_joint`.

Every output is split on its own (never jointly with the other outputs) so that its value does
not depend on which other outputs a caller requested — the demand contract of
:mod:`runtime.limits.montecarlo` (bit-identical requested subsets).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy

from runtime.codegen import compile_formula
from runtime.limits import outer
from runtime.limits.outer import Arg

ENABLED = True
"""Use the rewrites (tests and bench/bench_pairsum.py switch them off to compare with the numpy
pass, which ``joint`` then computes alone)."""
SPLIT_MAX_OPS = 400
"""ψ larger than this (sympy operation count) is not expanded: expansion cost and term blow-up."""
SPLIT_MAX_TERMS = 256
"""An expansion into more terms than this is not used (the pair pass is cheaper to keep)."""
NUMBA_MIN_PAIRS = 1 << 25
"""ψ evaluations (P·span·columns) from which the numba kernel is used.  Measured
(bench/bench_pairsum.py, loaded 2-core machine): a kernel saves ~4e-8 s per tanh pair against the
numpy pass (19.5 → 96 M pairs/s), and costs ~1.5 s to load from the disk cache in a new process,
~5 s to compile a new ψ: 2^25 ≈ 3.4e7 pairs is the break-even of a cached kernel."""


@dataclass(frozen=True)
class PairFormulas:
    """ψ outputs over ``symbols`` (one per :class:`Arg`, in argument order).  ``shared``: common
    subexpressions (symbol, expression) that the outputs may read, in order (a fused group's
    ``sympy.cse``, fixed by the whole program, so that every output is computed by the same
    operations whichever other outputs are requested)."""

    symbols: tuple[sympy.Symbol, ...]
    outputs: tuple[sympy.Expr, ...]
    shared: tuple[tuple[sympy.Symbol, sympy.Expr], ...] = ()

    def full(self, k: int) -> sympy.Expr:
        """Output k with the shared subexpressions substituted back."""
        e = self.outputs[k]
        for sym, val in reversed(self.shared):
            e = e.xreplace({sym: val})
        return e


Term = tuple[sympy.Expr, tuple[sympy.Expr, ...]]
"""(f over own and scalars, (g over copy 1, h over copy 2 …)): one separable product."""


@dataclass(frozen=True)
class Split:
    """ψ = Σ terms + rest (rest 0 when ψ is separable)."""

    terms: tuple[Term, ...]
    rest: sympy.Expr


def roles(args: Sequence[Arg]) -> tuple[int, ...]:
    """Per argument: 0 own or scalar (read at the own particle's side), k ≥ 1 copy k."""
    return tuple(a.copy if (a.vector and a.copy is not None) else 0 for a in args)


@lru_cache(maxsize=1024)
def split(expr: sympy.Expr, symbols: tuple[sympy.Symbol, ...], role: tuple[int, ...],
          order: int) -> Split:
    """Separable terms of ψ (grouped by their copy factors) and the rest (module docstring)."""
    where = dict(zip(symbols, role, strict=True))
    if not any(where.get(s, 0) for s in expr.free_symbols):
        return Split(((expr, (sympy.Integer(1),) * order),), sympy.Integer(0))
    if sympy.count_ops(expr) > SPLIT_MAX_OPS:
        return Split((), expr)
    expanded = sympy.expand(expr, deep=False, power_exp=False, log=False)
    addends = sympy.Add.make_args(expanded)
    if len(addends) > SPLIT_MAX_TERMS:
        return Split((), expr)
    by_copy: dict[tuple[sympy.Expr, ...], list[sympy.Expr]] = {}
    rest: list[sympy.Expr] = []
    for term in addends:
        parts = _factor_by_side(term, where, order)
        if parts is None:
            rest.append(term)
        else:
            by_copy.setdefault(parts[1:], []).append(parts[0])
    if not by_copy:
        return Split((), expr)
    terms = tuple((sympy.Add(*own), copies) for copies, own in by_copy.items())
    return Split(terms, sympy.Add(*rest))


def _factor_by_side(
    term: sympy.Expr, where: dict[sympy.Symbol, int], order: int
) -> tuple[sympy.Expr, ...] | None:
    """(own part, copy-1 part, …) of a product, or None if a factor mixes two sides."""
    parts: list[list[sympy.Expr]] = [[] for _ in range(order + 1)]
    for f in sympy.Mul.make_args(term):
        sides = {where.get(s, 0) for s in f.free_symbols}
        if len(sides) > 1:
            return None
        parts[sides.pop() if sides else 0].append(f)
    return tuple(sympy.Mul(*p) for p in parts)


def numba_enabled() -> bool:
    """The numba kernel may be used: not switched off by NEXORT_NUMBA=0 and importable."""
    if os.environ.get("NEXORT_NUMBA", "1") == "0":
        return False
    from runtime.limits import pairkernel_numba

    return pairkernel_numba.available()


def pair_average(
    formulas: PairFormulas,
    args: Sequence[Arg],
    order: int,
    pool: float = 96,
    span: int | None = None,
    tick: Callable[[float], None] | None = None,
    joint: Callable[..., Sequence[np.ndarray]] | None = None,
) -> list[np.ndarray]:
    """:func:`runtime.limits.outer.copy_average_joint` of the ψ outputs in ``formulas``: the
    separable terms by window sums, the rest pair by pair (module docstring).  ``joint``: the
    caller's numpy function of all outputs, used unchanged when no output has a separable term
    and the numpy pass is chosen (so that path is the one measured before)."""
    if not ENABLED and joint is not None:
        return outer.copy_average_joint(
            joint, len(formulas.outputs), args, order, pool, span, tick=tick
        )
    n_own = next(a.array.shape[0] for a in args if a.vector)
    span_ = n_own - 1 if span is None else min(span, n_own - 1)
    outer.check_order(order, span_)
    cols = outer.columns(args)
    role = roles(args)
    splits = [split(formulas.full(k), formulas.symbols, role, order)
              for k in range(len(formulas.outputs))]
    rest = [k for k, s in enumerate(splits) if s.rest != 0]
    pairs = n_own * span_ * int(np.prod(cols))
    use_numba = bool(rest) and pairs >= NUMBA_MIN_PAIRS and numba_enabled()
    if not use_numba and joint is not None and all(not s.terms for s in splits):
        return outer.copy_average_joint(
            joint, len(splits), args, order, pool, span, tick=tick
        )
    outs = [np.zeros((n_own, *cols)) for _ in splits]
    if rest:
        rest_formulas = _rest_formulas(formulas, splits, rest)
        if use_numba:
            from runtime.limits import pairkernel_numba

            try:
                got = pairkernel_numba.copy_average(rest_formulas, args, order, pool, span_, tick)
            except pairkernel_numba.UnsupportedError:
                use_numba = False
        if not use_numba:
            fns = [compile_formula(rest_formulas.full(j), formulas.symbols)
                   for j in range(len(rest))]
            got = outer.copy_average([lambda *a, f=f: f(*a, np.inf) for f in fns], args, order,
                                     pool, span_, tick=tick)
        for k, y in zip(rest, got, strict=True):
            outs[k] += y
    windows = _Windows(args, formulas.symbols, order, span_, pool, cols)
    for k, s in enumerate(splits):
        for own, copies in s.terms:
            outs[k] += windows.own(own) * windows.average(copies)
    return outs


def _rest_formulas(formulas: PairFormulas, splits: list[Split], rest: list[int]) -> PairFormulas:
    """The non-separable outputs: an output that was not split keeps its shared form (the fused
    group's subexpressions stay shared), a split one is the rest of its expansion."""
    return PairFormulas(
        formulas.symbols,
        tuple(splits[k].rest if splits[k].terms else formulas.outputs[k] for k in rest),
        formulas.shared,
    )


class _Windows:
    """Own factors and window averages of copy factors on the particles (module docstring)."""

    def __init__(self, args: Sequence[Arg], symbols: tuple[sympy.Symbol, ...], order: int,
                 span: int, pool: float, cols: tuple[int, ...]) -> None:
        self.arrays = [a.array for a in args]
        self.symbols, self.order, self.span, self.cols = symbols, order, span, cols
        self.n = next(a.array.shape[0] for a in args if a.vector)
        self.shifts = outer.shifts(order, span, pool)
        self.norm = outer.pairs_per_own(order, span, pool)
        self.cache: dict[tuple[sympy.Expr, ...], np.ndarray] = {}

    def _eval(self, e: sympy.Expr) -> np.ndarray:
        value = compile_formula(e, self.symbols)(*self.arrays, np.inf)
        return np.broadcast_to(np.asarray(value, dtype=np.float64), (self.n, *self.cols))

    def own(self, e: sympy.Expr) -> np.ndarray:
        return self._eval(e)

    def average(self, copies: tuple[sympy.Expr, ...]) -> np.ndarray:
        """1/pairs Σ over the own particle's pairs of Π_k (copy factor k at copy k)."""
        if copies not in self.cache:
            g = self._eval(copies[0])
            if self.order == 1:
                total = _window_sum(g, 1, self.span)
            else:
                h = self._eval(copies[1])
                total = sum(
                    (_window_sum(g * np.roll(h, -s, axis=0), 1, self.span - s)
                     for s in range(1, self.shifts + 1)),
                    np.zeros_like(g),
                )
            self.cache[copies] = total / self.norm
        return self.cache[copies]


def _window_sum(t: np.ndarray, lo: int, width: int) -> np.ndarray:
    """w(p) = Σ_{j=lo..lo+width−1} t((p + j) mod P) along axis 0, from a cumulative sum of the
    centred sequence (rounding of a random walk, module docstring)."""
    n = t.shape[0]
    mean = t.mean(axis=0)
    centred = t - mean
    reach = lo + width  # ≤ span + 1 ≤ P
    ext = np.concatenate([centred, centred[:reach]], axis=0)
    cs = np.zeros((len(ext) + 1, *t.shape[1:]))
    np.cumsum(ext, axis=0, out=cs[1:])
    return cs[reach : reach + n] - cs[lo : lo + n] + width * mean
