"""The cost model of the Monte Carlo limit engine (:mod:`runtime.limits.montecarlo`): how many
replicas, how many bytes an evaluation holds (checked against the memory budget before it
starts), how many ψ evaluations each statement costs (the progress weights), and the seconds a
run will take (``method="auto"`` weighs the exact path against it)."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from compiler.kets.lowering import FormulaKet, InitKet, KetProgram, MatMulKet
from runtime.limits.ketfuncs import tangent_plan
from runtime.limits.outer import min_block_bytes, pairs_per_own
from runtime.limits.result import LimitOptions
from runtime.memory import physical_memory


def replicas(opts: LimitOptions) -> int:
    """R: as given (LimitOptions refuses too few particles per replica), else 16 when M ≥ 2048,
    else M // 128 (at least 1)."""
    m = opts.particle_count
    if opts.replicas is not None:
        return opts.replicas
    return 16 if m >= 2048 else max(1, m // 128)


def estimate_memory(
    kets: KetProgram,
    particles: int,
    batch: int,
    opts: LimitOptions,
    keep: Collection[int] | None = None,
) -> int:
    """Bytes the evaluation will hold: every vector ket and hat that runs (``keep``; None: all),
    the tangents it tracks, and one block of copy averages (upper bound: every ket taken
    input-dependent, none freed)."""
    keep = range(len(kets.stmts)) if keep is None else keep
    stmts = [kets.stmts[i] for i in keep]
    plan = tangent_plan(kets, opts.stein, frozenset(keep))
    vectors = sum(1 for s in stmts if isinstance(s, InitKet | FormulaKet | MatMulKet))
    hats = sum(1 for s in stmts if isinstance(s, MatMulKet))
    tangents = sum(len(v) for v in plan.need.values())
    per = particles * batch * 8
    r = replicas(opts)
    own = max(2, particles // r)
    block = max(
        (
            12 * max(min_block_bytes(own, s.order, opts.outer2_pool, r * batch), 1 << 24)
            for s in stmts
            if isinstance(s, FormulaKet) and s.order
        ),
        default=0,
    )
    return (vectors + 2 * hats + tangents) * per + block


def budget(opts: LimitOptions) -> int:
    if opts.memory_budget is not None:
        return opts.memory_budget
    have = physical_memory()
    return 8 << 30 if have is None else have // 2  # half: the arrays live beside their blocks


def work_units(kets: KetProgram, opts: LimitOptions) -> list[float]:
    """Cost of each statement in ψ evaluations: M for a pointwise ket, M·span for an order-1
    OuterNonlin (span = P − 1 copies), M·(pairs per own particle) for order 2."""
    r = replicas(opts)
    p = max(2, opts.particle_count // r)
    m = float(p * r)
    pair = {0: 1.0, 1: float(p - 1), 2: float(pairs_per_own(2, p - 1, opts.outer2_pool))}
    return [m * pair[s.order] if isinstance(s, FormulaKet) else m for s in kets.stmts]


SECONDS_PER_UNIT = 1.5e-8
"""CPU seconds per ψ evaluation of one particle and input, the upper end of what was measured
on 2 shared cores (bench/bench_exact.py --costs: the kernel programs of mlp3, mlp2_erf, attention,
layernorm_mlp, transformer_block and rnn at B = 2–8, 16384 particles: 6e-9 … 1.4e-8 since the
demand-driven evaluator; it was 1.2e-7, 9–20× the present cost): an estimate that errs towards
giving the exact path time."""


def estimate_seconds(
    kets: KetProgram, opts: LimitOptions, batch: int, keep: Collection[int] | None = None
) -> float:
    """Seconds a Monte Carlo run of the statements ``keep`` (None: all) will take."""
    units = np.asarray(work_units(kets, opts))
    if keep is not None:
        units = units[np.asarray(sorted(keep), dtype=int)]
    return float(units.sum()) * batch * SECONDS_PER_UNIT
