"""The fast μ-limit engine ("mu"): feature-learning training limits by particles (05 §5.3–5.5).

The limit of a width-free training program (μP: every power of n in 04 §4.3 is n⁰) is its ket
program (05 §5.4): this engine interprets the per-step backprop programs on M particles
(:mod:`runtime.limits.mu_fast_run`) with each matrix an operator W̊_t = σ·W̊_0 + ΔW_t
(:mod:`runtime.limits.mu_fast_ops`): W̊_0 by hat + dot terms on the span it has met, ΔW_t low rank
for a linear Q and as M×M pair arrays otherwise. A table with a negative power drops that term
(05 §5.5: the plan's non-contributing updates, a vanishing initial term); any other power is
refused. Standard errors come from R independent replicas of M/R particles each (the replica
means are iid, so s.e. = std/√R); the per-replica M sets a bias that the replicas do not see: a
replica is much like a network of width M (its W̊_0 bases fill up to (T+1)·points of the M
directions, the pair arrays and the Stein estimates of the dot coefficients average over M).
Measured on the paper's data (mlp2, μP, Adam, 104 points, T = 10), before W̊_0's Gaussians were
conditioned (mu_fast_ops): replicas of 128 and 512 particles differ from replicas of 4096 by mean
z² 5.0 and 2.1 (1 if unbiased); with 20 points, 256 and 512 by 3.7 and 3.0, 1024 and 2048 by 1.6.
Conditioning halves that bias (mlp2 SGD, 20 points: 512 per replica against 16384, RMS 0.0058 →
0.0027, mean z² 2.1 both times as the noise halved too). So, as the ket evaluator does for copy
averages (:mod:`runtime.limits.mcbias`, 01 §1.6), the engine reruns the replicas at M/2 and adds a
bound on the bias to the s.e. (``LimitTrajectory.bias``; pooled over steps and points,
:func:`~runtime.limits.mcbias.pooled_bias_bound`). The independent Gaussians of a replica are drawn
orthogonal (:class:`~runtime.limits.mu_fast_ops.GaussianPool`): measured on mlp2 (B = 16, T = 10, M
= 4096) this halves the standard error at the same cost (SGD 0.0145 → 0.0074, Adam 0.0135 →
0.0063), i.e. a quarter of the particles for the same error. Where a limit quantity is exactly 0
(attention scores avg(q·k) at step 0, hence Wq's gradient) orthogonal draws give that 0, as the
limit has it; iid draws would carry O(M^{-½}) noise there, which Adam with a small ε turns into
sign(noise), an O(1) update, just as a finite network of width n does until n ≫ ε^{-2} (measured
for attention in tests/test_mu_fast_convergence.py).
The initial vector parameters (|u_j⟩, |v⟩: the first draws of the pool) are randomised QMC points
(scrambled Sobol', one independent scramble per replica, so the replica means stay iid and
s.e. = std/√R stays valid), then orthogonalised as above. With one hidden layer every particle
is an independent neuron and f_t a smooth-but-for-kinks average over (u, v), which QMC
stratifies: measured on mlp1 (μP, B = 16, T = 10, 16×4096 particles) the s.e. is 0.54 of that
of orthogonal draws alone at the same cost (SGD 0.00088 → 0.00048; at 8×16384 0.00062 → 0.00027;
Adam 0.00052 → 0.00030), on mlp2 0.79 (SGD 4×4096) and 1.0 (Adam), where the W̊_0 Gaussians,
not the initial vectors, carry most of the noise; so the QMC set also covers every Gaussian of
step 0 (:func:`~runtime.limits.mu_fast_run.qmc_dims`).
Control variates (:mod:`runtime.limits.mu_control`): each replica's f_0..f_K regress out most of
its later noise, their mean coming from 4R further replicas of K = 2 steps (about 0.13 of a
full replica's time each at T = 10). Measured on mlp2 SGD (32 × 4096 particles, no bias check):
s.e. 0.00047 → 0.00030 for 1.5–1.6× the time.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from compiler.abcd.conditions import Exp, fmt
from compiler.errors import UsageError
from compiler.passes.backprop import Backprop
from compiler.train.setup import TensorTraining, Training
from compiler.train.widths import width_powers
from runtime import memory
from runtime.limits import mu_control
from runtime.limits.blas import blas_threads
from runtime.limits.mcbias import pooled_bias_bound, widen
from runtime.limits.mu_fast_ops import QMC_MAX_DIMS, PairDelta, pool_size
from runtime.limits.mu_fast_run import GroupLimit, ReplicaRun, qmc_dims
from runtime.limits.trajectory import (
    LimitPlan,
    LimitTrajectory,
    TrajectoryOptions,
    TrajectoryProgress,
    register,
)
from runtime.trainer import backprops

DEFAULT_PARTICLES = 4096
DEFAULT_REPLICAS = 8
ORTHOGONAL = True
"""Orthogonal draws of the independent Gaussians (mu_fast_ops.GaussianPool)."""
QMC = True
"""Randomised QMC (scrambled Sobol') for the initial vector parameters (GaussianPool)."""
CONTROL = True
"""Control variates from the replicas' early steps (runtime/limits/mu_control.py)."""
CONTROL_REPLICAS = 4
"""Replicas of K steps per main replica that estimate the controls' mean."""
MIN_HALF = 32
"""The pool-size bias check reruns with m/2 particles per replica when m/2 is at least this."""


def _zero_or_dropped(e: Exp | None, what: str, may_vanish: bool = True) -> bool:
    """True for n⁰, False for a negative power (the term vanishes); else refuse."""
    if e is None or e == 0:
        return True
    if e.is_number and bool(e < 0) and may_vanish:
        return False
    raise UsageError(f"{what} carries n^{fmt(e)} in the training program; the μ-limit engine "
                     "needs n⁰ (or a vanishing negative power) there (04 §4.3, 05 §5.5)")


def group_limits(plan: LimitPlan) -> tuple[GroupLimit, ...]:
    """Each group's limit numbers (σ, η·lr, η·λ, linear Q); a UsageError for a power of n that
    neither is n⁰ nor vanishes."""
    tr = plan.training
    _zero_or_dropped(tr.widths.output, "the output f", may_vanish=False)
    return tuple(_group(t, t.name in plan.contributing) for t in tr.tensors)


def _group(t: TensorTraining, contributing: bool) -> GroupLimit:
    w = t.widths
    has_init = t.init is None and not t.zero_init and _zero_or_dropped(
        w.initial, f"{t.kind} {t.name}'s initial term")
    eta = float(t.optimizer.lr * t.lr)
    rate = 0.0
    if contributing and not t.frozen:
        if not _zero_or_dropped(w.update, f"{t.kind} {t.name}'s update"):
            contributing = False
        elif w.q_input != 0 and not t.optimizer.classes.scale_invariant:
            raise UsageError(f"the input of Q for {t.name} carries n^{fmt(w.q_input)}; the "
                             "μ-limit engine needs n⁰ unless Q is scale invariant (04 §4.3)")
        else:
            rate = eta
    decay = eta * float(t.optimizer.weight_decay)
    linear = t.optimizer.classes.linear
    return GroupLimit(t, float(t.sigma) if has_init else 0.0, rate, decay, linear)


def forward_split(training: Training, bps: tuple[Backprop, ...]) -> int:
    """Length of the forward prefix shared by every backprop program (the architecture's own
    instructions); the rest is the backward half, run on the batch's columns."""
    forward = {ins.out for ins in training.program.body}
    body = bps[0].program.body
    k = 0
    while k < len(body) and body[k].out in forward:
        k += 1
    if any(bp.program.body[:k] != body[:k] for bp in bps):
        raise UsageError(f"the backprop programs of {training.program.name} do not share their "
                         "forward pass; the μ-limit engine cannot interpret them")
    return k


def estimate_bytes(training: Training, groups: tuple[GroupLimit, ...], m: int, points: int
                   ) -> int:
    """One replica: pair arrays, the W̊_0 bases and low-rank columns, every ket of a step, and
    the Gaussian pool (its Sobol' draws and orthogonalised vectors)."""
    steps, batch = training.steps, training.schedule.batch_size
    total = 0
    for g in groups:
        t = g.tensor
        if t.kind != "matrix":
            continue
        if g.trained and not g.linear:
            total += len(t.entries) * PairDelta.bytes_per_entry(m, t.optimizer)
        # W̊_0 bases: both sides, (T+1)·points kets per use at most, a Gaussian per direction
        total += len(t.entries) * 8 * m * 4 * (steps + 1) * points
        if g.trained and g.linear:
            total += len(t.entries) * 8 * m * 2 * steps * batch * training.outputs
    bps = backprops(training.program)
    kets = sum(len(bp.program.body) for bp in bps)
    draws = qmc_dims(training, bps, groups, forward_split(training, bps))
    pool = 8 * m * (pool_size(m, draws) + min(draws, QMC_MAX_DIMS))
    return total + pool + 8 * m * points * kets * 2


class MuFastEngine:
    """The "mu" engine of the feature-learning regime (see the module docstring)."""

    name = "mu"
    regime = "feature_learning"

    def applies(self, plan: LimitPlan) -> str | None:
        if plan.regime != self.regime:
            return f"its regime is {plan.regime}, not feature learning"
        if plan.training.symbols:
            return "the exponents are symbolic; give numbers"
        try:
            group_limits(plan)
        except UsageError as e:
            return str(e)
        for bp in backprops(plan.training.program):
            powers = {k for ks in width_powers(bp.program).values() for k in ks} - {0}
            if powers:
                return f"its backprop program carries powers of n ({sorted(map(str, powers))})"
        return None

    def run(self, plan: LimitPlan, x: np.ndarray, y: np.ndarray, options: TrajectoryOptions,
            progress: TrajectoryProgress | None) -> LimitTrajectory:
        tr = plan.training
        groups = group_limits(plan)
        total, reps = _sizes(options, (tr.steps + 1) * tr.schedule.n_points)
        m = total // reps
        s = tr.schedule
        if x.shape[0] != s.n_points or y.shape != (s.n_train, tr.outputs):
            raise UsageError(f"data of shape {x.shape} / targets {y.shape} do not match the "
                             f"training ({s.n_points} points, {s.n_train} × {tr.outputs} targets)")
        _check_memory(estimate_bytes(tr, groups, m, s.n_points), options)
        bps = backprops(tr.program)
        split = forward_split(tr, bps)
        check = options.bias_check and reps > 1 and m >= 2 * MIN_HALF
        controlled = CONTROL and mu_control.applies(tr.steps, reps)
        per_run = reps * (tr.steps + 1) + controlled * CONTROL_REPLICAS * reps * (
            mu_control.CONTROL_STEPS + 1)
        replica = _Replicas(tr, bps, groups, split, x, y, options.seed, progress,
                            (1 + check) * per_run)
        f, extra = _controlled_run(replica, m, reps, controlled, "")
        se = np.sqrt(f.var(axis=0, ddof=1) / reps + extra) if reps > 1 else \
            np.full(f.shape[1:], np.nan)
        notes = [f"{reps} replicas of {m} particles"]
        if controlled:
            notes.append(f"control variates: f_0..f_{mu_control.CONTROL_STEPS} of "
                         f"{CONTROL_REPLICAS * reps} further replicas of "
                         f"{mu_control.CONTROL_STEPS} steps")
        bias = None
        if check:
            bias, note = _bias_check(replica, f, extra, m, reps, controlled)
            se = widen(se, bias)
            notes.append(note)
        if plan.dropped:
            notes.append(f"updates of {', '.join(plan.dropped)} vanish in the limit (05 §5.5)")
        return LimitTrajectory(plan, self.name, "mc", f.mean(axis=0), se, particles=m * reps,
                               seed=options.seed, notes=tuple(notes), bias=bias)


def _bias_check(replica: _Replicas, f: np.ndarray, extra: np.ndarray, m: int, reps: int,
                controlled: bool) -> tuple[np.ndarray, str]:
    """The pool-size bias bound (T+1, P, k) from a rerun at m/2 per replica, and its note."""
    half, extra_half = _controlled_run(replica, m // 2, reps, controlled, "half pool ")
    pooled = pooled_bias_bound(f.reshape(reps, -1), half.reshape(reps, -1), reps,
                               (extra + extra_half).reshape(-1))
    bias = pooled.bound.reshape(f.shape[1:])
    rerun = f"a rerun with {m // 2} particles per replica"
    if bias.any():
        return bias, (f"standard errors include a bound on the pool-size bias ({rerun}: RMS "
                      f"bound {_rms(bias):.2g}, 01 §1.6)")
    if math.isnan(pooled.resolution):
        return bias, f"no pool-size bias seen ({rerun}; 2 replicas cannot size its noise)"
    return bias, (f"no pool-size bias detected ({rerun}; it resolves an RMS bias of "
                  f"{pooled.resolution:.2g}: more replicas sharpen it, more particles per "
                  "replica shrink the bias itself)")


def _controlled_run(replica: _Replicas, m: int, reps: int, controlled: bool, label: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The replicas' trajectories (R, T+1, P, k), adjusted by the control variates when
    ``controlled`` (runtime/limits/mu_control.py), and the variance their mean has beyond the
    replicas' spread (0 without controls)."""
    f = replica.run(m, reps, label)
    if not controlled:
        return f, np.zeros(f.shape[1:])
    early = replica.run(m, CONTROL_REPLICAS * reps, f"{label}control ",
                        steps=mu_control.CONTROL_STEPS)
    c = mu_control.control(f, early)
    return c.values, c.extra_var


class _Replicas:
    """R independent replicas of m particles each (seeds [seed, r]), as (R, T+1, points, k)."""

    def __init__(self, tr: Training, bps: tuple[Backprop, ...], groups: tuple[GroupLimit, ...],
                 split: int, x: np.ndarray, y: np.ndarray, seed: int,
                 progress: TrajectoryProgress | None, total: int) -> None:
        self.tr, self.bps, self.groups, self.split = tr, bps, groups, split
        self.x, self.y, self.seed, self.progress = x, y, seed, progress
        self.done, self.total = 0, total  # progress in replica-steps over every run

    def run(self, m: int, reps: int, label: str = "", steps: int | None = None) -> np.ndarray:
        """``steps`` < T: the K-step control replicas, on streams of their own ([seed, r, 1])."""
        fs = []
        for r in range(reps):
            rng = np.random.default_rng([self.seed, r] if steps is None else [self.seed, r, 1])
            tick = None if self.progress is None else self._ticker(f"{label}replica {r + 1}/{reps}")
            with blas_threads(1):  # small products: threads cost more than they give
                fs.append(ReplicaRun(self.tr, self.bps, self.groups, m, self.split, rng,
                                     ORTHOGONAL, QMC).run(self.x, self.y, tick, steps=steps))
        return np.stack(fs)

    def _ticker(self, label: str) -> Callable[[int], None]:
        def tick(t: int) -> None:
            self.done += 1
            assert self.progress is not None
            self.progress(float(self.done), float(self.total), f"{label} step {t}")
        return tick


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a))))


