"""The NT limit's Monte Carlo path on many points (spec 05 §5.2; the paper's Fig. 5.1 runs on
104): every weight orientation conditions one hat per copy of the total program on all the
others (runtime/limits/hats.py), so the joint law over ~50 points must still be right.

Against kernel gradient descent with the closed-form ReLU NTK (07 §7.1, written in
tests/test_nt_limit.py, independent of the engine).  With 16 replicas each z = error / s.e. is
t-distributed with 15 degrees of freedom: the 8 test points at the last step must have |z| < 4
(P(|t₁₅| > 4) ≈ 1.2e-3 each), and the RMS of z over every point and step must be below 3 (its
expectation is √(15/13) ≈ 1.07; even if all values were one, P(|t₁₅| > 3) ≈ 0.9%).
"""

from __future__ import annotations

import numpy as np

from runtime.limits.trajectory import TrajectoryOptions, limit_trajectory
from tests.test_nt_limit import _data, _training, closed_form_ntk, kernel_gd

TRAIN, TEST, STEPS, ETA = 40, 8, 3, 0.5


def test_sgd_monte_carlo_on_48_points_is_kernel_gradient_descent() -> None:
    x, y = _data(TRAIN + TEST, TRAIN, seed=5)
    tr = _training("mlp3", f"sgd(lr={ETA})", STEPS, TRAIN, TEST)
    res = limit_trajectory(tr, x, y, TrajectoryOptions(method="mc", particles=1 << 14,
                                                       replicas=16))
    assert res.path == "mc"
    _, ntk = closed_form_ntk(x, 3, "relu")
    want = kernel_gd(ntk, np.zeros(TRAIN + TEST), y, ETA, STEPS, TRAIN)
    se = res.stderr[1:, :, 0]
    assert np.all(se > 0)
    z = (res.f[1:, :, 0] - want[1:]) / se
    assert np.max(np.abs(z[-1, TRAIN:])) < 4
    assert float(np.sqrt(np.mean(z**2))) < 3
    # the test points move, resolved by the samples: the comparison is not between two zeros
    assert float(np.sqrt(np.mean(want[-1, TRAIN:] ** 2))) > 4 * np.max(se[-1, TRAIN:])
