"""Monte Carlo limit evaluator: an interpreter over the ket program (spec 01 §1.4–1.6).

The joint law of all kets is represented by M particles (iid samples of every initial ket and hat,
pushed through the recursion), split into R independent replicas of P = M/R particles.  Each
replica estimates everything on its own (Gram matrices, dot coefficients, copy averages, Avg
limits), so the spread of the replicas is an honest standard error of the whole pipeline, not
just of the last particle mean.  Arrays are (P, R, C): particles, replicas, input columns
(C = 1 for objects that do not depend on the inputs).  Rules (01 §1.4):

* Init: fresh N(0,1) per particle; initial scalars and the exact zero of an odd Avg by the
  shared rules of :mod:`runtime.limits.ketrules`.  Avg: particle mean.  Nonlin: the lowered
  formula.  OuterNonlin: E′ as blocked averages over other particles
  (:mod:`runtime.limits.outer`).
* Hat: sampled jointly with the earlier hats of its orientation from the particle Gram
  (:mod:`runtime.limits.hats`).
* Dot: E[∂|x⟩/∂|Ŵᵀz⟩] as the particle mean of forward-mode tangents (chain rule through the
  formulas, sympy derivatives compiled with ``compile_formula``, copies and Avg limits held fixed),
  or by Stein's lemma C⁺·E[(x − Ex) gmat] with C the empirical covariance of the hats — always for
  coefficients whose derivative crosses step/sign (Dirac delta), and for all with ``stein=True``.

Standard errors are the spread of the R replicas; with R = 1 a Monte Carlo value's error is
unknown (NaN).  The bias of finite copy averages is the same in every replica, so a program with
OuterNonlins is run again with half the copies and the difference bounds it
(:mod:`runtime.limits.mcbias`); too few particles per replica are refused or flagged.  Shares
nothing with the finite-width executor but the IR, ``runtime/codegen.py`` and the input binding
of ``runtime/data.py``.  Deterministic for a seed: every ket and hat draws from its own stream
seeded by (seed, name).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Collection, Mapping
from typing import Any, assert_never

import numpy as np

from compiler.errors import UsageError
from compiler.kets.lowering import (
    AvgLimit,
    DotCoeff,
    FormulaKet,
    InitKet,
    Ket,
    KetProgram,
    MatMulKet,
    ScalarLimit,
)
from runtime.data import input_batch
from runtime.limits.fusion import Group, ket_formulas, pair_groups
from runtime.limits.hats import ParticleHats
from runtime.limits.ketfuncs import Demand, KetFunctions, check_finite, demand, tangent_plan
from runtime.limits.ketrules import (
    condition_scalars,
    initial_scalar,
    odd_avg,
    split_dots,
    stein_hats,
    stein_pinv,
)
from runtime.limits.mcbias import bias_bounded, few_particles, reads_copy
from runtime.limits.mccost import (
    budget,
    estimate_memory,
    estimate_seconds,
    replicas,
    work_units,
)
from runtime.limits.outer import Arg
from runtime.limits.pairkernel import pair_average
from runtime.limits.result import LimitOptions, LimitResult, Progress, ScalarMethod

__all__ = ["LimitOptions", "LimitResult", "MonteCarloEngine", "estimate_memory", "evaluate"]


class MonteCarloEngine:
    """The Monte Carlo engine behind :func:`runtime.limits.evaluate` (``method="mc"``): any
    ket program, every value with a replica standard error."""

    name = "mc"
    label = "Monte Carlo"
    takes = KetProgram

    def evaluate(
        self,
        program: KetProgram,
        inputs: object,
        scalars: Mapping[str, float],
        options: LimitOptions,
        progress: Progress | None,
    ) -> LimitResult:
        return evaluate(program, inputs, scalars, options, progress)

    def evaluate_demand(
        self,
        program: KetProgram,
        inputs: object,
        scalars: Mapping[str, float],
        options: LimitOptions,
        progress: Progress | None,
        wanted: Collection[str],
    ) -> LimitResult:
        """Only the limits ``wanted`` (scalars or kets) and what they depend on."""
        return evaluate(program, inputs, scalars, options, progress, wanted)

    def estimate_seconds(
        self,
        program: KetProgram,
        inputs: object,
        options: LimitOptions,
        wanted: Collection[str] | None,
    ) -> float:
        """The seconds a run would take (:func:`runtime.limits.mccost.estimate_seconds`)."""
        batch, _ = input_batch(program.source, inputs)
        return estimate_seconds(program, options, batch, demand(program, wanted).keep)


def _summary(per_rep: np.ndarray, batch: int, exact: bool) -> tuple[np.ndarray, np.ndarray]:
    """(mean, s.e.) over replicas of an (R, C) array, broadcast to (B,).  The s.e. is the
    replicas' spread; with one replica it is unknown (NaN) unless the value is ``exact``."""
    mean = np.broadcast_to(per_rep.mean(axis=0), (batch,)).copy()
    if exact:
        se = np.zeros(per_rep.shape[1:])
    elif per_rep.shape[0] > 1:
        se = per_rep.std(axis=0, ddof=1) / np.sqrt(per_rep.shape[0])
    else:
        se = np.full(per_rep.shape[1:], np.nan)
    return mean, np.broadcast_to(se, (batch,)).copy()


