"""The particle algebra of the μ-limit engine: the initial operator W̊_0 as a lazily sampled
Gaussian matrix (runtime/limits/mu_fast_ops.py, conditioned Gaussians), and linear forms in
parameter vectors as one product (runtime/limits/mu_fast_run.py).

On M particles W̊_0 acts as the matrix W = (Γ Qᵀ + P Δᵀ)/M. A width-M network's W_0 has iid
N(0, 1/M) entries, so for orthonormal (⟨a|a⟩ = 1) kets p, q met by the two sides the block entry
⟨p|W q⟩ is N(0, 1/M): M·⟨p|Wq⟩² has mean 1. Without the conditioning the block is counted by both
sides (⟨p|γ⟩ + ⟨δ|q⟩) and the mean is 2. Over R replicas × r × s entries the sample mean of a χ²₁
variable has s.e. √(2/(R·r·s)) (0.05 here), so the window [0.8, 1.2] is 4 s.e. wide.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiler.frontend.parse import parse_text
from compiler.ir import Nonlin, formula_args
from runtime.codegen import compile_instruction
from runtime.limits import mu_fast_ops
from runtime.limits.mu_fast_forms import apply_linear, contract, linear_form, nonlin
from runtime.limits.mu_fast_ops import GaussianPool, InitialOperator


def _block_statistic(m: int, replicas: int, orthogonal: bool) -> float:
    """mean of M·⟨p|W q⟩² over the block the forward side (two uses of 4 new kets) and the
    transposed side (4 kets, met in between) have met."""
    stats = []
    for r in range(replicas):
        rng = np.random.default_rng([3, r])
        op = InitialOperator(m, 1.0, GaussianPool(m, rng, orthogonal))
        for transpose in (False, True, False):  # the sides interleave, as in training
            op.apply(rng.standard_normal((m, 4)), transpose)
        q, p = op.fwd.basis, op.bwd.basis  # orthonormal in the 1/M inner product
        w = (op.fwd.gauss @ q.T + p @ op.bwd.gauss.T) / m  # the operator as a matrix
        block = p.T @ w @ q / m  # ⟨p_i|W q_j⟩, (4, 8)
        stats.append(m * block**2)
    return float(np.mean(stats))


@pytest.mark.parametrize("orthogonal", [False, True])
def test_the_met_block_has_the_variance_of_a_width_m_gaussian_matrix(
        orthogonal: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    assert 0.8 <= _block_statistic(512, 25, orthogonal) <= 1.2
    monkeypatch.setattr(mu_fast_ops, "CONDITIONED", False)
    assert _block_statistic(512, 25, orthogonal) >= 1.6  # the double count (mean 2)


def test_linear_forms_are_one_product_or_a_contraction_with_the_same_value() -> None:
    """mu_fast_forms: h = Σ_j c_j(ξ, θ) u_j (the input layer) as one (M, k) by (k, B) product,
    and Σ_i χ_i ψ(ξ^i) of a linear ψ (a gradient ket) as Σ_k v_k (c_k ⊙ χ), equal the formula
    evaluated term by term (to round-off); a formula that is not linear in its vectors, or has a
    vector ket (M, B) among them, takes the generic path."""
    program = parse_text("""
arch lin {
    input xi[3]
    param U : vector[3]
    param s : scalar
    h = U . xi
    g = s * xi[0] * U[0] - 2 * U[1] + U[2] * xi[2] / 3
    r = relu(U[0]) + U[1] + U[2]
    k = h * xi[1] + U[0] + U[1]
    output h + g + r + k
}""")
    m, rng = 64, np.random.default_rng(0)
    values = {f"xi[{j}]": rng.standard_normal(5) for j in range(3)}
    values |= {f"U[{j}]": rng.standard_normal((m, 1)) for j in range(3)} | {"s": np.array([0.7])}
    chi = rng.standard_normal(5)
    kinds, taken = program.kinds, set()
    for ins in program.body:
        assert isinstance(ins, Nonlin)
        form = linear_form(ins, kinds)
        if form is not None and apply_linear(form, values, m) is not None:
            taken.add(ins.out)
        generic = _generic(ins, values, m)
        np.testing.assert_allclose(nonlin(ins, values, m, kinds), generic, rtol=1e-12,
                                   atol=1e-12)
        if form is not None:
            np.testing.assert_allclose(contract(form, values, m, chi), generic @ chi[:, None],
                                       rtol=1e-12, atol=1e-12)
        values[ins.out] = generic
    assert taken == {"h", "g"}  # r is not linear; k and the output read kets (M, B)


def _generic(ins: Nonlin, values: dict[str, np.ndarray], m: int) -> np.ndarray:
    arrays = [values[v] for _, v, _ in formula_args(ins)]
    y = compile_instruction(ins)(*arrays, m)
    return np.broadcast_to(y, (m, max(a.shape[-1] for a in arrays)))
