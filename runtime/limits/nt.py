"""The neural-tangent training-limit engine "nt" (spec 05 §5.1, §5.2, §5.5, §5.6).

In the operator regime the features do not move, and the limit of training is

    f_{t+1} = f_t − η K_Q(χ_t),
    K_Q(χ)(ξ) = Σ_W E[G_W(ξ) Q_W(Σ_i χ_i G_W(ξ^i))] + Σ_v E[Z^{dv(ξ)} Q_v(…)]

over the kets of the total program at initialisation (05 §5.2), with only the parameter groups the
abcd analysis says contribute (05 §5.5: the plan's ``contributing``).  Two paths:

* ``exact`` (linear Q: SGD, momentum): kernel iteration with the exact NTK blocks
  (:mod:`runtime.limits.nt_exact`);
* ``mc`` (any entrywise Q, memoryful ones with per-sample state, normalize/clip with the RMS over
  the samples, 05 §5.6): Monte Carlo over joint samples (:mod:`.nt_samples`, :mod:`.nt_run`).

``method="auto"`` takes the exact path where it applies.  Without centring, f_0 ~ GP(0, NNGP) is
part of the limit when the output multiplier is n^{½} (NTP): it is drawn with the seed, the same
draw on both paths, and the notes say so.

Powers of n (04 §4.3, :mod:`runtime.trainer`): the change of f from a group's update is
η·lr·n^{p}·E[G·Q(n^{q}·Σ χ G)] with p = 2 − e_out − C for a matrix (its n² entries times ∂F/∂W =
dy xᵀ/n²·n) and 1 − e_out − C for a vector, q = D − e_out.  A contributing group must have p = q = 0
(a linear Q only needs p + q = 0, since n^{q} folds into the rate); anything else, a scalar
parameter, σ ≠ 1 or a non-unit initial scale is refused with the reason (see
:func:`NTEngine.applies`).  Weight decay (05 §5.6): of the readout alone on both paths
(:mod:`.nt_decay`), of any other group by Monte Carlo over the kets of every time
(:mod:`.nt_timed`).  k > 1 outputs run as one output over C·k (point, output) copies
(:mod:`.nt_outputs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy

from compiler.errors import UsageError
from compiler.kets.lowering import KetProgram, lower
from compiler.passes.total import Total
from compiler.train.setup import TensorTraining, Training
from runtime.limits import nt_decay, nt_exact, nt_outputs, nt_run, nt_samples, nt_timed
from runtime.limits.mccost import budget
from runtime.limits.result import MIN_PER_REPLICA, LimitOptions, NotApplicableError
from runtime.limits.trajectory import (
    LimitPlan,
    LimitTrajectory,
    TrajectoryOptions,
    TrajectoryProgress,
    register,
)

DEFAULT_PARTICLES = 1 << 16
METHODS = ("auto", "exact", "mc")


def powers(t: TensorTraining, e_out: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
    """(p, q): the power of n of the group's function update, and of the input of Q."""
    e = t.exponents
    p = (2 if t.kind == "matrix" else 1) - e_out - e.C
    return sympy.simplify(p), sympy.simplify(e.D - e_out)


def _group_problem(t: TensorTraining, plan: LimitPlan) -> str | None:
    tr = plan.training
    if t.kind == "scalar":
        return f"scalar parameter {t.name} (the NT limit needs none, 05 §5.2)"
    if t.sigma != 1:
        return f"{t.name} has σ = {t.sigma}; the engine needs σ = 1"
    if t.widths.initial is not None and t.widths.initial != 0:
        return (f"the initial value of {t.name} carries n^{t.widths.initial}; the engine needs "
                "the program's own initialisation (n^0)")
    if t.name in plan.contributing:
        p, q = powers(t, tr.e_out)
        linear = nt_exact.is_linear(t.optimizer)
        if (p + q != 0) if linear else (p != 0 or q != 0):
            return (f"the update of {t.name} enters f with n^{p} and Q's input with n^{q}; a "
                    "contributing term needs both n^0 (05 §5.5)")
    return None


