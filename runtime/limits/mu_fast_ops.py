"""Matrix operators of the μ-limit on M particles: W̊_t = σ·W̊_0 + ΔW_t (05 §5.3–5.4, 01 §1.4).

**The initial operator W̊_0** (01 §1.4). Every ket W̊_0 or W̊_0ᵀ meets is kept as an orthonormal
basis (in the particle inner product ⟨a|b⟩ = mean_α a_α b_α) of the span it has met: Q for the
forward side, P for the transposed side, each column paired with an independent N(0, 1) particle
vector (Γ, Δ). Then

    hat:  |Ŵx⟩ = Σ_j ⟨q_j|x⟩ |γ_j⟩      (Gaussian, Cov(Ŵx, Ŵx′) = ⟨x|x′⟩, linear in x)
    dot:  |Ẇx⟩ = Σ_j |p_j⟩ E[∂x/∂δ_j] = Σ_j |p_j⟩ ⟨δ_j|x⟩     (Stein's lemma, δ_j iid N(0, 1))

The dot form follows from 01 §1.4 (Ẇx = Σ_l |z_l⟩ E[∂x/∂Ŵᵀz_l]) by the chain rule through
Ŵᵀz_l = Σ_j ⟨p_j|z_l⟩ δ_j, since every z_l lies in span(P). So W̊_0 acts as the rank-(r+s)
matrix (Γ Qᵀ + P Δᵀ)/M and W̊_0ᵀ as its transpose, extended lazily: a ket outside the span met
so far adds its residual direction (Gram–Schmidt) and a fresh Gaussian. Only kets met *before*
x enter its dot term, as 01 §1.4 requires, because the basis is extended in program order. Cost
O(M·(r+s)·B) per application, never O(M²).

**Conditioned Gaussians** (derived here, measured). Read as a matrix on M particles, (Γ Qᵀ + P Δᵀ)/M
counts the block PᵀW̊_0Q twice: a new column γ of the forward side is a fresh Gaussian, yet
⟨p_j|γ⟩ = ⟨p_j|W̊_0 q⟩ is already fixed by the transposed side (= ⟨W̊_0ᵀ p_j|q⟩, whose part along
q the dot term of the other side supplies). So each new Gaussian is projected off the other
side's current basis (γ ← (I − PPᵀ/M)γ, δ ← (I − QQᵀ/M)δ); then the operator is exactly a
Gaussian matrix of N(0, 1/M) entries sampled lazily, conditioned on what it has shown (the
Gaussian conditioning of AMP analyses), a width-M network's W_0 restricted to the kets met. The
projection removes a √(rank/M) part, so the M → ∞ limit is unchanged. Measured on mlp2 (μP,
B = 16, T = 10, without the bias check): SGD noise 0.0045 → 0.0024 at 16×512 particles, 0.0037
→ 0.0019 at 8×2048, 0.0019 → 0.00085 at 4×16384 (both versions agree at 4×16384: mean z² 0.53),
and the pool-size bias at 512 per replica 0.0058 → 0.0027 RMS (against 4×16384); with the bias
check, Adam 8×512 error 0.021 → 0.0024 (bias bound 0.020 → 0).

**The update ΔW_t** = −η Σ_{s<t} Q̄_s(G_0..G_s), G_s = Σ_i χ_{s,i} Σ_u |a_u(ξ^i)⟩⟨b_u(ξ^i)|
(04 §4.3):
:class:`LowRankDelta` for linear Q (Σ_s w_s A_s B_sᵀ/M, applied by inner products, O(M·B·T));
:class:`PairDelta` for any other Q: ΔW and the optimizer state as M×M pair arrays (α, β particle
pairs standing for Z and the independent copy Z′ of 05 §5.3), updated once per step, applied
forward and transposed by matrix products (O(M²·B)).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from compiler.train.optimizers import Optimizer
from runtime.training.stepper import GroupStepper

RANK_TOL = 1e-9
"""A residual direction is new when its singular value exceeds this fraction of the largest."""


class Columns:
    """A growing (M, k) array of particle columns. Stored as rows of a (capacity, M) buffer
    with spare capacity, so appending writes contiguous memory and is amortised O(M·new) (an
    np.hstack per step, a full copy, was most of the time); ``a`` is a transposed view, which
    BLAS takes without a copy."""

    def __init__(self, m: int) -> None:
        self.buf = np.empty((8, m))
        self.k = 0

    @property
    def a(self) -> np.ndarray:
        return self.buf[:self.k].T

    def append(self, cols: np.ndarray) -> None:
        need = self.k + cols.shape[1]
        if need > self.buf.shape[0]:
            grown = np.empty((max(need, 2 * self.buf.shape[0]), self.buf.shape[1]))
            grown[:self.k] = self.buf[:self.k]
            self.buf = grown
        self.buf[self.k:need] = cols.T
        self.k = need


CONDITIONED = True
"""Project each new Gaussian of one side off the other side's basis (InitialOperator)."""

