"""Monte Carlo limit evaluator: an interpreter over the ket program (spec 01 §1.4–1.6).

The joint law of all kets is represented by M particles (iid samples of every initial ket and hat,
pushed through the recursion), split into R independent replicas of P = M/R particles.  Each
replica estimates everything on its own (Gram matrices, dot coefficients, copy averages, Avg
limits), so the spread of the replicas is an honest standard error of the whole pipeline, not
just of the last particle mean.  Arrays are (P, R, C): particles, replicas, input columns
(C = 1 for objects that do not depend on the inputs).  Rules (01 §1.4):

* Init: fresh N(0,1) per particle.  Avg: particle mean (exactly 0 when a sign-flip symmetry
  makes the ket odd, :mod:`compiler.kets.parity`).  Nonlin: the lowered formula.  OuterNonlin: E′ as
  blocked averages over other particles (:mod:`runtime.limits.outer`).
* Hat: sampled jointly with the earlier hats of its orientation from the particle Gram
  (:mod:`runtime.limits.hats`).
* Dot: E[∂|x⟩/∂|Ŵᵀz⟩] as the particle mean of forward-mode tangents (chain rule through the
  formulas, sympy derivatives lowered with ``lower_formula``, copies and Avg limits held fixed),
  or by Stein's lemma C⁺·E[(x − Ex) gmat] with C the empirical covariance of the hats — always for
  coefficients whose derivative crosses step/sign (Dirac delta), and for all with ``stein=True``.

Shares nothing with the finite-width executor but the IR, ``runtime/lowering.py`` and the input
binding of ``runtime/data.py``.  Deterministic for a seed: every ket and hat draws from its own
stream seeded by (seed, name).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from compiler.errors import UsageError
from compiler.kets.lowering import AvgLimit, FormulaKet, InitKet, KetProgram, MatMulKet, ScalarLimit
from runtime.data import input_batch
from runtime.limits.hats import ParticleHats
from runtime.limits.ketfuncs import KetFunctions, check_finite, tangent_plan
from runtime.limits.outer import Arg, copy_average, min_block_bytes

Progress = Callable[[float, float, str], None]
"""progress(done, total, label): work done so far of the total, in particle evaluations."""


@dataclass(frozen=True)
class LimitOptions:
    """``particles`` M in total; ``replicas`` R (None: 16 when M ≥ 2048, else M // 128, at least
    1); ``stein``: every dot coefficient by Stein's lemma; ``outer2_pool``: copy pool K of order-2
    OuterNonlins; ``memory_budget`` in bytes (None: half of physical memory);
    ``gradient_independence``: set every dot coefficient to 0 (the classical approximation, for
    comparison only — wrong when W and Wᵀ interact, 05 §5.2)."""

    particles: int = 16384
    replicas: int | None = None
    seed: int = 0
    stein: bool = False
    outer2_pool: int = 96
    memory_budget: int | None = None
    keep_values: bool = False
    gradient_independence: bool = False


@dataclass
class LimitResult:
    """Every scalar's limit and standard error ((B,) arrays), every live dot coefficient
    (keyed by (MatMul out, hat out)), and optionally the particle values of every ket."""

    kets: KetProgram
    batch: int
    particles: int
    replicas: int
    scalars: dict[str, np.ndarray] = field(default_factory=dict)
    stderr: dict[str, np.ndarray] = field(default_factory=dict)
    dots: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    exact_zero: set[str] = field(default_factory=set)


def _replicas(opts: LimitOptions) -> int:
    if opts.replicas is not None:
        return max(1, min(opts.replicas, opts.particles // 2))
    return 16 if opts.particles >= 2048 else max(1, opts.particles // 128)


def _summary(
    per_rep: np.ndarray, batch: int, iid_se: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, s.e.) over replicas of an (R, C) array, broadcast to (B,)."""
    mean = np.broadcast_to(per_rep.mean(axis=0), (batch,)).copy()
    if per_rep.shape[0] > 1:
        se = per_rep.std(axis=0, ddof=1) / np.sqrt(per_rep.shape[0])
    else:
        se = iid_se if iid_se is not None else np.full(per_rep.shape[1:], np.nan)
    return mean, np.broadcast_to(se, (batch,)).copy()