def _sizes(options: TrajectoryOptions, kets: int) -> tuple[int, int]:
    """(M, R). The default R is 8, fewer when a replica would have under 4 particles per ket a
    W̊_0 side can meet ((T+1)·points): the bases span up to that many directions of the M
    available, and the measured bias grows as they fill them (mlp2 SGD, B = 16, T = 10, 220
    kets: 512 particles per replica against 2048 gave RMS z 1.42 over 200 entries)."""
    total = options.particles or DEFAULT_PARTICLES
    reps = options.replicas or max(2, min(DEFAULT_REPLICAS, total // (4 * kets)))
    if reps < 1 or total < 2 * reps:
        raise UsageError(f"--particles {total} with --replicas {reps}: need at least 2 particles "
                         "per replica and one replica")
    return total, reps


def _check_memory(need: int, options: TrajectoryOptions) -> None:
    budget = options.memory_budget
    if budget is None:
        have = memory.physical_memory()
        budget = None if have is None else have // 2
    if budget is not None and need > budget:
        raise UsageError(f"the μ-limit needs about {need / 2**20:.0f} MiB per replica, over the "
                         f"memory budget of {budget / 2**20:.0f} MiB; use fewer particles per "
                         "replica (more --replicas or fewer --particles)")


register(MuFastEngine())
