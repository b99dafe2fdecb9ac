"""The bias of finite copy averages, bounded by a rerun at half the span (spec 01 §1.4, §1.6).

An OuterNonlin's copy average ŷ(p) (:mod:`runtime.limits.outer`) is unbiased for y(p), but every
nonlinear function g downstream sees g(y + ε), ε its noise of variance v ∝ 1/span: the limit is
biased by β(span) = b·span^(−a), a = 1 for a smooth g (½g″·v) and a = ½ where y sits at a kink
with positive probability (relu(y) for y ≡ 0: E relu(ε) ∝ √v).  The replicas do not see it: it
is the same in every replica.  So the Monte Carlo engine reruns the program with every copy
average over half the span and half the pairs (the same seed: only the copy averages differ) and
bounds

    |β(span)| = |D| / (2^a − 1) ≤ |D| / (√2 − 1),   D = v(span) − v(span/2),

with D's own replica s.e. added, since D is estimated.  The bound is added to the s.e. in
quadrature (value unchanged), so a limit lies within a few of its s.e. of the truth whatever a.
Scalars that no copy average reaches have D = 0 exactly and keep their s.e.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.errors import UsageError
from compiler.kets.lowering import FormulaKet, KetProgram
from runtime.limits.ketfuncs import KetFunctions
from runtime.limits.result import MIN_PER_REPLICA, MIN_PER_REPLICA_OUTER, LimitResult

Estimates = tuple[dict[str, np.ndarray], dict[tuple[str, str], np.ndarray]]
"""One run's per-replica estimates: scalars by name, dot coefficients by (MatMul, hat)."""

SLACK = 1.0 / (math.sqrt(2.0) - 1.0)
"""|β| ≤ SLACK·|D| for any bias exponent a ≥ ½ (2.414…)."""


def reads_copy(funcs: KetFunctions, s: FormulaKet) -> bool:
    """An OuterNonlin whose formula reads a copy of a vector (E′ of a formula that reads no copy
    is the formula itself: mean[b](θ) = θ)."""
    return s.order > 0 and any(c is not None and kind == "vector" for _, c, kind in funcs.args(s))


def reads_copies(kets: KetProgram, funcs: KetFunctions) -> bool:
    """Some statement averages over copies: the limit has a copy-average bias to bound."""
    return any(isinstance(s, FormulaKet) and reads_copy(funcs, s) for s in kets.stmts)


def bias_bound(full: np.ndarray, half: np.ndarray, replicas: int) -> np.ndarray:
    """Bound on |bias| per column of a value whose per-replica estimates are ``full`` (span) and
    ``half`` (span/2), arrays broadcastable to (R, C); NaN when R = 1 (D's s.e. is unknown) and
    the values differ."""
    d = np.asarray(full - half, dtype=np.float64)
    d = np.broadcast_to(d, (replicas, *d.shape[1:]))
    mean = np.abs(d.mean(axis=0))
    if replicas > 1:
        se = d.std(axis=0, ddof=1) / math.sqrt(replicas)
    else:
        se = np.where(mean == 0, 0.0, np.nan)
    return SLACK * (mean + se)


def pooled_bias_bound(full: np.ndarray, half: np.ndarray, replicas: int) -> np.ndarray:
    """Bound on |bias| per column from per-replica estimates ``full`` and ``half`` (R, C), for
    values that come in many columns (a trajectory: steps × points).  Per column D̄ is as noisy as
    the value itself, so :func:`bias_bound`'s SLACK·(|D̄| + s.e.) would multiply every s.e. by
    about four.  Here the bias energy is pooled over the columns: b² = mean D̄² − mean s.e.(D̄)²
    (the noise part of E D̄² removed); if b² ≤ 0 no pool-size effect is seen and the bound is 0
    (any undetected bias is then below D̄'s noise, about the s.e. itself); else each column gets
    SLACK·|D̄| scaled so that the bounds' RMS is SLACK·b.  Needs R ≥ 2."""
    d = np.asarray(full - half, dtype=np.float64)
    mean = d.mean(axis=0)
    var = d.var(axis=0, ddof=1) / replicas
    energy = float(np.mean(mean**2))
    b2 = energy - float(np.mean(var))
    if b2 <= 0 or energy == 0:
        return np.zeros_like(mean)
    return SLACK * np.abs(mean) * math.sqrt(b2 / energy)


def widen(se: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """The s.e. with the bias bound added in quadrature, (B,) like ``se``."""
    return np.sqrt(se**2 + np.broadcast_to(bound, se.shape) ** 2)


def bias_bounded(res: LimitResult, full: Estimates, half: Estimates, replicas: int) -> LimitResult:
    """``res`` (the full run's result) with each Monte Carlo s.e. widened by its copy-average
    bias bound (scalars and dot coefficients), and a note naming the scalars it dominates."""
    grown = []
    for name, per in full[0].items():
        if name not in res.stderr or res.methods[name] != "mc":
            continue
        bound = bias_bound(per, half[0][name], replicas)
        se = res.stderr[name]
        res.stderr[name] = widen(se, bound)
        if np.any(~(np.broadcast_to(bound, se.shape) <= se)):
            grown.append(name)
    for key, per in full[1].items():
        mean, se = res.dots[key]
        res.dots[key] = (mean, widen(se, bias_bound(per, half[1][key], replicas)))
    res.description += "; copy-average bias bounded by a rerun at half the span"
    if not grown:
        return res
    shown = ", ".join(grown[:8]) + (", …" if len(grown) > 8 else "")
    return res.noted(
        f"the s.e. of {shown} is mostly a bound on the bias of finite copy averages (OuterNonlin, "
        f"from a rerun with half the copies): more particles per replica shrink it"
    )


def few_particles(p: int, r: int, copies: bool, explicit: bool) -> tuple[str, ...]:
    """Refuse (replicas given) or flag (default replicas: too few particles in all) fewer
    particles per replica than the documented minimum (MIN_PER_REPLICA[_OUTER])."""
    least = MIN_PER_REPLICA_OUTER if copies else MIN_PER_REPLICA
    if p >= least:
        return ()
    why = (
        "a copy average over the other particles has noise O(1/P) that biases every nonlinear "
        "function of it"
        if copies
        else "a replica's estimates are biased by O(1/P)"
    )
    if explicit:
        raise UsageError(
            f"replicas {r} leave {p} particles per replica, fewer than the {least} this program "
            f"needs ({why}): use fewer replicas or more particles"
        )
    unknown = "" if r > 1 else " and their s.e. unknown"
    return (
        f"too few particles: {p} per replica, fewer than the {least} this program needs ({why}); "
        f"the values are unreliable{unknown}: use at least {least * 16} particles",
    )
