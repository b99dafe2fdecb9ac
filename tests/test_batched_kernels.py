"""Exact kernel blocks (runtime.limits.kernels) against the closed-form MLP recursion
(runtime.limits.closed_forms.mlp_kernels, 05 §5.1, 07 §7.1): NNGP and per-group NTK blocks.

Tolerance 1e-12: both sides are exact (closed forms, or quadrature exact to ~1e-14 on these
integrands), so only float64 rounding separates them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compiler.frontend.parse import parse_file
from runtime.limits.closed_forms import mlp_kernels
from runtime.limits.kernels import exact_kernel_blocks, general_kernel_blocks, ntk_of

ROOT = Path(__file__).resolve().parent.parent
X = np.load(ROOT / "samples" / "data" / "gauss10.npz")["X_train"]


def _closed_blocks(x: np.ndarray, depth: int, act: str) -> dict[str, np.ndarray]:
    """The closed form's blocks: v → E[x^L x^L′], U → E[dh¹ dh¹′] ξ·ξ′, W_l → E[dh^l dh^l′]
    E[x^{l−1} x^{l−1}′] (05 §5.1, the terms of MLPKernels.ntk)."""
    k = mlp_kernels(x, depth, act)
    ws = ["W"] if depth == 2 else [f"W{layer + 1}" for layer in range(1, depth)]
    out = {"nngp": k.nngp, "v": k.post[-1], "U": k.grad[0] * k.pre[0]}
    for layer, w in enumerate(ws, start=1):
        out[w] = k.grad[layer] * k.post[layer - 1]
    return out


@pytest.mark.parametrize("name,depth,act", [("mlp3", 3, "relu"), ("mlp2_erf", 2, "erf")])
def test_general_path_matches_closed_forms(name: str, depth: int, act: str) -> None:
    x = X[:2]
    got = general_kernel_blocks(parse_file(ROOT / "samples" / f"{name}.nx"), x)
    want = _closed_blocks(x, depth, act)
    assert set(got) == set(want)
    for key, block in want.items():
        np.testing.assert_allclose(got[key], block, rtol=0, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(ntk_of(got), mlp_kernels(x, depth, act).ntk, rtol=0, atol=1e-12)


def test_exact_blocks_are_symmetric_and_sum_to_the_ntk() -> None:
    x = X[:3]
    got = exact_kernel_blocks(parse_file(ROOT / "samples" / "mlp2.nx"), x)
    k = mlp_kernels(x, 2, "relu")
    for key, block in got.items():
        np.testing.assert_array_equal(block, block.T, err_msg=key)
    np.testing.assert_allclose(got["nngp"], k.nngp, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ntk_of(got), k.ntk, rtol=0, atol=1e-12)
