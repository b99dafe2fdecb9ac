"""The initial operator W̊_0 of the μ-limit engine as a lazily sampled Gaussian matrix
(runtime/limits/mu_fast_ops.py, conditioned Gaussians).

On M particles W̊_0 acts as the matrix W = (Γ Qᵀ + P Δᵀ)/M. A width-M network's W_0 has iid
N(0, 1/M) entries, so for orthonormal (⟨a|a⟩ = 1) kets p, q met by the two sides the block entry
⟨p|W q⟩ is N(0, 1/M): M·⟨p|Wq⟩² has mean 1. Without the conditioning the block is counted by both
sides (⟨p|γ⟩ + ⟨δ|q⟩) and the mean is 2. Over R replicas × r × s entries the sample mean of a χ²₁
variable has s.e. √(2/(R·r·s)) (0.05 here), so the window [0.8, 1.2] is 4 s.e. wide.
"""

from __future__ import annotations

import numpy as np
import pytest

from runtime.limits import mu_fast_ops
from runtime.limits.mu_fast_ops import GaussianPool, InitialOperator


def _block_statistic(m: int, replicas: int, orthogonal: bool) -> float:
    """mean of M·⟨p|W q⟩² over the block the forward side (two uses of 4 new kets) and the
    transposed side (4 kets, met in between) have met."""
    stats = []
    for r in range(replicas):
        rng = np.random.default_rng([3, r])
        op = InitialOperator(m, 1.0, GaussianPool(m, rng, orthogonal))
        for transpose in (False, True, False):  # the sides interleave, as in training
            op.apply(rng.standard_normal((m, 4)), transpose)
        q, p = op.fwd.basis, op.bwd.basis  # orthonormal in the 1/M inner product
        w = (op.fwd.gauss @ q.T + p @ op.bwd.gauss.T) / m  # the operator as a matrix
        block = p.T @ w @ q / m  # ⟨p_i|W q_j⟩, (4, 8)
        stats.append(m * block**2)
    return float(np.mean(stats))


@pytest.mark.parametrize("orthogonal", [False, True])
def test_the_met_block_has_the_variance_of_a_width_m_gaussian_matrix(
        orthogonal: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    assert 0.8 <= _block_statistic(1024, 25, orthogonal) <= 1.2
    monkeypatch.setattr(mu_fast_ops, "CONDITIONED", False)
    assert _block_statistic(1024, 25, orthogonal) >= 1.6  # the double count (mean 2)
