"""The class of an update function, derived from its formulas (04 §4.1, 03 §3.1).

The properties are those of the map from gradient histories to the shaped update,
(g_0, …, g_t) ↦ Q̃_t, of one tensor, and they are read off by running the optimizer's own formulas
(:func:`compiler.train.optimizers.run`) in 60-digit mpmath arithmetic on random histories, so a
user formula is classified exactly like a built-in:

* memoryless: Q̃_t does not change when g_0 … g_{t−1} do; stationary: memoryless and the same
  function at every t;
* linear: Q̃_t(aG + bH) = aQ̃_t(G) + bQ̃_t(H) (sgd, momentum);
* homogeneous of degree k: Q̃_t(λG) = λ^k Q̃_t(G) for λ > 0; degree 0 is *scale invariant*
  (signsgd, adam/rmsprop/adagrad with ε = 0, anything normalized), degree 1 *scale covariant*;
* the degrees of the small and the large scale, k₀ and k_∞: the slope of log|Q̃_t(λG)| against
  log λ at λ = 10^{∓40}. *Adaptive* means not homogeneous with k₀ = 1 and k_∞ = 0: linear near 0
  and sign-like at infinity (ε > 0, clipped SGD).

The abcd analysis (03 §3.1, :mod:`compiler.abcd.classify`) needs only how Q treats a gradient
whose scale is off (the "d" exponent is not the faithful d*); any Q outside these has no class:

* ``linear`` ⇔ degree 1 (sgd, momentum): Q(n^d g) = n^d Q(g), so d folds into the learning rate
  (Rem. 2.2.4: the abc-parametrization with c_abc = c − d); faithfulness is automatic and the
  analysis uses c − d + d*. The readout may outgrow its initialisation (b_{L+1} > c_{L+1}): the
  gradients then scale with its larger size b' = min(b, c') (Yang & Hu's abc classification).
* ``scale_invariant`` ⇔ degree 0: Q(n^d g) = Q(g), d is irrelevant (Rem. 2.2.6), c unchanged.
* ``adaptive`` as above: the d exponents must be the faithful ones (03 §3.2 item 2) and the
  readout must not outgrow its initialisation (void for a zero readout, whose hidden gradients
  are 0 at step 0 and Q(0) = 0). Otherwise an input of size n^q is linearised for q < 0 and
  saturates for q > 0: Q's output has exponent min(q, 0), an effective c' = c + max(d* − d, 0).
The numbers compared are far apart (relative differences below 10⁻³⁰ count as equal; an ε as
small as 10⁻⁴⁰ is beyond the probes), and the random histories are fixed, so a derivation is
reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import mpmath
import numpy as np

from compiler.train.optimizers import Functions, Optimizer, lambdas, run

QClass = Literal["linear", "scale_invariant", "adaptive"]

_DPS, _STEPS, _ENTRIES = 60, 4, 3
_TOL = mpmath.mpf(10) ** -30
_FAR = mpmath.mpf(10) ** 40


@dataclass(frozen=True)
class OptimizerClass:
    memoryless: bool
    stationary: bool
    linear: bool
    degree: Fraction | None  # the homogeneity degree, None when Q̃ is not homogeneous
    small_degree: Fraction | None  # k₀, the degree of the leading behaviour as λ → 0
    large_degree: Fraction | None  # k_∞, as λ → ∞

    @property
    def scale_invariant(self) -> bool:
        return self.degree == 0

    @property
    def adaptive(self) -> bool:
        return self.degree is None and self.small_degree == 1 and self.large_degree == 0

    @property
    def qclass(self) -> QClass | None:
        if self.degree == 1:
            return "linear"
        if self.scale_invariant:
            return "scale_invariant"
        return "adaptive" if self.adaptive else None

    def summary(self) -> str:
        if self.degree is not None:
            return f"Q is homogeneous of degree {self.degree}"
        return (f"Q is not homogeneous; its small-scale degree is {_show(self.small_degree)} "
                f"and its large-scale degree {_show(self.large_degree)}")


def _show(k: Fraction | None) -> str:
    return "undefined" if k is None else str(k)


def derive(opt: Optimizer) -> OptimizerClass:
    with mpmath.workdps(_DPS):
        q = _Probe(opt)
        rng = random.Random(11)
        hs = [q.history(rng) for _ in range(2)]
        memoryless = all(q.same(q(h)[-_ENTRIES:], q(q.rewrite_past(h, rng))[-_ENTRIES:])
                         for h in hs)
        stationary = memoryless and all(q.same(_steps(q(q.repeat_last(h))), _steps(q(h))[-1:]
                                               * _STEPS) for h in hs)
        linear = _linear(q, [q.history(rng) for _ in range(4)])
        degree = _common([q.degree(h, lam) for h in hs for lam in (mpmath.mpf(2) ** 7,
                                                                     mpmath.mpf(2) ** -5)])
        small = _common([q.local_degree(h, 1 / _FAR) for h in hs])
        large = _common([q.local_degree(h, _FAR) for h in hs])
    return OptimizerClass(memoryless, stationary, linear, degree, small, large)


def _linear(q: _Probe, hs: list[np.ndarray]) -> bool:
    """Additive and odd on random pairs of histories with mixed signs."""
    a, b = mpmath.mpf(3) / 7, -mpmath.mpf(5) / 3
    pairs = [(hs[0], hs[1]), (hs[2], hs[3]), (hs[1], -hs[2])]
    return all(q.same(q(a * h1 + b * h2), [a * x + b * y for x, y in
                                          zip(q(h1), q(h2), strict=True)]) for h1, h2 in pairs)


def _steps(xs: list[Any]) -> list[Any]:
    """Flattened Q̃ values regrouped by step."""
    return [tuple(xs[k:k + _ENTRIES]) for k in range(0, len(xs), _ENTRIES)]


def _common(ks: list[Fraction | None]) -> Fraction | None:
    return ks[0] if ks and all(k == ks[0] for k in ks) else None


class _Probe:
    """Q̃ of the optimizer on histories of _ENTRIES entries over _STEPS steps (mpmath)."""

    def __init__(self, opt: Optimizer) -> None:
        self.opt = opt
        fq, *fupdates = (np.frompyfunc(f, 2 + len(opt.state), 1) for f in lambdas(opt, "mpmath"))
        self.fns: Functions = (fq, tuple(fupdates), _rms)

    def __call__(self, history: np.ndarray) -> list[Any]:
        """The entries of Q̃ at every step, flattened."""
        try:
            return [x for q in run(self.opt, history, self.fns) for x in q.flat]
        except (ZeroDivisionError, ValueError, TypeError):
            return []  # undefined at these gradients (a probe then finds no property)

    @staticmethod
    def history(rng: random.Random) -> np.ndarray:
        values = [mpmath.mpf(rng.choice((-1, 1)) * rng.uniform(0.25, 2.0))
                  for _ in range(_STEPS * _ENTRIES)]
        return np.array(values, dtype=object).reshape(_STEPS, _ENTRIES)

    def rewrite_past(self, h: np.ndarray, rng: random.Random) -> np.ndarray:
        out = self.history(rng)
        out[-1] = h[-1]
        return out

    @staticmethod
    def repeat_last(h: np.ndarray) -> np.ndarray:
        return np.array([h[-1]] * len(h), dtype=object)

    @staticmethod
    def same(xs: list[Any], ys: list[Any]) -> bool:
        """Equal to 30 digits (entries may be tuples of the entries of one step)."""
        flat_x = [v for x in xs for v in (x if isinstance(x, tuple) else (x,))]
        flat_y = [v for y in ys for v in (y if isinstance(y, tuple) else (y,))]
        return bool(flat_x) and len(flat_x) == len(flat_y) and all(
            abs(x - y) <= _TOL * max(abs(x), abs(y), 1)
            for x, y in zip(flat_x, flat_y, strict=True))

    def degree(self, h: np.ndarray, lam: Any) -> Fraction | None:
        """k with Q̃(λG) = λ^k Q̃(G) at every step and entry, if there is one."""
        base, scaled = self(h), self(lam * h)
        if not base or len(base) != len(scaled) or any(x == 0 for x in base):
            return None
        ks = [_rational(mpmath.log(abs(y / x)) / mpmath.log(lam)) for x, y in
              zip(base, scaled, strict=True)]
        k = _common(ks)
        ok = k is not None and self.same(scaled, [x * lam ** _mp(k) for x in base])
        return k if ok else None

    def local_degree(self, h: np.ndarray, lam: Any) -> Fraction | None:
        """The slope of log|Q̃(λG)| in log λ at λ (the same at every step and entry)."""
        return self.degree(h * lam, mpmath.mpf(2))


def _rational(x: Any) -> Fraction | None:
    """x as a fraction with a small denominator, if it is one (to 10⁻²⁰)."""
    f = Fraction(float(x)).limit_denominator(12)
    return f if abs(x - _mp(f)) < mpmath.mpf(10) ** -20 else None


def _mp(f: Fraction) -> Any:
    return mpmath.mpf(f.numerator) / f.denominator


def _rms(q: np.ndarray) -> Any:
    return mpmath.sqrt(mpmath.fsum(x * x for x in q.flat) / q.size)
