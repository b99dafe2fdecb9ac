"""Size rules of the calculus: exponents of formulas and the mean-zero (parity) test (03 §3.3).

A :class:`Sized` value carries two exponents: ``e0``, the size of its entries at initialisation
(Θ(n^{e0})), and ``ed``, the size of its change after the first update(s); ``None`` means
identically zero (an input never changes, ``bias = 0`` at init, b = ∞ or a frozen tensor
with c = ∞: an exponent −∞ is normalised to None). The rules for a formula ψ, from
the sizes of its arguments (derived here, 03 §3.3 "size calculus"):

* sums: the largest term (cancellations are not assumed);
* products: exponents add; Δ(uv) = Δu·(v+Δv) + u·Δv;
* u^k: k·e0; Δ(u^k) ≈ k u^{k−1}Δu when Δu ≪ u, and the size of the larger end otherwise:
  (k−1)·max(e0, ed) + ed for k > 0, (k−1)·e0 + min(ed, e0) for k < 0;
* the width n has exponent 1 (SP attention's n^{1/2}·avg(q·k));
* functions by shape: relu, abs, id are homogeneous (the argument's size); tanh, erf, sin are
  O(min(size, 1)); sigmoid, cos are Θ(1) with changes O(min(Δ, 1)); exp and softplus are Θ(1)
  for O(1) arguments and blow up with them; step and sign are Θ(1), their change has the relative
  size of the argument's change (the fraction of coordinates that flip); log changes by Δu/u.

A vector's ket has mean zero when the vector is odd under a sign flip of random vectors and
matrices (the law is symmetric, so E|x⟩ = −E|x⟩): e.g. o = v ⊙ x is odd in v, q·k is odd in W_q.
Then an average of it is n^{-1/2} smaller than its entries (CLT), and so is f_0 (03 §3.3: "over a
mean-zero one at init: −e_out + ½ + e"). The parities come from the one sign-flip analysis,
:mod:`compiler.kets.parity` (which also says why a random scalar is not flipped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import sympy

from compiler.abcd.conditions import Exp
from compiler.abcd.pwl import apply
from compiler.symbols import WIDTH

Size: TypeAlias = Exp | None


def _zero(x: Size) -> bool:
    """An exponent −∞ (an infinite a+b or a+c: zero init, a frozen tensor) is an exact zero."""
    return x is None or x == -sympy.oo


def emax(*xs: Size) -> Size:
    """The size of a sum: the largest exponent (None, an exact zero, is ignored)."""
    vals = [sympy.sympify(x) for x in xs if not _zero(x)]
    return apply("max", *vals) if vals else None


def emin(*xs: Size) -> Size:
    return None if any(_zero(x) for x in xs) else apply("min", *map(sympy.sympify, xs))


def eadd(*xs: Size) -> Size:
    """The size of a product: exponents add (a zero factor makes it zero)."""
    return None if any(_zero(x) for x in xs) else apply("add", *map(sympy.sympify, xs))


@dataclass(frozen=True)
class Sized:
    """Exponents of a value at init (e0) and of its change (ed); None = identically zero."""

    e0: Size
    ed: Size = None

    @property
    def e1(self) -> Size:
        """The size after the update: max(e0, ed)."""
        return emax(self.e0, self.ed)


ZERO = Sized(None, None)
ONE = Sized(sympy.S.Zero, None)
_HOMOGENEOUS = {"relu", "Abs", "id"}
_BOUNDED_ODD = {"tanh", "erf", "sin", "atan", "asinh"}
_BOUNDED = {"sigmoid", "cos"}
_STEPS = {"step", "sign", "Heaviside"}
_GROWING = {"exp", "softplus", "cosh", "sinh"}


class FormulaSizes:
    """Sizes of the sub-expressions of formulas, given the sizes of their symbols."""

    def __init__(self, lookup: Callable[[sympy.Symbol], Sized]) -> None:
        self.lookup = lookup
        self.memo: dict[sympy.Expr, Sized] = {}
        self.arguments: dict[sympy.Expr, tuple[str, Sized]] = {}
        """Arguments of non-homogeneous functions met so far (a saturating or exploding
        function hides a blown-up pre-activation: tanh(n^{1/2}) = Θ(1))."""

    def __call__(self, expr: sympy.Expr) -> Sized:
        got = self.memo.get(expr)
        if got is None:
            got = self.memo[expr] = self._size(expr)
        return got

    def _size(self, e: sympy.Expr) -> Sized:
        if e == WIDTH:
            return Sized(sympy.S.One)
        if isinstance(e, sympy.Symbol):
            return self.lookup(e)
        if e.is_number:
            return ZERO if e == 0 else ONE
        if isinstance(e, sympy.Add):
            parts = [self(a) for a in e.args]
            return Sized(emax(*(p.e0 for p in parts)), emax(*(p.ed for p in parts)))
        if isinstance(e, sympy.Mul):
            acc = ONE
            for a in e.args:
                acc = _times(acc, self(a))
            return acc
        if isinstance(e, sympy.Pow):
            return self._power(e)
        if isinstance(e, sympy.Function) and len(e.args) == 1:
            name, arg = type(e).__name__, self(e.args[0])
            if name not in _HOMOGENEOUS:
                self.arguments[e.args[0]] = (name, arg)
            return _function(name, arg)
        parts = [self(a) for a in e.args]  # anything else: as large as its largest argument
        return Sized(emax(sympy.S.Zero, *(p.e0 for p in parts)), emax(*(p.ed for p in parts)))

    def _power(self, e: sympy.Pow) -> Sized:
        base, k = e.args
        if base == WIDTH:
            return Sized(sympy.sympify(k))
        u = self(base)
        if not k.is_number:
            return Sized(emax(sympy.S.Zero, u.e0), u.ed)
        if k == 0 or (u.e0 is None and k < 0):
            return ONE
        e0 = None if u.e0 is None else k * u.e0
        if u.ed is None:
            return Sized(e0)
        if k > 0:
            return Sized(e0, eadd((k - 1) * u.e1, u.ed))
        return Sized(e0, eadd((k - 1) * u.e0, emin(u.ed, u.e0)))


def _times(u: Sized, v: Sized) -> Sized:
    return Sized(eadd(u.e0, v.e0), emax(eadd(u.ed, v.e1), eadd(u.e0, v.ed)))


def _function(name: str, u: Sized) -> Sized:
    zero = sympy.S.Zero
    if name in _HOMOGENEOUS:
        return u
    if name in _BOUNDED_ODD:
        return Sized(emin(u.e0, zero), emin(u.ed, zero))
    if name in _BOUNDED:
        return Sized(zero, emin(u.ed, zero))
    if name in _STEPS:
        if u.ed is None:
            return Sized(None if u.e0 is None else zero)
        rel = zero if u.e0 is None else emin(u.ed - u.e0, zero)
        return Sized(None if u.e0 is None else zero, rel)
    if name in _GROWING:
        e0 = emax(u.e0, zero)
        return Sized(e0, eadd(u.ed, emax(u.e1, zero)) if name == "exp" else u.ed)
    if name == "log":
        return Sized(zero, u.ed if u.e0 is None else eadd(u.ed, -u.e0))
    return Sized(emax(u.e0, zero), u.ed)  # unknown: no smaller than its argument, O(1) at 0
