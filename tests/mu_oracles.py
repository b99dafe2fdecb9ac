"""Independent oracles of the μ-limit for the tests (05 §5.3, 07 §7.2), written from the spec
without the engine's code: one hidden layer by Gauss–Hermite quadrature (any entrywise Q, d ≤ 2),
and the exact covariance recursion of a linear one-hidden-layer network under SGD."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Q = Callable[[list[np.ndarray], int, dict[str, np.ndarray]], np.ndarray]


def adam_q(beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> Q:
    """PyTorch Adam (04 §4.1) on one tensor's gradient g at step t; ``state`` holds m, v."""
    def q(gs: list[np.ndarray], t: int, state: dict[str, np.ndarray]) -> np.ndarray:
        g = gs[-1]
        state["m"] = beta1 * state.get("m", 0 * g) + (1 - beta1) * g
        state["v"] = beta2 * state.get("v", 0 * g) + (1 - beta2) * g * g
        mhat = state["m"] / (1 - beta1 ** (t + 1))
        vhat = state["v"] / (1 - beta2 ** (t + 1))
        return mhat / (np.sqrt(vhat) + eps)
    return q


def sgd_q(gs: list[np.ndarray], t: int, state: dict[str, np.ndarray]) -> np.ndarray:
    return gs[-1]


