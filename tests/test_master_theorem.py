"""The Master Theorem as a property (spec 01 §1.5, 07 §7.3): for random well-formed programs the
seed-averaged finite-width scalars approach the ket limits computed by the generic evaluator.

Programs.  :func:`tests.strategies.master_programs` draws them: vectors x0, x1, one or two
matrices, a scalar with a fixed initial value, and blocks among a backward-like W/Wᵀ motif
(y = M x, optionally y₂ = M φ(y), g = ψ(y, …), z = Mᵀ g, optionally avg(z·x)), plain MatMuls
with and without transpose, Nonlins with scalar arguments, constant vectors ψ(θ)·1, Avg probes
and OuterNonlins of order 1 (and one of order 2 in the order-2 programs).  Hypothesis (generate
phase only, derandomized) yields a deterministic stream; :func:`distinct_programs` keeps the
first ``count`` distinct printed forms, and the test asserts the count.  The fast variant runs
every tenth program of the full variant's stream (the stream starts with hypothesis's smallest
examples), so it is a subset of the full one.

Dot coverage.  A program has a *live* dot when some MatMul of its lowering
(compiler/kets/lowering.py) has a coefficient E[∂|x⟩/∂|Ŵᵀz⟩] not proven 0 by a sign flip
(compiler/kets/parity.py), and a *non-zero* one when the evaluator's estimate is more than 4
replica standard errors from 0
(a coefficient held constant by the recursion, e.g. E[∂y/∂ŷ] = 1, is exact).  Both fractions are
asserted, and a mutation check proves the sweep sees the dot terms: with the dot coefficients
set to 0 (``gradient_independence``) most programs with a non-zero dot fail the same test.

Scalars.  Every Avg is compared.  Avgs of odd kets (``LimitResult.exact_zero``: limit exactly 0
by a sign flip) and deterministic ones (a constant vector's Avg: no spread at any width) are
checked but counted apart; the gap statistics use the remaining *informative* scalars.

Statistics.  For a scalar s, one seed's value at width n fluctuates by σ_s/√n; c_s = σ_s² is
pooled over the widths (3·(K−1) degrees of freedom), so the standard error of the K-seed mean is
√(c_s/(nK)); each width uses its own seeds (one seed's streams share their prefix across widths,
which would correlate the widths).  With the limit's replica standard error e_L the combined
s.e. at width n is SE_n = √(c_s/(nK) + e_L²).  At the largest width N every compared scalar must
satisfy |mean_N − limit| ≤ Z·SE_N + B·√c_s/√N: Z = 5 (a few hundred scalars; the seeds are
fixed, so the test is deterministic), and B = 1/4 is the O(n^{-1/2}) bias allowance (the mean's
finite-width bias is O(1/n) in theory; measured, the mean signed z at N is within ±0.15, while a
missing dot term makes gaps O(√c_s), see the mutation check).  "The gap shrinks with n": over
the informative scalars, the largest and the median gap in units of √c_s are smaller at N than
at the smallest width, the median by a factor 2 in the full variant (noise alone predicts about
√((1/256K + ε)/(1/4096K + ε)) ≈ 3.4 with ε = e_L²/c_s ≈ 1.2e-5; measured 2.2–4.8 over seed
bases ``SEED0``).  Scalars with the same dependence slice in programs of one seed group hold the
same numbers and count once (:func:`slice_key`); programs are spread over seed groups (10 in
the full variant) so that the aggregates do not rest on the few matrices of one seed set.

Cost.  Order-2 OuterNonlins cost n³ at finite width, so order-2 programs run at widths 64, 128,
256 instead of 256, 1024, 4096 (their largest gap must shrink too, over a factor 4 in width).
The n×n matrices are drawn once per (width, seed) and shared by the programs of a seed group:
they are the very draws ``draw_parameters`` makes (streams are keyed by (seed, name); checked
below).  Measured on 2 cores: fast ≈ 15 s, full ≈ 2–2.5 min.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from compiler.ir import Avg, MatMul, OuterNonlin, Program, reads
from compiler.kets.lowering import KetProgram, MatMulKet, lower
from compiler.printer import format_decl, format_instruction, print_program
from runtime.executor import execute
from runtime.limits.montecarlo import LimitOptions, LimitResult, evaluate
from runtime.params import draw_matrix, draw_parameters, stream
from tests.strategies import master_programs

WIDTHS, WIDTHS_ORDER2 = (256, 1024, 4096), (64, 128, 256)
SEEDS, Z, B, SEED0 = 8, 5.0, 0.25, 0
LIMIT = LimitOptions(particles=65536, replicas=64, outer2_pool=64)
"""The fast variant's limits: P = 1024 particles per replica."""
LIMIT_FULL = replace(LIMIT, replicas=16)
"""The full variant's: P = 4096, so the limit's own finite-P bias is 4 times smaller."""
CONSTANT_MATMULS = True
"""Programs may apply W to constant vectors vec(ψ(θ)) (their hats are drawn per replica and
join the Gram of later hats: runtime/limits/hats.py)."""
SETTINGS = dict(
    deadline=None,
    derandomize=True,
    phases=[Phase.generate],
    database=None,
    suppress_health_check=list(HealthCheck),
)


