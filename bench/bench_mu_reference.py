"""The μ-limit reference path (05 §5.4, runtime/limits/mu_reference.py): seconds per (M, T, B)
and where the time goes, ratios against the smallest run in the same process.

Phases, from one cProfile of each run (cumulative seconds of the functions named), every run
cold (the formula caches emptied first, as in a fresh process):
  plan     runtime.limits.trajectory.plan_limit     (the abcd analysis: which limit, 05 §5.5)
  unroll   compiler.passes.unroll.unroll            (the T-step training program, 04 §4.3)
  lower    compiler.kets.lowering.lower             (ket rules, parity, Stein routing, 01 §1.4)
  compile  runtime.codegen.compile_formula          (sympy → numpy, per distinct formula)
  copies   runtime.limits.outer.copy_average_joint  (E′ of the matrix updates: O(M²/R) pairs)
  stein    MonteCarlo _Run._stein                   (dot coefficients by Stein's lemma)
  rest     everything else (hats, Nonlins, Avgs, bookkeeping)
Fitted exponents: time ∝ M^a between the two largest M at the baseline (T, B), and likewise T
and B.

Run: python bench/bench_mu_reference.py [--quick]  (--quick: mlp2 SGD and Adam at M ≤ 2048).
"""

from __future__ import annotations

import cProfile
import math
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compiler.frontend.parse import parse_file
from compiler.train.setup import build_training
from runtime.limits.trajectory import TrajectoryOptions, limit_trajectory

ROOT = Path(__file__).resolve().parent.parent
PHASES = {
    "plan": ("runtime/limits/trajectory.py", "plan_limit"),
    "unroll": ("compiler/passes/unroll.py", "unroll"),
    "lower": ("compiler/kets/lowering.py", "lower"),
    "compile": ("runtime/codegen.py", "compile_formula"),
    "copies": ("runtime/limits/outer.py", "copy_average_joint"),
    "stein": ("runtime/limits/montecarlo.py", "_stein"),
}


def run(opt: str, m: int, steps: int, batch: int) -> tuple[float, dict[str, float]]:
    """Wall seconds of one reference limit of mlp2 under μP, and seconds per phase."""
    tr = build_training(parse_file(ROOT / "samples/mlp2.nx"), "mup", opt, "mse", steps, batch,
                        center=True)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((batch, 10)), rng.standard_normal((batch, 1))
    cold()
    prof = cProfile.Profile()
    start, cpu = time.perf_counter(), time.process_time()
    prof.enable()
    limit_trajectory(tr, x, y, TrajectoryOptions(particles=m), engine="mu-reference")
    prof.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    phases = {}
    for phase, (path, func) in PHASES.items():
        phases[phase] = max((v[3] for (file, _, name), v in stats.items()
                             if file.endswith(path) and name == func), default=0.0)
    phases["rest"] = max(0.0, total - sum(phases.values()))
    phases["cpu"] = time.process_time() - cpu  # the machine is shared: CPU seconds too
    return total, phases


def cold() -> None:
    """Empty the caches of compiled formulas and formula analyses (a fresh process's state)."""
    from compiler.kets import parity
    from runtime import codegen
    from runtime.limits import ketfuncs

    for f in (codegen.compile_formula, ketfuncs._function, ketfuncs._derivative,
              ketfuncs._compiled, ketfuncs._canonical_derivative, parity.nonsmooth_args):
        f.cache_clear()


def exponent(a: tuple[int, float], b: tuple[int, float]) -> float:
    return math.log(b[1] / a[1]) / math.log(b[0] / a[0])


def sweep(opt: str, grid: list[tuple[int, int, int]]) -> None:
    print(f"\nmlp2, μP, {opt}, centred: seconds per (M, T, B); ratio to the first row")
    print(f"{'M':>6} {'T':>3} {'B':>3} {'seconds':>8} {'ratio':>6}  "
          + " ".join(f"{p:>8}" for p in (*PHASES, "rest", "cpu")))
    times: dict[tuple[int, int, int], float] = {}
    for m, t, b in grid:
        total, phases = run(opt, m, t, b)
        times[(m, t, b)] = total
        base = times[grid[0]]
        print(f"{m:>6} {t:>3} {b:>3} {total:>8.2f} {total / base:>6.2f}  "
              + " ".join(f"{phases[p]:>8.2f}" for p in (*PHASES, "rest", "cpu")), flush=True)
    m0, t0, b0 = grid[0]
    for axis, pick in (("M", 0), ("T", 1), ("B", 2)):
        rows = [(k[pick], v) for k, v in times.items()
                if all(k[i] == (m0, t0, b0)[i] for i in range(3) if i != pick)]
        rows = sorted(set(rows))
        if len(rows) >= 2:
            print(f"  time ∝ {axis}^{exponent(rows[-2], rows[-1]):.2f} "
                  f"({axis} = {rows[-2][0]} → {rows[-1][0]})")


def schedules(opt: str, m: int, steps: int, batch: int) -> None:
    """The same limit with the program in unroll order and scheduled by depth (fused update
    pair sums, runtime/limits/mu_reference.by_depth), alternated to share the machine's load."""
    from runtime.limits import mu_reference

    best = {True: math.inf, False: math.inf}
    copies = {True: 0.0, False: 0.0}
    for _ in range(2):
        for flag in (False, True):
            mu_reference.BY_DEPTH = flag
            total, phases = run(opt, m, steps, batch)
            if total < best[flag]:
                best[flag], copies[flag] = total, phases["copies"]
    mu_reference.BY_DEPTH = True
    print(f"\n{opt} M={m} T={steps} B={batch}: unroll order {best[False]:.2f} s (copies "
          f"{copies[False]:.2f}), by depth {best[True]:.2f} s (copies {copies[True]:.2f}); "
          f"ratio {best[False] / best[True]:.2f}x", flush=True)


def main() -> None:
    quick = "--quick" in sys.argv
    if quick:
        grid = [(1024, 2, 2), (2048, 2, 2), (1024, 4, 2), (1024, 2, 4)]
    else:
        grid = [(1024, 4, 4), (2048, 4, 4), (4096, 4, 4), (1024, 8, 4), (1024, 4, 8)]
    run("adam(lr=0.05)", 256, 1, 1)  # warm-up: imports and sympy's own caches, not timed
    for opt in ("sgd(lr=0.5)", "adam(lr=0.05)"):
        schedules(opt, 2048 if quick else 4096, 3, 4)
    for opt in ("sgd(lr=0.5)", "adam(lr=0.05)"):
        sweep(opt, grid)


if __name__ == "__main__":
    main()
