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
from dataclasses import dataclass

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


DETECT_Z = 2.0
"""The pooled check reports a pool-size bias when its energy estimate exceeds this many of the
estimate's null standard deviations (about 2–5 % false alarms, by the tails of a χ²-like
statistic with few effective degrees of freedom)."""


@dataclass(frozen=True)
class PooledBias:
    """The pooled check's result: per-column ``bound`` (0 where nothing was detected) and its
    ``resolution``: the RMS bias that would just be detected (DETECT_Z null s.d. of the
    energy), below which a bias can go unseen; NaN with 2 replicas (no test)."""

    bound: np.ndarray
    resolution: float


def pooled_bias_bound(full: np.ndarray, half: np.ndarray, replicas: int,
                      extra_var: np.ndarray | None = None) -> PooledBias:
    """Bound on |bias| per column from per-replica estimates ``full`` and ``half`` (R, C), for
    values that come in many columns (a trajectory: steps × points).  Per column D̄ is as noisy as
    the value itself, so :func:`bias_bound`'s SLACK·(|D̄| + s.e.) would multiply every s.e. by
    about four.  Here the bias energy is pooled over the columns: b̂² = mean D̄² − mean s.e.(D̄)²
    (the noise part of E D̄² removed).  That estimate is unbiased but as noisy as the columns are
    correlated (the same replicas move every step and point together), so a bias is reported
    only when b̂² exceeds DETECT_Z null standard deviations of the energy, 2·tr(Σ̄²)/C² with Σ̄
    D̄'s covariance (:func:`_null_sd`); the old rule b̂² > 0 fired on about half of bias-free
    runs.  A detected bias gives each column SLACK·|D̄| scaled so that the bounds' RMS is
    SLACK·b̂.  ``extra_var`` (C,): variance of D̄ that the replicas' spread does not show (a
    control variate's estimated mean).  Needs R ≥ 2; with R = 2 there is no significance test
    (any b̂² > 0 is reported, as before, and the resolution is NaN)."""
    d = np.asarray(full - half, dtype=np.float64)
    mean = d.mean(axis=0)
    extra = np.zeros(mean.shape) if extra_var is None else np.broadcast_to(extra_var, mean.shape)
    var = d.var(axis=0, ddof=1) / replicas + extra
    energy = float(np.mean(mean**2))
    b2 = energy - float(np.mean(var))
    null_sd = _null_sd(d, extra)
    # with 2 replicas the energy's spread is unknown: any positive b̂² counts (it may be noise)
    threshold = 0.0 if math.isnan(null_sd) else DETECT_Z * null_sd
    resolution = math.sqrt(threshold) if threshold else float("nan")
    if b2 <= threshold or energy == 0:
        return PooledBias(np.zeros_like(mean), resolution)
    return PooledBias(SLACK * np.abs(mean) * math.sqrt(b2 / energy), resolution)


def _null_sd(d: np.ndarray, extra: np.ndarray) -> float:
    """Standard deviation of mean_c D̄_c² when E D̄ = 0: √(2 tr(Σ̄²))/C for Gaussian D̄ of
    covariance Σ̄ = Σ/R + diag(extra).  tr(Σ²) is estimated without bias from the replicas'
    Wishart sample (W = Σ_r (d_r − d̄)(d_r − d̄)ᵀ, ν = R − 1 degrees of freedom:
    E tr W² = ν(ν+1) tr Σ² + ν (tr Σ)², E (tr W)² = ν² (tr Σ)² + 2ν tr Σ², so
    tr Σ² = E[tr W² − (tr W)²/ν]/((ν + 2)(ν − 1))), through the R × R Gram matrix; the cross
    term 2 tr(Σ diag(extra))/R uses Σ's diagonal."""
    reps, cols = d.shape
    centred = d - d.mean(axis=0)
    gram = centred @ centred.T
    nu = reps - 1
    if nu < 2:
        return float("nan")  # 2 replicas: one degree of freedom, no estimate of tr Σ²
    tr_w2, tr_w = float(np.sum(gram**2)), float(np.trace(gram))
    tr_s2 = max((tr_w2 - tr_w**2 / nu) / ((nu + 2) * (nu - 1)), 0.0)
    diag = np.sum(centred**2, axis=0) / nu
    tr_bar2 = tr_s2 / reps**2 + 2 * float(diag @ extra) / reps + float(extra @ extra)
    return math.sqrt(2 * tr_bar2) / cols


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
