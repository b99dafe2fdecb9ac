"""Weight decay of the readout in the NT limit (spec 05 §5.6, 04 Eq. 2.50; runtime.limits.nt_decay).

The independent computations: (1) the closed-form NTP kernels of 07 §7.1 (tests/test_nt_limit.py)
with the decay written as explicit sums over the update history, not as the engine's recursion:
with ρ = 1 − η_v λ, Θ_v = NNGP (the readout block) and Θ_h = NTK − NNGP (every other group),

    f_t = ρ^t f_0 − Σ_{s<t} [ η_v ρ^{t−1−s} Θ_v χ_s + η ρ^{t+s} Θ_h χ_s ]

(the hidden gradients at step s, and their effect at time t, both carry the readout's ρ^s, ρ^t);
(2) finite-width training (runtime.trainer), seed by seed against the limit conditioned on that
seed's own f_0, whose per-seed gap must shrink like n^{-½}.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiler.errors import UsageError
from compiler.train.options import parse_optimizer
from compiler.train.setup import Training, build_training
from runtime.limits import nt, nt_decay
from runtime.limits.nt_decay import decay_of
from runtime.limits.trajectory import TrajectoryOptions, limit_trajectory, plan_limit
from runtime.trainer import train
from tests.test_nt_limit import _arch, _data, closed_form_ntk


def _training(opt: str, readout: str, steps: int, n_train: int, n_test: int,
              center: bool) -> Training:
    """mlp2 in NTP with ``opt`` everywhere but the readout v, which gets ``readout``."""
    tr = build_training(_arch("mlp2"), "ntp", opt, "mse", steps=steps, n_train=n_train,
                        n_test=n_test, center=center)
    return tr.with_optimizers({"v": parse_optimizer(readout)})


def history_sums(x: np.ndarray, y: np.ndarray, f0: np.ndarray, eta: float, eta_v: float,
                 rho: float, steps: int, center: bool) -> np.ndarray:
    """The module docstring's closed sums for SGD with MSE, full batch; f̃ = f − f_0 if centred."""
    nngp, ntk = closed_form_ntk(x, 2, "relu")
    hidden, b = ntk - nngp, y.shape[0]
    f, chis = [f0], []
    for t in range(1, steps + 1):
        prev = f[-1] - f0 if center else f[-1]
        chis.append((prev[:b] - y[:, 0]) / b)
        f.append(rho**t * f0 - sum(eta_v * rho ** (t - 1 - s) * nngp[:, :b] @ c
                                   + eta * rho ** (t + s) * hidden[:, :b] @ c
                                   for s, c in enumerate(chis)))
    out = np.array(f)
    return out - f0 if center else out


def test_uncentred_exact_path_is_the_history_sum() -> None:
    x, y = _data(5, 3)
    tr = _training("sgd(lr=0.5)", "sgd(lr=0.5, wd=0.4)", 6, 3, 2, center=False)
    assert decay_of(tr).rho == pytest.approx(0.8)
    res = limit_trajectory(tr, x, y, TrajectoryOptions(seed=2))
    assert res.path == "exact" and res.f0_random
    want = history_sums(x, y, res.f[0, :, 0], 0.5, 0.5, 0.8, 6, center=False)
    np.testing.assert_allclose(res.f[..., 0], want, atol=1e-6, rtol=0)
    assert any("decays by ρ = 0.8" in n for n in res.notes)


def test_centred_limit_keeps_the_decayed_f0_and_is_random() -> None:
    """Centring subtracts f_0 but the decayed readout leaves (ρ^t − 1)·f_0: the centred limit
    is the uncentred one (same seed, same draw) minus f_0, random, and the notes say so."""
    x, y = _data(5, 3)
    kw = dict(opt="sgd(lr=0.5)", readout="sgd(lr=0.5, wd=0.4)", steps=6, n_train=3, n_test=2)
    opts = TrajectoryOptions(seed=2)
    free = limit_trajectory(_training(**kw, center=False), x, y, opts)  # type: ignore[arg-type]
    cen = limit_trajectory(_training(**kw, center=True), x, y, opts)  # type: ignore[arg-type]
    f0 = free.f[0, :, 0]
    want = history_sums(x, y, f0, 0.5, 0.5, 0.8, 6, center=True)
    np.testing.assert_allclose(cen.f[..., 0], want, atol=1e-6, rtol=0)
    assert cen.f0_random and any("random" in n and "decay" in n for n in cen.notes)
    other = limit_trajectory(_training(**kw, center=True), x, y,  # type: ignore[arg-type]
                             TrajectoryOptions(seed=3))
    assert np.max(np.abs(other.f[1:] - cen.f[1:])) > 1e-3