def mlp1_quadrature(x: np.ndarray, y: np.ndarray, steps: int, lr: float, q: Q, nodes: int,
                    relu: bool = True) -> np.ndarray:
    """f_t (t = 0..T, points) of the μP one-hidden-layer limit (05 §5.3 with L = 1), full batch
    MSE on the first len(y) points, inputs with nonzero coordinates 0 and 1 only: every ket is a
    function of (u_1, u_2, v) ~ N(0, I_3), integrated on a tensor Gauss–Hermite grid."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    u1, u2, v = (a.ravel() for a in np.meshgrid(z, z, z, indexing="ij"))
    wt = np.einsum("i,j,k->ijk", w, w, w).ravel()
    us = [u1.copy(), u2.copy()]
    states: list[dict[str, np.ndarray]] = [{}, {}, {}]
    phi = (lambda h: np.maximum(h, 0)) if relu else (lambda h: h)
    dphi = (lambda h: (h > 0).astype(float)) if relu else (lambda h: np.ones_like(h))
    nb = len(y)
    fs = []
    for t in range(steps + 1):
        h = us[0][:, None] * x[:, 0] + us[1][:, None] * x[:, 1]  # (nodes³, points)
        f = wt @ (v[:, None] * phi(h))
        fs.append(f)
        if t == steps:
            break
        chi = (f[:nb] - y) / nb
        dh = v[:, None] * dphi(h[:, :nb])
        grads = [dh @ (chi * x[:nb, j]) for j in range(2)] + [phi(h[:, :nb]) @ chi]
        upd = [q([g], t, s) for g, s in zip(grads, states, strict=True)]
        us = [us[0] - lr * upd[0], us[1] - lr * upd[1]]
        v = v - lr * upd[2]
    return np.array(fs)


def linear_mlp1_exact(x: np.ndarray, y: np.ndarray, steps: int, lr: float) -> np.ndarray:
    """07 §7.2: one hidden layer, φ = id, μP, SGD, full batch MSE. Every ket is a linear
    combination of the d + 1 initial Gaussians (u_1..u_d, v), |u_j⟩ = Σ_k A_jk |g_k⟩ and
    |v⟩ = Σ_k c_k |g_k⟩ with g iid N(0, 1), so f(ξ) = Σ_j ξ_j ⟨u_j|v⟩ = ξᵀ A c exactly."""
    d = x.shape[1]
    a = np.hstack([np.eye(d), np.zeros((d, 1))])  # u_j = g_j
    c = np.zeros(d + 1)
    c[d] = 1.0  # v = g_{d+1}
    nb = len(y)
    fs = []
    for t in range(steps + 1):
        f = x @ (a @ c)
        fs.append(f)
        if t == steps:
            break
        chi = (f[:nb] - y) / nb
        s = x[:nb].T @ chi  # Σ_i χ_i ξ^i (d,)
        # grad u_j = Σ_i χ_i dh(ξ^i) ξ^i_j with dh = v; grad v = Σ_i χ_i h(ξ^i) = Σ_j s_j u_j
        a, c = a - lr * np.outer(s, c), c - lr * (s @ a)
    return np.array(fs)


class _GaussianOperator:
    """W̊_0 of 01 §1.4 written with Gram matrices: a new hat is drawn from its Gaussian law
    conditioned on the hats drawn so far (covariance = the Gram matrix of the arguments), and the
    dot term of Wx is Σ_l |z_l⟩ E[∂x/∂Ŵᵀz_l] = Z C⁻¹ E[Ĝᵀ x] (Stein, C = Gram(Z))."""

    def __init__(self, m: int, rng: np.random.Generator) -> None:
        self.m, self.rng = m, rng
        self.args = [np.zeros((m, 0)), np.zeros((m, 0))]  # forward, transposed
        self.hats = [np.zeros((m, 0)), np.zeros((m, 0))]

    def __call__(self, x: np.ndarray, side: int) -> np.ndarray:
        m, a, h = self.m, self.args[side], self.hats[side]
        z, g = self.args[1 - side], self.hats[1 - side]
        dot = z @ (np.linalg.pinv(z.T @ z / m) @ (g.T @ x / m)) if z.shape[1] else 0 * x
        k_old, k_cross = a.T @ a / m, a.T @ x / m
        coef = np.linalg.pinv(k_old) @ k_cross
        cov = x.T @ x / m - k_cross.T @ coef
        vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
        root = vecs * np.sqrt(np.clip(vals, 0, None))
        hat = h @ coef + self.rng.standard_normal(x.shape) @ root.T
        self.args[side], self.hats[side] = np.hstack([a, x]), np.hstack([h, hat])
        return hat + dot


def mlp2_direct(x: np.ndarray, y: np.ndarray, steps: int, lr: float, adam: bool, m: int,
                replicas: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """f_t of the μP two-hidden-layer ReLU limit (05 §5.3, L = 2), centred, full batch MSE,
    by M particles per replica with ΔW an M×M array: (mean, s.e.) of shape (T+1, points)."""
    runs = [_mlp2_replica(x, y, steps, lr, adam, m, np.random.default_rng([seed, 99, r]))
            for r in range(replicas)]
    f = np.array(runs)
    return f.mean(axis=0), f.std(axis=0, ddof=1) / np.sqrt(replicas)


def _mlp2_replica(x: np.ndarray, y: np.ndarray, steps: int, lr: float, adam: bool, m: int,
                  rng: np.random.Generator) -> np.ndarray:
    q = adam_q() if adam else sgd_q
    states: list[dict[str, np.ndarray]] = [{}, {}, {}]
    u, v = rng.standard_normal((m, x.shape[1])), rng.standard_normal(m)
    dw, w0, nb, fs = np.zeros((m, m)), _GaussianOperator(m, rng), len(y), []
    relu = lambda h: np.maximum(h, 0)  # noqa: E731
    for t in range(steps + 1):
        h1 = u @ x.T
        h2 = w0(relu(h1), 0) + dw @ relu(h1) / m
        f = v @ relu(h2) / m
        fs.append(f)
        if t == steps:
            break
        chi = (f[:nb] - fs[0][:nb] - y) / nb
        dh2 = v[:, None] * (h2[:, :nb] > 0)
        dh1 = (w0(dh2, 1) + dw.T @ dh2 / m) * (h1[:, :nb] > 0)
        gu, gv = dh1 @ (chi[:, None] * x[:nb]), relu(h2[:, :nb]) @ chi
        gw = (dh2 * chi) @ relu(h1[:, :nb]).T
        qu, qw, qv = (q([g], t, s) for g, s in zip((gu, gw, gv), states, strict=True))
        u, dw, v = u - lr * qu, dw - lr * qw, v - lr * qv
    f = np.array(fs)
    return f - f[0]
