"""The fast μ-limit engine (runtime/limits/mu_fast.py): mlp2 under μP, B = 16, T = 10, M = 4096
(8 replicas of 512 particles), Adam (goal < 2 min on 2 cores) and SGD; fitted exponents of the
time in M, T and B (goals: Adam M² per replica, T, B; SGD linear in M); the pair-array work
(ΔW and Adam's state as M×M arrays: forming G, the state update, applying ΔW) as a fraction of
this machine's numpy matmul throughput measured in the same process; accuracy per second
against finite-width seed averaging at the same error.

Run: python bench/bench_mu_fast.py [--quick] [--accuracy] (--accuracy: only that part). Ratios
are within one process (the machine is shared, so absolute seconds vary with its load).

Accuracy per second. The limit's error is the RMS over steps ≥ 1 and points of its standard
errors, which include its pool-size bias bound (mu_fast.py); the best of a few (particles,
replicas) by error²·time is kept. The finite side is a seed average at width n; each width is
measured with 16 seeds and the best width is kept. Two accountings of the seeds K it needs for
the same error, both printed:
* old (bias ignored, as last session): K = rms²/err², rms the per-seed RMS distance to the limit.
  It counts the seed noise σ² plus b(n)² + s² as if it all averaged away, so it favours the
  finite side where b(n) matters and costs it one seed's worth of s² where it does not.
* new (b(n) measured, symmetric with the limit's bias bound): b(n)² = D² − σ²/16 − s², as
  runtime/converge.py measures distances (D² of the 16-seed mean, s² the limit's noise
  variance); a K-seed mean has error² σ²/K + b², so K = σ²/(err² − b²), and a width with
  b(n) ≥ err cannot reach the error at all (∞). b(n) is a point estimate (clipped at 0), while
  the limit carries a bound (2.4× its estimated pool-size bias), which still leans toward the
  finite side. Its resolution is the seed mean's noise σ/√16 (printed): where the target error
  is below that (mlp1, error ~2e-4 against σ/4 ~ 8e-4 at width 16384), whether b(n) < err is
  not resolved, and a width can get ∞ or a finite K from the noise of b̂ alone.
The ratio is the finite side's seconds over the limit's.

Last measured (2 shared cores, loaded by other jobs: seconds swing 2-3× between runs, ratios
less), old / new accounting, the engine before 133f286 → at ac3d0a0 → with QMC over step 0's
Gaussians, the pool capped at 128, control variates and the tested bias check (2026-12-07):
mlp2 Adam 0.14 / 0.27 → 1.2 / 2.1 → 1.6 / 3.1; mlp2 SGD 0.49 / 0.65 → 1.9 / 2.7 → 7.8 / 10.1;
mlp1 Adam 1.2 / 1.2 → 9.9 / 10.4 → 12.2 / 12.2; mlp1 SGD 1.9 / 1.9 → 39 / 40 → 40 / 41
(mlp1's best limit has 4 replicas: too few to fit control variates). A second mlp2 SGD run with
a CPU-heavy job beside it: 5.9 / 7.4 (the limit's seconds grew 14.4 → 19.4, the networks' not).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compiler.frontend.parse import parse_file
from compiler.train.setup import Training, build_training
from runtime.limits import mu_fast_ops
from runtime.limits.blas import blas_threads
from runtime.limits.trajectory import LimitTrajectory, TrajectoryOptions, limit_trajectory
from runtime.trainer import train

ROOT = Path(__file__).resolve().parent.parent
OPTS = {"adam": "adam(lr=0.02)", "sgd": "sgd(lr=0.2)"}


def setup(arch: str, opt: str, batch: int, steps: int) -> tuple[Training, np.ndarray,
                                                               np.ndarray]:
    program = parse_file(ROOT / "samples" / f"{arch}.nx")
    rng = np.random.default_rng(0)
    d = len(program.input_names)
    x = rng.standard_normal((batch + 4, d)) * np.sqrt(4 / d)
    y = rng.standard_normal((batch, 1))
    tr = build_training(program, "mup", OPTS[opt], "mse", steps=steps, n_train=batch, n_test=4,
                        center=True)
    return tr, x, y


def run_limit(arch: str, opt: str, m: int, batch: int = 16, steps: int = 10,
              replicas: int = 8) -> tuple[float, LimitTrajectory]:
    tr, x, y = setup(arch, opt, batch, steps)
    start = time.perf_counter()
    lim = limit_trajectory(tr, x, y, TrajectoryOptions(particles=m, replicas=replicas))
    return time.perf_counter() - start, lim


def exponent(xs: list[int], ts: list[float]) -> float:
    return float(np.polyfit(np.log(xs), np.log(ts), 1)[0])


def sweep(opt: str, what: str, values: list[int]) -> float:
    times = []
    for v in values:
        kw = {"m": 4096, "batch": 16, "steps": 10} | {what: v}
        times.append(run_limit("mlp2", opt, kw["m"], kw["batch"], kw["steps"])[0])
    print(f"  {opt} time vs {what} {values}: " + ", ".join(f"{t:.2f}s" for t in times)
          + f"  exponent {exponent(values, times):.2f}")
    return exponent(values, times)


class PairTimer:
    """Wraps PairDelta.step/apply to count their seconds and floating-point operations."""

    def __init__(self) -> None:
        self.seconds, self.flops = 0.0, 0.0
        self.step0, self.apply0 = mu_fast_ops.PairDelta.step, mu_fast_ops.PairDelta.apply

    def __enter__(self) -> PairTimer:
        timer, step0, apply0 = self, self.step0, self.apply0

        def step(pd: Any, t: int, cols: Any, rate: float, decay: float) -> None:
            start = time.perf_counter()
            step0(pd, t, cols, rate, decay)
            timer.seconds += time.perf_counter() - start
            k = sum(a.shape[1] for a, _ in cols)
            timer.flops += pd.m ** 2 * (2 * k + 20 * len(cols))  # G = a bᵀ, Adam entrywise

        def apply(pd: Any, k: int, x: np.ndarray, transpose: bool) -> np.ndarray:
            start = time.perf_counter()
            out = apply0(pd, k, x, transpose)
            timer.seconds += time.perf_counter() - start
            timer.flops += 2 * pd.m ** 2 * x.shape[1]
            return out

        mu_fast_ops.PairDelta.step = step  # type: ignore[method-assign]
        mu_fast_ops.PairDelta.apply = apply  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        mu_fast_ops.PairDelta.step = self.step0  # type: ignore[method-assign]
        mu_fast_ops.PairDelta.apply = self.apply0  # type: ignore[method-assign]


def matmul_rate(m: int = 512, k: int = 32) -> float:
    """numpy's flop rate on a pair-array-shaped product (M×M by M×k), one BLAS thread."""
    a, b = np.random.default_rng(0).standard_normal((m, m)), np.ones((m, k))
    with blas_threads(1):
        start, reps = time.perf_counter(), 200
        for _ in range(reps):
            a @ b
        return 2 * m * m * k * reps / (time.perf_counter() - start)