def distinct_programs(count: int, order2: bool) -> list[Program]:
    """The first ``count`` distinct (by printed form) programs of the derandomized stream."""
    seen: dict[str, Program] = {}

    @settings(max_examples=4 * count + 40, **SETTINGS)
    @given(master_programs(order2=order2, constant_matmuls=CONSTANT_MATMULS))
    def collect(p: Program) -> None:
        seen.setdefault(print_program(p), p)

    collect()
    assert len(seen) >= count, (len(seen), count)
    return list(seen.values())[:count]


def has_order2(p: Program) -> bool:
    return any(isinstance(i, OuterNonlin) and i.order == 2 for i in p.body)


# --- finite width ---------------------------------------------------------------------------


def shared_parameters(p: Program, n: int, seed: int, mats: dict[str, np.ndarray]) -> dict:
    """``draw_parameters(p, n, seed)`` with the matrices taken from ``mats``."""
    rest = p.replace(params=tuple(q for q in p.params if q.kind != "matrix"))
    out = draw_parameters(rest, n, seed)
    for m in p.param_names("matrix"):
        if m not in mats:
            mats[m] = draw_matrix(stream(seed, m), n, "gaussian")
        out[m] = mats[m]
    return out


def finite_values(
    progs: list[Program], widths: tuple[int, ...], groups: list[int]
) -> list[dict[str, dict]]:
    """Per program, per Avg: width → the K seed values.  Seeds are independent per width (one
    seed's streams share their prefix across widths) and per group (``groups[i]`` of program i);
    the programs of a group share the draws of their common parameters."""
    out: list[dict[str, dict]] = [{} for _ in progs]
    for k, n in enumerate(widths):
        for g in sorted(set(groups)):
            for seed in range(SEEDS):
                s, mats = SEED0 + 1000 * k + 100 * g + seed, {}
                for p, vals, pg in zip(progs, out, groups, strict=True):
                    if pg != g:
                        continue
                    run = execute(p, n, s, params=shared_parameters(p, n, s, mats))
                    for i in p.body:
                        if isinstance(i, Avg):
                            vals.setdefault(i.out, {}).setdefault(n, []).append(run[i.out][0])
    return [{a: {n: np.array(v) for n, v in d.items()} for a, d in vals.items()} for vals in out]


def slice_key(p: Program, name: str) -> str:
    """The instructions and declarations ``name`` depends on: two programs' scalars with one key
    are the same computation (same names, so the same draws for the same seed)."""
    need, lines = {name}, []
    for ins in reversed(p.body):
        if ins.out in need:
            need.update(reads(ins))
            lines.append(format_instruction(ins, p.kinds))
    decls = [format_decl(q) for q in p.params if q.name in need]
    return "; ".join([*decls, *reversed(lines)])


# --- comparison -----------------------------------------------------------------------------


@dataclass
class Row:
    """One compared scalar."""

    program: int
    name: str
    key: tuple[str, int]  # (slice_key, seed group): rows with one key hold the same numbers
    kind: str  # "informative", "exact zero" or "deterministic"
    z: float  # (gap_N − B√c/√N) / SE_N
    norm: dict[int, float]  # width → gap/√c


