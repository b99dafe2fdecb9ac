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
* ``curved``: the slope misses, but the log-log line bends (|wide − narrow| > τ and > q
  s.e.) and the widest widths' slope is within τ + q s.e. of p: the range is pre-asymptotic,
  more (wider) widths decide;
* ``inconclusive``: |slope − p| − τ ≤ q·s.e.: the gap could be noise;
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


def status(predicted: float | None, f: Fit, sizes: np.ndarray, verdict: bool | None,
           tolerance: float) -> Status:
    """The status of a row (module docstring); ``predicted`` None: identically zero."""
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
    if not np.isfinite(f.stderr) or not np.isfinite(f.slope):
        return "fails"
    excess = abs(f.slope - predicted) - tolerance
    return "inconclusive" if excess <= q * f.stderr else "fails"
