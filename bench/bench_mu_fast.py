"""The fast μ-limit engine (runtime/limits/mu_fast.py): mlp2 under μP, B = 16, T = 10, M = 4096
(8 replicas of 512 particles), Adam (goal < 2 min on 2 cores) and SGD; fitted exponents of the
time in M, T and B (goals: Adam M² per replica, T, B; SGD linear in M); the pair-array work
(ΔW and Adam's state as M×M arrays: forming G, the state update, applying ΔW) as a fraction of
this machine's numpy matmul throughput measured in the same process; accuracy per second
against finite-width seed averaging at the same error.

Run: python bench/bench_mu_fast.py [--quick]. Ratios are within one process (the machine is
shared, so absolute seconds vary with its load).

Accuracy per second: the engine's error is the RMS of its standard errors (over steps and
points); a seed average of K finite-width runs at width n has error ≈ rms_seed(n)/√K (rms_seed:
the RMS per-seed distance to the limit, its finite-width bias ignored, which favours the
finite side), so equal error needs K = (rms_seed/err)² seeds: time K·t_seed. The ratio is that
time over the engine's; the best width among those tried is reported.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
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


def accuracy_per_second(arch: str, opt: str, configs: list[tuple[int, int]],
                        widths: list[int]) -> None:
    """The best (particles, replicas) of ``configs`` against the best width of ``widths``."""
    tr, x, y = setup(arch, opt, 16, 10)
    limits = []
    for m, reps in configs:
        secs, lim = run_limit(arch, opt, m, batch=16, steps=10, replicas=reps)
        err = float(np.sqrt(np.mean(lim.stderr[1:] ** 2)))
        limits.append((secs * err ** 2, secs, err, m, reps, lim))  # error²·time: the cost
        print(f"    limit M = {m} ({reps} replicas): {secs:.2f} s, error {err:.4f}")
    _, secs, err, m, reps, lim = min(limits, key=lambda r: r[0])
    best = None
    for n in widths:
        with blas_threads(1):
            start = time.perf_counter()
            f = train(tr, x, y, n, seeds=range(4)).f
            per_seed = (time.perf_counter() - start) / 4
        rms = float(np.sqrt(np.mean((f[:, 1:] - lim.f[None, 1:]) ** 2)))
        need = (rms / err) ** 2 * per_seed
        print(f"    width {n}: per-seed RMS distance {rms:.4f}, {per_seed:.2f} s/seed, "
              f"{(rms / err) ** 2:.0f} seeds → {need:.1f} s")
        best = need if best is None else min(best, need)
    assert best is not None
    print(f"  {arch} {opt}: limit (M = {m}, {reps} replicas) {secs:.2f} s at error {err:.4f}; "
          f"finite-width seed averaging at the same error {best:.1f} s; ratio "
          f"{best / secs:.1f}×")


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
    print("accuracy per second (equal error):")
    widths = [256, 512] if quick else [256, 512, 1024]
    accuracy_per_second("mlp2", "adam", [(4096, 8), (8192, 8)], widths)
    accuracy_per_second("mlp2", "sgd", [(4096, 8), (16384, 4), (65536, 4)], widths)
    accuracy_per_second("mlp1", "adam", [(16384, 8), (131072, 8)], widths)
    accuracy_per_second("mlp1", "sgd", [(16384, 8), (131072, 8)], widths)


if __name__ == "__main__":
    main("--quick" in sys.argv)
