"""How r and the exponent of Δf are reported (spec 03 §3.2, §3.3).

Rule: r is undefined when the features are not Θ(1) at init (they vanish, are identically 0 with
a zero-initialised input layer, or blow up: there is no Θ(1) feature whose change r measures).
Otherwise an exponent is only a meaningful number where the quantity does not blow up. Once it
does (r < 0: the features' changes grow with n; e(Δf) > 0, or r < 0, which makes every later
gradient and hence f blow up), each further update multiplies the growth, so the size after
"the first update(s)" depends on how many updates one counts: the calculus's repeated update
passes and the classifier's "readout at its trained size" give different, equally arbitrary
numbers (mlp2 SP+SGD: n^{3/2} vs n^6). Such a quantity is reported as *diverging*, with its exponent
after the very first update from initialisation as a lower bound when that is already positive
("grows at least like n^{1/2}"), else just "grows with n".

With one symbol, an exponent is a piecewise-linear function whose pieces outside the stable set
describe blow-ups (UP_s: r = 2s − Max(0, s) is s on s ≥ 0 and 2s, a meaningless multi-update
value, below); it is reported on the set where the parametrization is stable, simplified there
(r = s for s ∈ [0, 1/2]), which is exact on that set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy
from sympy.logic.boolalg import Boolean

from compiler.abcd import pwl
from compiler.abcd.conditions import Exp, condition_set, decided, fmt, fmt_set, npow, relation


@dataclass(frozen=True)
class Reported:
    """An exponent as the outputs show it: its value (exact on ``where``, all values of the
    symbol when None), or that it diverges (with a first-update lower bound when positive)."""

    value: Exp | None
    diverges: bool = False
    bound: Exp | None = None
    where: sympy.Set | None = None
    undefined: bool = False

    def text(self, symbols: str = "") -> str:
        if self.undefined:
            return "undefined (the features are not Θ(1) at initialisation)"
        if self.diverges:
            if self.bound is None:
                return "diverges (grows with n)"
            return f"diverges (grows at least like {npow(self.bound)} after the first update)"
        if self.where is None:
            return fmt(self.value)
        return f"{fmt(self.value)} for {fmt_set(self.where, symbols)} (where stable)"

    def json(self) -> Any:
        """A number, a formula string, or "diverges"."""
        from compiler.abcd.render import json_value

        if self.undefined:
            return "undefined"
        return "diverges" if self.diverges else json_value(self.value)

    def key(self) -> tuple[str, Exp | None]:
        """What two analyses must agree on: undefined, diverging, or the value."""
        if self.undefined or self.diverges:
            return ("undefined" if self.undefined else "diverges", None)
        return ("value", self.value)


def report(value: Exp | None, diverges: Boolean, stable: Boolean, bound: Exp | None,
           features_init: Boolean = sympy.true) -> Reported:
    """``value`` as reported, given where it diverges, where the parametrization is stable, its
    exponent after the first update and whether the features are Θ(1) at init (if they are not,
    nothing is Θ(1) to change and r is undefined; see the module docstring)."""
    if decided(features_init) is False:
        return Reported(None, undefined=True)
    if decided(diverges) is True:
        grows = bound is not None and decided(relation(bound, ">", 0)) is True
        return Reported(None, True, bound if grows else None)
    if value is None or len(value.free_symbols) != 1:
        return Reported(value)
    region = condition_set(stable)
    if not isinstance(region, sympy.Set) or region in (sympy.S.Reals, sympy.S.EmptySet):
        return Reported(value)
    simpler = pwl.restrict(value, next(iter(value.free_symbols)), region)
    return Reported(value) if simpler == value else Reported(simpler, where=region)


def on_set(value: Exp | None, stable: Boolean) -> Exp | None:
    """``value`` simplified on the stable set (exact there), for lists of exponents."""
    got = report(value, sympy.false, stable, None)
    return got.value