def test_monte_carlo_path_within_four_standard_errors() -> None:
    """Momentum on the hidden groups (χ-space state on the exact path, per-sample state here):
    the Monte Carlo mean within 4 replica s.e. of the exact path (same seed, same f_0 draw up to
    the estimated NNGP, whose error is in the replicas' spread)."""
    x, y = _data(4, 3)
    tr = _training("momentum(0.5, lr=0.3)", "momentum(0.5, lr=0.3, wd=0.5)", 4, 3, 1, True)
    exact = limit_trajectory(tr, x, y, TrajectoryOptions(seed=1))
    mc = limit_trajectory(tr, x, y, TrajectoryOptions(seed=1, method="mc", particles=1 << 15))
    assert exact.path == "exact" and mc.path == "mc"
    se = mc.stderr[1:, :, 0]
    assert np.all(se > 0)
    assert np.all(np.abs(mc.f[1:, :, 0] - exact.f[1:, :, 0]) < 4 * se)


def _per_seed_gaps(tr: Training, x: np.ndarray, y: np.ndarray, width: int, seeds: int,
                   opts: TrajectoryOptions, undecayed: Training) -> tuple[float, float]:
    """RMS over seeds, points and steps of f_n − (the limit given that seed's f_0), and of
    f_n − (the limit of ``undecayed``, the same training without decay, given the same f_0)."""
    fw = train(tr, x, y, width, seeds=range(seeds)).f[..., 0]
    plans = plan_limit(tr), plan_limit(undecayed)
    gaps = [[fw[k] - nt.run(p, x, y, opts, f0=fw[k, 0]).f[..., 0] for k in range(seeds)]
            for p in plans]
    return float(np.sqrt(np.mean(np.square(gaps[0])))), float(np.sqrt(np.mean(np.square(gaps[1]))))


@pytest.mark.parametrize(("opt", "readout"), [
    ("sgd(lr=0.5)", "sgd(lr=0.5, wd=0.4)"),
    ("adam(lr=0.05)", "adam(lr=0.05, wd=2)"),
])
def test_finite_width_approaches_the_conditioned_limit(opt: str, readout: str) -> None:
    """Widths 64 and 512, 6 seeds: the per-seed gap is O(n^{-½}) (a factor √8 ≈ 2.8 from 64 to
    512); its estimate has a relative error of about 1/√(6·5·6/2) ≈ 0.1 per width (steps are
    correlated), so ≥ 1.8 (slope ≤ −0.28) leaves a wide margin.  Measured ratios 3.35 (SGD),
    2.45 (Adam, whose limit has Monte Carlo error too).  The decay must be resolved: at n = 512
    the gap is under a third of the distance to the undecayed limit (which does not shrink)."""
    x, y = _data(5, 4)
    tr = _training(opt, readout, 5, 4, 1, center=False)
    plain = _training(opt, opt, 5, 4, 1, center=False)
    opts = TrajectoryOptions(particles=1 << 14)
    small, _ = _per_seed_gaps(tr, x, y, 64, 6, opts, plain)
    large, wrong = _per_seed_gaps(tr, x, y, 512, 6, opts, plain)
    print(f"{opt}: per-seed gap {small:.4g} at n=64, {large:.4g} at n=512, ratio "
          f"{small / large:.3g}; undecayed limit {wrong:.4g} away at n=512")
    assert small / large >= 1.8
    assert large < wrong / 3


def test_adamw_on_every_group_approaches_finite_width() -> None:
    """Decay of every group (``adamw``, runtime.limits.nt_timed: the kets of every time).  mlp2
    is positively homogeneous, so f(D_t W_0) = ρ^{3t} f_0 and conditioning on a seed's f_0 fixes
    the whole decayed base.  Widths 64 and 512, 5 seeds: the per-seed gap must shrink by ≥ 1.8
    (n^{-½}: √8 ≈ 2.8; measured 2.5 with 6 seeds) and at n = 512 be under a third of the
    distance to the undecayed limit."""
    x, y = _data(5, 4)
    tr = build_training(_arch("mlp2"), "ntp", "adamw(lr=0.05, wd=1)", "mse", steps=5,
                        n_train=4, n_test=1, center=False)
    plain = build_training(_arch("mlp2"), "ntp", "adam(lr=0.05)", "mse", steps=5, n_train=4,
                           n_test=1, center=False)
    opts = TrajectoryOptions(particles=1 << 13)
    small, _ = _per_seed_gaps(tr, x, y, 64, 5, opts, plain)
    large, wrong = _per_seed_gaps(tr, x, y, 512, 5, opts, plain)
    print(f"adamw: per-seed gap {small:.4g} at n=64, {large:.4g} at n=512, ratio "
          f"{small / large:.3g}; undecayed limit {wrong:.4g} away at n=512")
    assert small / large >= 1.8
    assert large < wrong / 3


