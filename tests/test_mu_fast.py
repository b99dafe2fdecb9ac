"""The fast μ-limit engine against independent oracles (07 §7.2, 05 §5.3, 05 §5.5).

Tolerances: the engine's standard error comes from R independent replicas (s.e. = std/√R); with
R = 16 a deviation beyond 4 combined standard errors has probability ≈ 10⁻³ per entry (Student t
with 15 degrees of freedom), so max |z| ≤ 4 over a test's entries is a real check at a fixed
seed. A quadrature oracle adds its own error, estimated by the change between two grids.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import sympy

from compiler.abcd.param import HALF, Exponents, Parametrization, resolve
from compiler.errors import NumericError, UsageError
from compiler.frontend.parse import parse_file, parse_text
from compiler.train.setup import Training, build_training
from runtime.limits.blas import blas_threads
from runtime.limits.mu_fast import forward_split, group_limits
from runtime.limits.mu_fast_run import ReplicaRun
from runtime.limits.trajectory import TrajectoryOptions, limit_trajectory, plan_limit
from runtime.trainer import backprops, train
from tests.conftest import TWO_OUTPUT_MLP
from tests.mu_oracles import adam_q, linear_mlp1_exact, mlp1_quadrature, mlp2_direct

SAMPLES = Path(__file__).parent.parent / "samples"
MLP1 = parse_file(SAMPLES / "mlp1.nx")
MLP2 = parse_file(SAMPLES / "mlp2.nx")
LINEAR1 = parse_text("""
arch linear1 {
    input xi[2]
    param U : vector[2]
    param v : vector
    h1 = U . xi
    output v * h1
}""")
Z_MAX = 4.0


def _two_d_inputs(points: int, seed: int) -> np.ndarray:
    """mlp1 inputs whose coordinates 2..9 are 0: an effectively d = 2 network (the columns
    u_3..u_10 get zero gradients and Q(0) = 0, so they never enter h¹)."""
    x = np.zeros((points, 10))
    x[:, :2] = np.random.default_rng(seed).standard_normal((points, 2))
    return x


def test_one_hidden_layer_adam_equals_gauss_hermite_quadrature() -> None:
    """07 §7.2: every ket of the L = 1 μ-limit is a function of (u_1, u_2, v); Adam, centred."""
    x, y = _two_d_inputs(4, 3), np.random.default_rng(4).standard_normal(3)
    tr = build_training(MLP1, "mup", "adam(lr=0.1)", "mse", steps=4, n_train=3, n_test=1,
                        center=True)
    lim = limit_trajectory(tr, x, y[:, None], TrajectoryOptions(particles=16 * 2048,
                                                                replicas=16, seed=1))
    fine, coarse = (mlp1_quadrature(x[:, :2], y, 4, 0.1, adam_q(), n) for n in (64, 40))
    # The grid's own error. The integrand jumps (step(h) in the backward pass, Adam's sign-like
    # Q), so a Gauss–Hermite grid's error falls only like its node spacing at the jump, n^{-½}:
    # Richardson for that rate gives err(64) ≈ |q64 − q40| / (√(64/40) − 1). The difference of
    # two grids oscillates in sign from entry to entry, so it is taken as its largest over the
    # steps of each point. Measured: the 64-grid is up to 0.0035 from 32×32768 plain iid
    # particles (no orthogonal or QMC draws), and even a 256-grid is 0.0029 away (last step,
    # test point), where |q64 − q40| is 0.002; the engine's randomised-QMC s.e. is 0.0004.
    diff = np.abs(fine - coarse).max(axis=0, keepdims=True)
    quad_err = diff / (np.sqrt(64 / 40) - 1)
    gap = np.abs(lim.f[..., 0] - fine)
    assert np.all(gap <= Z_MAX * lim.stderr[..., 0] + quad_err + 1e-12), (gap, lim.stderr)
    assert np.abs(fine[-1]).max() > 0.1  # training moved f: not a trivial agreement at 0


def test_one_hidden_layer_linear_sgd_equals_the_exact_covariance_recursion() -> None:
    """07 §7.2: linear φ, μP, SGD: the kets stay in the span of (u_1, u_2, v); not centred."""
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((5, 2)), rng.standard_normal(4)
    tr = build_training(LINEAR1, "mup", "sgd(lr=0.5)", "mse", steps=5, n_train=4, n_test=1)
    lim = limit_trajectory(tr, x, y[:, None], TrajectoryOptions(particles=16 * 1024,
                                                                replicas=16, seed=2))
    exact = linear_mlp1_exact(x, y, 5, 0.5)
    z = np.abs(lim.f[1:, :, 0] - exact[1:]) / lim.stderr[1:, :, 0]
    assert z.max() <= Z_MAX, z
    assert np.abs(exact[-1]).max() > 0.2


@pytest.mark.parametrize(("opt", "lr"), [("sgd", 0.5), ("adam", 0.05)])
def test_mlp2_equals_a_direct_implementation_of_the_mlp_equations(opt: str, lr: float) -> None:
    """05 §5.3, L = 2: the engine (the backprop program interpreted on particles, ΔW low rank
    under SGD) against a hand-written MLP limit (Gram-matrix conditioning for W̊_0, ΔW as an M×M
    array for both optimizers), independent draws; centred, full batch."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((5, 10)) * np.sqrt(0.4), rng.standard_normal(4)
    tr = build_training(MLP2, "mup", f"{opt}(lr={lr})", "mse", steps=3, n_train=4, n_test=1,
                        center=True)
    lim = limit_trajectory(tr, x, y[:, None], TrajectoryOptions(particles=16 * 512,
                                                                replicas=16, seed=3))
    f, se = mlp2_direct(x, y, 3, lr, opt == "adam", 384, 16, 0)
    z = np.abs(lim.f[1:, :, 0] - f[1:]) / np.hypot(lim.stderr[1:, :, 0], se[1:])
    assert z.max() <= Z_MAX, z
    assert np.abs(f[-1]).max() > 10 * se[-1].max()  # the trajectories are resolved


