"""The NT limit on many points: the paper's Fig. 5.1 limit (07 §7.4: NTP mlp4, Adam, 100
training + 4 test points, centred) by Monte Carlo (runtime/limits/nt.py, nt_samples.py).

The joint samples come from the total program over the 104 copies (02 §2.3), so each weight
orientation conditions ~104 hats on each other (runtime/limits/hats.py).  Printed, same process:

1. the lowering of the 104-copy total program (cached after the first run; compiler side);
2. before/after: the sampler with the former pseudo-inverse factor (reproduced below as
   ``PinvHats``, O(K³) per hat) against the Gram–Schmidt one (O(P·K) per hat), M = 512 in 4
   replicas, T = 2, warm, with the largest difference of the trajectories (the same normals are
   drawn, so they agree to round-off, far below the standard error);
3. after only: M = 2048 (the bench_paper quick size) and M = 16384, T = 5, and M = 2048 at
   T = 10, the fitted exponent of time against M.

Run: python -m bench.bench_nt_many [--no-before]

Measured 2026-12-07 (shared 2-core machine, load ≈ 5–7): lowering 4.7 s; M = 512, T = 2:
pseudo-inverse hats 125.3 s, Gram–Schmidt 2.5 s (×50), trajectories equal to 2.7e-14 (largest
s.e. 3.5e-2); M = 2048 / 16384 at T = 5: 2.0 / 7.3 s (time ~ M^0.61 there: fixed costs), M = 2048
at T = 10: 3.7 s.  The former engine took 582 s for the bench_paper quick limit (M = 2048 in 4
replicas, T = 5, lowering included); in bench_paper at 131072 particles, T = 10: 28 s.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compiler.frontend.parse import parse_file
from compiler.train.setup import Training, build_training
from runtime.limits import montecarlo, nt
from runtime.limits.hats import extend_factor, grow
from runtime.limits.trajectory import LimitTrajectory, TrajectoryOptions, limit_trajectory

ROOT = Path(__file__).resolve().parent.parent
OPT = "adam(0.9, 0.99, 1e-4, lr=0.2)"


class PinvHats:
    """The former factor (baseline): a pseudo-inverse of the triangular factor per hat."""

    def __init__(self, replicas: int = 1) -> None:
        self.replicas = replicas
        self.args: list[np.ndarray] = []
        self.zetas: list[np.ndarray] = []
        self.rows = np.zeros((1, 1, 0, 0))

    def add(self, x: np.ndarray, zeta_of: Callable[[tuple[int, ...]], np.ndarray]) -> np.ndarray:
        grams = np.broadcast_arrays(*(np.mean(a * x, axis=0) for a in self.args))
        d = np.mean(x * x, axis=0)
        c = np.stack(grams, axis=-1) if grams else np.zeros((*d.shape, 0))
        shape = np.broadcast_shapes(self.rows.shape[:-2], c.shape[:-1], d.shape,
                                    (self.replicas, 1))
        rows = np.broadcast_to(self.rows, (*shape, *self.rows.shape[-2:]))
        lv, s = extend_factor(rows, np.broadcast_to(c, (*shape, c.shape[-1])),
                              np.broadcast_to(d, shape))
        zeta = zeta_of((x.shape[0], *shape))
        hat = s * zeta
        for j, z in enumerate(self.zetas):
            hat = hat + lv[..., j] * z
        self.rows = grow(rows, lv, s)
        self.args.append(x)
        self.zetas.append(zeta)
        return np.asarray(hat)


def paper() -> tuple[np.ndarray, np.ndarray]:
    d = np.load(ROOT / "samples" / "paper" / "paper.npz")
    return np.vstack([d["X_train"], d["X_test"]]), d["y_train"][:, None]


def training(steps: int) -> Training:
    mlp4 = parse_file(ROOT / "samples" / "mlp4.nx")
    return build_training(mlp4, "ntp", OPT, "mse", steps=steps, n_train=100, n_test=4,
                          center=True)


def timed(steps: int, particles: int) -> tuple[LimitTrajectory, float]:
    x, y = paper()
    opts = TrajectoryOptions(particles=particles, replicas=4)
    start = time.perf_counter()
    res = limit_trajectory(training(steps), x, y, opts)
    return res, time.perf_counter() - start


def main() -> None:
    start = time.perf_counter()
    nt._lowered(training(2).totals[0])
    print(f"lowering the 104-copy total program: {time.perf_counter() - start:.1f} s (once)")
    after, t_after = timed(2, 512)
    print(f"M=512 R=4 T=2: Gram-Schmidt hats {t_after:.2f} s")
    if "--no-before" not in sys.argv:
        montecarlo.ParticleHats = PinvHats  # type: ignore[misc,assignment]
        try:
            before, t_before = timed(2, 512)
        finally:
            montecarlo.ParticleHats = nt_hats_class()  # type: ignore[misc]
        diff = float(np.max(np.abs(before.f - after.f)))
        print(f"M=512 R=4 T=2: pseudo-inverse hats {t_before:.2f} s; ratio {t_before / t_after:.1f}"
              f"x; largest difference {diff:.1e} (largest s.e. {float(after.stderr.max()):.1e})")
    sizes = [(5, 2048), (5, 16384), (10, 2048)]
    secs = {}
    for steps, m in sizes:
        res, secs[(steps, m)] = timed(steps, m)
        print(f"M={m} R=4 T={steps}: {secs[(steps, m)]:.2f} s, largest s.e. "
              f"{float(res.stderr.max()):.1e}")
    slope = np.log(secs[(5, 16384)] / secs[(5, 2048)]) / np.log(8)
    print(f"time ~ M^{slope:.2f} between M = 2048 and 16384 (T = 5); T 5 → 10 at M = 2048: "
          f"x{secs[(10, 2048)] / secs[(5, 2048)]:.2f}")


def nt_hats_class() -> type:
    from runtime.limits.hats import ParticleHats

    return ParticleHats


if __name__ == "__main__":
    main()
