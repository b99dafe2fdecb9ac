"""The NT training-limit engine against closed forms (spec 05 §5.1–5.2, 07 §7.1–7.2).

The NNGP/NTK recursions and the SignSGD operator are written here from the closed-form Gaussian
expectations of 07 §7.1, independently of the engine (which never sees them): the exact path
must equal kernel gradient descent to 1e-6, the Monte Carlo path within 4 replica standard
errors (a 4σ band: a false alarm in about 6e-5 of the compared values).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from compiler.errors import UsageError
from compiler.frontend.parse import parse_file, parse_text
from compiler.train.setup import Training, build_training
from runtime.limits.trajectory import TrajectoryOptions, limit_trajectory
from tests.conftest import TWO_OUTPUT_MLP

SAMPLES = Path(__file__).parent.parent / "samples"


def _arch(name: str):  # type: ignore[no-untyped-def]
    return parse_file(SAMPLES / f"{name}.nx")


def _data(points: int, n_train: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((points, 10))
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # |ξ| = 1, so Σ_uu = 1 at layer 1
    return x, rng.standard_normal((n_train, 1))


# closed forms of 07 §7.1: (E[φ(u)φ(v)], E[φ'(u)φ'(v)]) for a centred Gaussian pair of covariance S
def _relu_pair(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.sqrt(np.diag(s))
    rho = np.clip(s / np.outer(d, d), -1.0, 1.0)
    th = np.arccos(rho)
    return (np.outer(d, d) / (2 * np.pi) * (np.sin(th) + (np.pi - th) * np.cos(th)),
            (np.pi - th) / (2 * np.pi))


def _erf_pair(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = 1 + 2 * np.diag(s)
    return (2 / np.pi * np.arcsin(2 * s / np.sqrt(np.outer(a, a))),
            4 / np.pi / np.sqrt(np.outer(a, a) - 4 * s**2))


PAIRS = {"relu": _relu_pair, "erf": _erf_pair}


def closed_form_ntk(x: np.ndarray, hidden: int, act: str) -> tuple[np.ndarray, np.ndarray]:
    """(NNGP, NTK) of the NTP MLP h¹ = U·ξ, h^{l+1} = W x^l, f = v·x^L/√n (05 §5.1)."""
    s = x @ x.T
    covs, derivs = [], []
    for _ in range(hidden):
        k, kd = PAIRS[act](s)
        covs.append(k)
        derivs.append(kd)
        s = k
    nngp = covs[-1]
    dx = np.ones_like(s)  # |dx^L⟩ = |v⟩ for every ξ
    ntk = covs[-1].copy()
    for layer in range(hidden - 1, -1, -1):
        dh = dx * derivs[layer]
        ntk += dh * (covs[layer - 1] if layer > 0 else x @ x.T)
        dx = dh
    return nngp, ntk


def kernel_gd(ntk: np.ndarray, f0: np.ndarray, y: np.ndarray, eta: float, steps: int,
              n_train: int) -> np.ndarray:
    """f_{t+1} = f_t − η Θ[:, train] (f_train − y)/B (MSE, full batch, 04 §4.2)."""
    f = [f0]
    for _ in range(steps):
        chi = (f[-1][:n_train] - y[:, 0]) / n_train
        f.append(f[-1] - eta * ntk[:, :n_train] @ chi)
    return np.array(f)


def _training(arch: str, opt: str, steps: int, n_train: int, n_test: int,
              center: bool = True, batch: int | None = None, param: str = "ntp") -> Training:
    return build_training(_arch(arch), param, opt, "mse", steps=steps, n_train=n_train,
                          n_test=n_test, batch_size=batch, center=center)


CASES = [("mlp2", "relu", 2), ("mlp2_erf", "erf", 2), ("mlp3", "relu", 3)]


@pytest.mark.parametrize(("arch", "act", "hidden"), CASES)
def test_sgd_exact_path_is_kernel_gradient_descent(arch: str, act: str, hidden: int) -> None:
    x, y = _data(5, 3)
    tr = _training(arch, "sgd(lr=0.5)", 6, 3, 2)
    res = limit_trajectory(tr, x, y)
    assert res.path == "exact" and res.engine == "nt"
    _, ntk = closed_form_ntk(x, hidden, act)
    want = kernel_gd(ntk, np.zeros(5), y, 0.5, 6, 3)
    np.testing.assert_allclose(res.f[..., 0], want, atol=1e-6, rtol=0)
    assert np.all(res.stderr == 0)


def test_uncentred_limit_starts_from_an_nngp_draw() -> None:
    """Without centring f_0 ~ GP(0, NNGP) is drawn with the seed and the notes say so; the rest
    of the trajectory is kernel gradient descent from that draw."""
    x, y = _data(4, 3)
    tr = _training("mlp2", "sgd", 4, 3, 1, center=False)
    a = limit_trajectory(tr, x, y, TrajectoryOptions(seed=3))
    b = limit_trajectory(tr, x, y, TrajectoryOptions(seed=4))
    assert not np.allclose(a.f[0], b.f[0])
    assert any("NNGP" in n and "seed 3" in n for n in a.notes)
    _, ntk = closed_form_ntk(x, 2, "relu")
    want = kernel_gd(ntk, a.f[0, :, 0], y, 1.0, 4, 3)
    np.testing.assert_allclose(a.f[..., 0], want, atol=1e-6, rtol=0)
    assert a.to_json()["f0_random"] is True


@pytest.mark.parametrize(("arch", "act", "hidden"), [CASES[1], CASES[2]])
def test_sgd_monte_carlo_path_within_four_standard_errors(arch: str, act: str,
                                                          hidden: int) -> None:
    x, y = _data(4, 3)
    tr = _training(arch, "sgd(lr=0.5)", 4, 3, 1)
    res = limit_trajectory(tr, x, y, TrajectoryOptions(method="mc", particles=1 << 15))
    assert res.path == "mc" and res.particles == 1 << 15
    _, ntk = closed_form_ntk(x, hidden, act)
    want = kernel_gd(ntk, np.zeros(4), y, 0.5, 4, 3)
    se = res.stderr[1:, :, 0]
    assert np.all(se > 0)
    assert np.all(np.abs(res.f[1:, :, 0] - want[1:]) < 4 * se)


def signsgd_closed_form(x: np.ndarray, i: int) -> np.ndarray:
    """k(ξ) of 07 §7.2 for the ReLU mlp2 in NTP, ξ¹ = x[i]: K(χ)(ξ) = sign(χ_1)·k(ξ)."""
    def e_relu_step(s: np.ndarray) -> np.ndarray:  # E[relu(u(ξ)) 1{u(ξ¹) > 0}]
        d = np.sqrt(np.diag(s))
        rho = s[:, i] / (d * d[i])
        return d * (1 + rho) / (2 * math.sqrt(2 * math.pi))

    def e_gauss_sign(s: np.ndarray) -> np.ndarray:  # E[u(ξ) sign(u(ξ¹))]
        return math.sqrt(2 / math.pi) * s[:, i] / math.sqrt(s[i, i])

    s1 = x @ x.T
    k1, d1 = _relu_pair(s1)
    _, d2 = _relu_pair(k1)
    step2, step1 = d2[:, i], d1[:, i]  # E[1{h(ξ)>0} 1{h(ξ¹)>0}]
    readout = e_relu_step(k1)  # x² = relu(h²), h² of covariance k1
    dx2 = math.sqrt(2 / math.pi)  # E[v sign(v)]: the same ket for every ξ
    dh2 = dx2 * step2
    hidden = dh2 * e_relu_step(s1)  # x¹ = relu(h¹), h¹ of covariance ξ·ξ′
    dx1_cov = np.ones_like(s1) * d2  # E[dh² dh²′] = E[v²] E[1 1′]
    dh1 = e_gauss_sign(dx1_cov) * step1
    inputs = dh1 * (x @ np.sign(x[i]))
    return readout + hidden + inputs


def test_signsgd_batch_one_is_the_closed_form() -> None:
    x, y = _data(4, 3)
    tr = _training("mlp2", "signsgd(lr=0.1)", 3, 3, 1, batch=1)
    res = limit_trajectory(tr, x, y, TrajectoryOptions(particles=1 << 15))
    assert res.path == "mc"
    f = np.zeros(4)
    want = [f]
    for t in range(3):
        i = tr.schedule.batch(t)[0]
        f = f - 0.1 * np.sign(f[i] - y[i, 0]) * signsgd_closed_form(x, i)
        want.append(f)
    se = res.stderr[1:, :, 0]
    assert np.all(np.abs(res.f[1:, :, 0] - np.array(want)[1:]) < 4 * se)


def test_signsgd_large_batch_is_not_the_batch_one_operator() -> None:
    """With batch 3 one step is η K(χ) with K nonlinear in χ: it is not Σ_i sign(χ_i) k_i
    (05 §5.1); the gap must exceed 10 standard errors somewhere."""
    x, y = _data(4, 3)
    tr = _training("mlp2", "signsgd(lr=0.1)", 1, 3, 1)
    res = limit_trajectory(tr, x, y, TrajectoryOptions(particles=1 << 15))
    per_point = -0.1 * sum(np.sign(-y[i, 0]) * signsgd_closed_form(x, i) for i in range(3))
    gap = np.abs(res.f[1, :, 0] - per_point)
    assert np.max(gap / res.stderr[1, :, 0]) > 10


def test_one_replica_has_unknown_standard_errors() -> None:
    x, y = _data(3, 2)
    tr = _training("mlp2", "adam(lr=0.1)", 1, 2, 1)
    res = limit_trajectory(tr, x, y, TrajectoryOptions(particles=256, replicas=1))
    assert np.all(np.isnan(res.stderr[1:]))
    assert res.to_json()["stderr"][1] == [None, None, None]


def test_progress_is_reported_per_step() -> None:
    x, y = _data(3, 2)
    seen: list[tuple[float, float, str]] = []
    tr = _training("mlp2", "adam(lr=0.1)", 3, 2, 1)
    limit_trajectory(tr, x, y, TrajectoryOptions(particles=512),
                     progress=lambda d, n, w: seen.append((d, n, w)))
    assert [(d, n) for d, n, w in seen if w == "step"] == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize(("opt", "options", "match"), [
    ("sgd(wd=0.1)", TrajectoryOptions(method="exact"), "weight decay.*Monte Carlo path only"),
    ("adam", TrajectoryOptions(method="exact"), "--method exact needs a linear"),
    ("sgd", TrajectoryOptions(method="fast"), "--method must be one of"),
    ("adam", TrajectoryOptions(particles=1 << 20, memory_budget=1 << 20), r"GiB.*budget"),
])
def test_refusals_are_usage_errors(opt: str, options: TrajectoryOptions, match: str) -> None:
    x, y = _data(3, 2)
    with pytest.raises(UsageError, match=match):
        limit_trajectory(_training("mlp2", opt, 2, 2, 1), x, y, options)


def test_unstable_table_names_the_failed_condition() -> None:
    x, y = _data(3, 2)
    with pytest.raises(UsageError, match=r"not stable.*05 §5.5"):
        limit_trajectory(_training("mlp2", "adam", 2, 2, 1, param="sp"), x, y)


def test_two_outputs_are_kernel_gradient_descent_per_output() -> None:
    """k = 2 (05 §5.2, runtime.limits.nt_outputs): the readouts v[0], v[1] are independent, so
    every cross-output block vanishes and each output follows kernel GD with the mlp2 NTK on its
    own column of targets (mse χ = (f − y)/B entrywise)."""
    tr = build_training(parse_text(TWO_OUTPUT_MLP), "ntp", "sgd(lr=0.5)", "mse", steps=3,
                        n_train=2, n_test=1, center=True)
    x, _ = _data(3, 2)
    y = np.array([[1.0, -0.5], [0.25, 2.0]])
    res = limit_trajectory(tr, x, y)
    assert res.path == "exact" and res.f.shape == (4, 3, 2)
    _, ntk = closed_form_ntk(x, 2, "relu")
    for j in range(2):
        want = kernel_gd(ntk, np.zeros(3), y[:, j:j + 1], 0.5, 3, 2)
        np.testing.assert_allclose(res.f[..., j], want, atol=1e-6, rtol=0)


def test_feature_learning_table_is_not_run_by_the_nt_engine() -> None:
    x, y = _data(3, 2)
    with pytest.raises(UsageError, match=r"feature learning regime.*μ-limit"):
        limit_trajectory(_training("mlp2", "adam", 2, 2, 1, param="mup"), x, y, engine="nt")
