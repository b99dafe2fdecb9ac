"""Per-ket rules shared by every ket-program engine (spec 01 §1.4), written once.

* Initial scalars (01 §1.4 Init): an input takes its data value, a fixed scalar its init value,
  and a random scalar parameter (N(0,1), no init) is *conditioned on*: the limit is a function of
  its value, given by the caller or else the executor's seed-0 draw, so that a seed-0 run at
  finite width and the limit agree on it (:func:`condition_scalars`).
* Avg (01 §1.4 Avg): θ̊ = E|x⟩ is exactly 0 when a sign-flip symmetry makes |x⟩ odd
  (:mod:`compiler.kets.parity`); engines must not estimate it (:func:`odd_avg`).
* Dot coefficients (01 §1.4 Dot): which live coefficients come from forward-mode derivatives
  and which from Stein's lemma (:func:`split_dots`), and Stein's lemma in its regression form
  (E[∂x/∂G_j])_j = C⁺(E[(x − Ex) G_j])_j over the hats G of the opposite orientation that x
  depends on (:func:`stein_hats`, :func:`stein_solve`).
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import TypeVar, assert_never

import numpy as np

from compiler.errors import UsageError
from compiler.kets.lowering import DotCoeff, KetProgram, MatMulKet, ScalarLimit

T = TypeVar("T")


def condition_scalars(kets: KetProgram, given: Mapping[str, float] | None) -> dict[str, float]:
    """The value of every random scalar parameter of ``kets``: ``given`` or the executor's
    seed-0 draw.  Values for names that are not scalar parameters are refused."""
    from runtime.params import stream  # the executor's draw, so seed-0 runs condition alike

    given = dict(given or {})
    unknown = set(given) - set(kets.source.param_names("scalar"))
    if unknown:
        raise UsageError(
            f"values given for {', '.join(sorted(unknown))}: not scalar parameters of "
            f"{kets.source.name}"
        )
    out = {}
    for s in kets.stmts:
        if isinstance(s, ScalarLimit) and s.source == "random":
            out[s.out] = float(given.get(s.out, stream(0, s.out).standard_normal()))
    return out


def initial_scalar(
    s: ScalarLimit, inputs: Mapping[str, T], given: Mapping[str, float]
) -> T | float:
    """The value of an initial scalar: ``inputs[name]`` (an engine's own representation of an
    input: a float or an array of columns), the fixed init, or the conditioned value."""
    match s.source:
        case "input":
            return inputs[s.out]
        case "fixed":
            return float(s.value)  # type: ignore[arg-type]
        case "random":
            return given[s.out]
        case _:
            assert_never(s.source)


def odd_avg(kets: KetProgram, arg: str) -> bool:
    """E|arg⟩ = 0 exactly: some generator of the sign-flip group flips |arg⟩."""
    return any(v == -1 for v in kets.parity[arg].values())


def split_dots(
    s: MatMulKet, stein: bool, gradient_independence: bool = False
) -> tuple[list[DotCoeff], list[DotCoeff]]:
    """The live coefficients of ``s`` by forward-mode derivative and by Stein's lemma.  The
    lowering sends those whose derivative crosses a Dirac delta (step/sign) to Stein; ``stein``
    sends all there (an engine without derivatives); ``gradient_independence`` drops them all."""
    live = () if gradient_independence else s.live_dots
    by_derivative = [c for c in live if c.rule == "derivative" and not stein]
    return by_derivative, [c for c in live if c not in by_derivative]


def stein_hats(kets: KetProgram, s: MatMulKet, built: Container[str]) -> list[str]:
    """The hats (by MatMul name) of the orientation opposite to ``s`` that ``s``'s argument
    depends on and that are already built: the regressors of Stein's lemma."""
    other = (s.hat.matrix, not s.hat.transpose)
    return [
        h
        for h, hk in kets.hats.items()
        if hk.orientation == other and h in kets.dep[s.hat.arg] and h in built
    ]


def stein_solve(cov: np.ndarray, b: np.ndarray, rcond: float) -> np.ndarray:
    """C⁺b over leading batch axes: ``cov`` (..., k, k) the covariance of the hats, ``b``
    (..., k) the covariances E[(x − Ex) G_j]; a pseudo-inverse, since hats may be collinear."""
    return np.einsum("...ij,...j->...i", stein_pinv(cov, rcond), b)


def stein_pinv(cov: np.ndarray, rcond: float) -> np.ndarray:
    """C⁺ over leading batch axes (kept by an engine whose next coefficients regress on the
    same hats: the unrolled program's backward uses of Wᵀ at one step)."""
    return np.linalg.pinv(cov, rcond=rcond, hermitian=True)
