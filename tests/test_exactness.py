"""A value labelled exact is exact (spec 01 §1.6, 07 §7.1): expectations over many correlated
Gaussian kets against closed forms derived here, the exact path either within 1e-10 or handing
the program to Monte Carlo (method and note say so), and then within 4 standard errors.

Closed forms, for a centred Gaussian vector e with covariance C = ξξᵀ (e_s = U·ξ_s, U ~ N(0, I)):
* E[erf(a e_s) erf(a e_t)] = (2/π) arcsin(2a²C_st / √((1 + 2a²C_ss)(1 + 2a²C_tt))), so
  E[(Σ_s erf(4e_s))²] is the sum of that over s, t with 2a² = 32;
* Π_s cos(e_s) = 2^(1−S) Σ_{σ ∈ {±1}^S, σ_1 = 1} cos(σ·e) and E[cos(σ·e)] = exp(−σᵀCσ/2);
* E[exp(−b eᵀe)] = det(I + 2bC)^(−1/2) (a Gaussian integral).
The exact path's own round-off is ~1e-14 here, so 1e-10 leaves room only for a wrong rule; Monte
Carlo: 16 independent replicas, 4 standard errors (p ≈ 1e-3 per check; fixed seeds)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from compiler.frontend.parse import parse_text
from compiler.kets.lowering import lower
from compiler.passes.kernel_program import kernel_program
from runtime.limits import NotApplicableError, evaluate
from runtime.limits.closed_forms import mlp_kernels
from tests.conftest import ROOT

EXACT = 1e-10
SIZES = [2, 3, 6, *(pytest.param(s, marks=pytest.mark.slow) for s in (4, 5, 7, 8))]  # fast: 2, 3, 6

BODIES = {
    "erf": "z = sum[s in 0..S](erf(4*e[s]))\n r = avg(z*z)",
    "cos": "z = prod\n r = avg(z)",
    "gauss": "z = exp(-4*sum[s in 0..S](e[s]*e[s]))\n r = avg(z)",
}


def program(size: int, family: str) -> object:
    body = BODIES[family].replace("prod", " * ".join(f"cos(e[{s}])" for s in range(size)))
    text = f"""arch many {{
 const S = {size}
 input xi[S][6]
 param U : vector[6]
 param v : vector
 for s in 0..S {{ e[s] = U . xi[s] }}
 {body}
 output v * z
}}"""
    return lower(parse_text(text))


def closed_form(xi: np.ndarray, family: str) -> float:
    c = xi @ xi.T
    if family == "erf":
        d = np.sqrt(1 + 32 * np.diag(c))
        return float(np.sum(2 / np.pi * np.arcsin(32 * c / np.outer(d, d))))
    if family == "cos":
        signs = [np.array((1, *s)) for s in itertools.product((1, -1), repeat=len(c) - 1)]
        return float(np.mean([np.exp(-s @ c @ s / 2) for s in signs]))
    return float(np.linalg.det(np.eye(len(c)) + 8 * c) ** -0.5)


def inputs(size: int) -> np.ndarray:
    return np.random.default_rng(100 + size).standard_normal((size, 6)) / np.sqrt(6)


def check(size: int, family: str) -> str:
    """Evaluate with ``auto``; exact to 1e-10 if labelled exact, else within 4 s.e.; the method."""
    xi = inputs(size)
    res = evaluate(program(size, family), xi.reshape(1, -1), "auto")
    truth, value, se = closed_form(xi, family), res.scalars["r"][0], res.stderr["r"][0]
    method = res.methods["r"]
    if method == "exact":
        assert res.method == "exact" and se == 0
        assert abs(value - truth) < EXACT, (value, truth)
    else:
        assert method == "mc" and res.method == "mc" and se > 0
        assert any("exact path not applicable" in n for n in res.notes), res.notes
        assert abs(value - truth) < 4 * se, (value, truth, se)
    return method


@pytest.mark.parametrize("size", SIZES)
def test_sum_of_erfs_squared_is_exact(size):
    # S² terms of dimension ≤ 2 after splitting the sum: exact at every S
    assert check(size, "erf") == "exact"


@pytest.mark.parametrize("size", range(2, 9))  # all fast: one-dimensional integrals
def test_product_of_cosines_is_exact(size):
    # 2^(S−1) one-dimensional integrals after the product-to-sum identity
    assert check(size, "cos") == "exact"


@pytest.mark.parametrize("size", SIZES)
def test_non_separable_integrand_exact_or_monte_carlo(size):
    # exp(−4 eᵀe) is narrow and joint in all min(S, 6) dimensions: no reduction applies, so the
    # tensor rule must either converge or hand over to Monte Carlo
    method = check(size, "gauss")
    if size <= 2:
        assert method == "exact"  # two dimensions: composite panels, exact


def test_unconverged_quadrature_is_refused_with_its_reason():
    with pytest.raises(NotApplicableError, match="did not converge"):
        evaluate(program(6, "gauss"), inputs(6).reshape(1, -1), "exact")


def test_kernels_do_not_depend_on_naming_the_linear_layer():
    # x1 = relu(U . xi) is an integral over the one Gaussian U·ξ, not over the ten |U_j⟩
    text = (ROOT / "samples" / "mlp3.nx").read_text()
    assert "h1 = U . xi\n    x1 = relu(h1)" in text
    inline = text.replace("h1 = U . xi\n    x1 = relu(h1)", "x1 = relu(U . xi)")
    x = np.load(ROOT / "samples" / "data" / "gauss10.npz")["X_train"][:3]
    kp = kernel_program(parse_text(inline), len(x))
    res = evaluate(lower(kp.program), kp.bind(x), method="exact")
    k = mlp_kernels(x, 3, "relu")
    for table, ref in ((kp.ntk, k.ntk), (kp.nngp, k.nngp)):
        for (i, j), n in table.items():
            assert abs(res.scalars[n][0] - ref[i, j]) < 1e-12, (n, res.scalars[n], ref[i, j])


def relu_kernel(k: np.ndarray) -> np.ndarray:
    """E[relu(u) relu(v)] for (u, v) ~ N(0, k) entrywise (the arc-cosine kernel, 07 §7.1)."""
    d = np.sqrt(np.diag(k))
    c = np.clip(k / np.outer(d, d), -1, 1)
    t = np.arccos(c)
    return np.outer(d, d) / (2 * np.pi) * (np.sin(t) + (np.pi - t) * c)


@pytest.mark.parametrize("batch", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_residual_mlp_nngp_is_exact_after_splitting_the_sum(batch):
    # z ← z + W relu(z): the NNGP integrand relu(z2)relu(z2') spans four kink directions, but its
    # sums split into terms of ≤ 2; closed form K ← K + relu_kernel(K) (W independent of z),
    # NNGP = relu_kernel(K_L)
    prog = parse_text((ROOT / "samples" / "resmlp.nx").read_text())
    x = np.random.default_rng(0).standard_normal((batch, 10)) / np.sqrt(10)
    kp = kernel_program(prog, len(x))
    res = evaluate(lower(kp.program), kp.bind(x), method="exact")
    k = x @ x.T
    for _ in range(2):
        k = k + relu_kernel(k)
    for (i, j), n in kp.nngp.items():
        assert abs(res.scalars[n][0] - relu_kernel(k)[i, j]) < 1e-12, (n, res.scalars[n])