def evaluate(
    kets: KetProgram,
    inputs: object = None,
    scalars: Mapping[str, float] | None = None,
    opts: LimitOptions | None = None,
    progress: Progress | None = None,
    wanted: Collection[str] | None = None,
) -> LimitResult:
    """Evaluate the limits ``wanted`` (scalar or ket names; None: every scalar) of ``kets`` by
    Monte Carlo, running only the statements they depend on (:func:`~runtime.limits.ketfuncs.
    demand`); every ket and hat draws from its own stream, so each kept value is the same
    whatever else is requested.  ``inputs`` as for the executor
    (runtime.data.input_batch); ``scalars`` gives the value of every scalar parameter without an
    init (the limit conditions on it: :func:`runtime.limits.ketrules.condition_scalars`).  A
    program with copy averages is run a second time at half their span, and the bias that
    reveals is added to the standard errors (:mod:`runtime.limits.mcbias`)."""
    opts = opts or LimitOptions()
    batch, cols = input_batch(kets.source, inputs)
    given = condition_scalars(kets, scalars)
    m = opts.particle_count
    dem = demand(kets, wanted)
    need = estimate_memory(kets, m, batch, opts, dem.keep)
    if need > budget(opts):
        raise UsageError(
            f"the limit of {kets.source.name} with {m} particles and {batch} inputs "
            f"needs about {need / 2**30:.2f} GiB, more than the budget of "
            f"{budget(opts) / 2**30:.2f} GiB; use fewer particles or inputs"
        )
    full = _Run(kets, opts, batch, cols, given, dem, wanted)
    copies = any(_reads_copy(full, i) for i in dem.keep)
    flags = few_particles(full.P, full.R, copies, opts.replicas is not None)
    work = work_units(kets, opts)
    total = sum(work[i] for i in dem.keep) * (2 if copies else 1)
    _execute(full, work, progress, 0.0, total)
    if not copies:
        if progress is not None:
            progress(total, total, "")
        return full.result().noted(*flags)
    if not opts.keep_values:
        full.values.clear()  # the half run needs only the full run's per-replica estimates
        full.hatvals.clear()
    half = _Run(kets, opts, batch, cols, given, dem, wanted, span=(full.P - 1) // 2,
                groups=full.groups)  # the fused groups depend on the program only
    _execute(half, work, progress, total / 2, total)
    if progress is not None:
        progress(total, total, "")
    res = bias_bounded(full.result(), (full.scal, full.dot_raw), (half.scal, half.dot_raw), full.R)
    return res.noted(*flags)


def _execute(
    run: _Run, work: list[float], progress: Progress | None, done: float, total: float
) -> None:
    with np.errstate(all="ignore"):  # NaN/Inf are reported per ket by _check, not as warnings
        for i in run.demand.keep:
            stmt = run.kets.stmts[i]
            if progress is not None:
                run.tick = _ticker(progress, done, work[i], total, stmt.out)
                run.tick(0.0)
            run.step(i, stmt)
            done += work[i]