def test_readout_decay_by_the_timed_path_is_the_readout_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two derivations of the readout case agree: the accumulators of nt_decay (exact path, SGD)
    and the kets of every time of nt_timed (forced here), within 4 replica s.e."""
    x, y = _data(4, 3)
    tr = _training("sgd(lr=0.5)", "sgd(lr=0.5, wd=0.5)", 4, 3, 1, center=True)
    exact = limit_trajectory(tr, x, y, TrajectoryOptions(seed=5))
    monkeypatch.setattr(nt_decay, "problem", lambda training: "forced")
    timed = limit_trajectory(tr, x, y, TrajectoryOptions(seed=5, particles=1 << 15))
    assert exact.path == "exact" and any("every time" in n for n in timed.notes)
    # same seed: the same normal vector behind both f_0 draws, so the random parts agree too
    assert np.all(np.abs(timed.f - exact.f)[1:] < 4 * timed.stderr[1:])


def test_adamw_takes_the_timed_path() -> None:
    tr = build_training(_arch("mlp2"), "ntp", "adamw", "mse", steps=2, n_train=2, n_test=1,
                        center=True)
    from runtime.limits import nt_timed

    assert nt_timed.problem(tr) is None
    assert nt_decay.problem(tr) is not None  # not the readout alone: the timed path


def test_decay_that_zeroes_hidden_weights_is_refused() -> None:
    """η·lr·λ = 1 on every group: W_1 = −η n^{-c} Q̃ alone, whose action on the features is O(1)
    (ΔW x = −η dy·(xᵀx/n) in NTP): no small perturbation of anything, not the operator regime."""
    x, y = _data(3, 2)
    tr = build_training(_arch("mlp2"), "ntp", "sgd(lr=0.5, wd=2)", "mse", steps=2, n_train=2,
                        n_test=1, center=True)
    with pytest.raises(UsageError, match=r"zeroes the initial weights.*operator regime"):
        limit_trajectory(tr, x, y)


def test_a_given_f0_must_have_one_value_per_point() -> None:
    x, y = _data(3, 2)
    tr = _training("sgd", "sgd(wd=0.1)", 2, 2, 1, center=False)
    with pytest.raises(UsageError, match="one value per point"):
        nt.run(plan_limit(tr), x, y, TrajectoryOptions(), f0=np.zeros(2))


@pytest.mark.slow
def test_non_homogeneous_network_with_decay_of_every_group() -> None:
    """mlp2_erf: f(D_t W_0) is not a multiple of f_0 (e.g. E[erf(ρh)²] = 0.380 against
    ρ²E[erf(h)²] = 0.297 at ρ = 0.8), so the base b_t is a Gaussian process over time, not pinned
    by f_0.  SGD + MSE, centred: f̃ is affine in b, so the seed mean of finite width (64 seeds,
    n = 256) approaches the limit averaged over b; the limit given b_0 = 0, averaged over 24
    engine seeds (b_{t>0} | b_0 = 0 redrawn), must be within 4 combined s.e. (measured max z 0.69)
    and the undecayed limit must not (measured 6.5)."""
    x, y = _data(5, 4)
    tr = build_training(_arch("mlp2_erf"), "ntp", "sgd(lr=0.5, wd=1)", "mse", steps=4,
                        n_train=4, n_test=1, center=True)
    plain = build_training(_arch("mlp2_erf"), "ntp", "sgd(lr=0.5)", "mse", steps=4, n_train=4,
                           n_test=1, center=True)
    plan, engines = plan_limit(tr), 24
    runs = np.array([nt.run(plan, x, y, TrajectoryOptions(seed=s, particles=1 << 12),
                            f0=np.zeros(5)).f[..., 0] for s in range(engines)])
    lim, lim_se = runs.mean(axis=0), runs.std(axis=0, ddof=1) / np.sqrt(engines)
    undecayed = limit_trajectory(plain, x, y).f[..., 0]
    fw = train(tr, x, y, 256, seeds=range(64)).f[..., 0]
    se = np.sqrt(fw.var(axis=0, ddof=1) / 64)
    z = np.abs(fw.mean(axis=0) - lim)[1:] / np.sqrt(se**2 + lim_se**2)[1:]
    z_plain = np.abs(fw.mean(axis=0) - undecayed)[1:] / se[1:]
    print(f"erf, decay of every group: max z {z.max():.3g}, undecayed {z_plain.max():.3g}")
    assert np.all(z < 4)
    assert np.max(z_plain) > 4
