"""Statistics of the coordinate check (spec 03 §3.4): log-log slopes over seeds and the status of
a row against its predicted exponent.

**Slopes.** A size at a width is the RMS over the K seeds (√ of the seed mean of the squared
sizes, as the μP coordinate check pools seeds: a CLT-sized quantity whose limit is 0 has a
heavy-tailed per-seed size); the slope is the least-squares slope of log(size) against log(n).
Three are fitted: over all widths, over the narrowest and over the widest ⌈m/2⌉ of the m widths
(``wide_slope``: the one nearest the limit). Their standard errors, and that of the bend
wide − narrow, are jackknifed over seeds (K − 1 degrees of freedom).

**Status of a row** with prediction p, tolerance τ and q = the Student-t quantile t_{0.975, K−1}
(a jackknife standard error from K seeds is a t statistic with K − 1 degrees of freedom, not a
normal one: with K = 4, q = 3.18 against 1.96):

* ``unjudged``: nothing predicted;
* ``ok``: |slope − p| ≤ τ (p identically zero: every size is 0 to rounding);
* ``frozen``: a finite exponent is predicted but some measured size is exactly 0 (the quantity
  did not change at all, e.g. a network whose ReLUs all died): a logarithm cannot be fitted;
* ``curved``: the slope misses, but the range is pre-asymptotic: either the log-log line bends
  (|wide − narrow| > τ and > q s.e.) and the widest widths' slope is within τ + q s.e. of p, or
  the slope is below p and the predicted term is measurably present under a CLT fluctuation
  n^{-1/2} larger at these widths: the two-term fit size² = A²·n^{2p} + B²·n^{2p−1} (seed mean
  square, linear in A², B², weighted by its relative error) has A² > t_{0.95, K−1} s.e.
  (one-sided: A² ≥ 0). A mean that is 0 in the limit only by a symmetry of the first step
  shows this (layer norm's Δmu under Adam, 16 seeds, 128…4096: A² at 4.7 s.e. unweighted;
  :mod:`compiler.abcd.centring`); wider widths decide;
* ``inconclusive``: |slope − p| − τ ≤ q·s.e.: the gap could be noise; or the slope is below p
  and the two-term fit's A² is positive by 1 to t_{0.95} s.e. (weak evidence of the predicted
  term: layer norm's Δmu under Adam at n ≤ 1024, K = 8: A² = 1.3·10⁻⁵ at 1.6 s.e., the value
  the full range gives at 4.7 s.e.); a slope below p with A² within 1 s.e. of 0 (a clean power
  law without the predicted term: Δmu under SGD before the calculus knew centring, A² at 0.35
  s.e.) stays ``fails``;
* ``fails``: otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Status = Literal["ok", "fails", "inconclusive", "curved", "frozen", "unjudged"]
STATUSES: tuple[Status, ...] = ("ok", "fails", "inconclusive", "curved", "frozen", "unjudged")
ZERO_SIZE = 1e-12
"""A size at or below this (relative to 1) is rounding: an exact zero measured."""
LEVEL = 0.975
"""Two-sided 95 %: the t quantile the "within s.e." rules use."""
ONE_SIDED = 0.95
"""One-sided 95 %: the t quantile of the test A² > 0 of the two-term fit."""


@dataclass(frozen=True)
class Fit:
    """Slopes of log size against log n (whole range, narrowest and widest half) with jackknife
    standard errors over seeds (NaN for one seed or a zero size)."""

    slope: float
    stderr: float
    wide_slope: float
    wide_stderr: float
    narrow_slope: float
    bend_stderr: float
    seeds: int

    @property
    def quantile(self) -> float:
        """t_{0.975, K−1}: how many standard errors a gap may be and still be noise."""
        return float(stats.t.ppf(LEVEL, self.seeds - 1)) if self.seeds > 1 else float("inf")

    @property
    def bent(self) -> bool:
        """The slope changes significantly across the width range (by more than ``tol`` is
        checked by the caller): narrow and wide halves differ beyond q standard errors."""
        bend = abs(self.wide_slope - self.narrow_slope)
        return bool(np.isfinite(bend) and np.isfinite(self.bend_stderr)
                    and bend > self.quantile * self.bend_stderr)


def halves(m: int) -> tuple[slice, slice]:
    """The narrowest and the widest ⌈m/2⌉ (at least 2) of m sorted widths."""
    k = max(2, (m + 1) // 2)
    return slice(0, k), slice(m - k, m)


def _slopes(logn: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(whole, narrow, wide) least-squares slopes of the seed-RMS log size."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = 0.5 * np.log(np.mean(np.square(sizes), axis=0))
    out = []
    for part in (slice(None), *halves(len(logn))):
        x = logn[part] - logn[part].mean()
        with np.errstate(invalid="ignore"):
            out.append(float(logs[part] @ x / (x @ x)))
    return np.array(out)


def fit(widths: Sequence[int], sizes: np.ndarray) -> Fit:
    """The three slopes of ``sizes`` (seeds × widths) and their jackknife standard errors."""
    logn = np.log(np.asarray(widths, dtype=np.float64))
    whole = _slopes(logn, sizes)
    k = sizes.shape[0]
    nan = float("nan")
    if k < 2 or not np.all(np.isfinite(whole)):
        return Fit(whole[0], nan, whole[2], nan, whole[1], nan, k)
    leave = np.array([_slopes(logn, np.delete(sizes, i, axis=0)) for i in range(k)])
    leave = np.column_stack([leave, leave[:, 2] - leave[:, 1]])
    with np.errstate(invalid="ignore"):
        se = np.sqrt((k - 1) / k * np.sum(np.square(leave - leave.mean(axis=0)), axis=0))
    return Fit(whole[0], float(se[0]), whole[2], float(se[2]), whole[1], float(se[3]), k)


def fit_slopes(widths: Sequence[int], sizes: np.ndarray) -> tuple[float, float]:
    """The whole-range slope and its jackknife standard error (see :func:`fit`)."""
    f = fit(widths, sizes)
    return f.slope, f.stderr


def leading_term(widths: Sequence[int], sizes: np.ndarray, e: float) -> tuple[float, float]:
    """A² of the two-term fit size² = A²·n^{2e} + B²·n^{2e−1} (least squares of the seed mean
    square times n^{−2e} against 1/n) and its jackknife standard error over seeds."""
    n = np.asarray(widths, dtype=np.float64)
    design = np.column_stack([np.ones_like(n), 1.0 / n])

    def a2(rows: np.ndarray) -> float:
        ms = np.mean(np.square(rows), axis=0) * n ** (-2.0 * e)
        # a seed mean square has a relative, not an absolute, error: weight by 1/ms
        w = 1.0 / np.where(ms > 0, ms, 1.0)
        return float(np.linalg.lstsq(design * w[:, None], ms * w, rcond=None)[0][0])

    whole, k = a2(sizes), sizes.shape[0]
    if k < 2:
        return whole, float("nan")
    leave = np.array([a2(np.delete(sizes, i, axis=0)) for i in range(k)])
    return whole, float(np.sqrt((k - 1) / k * np.sum(np.square(leave - leave.mean()))))


def lead_evidence(widths: Sequence[int], sizes: np.ndarray, e: float) -> float:
    """A²/s.e.(A²) of :func:`leading_term`: how many standard errors the predicted n^{e} term is
    above 0 (NaN for one seed)."""
    a2, se = leading_term(widths, sizes, e)
    return a2 / se if np.isfinite(se) and se > 0 else float("nan")


def status(predicted: float | None, f: Fit, sizes: np.ndarray, verdict: bool | None,
           tolerance: float, widths: Sequence[int] | None = None) -> Status:
    """The status of a row (module docstring); ``predicted`` None: identically zero. Without
    ``widths`` the two-term fit is not tried."""
    if verdict is None:
        return "unjudged"
    if predicted is None:
        return "ok" if verdict else "fails"
    if np.any(sizes <= ZERO_SIZE):
        return "frozen"
    if verdict:
        return "ok"
    q = f.quantile
    bend = abs(f.wide_slope - f.narrow_slope)
    if f.bent and bend > tolerance and abs(f.wide_slope - predicted) <= tolerance + q * (
            f.wide_stderr if np.isfinite(f.wide_stderr) else 0.0):
        return "curved"
    if widths is not None and f.slope < predicted - tolerance:
        evidence = lead_evidence(widths, sizes, predicted)
        if evidence > float(stats.t.ppf(ONE_SIDED, f.seeds - 1)):
            return "curved"
        if evidence > 1.0:  # the predicted term is there at ≥ 1 s.e.: more seeds decide
            return "inconclusive"
    if not np.isfinite(f.stderr) or not np.isfinite(f.slope):
        return "fails"
    excess = abs(f.slope - predicted) - tolerance
    return "inconclusive" if excess <= q * f.stderr else "fails"
