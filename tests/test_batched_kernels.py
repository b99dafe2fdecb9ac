"""Exact kernel blocks (runtime.limits.kernels, runtime.limits.batched) against closed forms.

Oracles: the closed-form MLP recursion (runtime.limits.closed_forms.mlp_kernels, 05 §5.1, 07 §7.1)
for relu and erf; for sin, E[sin a sin b] = e^{−(Σaa+Σbb)/2} sinh Σab and E[cos a cos b] =
e^{−(Σaa+Σbb)/2} cosh Σab (from E[e^{i(a±b)}]); for tanh, scipy's adaptive nested quadrature.
Tolerance 1e-12: every side is exact up to float64 rounding (closed forms) or to its stated
quadrature error (≤ 1e-14, runtime.limits.pairs; scipy asked for 1e-13 absolute)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import integrate

from compiler.frontend.parse import parse_file, parse_text
from runtime.limits.batched import batched_kernel_blocks
from runtime.limits.closed_forms import mlp_kernels
from runtime.limits.kernels import exact_kernel_blocks, general_kernel_blocks, ntk_of

ROOT = Path(__file__).resolve().parent.parent
X = np.load(ROOT / "samples" / "data" / "gauss10.npz")["X_train"]
TOL = 1e-12


def _closed_blocks(x: np.ndarray, depth: int, act: str) -> dict[str, np.ndarray]:
    """The closed form's blocks: v → E[x^L x^L′], U → E[dh¹ dh¹′] ξ·ξ′, W_l → E[dh^l dh^l′]
    E[x^{l−1} x^{l−1}′] (05 §5.1, the terms of MLPKernels.ntk)."""
    k = mlp_kernels(x, depth, act)
    ws = ["W"] if depth == 2 else [f"W{layer + 1}" for layer in range(1, depth)]
    out = {"nngp": k.nngp, "v": k.post[-1], "U": k.grad[0] * k.pre[0]}
    for layer, w in enumerate(ws, start=1):
        out[w] = k.grad[layer] * k.post[layer - 1]
    return out


def _assert_blocks(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for key, block in want.items():
        np.testing.assert_allclose(got[key], block, rtol=0, atol=TOL, err_msg=key)


@pytest.mark.parametrize("name,depth,act", [("mlp3", 3, "relu"), ("mlp2_erf", 2, "erf")])
def test_general_path_matches_closed_forms(name: str, depth: int, act: str) -> None:
    x = X[:2]
    got = general_kernel_blocks(parse_file(ROOT / "samples" / f"{name}.nx"), x)
    _assert_blocks(got, _closed_blocks(x, depth, act))
    np.testing.assert_allclose(ntk_of(got), mlp_kernels(x, depth, act).ntk, rtol=0, atol=TOL)


@pytest.mark.parametrize("name,depth,act",
                         [("mlp1", 1, "relu"), ("mlp2", 2, "relu"), ("mlp3", 3, "relu"),
                          ("mlp2_erf", 2, "erf")])
def test_batched_path_matches_closed_forms(name: str, depth: int, act: str) -> None:
    x = np.random.default_rng(depth).standard_normal((40, 10)) / np.sqrt(10)
    got = batched_kernel_blocks(parse_file(ROOT / "samples" / f"{name}.nx"), x)
    assert got is not None
    want = _closed_blocks(x, depth, act)
    if depth == 1:  # mlp1 has no hidden matrix
        want.pop("W", None)
    _assert_blocks(got, want)


def test_batched_equals_general_on_mlp2() -> None:
    prog = parse_file(ROOT / "samples" / "mlp2.nx")
    _assert_blocks(exact_kernel_blocks(prog, X[:3]), general_kernel_blocks(prog, X[:3]))


def test_inline_linear_layer_and_bias() -> None:
    """relu(U . xi + b) is one Gaussian of variance |ξ|² + 1: the closed forms on the input
    (ξ, 1), whose U block splits into U (ξ·ξ′ part) and b (the 1 part)."""
    text = (ROOT / "samples" / "mlp3.nx").read_text()
    text = text.replace("h1 = U . xi\n    x1 = relu(h1)", "x1 = relu(U . xi + b)")
    text = text.replace("param v : vector", "param v : vector\n    param b : vector")
    x = X[:6]
    got = batched_kernel_blocks(parse_text(text), x)
    assert got is not None
    want = _closed_blocks(np.hstack([x, np.ones((len(x), 1))]), 3, "relu")
    grad0 = want["U"] / (x @ x.T + 1)
    want["U"], want["b"] = grad0 * (x @ x.T), grad0
    _assert_blocks(got, want)


SIN = """arch s {
    input xi[10]
    param U : vector[10]
    param W : matrix
    param v : vector
    param c : scalar = 3/2
    x1 = sin(U . xi)
    h2 = W @ x1
    x2 = c * sin(h2)
    output v * x2
}"""


def test_smooth_activation_by_quadrature_matches_sin_closed_form() -> None:
    x = np.random.default_rng(1).standard_normal((12, 10)) / np.sqrt(5)
    got = batched_kernel_blocks(parse_text(SIN), x)
    assert got is not None

    def pairs(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.diag(k)
        e = np.exp(-(d[:, None] + d[None, :]) / 2)
        return e * np.sinh(k), e * np.cosh(k)  # E[sin sin], E[cos cos]

    k0 = x @ x.T
    post1, deriv1 = pairs(k0)
    post2, deriv2 = pairs(post1)
    grad2 = 2.25 * deriv2  # c² E[cos cos] (dx² = v)
    grad1 = grad2 * deriv1
    want = {"nngp": 2.25 * post2, "v": 2.25 * post2, "W": grad2 * post1, "U": grad1 * k0}
    _assert_blocks(got, want)


def _gauss(f: object) -> float:
    """E[f(z)], z ~ N(0, 1), by scipy's adaptive quadrature on [−12, 12] (tail < 1e-31;
    absolute error ≤ 1e-13)."""
    val = integrate.quad(lambda z: f(z) * np.exp(-z * z / 2), -12, 12,  # type: ignore[operator]
                         epsabs=1e-13, epsrel=0, limit=200)[0]
    return float(val) / np.sqrt(2 * np.pi)


def _tanh_pair(s: float, t: float, rho: float) -> float:
    """E[tanh(a) tanh(b)], Var a = s², Var b = t², corr ρ: E[tanh(s z) E[tanh(b) | z]]."""
    r = np.sqrt(max(0.0, 1 - rho * rho))
    return _gauss(lambda z: np.tanh(s * z) * _gauss(lambda u: np.tanh(t * (rho * z + r * u))))


def test_tanh_by_quadrature_matches_adaptive_quadrature() -> None:
    text = SIN.replace("x2 = c * sin(h2)", "x2 = h2").replace("sin(U . xi)", "tanh(U . xi)")
    x = np.random.default_rng(2).standard_normal((3, 10)) / np.sqrt(3)
    got = batched_kernel_blocks(parse_text(text), x)
    assert got is not None
    k = x @ x.T
    for i, j in ((0, 0), (0, 1), (1, 2)):
        s, t = np.sqrt(k[i, i]), np.sqrt(k[j, j])
        want = _tanh_pair(s, t, k[i, j] / (s * t))
        assert abs(got["nngp"][i, j] - want) < TOL


RES1 = """arch res1 {
    input xi[10]
    param U : vector[10]
    param W : matrix
    param v : vector
    z0 = U . xi
    z1 = z0 + W @ relu(z0)
    output v * relu(z1)
}"""


def test_residual_block_matches_its_kernel_recursion() -> None:
    """A residual stream shares bases between layers: K1 = K0 + E[relu relu](K0); the NNGP is
    E[relu relu](K1); backward (05 §5.2, gradient independence with a zero-mean readout)
    dz1 has E[dz1 dz1′] = E[step step](K1) =: G, the W block is G ⊙ E[relu relu](K0), and U
    gets ξξ′ ⊙ (G + G ⊙ E[step step](K0)) from its two paths."""
    from runtime.limits.closed_forms import relu_relu, step_step

    x = np.random.default_rng(4).standard_normal((16, 10)) / np.sqrt(10)
    got = batched_kernel_blocks(parse_text(RES1), x)
    assert got is not None

    def pair(f, k):  # type: ignore[no-untyped-def]
        d = np.diag(k)
        return f(d[:, None], k, d[None, :])

    k0 = x @ x.T
    p0 = pair(relu_relu, k0)
    k1 = k0 + p0
    g = pair(step_step, k1)
    want = {"nngp": pair(relu_relu, k1), "v": pair(relu_relu, k1), "W": g * p0,
            "U": k0 * (g + g * pair(step_step, k0))}
    _assert_blocks(got, want)


@pytest.mark.slow
def test_resmlp_batched_equals_the_general_path() -> None:
    """samples/resmlp.nx (two residual blocks): measured 2e-15 apart, general path 54 s."""
    prog = parse_file(ROOT / "samples" / "resmlp.nx")
    x = np.random.default_rng(0).standard_normal((2, 10)) / np.sqrt(10)
    _assert_blocks(exact_kernel_blocks(prog, x), general_kernel_blocks(prog, x))


@pytest.mark.parametrize("name", ["rnn", "attention", "layernorm_mlp", "transformer_block"])
def test_shared_weights_fall_back_to_the_general_path(name: str) -> None:
    prog = parse_file(ROOT / "samples" / f"{name}.nx")
    x = np.random.default_rng(0).standard_normal((2, len(prog.input_names)))
    assert batched_kernel_blocks(prog, x) is None


def test_blocks_are_symmetric_and_sum_to_the_ntk() -> None:
    x = np.random.default_rng(3).standard_normal((64, 10)) / np.sqrt(10)
    got = exact_kernel_blocks(parse_file(ROOT / "samples" / "mlp3.nx"), x)
    k = mlp_kernels(x, 3, "relu")
    for key, block in got.items():
        np.testing.assert_array_equal(block, block.T, err_msg=key)
    np.testing.assert_allclose(got["nngp"], k.nngp, rtol=0, atol=TOL)
    np.testing.assert_allclose(ntk_of(got), k.ntk, rtol=0, atol=TOL)


def _sin_pairs(cov: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """E[sin a_i sin a_j] = ½[cos(μ_i − μ_j) e^{−(σ_i²+σ_j²−2c)/2} − cos(μ_i + μ_j)
    e^{−(σ_i²+σ_j²+2c)/2}] (from E[e^{i(a_i ∓ a_j)}])."""
    d = np.diag(cov)
    tot = d[:, None] + d[None, :]
    return 0.5 * (np.cos(mean[:, None] - mean[None, :]) * np.exp(-(tot - 2 * cov) / 2)
                  - np.cos(mean[:, None] + mean[None, :]) * np.exp(-(tot + 2 * cov) / 2))


@pytest.mark.parametrize("mehler", [True, False])
def test_smooth_pair_rules_with_a_mean_match_the_sin_closed_form(mehler: bool, monkeypatch) -> None:
    """Both smooth rules (Hermite expansion, and the tensor trapezoid rule it falls back to)
    on non-centred Gaussians."""
    import sympy

    from runtime.limits import pairs

    if not mehler:
        monkeypatch.setattr(pairs, "mehler_pairs", lambda f, cov, mean: None)
    pairs.pair_rule.cache_clear()
    x = np.random.default_rng(7).standard_normal((10, 4))
    cov, mean = x @ x.T / 2, np.linspace(-1, 1, 10)
    got = pairs.pair_expectation(sympy.sin(pairs.T), cov, mean)
    pairs.pair_rule.cache_clear()
    np.testing.assert_allclose(got, _sin_pairs(cov, mean), rtol=0, atol=TOL)
