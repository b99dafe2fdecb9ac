"""The pooled pool-size bias bound of particle engines (runtime.limits.mcbias, 01 §1.6)."""

from __future__ import annotations

import numpy as np

from runtime.limits.mcbias import SLACK, pooled_bias_bound


def _runs(bias: np.ndarray, replicas: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    full = rng.standard_normal((replicas, bias.size))
    half = full - bias + rng.standard_normal((replicas, bias.size))  # a noisier half pool
    return full, half


def test_a_systematic_difference_is_bounded_from_above() -> None:
    """With half-pool bias b(M/2) = 2·b(M) (a = 1/2), D = b(M) and the bound covers b(M): the
    pooled RMS estimate of D is within a few % at 400 columns, SLACK = 2.4 gives the room."""
    cols = 400
    bias = np.linspace(0.5, 1.5, cols)
    full, half = _runs(bias, 16, 0)
    bound = pooled_bias_bound(full, half, 16)
    assert np.sqrt(np.mean(bound**2)) >= np.sqrt(np.mean(bias**2))
    assert np.mean(bound >= bias) > 0.8  # per column: D̄'s noise (s.e. 0.35) moves a few below


def test_no_bias_gives_a_zero_or_small_bound() -> None:
    """Without a pool-size effect E D̄² = E s.e.², so b² ≤ 0 about half the time and otherwise
    small: the bound's RMS stays below SLACK times a few noise s.e. of the pooled estimate."""
    cols, reps = 400, 16
    rms = []
    for seed in range(20):
        full, half = _runs(np.zeros(cols), reps, seed)
        rms.append(float(np.sqrt(np.mean(pooled_bias_bound(full, half, reps) ** 2))))
    se = np.sqrt(2 / reps)  # s.e. of D̄ per column
    assert sum(r == 0 for r in rms) >= 5
    assert max(rms) < SLACK * se * (4 * np.sqrt(2 / cols)) ** 0.5 * 2
