"""Randomised QMC draws of the μ-limit engine's initial vector parameters (mu_fast_ops,
GaussianPool with scrambled Sobol' points).

Each replica scrambles its own Sobol' sequence, so replica means stay iid and unbiased and the
s.e. std/√R stays valid; the draws only make each replica's particle average more accurate.
Tolerances: R = 16 replicas, so 4 combined s.e. per entry (Student t, 15 degrees of freedom:
≈ 10⁻³ per entry) is a real check at a fixed seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compiler.frontend.parse import parse_file
from compiler.train.setup import build_training
from runtime.limits import mu_fast
from runtime.limits.mu_fast_ops import GaussianPool
from runtime.limits.trajectory import LimitTrajectory, TrajectoryOptions, limit_trajectory

MLP1 = parse_file(Path(__file__).parent.parent / "samples" / "mlp1.nx")


def test_qmc_draws_are_standard_normal_and_independent_per_replica() -> None:
    """Marginally N(0, 1) per column (a balanced Sobol' set of 2^k points: the sample mean and
    variance of Φ⁻¹(u) are exact up to the stratification, far inside the iid s.e. 1/√M), two
    replicas' scrambles differ, and draws past the QMC block come from the generator."""
    m = 4096
    pools = [GaussianPool(m, np.random.default_rng([0, r]), orthogonal=False, qmc_dims=3)
             for r in range(2)]
    a, b = (np.hstack([p.draw(1) for _ in range(3)]) for p in pools)
    assert np.abs(a.mean(axis=0)).max() < 0.1 / np.sqrt(m)
    assert np.abs(a.var(axis=0) - 1).max() < 0.2 * np.sqrt(2 / m)
    # each replica its own scramble (independent seeds): different point sets, not a
    # permutation of one (the same index in two scrambles is correlated, which is harmless: a
    # replica's estimate is a symmetric function of its particles)
    assert np.abs(np.sort(a[:, 0]) - np.sort(b[:, 0])).max() > 1e-3
    rest = pools[0].draw(2)
    assert rest.shape == (m, 2) and abs(rest.mean()) < 4 / np.sqrt(2 * m)


def _limit(monkeypatch: pytest.MonkeyPatch, qmc: bool, orthogonal: bool, m: int, seed: int
           ) -> LimitTrajectory:
    monkeypatch.setattr(mu_fast, "QMC", qmc)
    monkeypatch.setattr(mu_fast, "ORTHOGONAL", orthogonal)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 10)) * np.sqrt(0.4)
    y = rng.standard_normal((16, 1))
    tr = build_training(MLP1, "mup", "sgd(lr=0.2)", "mse", steps=10, n_train=16, n_test=4,
                        center=True)
    return limit_trajectory(tr, x, y, TrajectoryOptions(particles=16 * m, replicas=16,
                                                        seed=seed, bias_check=False))


def test_qmc_is_unbiased_and_cuts_the_error_at_equal_cost(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """mlp1, μP, SGD, B = 16, T = 10 (the benchmark's case): the default draws (orthogonal +
    RQMC) agree with plain iid particles within 4 combined s.e., at under half their s.e. for
    the same particles (measured: 0.27 of plain iid, 0.54 of orthogonal draws alone, at 4096
    per replica; the same work per particle)."""
    fast = _limit(monkeypatch, True, True, 2048, 1)
    plain = _limit(monkeypatch, False, False, 2048, 2)
    z = np.abs(fast.f[1:] - plain.f[1:]) / np.hypot(fast.stderr[1:], plain.stderr[1:])
    assert z.max() <= 4.0, z.max()
    ratio = np.sqrt(np.mean(fast.stderr[1:] ** 2) / np.mean(plain.stderr[1:] ** 2))
    assert ratio < 0.5, ratio
    assert np.abs(fast.f[-1]).max() > 10 * fast.stderr[-1].max()  # trained: not all near 0


def test_the_qmc_block_is_exactly_step_0s_draws() -> None:
    """mu_fast_run.qmc_dims counts the Gaussians of step 0: mlp2's 10 + 1 initial vectors, the
    forward W̊_0 on every point (6) and the backward W̊_0ᵀ on the batch (4), 21 in all; a
    replica has used all but the backward's 4 when step 0's forward is done, and all of them
    before step 1's forward draws (which then come from the generator)."""
    from runtime.limits.mu_fast_run import ReplicaRun, qmc_dims
    from runtime.limits.trajectory import plan_limit
    from runtime.trainer import backprops

    program = parse_file(Path(__file__).parent.parent / "samples" / "mlp2.nx")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, len(program.input_names)))
    y = rng.standard_normal((4, 1))
    tr = build_training(program, "mup", "sgd(lr=0.2)", "mse", steps=2, n_train=4, n_test=2,
                        center=True)
    groups = mu_fast.group_limits(plan_limit(tr))
    bps = backprops(tr.program)
    split = mu_fast.forward_split(tr, bps)
    assert qmc_dims(tr, bps, groups, split) == 10 + 1 + 6 + 4
    run = ReplicaRun(tr, bps, groups, 1024, split, np.random.default_rng(1), True, True)
    left: list[int] = []
    run.run(x, y, None, observe=lambda t, _: left.append(run.pool.qmc.shape[1]), steps=1)
    assert left == [4, 0]
