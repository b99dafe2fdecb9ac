"""Joint sampling of hat-kets (spec 01 §1.4 Hat, §1.6): one incremental factor per orientation.

All hats of one orientation (W, or Wᵀ, which counts as a different matrix) are centred jointly
Gaussian with Cov(|Ŵx_i⟩, |Ŵx_j⟩) = ⟨x_i|x_j⟩.  We write every hat in a basis of independent
standard normals ζ_0, ζ_1, … (one fresh ζ per hat):

    |Ŵx_k⟩ = Σ_{j<k} L_kj ζ_j + s_k ζ_k,      L_prev · lv = c,   s_k² = ⟨x_k|x_k⟩ − |lv|²,

with c_j = ⟨x_j|x_k⟩: an incremental Cholesky factor of the Gram matrix.  It never crashes on a
singular Gram: lv is solved with a pseudo-inverse of the (possibly rank-deficient) triangular
factor, and s_k² is clipped at 0 below a relative floor (the same vector multiplied twice gives
the same hat; inputs of a total program may be collinear).  The Monte Carlo evaluator feeds
particle Gram estimates; the exact path feeds exact inner products.  Arrays carry leading batch
axes (replicas, inputs), so one call factors every column at once.
"""

from __future__ import annotations

import numpy as np

RANK_FLOOR = 1e-12
"""s_k² below RANK_FLOOR·⟨x_k|x_k⟩ is rank deficiency (round-off), not a new direction."""


def extend_factor(rows: np.ndarray, c: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step of the incremental factor.  ``rows`` (..., k, k): the lower-triangular factor of
    the earlier hats; ``c`` (..., k): inner products of the new argument with the earlier ones;
    ``d`` (...): its squared norm.  Returns (lv (..., k), s (...))."""
    if rows.shape[-1] == 0:
        return np.zeros((*d.shape, 0)), np.sqrt(np.maximum(d, 0.0))
    pinv = np.linalg.pinv(rows, rcond=1e-10)
    lv = np.einsum("...ij,...j->...i", pinv, c)
    s2 = d - np.einsum("...i,...i->...", lv, lv)
    s2 = np.where(s2 > RANK_FLOOR * np.maximum(d, 1e-300), s2, 0.0)
    return lv, np.sqrt(s2)


def grow(rows: np.ndarray, lv: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The factor with the new row (lv, s) appended: (..., k+1, k+1)."""
    k = rows.shape[-1]
    shape = np.broadcast_shapes(rows.shape[:-2], lv.shape[:-1], s.shape)
    out = np.zeros((*shape, k + 1, k + 1))
    out[..., :k, :k] = rows
    out[..., k, :k] = lv
    out[..., k, k] = s
    return out


class ParticleHats:
    """The hats of one orientation over M particles: values (P, R, C), where P particles per
    replica, R replicas and C input columns (1 for input-independent objects) are independent."""

    def __init__(self, replicas: int = 1) -> None:
        self.replicas = replicas
        self.args: list[np.ndarray] = []
        self.zetas: list[np.ndarray] = []
        self.rows = np.zeros((1, 1, 0, 0))

    def add(self, x: np.ndarray, zeta_of: object) -> np.ndarray:
        """The hat of a new argument ``x`` (P, R, C); ``zeta_of(shape)`` draws fresh normals."""
        # a constant argument (vec(θ)) has one replica column: broadcast before stacking
        grams = np.broadcast_arrays(*(np.mean(a * x, axis=0) for a in self.args))
        d = np.mean(x * x, axis=0)
        c = np.stack(grams, axis=-1) if grams else np.zeros((*d.shape, 0))
        # every replica draws its own hat, even of a constant argument: else the replicas share
        # one draw and the standard error comes out 0
        shape = np.broadcast_shapes(
            self.rows.shape[:-2], c.shape[:-1], d.shape, (self.replicas, 1)
        )
        rows = np.broadcast_to(self.rows, (*shape, *self.rows.shape[-2:]))
        lv, s = extend_factor(
            rows, np.broadcast_to(c, (*shape, c.shape[-1])), np.broadcast_to(d, shape)
        )
        zeta = zeta_of((x.shape[0], *shape))  # type: ignore[operator]
        hat = s * zeta
        for j, z in enumerate(self.zetas):
            hat = hat + lv[..., j] * z
        self.rows = grow(rows, lv, s)
        self.args.append(x)
        self.zetas.append(zeta)
        return hat
