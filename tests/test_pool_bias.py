"""The pooled pool-size bias bound of particle engines (runtime.limits.mcbias, 01 §1.6)."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.limits.mcbias import _null_sd, pooled_bias_bound


def _runs(bias: np.ndarray, replicas: int, seed: int, common: float = 0.0
          ) -> tuple[np.ndarray, np.ndarray]:
    """Per-replica full and half estimates; ``common``: the weight of a noise every column of a
    replica shares (replicas move all steps and points together), on top of independent noise."""
    rng = np.random.default_rng(seed)
    cols = bias.size

    def noise() -> np.ndarray:
        shared = rng.standard_normal((replicas, 3)) @ rng.standard_normal((3, cols))
        return rng.standard_normal((replicas, cols)) + common * shared

    full = noise()
    half = full - bias + noise()  # a noisier half pool
    return full, half


def test_a_systematic_difference_is_bounded_from_above() -> None:
    """With half-pool bias b(M/2) = 2·b(M) (a = 1/2), D = b(M) and the bound covers b(M): the
    pooled RMS estimate of D is within a few % at 400 columns, SLACK = 2.4 gives the room."""
    cols = 400
    bias = np.linspace(0.5, 1.5, cols)
    full, half = _runs(bias, 16, 0)
    bound = pooled_bias_bound(full, half, 16).bound
    assert np.sqrt(np.mean(bound**2)) >= np.sqrt(np.mean(bias**2))
    assert np.mean(bound >= bias) > 0.8  # per column: D̄'s noise (s.e. 0.35) moves a few below


@pytest.mark.parametrize(("reps", "common", "allowed"),
                         [(16, 0.0, 0.12), (4, 0.0, 0.15), (16, 3.0, 0.12), (4, 3.0, 0.2)])
def test_no_bias_rarely_fires(reps: int, common: float, allowed: float) -> None:
    """Without a pool-size effect the check reports a bias in few of 200 runs, where the rule
    b̂² > 0 fired on about half: the threshold is DETECT_Z = 2 null s.d. of the energy, a
    χ²-like statistic with a heavier right tail the fewer its effective degrees of freedom,
    and at 4 replicas the s.d. itself is estimated from 3. Measured over 400 runs: 7.3 % at 16
    replicas with a replica-wide shared noise, 9.8 % at 4 independent, 13.8 % at 4 shared."""
    fired = sum(pooled_bias_bound(*_runs(np.zeros(200), reps, seed, common), reps).bound.any()
                for seed in range(200))
    assert fired <= allowed * 200


@pytest.mark.parametrize(("reps", "common"), [(16, 0.0), (8, 3.0)])
def test_a_bias_above_the_resolution_is_detected(reps: int, common: float) -> None:
    """A uniform bias of 2× the check's resolution (its own null-run estimate) is detected in
    at least 90 % of 100 runs, and then the bound's RMS covers it."""
    cols = 200
    resolution = pooled_bias_bound(*_runs(np.zeros(cols), reps, 999, common), reps).resolution
    hits = 0
    for seed in range(100):
        res = pooled_bias_bound(*_runs(np.full(cols, 2 * resolution), reps, seed, common), reps)
        if res.bound.any():
            hits += 1
            assert np.sqrt(np.mean(res.bound**2)) >= 2 * resolution
    assert hits >= 90


def test_null_sd_estimates_the_energys_spread() -> None:
    """_null_sd (the Wishart-unbiased tr Σ² estimate) against the measured spread of the
    energy over 2000 bias-free draws with a known correlated Σ: the mean per-draw estimate of
    the variance over the measured variance is 1 within 10 % (the measured variance's own s.e.
    is about 3 % at 2000 draws of a χ²-like energy, the estimate's mean's about as much)."""
    rng = np.random.default_rng(3)
    cols, reps = 50, 6
    root = rng.standard_normal((cols, cols)) / np.sqrt(cols) + np.eye(cols)
    energies, sds = [], []
    for _ in range(2000):
        d = rng.standard_normal((reps, cols)) @ root.T
        energies.append(float(np.mean(d.mean(axis=0) ** 2)))
        sds.append(_null_sd(d, np.zeros(cols)))
    measured = float(np.var(energies))
    assert abs(float(np.mean(np.square(sds))) / measured - 1.0) < 0.1


def test_two_replicas_have_no_significance_test() -> None:
    """With R = 2 tr Σ² has no estimate: the resolution is NaN and the check falls back to
    b̂² > 0, so over 200 bias-free runs it fires on a sizeable share (a test would not), and a
    bias far above the noise (10 per column against noise s.e. 1) is always bounded."""
    fired = 0
    for seed in range(200):
        res = pooled_bias_bound(*_runs(np.zeros(100), 2, seed), 2)
        assert np.isnan(res.resolution)
        fired += bool(res.bound.any())
    assert 40 <= fired <= 160
    res = pooled_bias_bound(*_runs(np.full(100, 10.0), 2, 0), 2)
    assert np.sqrt(np.mean(res.bound**2)) >= 10.0