@dataclass(frozen=True)
class FiniteSide:
    """Seed averaging at one width n (K0 seeds measured): per-seed time, per-seed variance σ²
    (mean over steps ≥ 1 and points), the bias b(n) of the seed mean, the old per-seed RMS
    distance to the limit, and the seconds each accounting needs for the target error."""

    width: int
    per_seed: float
    sigma2: float
    bias2: float
    rms2: float
    old_seconds: float
    new_seconds: float


def finite_side(tr: Training, x: np.ndarray, y: np.ndarray, n: int, seeds: int,
                lim: LimitTrajectory, err: float) -> FiniteSide:
    """b(n)² = D² − σ²/K0 − s² as runtime/converge.py does: D² the squared distance of the
    seed mean to the limit, σ²/K0 the seed mean's noise, s² the limit's own Monte Carlo
    variance (its bias bound is not noise and stays in); clipped at 0 (a negative value is the
    noise of the estimate). New accounting: a seed average of K seeds has error² σ²/K + b², so
    err needs K = σ²/(err² − b²) seeds, and none suffice if b ≥ err. Old: K = rms²/err² with
    rms² the per-seed squared distance (σ² + b² + s²). At least one seed either way."""
    with blas_threads(1):
        start = time.perf_counter()
        f = train(tr, x, y, n, seeds=range(seeds)).f[:, 1:]
        per_seed = (time.perf_counter() - start) / seeds
    ref = lim.f[None, 1:]
    sigma2 = float(np.mean(f.var(axis=0, ddof=1)))
    d2 = float(np.mean((f.mean(axis=0) - ref[0]) ** 2))
    s2 = float(np.mean(np.nan_to_num(lim.noise_variance[1:])))
    bias2 = max(d2 - sigma2 / seeds - s2, 0.0)
    rms2 = float(np.mean((f - ref) ** 2))
    old = max(rms2 / err**2, 1.0) * per_seed
    new = max(sigma2 / (err**2 - bias2), 1.0) * per_seed if bias2 < err**2 else float("inf")
    return FiniteSide(n, per_seed, sigma2, bias2, rms2, old, new)