class NTEngine:
    """The neural-tangent limit of any architecture in the operator regime (05 §5.2)."""

    name = "nt"
    regime = "operator"

    def applies(self, plan: LimitPlan) -> str | None:
        tr = plan.training
        if plan.regime != self.regime:
            return (f"{tr.param.name} is in the {plan.regime.replace('_', ' ')} regime; the NT "
                    "engine computes the operator regime (features frozen, 05 §5.1); this one "
                    "needs the μ-limit (05 §5.3–5.4)")
        if tr.symbols:
            return "the exponents are symbolic; give numbers (e.g. --param up:1/4)"
        if not plan.contributing:
            return "no parameter group contributes to the limit"
        decay = nt_timed.problem(tr)
        if decay is not None:
            return decay
        for t in tr.tensors:
            why = _group_problem(t, plan)
            if why is not None:
                return why
        return None

    def run(self, plan: LimitPlan, x: np.ndarray, y: np.ndarray, options: TrajectoryOptions,
            progress: TrajectoryProgress | None) -> LimitTrajectory:
        return run(plan, x, y, options, progress)


def _contributing(plan: LimitPlan) -> list[TensorTraining]:
    return [t for t in plan.training.tensors if t.name in plan.contributing and not t.frozen]


def _rates(groups: list[TensorTraining]) -> dict[str, float]:
    return {t.name: float(t.optimizer.lr * t.lr) for t in groups}


def choose_path(plan: LimitPlan, method: str) -> str:
    """"exact" or "mc" for ``method`` (auto: exact when every contributing Q is linear)."""
    if method not in METHODS:
        raise UsageError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    linear = all(nt_exact.is_linear(t.optimizer) for t in _contributing(plan))
    if method == "exact" and not linear:
        raise UsageError("--method exact needs a linear update function (sgd, momentum) for "
                         "every contributing group; use --method mc or auto")
    if method == "mc":
        return "mc"
    return "exact" if linear else "mc"


def run(plan: LimitPlan, x: np.ndarray, y: np.ndarray, options: TrajectoryOptions,
        progress: TrajectoryProgress | None = None, dot_terms: bool = True,
        f0: np.ndarray | None = None) -> LimitTrajectory:
    """The NT limit of ``plan`` on ``x`` (C, d) with targets ``y`` (B_train, 1); ``dot_terms``
    False drops every dot coefficient (the gradient-independence approximation, MC path only;
    for comparison, it is wrong when W and Wᵀ interact, Rem. 2.9.20).  ``f0`` (C,) conditions
    the limit on these initial outputs instead of the seed's NNGP draw (e.g. a finite-width
    network's own f_0, to compare seed by seed); only where f_0 survives the limit."""
    tr = plan.training
    _check_data(tr, x, y)
    path = choose_path(plan, options.method)
    if not dot_terms:
        path = "mc"
    groups = _contributing(plan)
    view = _view(tr, x, y)
    if nt_decay.problem(tr) is not None:  # decay beyond the readout: kets at every time
        return _run_timed(plan, x, view, groups, options, progress, dot_terms, f0)
    start = _start(plan, x, options.seed, f0)
    notes = _notes(plan, start, options.seed)
    if path == "exact":
        try:
            return _run_exact(plan, view, start, options, progress, notes)
        except NotApplicableError as e:
            if options.method == "exact":
                raise
            notes.append(f"exact kernels unavailable ({e.message}); Monte Carlo instead")
    return _run_mc(plan, view, groups, start, options, progress, notes, dot_terms)


@dataclass(frozen=True)
class _View:
    """What the paths compute on: ``source`` (the training itself for k = 1, else its
    one-output selector form, :mod:`.nt_outputs`), its C·k ``points`` and the error signal."""

    source: Training
    points: np.ndarray
    chi: nt_run.ChiFn
    outputs: int

    def shaped(self, f: np.ndarray) -> np.ndarray:
        """(…, C·k) → (…, C, k)."""
        return f.reshape(*f.shape[:-1], -1, self.outputs)


def _view(tr: Training, x: np.ndarray, y: np.ndarray) -> _View:
    k = tr.outputs
    if k == 1:
        return _View(tr, x, nt_run.chi_of_points(tr, y), 1)
    return _View(nt_outputs.flat_training(tr), nt_outputs.flat_points(x, k),
                 nt_outputs.chi_function(tr, y), k)


@dataclass(frozen=True)
class _Start:
    """How f_0 enters: ``random`` drawn with the seed, or ``given``; ``decay`` the readout's
    weight decay (05 §5.6, :mod:`.nt_decay`)."""

    random: bool
    given: np.ndarray | None
    decay: nt_decay.Decay


def _start(plan: LimitPlan, x: np.ndarray, seed: int, f0: np.ndarray | None) -> _Start:
    tr = plan.training
    f0 = _given(plan, x, f0)
    random = f0 is None and nt_decay.random_f0(plan.f0, tr)
    return _Start(random, f0, nt_decay.decay_of(tr))