def _reads_copy(run: _Run, i: int) -> bool:
    s = run.kets.stmts[i]
    return isinstance(s, FormulaKet) and reads_copy(run.funcs, s)


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
        given: dict[str, float],
        dem: Demand,
        wanted: Collection[str] | None,
        span: int | None = None,
        groups: dict[int, Group] | None = None,
    ) -> None:
        self.kets, self.opts, self.batch, self.cols = kets, opts, batch, cols
        self.given, self.demand = given, dem
        ran = {kets.stmts[i].out for i in dem.keep}
        self.names = [n for n in kets.scalar_names if n in ran and (wanted is None or n in wanted)]
        self.R = replicas(opts)
        self.P = max(2, opts.particle_count // self.R)
        # copies per own particle (None: all P − 1); the half run also halves the pairs
        self.span = span
        self.pool = opts.outer2_pool if span is None else opts.outer2_pool / math.sqrt(2.0)
        self.plan = tangent_plan(kets, opts.stein, frozenset(dem.keep))
        self.funcs = KetFunctions(kets)
        self.groups = pair_groups(kets, self.funcs) if groups is None else groups
        self.keep = frozenset(dem.keep)
        self.values: dict[str, np.ndarray] = {}
        self.hatvals: dict[str, np.ndarray] = {}
        self.scal: dict[str, np.ndarray] = {}
        # tangents ∂|x⟩/∂H: arrays, or 0.0 for a hat that does not reach x
        self.tan: dict[str, dict[str, Any]] = {}
        self.orient: dict[tuple[str, bool], ParticleHats] = {}
        self.methods: dict[str, ScalarMethod] = {}
        self.dots: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self.dot_raw: dict[tuple[str, str], np.ndarray] = {}
        # the last Stein regressors (hat values, pseudo-inverse of their covariance) by hat names
        self.stein_regressors: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}
        self.tick: Callable[[float], None] | None = None

    def normals(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        rng = np.random.default_rng([self.opts.seed, zlib.crc32(name.encode())])
        return rng.standard_normal(shape)

    def step(self, i: int, stmt: Ket) -> None:
        match stmt:
            case ScalarLimit():
                value = initial_scalar(stmt, self.cols, self.given)
                self.scal[stmt.out] = np.asarray(value, dtype=np.float64).reshape(1, -1)
                self.methods[stmt.out] = "data"
            case InitKet(out=name):
                self.values[name] = self.normals(name, (self.P, self.R, 1))
            case AvgLimit():
                self._avg(stmt)
            case FormulaKet():
                self._formula(i, stmt)
            case MatMulKet():
                self._matmul(stmt)
            case _:
                assert_never(stmt)
        self._free(i)

    def _avg(self, s: AvgLimit) -> None:
        if odd_avg(self.kets, s.arg):  # the argument is not even computed (ket_reads)
            self.methods[s.out] = "symmetry"
            self.scal[s.out] = np.zeros((1, 1))
        else:
            self.methods[s.out] = "mc"
            self.scal[s.out] = self.values[s.arg].mean(axis=0)
        self._check(s.out, self.scal[s.out], s)

    def _formula(self, i: int, s: FormulaKet) -> None:
        if s.out in self.values:
            return  # computed with its fused group (runtime.limits.fusion)
        if i in self.groups:
            self._fused(self.groups[i])
            return
        args = self.funcs.args(s)
        arrays = [self.values[v] if kind == "vector" else self.scal[v] for v, _, kind in args]
        wanted = self._tangent_args(s)
        if not reads_copy(self.funcs, s):
            y = np.asarray(self.funcs.function(s)(*arrays), dtype=np.float64)
            shape = np.broadcast_shapes(y.shape, *(a.shape for a in arrays), (self.P, 1, 1))
            if y.shape != shape:  # a read-only view: no value is ever written in place
                y = np.broadcast_to(y, shape)
            derivs = {a: self.funcs.derivative(s, a)(*arrays) for a in wanted}
        else:
            placed = [
                Arg(arr, c, kind == "vector")
                for arr, (_, c, kind) in zip(arrays, args, strict=True)
            ]
            fns = [self.funcs.function(s), *(self.funcs.derivative(s, a) for a in wanted)]
            outs = pair_average(  # separable terms by window sums, the rest pair by pair
                ket_formulas(s, wanted), placed, s.order, self.pool, self.span, self.tick,
                joint=lambda *a: [f(*a) for f in fns],
            )
            y, derivs = outs[0], dict(zip(wanted, outs[1:], strict=True))
        self._store(s, y, derivs)

    def _fused(self, group: Group) -> None:
        """The requested members of ``group`` in one pass over their pairs, with the slot-0
        derivatives their tangents need."""
        subset = [j for j in group.members if j in self.keep]
        keys, joint = group.evaluator(subset)
        placed = [
            Arg(self.values[v] if kind == "vector" else self.scal[v], c, kind == "vector")
            for v, c, kind in keys
        ]
        extra: list[tuple[int, str, Callable[..., np.ndarray]]] = []
        for j in subset:
            s = self.kets.stmts[j]
            assert isinstance(s, FormulaKet)
            pos = [keys.index(k) for k in self.funcs.args(s)]
            for a in self._tangent_args(s):
                d = self.funcs.derivative(s, a)
                extra.append((j, a, lambda *arr, d=d, pos=pos: d(*(arr[p] for p in pos))))

        def all_of(*arrays: np.ndarray) -> list[np.ndarray]:
            return [*joint(*arrays), *(f(*arrays) for _, _, f in extra)]

        order = self.kets.stmts[subset[0]].order  # type: ignore[union-attr]
        formulas = group.pair_formulas(keys, subset, [(j, a) for j, a, _ in extra])
        outs = pair_average(formulas, placed, order, self.pool, self.span, self.tick, all_of)
        for k, j in enumerate(subset):
            s = self.kets.stmts[j]
            assert isinstance(s, FormulaKet)
            derivs = {a: outs[len(subset) + e] for e, (jj, a, _) in enumerate(extra) if jj == j}
            self._store(s, outs[k], derivs)

    def _store(self, s: FormulaKet, y: np.ndarray, derivs: dict[str, np.ndarray]) -> None:
        self._check(s.out, y, s)
        self.values[s.out] = y
        need = self.plan.need.get(s.out, frozenset())
        self.tan[s.out] = {
            h: sum(derivs[a] * self.tan[a][h] for a in derivs if h in self.tan[a]) for h in need
        }

    def _tangent_args(self, s: FormulaKet) -> list[str]:
        need = self.plan.need.get(s.out, frozenset())
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

    def _coefficients(self, s: MatMulKet) -> dict[DotCoeff, np.ndarray]:
        x = s.hat.arg
        by_deriv, by_stein = split_dots(s, self.opts.stein, self.opts.gradient_independence)
        out = {c: self.tan[x][c.hat.out].mean(axis=0) * np.ones((1, 1)) for c in by_deriv}
        if by_stein:
            out.update(self._stein(s, by_stein))
        for c, val in out.items():
            self._check(f"E[∂{x}/∂{c.hat.out}]", val, s)
            # one value for every replica (e.g. ∂y/∂ŷ = 1): deterministic, standard error 0
            exact = val.shape[0] == 1 and self.R > 1
            self.dots[(s.out, c.hat.out)] = _summary(val, self.batch, exact)
            self.dot_raw[(s.out, c.hat.out)] = val
        return out

    def _stein(self, s: MatMulKet, wanted: list[DotCoeff]) -> dict[DotCoeff, np.ndarray]:
        """Stein's lemma (:mod:`runtime.limits.ketrules`) with C the empirical covariance of the
        sampled hats and E[(x − E x) G_j] a particle mean, per replica and input column."""
        x = self.values[s.hat.arg]
        group = stein_hats(self.kets, s, self.hatvals)
        key = tuple(group)
        if key not in self.stein_regressors:  # every use of W after them regresses on them
            gmat = np.stack(np.broadcast_arrays(*(self.hatvals[h] for h in group)), axis=-1)
            cov = np.einsum("prci,prcj->rcij", gmat, gmat) / gmat.shape[0]
            self.stein_regressors = {key: (gmat, stein_pinv(cov, rcond=1e-10))}
        gmat, pinv = self.stein_regressors[key]
        xc = x - x.mean(axis=0)
        b = np.mean(xc[..., None] * gmat, axis=0)
        sol = np.einsum("...ij,...j->...i", pinv, b)
        return {c: sol[..., group.index(c.hat.out)] for c in wanted}

    def _check(self, name: str, arr: np.ndarray, s: object) -> None:
        check_finite(self.kets, name, arr, s)

    def _free(self, i: int) -> None:
        """Drop tangents, and (unless kept for the caller) values, after their last read, so
        memory follows the live set."""
        for name in self.plan.free_after.get(i, ()):
            self.tan.pop(name, None)
        if self.opts.keep_values:
            return
        for name in self.demand.last_read.get(i, ()):
            self.values.pop(name, None)
            self.hatvals.pop(name, None)

    def result(self) -> LimitResult:
        scalars, stderr = {}, {}
        for name in self.names:
            per = np.broadcast_to(self.scal[name], (self.R, self.scal[name].shape[-1]))
            exact = self.methods[name] != "mc"
            scalars[name], stderr[name] = _summary(per, self.batch, exact)
        m, seed = self.P * self.R, self.opts.seed
        return LimitResult(
            method="mc",
            description=f"Monte Carlo, M = {m} particles in {self.R} replicas, seed {seed}",
            batch=self.batch,
            scalars=scalars,
            stderr=stderr,
            methods={k: self.methods[k] for k in self.names},
            dots=self.dots,
            given=dict(self.given),
            particles=m,
            replicas=self.R,
            values={**self.values, **{f"^{k}": v for k, v in self.hatvals.items()}}
            if self.opts.keep_values
            else {},
        )
