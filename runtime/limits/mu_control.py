"""Control variates for the μ engine's replicas: early steps of the same run (derived here).

Each replica's trajectory f_t (an average over its particles) carries Monte Carlo noise that
is mostly inherited: the particles' estimate of step 0's kernels sets f_1, f_2, and the later
steps amplify the same error. So the replica's own early outputs f_0..f_K (the controls c) are
strongly correlated with its late ones. Their expectation μ = E[c] at the same particles per
replica is cheap to estimate precisely: a run of K steps (rather than T) on R_c independent
replicas. Per column (point, output) and step t the estimator is the classical regression
control variate

    f̂_t = mean_r (f_t,r − β_tᵀ(c_r − μ̂)),   β_t the least-squares slope of f_t on c over the
                                              R replicas (with an intercept),

unbiased for E[f_t] at this replica size up to O(1/R) (β estimated from the same replicas), so
the engine's pool-size bias check applies to it unchanged. Its variance is the residual
variance over R (inflated by (R − 1)/(R − 1 − q) for the q fitted slopes) plus βᵀΣ_μβ, Σ_μ the
covariance of μ̂. For t ≤ K the control is f_t itself: f̂_t = μ̂_t, of variance Σ_μ[t, t].

Measured on mlp2 (μP, B = 16, T = 10, 64 replicas of 2048 particles; SGD, Adam, and mlp1 Adam
alike): the fraction of f_t's replica variance left after regression on f_1 is 0.03 at t = 2,
0.16 at t = 5, 0.39 at t = 10; on f_1 and f_2, 0.015, 0.06, 0.26.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONTROL_STEPS = 2
"""K: the controls are f_0..f_K (f_0 only where it varies, i.e. an uncentred run)."""
MIN_REPLICAS = 8
"""Fewer replicas than this fit no slopes (the O(1/R) bias and the lost degrees of freedom)."""


@dataclass(frozen=True)
class Controlled:
    """Per-replica adjusted values (R, T+1, P, k) (their spread is the residual noise) and the
    variance (T+1, P, k) their mean has besides that spread: the slopes' share of μ̂'s noise
    and the degrees of freedom the fit used."""

    values: np.ndarray
    extra_var: np.ndarray

    def stderr(self) -> np.ndarray:
        reps = self.values.shape[0]
        spread = self.values.var(axis=0, ddof=1) / reps
        return np.sqrt(spread + self.extra_var)


def applies(steps: int, replicas: int) -> bool:
    """Whether controls help: steps beyond the K controlled ones, replicas enough to fit."""
    return steps > CONTROL_STEPS and replicas >= MIN_REPLICAS


def control(f: np.ndarray, early: np.ndarray) -> Controlled:
    """f (R, T+1, P, k) the replicas; early (R_c, K+1, P, k) independent replicas of K steps
    at the same particles per replica (see the module docstring)."""
    reps, k1 = f.shape[0], early.shape[1]
    out = f.copy()
    extra = np.zeros(f.shape[1:])
    mu = early.mean(axis=0)
    for p in range(f.shape[2]):
        for j in range(f.shape[3]):
            out[:, :, p, j], extra[:, p, j] = _column(f[:, :, p, j], early[:, :, p, j],
                                                      mu[:, p, j], reps, k1)
    return Controlled(out, extra)


def _column(f: np.ndarray, early: np.ndarray, mu: np.ndarray, reps: int, k1: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """One column: f (R, T+1), early (R_c, K+1), mu (K+1,) → adjusted (R, T+1), extra (T+1,)."""
    c = f[:, :k1]
    scale = c.std(axis=0)
    live = scale > 1e-12 * max(float(np.abs(c).max()), 1e-300)  # a centred f_0 is exactly 0
    out, extra = f.copy(), np.zeros(f.shape[1])
    if not live.any():
        return out, extra
    cov_mu = np.atleast_2d(np.cov(early[:, :k1][:, live], rowvar=False)) / early.shape[0]
    q = int(live.sum())
    centred = (c[:, live] - c[:, live].mean(axis=0)) / scale[live]
    resid_dof = (reps - 1) / (reps - 1 - q)
    for t in range(f.shape[1]):
        y = f[:, t]
        if t < k1 and live[t]:  # the control itself: its mean from the K-step run
            i = int(live[:t].sum())
            out[:, t] = mu[t]
            extra[t] = cov_mu[i, i]
            continue
        beta, *_ = np.linalg.lstsq(centred, y - y.mean(), rcond=None)
        beta = beta / scale[live]
        out[:, t] = y - (c[:, live] - mu[live]) @ beta
        spread = out[:, t].var(ddof=1) / reps
        extra[t] = float(beta @ cov_mu @ beta) + spread * (resid_dof - 1.0)
    return out, extra
