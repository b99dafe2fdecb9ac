"""Exact limit evaluation by Gaussian quadrature (spec 01 §1.4, §1.6; 07 §7.1).

Every ket is either *linear* — an affine form a·ζ + b in a basis of independent standard normals
ζ (one per initial vector and one per hat; hats are built with the same incremental factor as the
Monte Carlo sampler, :mod:`runtime.limits.hats`, but from exact inner products) — or a *node*, a
function of earlier kets.  An expectation E[F] of nodes is an integral over the Gaussian leaves
(the linear kets) it reaches: they span r ≤ few whitened dimensions w (SVD of their forms), and

* first the Gaussian dimension is reduced to the span of F's arguments (affine combinations of
  leaves are one Gaussian; sums are integrated term by term over each term's own span;
  products of cosines become sums), :mod:`runtime.limits.quadreduce`;
* if no kink (relu, step, sign, abs, Heaviside, Max/Min) sits in F, composite Gauss–Legendre
  panels (≤ 2 dimensions) or tensor Gauss–Hermite in w;
* if the kinks are hyperplanes through the origin spanning q ≤ 2 dimensions, those dimensions
  are integrated piecewise — two half-lines (q = 1) or angular sectors in polar coordinates
  (q = 2), with composite Gauss–Legendre panels in r and Gauss–Legendre in the angle
  (:mod:`runtime.limits.quadgrid`) — and the rest by Gauss–Hermite: exact to round-off for
  positively homogeneous pieces (relu, step), the cases of 07 §7.1.

Dot coefficients come from Stein's lemma with exact expectations, (E[∂x/∂G_j])_j = C⁺(E[x G_j])_j
(no derivatives, so step/sign are fine), and are 0 where a sign-flip symmetry proves it; initial
scalars, odd Avgs and the Stein regressors follow the shared rules of
:mod:`runtime.limits.ketrules`.  Anything else (OuterNonlin, kinks off the origin or on
non-Gaussian kets, too many dimensions) raises :class:`NotExactError` naming the ket and the
reason; :func:`runtime.limits.evaluate` with ``method="auto"`` then falls back to Monte Carlo.
Every integral is computed at two levels of nodes and its error estimated; a value whose
estimate exceeds ~1e-11 (relative) is never returned as exact: :class:`NotExactError` says how
far the rules disagree and ``"auto"`` hands the program to Monte Carlo.  Every standard error of
the result is a real 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, assert_never, cast

import numpy as np
import sympy

from compiler.ir import formula_args
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
from compiler.symbols import relu, step
from runtime.data import input_batch
from runtime.limits.hats import extend_factor, grow
from runtime.limits.ketfuncs import KetFunctions, check_finite
from runtime.limits.ketrules import (
    condition_scalars,
    initial_scalar,
    odd_avg,
    split_dots,
    stein_hats,
    stein_solve,
)
from runtime.limits.result import (
    LimitOptions,
    LimitResult,
    NotApplicableError,
    Progress,
    ScalarMethod,
)

if TYPE_CHECKING:
    from runtime.limits.exactcost import ExactCost

KINKS = (relu, step, sympy.sign, sympy.Abs, sympy.Heaviside, sympy.Max, sympy.Min)


class NotExactError(NotApplicableError):
    """The program (or one of its expectations) is outside the exact path; says why."""


class ExactEngine:
    """The exact engine behind :func:`runtime.limits.evaluate` (``method="exact"``, and the
    first choice of ``"auto"``): quadrature, or :class:`NotExactError`."""

    name = "exact"
    label = "exact path"
    takes = KetProgram

    def evaluate(
        self,
        program: KetProgram,
        inputs: object,
        scalars: Mapping[str, float],
        options: LimitOptions,
        progress: Progress | None,
    ) -> LimitResult:
        if options.memory_budget is not None:  # refuse before allocating (--memory-limit)
            cost = self.estimate_cost(program, inputs, options)
            if cost.bytes > options.memory_budget:
                raise NotExactError(cost.refusal_over(options.memory_budget))
        res = evaluate_exact(program, inputs, scalars, options, progress)
        if options.particles is not None:
            return res.noted("particles are ignored on the exact path (method mc uses them)")
        return res

    def estimate_cost(
        self, program: KetProgram, inputs: object, options: LimitOptions
    ) -> ExactCost:
        """The up-front cost of a run (:func:`runtime.limits.exactcost.estimate_exact`)."""
        from runtime.limits.exactcost import estimate_exact

        return estimate_exact(program, input_batch(program.source, inputs)[0], options)


@dataclass
class Lin:
    """The affine form coef·ζ + const (coef may be shorter than the basis: zero-padded)."""

    coef: np.ndarray
    const: float = 0.0

    def padded(self, dim: int) -> np.ndarray:
        return np.pad(self.coef, (0, dim - self.coef.size))


@dataclass
class Node:
    """A non-linear ket: ``stmt`` evaluated pointwise; a MatMul node keeps its hat as a leaf."""

    stmt: FormulaKet | MatMulKet
    index: int
    hat: Lin | None = None
    coeffs: tuple[tuple[str, float], ...] = ()


def evaluate_exact(
    kets: KetProgram,
    inputs: object = None,
    scalars: Mapping[str, float] | None = None,
    opts: LimitOptions | None = None,
    progress: Progress | None = None,
) -> LimitResult:
    """Every scalar limit (and live dot coefficient) of ``kets`` exactly, one input at a time;
    ``scalars`` as for Monte Carlo (the limit conditions on random scalar parameters).
    ``progress`` is told after every statement; past ``opts.time_limit`` seconds (or when the
    first input's time × the inputs exceeds it) :class:`NotExactError` gives up."""
    opts = opts or LimitOptions()
    batch, cols = input_batch(kets.source, inputs)
    given = condition_scalars(kets, scalars)
    res = LimitResult("exact", "exact (quadrature)", batch, given=given)
    clock = _Clock(opts.time_limit, batch * len(kets.stmts), progress)
    for b in range(batch):
        col = _Column(kets, {k: float(v[b]) for k, v in cols.items()}, given, opts)
        with np.errstate(all="ignore"):  # NaN/Inf are reported per limit, not as warnings
            for i, s in enumerate(kets.stmts):
                col.step(i, s)
                _check_step(col, s, inputs, given)
                clock.tick(b * len(kets.stmts) + i + 1)
        clock.projected(batch / (b + 1))
        for name in kets.scalar_names:
            res.scalars.setdefault(name, np.empty(batch))[b] = col.scal[name]
        for key, val in col.dots.items():
            res.dots.setdefault(key, (np.empty(batch), np.zeros(batch)))[0][b] = val
        res.methods.update(col.methods)
    res.stderr = {k: np.zeros(batch) for k in res.scalars}
    return res


class _Clock:
    """Progress of the exact path, and its time limit (the ``auto`` choice's escape hatch), in
    CPU seconds of this process: the estimates it is set from are CPU seconds, and on a shared
    machine wall time would hand a program to Monte Carlo because of the neighbours' load."""

    def __init__(self, limit: float | None, total: int, progress: Progress | None) -> None:
        self.limit, self.total, self.progress = limit, total, progress
        self.start = time.process_time()

    def tick(self, done: int) -> None:
        if self.progress is not None:
            self.progress(done, self.total, "exact path")
        self.projected(1.0)

    def projected(self, factor: float) -> None:
        """Give up when the time so far × ``factor`` (the projected total) passes the limit."""
        spent = time.process_time() - self.start
        if self.limit is not None and spent * factor > self.limit:
            raise NotExactError(
                f"the exact path would take {'over ' if factor == 1 else 'about '}"
                f"{spent * factor:.0f} s, more than its time limit of {self.limit:.0f} s"
            )


def _check_step(col: _Column, s: Ket, inputs: object, scalars: Mapping[str, float]) -> None:
    """NaN/Inf in the scalar or the dot coefficients that statement ``s`` just defined."""
    out = s.out
    if out in col.scal and not np.isfinite(col.scal[out]):
        _localise(col.kets, inputs, scalars)
        check_finite(col.kets, out, col.scal[out], s)
    if isinstance(s, MatMulKet):
        for (y, h), val in col.dots.items():
            if y == out:
                check_finite(col.kets, f"E[∂{s.hat.arg}/∂{h}]", val, s)


def _localise(kets: KetProgram, inputs: object, scalars: Mapping[str, float]) -> None:
    """Name the first ket whose values are non-finite: a small Monte Carlo run raises the
    evaluator's NumericError at that ket (quadrature composes kets, so it cannot tell)."""
    from runtime.limits.engines import evaluate  # through the interface: engines import this

    evaluate(kets, inputs, "mc", LimitOptions(particles=4096, replicas=1), scalars=scalars)


@contextmanager
def _naming(what: str) -> Iterator[None]:
    """Prefix a NotExactError raised inside with the statement it arose in."""
    try:
        yield
    except NotExactError as e:
        raise NotExactError(f"{what}: {e.message}") from None


class _Column:
    """The kets of one input column: linear forms and nodes, scalars, hats, dot coefficients."""

    def __init__(
        self,
        kets: KetProgram,
        inputs: dict[str, float],
        given: dict[str, float],
        opts: LimitOptions,
    ) -> None:
        self.kets, self.inputs, self.given, self.opts = kets, inputs, given, opts
        self.funcs = KetFunctions(kets)
        self.dim = 0
        self.ket: dict[str, Lin | Node] = {}
        self.scal: dict[str, float] = {}
        self.methods: dict[str, ScalarMethod] = {}
        self.rows: dict[tuple[str, bool], np.ndarray] = {}
        self.zetas: dict[tuple[str, bool], list[int]] = {}
        self.hats: dict[str, Lin] = {}
        self.dots: dict[tuple[str, str], float] = {}

    def fresh(self) -> Lin:
        self.dim += 1
        return Lin(np.eye(self.dim)[-1])

    def step(self, i: int, s: Ket) -> None:
        match s:
            case ScalarLimit(out=name):
                self.scal[name] = float(initial_scalar(s, self.inputs, self.given))
                self.methods[name] = "data"
            case InitKet(out=name):
                self.ket[name] = self.fresh()
            case AvgLimit(out=y, arg=x):
                if odd_avg(self.kets, x):
                    self.scal[y], self.methods[y] = 0.0, "symmetry"
                else:
                    t = sympy.Symbol("t_", real=True)
                    with _naming(f"{y} = E|{x}⟩"):
                        self.scal[y] = self.expect(t, {t: self.ket[x]})
                    self.methods[y] = "exact"
            case FormulaKet():
                self._formula(i, s)
            case MatMulKet():
                with _naming(f"the MatMul |{s.out}⟩"):
                    self._matmul(i, s)
            case _:
                assert_never(s)

    def _formula(self, i: int, s: FormulaKet) -> None:
        if s.order:
            raise NotExactError(
                f"|{s.out}⟩ is an OuterNonlin (E′ over copies): not on the exact path"
            )
        lin = self._linear(s)
        self.ket[s.out] = lin if lin is not None else Node(s, i)

    def _linear(self, s: FormulaKet) -> Lin | None:
        """The affine form of a formula that is linear in Gaussian (linear) kets, else None."""
        vec = [(x, v) for x, v, _ in formula_args(s.ins) if self.kets.kind(v) == "vector"]
        lins: dict[str, Lin] = {}
        for _, v in vec:
            form = self.ket[v]
            if not isinstance(form, Lin):
                return None
            lins[v] = form
        f = s.formula
        coef = np.zeros(self.dim)
        for x, v in vec:
            d = sympy.diff(f, x)
            if any(
                self.kets.kind(str(a)) == "vector"
                for a in d.free_symbols
                if str(a) in self.kets.source.kinds
            ):
                return None
            coef += self._number(d) * lins[v].padded(self.dim)
        const = self._number(f.xreplace({x: 0 for x, _ in vec}))
        const += sum((self._number(sympy.diff(f, x)) * lins[v].const for x, v in vec), 0.0)
        return Lin(coef, const)

    def _number(self, expr: sympy.Basic) -> float:
        expr = sympy.sympify(expr)
        subs = {a: self.scal[str(a)] for a in expr.free_symbols if str(a) in self.scal}
        val = cast(sympy.Expr, expr.xreplace({a: sympy.Float(v, 30) for a, v in subs.items()}))
        try:
            return float(val)
        except TypeError:
            raise NotExactError(f"cannot evaluate {expr} to a number") from None

    def _matmul(self, i: int, s: MatMulKet) -> None:
        o = s.hat.orientation
        args = [h.arg for h in self.kets.hats.values() if h.orientation == o][: s.hat.index]
        c = np.array([self.inner(a, s.hat.arg) for a in args])
        d = self.inner(s.hat.arg, s.hat.arg)
        rows = self.rows.get(o, np.zeros((0, 0)))
        lv, sd = extend_factor(rows, c, np.array(d))
        self.rows[o] = grow(rows, lv, sd)
        z = self.fresh()
        ids = self.zetas.setdefault(o, [])
        ids.append(self.dim - 1)
        coef = np.zeros(self.dim)
        coef[ids] = [*lv, float(sd)]
        hat = self.hats[s.out] = Lin(coef)
        del z
        coeffs = self._coefficients(s)
        zs = [(c_.hat.arg, v) for c_, v in coeffs]
        if all(isinstance(self.ket[zn], Lin) for zn, _ in zs):
            out = hat.padded(self.dim).copy()
            const = 0.0
            for zn, v in zs:
                out += v * self.ket[zn].padded(self.dim)  # type: ignore[union-attr]
                const += v * self.ket[zn].const  # type: ignore[union-attr]
            self.ket[s.out] = Lin(out, const)
        else:
            self.ket[s.out] = Node(s, i, hat, tuple(zs))

    def _coefficients(self, s: MatMulKet) -> list[tuple[DotCoeff, float]]:
        """Every live coefficient by Stein's lemma with exact covariances (no derivatives)."""
        _, live = split_dots(s, stein=True, gradient_independence=self.opts.gradient_independence)
        if not live:
            return []
        group = stein_hats(self.kets, s, self.hats)
        forms = np.stack([self.hats[h].padded(self.dim) for h in group])
        cov = forms @ forms.T
        b = np.array([self.inner(s.hat.arg, self.hats[h]) for h in group])
        sol = stein_solve(cov, b, rcond=1e-12)
        out = [(c, float(sol[group.index(c.hat.out)])) for c in live]
        for c, v in out:
            self.dots[(s.out, c.hat.out)] = v
        return out

    def inner(self, a: str | Lin, b: str | Lin) -> float:
        """⟨a|b⟩ = E[|a⟩|b⟩] (names of kets, or linear forms)."""
        ka = self.ket[a] if isinstance(a, str) else a
        kb = self.ket[b] if isinstance(b, str) else b
        if isinstance(ka, Lin) and isinstance(kb, Lin):
            return float(ka.padded(self.dim) @ kb.padded(self.dim) + ka.const * kb.const)
        a_, b_ = sympy.symbols("a_ b_", real=True)
        return self.expect(a_ * b_, {a_: ka, b_: kb})

    def expect(self, expr: sympy.Expr, items: dict[sympy.Symbol, Lin | Node]) -> float:
        """E[expr(items)] by quadrature over the Gaussian leaves the items reach."""
        from runtime.limits.quadgrid import integrate

        return integrate(self, expr, items)