POOL_MAX = 128
"""Most orthogonalised Gaussians one replica keeps beyond its randomised QMC draws (M × that
many floats). Measured on mlp2 (μP, B = 16, T = 10, 32 replicas, QMC over the step-0 draws):
512 → 128 gave the same s.e. (SGD 0.00100 at 1024 per replica, 0.00047 at 4096; Adam 0.00106 →
0.00107 at 512) in 0.79, 0.83 and 0.91 of the time; 32 gave 0.00102."""


QMC_MAX_DIMS = 256
"""Most Sobol' dimensions a replica draws (m × dims floats up front)."""


class GaussianPool:
    """Every independent N(0, 1) particle vector of one replica (initial kets, the Gaussians
    of every W̊_0 side). With ``orthogonal`` each new draw is made exactly orthogonal (particle
    inner product) to the constant and to all earlier draws, and of norm √M: the empirical
    covariance of the independent Gaussians is then exactly the identity (orthogonal random
    features), which removes the leading O(M^{-½}) error of their sample moments; each vector is
    still asymptotically N(0, 1) coordinatewise, so the limit is unchanged. Once the pool would
    use more than half of the M dimensions (or ``qmc_dims`` + POOL_MAX vectors), draws are plain
    iid Gaussians. Where every ket is a linear function of the Gaussians and scalars are
    averages of products (a linear network, attention without a nonlinearity), the replicas
    then agree to round-off: the particle computation is exact. With ``qmc_dims`` the first
    that many single-column draws come from a scrambled Sobol' set (:func:`_sobol_normals`)
    before they are orthogonalised: jointly stratified rather than iid."""

    def __init__(self, m: int, rng: np.random.Generator, orthogonal: bool = True,
                 qmc_dims: int = 0) -> None:
        self.m, self.rng, self.orthogonal = m, rng, orthogonal
        self.used = Columns(m)
        self.used.append(np.ones((m, 1)))  # the constant: draws have particle mean exactly 0
        dims = min(qmc_dims, QMC_MAX_DIMS)
        self.qmc = _sobol_normals(m, dims, rng) if dims else np.zeros((m, 0))
        self.cap = pool_size(m, qmc_dims)

    def draw(self, k: int) -> np.ndarray:
        if self.qmc.shape[1] >= k:  # the first draws: one randomised QMC point per particle
            z, self.qmc = self.qmc[:, :k], self.qmc[:, k:]
        else:
            z = self.rng.standard_normal((self.m, k))
        if not self.orthogonal or self.used.k + k > self.cap:
            return z
        used = self.used.a
        # one Gram–Schmidt pass is enough: a random z keeps ≥ ½ of its norm off the pool's ≤ M/2
        # directions, so the pass loses no digits (a second pass, "twice is enough", only pays
        # when the residual falls below 1/√2 of the vector); it was a sixth of mlp2's run time
        z = z - used @ (used.T @ z) / self.m
        if k == 1:  # the initial vectors come one at a time: a QR of one column is its norm
            z = z * (np.sqrt(self.m) / np.linalg.norm(z))
        else:
            z = np.sqrt(self.m) * np.linalg.qr(z)[0]
        self.used.append(z)
        return z


def pool_size(m: int, qmc_dims: int) -> int:
    """How many draws a replica of m particles orthogonalises (GaussianPool)."""
    return min(m // 2, qmc_dims + POOL_MAX)


def _sobol_normals(m: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """(m, d) N(0, 1) particles from a scrambled Sobol' sequence (randomised QMC): each row is
    marginally N(0, I_d) exactly, and a scramble seeded from ``rng`` is independent per replica,
    so replica means stay iid and unbiased; the rows are stratified jointly, so an average of a
    smooth function of them converges faster than m^{-½}."""
    from scipy.special import ndtri  # the normal quantile without norm.ppf's checks
    from scipy.stats import qmc  # scipy loads slowly; only runs that use it pay

    sobol = qmc.Sobol(d, scramble=True, seed=rng)
    if m & (m - 1) == 0:
        u = sobol.random_base2(m.bit_length() - 1)
    else:  # still unbiased, only less balanced (scipy warns about that; the user can't act)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            u = sobol.random(m)
    return np.asarray(ndtri(u), dtype=np.float64)


class _Side:
    """One side of W̊_0: orthonormal basis (M, r) of the kets met and their Gaussians (M, r)."""

    def __init__(self, m: int) -> None:
        self.cols, self.gcols = Columns(m), Columns(m)

    @property
    def basis(self) -> np.ndarray:
        return self.cols.a

    @property
    def gauss(self) -> np.ndarray:
        return self.gcols.a

    def extend(self, x: np.ndarray, pool: GaussianPool, other: _Side | None = None
               ) -> np.ndarray:
        """Add the directions of x (M, c) outside the span (Gram–Schmidt); their
        Gaussians are projected off ``other``'s basis (see InitialOperator). Returns x's
        coordinates in the extended basis, (rank, c): basisᵀx/M, which the hat term needs."""
        m = x.shape[0]
        coef = self.basis.T @ x / m
        res = x - self.basis @ coef
        # a second pass removes the round-off of the first where it cancelled digits: needed
        # when some column lost more than 1/√2 of its norm (Kahan–Parlett "twice is enough")
        norms2 = np.einsum("ij,ij->j", x, x)  # column norms² without an (M, c) temporary
        if np.any(np.einsum("ij,ij->j", res, res) < 0.5 * norms2):
            again = self.basis.T @ res / m
            res -= self.basis @ again
            coef = coef + again
        scale = float(np.sqrt(norms2.sum() / x.size)) if x.size else 0.0
        if scale == 0.0:
            return coef
        u, s, vt = np.linalg.svd(res, full_matrices=False)
        keep = s > RANK_TOL * scale * np.sqrt(m)
        if not keep.any():
            return coef
        new = np.sqrt(m) * u[:, keep]  # orthonormal in the 1/M inner product
        self.cols.append(new)
        g = pool.draw(new.shape[1])
        if other is not None and other.rank:
            g = g - other.basis @ (other.basis.T @ g / m)
        self.gcols.append(g)
        # newᵀx/M = newᵀres/M = (S Vᵀ)[keep]/√M, as res = U S Vᵀ is orthogonal to the old basis
        return np.vstack([coef, s[keep, None] * vt[keep] / np.sqrt(m)])

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])