def estimate_memory(kets: KetProgram, particles: int, batch: int, opts: LimitOptions) -> int:
    """Bytes the evaluation will hold: every vector ket and hat, the tangents it tracks, and one
    block of copy averages (upper bound: every ket taken input-dependent)."""
    plan = tangent_plan(kets, opts.stein)
    vectors = sum(1 for s in kets.stmts if isinstance(s, InitKet | FormulaKet | MatMulKet))
    hats = len(kets.hats)
    tangents = sum(len(v) for v in plan.need.values())
    per = particles * batch * 8
    block = 0
    for s in kets.stmts:
        if isinstance(s, FormulaKet) and s.order:
            own = max(1, particles // _replicas(opts))
            block = max(
                block,
                12
                * max(
                    min_block_bytes(own, s.order, opts.outer2_pool, _replicas(opts) * batch),
                    1 << 24,
                ),
            )
    return (vectors + 2 * hats + tangents) * per + block


def _budget(opts: LimitOptions) -> int:
    if opts.memory_budget is not None:
        return opts.memory_budget
    try:
        return int(0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def evaluate(
    kets: KetProgram,
    inputs: object = None,
    scalars: Mapping[str, float] | None = None,
    opts: LimitOptions | None = None,
    progress: Progress | None = None,
) -> LimitResult:
    """Evaluate every limit of ``kets`` by Monte Carlo.  ``inputs`` as for the executor
    (runtime.data.input_batch); ``scalars`` gives the value of every scalar parameter without an
    init (the limit conditions on it; default: the executor's draw for seed 0)."""
    opts = opts or LimitOptions()
    batch, cols = input_batch(kets.source, inputs)
    need = estimate_memory(kets, opts.particles, batch, opts)
    if need > _budget(opts):
        raise UsageError(
            f"the limit of {kets.source.name} with {opts.particles} particles and {batch} inputs "
            f"needs about {need / 2**30:.2f} GiB, more than the budget of "
            f"{_budget(opts) / 2**30:.2f} GiB; use fewer particles or inputs"
        )
    run = _Run(kets, opts, batch, cols, dict(scalars or {}))
    work = work_units(kets, opts)
    total, done = sum(work), 0.0
    with np.errstate(all="ignore"):  # NaN/Inf are reported per ket by _check, not as warnings
        for i, stmt in enumerate(kets.stmts):
            if progress is not None:
                run.tick = _ticker(progress, done, work[i], total, stmt.out)
                run.tick(0.0)
            run.step(i, stmt)
            done += work[i]
    if progress is not None:
        progress(total, total, "")
    return run.result()


def work_units(kets: KetProgram, opts: LimitOptions) -> list[float]:
    """Cost of each statement in ψ evaluations: M for a pointwise ket, M·P for an order-1
    OuterNonlin (every pair of a replica), M·K² for order 2 (K the copy pool)."""
    r = _replicas(opts)
    p = max(2, opts.particles // r)
    m = float(p * r)
    pair = {0: 1.0, 1: float(p), 2: float(min(opts.outer2_pool, p)) ** 2}
    return [m * pair[getattr(s, "order", 0)] if isinstance(s, FormulaKet) else m
            for s in kets.stmts]


def _ticker(
    progress: Progress, done: float, weight: float, total: float, label: str
) -> Callable[[float], None]:
    return lambda frac: progress(done + frac * weight, total, label)


class _Run:
    """The state of one evaluation."""

    def __init__(
        self,
        kets: KetProgram,
        opts: LimitOptions,
        batch: int,
        cols: dict[str, np.ndarray],
        scalars: dict[str, float],
    ) -> None:
        self.kets, self.opts, self.batch, self.cols = kets, opts, batch, cols
        self.given = scalars
        self.R = _replicas(opts)
        self.P = max(2, opts.particles // self.R)
        self.plan = tangent_plan(kets, opts.stein)
        self.funcs = KetFunctions(kets)
        self.values: dict[str, np.ndarray] = {}
        self.hatvals: dict[str, np.ndarray] = {}
        self.scal: dict[str, np.ndarray] = {}
        self.tan: dict[str, dict[str, np.ndarray]] = {}
        self.orient: dict[tuple[str, bool], ParticleHats] = {}
        self.res = LimitResult(kets, batch, self.P * self.R, self.R)
        self.tick: Callable[[float], None] | None = None

    def normals(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        rng = np.random.default_rng([self.opts.seed, zlib.crc32(name.encode())])
        return rng.standard_normal(shape)

    def step(self, i: int, stmt: object) -> None:
        match stmt:
            case ScalarLimit():
                self.scal[stmt.out] = self._initial_scalar(stmt)
            case InitKet(out=name):
                self.values[name] = self.normals(name, (self.P, self.R, 1))
            case AvgLimit():
                self._avg(stmt)
            case FormulaKet():
                self._formula(stmt)
            case MatMulKet():
                self._matmul(stmt)
        self._free(i)

    def _initial_scalar(self, s: ScalarLimit) -> np.ndarray:
        if s.source == "input":
            return self.cols[s.out].reshape(1, -1)
        if s.source == "fixed":
            return np.full((1, 1), float(s.value))  # type: ignore[arg-type]
        if s.out not in self.given:
            from runtime.params import stream  # the executor's draw, so seed-0 runs condition alike

            self.given[s.out] = float(stream(0, s.out).standard_normal())
        return np.full((1, 1), float(self.given[s.out]))

    def _avg(self, s: AvgLimit) -> None:
        x = self.values[s.arg]
        odd = any(v == -1 for v in self.kets.parity[s.arg].values())
        if odd:  # E of an odd ket is exactly 0 (sign-flip symmetry)
            self.res.exact_zero.add(s.out)
            self.scal[s.out] = np.zeros(x.shape[1:])
        else:
            self.scal[s.out] = x.mean(axis=0)
        self._check(s.out, self.scal[s.out], s)

    def _formula(self, s: FormulaKet) -> None:
        args = self.funcs.args(s)
        arrays = [self.values[v] if kind == "vector" else self.scal[v] for v, _, kind in args]
        need = self.plan.need.get(s.out, frozenset())
        # E′ of a formula that reads no copy is the formula itself (mean[b](θ) = θ)
        reads_copy = any(c is not None and kind == "vector" for _, c, kind in args)
        if s.order == 0 or not reads_copy:
            y = self.funcs.kernel(s)(*arrays)
            shape = np.broadcast_shapes(np.shape(y), *(a.shape for a in arrays), (self.P, 1, 1))
            y = np.array(np.broadcast_to(y, shape), dtype=np.float64)
            derivs = {a: self.funcs.derivative(s, a)(*arrays) for a in self._tangent_args(s, need)}
        else:
            placed = [
                Arg(arr, c, kind == "vector")
                for arr, (_, c, kind) in zip(arrays, args, strict=True)
            ]
            wanted = self._tangent_args(s, need)
            kerns = [self.funcs.kernel(s), *(self.funcs.derivative(s, a) for a in wanted)]
            outs = copy_average(kerns, placed, s.order, self.opts.outer2_pool, tick=self.tick)
            y, derivs = outs[0], dict(zip(wanted, outs[1:], strict=True))
        self._check(s.out, y, s)
        self.values[s.out] = y
        self.tan[s.out] = {
            h: sum(derivs[a] * self.tan[a][h] for a in derivs if h in self.tan[a]) for h in need
        }

    def _tangent_args(self, s: FormulaKet, need: frozenset[str]) -> list[str]:
        return [a for a in self.funcs.slot0(s) if any(h in self.tan.get(a, {}) for h in need)]

    def _matmul(self, s: MatMulKet) -> None:
        x = self.values[s.hat.arg]
        orient = self.orient.setdefault(s.hat.orientation, ParticleHats(self.R))
        hat = orient.add(x, lambda shape: self.normals(s.out, shape))
        self.hatvals[s.out] = hat
        coeffs = self._coefficients(s)
        y = hat
        for c, val in coeffs.items():
            y = y + val * self.values[c.hat.arg]
        self._check(s.out, y, s)
        self.values[s.out] = y
        need = self.plan.need.get(s.out, frozenset())
        self.tan[s.out] = {
            h: (np.ones((1, 1, 1)) if h == s.out else 0.0)
            + sum(
                val * self.tan[c.hat.arg][h]
                for c, val in coeffs.items()
                if h in self.tan.get(c.hat.arg, {})
            )
            for h in need
        }

    def _coefficients(self, s: MatMulKet) -> dict:
        x = s.hat.arg
        live = () if self.opts.gradient_independence else s.live_dots
        by_deriv = [c for c in live if c.rule == "derivative" and not self.opts.stein]
        out = {c: self.tan[x][c.hat.out].mean(axis=0) * np.ones((1, 1)) for c in by_deriv}
        rest = [c for c in live if c not in by_deriv]
        if rest:
            out.update(self._stein(s, rest))
        for c, val in out.items():
            self._check(f"E[∂{x}/∂{c.hat.out}]", val, s)
            # one value for every replica (e.g. ∂y/∂ŷ = 1): deterministic, standard error 0
            fixed = np.zeros(val.shape[1:]) if val.shape[0] == 1 and self.R > 1 else None
            self.res.dots[(s.out, c.hat.out)] = _summary(val, self.batch, fixed)
        return out

    def _stein(self, s: MatMulKet, wanted: list) -> dict:
        """(E[∂x/∂G_j])_j = C⁺ E[(x − E x) G_j] over every hat of the orientation that x depends
        on (C the empirical covariance of the sampled hats: the regression form of Stein)."""
        x = self.values[s.hat.arg]
        other = (s.hat.matrix, not s.hat.transpose)
        group = [
            h
            for h, hk in self.kets.hats.items()
            if hk.orientation == other and h in self.kets.dep[s.hat.arg] and h in self.hatvals
        ]
        gmat = np.stack(np.broadcast_arrays(*(self.hatvals[h] for h in group)), axis=-1)
        xc = x - x.mean(axis=0)
        b = np.mean(xc[..., None] * gmat, axis=0)
        cov = np.einsum("prci,prcj->rcij", gmat, gmat) / gmat.shape[0]
        sol = np.einsum("rcij,rcj->rci", np.linalg.pinv(cov, rcond=1e-10, hermitian=True), b)
        return {c: sol[..., group.index(c.hat.out)] for c in wanted}

    def _check(self, name: str, arr: np.ndarray, s: object) -> None:
        check_finite(self.kets, name, arr, s)

    def _free(self, i: int) -> None:
        for name in self.plan.free_after.get(i, ()):
            self.tan.pop(name, None)

    def result(self) -> LimitResult:
        res = self.res
        for name in self.kets.scalar_names:
            per = np.broadcast_to(self.scal[name], (self.R, self.scal[name].shape[-1]))
            iid = None
            if self.R == 1 and name in self.kets.avg_names:
                arg = self.values[self.kets.by_name[name].arg]  # type: ignore[union-attr]
                iid = arg.std(axis=0, ddof=1)[0] / np.sqrt(self.P)
            if name not in self.kets.avg_names:
                iid = np.zeros(per.shape[1:])
            res.scalars[name], res.stderr[name] = _summary(per, self.batch, iid)
        if self.opts.keep_values:
            res.values = {**self.values, **{f"^{k}": v for k, v in self.hatvals.items()}}
        return res
