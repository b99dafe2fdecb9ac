"""The μ-limit reference path (05 §5.4) against independent oracles of one hidden layer (07 §7.2).

* linear φ, μP, SGD: every ket stays in the span of the d + 1 initial Gaussians
  z = (u_1, …, u_d, v)_0, so u_j = A_j·z, v = a·z and f(ξ) = a·Σ_j ξ_j A_j: an exact recursion of
  coefficient vectors (equivalently of covariances), written here from 05 §5.3;
* tanh φ, μP, Adam, d = 1: every ket is a deterministic function of z ∈ R², so f_t is a 2-D
  Gaussian integral, computed by tensor Gauss–Hermite quadrature of the 05 §5.3 updates written
  here (PyTorch's Adam, 04 §4.1).

Tolerance: 4 replica standard errors of the Monte Carlo limit (plus, for quadrature, the change
from N to 2N nodes per axis, a bound on its own error: Q ≈ sign(g) makes the integrand jump).
The constants σ and lr of each group come from the Training record, as the engine reads them.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiler.abcd.param import Exponents, Parametrization, resolve
from compiler.errors import UsageError
from compiler.frontend.parse import parse_text
from compiler.train.setup import Training, build_training
from runtime.limits.trajectory import LimitTrajectory, TrajectoryOptions, limit_trajectory

LINEAR = """
arch lin1 {
    input xi[3]
    param U : vector[3]
    param v : vector
    h1 = U . xi
    output v * h1
}
"""

TANH = """
arch tanh1 {
    input xi[1]
    param U : vector[1]
    param v : vector
    h1 = U . xi
    x1 = tanh(h1)
    output v * x1
}
"""


def _training(text: str, opt: str, steps: int, n_train: int, n_test: int,
              param: str | Parametrization = "mup") -> Training:
    return build_training(parse_text(text), param, opt, "mse", steps, n_train, n_test)


def _reference(tr: Training, x: np.ndarray, y: np.ndarray, m: int) -> LimitTrajectory:
    return limit_trajectory(tr, x, y, TrajectoryOptions(particles=m, seed=3),
                            engine="mu-reference")


def _rates(tr: Training) -> tuple[float, float, float, float]:
    """(σ_U, σ_v, η·lr_U, η·lr_v): μP's width-free constants (every power of n is n⁰)."""
    u, v = tr["U"], tr["v"]
    return (float(u.sigma), float(v.sigma), float(u.optimizer.lr * u.lr),
            float(v.optimizer.lr * v.lr))