def _readout_speed(c: sympy.Expr) -> Parametrization:
    """μP for mlp1 with the readout's c replaced (∞: frozen)."""
    return resolve("mup", MLP1).with_exponents({"v": Exponents.of(0, 0, c, 1)})


def test_readout_at_half_speed_under_adam_is_the_frozen_readout_limit() -> None:
    """05 §5.5: μP (L = 1) with readout c = ½ under Adam drops v's update: the engine gives the
    frozen-readout limit, and finite widths approach it, not the full μ-limit."""
    x, y = _two_d_inputs(4, 8), np.random.default_rng(9).standard_normal((3, 1))
    opts = TrajectoryOptions(particles=16 * 2048, replicas=16, seed=4)

    def training(param: str | Parametrization) -> Training:
        return build_training(MLP1, param, "adam(lr=0.1)", "mse", steps=3, n_train=3,
                              n_test=1, center=True)

    half = limit_trajectory(training(_readout_speed(HALF)), x, y, opts)
    frozen = limit_trajectory(training(_readout_speed(sympy.oo)), x, y, opts)
    full = limit_trajectory(training("mup"), x, y, opts)
    assert half.plan.dropped == ("v",) and any("vanish" in n for n in half.notes)
    np.testing.assert_array_equal(half.f, frozen.f)  # the same particles, v never updated
    apart = np.abs(frozen.f - full.f).max()  # the readout's updates matter in the full limit
    gaps = []
    for n in (1024, 16384):
        mean = train(training(_readout_speed(HALF)), x, y, n, seeds=range(8)).f.mean(axis=0)
        gaps.append((np.abs(mean - frozen.f).max(), np.abs(mean - full.f).max()))
    # v's update is n^{-1/2} at width n: the gap to the frozen limit shrinks (×¼ predicted from
    # 1024 to 16384; ×0.6 allowed for the limit's and the seed mean's own noise, ~0.004), the
    # gap to the full μ-limit stays that of the two limits
    assert gaps[1][0] <= 0.6 * gaps[0][0]
    assert gaps[1][1] >= 0.8 * apart > 20 * gaps[1][0]


def test_memory_over_budget_is_refused_with_the_estimate() -> None:
    tr = build_training(MLP2, "mup", "adam", "mse", steps=2, n_train=3, n_test=1)
    with pytest.raises(UsageError, match=r"needs about \d+ MiB per replica, over the memory "
                                         r"budget of 0 MiB"):
        limit_trajectory(tr, np.ones((4, 10)), np.ones((3, 1)),
                         TrajectoryOptions(particles=4096, replicas=1, memory_budget=1000))