def compare(
    i: int, p: Program, group: int, values: dict, lim: LimitResult, widths: tuple[int, ...]
) -> list[Row]:
    rows = []
    n_max = widths[-1]
    for s, vals in values.items():
        c = float(np.mean([n * v.var(ddof=1) for n, v in vals.items()]))
        lim_s, lim_se = float(lim.scalars[s][0]), float(lim.stderr[s][0])
        gap = {n: abs(v.mean() - lim_s) for n, v in vals.items()}
        se = np.sqrt(c / (n_max * SEEDS) + lim_se**2)
        if s in lim.exact_zero:
            kind = "exact zero"
        elif c < 1e-20 and lim_se < 1e-12:
            kind = "deterministic"
        else:
            kind = "informative"
        if kind == "deterministic":
            z = 0.0 if gap[n_max] < 1e-9 else np.inf
            norm = dict.fromkeys(widths, 0.0)
        else:
            z = (gap[n_max] - B * np.sqrt(c / n_max)) / se
            norm = {n: gap[n] / np.sqrt(c) for n in widths}
        rows.append(Row(i, s, (slice_key(p, s), group), kind, float(z), norm))
    return rows


def live_dots(kp: KetProgram) -> bool:
    return any(s.live_dots for s in kp.stmts if isinstance(s, MatMulKet))


def nonzero_dots(lim: LimitResult) -> bool:
    """A dot coefficient more than 4 s.e. from 0 (an exact one has no finite s.e.)."""
    for mean, se in lim.dots.values():
        m, e = float(mean[0]), float(se[0])
        if abs(m) > 4 * e if np.isfinite(e) and e > 0 else abs(m) > 1e-12:
            return True
    return False


def feeds(p: Program, matmuls: set[str]) -> set[str]:
    """The Avgs of ``p`` that read (transitively) one of the MatMul outputs ``matmuls``."""
    touched, avgs = set(matmuls), set()
    for ins in p.body:
        if touched.intersection(reads(ins)):
            touched.add(ins.out)
            if isinstance(ins, Avg):
                avgs.add(ins.out)
    return avgs


@dataclass
class Sweep:
    progs: list[Program]
    rows: list[Row]
    live: list[bool]
    nonzero: list[bool]
    dot_fed: list[bool]  # a non-zero dot term reaches an informative scalar
    mutation_failures: int
    seconds: float

    def informative(self, order2: bool) -> list[Row]:
        """The informative scalars, one row per key (duplicated slices hold the same numbers)."""
        rows: dict[tuple[str, int], Row] = {}
        for r in self.rows:
            if r.kind == "informative" and has_order2(self.progs[r.program]) == order2:
                rows.setdefault(r.key, r)
        return list(rows.values())

    def gap_stats(self, order2: bool) -> dict[int, tuple[float, float]]:
        """width → (median, max) of gap/√c over the distinct informative scalars."""
        rows = self.informative(order2)
        widths = WIDTHS_ORDER2 if order2 else WIDTHS
        return {
            n: (float(np.median([r.norm[n] for r in rows])), max(r.norm[n] for r in rows))
            for n in widths
        }

    def summary(self) -> str:
        n_nonzero = sum(self.nonzero)
        kinds = ("informative", "exact zero", "deterministic")
        lines = [
            f"{len(self.progs)} distinct programs ({sum(map(has_order2, self.progs))} order-2), "
            f"live dots {sum(self.live)}, non-zero dots {n_nonzero}, feeding an informative "
            f"Avg {sum(self.dot_fed)}; dots-off mutation fails {self.mutation_failures}/"
            f"{n_nonzero}; {self.seconds:.0f} s",
            f"{len(self.rows)} scalars: "
            + ", ".join(f"{k} {sum(r.kind == k for r in self.rows)}" for k in kinds)
            + f"; max z {max(r.z for r in self.rows):.2f}",
        ]
        for order2 in (False, True):
            if self.informative(order2):
                stats = "; ".join(
                    f"n={n}: median {med:.4f} max {mx:.4f}"
                    for n, (med, mx) in self.gap_stats(order2).items()
                )
                lines.append(f"gap/√c, {len(self.informative(order2))} distinct: {stats}")
        return "\n".join(lines)


