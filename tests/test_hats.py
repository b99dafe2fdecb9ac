"""The particle hats' incremental factor (runtime/limits/hats.py, spec 01 §1.4 Hat): the
Gram–Schmidt form in particle space must give the same hats as the triangular factor of
:func:`extend_factor` (the pseudo-inverse form it replaced) on the same normals, including
collinear arguments, constant (replica-independent) arguments and more arguments than
particles (a singular particle Gram)."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.limits.hats import BLOCK, ParticleHats, extend_factor, grow


def _reference(args: list[np.ndarray], zetas: list[np.ndarray], replicas: int) -> list[np.ndarray]:
    """The pseudo-inverse factor, one hat at a time (the definition in the module docstring)."""
    rows = np.zeros((1, 1, 0, 0))
    out: list[np.ndarray] = []
    for k, x in enumerate(args):
        c = [np.mean(a * x, axis=0) for a in args[:k]]
        d = np.mean(x * x, axis=0)
        shape = np.broadcast_shapes(rows.shape[:-2], d.shape, (replicas, 1), *(g.shape for g in c))
        cs = np.stack([np.broadcast_to(g, shape) for g in c], -1) if c else np.zeros((*shape, 0))
        rows = np.broadcast_to(rows, (*shape, k, k))
        lv, s = extend_factor(rows, cs, np.broadcast_to(d, shape))
        hat = s * zetas[k] + sum((lv[..., j] * zetas[j] for j in range(k)), np.zeros(1))
        rows = grow(rows, lv, s)
        out.append(hat)
    return out


def _args(rng: np.random.Generator, p: int, r: int, k: int) -> list[np.ndarray]:
    """k arguments: random, a repeat, a linear combination and a constant column."""
    args = [rng.standard_normal((p, r, 1)) for _ in range(k)]
    args[3] = args[1].copy()  # the same vector twice: the same hat
    args[5] = 2.0 * args[0] - args[2]  # collinear with earlier ones: no new direction
    args[6] = np.broadcast_to(rng.standard_normal((p, 1, 1)), (p, 1, 1))  # vec(θ): one column
    return args


@pytest.mark.parametrize(("p", "k"), [(200, 2 * BLOCK + 5), (16, 40)])
def test_gram_schmidt_hats_equal_the_triangular_factor(p: int, k: int) -> None:
    """Same hats to round-off (1e-8 relative: the particle Gram is well conditioned in the first
    case; in the second, k > P saturates its rank, and both forms must leave the extra
    directions out, s = 0, rather than amplify round-off)."""
    rng = np.random.default_rng(7)
    r = 3
    args = _args(rng, p, r, k)
    zetas = [rng.standard_normal((p, r, 1)) for _ in range(k)]
    hats = ParticleHats(r)
    got = [hats.add(x, lambda shape, z=z: z) for x, z in zip(args, zetas, strict=True)]
    want = _reference(args, zetas, r)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert np.allclose(g, w, rtol=1e-8, atol=1e-8 * np.abs(w).max())
    assert np.allclose(got[3], got[1], atol=1e-12)