def linear_recursion(tr: Training, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """f_t (T+1, points) of 05 §5.3 with φ = id, L = 1, SGD: coefficients on z (module doc)."""
    d, n_train = x.shape[1], y.shape[0]
    sig_u, sig_v, eta_u, eta_v = _rates(tr)
    a = np.zeros(d + 1)
    a[d] = sig_v
    big_a = sig_u * np.eye(d, d + 1)  # row j: u_j
    out = []
    for _ in range(tr.steps + 1):
        h = x @ big_a  # (points, d+1): h(ξ^i) = Σ_j ξ_ij u_j
        f = h @ a
        out.append(f)
        chi = np.zeros_like(f)
        chi[:n_train] = (f[:n_train] - y[:, 0]) / n_train
        # simultaneous SGD step: dv = h, dU_j = v·ξ_j
        a, big_a = a - eta_v * chi @ h, big_a - eta_u * np.outer(chi @ x, a)
    return np.array(out)


ADAM = (0.9, 0.99, 0.05)
"""β₁, β₂, ε of the Adam test (the paper's β).  With ε = 1e-3, Q ≈ sign(g) makes the integrand
jump and Gauss–Hermite moves by 1e-3 between 150 and 170 nodes; ε = 0.05 smooths it enough
that 80 → 160 nodes moves f by < 1e-3, well below the Monte Carlo s.e."""


def adam_quadrature(tr: Training, x: np.ndarray, y: np.ndarray, nodes: int,
                    frozen_v: bool = False) -> np.ndarray:
    """f_t (T+1, points) of 05 §5.3, tanh, L = 1, d = 1, Adam ``ADAM``: Gauss–Hermite over z
    (``frozen_v``: the readout's update dropped, 05 §5.5)."""
    b1, b2, eps = ADAM
    sig_u, sig_v, eta_u, eta_v = _rates(tr)
    eta_v = 0.0 if frozen_v else eta_v
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    weight = np.outer(w, w)[..., None]
    u = sig_u * z[:, None, None] * np.ones((1, nodes, 1))
    v = sig_v * z[None, :, None] * np.ones((nodes, 1, 1))
    state = {k: np.zeros((nodes, nodes)) for k in ("mu", "su", "mv", "sv")}
    n_train, out = y.shape[0], []
    for t in range(tr.steps + 1):
        h = u * x[:, 0]  # (nodes, nodes, points)
        f = np.sum(weight * v * np.tanh(h), axis=(0, 1))
        out.append(f)
        chi = np.zeros_like(f)
        chi[:n_train] = (f[:n_train] - y[:, 0]) / n_train
        g_v = np.tanh(h) @ chi
        g_u = (v * (1 - np.tanh(h) ** 2) * x[:, 0]) @ chi
        q = {}
        for p, g in (("u", g_u), ("v", g_v)):
            state["m" + p] = b1 * state["m" + p] + (1 - b1) * g
            state["s" + p] = b2 * state["s" + p] + (1 - b2) * g**2
            m_hat = state["m" + p] / (1 - b1 ** (t + 1))
            s_hat = state["s" + p] / (1 - b2 ** (t + 1))
            q[p] = m_hat / (np.sqrt(s_hat) + eps)
        u, v = u - eta_u * q["u"][..., None], v - eta_v * q["v"][..., None]
    return np.array(out)


def _data(d: int, points: int, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((points, d)), rng.standard_normal((n_train, 1))


def test_linear_sgd_equals_the_covariance_recursion() -> None:
    tr = _training(LINEAR, "sgd(lr=0.5)", 3, 2, 1)
    x, y = _data(3, 3, 2, 0)
    ref = _reference(tr, x, y, 16384)
    exact = linear_recursion(tr, x, y)
    assert ref.engine == "mu-reference" and ref.path == "reference"
    assert np.all(ref.stderr[1:, :, 0] > 0)
    gap = np.abs(ref.f[..., 0] - exact)
    assert np.all(gap <= 4 * ref.stderr[..., 0] + 1e-12), (gap, ref.stderr[..., 0])
    # the training moves f by many standard errors: the comparison is not of noise with noise
    assert np.max(np.abs(exact[-1])) > 20 * np.max(ref.stderr[-1])


def test_adam_one_hidden_layer_equals_gauss_hermite() -> None:
    b1, b2, eps = ADAM
    tr = _training(TANH, f"adam(lr=0.2, beta1={b1}, beta2={b2}, eps={eps})", 3, 2, 1)
    x, y = _data(1, 3, 2, 1)
    ref = _reference(tr, x, y, 16384)
    fine, coarse = adam_quadrature(tr, x, y, 160), adam_quadrature(tr, x, y, 80)
    gap = np.abs(ref.f[..., 0] - fine)
    tol = 4 * ref.stderr[..., 0] + np.abs(fine - coarse)
    assert np.all(gap <= tol), (gap, tol)
    assert np.max(np.abs(fine[-1])) > 5 * np.max(tol[-1])


def test_readout_at_half_speed_is_the_frozen_readout_limit() -> None:
    """05 §5.5: μP with readout c = ½ under Adam: the plan drops v's update, and the reference
    path is the limit with v frozen (the quadrature with η_v = 0), not the full μ-limit."""
    b1, b2, eps = ADAM
    opt = f"adam(lr=0.2, beta1={b1}, beta2={b2}, eps={eps})"
    slow = resolve("mup", parse_text(TANH)).with_exponents({"v": Exponents.of(0, 0, "1/2", 1)})
    tr = _training(TANH, opt, 3, 2, 1, slow)
    x, y = _data(1, 3, 2, 1)
    ref = _reference(tr, x, y, 16384)
    assert ref.plan.dropped == ("v",) and any("update of v is dropped" in n for n in ref.notes)
    frozen = adam_quadrature(tr, x, y, 160, frozen_v=True)
    tol = 4 * ref.stderr[..., 0] + np.abs(frozen - adam_quadrature(tr, x, y, 80, True))
    assert np.all(np.abs(ref.f[..., 0] - frozen) <= tol)
    full = adam_quadrature(_training(TANH, opt, 3, 2, 1), x, y, 160)
    assert np.max(np.abs(full - frozen)) > 5 * np.max(tol)


def test_operator_regime_is_refused_with_the_reason() -> None:
    tr = _training(TANH, "sgd", 1, 1, 0, "ntp")
    with pytest.raises(UsageError, match=r"mu-reference limit engine cannot run .*feature-lea"):
        _reference(tr, np.ones((1, 1)), np.ones((1, 1)), 256)
