"""Joint sampling of hat-kets (spec 01 §1.4 Hat, §1.6): one incremental factor per orientation.

All hats of one orientation (W, or Wᵀ, which counts as a different matrix) are centred jointly
Gaussian with Cov(|Ŵx_i⟩, |Ŵx_j⟩) = ⟨x_i|x_j⟩.  We write every hat in a basis of independent
standard normals ζ_0, ζ_1, … (one fresh ζ per hat):

    |Ŵx_k⟩ = Σ_{j<k} L_kj ζ_j + s_k ζ_k,      L_prev · lv = c,   s_k² = ⟨x_k|x_k⟩ − |lv|²,

with c_j = ⟨x_j|x_k⟩: an incremental Cholesky factor of the Gram matrix.  It never crashes on a
singular Gram: lv is solved with a pseudo-inverse of the (possibly rank-deficient) triangular
factor, and s_k² is clipped at 0 below a relative floor (the same vector multiplied twice gives
the same hat; inputs of a total program may be collinear).  The exact path feeds exact inner
products to :func:`extend_factor`; the Monte Carlo evaluator (:class:`ParticleHats`) computes the
same factor by Gram–Schmidt in particle space, O(P·K) per hat (a total program over many points
gives an orientation one hat per copy, K in the hundreds; the pseudo-inverse's O(K³) per hat
was 2/3 of the NT limit's time on the paper's 104 points).  Arrays carry leading batch axes
(replicas, inputs), so one call factors every column at once.
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


BLOCK = 32
"""Basis vectors per stored block: one einsum per block per hat, and no re-allocation as the
orientation grows (a growing array would copy O(K²) values over K hats)."""


class ParticleHats:
    """The hats of one orientation over M particles: values (P, R, C), where P particles per
    replica, R replicas and C input columns (1 for input-independent objects) are independent.

    The factor is kept as an orthonormal basis of the arguments in particle space (Gram–Schmidt,
    run twice for round-off: "CGS2"), not as the triangular matrix: with q_j the basis, L_kj =
    ⟨q_j|x_k⟩ and s_k = ‖x_k − Σ_j L_kj q_j‖, the same factor as :func:`extend_factor` (the R
    factor of the QR of the particle matrix is Lᵀ), at O(P·K) per hat instead of a
    pseudo-inverse, O(K³): K hats of an orientation cost O(P·K²), not O(K⁴).  A
    rank-deficient direction (s = 0) keeps a zero basis vector, so its ζ never enters later."""

    def __init__(self, replicas: int = 1) -> None:
        self.replicas = replicas
        self.count = 0
        self.shape: tuple[int, ...] = (replicas, 1)
        self.basis: list[np.ndarray] = []  # blocks (R, C, BLOCK, P) of q_j
        self.zetas: list[np.ndarray] = []  # blocks (R, C, BLOCK, P) of ζ_j

    def add(self, x: np.ndarray, zeta_of: object) -> np.ndarray:
        """The hat of a new argument ``x`` (P, R, C); ``zeta_of(shape)`` draws fresh normals."""
        # every replica draws its own hat, even of a constant argument: else the replicas share
        # one draw and the standard error comes out 0
        shape = np.broadcast_shapes(self.shape, x.shape[1:])
        if shape != self.shape:
            self._widen(shape)
        p = x.shape[0]
        # particles last, (R, C, P): the projections are then batched BLAS matrix products
        r = np.ascontiguousarray(np.moveaxis(np.broadcast_to(x, (p, *shape)), 0, -1))
        d = np.einsum("rcp,rcp->rc", r, r) / p
        lv = self._project(r)
        r = r - self._combine(self.basis, lv, r.shape)
        again = self._project(r)  # the second pass of CGS2: round-off of the first
        r -= self._combine(self.basis, again, r.shape)
        lv = lv + again
        s2 = np.einsum("rcp,rcp->rc", r, r) / p
        s = np.sqrt(np.where(s2 > RANK_FLOOR * np.maximum(d, 1e-300), s2, 0.0))
        q = np.divide(r, s[..., None], out=np.zeros_like(r), where=s[..., None] > 0)
        zeta = zeta_of((p, *shape))  # type: ignore[operator]
        zt = np.moveaxis(zeta, 0, -1)
        hat = s[..., None] * zt + self._combine(self.zetas, lv, r.shape)
        self._append(q, zt)
        return np.moveaxis(hat, -1, 0)

    def _project(self, x: np.ndarray) -> np.ndarray:
        """(R, C, K): the particle means ⟨q_j|x⟩ per replica and column."""
        if not self.basis:
            return np.zeros((*x.shape[:-1], 0))
        col = x[..., None] / x.shape[-1]
        parts = [np.matmul(b, col)[..., 0] for b in self.basis]
        return np.concatenate(parts, axis=-1)[..., : self.count]

    def _combine(self, blocks: list[np.ndarray], coef: np.ndarray,
                 shape: tuple[int, ...]) -> np.ndarray:
        """Σ_j coef_j · blocks_j over the stored vectors, (R, C, P)."""
        out = np.zeros(shape)
        for i, b in enumerate(blocks):
            c = coef[..., None, i * BLOCK: (i + 1) * BLOCK]
            out += np.matmul(c, b[..., : c.shape[-1], :])[..., 0, :]
        return out

    def _append(self, q: np.ndarray, zeta: np.ndarray) -> None:
        j = self.count % BLOCK
        if j == 0:
            blank = (*q.shape[:-1], BLOCK, q.shape[-1])
            self.basis.append(np.zeros(blank))
            self.zetas.append(np.zeros(blank))
        self.basis[-1][..., j, :] = q
        self.zetas[-1][..., j, :] = zeta
        self.count += 1

    def _widen(self, shape: tuple[int, ...]) -> None:
        """A later argument with more columns: the stored vectors broadcast to them (a
        column-independent q or ζ is the same for every column)."""
        self.shape = shape

        def wide(b: np.ndarray) -> np.ndarray:
            return np.broadcast_to(b, (*shape, *b.shape[-2:])).copy()

        self.basis = [wide(b) for b in self.basis]
        self.zetas = [wide(b) for b in self.zetas]
