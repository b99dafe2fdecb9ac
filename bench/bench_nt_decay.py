"""Cost of weight decay and of k > 1 outputs in the NT limit (runtime/limits/nt_decay.py,
nt_timed.py, nt_outputs.py), as ratios against the same limit without them, same process.

1. mlp3, NTP, centred, B = 8 + 4 test points, Monte Carlo M = 2^14: adam vs adamw (decay of every
   group: the kets of all T+1 times, (T+1)·C copies) at T = 5 and 10.
2. The readout-only decay on the exact path (SGD): the accumulators cost nothing.
3. k = 2 outputs (ce): Monte Carlo M = 2^14 against k = 1 on the same arch with one output.

Times are warm (second run).  Measured 2026-12-07 (shared 2-core machine, loaded): adam 0.28 s vs
adamw 2.68 s at T = 5 (×9.6), 0.27 s vs 12.7 s at T = 10 (×46): the (T+1)·C copies made the
sampler's hat conditioning (runtime/limits/hats.py, then a pinv over the copies per MatMul use,
90% of the time) grow faster than linearly in T.  With the hats by Gram–Schmidt (same day, load
≈ 7): adam 0.80 s vs adamw 6.28 s at T = 5 (×7.9), 0.81 s vs 11.6 s at T = 10 (×14, near the
×11 of the copies themselves).  Readout decay on the exact path: 0.02 vs 0.03 s.
k = 2: 0.21 vs 0.62 s (×3.0, C·k copies).

Run: python bench/bench_nt_decay.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compiler.frontend.parse import parse_file, parse_text
from compiler.train.options import parse_optimizer
from compiler.train.setup import build_training
from runtime.limits.trajectory import TrajectoryOptions, limit_trajectory
from tests.conftest import TWO_OUTPUT_MLP

ROOT = Path(__file__).resolve().parent.parent
MLP3 = parse_file(ROOT / "samples" / "mlp3.nx")
TWO = parse_text(TWO_OUTPUT_MLP)  # the k = 2 network the tests use
ONE = parse_file(ROOT / "samples" / "mlp2.nx")


def seconds(fn: Callable[[], object]) -> float:
    """The second of two runs (the first lowers and compiles the ket program, cached)."""
    fn()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 10))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.standard_normal((8, 1))
    mc = TrajectoryOptions(particles=1 << 14)
    for steps in (5, 10):
        def run(opt: str, steps: int = steps) -> object:
            tr = build_training(MLP3, "ntp", opt, "mse", steps=steps, n_train=8, n_test=4,
                                center=True)
            return limit_trajectory(tr, x, y, mc)
        base, decay = seconds(lambda: run("adam(lr=0.05)")), seconds(lambda: run("adamw(lr=0.05)"))
        print(f"T={steps}: adam {base:.2f} s, adamw (every group) {decay:.2f} s, "
              f"ratio {decay / base:.2f}")
    tr = build_training(MLP3, "ntp", "sgd(lr=0.5)", "mse", steps=50, n_train=8, n_test=4,
                        center=True)
    ro = tr.with_optimizers({"v": parse_optimizer("sgd(lr=0.5, wd=0.1)")})
    plain = seconds(lambda: limit_trajectory(tr, x, y))
    read = seconds(lambda: limit_trajectory(ro, x, y))
    print(f"exact SGD T=50: {plain:.2f} s, readout decay {read:.2f} s, ratio {read / plain:.2f}")
    yk = np.eye(2)[rng.integers(0, 2, 8)]
    one = build_training(ONE, "ntp", "adam(lr=0.05)", "mse", steps=5, n_train=8, n_test=4,
                         center=True)
    two = build_training(TWO, "ntp", "adam(lr=0.05)", "ce", steps=5, n_train=8, n_test=4,
                         center=True)
    t1 = seconds(lambda: limit_trajectory(one, x, y, mc))
    t2 = seconds(lambda: limit_trajectory(two, x, yk, mc))
    print(f"adam MC T=5: k=1 {t1:.2f} s, k=2 {t2:.2f} s, ratio {t2 / t1:.2f}")


if __name__ == "__main__":
    main()
