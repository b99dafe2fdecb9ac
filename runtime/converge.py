"""Finite width against the infinite-width limit of training (07 §7.4, the paper's Figs. 5.1/5.2
for any architecture): train at each width n for seeds 0..K−1 (:mod:`runtime.trainer`), compute
the limit (:func:`runtime.limits.trajectory.limit_trajectory`), and measure how fast the
seed-averaged trajectory approaches it.

Distance at width n (f̄_n the seed mean, f̂ the computed limit with Monte Carlo standard error s):

    D_n² = mean over steps t, points ξ (and outputs) of (f̄_n,t(ξ) − f̂_t(ξ))²  −  mean s²

The subtraction removes the limit's own Monte Carlo variance: f̂ = f + e with E e² = s² and e
independent of the networks, so E (f̄ − f̂)² = (f̄ − f)² + s²; without it D_n would level off at
RMS(s) however wide the networks (0 on an exact path, where nothing is subtracted).  D_n includes
the seed average's own noise (variance σ_n²/K, O(1/n) in D², Master Theorem 01 §1.5) and the seed
mean's bias E f_n − f, so D_n ∝ n^{-1/2} is the expected rate where the noise dominates.  The
bias need not fall as fast at the widths one can train: under Adam with a small ε (sign-like
updates) it was measured falling like n^{-0.3} … n^{-0.7} and flat over a ×2 in n
(bench/bench_nt_floor.py; the paper's Fig. 5.1), and the fitted slope then measures it.  Its
standard error is the jackknife over seeds; the fitted slope of log D against log n gets its
standard error by the same jackknife (leaving seed k out at every width at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from compiler.errors import UsageError
from compiler.train.setup import Training
from runtime.limits.trajectory import LimitTrajectory, TrajectoryOptions

FLOOR_NOTE = 0.1
"""Say that the limit's MC variance was subtracted when it is above this fraction of D²."""

Progress = Callable[[float, float, str], None]


@dataclass(frozen=True)
class WidthDistance:
    """At one width: ``distance`` D_n (MC variance subtracted), ``raw`` (not subtracted), its
    jackknife ``stderr`` over seeds, and ``noise`` the RMS standard error of the seed mean."""

    width: int
    distance: float
    raw: float
    stderr: float
    noise: float


@dataclass(frozen=True)
class Convergence:
    """``finite`` (widths, K, T+1, points, k) f_t of every run; ``limit`` the limit's; the
    distances per width; the fitted log-log ``slope`` of D_n with its jackknife ``slope_stderr``."""

    limit: LimitTrajectory
    widths: tuple[int, ...]
    seeds: tuple[int, ...]
    finite: np.ndarray
    distances: tuple[WidthDistance, ...]
    slope: float
    slope_stderr: float
    notes: tuple[str, ...] = field(default=())
    seconds: tuple[float, float] = (float("nan"), float("nan"))
    """Wall time of the limit and of the finite-width training."""

    @property
    def training(self) -> Training:
        return self.limit.training

    def to_json(self) -> dict[str, Any]:
        squeeze = self.training.outputs == 1
        mean, sd = self.finite.mean(axis=1), self.finite.std(axis=1, ddof=1)
        if squeeze:
            mean, sd = mean[..., 0], sd[..., 0]
        return {"widths": list(self.widths), "seeds": list(self.seeds),
                "distance": [_num(d.distance) for d in self.distances],
                "distance_raw": [_num(d.raw) for d in self.distances],
                "distance_stderr": [_num(d.stderr) for d in self.distances],
                "seed_noise": [_num(d.noise) for d in self.distances],
                "slope": _num(self.slope), "slope_stderr": _num(self.slope_stderr),
                "finite_mean": mean.tolist(), "finite_sd": sd.tolist(),
                "limit": self.limit.to_json(), "notes": list(self.notes)}


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(np.nan_to_num(a)))))


def squared_gap(finite: np.ndarray, limit: np.ndarray, variance: float) -> float:
    """mean (seed mean − limit)² − the limit's mean MC variance; ``finite`` (K, T+1, points, k)."""
    return float(np.mean(np.square(finite.mean(axis=0) - limit)) - variance)


def _root(d2: float) -> float:
    return float(np.sqrt(d2)) if d2 > 0 else 0.0


def width_distance(width: int, finite: np.ndarray, limit: np.ndarray, variance: float
                   ) -> WidthDistance:
    """D_n, its raw value, the jackknife standard error over the K seeds, the seed noise."""
    k = finite.shape[0]
    d = _root(squared_gap(finite, limit, variance))
    leave = np.array([_root(squared_gap(np.delete(finite, i, axis=0), limit, variance))
                      for i in range(k)])
    se = float(np.sqrt((k - 1) / k * np.sum(np.square(leave - leave.mean()))))
    noise = float(np.sqrt(np.mean(finite.var(axis=0, ddof=1) / k)))
    return WidthDistance(width, d, _root(squared_gap(finite, limit, 0.0)), se, noise)


def log_slope(widths: Sequence[int], distances: Sequence[float]) -> float:
    """Least-squares slope of log D against log n over the widths where D > 0."""
    n, d = np.asarray(widths, dtype=np.float64), np.asarray(distances, dtype=np.float64)
    ok = d > 0
    if ok.sum() < 2:
        return float("nan")
    x, y = np.log(n[ok]), np.log(d[ok])
    x = x - x.mean()
    return float(x @ (y - y.mean()) / (x @ x))