def accuracy_per_second(arch: str, opt: str, configs: list[tuple[int, int]],
                        widths: list[int], seeds: int = 16) -> tuple[float, float]:
    """The best (particles, replicas) of ``configs`` (least error²·time) against the best width
    of ``widths`` under each accounting; returns the (old, new) ratios."""
    tr, x, y = setup(arch, opt, 16, 10)
    limits = []
    for m, reps in configs:
        secs, lim = run_limit(arch, opt, m, batch=16, steps=10, replicas=reps)
        err = float(np.sqrt(np.mean(lim.stderr[1:] ** 2)))
        noise = float(np.sqrt(np.mean(np.nan_to_num(lim.noise_variance[1:]))))
        limits.append((secs * err ** 2, secs, err, m, reps, lim))  # error²·time: the cost
        print(f"    limit M = {m} ({reps} replicas): {secs:.2f} s, error {err:.5f} (noise "
              f"{noise:.5f}, pool-size bias bound {np.sqrt(max(err**2 - noise**2, 0)):.5f})")
    _, secs, err, m, reps, lim = min(limits, key=lambda r: r[0])
    sides = [finite_side(tr, x, y, n, seeds, lim, err) for n in widths]
    for fs in sides:
        k_new = "∞ (b ≥ error)" if fs.new_seconds == float("inf") else \
            f"{fs.new_seconds / fs.per_seed:.0f} seeds → {fs.new_seconds:.1f} s"
        print(f"    width {fs.width}: {fs.per_seed:.3f} s/seed, σ {np.sqrt(fs.sigma2):.5f}, "
              f"b(n) {np.sqrt(fs.bias2):.5f} (resolution σ/√{seeds} "
              f"{np.sqrt(fs.sigma2 / seeds):.5f}), per-seed RMS {np.sqrt(fs.rms2):.5f}; old "
              f"{fs.old_seconds / fs.per_seed:.0f} seeds → {fs.old_seconds:.1f} s; new {k_new}")
    old = min(fs.old_seconds for fs in sides) / secs
    new = min(fs.new_seconds for fs in sides) / secs
    print(f"  {arch} {opt}: limit (M = {m}, {reps} replicas) {secs:.2f} s at error {err:.5f}; "
          f"ratio old (bias ignored) {old:.1f}×, new (b(n) measured) {new:.1f}×")
    return old, new


def timed(label: str, fn: Callable[[], tuple[float, LimitTrajectory]]) -> float:
    secs, lim = fn()
    print(f"{label}: {secs:.2f} s (max s.e. {lim.stderr.max():.4f})")
    return secs


def main(quick: bool = False) -> None:
    print(f"numpy matmul (512×512 by 512×32, 1 thread): {matmul_rate() / 1e9:.2f} GFLOP/s")
    with PairTimer() as pt:
        total = timed("mlp2 μP Adam B=16 T=10 M=4096 (8×512)",
                      lambda: run_limit("mlp2", "adam", 4096))
    rate = pt.flops / pt.seconds if pt.seconds else float("nan")
    print(f"  pair-array work {pt.seconds:.2f} s of {total:.2f} s; {rate / 1e9:.2f} GFLOP/s = "
          f"{rate / matmul_rate():.2f} of the matmul rate")
    timed("mlp2 μP SGD  B=16 T=10 M=4096 (8×512)", lambda: run_limit("mlp2", "sgd", 4096))
    ms = [2048, 4096, 8192] if quick else [2048, 4096, 8192, 16384]
    for opt in ("adam", "sgd"):
        sweep(opt, "m", ms)
        if not quick:
            sweep(opt, "steps", [5, 10, 20])
            sweep(opt, "batch", [8, 16, 32])
    accuracy(quick)


def accuracy(quick: bool = False) -> None:
    """The four accuracy-per-second cases (see the module docstring)."""
    print("accuracy per second (equal error):")
    w2 = [256, 512] if quick else [128, 256, 512, 1024]
    # mlp1's finite side costs O(n) per seed for σ² ∝ 1/n: wide networks amortise the per-step
    # overhead, so it gets widths up to 16384, as the limit gets up to 2^20 particles
    w1 = [256, 1024] if quick else [256, 1024, 4096, 16384]
    big = [] if quick else [(262144, 4), (1048576, 4)]
    ratios = {
        # Adam's pair arrays cost M² per replica: many small replicas; SGD and mlp1: fewer big
        "mlp2 adam": accuracy_per_second("mlp2", "adam", [(4096, 8), (8192, 16), (16384, 32)],
                                         w2),
        "mlp2 sgd": accuracy_per_second("mlp2", "sgd", [(4096, 8), (16384, 16), (65536, 16)],
                                        w2),
        "mlp1 adam": accuracy_per_second("mlp1", "adam", [(16384, 8), (131072, 8), *big], w1),
        "mlp1 sgd": accuracy_per_second("mlp1", "sgd", [(16384, 8), (131072, 8), *big], w1),
    }
    for case, (old, new) in ratios.items():
        print(f"  {case}: old {old:.2f}×, new {new:.2f}×")


if __name__ == "__main__":
    if "--accuracy" in sys.argv:
        accuracy("--quick" in sys.argv)
    else:
        main("--quick" in sys.argv)