def test_divergence_names_the_step_and_the_tensor() -> None:
    tr = build_training(MLP2, "mup", "sgd(lr=1e200)", "mse", steps=3, n_train=3, n_test=0)
    with pytest.raises(NumericError, match=r"μ-limit step [0-9]: (NaN|Inf) in "):
        limit_trajectory(tr, np.ones((3, 10)), np.full((3, 1), 5.0),
                         TrajectoryOptions(particles=64, replicas=2))


def test_the_operator_regime_is_refused_by_the_mu_engine() -> None:
    tr = build_training(MLP2, "ntp", "sgd", "mse", steps=2, n_train=3, n_test=1)
    with pytest.raises(UsageError, match="regime is operator"):
        limit_trajectory(tr, np.ones((4, 10)), np.ones((3, 1)), engine="mu")


def test_auto_picks_the_mu_engine_for_feature_learning() -> None:
    tr = build_training(MLP2, "mup", "sgd", "mse", steps=1, n_train=2, n_test=0)
    calls: list[tuple[float, float, str]] = []
    lim = limit_trajectory(tr, np.ones((2, 10)), np.ones((2, 1)),
                           TrajectoryOptions(particles=256, replicas=4),
                           progress=lambda done, total, label: calls.append((done, total, label)))
    assert (lim.engine, lim.path, lim.particles) == ("mu", "mc", 256)
    # per step of every replica, then of the half-pool rerun that bounds the pool-size bias
    assert len(calls) == 2 * 4 * 2 and calls[-1][:2] == (16.0, 16.0)
    assert calls[3][2] == "replica 2/4 step 1" and calls[-1][2] == "half pool replica 4/4 step 1"
    assert lim.bias is not None and lim.bias.shape == lim.f.shape
    assert lim.f.shape == lim.stderr.shape == (2, 2, 1)


def test_two_outputs_under_cross_entropy_match_finite_width() -> None:
    """k = 2 outputs (one backprop program each, sharing the forward pass): the seed average at
    width 512 agrees with the limit within 4 combined standard errors (12 seeds)."""
    program = parse_text(TWO_OUTPUT_MLP)
    d = len(program.input_names)
    x = np.random.default_rng(0).standard_normal((5, d)) * np.sqrt(4 / d)
    y = np.eye(2)[[0, 1, 1, 0]]
    tr = build_training(program, "mup", "sgd(lr=0.5)", "ce", steps=3, n_train=4, n_test=1,
                        center=True)
    lim = limit_trajectory(tr, x, y, TrajectoryOptions(particles=16 * 512, replicas=16))
    with blas_threads(1):
        f = train(tr, x, y, 512, seeds=range(12)).f[:, 1:]
    se = np.hypot(f.std(axis=0, ddof=1) / np.sqrt(12), lim.stderr[1:])
    z = np.abs(f.mean(axis=0) - lim.f[1:]) / se
    assert lim.f.shape == (4, 5, 2) and z.max() <= Z_MAX
    assert np.abs(lim.f[-1]).max() > 10 * lim.stderr[-1].max()


@pytest.mark.parametrize("opt", ["sgd(lr=0.3)", "momentum(beta=0.9, lr=0.1, wd=0.05)"])
def test_low_rank_updates_equal_pair_arrays_for_a_linear_q(opt: str) -> None:
    """For a linear Q, ΔW = Σ_s w_s G_s applied by inner products (the impulse-probed
    coefficients of Q_t, with decay) is the same operator as the pair array updated by Q's own
    formulas: the same particles give the same f to round-off."""
    tr = build_training(MLP2, "mup", opt, "mse", steps=4, n_train=3, n_test=1, center=True)
    x = np.random.default_rng(1).standard_normal((4, 10)) * np.sqrt(0.4)
    y = np.random.default_rng(2).standard_normal((3, 1))
    bps = backprops(MLP2)
    groups = group_limits(plan_limit(tr))
    assert any(g.linear and g.tensor.kind == "matrix" for g in groups)
    pairs = tuple(replace(g, linear=False) for g in groups)
    f_low, f_pair = (ReplicaRun(tr, bps, gs, 256, forward_split(tr, bps),
                                np.random.default_rng(0)).run(x, y, None)
                     for gs in (groups, pairs))
    np.testing.assert_allclose(f_low, f_pair, rtol=0, atol=1e-10)
    assert np.abs(f_low[-1]).max() > 0.05
