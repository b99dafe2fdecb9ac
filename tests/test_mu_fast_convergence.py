"""Finite-width μP training approaches the engine's μ-limit (05 §5.3–5.4, 07 §7.3–7.4), and the
limit learns features (its kernels move by Θ(1), unlike the neural-tangent limit's).

The distance at width n is the RMS over seeds, steps and points of the per-seed gap
f_seed − f_limit. Its square is Var_seed(n) + bias(n)² + Var(limit estimate); the last term is
the engine's own Monte Carlo error, known from its replicas, and is subtracted so that the slope
measures the finite-width distance (Θ(n^{-½}) for the per-seed fluctuation, the slope the spec
predicts). A wrong limit would leave a floor and flatten the slope towards 0.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from compiler.frontend.parse import parse_file
from compiler.train.setup import Training, build_training
from runtime.limits.blas import blas_threads
from runtime.limits.mu_fast import forward_split, group_limits
from runtime.limits.mu_fast_run import ReplicaRun
from runtime.limits.trajectory import TrajectoryOptions, limit_trajectory, plan_limit
from runtime.trainer import StepView, backprops, train

SAMPLES = Path(__file__).parent.parent / "samples"
SLOPE_MAX = -0.4  # the spec's n^{-½}, with room for 6–8 seeds' scatter


def _setup(arch: str, opt: str, steps: int = 3) -> tuple[Training, np.ndarray, np.ndarray]:
    consts = {"S": 2} if arch in ("attention", "transformer_block") else None
    program = parse_file(SAMPLES / f"{arch}.nx", consts)
    d = len(program.input_names)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, d)) * np.sqrt(4 / d)
    y = rng.standard_normal((4, 1))
    tr = build_training(program, "mup", opt, "mse", steps=steps, n_train=4, n_test=1,
                        center=True)
    return tr, x, y


def convergence_slope(arch: str, opt: str, widths: tuple[int, ...], seeds: int,
                      particles: int, replicas: int = 16) -> tuple[float, list[float]]:
    """The fitted exponent of the de-noised RMS per-seed distance in n, and the distances."""
    tr, x, y = _setup(arch, opt)
    lim = limit_trajectory(tr, x, y, TrajectoryOptions(particles=particles, replicas=replicas,
                                                       seed=11))
    limit_var = float(np.mean(lim.stderr[1:] ** 2))
    dists = []
    for n in widths:
        with blas_threads(1):  # many small products: one thread is faster on a shared machine
            f = train(tr, x, y, n, seeds=range(100, 100 + seeds)).f
        msq = float(np.mean((f[:, 1:] - lim.f[None, 1:]) ** 2))
        dists.append(float(np.sqrt(max(msq - limit_var, 1e-30))))
    slope = float(np.polyfit(np.log(widths), np.log(dists), 1)[0])
    return slope, dists


@pytest.mark.parametrize(("arch", "opt", "widths", "seeds", "particles"), [
    ("mlp2", "sgd(lr=0.5)", (128, 256, 512, 1024), 6, 16 * 1024),
    ("mlp2", "adam(lr=0.05)", (64, 256, 1024), 8, 16 * 512),
    ("resmlp", "sgd(lr=0.2)", (128, 256, 512), 10, 16 * 512),
    ("attention", "sgd(lr=0.2)", (64, 256, 1024), 12, 16 * 512),  # heavy-tailed seeds
])
def test_finite_widths_approach_the_limit(arch: str, opt: str, widths: tuple[int, ...],
                                          seeds: int, particles: int) -> None:
    """Fast version (CI): three or four widths; the full sweep is the slow test below."""
    slope, dists = convergence_slope(arch, opt, widths, seeds, particles)
    assert slope <= SLOPE_MAX, (slope, dists)


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "opt"), [
    ("mlp2", "sgd(lr=0.5)"), ("mlp2", "adam(lr=0.05)"), ("mlp3", "sgd(lr=0.2)"),
    ("resmlp", "sgd(lr=0.2)"), ("resmlp", "adam(lr=0.02)"), ("attention", "sgd(lr=0.2)"),
    # ε = 0.1: attention's scores are 0 in the limit at step 0, so Wq's limit gradient is 0 and
    # Q(0) = 0; at width n it is O(n^{-½}) and Adam with ε = 1e-8 turns it into sign(noise), an
    # O(1) update, until n ≫ ε^{-2}. Measured (16 seeds, S = 2, T = 3): with ε = 1e-8 the seed
    # mean at n = 1024 is 7 s.e. from the limit (slope -0.28); with ε = 0.1 the gap is 0.0042
    # at n = 256 and 0.0009 at n = 1024.
    ("attention", "adam(lr=0.02, eps=0.1)"),
])
def test_finite_widths_approach_the_limit_full(arch: str, opt: str) -> None:
    # 16 seeds: with 8 the heavy-tailed per-seed distances gave slopes of -0.39 (mlp3 SGD) and
    # -0.29 (attention Adam) that 16 seeds resolve to -0.48 and below
    slope, dists = convergence_slope(arch, opt, (128, 256, 512, 1024, 2048), seeds=16,
                                     particles=32 * 1024, replicas=32)
    assert slope <= SLOPE_MAX, (slope, dists)


@pytest.mark.parametrize("arch", ["resmlp", "layernorm_mlp", "attention", "transformer_block"])
def test_mup_limits_run_for_general_architectures(arch: str) -> None:
    tr, x, y = _setup(arch, "adam(lr=0.05)", steps=2)
    lim = limit_trajectory(tr, x, y, TrajectoryOptions(particles=8 * 512, replicas=8))
    assert lim.engine == "mu" and np.all(np.isfinite(lim.f)) and np.all(lim.stderr[1:] > 0)
    moved = np.abs(lim.f[-1] - lim.f[0]) / lim.stderr[-1]
    assert moved.max() > 4  # training changed f beyond the MC error


def _kernel(x: np.ndarray) -> np.ndarray:
    """E[x(ξ) x(ξ′)] over particles or coordinates: (points, points)."""
    return x.T @ x / x.shape[0]


def _keep_kernel(seen: dict[tuple[int, int], np.ndarray], r: int, t: int,
                 kets: dict[str, np.ndarray]) -> None:
    seen[r, t] = _kernel(kets["x2"])


def _relative_change(k0: np.ndarray, k1: np.ndarray) -> float:
    return float(np.linalg.norm(k1 - k0) / np.linalg.norm(k0))


def test_the_mu_limit_moves_its_features_unlike_ntp() -> None:
    """The last hidden layer's kernel E[x²(ξ)x²(ξ′)] changes by Θ(1) in the μ-limit (same
    relative change in every replica), while under NTP finite-width training changes it by
    O(n^{-½}) (a fourfold width: about half the change)."""
    tr, x, y = _setup("mlp2", "sgd(lr=0.5)")
    plan = plan_limit(tr)
    bps = backprops(tr.program)
    split = forward_split(tr, bps)
    seen: dict[tuple[int, int], np.ndarray] = {}
    for r in range(4):
        run = ReplicaRun(tr, bps, group_limits(plan), 2048, split, np.random.default_rng(r))
        run.run(x, y, None, partial(_keep_kernel, seen, r))
    changes = [_relative_change(seen[r, 0], seen[r, tr.steps]) for r in range(4)]
    assert min(changes) > 0.1 and np.std(changes) < 0.25 * np.mean(changes), changes
    ntp = build_training(tr.program, "ntp", "sgd(lr=0.5)", "mse", steps=3, n_train=4, n_test=1,
                         center=True)
    nt_change = [_ntp_change(ntp, x, y, n) for n in (256, 1024)]
    assert nt_change[1] < 0.7 * nt_change[0] and nt_change[1] < 0.5 * min(changes), nt_change


def _ntp_change(tr: Training, x: np.ndarray, y: np.ndarray, width: int) -> float:
    kernels: dict[tuple[int, int], np.ndarray] = {}

    def observe(view: StepView) -> None:
        kernels[view.seed, view.t] = _kernel(view.values["x2"])

    with blas_threads(1):
        train(tr, x, y, width, seeds=range(4), observer=observe)
    return float(np.mean([_relative_change(kernels[s, 0], kernels[s, tr.steps])
                          for s in range(4)]))
