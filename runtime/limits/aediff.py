"""The derivative of a ket formula that forward-mode tangents use (spec 01 §1.4 Dot, 05 §5.4).

A dot coefficient by the derivative rule is E[∂|x⟩/∂|Ĥ⟩], the particle mean of forward-mode
tangents: every formula ket on the way contributes ∂ψ/∂(own slot), evaluated at every particle.
Two points where sympy's derivative is not the one the limit needs:

* **Dirac deltas** are set to 0, the a.e. derivative: the lowering routes every coefficient whose
  path crosses one to Stein's lemma (:mod:`compiler.kets.lowering`), so those are never requested.
* **Radicals at a zero base.**  sympy differentiates u^p (0 < p < 1) as p·u^(p−1)·u′: at u = 0
  that is 0·∞ = NaN in floating point, although the derivative is finite wherever it exists.
  The case is not rare: a gradient is *exactly* 0 on a set of positive probability (relu′ = 0, an
  input coordinate 0), and Adam's m̂/(√v̂ + ε) then has m̂ = v̂ = 0, while ∂/∂g_s of it is
  (∂m̂/∂g_s)/ε — the √v̂ term is multiplied by m̂ = 0.  So the slope p·u^(p−1) is replaced by
  :func:`radical_slope`, equal to it where u > 0 and 0 where u = 0.  That value is exact wherever
  the derivative exists: a real radical's base is ≥ 0 around a point where ψ is defined, so u = 0
  is a minimum of u and of u^p ≥ 0, and a derivative at a minimum is 0; where u^p has a kink
  (√(a² + b²) at 0) 0 is the mean of its one-sided slopes, as sympy's |g|′ = sign(g) gives at 0,
  and a formula that is differentiable there through a vanishing factor (m̂·∂√v̂/∂g with m̂ = 0)
  gets its derivative exactly (the term is 0 · finite).  A negative power (1/√u) is a genuine pole
  and is left as it is: its NaN/Inf is reported by the evaluators' finiteness check.

The rewrite is symbolic (the radicals are held as :class:`_Radical` while sympy differentiates,
then restored), so the compiled numpy function and the pair kernel print the same formula.
"""

from __future__ import annotations

import sympy

from compiler.symbols import step


def radical_slope(u: sympy.Expr, p: sympy.Expr) -> sympy.Expr:
    """p·u^(p−1) for u > 0 and 0 for u = 0 (module doc), with no division by 0 at u = 0:
    step(0) = 0 (spec 02 §2.2), so the base max(u, 1 − step(u)) is u where u > 0 and 1 where
    u = 0.  Not u + 1 − step(u): evaluated as (u + 1) − 1 it rounds a small u to a multiple of
    2⁻⁵³ (relative error 1e-10 at u = 1e-6, and u = 0 below 2⁻⁵⁴)."""
    on = step(u)
    return p * on * sympy.Max(u, 1 - on) ** (p - 1)


class _Radical(sympy.Function):
    """u^p (0 < p < 1) held unevaluated while differentiating; its derivative in u is
    :func:`radical_slope`.  Real and ≥ 0, as the radical of a formula that is defined."""

    is_extended_real = True
    is_extended_nonnegative = True

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        if argindex != 1:  # the exponent is a number: sympy never asks for its derivative
            raise sympy.ArgumentIndexError(self, argindex)
        return radical_slope(*self.args)


def _is_radical(e: sympy.Basic, x: sympy.Symbol) -> bool:
    if not isinstance(e, sympy.Pow):
        return False
    p = e.exp
    return bool(p.is_Rational and 0 < p < 1 and e.base.has(x))


def formula_derivative(formula: sympy.Expr, x: sympy.Symbol) -> sympy.Expr:
    """∂formula/∂x with Dirac deltas 0 and radicals' slopes finite at a zero base (module doc)."""
    held = formula.replace(lambda e: _is_radical(e, x), lambda e: _Radical(e.base, e.exp))
    d = sympy.diff(held, x)
    d = d.replace(_Radical, lambda u, p: u**p)
    return d.replace(sympy.DiracDelta, lambda *a: sympy.Integer(0))
