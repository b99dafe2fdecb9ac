"""The abcd symmetry (spec 03 §3.1, Prop. 2.2.3).

For any real θ, per tensor, (a, b, c, d) → (a+θ, b−θ, c−θ, d+θ) leaves the network's function at
every step and every width unchanged. The invariants are A = a+b (entries of P_0 are Θ(n^{-A})),
C = a+c (the learning-rate scale P sees) and D = d−a (the gradient multiplier P sees); the
canonical representative has a = 0, i.e. (0, A, C, D). Two parametrizations of the same
architecture are the same iff their output multipliers and every tensor's (A, C, D) agree.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy

from compiler.abcd.conditions import Exp
from compiler.abcd.param import Exponents, Parametrization


def invariants(e: Exponents) -> tuple[Exp, Exp, Exp]:
    """(A, C, D) = (a+b, a+c, d−a)."""
    return (e.A, e.C, e.D)


def canonical(e: Exponents) -> Exponents:
    """The representative with a = 0: (0, A, C, D)."""
    return e.shifted(-e.a)


def shift(p: Parametrization, thetas: Mapping[str, Exp]) -> Parametrization:
    """``p`` with the tensors named in ``thetas`` shifted by their θ (an equivalent
    parametrization)."""
    return p.with_exponents({g: p[g].shifted(t) for g, t in thetas.items()})


def canonical_form(p: Parametrization) -> Parametrization:
    """Every tensor in canonical form (a = 0)."""
    return p.with_exponents({g: canonical(p[g]) for g in p}, name=f"{p.name} (canonical)")


def same(e: Exponents, f: Exponents) -> bool:
    """Whether two rows are equal modulo the symmetry."""
    pairs = zip(invariants(e), invariants(f), strict=True)
    return all(_equal(x, y) for x, y in pairs)


def _equal(x: Exp, y: Exp) -> bool:
    # A = ∞ (zero init) or C = ∞ (frozen) on both sides: equal, though ∞ − ∞ is undefined
    return x == y or (not x.has(sympy.oo) and not y.has(sympy.oo) and sympy.simplify(x - y) == 0)


def equivalent(p: Parametrization, q: Parametrization) -> bool:
    """Whether two parametrizations of the same architecture are equal modulo the symmetry."""
    if set(p) != set(q) or not _equal(p.e_out, q.e_out):
        return False
    return all(same(p[g], q[g]) for g in p)
