"""The μ-limit by definition: the unrolled μP training program, lowered to kets (05 §5.4).

Rule (05 §5.4, Rem. 2.7.2, 2.9.28): the μP training program of 04 §4.3 is width free, and
"transcribing the finite-width computation into kets" is its ket limit.  So this engine does no
per-architecture work at all:

1. :func:`compiler.passes.unroll.unroll` builds T steps of training as one NE⊗OR⊤ program
   (updated matrices as OuterNonlins of order 1 whose ψ is Q_s of the gradient history);
2. :func:`compiler.kets.lowering.lower` applies the generic ket rules of 01 §1.4 (Init, Avg,
   OuterNonlin → E′, MatMul → hat + dot, with Stein's lemma wherever a derivative crosses a delta
   or a peak, :mod:`compiler.kets.parity`);
3. the Monte Carlo evaluator (:mod:`runtime.limits.montecarlo`) evaluates the scalars
   F_t(ξ) = avg(o_t(ξ)), only those and what they depend on; f_t = F_t (μP: n^{1−e_out} = n⁰).

Other feature-learning tables (05 §5.5): the updates of the groups the plan drops are switched
off (c = ∞, the group frozen), and the engine runs when what remains is width free (every power
of n of 04 §4.3 that still occurs is n⁰); otherwise it says which power is not.

Centring (04 §4.2): f̃_t = f_t − f_0 is evaluated as avg(o_t − o_0), one more Nonlin and Avg per
point, so its standard error is the replicas' spread of the difference itself (f_0 and f_t are
estimated on the same particles, and their errors are correlated).

Slow by design (the copy averages of the matrix updates are O(M²/R) per use and the program
grows as O(T²·B) under a memoryful Q): it is the definition the fast engine ``mu`` is tested
against.  Where the time goes (bench/bench_mu_reference.py, mlp2 μP Adam): at M ≤ 4096 mostly
sympy — unrolling, lowering, compiling the formulas and the fused pair groups — not numpy; the
pair averages take over as M grows (their share rose from 7% at M = 1024 to 33% at M = 4096,
T = B = 4).  The program is evaluated scheduled by depth (:func:`by_depth`) so that the update
pair sums of all points of a step share one pass.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import sympy

from compiler.abcd.conditions import fmt
from compiler.ir import Avg, Instruction, Nonlin, Program, reads
from compiler.kets.lowering import lower
from compiler.passes.unroll import Unrolled, unroll
from compiler.symbols import sym
from compiler.train.setup import Training
from compiler.train.widths import training_width_exponents
from runtime.limits.engines import evaluate
from runtime.limits.result import LimitOptions
from runtime.limits.trajectory import (
    LimitPlan,
    LimitTrajectory,
    TrajectoryOptions,
    TrajectoryProgress,
    register,
)

DEFAULT_PARTICLES = 4096
"""M when the caller gives none: the reference path is O(M²) per matrix use and step."""

BY_DEPTH = True
"""Evaluate the program scheduled by depth (:func:`by_depth`); bench/bench_mu_reference.py
switches it off to measure the program order."""

Names = list[list[list[str]]]
"""[t][point][j]: the scalar whose limit is f_t(ξ^i)_j."""

CENTRED = "_minus_f0"
"""Suffix of the Avg of o_t − o_0 that a centred f̃_t reads."""


class MuReferenceEngine:
    """The μ-limit by the generic ket lowering of the unrolled μP program (module doc)."""

    name = "mu-reference"
    regime = "feature_learning"

    def applies(self, plan: LimitPlan) -> str | None:
        if plan.regime != self.regime:
            return f"it computes the feature-learning limit, not the {plan.regime} one"
        return _powers_left(limit_training(plan))

    def run(self, plan: LimitPlan, x: np.ndarray, y: np.ndarray, options: TrajectoryOptions,
            progress: TrajectoryProgress | None) -> LimitTrajectory:
        training = limit_training(plan)
        unrolled = unroll(training)
        program, names = _with_centring(unrolled)
        kets = lower(by_depth(program) if BY_DEPTH else program)
        opts = LimitOptions(particles=options.particles or DEFAULT_PARTICLES,
                            replicas=options.replicas, seed=options.seed,
                            memory_budget=options.memory_budget)
        first = 1 if training.center else 0  # f̃_0 = 0 exactly
        wanted = [n for row in names[first:] for point in row for n in point]
        res = evaluate(kets, unrolled.bind(x, y), "mc", opts, progress=progress,
                       scalars_wanted=wanted)
        f = np.zeros((len(names), len(names[0]), len(names[0][0])))
        se = np.zeros_like(f)
        for t in range(first, len(names)):
            for i, point in enumerate(names[t]):
                f[t, i] = [res.scalars[n][0] for n in point]
                se[t, i] = [res.stderr[n][0] for n in point]
        notes = [*res.notes, *(f"the update of {g} is dropped: it vanishes in this limit "
                               "(05 §5.5)" for g in plan.dropped)]
        return LimitTrajectory(plan, self.name, "reference", f, se, res.particles,
                               options.seed, tuple(notes))


def limit_training(plan: LimitPlan) -> Training:
    """The plan's training with the dropped groups frozen (c = ∞: their updates vanish in the
    limit, 05 §5.5), and the width exponents of that table."""
    tr = plan.training
    drop = set(plan.dropped)
    if not drop:
        return tr
    tensors = tuple(replace(t, exponents=replace(t.exponents, c=sympy.oo))
                    if t.name in drop else t for t in tr.tensors)
    widths = training_width_exponents(tr.program, tr.param)
    frozen = tuple(replace(w, update=sympy.S.Zero, q_input=sympy.S.Zero)
                   if w.name in drop else w for w in widths.params)
    return replace(tr, tensors=tensors, widths=replace(widths, params=frozen))


def by_depth(program: Program) -> Program:
    """The same program, instructions stably sorted by dependency depth (1 + the deepest
    instruction they read).  Any topological order has the same ket law (hats of an orientation
    are jointly Gaussian whatever order they are drawn in; a dot term needs only the hats its
    argument depends on, which precede it in every such order).  The unrolled program runs the
    points one after another; by depth, the update OuterNonlins of every point at one step read
    only what is already computed, so the evaluator fuses them into one pass over the particle
    pairs, Q_r(G_0, …, G_r) computed once for all points (:mod:`runtime.limits.fusion`)."""
    depth: dict[str, int] = {}
    keyed = []
    for k, ins in enumerate(program.body):
        depth[ins.out] = 1 + max((depth.get(v, 0) for v in reads(ins)), default=0)
        keyed.append((depth[ins.out], k))
    return program.replace(body=tuple(program.body[k] for _, k in sorted(keyed)))


def _powers_left(training: Training) -> str | None:
    """None when every power of n the (possibly frozen) training program holds is n⁰."""
    if training.symbols:
        return "the exponents are symbolic; give numbers"
    left = [f"{where} n^{fmt(k)}" for where, k in training.widths.items() if k != 0]
    if not left:
        return None
    return ("its training program is not width free after dropping the vanishing updates "
            f"({'; '.join(left[:3])}); the reference path evaluates width-free programs only")


def _with_centring(u: Unrolled) -> tuple[Program, Names]:
    """The program whose scalars are f_t (``names`` [t][point][j]): the unrolled one, and when
    centring, F̃_t = avg(o_t − o_0) appended per t ≥ 1 (module doc)."""
    names = [[list(point) for point in row] for row in u.f_names]
    if not u.training.center:
        return u.program, names
    avg_arg = {ins.out: ins.arg for ins in u.program.body if isinstance(ins, Avg)}
    extra: list[Instruction] = []
    for row in names[1:]:
        for point, first in zip(row, names[0], strict=True):
            for j, (f_t, f_0) in enumerate(zip(point, first, strict=True)):
                diff = f"{f_t}{CENTRED}_o"
                extra += [Nonlin(diff, sym(avg_arg[f_t]) - sym(avg_arg[f_0])),
                          Avg(f"{f_t}{CENTRED}", diff)]
                point[j] = f"{f_t}{CENTRED}"
    return u.program.replace(body=(*u.program.body, *extra)), names


register(MuReferenceEngine())