class InitialOperator:
    """W̊_0 of one matrix on M particles (see the module docstring), times ``scale`` (σ)."""

    def __init__(self, m: int, scale: float, pool: GaussianPool) -> None:
        self.m, self.scale, self.pool = m, scale, pool
        self.fwd, self.bwd = _Side(m), _Side(m)

    def apply(self, x: np.ndarray, transpose: bool) -> np.ndarray:
        """σ·W̊_0 x (or σ·W̊_0ᵀ x) for x of shape (M, c): hat + dot."""
        met, other = (self.bwd, self.fwd) if transpose else (self.fwd, self.bwd)
        dot = other.basis @ (other.gauss.T @ x) / self.m  # before x joins: earlier kets only
        coef = met.extend(x, self.pool, other if CONDITIONED else None)
        hat = met.gauss @ coef
        return self.scale * (hat + dot)

    def nbytes(self) -> int:
        return 8 * self.m * 2 * (self.fwd.rank + self.bwd.rank)


class LowRankDelta:
    """ΔW = Σ_k w_k |a_k⟩⟨b_k| for a linear Q (sgd, momentum): the columns of every step's G_s
    with one weight per step, re-weighted as Q_t(G_0..G_t) = Σ_s c_{t,s} G_s (c read off Q's
    own formulas by a unit-impulse probe of the optimizer)."""

    def __init__(self, m: int, steps: int, opt: Optimizer) -> None:
        self.m = m
        self.ca, self.cb = Columns(m), Columns(m)
        self.col_step = np.zeros(0, dtype=int)  # the step s each column came from
        self.w = np.zeros(steps)  # weight of G_s in ΔW
        self.probe = GroupStepper(opt, [(steps,)])

    def apply(self, x: np.ndarray, transpose: bool) -> np.ndarray:
        wc = self.w[self.col_step][:, None]
        a, b = self.ca.a, self.cb.a
        left, right = (b, a) if transpose else (a, b)
        return left @ (wc * (right.T @ x)) / self.m

    def step(self, t: int, a: np.ndarray, b: np.ndarray, rate: float, decay: float) -> None:
        """ΔW ← (1 − decay)ΔW − rate·Q_t(G_0..G_t) with G_t = a bᵀ (columns (M, k))."""
        self.ca.append(a)
        self.cb.append(b)
        self.col_step = np.concatenate([self.col_step, np.full(a.shape[1], t)])
        impulse = np.zeros(self.w.shape[0])
        impulse[t] = 1.0
        coeffs = self.probe.step(t, [impulse])[0]  # c_{t,s}: Q_t is linear in (g_0..g_t)
        self.w = (1.0 - decay) * self.w - rate * coeffs

    def nbytes(self) -> int:
        return 8 * self.m * 2 * self.ca.k


class PairDelta:
    """ΔW and the optimizer state as M×M particle-pair arrays (nonlinear Q)."""

    def __init__(self, m: int, opts: Optimizer, entries: int) -> None:
        self.m = m
        self.d = [np.zeros((m, m)) for _ in range(entries)]
        self.stepper = GroupStepper(opts, [(m, m)] * entries)

    def apply(self, k: int, x: np.ndarray, transpose: bool) -> np.ndarray:
        d = self.d[k]
        return (d.T if transpose else d) @ x / self.m

    def step(self, t: int, cols: Sequence[tuple[np.ndarray, np.ndarray]], rate: float,
             decay: float) -> None:
        """One step of every entry of the group: G = a bᵀ per entry, then Q̃_t of the group."""
        grads = [a @ b.T for a, b in cols]
        qs = self.stepper.step(t, grads)
        del grads
        for d, q in zip(self.d, qs, strict=True):
            if decay:
                d *= 1.0 - decay
            d -= rate * q

    @staticmethod
    def bytes_per_entry(m: int, opt: Optimizer) -> int:
        """ΔW, the state, and the transient G, new state and Q of one step."""
        return 8 * m * m * (3 + 2 * len(opt.state))
