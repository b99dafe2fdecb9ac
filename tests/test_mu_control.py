"""Control variates of the μ engine (runtime/limits/mu_control.py): calibrated standard errors
on synthetic replicas with a known mean, and the engine's estimate with and without them."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.frontend.parse import parse_file
from compiler.train.setup import build_training
from runtime.limits import mu_control, mu_fast
from runtime.limits.trajectory import TrajectoryOptions, limit_trajectory
from tests.conftest import ROOT


def synthetic(rng: np.random.Generator, reps: int, steps: int, centred: bool
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replicas whose trajectory is a known mean plus noise inherited from f_1, f_2 (a random
    linear map of the early noise) and fresh noise of its own; returns (f, early, truth)."""
    k1 = mu_control.CONTROL_STEPS + 1
    truth = np.linspace(0.0, 1.0, steps + 1)
    mix = rng.standard_normal((k1, steps + 1))

    def draw(r: int, t: int) -> np.ndarray:
        early_noise = rng.standard_normal((r, k1))
        if centred:
            early_noise[:, 0] = 0.0
        late = early_noise @ mix + 0.3 * rng.standard_normal((r, steps + 1))
        late[:, :k1] = early_noise
        return (truth + late)[:, :t + 1, None, None]

    return draw(reps, steps), draw(4 * reps, k1 - 1), truth


@pytest.mark.parametrize("centred", [True, False])
def test_control_unbiased_and_calibrated(centred: bool) -> None:
    """Over 400 synthetic experiments of R = 16 replicas: the controlled estimate's z-score
    (per experiment, averaged over the steps beyond the controls) has mean 0 within 4 standard
    errors of that mean (unbiased up to the O(1/R) of the fitted slopes), and the mean z² is 1
    within 0.25 (its standard error over 400 trials is about √2/√400 = 0.07 for Gaussian z; the
    fitted slopes fatten the tails a little)."""
    rng = np.random.default_rng(1)
    zs = []
    for _ in range(400):
        f, early, truth = synthetic(rng, 16, 8, centred)
        c = mu_control.control(f, early)
        est = c.values.mean(axis=0)[:, 0, 0]
        se = c.stderr()[:, 0, 0]
        zs.append((est - truth)[3:] / se[3:])
    z = np.array(zs)
    per_experiment = z.mean(axis=1)
    assert abs(per_experiment.mean()) < 4 * per_experiment.std(ddof=1) / np.sqrt(len(z))
    assert abs(np.mean(z**2) - 1.0) < 0.25


def test_control_shrinks_the_error() -> None:
    """With most of the late noise inherited from f_0..f_2, the controlled s.e. is well below
    the plain one: per step the variance ratio is (0.09 + v/4)/(0.09 + v), v ≈ 2 the inherited
    variance (0.09 the fresh noise, v/4 the controls' mean from 4R early replicas), about 0.3;
    the RMS over the late steps is asserted below 0.75 of the plain one."""
    rng = np.random.default_rng(2)
    f, early, _ = synthetic(rng, 32, 8, True)
    plain = f.std(axis=0, ddof=1)[:, 0, 0] / np.sqrt(32)
    controlled = mu_control.control(f, early).stderr()[:, 0, 0]
    assert _late_rms(controlled) < 0.75 * _late_rms(plain)


def _late_rms(se: np.ndarray) -> float:
    return float(np.sqrt(np.mean(se[mu_control.CONTROL_STEPS + 1:] ** 2)))


def test_engine_controls_agree_with_plain_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """mlp2 (μP, SGD, B = 4, T = 5, 16 × 256 particles): the controlled and the plain estimates
    (independent particles for the controls' mean, the same replicas) agree within 4 of the
    plain run's s.e. at every step and point, and the controlled s.e. is smaller on average."""
    program = parse_file(ROOT / "samples" / "mlp2.nx")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, len(program.input_names)))
    y = rng.standard_normal((4, 1))
    tr = build_training(program, "mup", "sgd(lr=0.2)", "mse", steps=5, n_train=4, n_test=2,
                        center=True)
    opts = TrajectoryOptions(particles=4096, replicas=16, bias_check=False)
    controlled = limit_trajectory(tr, x, y, opts)
    monkeypatch.setattr(mu_fast, "CONTROL", False)
    plain = limit_trajectory(tr, x, y, opts)
    late = slice(mu_control.CONTROL_STEPS + 1, None)
    assert np.all(np.abs(controlled.f - plain.f)[late] <= 4 * plain.stderr[late])
    assert np.mean(controlled.stderr[late]) < np.mean(plain.stderr[late])
    assert any("control variates" in n for n in controlled.notes)
