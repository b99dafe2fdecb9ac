"""Closed-form Gaussian expectations (spec 07 §7.1) and the MLP kernels they give (05 §5.1).

For a centred Gaussian pair (u, v) with variances Σuu, Σvv and covariance Σuv, ρ = Σuv/√(ΣuuΣvv),
ϑ = arccos ρ:

    E[relu(u)relu(v)] = √(ΣuuΣvv)/(2π) · (sin ϑ + (π − ϑ) cos ϑ)
    E[1{u>0}1{v>0}]   = (π − ϑ)/(2π)
    E[erf(u)erf(v)]   = (2/π) arcsin(2Σuv / √((1+2Σuu)(1+2Σvv)))
    E[erf′(u)erf′(v)] = (4/π) / √((1+2Σuu)(1+2Σvv) − 4Σuv²)
    E[u·1{u>0}·1{v>0}] = √Σuu (1+ρ) / (2√(2π))
    E[u·sign(v)]      = √(2/π) · Σuv/√Σvv

These are independent of the ket machinery and serve as its oracle. Functions take numpy arrays
(elementwise), so whole kernel matrices are computed at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _angle(suu: np.ndarray, suv: np.ndarray, svv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.sqrt(suu * svv)
    rho = np.clip(
        np.divide(suv, scale, out=np.zeros_like(scale, dtype=float), where=scale > 0), -1, 1
    )
    return scale, np.arccos(rho)


def relu_relu(suu: np.ndarray, suv: np.ndarray, svv: np.ndarray) -> np.ndarray:
    """E[relu(u) relu(v)]."""
    scale, th = _angle(suu, suv, svv)
    return scale / (2 * np.pi) * (np.sin(th) + (np.pi - th) * np.cos(th))


def step_step(suu: np.ndarray, suv: np.ndarray, svv: np.ndarray) -> np.ndarray:
    """E[1{u>0} 1{v>0}]."""
    _, th = _angle(suu, suv, svv)
    return (np.pi - th) / (2 * np.pi)


def erf_erf(suu: np.ndarray, suv: np.ndarray, svv: np.ndarray) -> np.ndarray:
    """E[erf(u) erf(v)]."""
    return 2 / np.pi * np.arcsin(2 * suv / np.sqrt((1 + 2 * suu) * (1 + 2 * svv)))


def erfp_erfp(suu: np.ndarray, suv: np.ndarray, svv: np.ndarray) -> np.ndarray:
    """E[erf′(u) erf′(v)], erf′(x) = (2/√π) exp(−x²)."""
    return 4 / np.pi / np.sqrt((1 + 2 * suu) * (1 + 2 * svv) - 4 * suv**2)


def u_step_step(suu: np.ndarray, suv: np.ndarray, svv: np.ndarray) -> np.ndarray:
    """E[u · 1{u>0} · 1{v>0}]."""
    scale = np.sqrt(suu * svv)
    rho = np.clip(
        np.divide(suv, scale, out=np.zeros_like(scale, dtype=float), where=scale > 0), -1, 1
    )
    return np.sqrt(suu) * (1 + rho) / (2 * np.sqrt(2 * np.pi))


def u_sign(suv: np.ndarray, svv: np.ndarray) -> np.ndarray:
    """E[u · sign(v)]."""
    return np.sqrt(2 / np.pi) * suv / np.sqrt(svv)


ACTIVATIONS = {"relu": (relu_relu, step_step), "erf": (erf_erf, erfp_erfp)}
"""name → (E[φ(u)φ(v)], E[φ′(u)φ′(v)]) as functions of (Σuu, Σuv, Σvv)."""


@dataclass(frozen=True)
class MLPKernels:
    """Per-layer kernels of an L-hidden-layer MLP over B inputs (05 §5.1), each (B, B):
    ``pre[l]`` = Cov(h^{l+1}) (pre[0] = ξ·ξ′), ``post[l]`` = E[x^{l+1} x^{l+1}′],
    ``deriv[l]`` = E[φ′(h^{l+1}) φ′(h^{l+1})′], ``grad[l]`` = E[dh^{l+1} dh^{l+1}′]
    (readout v ~ N(0,1))."""

    pre: tuple[np.ndarray, ...]
    post: tuple[np.ndarray, ...]
    deriv: tuple[np.ndarray, ...]
    grad: tuple[np.ndarray, ...]

    @property
    def nngp(self) -> np.ndarray:
        """E[x^L(ξ) x^L(ξ′)]: the covariance of f = n^{-1/2} Σ v ⊙ x^L at initialisation."""
        return self.post[-1]

    @property
    def ntk(self) -> np.ndarray:
        """Θ = E[x^L x^L′] + Σ_{l=2}^{L} E[dh^l dh^l′] E[x^{l−1} x^{l−1}′] + E[dh¹ dh¹′] ξ·ξ′."""
        theta = self.post[-1] + self.grad[0] * self.pre[0]
        for layer in range(1, len(self.post)):
            theta = theta + self.grad[layer] * self.post[layer - 1]
        return theta


def mlp_kernels(xs: np.ndarray, depth: int, activation: str = "relu") -> MLPKernels:
    """Kernels of h¹ = Σ_j u_j ξ_j, x^l = φ(h^l), h^{l+1} = W x^l (W entries N(0, 1/n)),
    for L = ``depth`` hidden layers."""
    pair, dpair = ACTIVATIONS[activation]
    k = np.asarray(xs, dtype=np.float64) @ np.asarray(xs, dtype=np.float64).T
    pre, post, deriv = [k], [], []
    for _ in range(depth):
        d = np.diag(pre[-1])
        suu, svv = d[:, None], d[None, :]
        post.append(pair(suu, pre[-1], svv))
        deriv.append(dpair(suu, pre[-1], svv))
        pre.append(post[-1])
    grad = [np.empty(0)] * depth
    g = np.ones_like(k)  # E[dx^L dx^L′] = E[v²] = 1 for every pair of inputs
    for layer in reversed(range(depth)):
        grad[layer] = g * deriv[layer]
        g = grad[layer]  # dx^{l-1} = Wᵀ dh^l: covariance E[dh^l dh^l′]
    return MLPKernels(tuple(pre[:-1]), tuple(post), tuple(deriv), tuple(grad))
