"""E[φ(a_i) φ(a_j)] for every pair of B jointly Gaussian a_i at once (spec 07 §7.1).

``pair_expectation(phi, cov, mean)``: a = (a_1, …, a_B) with E[a] = ``mean`` and Cov(a) = ``cov``;
the (B, B) matrix of E[φ(a_i) φ(a_j)].  φ = c·φ₀ (c a constant factor) with φ₀ one of

    T (identity): Σ_ij + μ_i μ_j       relu, step, erf, exp(−T²): the closed forms of
                                        runtime.limits.closed_forms (centred a only)

and any other smooth φ by B Hermite expansions (Mehler's formula, :mod:`runtime.limits.mehler`,
with a Parseval bound on the truncation), or where those converge too slowly by the tensor
trapezoid rule in the whitened pair (a_i = μ_i + s_i z₁,
a_j = μ_j + s_j(ρ z₁ + √(1−ρ²) z₂)), z on [−9, 9] with step h and Gaussian weights, on all i ≤ j
pairs vectorised, with the node grid cached per step.  For φ analytic in the strip |Im a| < d the
trapezoid error is O(exp(−2π d/(s h))) (geometric in 1/h), where Gauss–Hermite only reaches
O(exp(−(d/s)√(2n))): tanh needs n ≈ 450 Gauss–Hermite nodes per axis for 1e-13 but 137
trapezoid nodes (measured: GH n = 183 still differs from n = 122 by 1.7e-8).  The truncation at
|z| = 9 costs e^{−40.5} ≈ 3e-18.  The step is halved (h = 1/2, 1/4, …, 1/32) until two successive
steps differ by at most 1e-7 relative to the largest entry: that difference is the coarser
step's error C·e^{−πd/(sh)}, so the finer step's error C·e^{−2πd/(sh)} is about its square over
C, below 1e-14 (tests/test_batched_kernels.py checks tanh and sigmoid networks against the
general exact path to 1e-12).  A kinked φ other than relu/step (abs, max,
sign, …), an input with zero variance, or no convergence raises :class:`NotBatchedError`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import sympy

from compiler.symbols import relu, step
from runtime.limits import closed_forms as cf
from runtime.limits.mehler import mehler_pairs

T = sympy.Symbol("@t")
"""The argument of an activation formula φ(T)."""

STEPS = (1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32)
RADIUS = 9.0
ACCEPT = 1e-7
TOLERANCE = ACCEPT**2  # the error of the accepted step (see the module docstring)
CHUNK = 1 << 20  # pair-nodes evaluated at once (32 MiB of float64)
KINKS = (relu, step, sympy.sign, sympy.Abs, sympy.Max, sympy.Min, sympy.Piecewise, sympy.Heaviside)


class NotBatchedError(Exception):
    """The program or integrand is outside the batched class (the message says why)."""


Closed = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
CLOSED: dict[sympy.Expr, Closed] = {
    relu(T): cf.relu_relu,
    step(T): cf.step_step,
    sympy.erf(T): cf.erf_erf,
    sympy.exp(-(T**2)): lambda suu, suv, svv: np.pi / 4 * cf.erfp_erfp(suu, suv, svv),
}


PairRule = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(cov (B, B), mean (B,)) → (B, B) E[φ(a_i) φ(a_j)]."""


def pair_expectation(phi: sympy.Expr, cov: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(B, B) E[φ(a_i) φ(a_j)] for a ~ N(mean, cov) (see the module docstring)."""
    return pair_rule(phi)(cov, mean)


@lru_cache(maxsize=256)
def pair_rule(phi: sympy.Expr) -> PairRule:
    """The rule for φ, decided once per activation (no sympy per evaluation)."""
    c_expr, phi0 = phi.as_independent(T, as_Add=False)
    c2 = float(c_expr) ** 2
    if not phi0.has(T):
        value = c2 * float(phi0) ** 2
        return lambda cov, mean: np.full(cov.shape, value)
    if phi0 == T:
        return lambda cov, mean: c2 * (cov + np.outer(mean, mean))
    closed = CLOSED.get(phi0)
    if closed is None and phi0.has(*KINKS):
        raise NotBatchedError(f"a kinked activation {phi0} without a closed form")
    smooth = None if phi0.has(*KINKS) else _smooth_rule(phi0)

    def rule(cov: np.ndarray, mean: np.ndarray) -> np.ndarray:
        d = np.diag(cov)
        if np.any(d <= 0):
            raise NotBatchedError("an input with zero variance")
        if closed is not None and not np.any(mean):
            return c2 * closed(d[:, None], cov, d[None, :])
        if smooth is None:
            raise NotBatchedError(f"{phi0} of a Gaussian with non-zero mean")
        return c2 * smooth(cov, mean)

    return rule


@lru_cache(maxsize=16)
def _grid(h: float) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoid nodes on [−RADIUS, RADIUS] with step h and standard normal weights."""
    k = round(RADIUS / h)
    z = h * np.arange(-k, k + 1)
    return z, h * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)


def _smooth_rule(phi: sympy.Expr) -> PairRule:
    """Refined tensor trapezoid rule for a smooth φ (compiled once)."""
    from runtime.codegen import compile_formula

    compiled = compile_formula(phi, (T,))

    def f(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(compiled(a, 1), dtype=np.float64), a.shape)

    def rule(cov: np.ndarray, mean: np.ndarray) -> np.ndarray:
        fast = mehler_pairs(f, cov, mean)
        if fast is not None:
            return fast
        last = None
        for h in STEPS:
            got = _tensor_rule(f, cov, mean, h)
            if last is not None:
                scale = max(1.0, float(np.max(np.abs(got))))
                if float(np.max(np.abs(got - last))) <= ACCEPT * scale:
                    return got
            last = got
        raise NotBatchedError(f"the quadrature of {phi} did not converge to {TOLERANCE}")

    return rule


def _tensor_rule(
    f: Callable[[np.ndarray], np.ndarray], cov: np.ndarray, mean: np.ndarray, h: float
) -> np.ndarray:
    """E[f(a_i) f(a_j)] on the tensor grid of step h, all pairs i ≤ j, chunked to bound memory."""
    z, w = _grid(h)
    n = len(z)
    s = np.sqrt(np.diag(cov))
    rho = np.clip(cov / np.outer(s, s), -1.0, 1.0)
    fi = f(mean[:, None] + s[:, None] * z[None, :]) * w  # (B, n): f(a_i) at z₁, weighted
    iu, ju = np.triu_indices(len(s))
    out = np.empty(len(iu))
    step_ = max(1, CHUNK // (n * n))
    for lo in range(0, len(iu), step_):
        i, j = iu[lo:lo + step_], ju[lo:lo + step_]
        r = rho[i, j][:, None]
        along = mean[j][:, None] + (s[j][:, None] * r) * z[None, :]  # (P, n): the z₁ part
        across = (s[j][:, None] * np.sqrt(1 - r * r)) * z[None, :]  # (P, n): the z₂ part
        inner = f(along[:, :, None] + across[:, None, :]) @ w  # (P, n): E[f(a_j) | z₁]
        out[lo:lo + step_] = np.einsum("pk,pk->p", fi[i], inner)
    m = np.empty_like(cov)
    m[iu, ju] = out
    m[ju, iu] = out
    return m