def distances(widths: Sequence[int], finite: np.ndarray, limit: np.ndarray, variance: float
              ) -> tuple[tuple[WidthDistance, ...], float, float]:
    """Per width D_n; the slope and its jackknife standard error over seeds (seed k left out
    at every width at once).  ``finite`` (widths, K, T+1, points, k)."""
    per = tuple(width_distance(n, finite[w], limit, variance) for w, n in enumerate(widths))
    slope = log_slope(widths, [d.distance for d in per])
    k = finite.shape[1]
    leave = np.array([log_slope(widths, [_root(squared_gap(np.delete(finite[w], i, axis=0),
                                                           limit, variance))
                                         for w in range(len(widths))]) for i in range(k)])
    se = float(np.sqrt((k - 1) / k * np.sum(np.square(leave - leave.mean()))))
    return per, slope, se


def check_limit_comparable(training: Training) -> None:
    """Seed-averaged networks converge to E f_t; a limit with a random f_0 is one draw of a
    Gaussian process (05 §5.1), not that mean: refuse unless centred."""
    from runtime.limits.trajectory import plan_limit

    plan = plan_limit(training)
    if plan.f0_random:
        fix = ("weight decay keeps (ρ^t − 1)·f_0 in f − f_0 even centred (05 §5.6): compare "
               "without decay" if training.center else "give --center to compare f − f_0")
        raise UsageError(f"under {training.param.name}, f_0 is a Gaussian process in the limit "
                         "(05 §5.1): the seed-averaged networks approach its mean, not one draw "
                         f"of it; {fix}")


def check_widths_fit(training: Training, widths: Sequence[int], budget: int | None) -> None:
    """Refuse, before running anything, a width whose training would not fit."""
    from runtime import memory
    from runtime.trainer import backprops, estimate_bytes

    n = max(widths)
    need = estimate_bytes(training, backprops(training.program), n, training.schedule.n_points)
    what = f"training at width {n} ({training.schedule.n_points} points)"
    if budget is not None and need > budget:
        raise UsageError(f"{what} = {need / 2**30:.2f} GiB, above --memory-limit "
                         f"{budget / 2**30:.2f} GiB; choose smaller --widths")
    memory.check_memory(need, what, "choose smaller --widths")


def converge(training: Training, x: np.ndarray, y: np.ndarray, widths: Sequence[int],
             seeds: Sequence[int], options: TrajectoryOptions | None = None,
             engine: str = "auto", dist: str = "gaussian",
             progress: Progress | None = None) -> Convergence:
    """The limit of ``training`` (engine ``engine``, ``options``) and its finite-width runs at
    every width for every seed; deterministic for given seeds and ``options.seed``."""
    from runtime.limits.trajectory import limit_trajectory
    from runtime.trainer import train

    options = options or TrajectoryOptions()
    widths = tuple(sorted(set(widths)))
    if len(widths) < 2 or len(seeds) < 2:
        raise UsageError("a convergence rate needs at least two widths and two seeds")
    check_limit_comparable(training)
    check_widths_fit(training, widths, options.memory_budget)
    start = time.perf_counter()
    limit = limit_trajectory(training, x, y, options, engine,
                             None if progress is None else
                             lambda d, t, label: progress(d, t, f"limit: {label}"))
    mid = time.perf_counter()
    steps = training.steps + 1
    cost = [n * n * len(seeds) * steps for n in widths]  # matmul work ∝ n² per step
    runs = []
    for w, n in enumerate(widths):
        done = sum(cost[:w])
        tick = None if progress is None else (
            lambda k, t, n=n, done=done: progress(done + n * n * (k * steps + t + 1), sum(cost),
                                                  f"width {n}, seed {k}"))
        runs.append(train(training, x, y, n, seeds, dist, tick).f)
    res = summarise(limit, widths, tuple(seeds), np.stack(runs))
    return replace(res, seconds=(mid - start, time.perf_counter() - mid))


def summarise(limit: LimitTrajectory, widths: tuple[int, ...], seeds: tuple[int, ...],
              finite: np.ndarray) -> Convergence:
    """The distances, slope and notes of finite runs ``finite`` (widths, K, T+1, points, k)."""
    se = limit.stderr
    notes = []
    if np.isnan(se).any():
        notes.append("the limit's standard error is unknown somewhere: its Monte Carlo variance "
                     "is not subtracted there")
    variance = float(np.mean(np.nan_to_num(limit.noise_variance)))
    if limit.bias is not None and limit.bias.any():
        notes.append(f"the limit's systematic error bound (RMS {_rms(limit.bias):.2g}) is not "
                     "subtracted: below it, D_n measures the limit's error, not the networks'")
    per, slope, slope_se = distances(widths, finite, limit.f, variance)
    raw2 = min(d.raw for d in per) ** 2
    if variance > 0 and variance > FLOOR_NOTE * raw2:
        share = f"{variance / raw2:.0%} of" if raw2 > 0 else "above"
        notes.append(f"the limit's own Monte Carlo variance (RMS s.e. {np.sqrt(variance):.2g}) "
                     f"is {share} the smallest D²: it was subtracted; more --particles make "
                     "the wide end surer")
    if any(d.distance == 0 for d in per):
        notes.append("at some width the gap is below the limit's Monte Carlo error (D = 0 "
                     "there, left out of the slope): more --particles")
    return Convergence(limit, widths, seeds, finite, per, slope, slope_se, tuple(notes))