def _given(plan: LimitPlan, x: np.ndarray, f0: np.ndarray | None) -> np.ndarray | None:
    """A given f_0 checked and flattened like the points (C·k,)."""
    tr = plan.training
    if f0 is not None:
        if not plan.f0:
            raise UsageError("f_0 vanishes in this limit: there is no initial output to give")
        f0 = np.asarray(f0, dtype=np.float64)
        want = (x.shape[0],) if tr.outputs == 1 else (x.shape[0], tr.outputs)
        if f0.shape != want:
            raise UsageError(f"f0 of shape {f0.shape}: need one value per point and output "
                             f"{want}")
        f0 = f0.reshape(-1)
    return f0


def _check_data(tr: Training, x: np.ndarray, y: np.ndarray) -> None:
    s = tr.schedule
    if x.ndim != 2 or x.shape[0] != s.n_points or y.shape != (s.n_train, tr.outputs):
        raise UsageError(f"data of shape {x.shape} / targets {y.shape} do not match the training "
                         f"({s.n_points} points, {s.n_train} × {tr.outputs} targets)")


def _notes(plan: LimitPlan, start: _Start, seed: int) -> list[str]:
    notes = []
    if start.random and plan.training.center:
        notes.append(f"f_0 is drawn from the NNGP with seed {seed}: the readout's weight decay "
                     "leaves (ρ^t − 1)·f_0 in the centred output, so the limit is random "
                     "(05 §5.6)")
    elif start.random:
        notes.append(f"f_0 is drawn from the NNGP with seed {seed}: without --center the limit "
                     "is random through f_0 (05 §5.1); --center gives the deterministic limit")
    if start.given is not None:
        notes.append("conditioned on the given f_0")
    if start.decay.active:
        notes.append(f"the readout {start.decay.group} decays by ρ = {start.decay.rho:g} per "
                     "step (05 §5.6)")
    if plan.dropped:
        notes.append(f"updates of {', '.join(plan.dropped)} vanish in this limit (05 §5.5)")
    return notes


def _normal(seed: int, c: int) -> np.ndarray:
    """The standard normal vector behind f_0's draw (shared by both paths)."""
    return np.random.default_rng([seed, 0x0F0]).standard_normal(c)


def _run_exact(plan: LimitPlan, view: _View, start: _Start, options: TrajectoryOptions,
               progress: TrajectoryProgress | None, notes: list[str]) -> LimitTrajectory:
    tr = plan.training
    blocks = nt_exact.kernel_blocks(view.source, view.points)
    c = view.points.shape[0]
    f0 = np.zeros(c) if start.given is None else start.given
    if start.random:
        f0 = nt_run.sqrt_psd(blocks["nngp"]) @ _normal(options.seed, c)
    step = None if progress is None else (lambda d, n: progress(d, n, "step"))
    rates = _rates(_contributing(plan))
    f = nt_exact.iterate_exact(tr, blocks, rates, f0, view.chi, step, start.decay)
    if tr.center:  # f̃ = f − f_0 (04 §4.2); f_0 is 0 here unless decay or a given f_0
        f = f - f0
    f = view.shaped(f)
    return LimitTrajectory(plan, "nt", "exact", f, np.zeros_like(f), None, options.seed,
                           tuple(notes))