def sweep(n_plain: int, n_order2: int, every: int, groups: int, limit: LimitOptions) -> Sweep:
    """Every ``every``-th of the first ``n_plain`` plain and ``n_order2`` order-2 programs;
    program i draws its seeds (finite width and limit) in group i mod ``groups``."""
    start = time.perf_counter()
    progs = distinct_programs(n_plain, False)[::every] + distinct_programs(n_order2, True)[::every]
    group = [i % groups for i in range(len(progs))]
    kets = [lower(p) for p in progs]
    lims = [evaluate(kp, opts=replace(limit, seed=g)) for kp, g in zip(kets, group, strict=True)]
    rows: list[Row] = []
    values: list = [None] * len(progs)
    for order2, widths in ((False, WIDTHS), (True, WIDTHS_ORDER2)):
        idx = [i for i, p in enumerate(progs) if has_order2(p) == order2]
        found = finite_values([progs[i] for i in idx], widths, [group[i] for i in idx])
        for i, v in zip(idx, found, strict=True):
            values[i] = (v, widths)
            rows += compare(i, progs[i], group[i], v, lims[i], widths)
    nonzero = [nonzero_dots(lim) for lim in lims]
    dot_fed, failures = [], 0
    for i, (p, lim) in enumerate(zip(progs, lims, strict=True)):
        mms = {m for m, _ in lim.dots} if nonzero[i] else set()
        informative = {r.name for r in rows if r.program == i and r.kind == "informative"}
        dot_fed.append(bool(feeds(p, mms) & informative))
        if nonzero[i]:  # the same comparison without the dot terms must fail
            off = evaluate(kets[i], opts=replace(limit, seed=group[i], gradient_independence=True))
            v, widths = values[i]
            failures += max(r.z for r in compare(i, p, group[i], v, off, widths)) > Z
    live = [live_dots(kp) for kp in kets]
    return Sweep(progs, rows, live, nonzero, dot_fed, failures, time.perf_counter() - start)


def check(sw: Sweep, min_nonzero: float, median_shrink: float) -> None:
    print("\n" + sw.summary())
    worst = max(sw.rows, key=lambda r: r.z)
    assert worst.z < Z, (worst, "\n" + print_program(sw.progs[worst.program]))
    n = len(sw.progs)
    assert sum(sw.live) >= max(2, 0.3 * n), sw.summary()
    assert sum(sw.nonzero) >= max(2, min_nonzero * n), sw.summary()
    assert sum(sw.dot_fed) >= 2, sw.summary()
    assert sw.mutation_failures >= max(1, 0.5 * sum(sw.nonzero)), sw.summary()
    assert len(sw.informative(False)) >= sum(not has_order2(p) for p in sw.progs), sw.summary()
    stats = sw.gap_stats(False)
    (med_small, max_small), (med_large, max_large) = stats[WIDTHS[0]], stats[WIDTHS[-1]]
    assert max_large < max_small, sw.summary()
    assert med_large < med_small / median_shrink, sw.summary()


def test_shared_matrices_are_the_executor_draw():
    p = distinct_programs(1, False)[0]
    ref, mine = draw_parameters(p, 32, 7), shared_parameters(p, 32, 7, {})
    assert ref.keys() == mine.keys()
    assert all(np.array_equal(ref[k], mine[k]) for k in ref)
    assert any(isinstance(i, MatMul) for i in p.body)


def test_master_theorem_fast():
    sw = sweep(100, 20, every=10, groups=2, limit=LIMIT)
    check(sw, min_nonzero=0.25, median_shrink=1.0)


@pytest.mark.slow
def test_master_theorem_full():
    sw = sweep(100, 20, every=1, groups=10, limit=LIMIT_FULL)
    assert len({print_program(p) for p in sw.progs}) == len(sw.progs) == 120
    check(sw, min_nonzero=0.3, median_shrink=2.0)
    stats = sw.gap_stats(True)
    assert stats[WIDTHS_ORDER2[-1]][1] < stats[WIDTHS_ORDER2[0]][1], sw.summary()