def sample_request(options: TrajectoryOptions, f0: bool, dot_terms: bool
                   ) -> nt_samples.SampleRequest:
    """M particles in R replicas (R as the landed evaluator: 16 when M ≥ 2048, else M // 128)."""
    m = options.particles or DEFAULT_PARTICLES
    r = options.replicas or (16 if m >= 2048 else max(1, m // 128))
    if m < MIN_PER_REPLICA * r:
        raise UsageError(f"{m} particles in {r} replicas: need at least {MIN_PER_REPLICA} per "
                         "replica (--particles or --replicas)")
    return nt_samples.SampleRequest(m // r, r, options.seed, dot_terms, f0,
                                    options.memory_budget)


def _run_mc(plan: LimitPlan, view: _View, groups: list[TensorTraining], start: _Start,
            options: TrajectoryOptions, progress: TrajectoryProgress | None, notes: list[str],
            dot_terms: bool) -> LimitTrajectory:
    tr = plan.training
    total = view.source.totals[0]
    req = sample_request(options, start.random, dot_terms)
    kets = _lowered(total)
    c = view.points.shape[0]
    _check_memory(plan, kets, groups, req, c, options)
    sp = None if progress is None else (lambda d, n: progress(d, n, "replicas sampled"))
    samples = nt_samples.draw(total, kets, groups, view.points, req, sp)
    if start.random:
        f0 = nt_run.f0_draw(samples, _normal(options.seed, c))
    else:
        f0 = np.zeros((req.replicas, c)) if start.given is None else np.tile(start.given,
                                                                            (req.replicas, 1))
    step = None if progress is None else (lambda d, n: progress(d, n, "step"))
    f = nt_run.iterate(tr, samples, _rates(groups), f0, view.chi, step, start.decay)
    if tr.center:  # f̃ = f − f_0 (04 §4.2)
        f = f - f0[:, None, :]
    mean, se = _summary(f)
    if not dot_terms:
        notes.append("dot terms dropped (gradient independence assumed): for comparison only")
    return LimitTrajectory(plan, "nt", "mc", view.shaped(mean), view.shaped(se), samples.total,
                           options.seed, tuple(notes))


def _summary(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The replicas' mean and its standard error (NaN with one replica)."""
    mean = f.mean(axis=0)
    reps = f.shape[0]
    se = (f.std(axis=0, ddof=1) / math.sqrt(reps) if reps > 1 else np.full_like(mean, math.nan))
    return mean, se


def _run_timed(plan: LimitPlan, x: np.ndarray, view: _View, groups: list[TensorTraining],
               options: TrajectoryOptions, progress: TrajectoryProgress | None, dot_terms: bool,
               given: np.ndarray | None) -> LimitTrajectory:
    """Weight decay beyond the readout (:mod:`.nt_timed`): the decayed program over the
    (T+1)·C·k copies (time, point, output), Monte Carlo."""
    tr = plan.training
    why = nt_timed.problem(tr)
    if why is not None:
        raise UsageError(why)
    nt_timed.check_method(options.method)
    given = _given(plan, x, given)
    c = view.points.shape[0]
    source, points = nt_timed.timed_source(tr, x)
    total = source.totals[0]
    req = sample_request(options, plan.f0, dot_terms)
    kets = _lowered(total)
    _check_memory(plan, kets, groups, req, points.shape[0], options)
    sp = None if progress is None else (lambda d, n: progress(d, n, "replicas sampled"))
    samples = nt_samples.draw(total, kets, groups, points, req, sp)
    base = np.zeros((req.replicas, tr.steps + 1, c))
    if samples.f0_cov is not None:
        z = _normal(options.seed, points.shape[0])
        base = np.stack([nt_timed.base_draw(cov, z, c, given).reshape(tr.steps + 1, c)
                         for cov in samples.f0_cov])
    step = None if progress is None else (lambda d, n: progress(d, n, "replicas run"))
    f = nt_timed.iterate_timed(tr, samples, _rates(groups), base, view.chi, step)
    if tr.center:  # f̃ = f − f_0 (04 §4.2): b_t − b_0 stays, random
        f = f - base[:, :1]
    mean, se = _summary(f)
    notes = [f"weight decay of {', '.join(nt_timed.rhos(tr))}: the kets of every time t = 0.."
             f"{tr.steps} (05 §5.6, Def. 2.10.1), Monte Carlo"]
    if plan.f0:
        notes.append("conditioned on the given f_0" if given is not None else
                     f"the decayed initial outputs f(D_t W_0) are drawn with seed {options.seed}:"
                     " the limit is random (centred too)")
    return LimitTrajectory(plan, "nt", "mc", view.shaped(mean), view.shaped(se), samples.total,
                           options.seed, tuple(notes))


@lru_cache(maxsize=8)
def _lowered(total: Total) -> KetProgram:
    """The kets of the total program (its parity analysis is the slow part; cached so that
    runs on the same training, e.g. with and without dot terms, lower it once)."""
    return lower(total.program)


def _check_memory(plan: LimitPlan, kets: KetProgram, groups: list[TensorTraining],
                  req: nt_samples.SampleRequest, points: int, options: TrajectoryOptions) -> None:
    need = nt_samples.estimate_bytes(kets, groups, req, points)
    have = budget(LimitOptions(memory_budget=options.memory_budget))
    if need > have:
        raise UsageError(f"the NT limit of {plan.training.program.name} with "
                         f"{req.particles * req.replicas} particles and {points} points needs "
                         f"about {need / 2**30:.2f} GiB, more than the budget of "
                         f"{have / 2**30:.2f} GiB; use fewer --particles or points")


register(NTEngine())
