"""One interface to the infinite-width limits of *training* (spec 05 §5.1–5.5).

A training limit is a trajectory: f_t(ξ) for t = 0..T on every point (train then test, as
:mod:`runtime.trainer`), with a standard error.  Two engines compute it — the neural-tangent
engine (operator regime, 05 §5.1–5.2) and the μ-limit engine (feature learning, 05 §5.3–5.4) —
and both give one :class:`LimitTrajectory`.

:func:`plan_limit` decides *which* limit a training has, from the abcd analysis (05 §5.5): it
refuses an unstable, unfaithful or trivial table quoting the failed condition, names the regime,
and lists the parameter groups whose updates contribute (the others are dropped by the engine),
and whether f_0 is part of the limit (a Gaussian process in the operator regime without
centring).  :func:`limit_trajectory` runs the engine the regime calls for (or the one asked for).

An engine registers with :func:`register`; ``applies(plan)`` returns None or the reason it
cannot run that plan; ``run`` computes the trajectory.  ``path`` in the result says how (e.g.
"exact" kernel iteration, "mc" particles, "reference" ket program).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from compiler.abcd.conditions import fmt
from compiler.errors import UsageError

if TYPE_CHECKING:
    from compiler.abcd.verdict import Analysis
    from compiler.train.setup import Training

TrajectoryProgress = Callable[[float, float, str], None]
"""progress(done, total, label), in the engine's own unit (e.g. steps)."""

REGIMES = ("operator", "feature_learning")


@dataclass(frozen=True)
class TrajectoryOptions:
    """``particles`` M (Monte Carlo engines; None: the engine's default), ``replicas`` R for the
    standard errors, ``seed`` of the particles and of f_0's draw, ``method``: the engine's path
    ("auto", "exact" or "mc"), ``memory_budget`` in bytes (None: half of physical memory),
    ``bias_check``: let a particle engine bound its pool-size bias by a rerun at half the pool
    (01 §1.6; the bound joins the s.e.)."""

    particles: int | None = None
    replicas: int | None = None
    seed: int = 0
    method: str = "auto"
    memory_budget: int | None = None
    bias_check: bool = True


@dataclass(frozen=True)
class LimitPlan:
    """Which limit ``training`` has (05 §5.5): ``regime`` (operator / feature_learning),
    ``contributing`` the groups whose updates are part of the limit, ``f0`` whether the initial
    output is (a GP in the operator regime; centring removes it), and the analysis behind it."""

    training: Training
    analysis: Analysis
    regime: str
    contributing: frozenset[str]
    f0: bool

    @property
    def f0_random(self) -> bool:
        """Whether f_0 is one draw of a Gaussian process (05 §5.1): only in the operator regime,
        only where f_0 survives the limit, and not when the run is centred unless the readout
        decays (then f̃_t keeps (ρ^t − 1)·f_0, 05 §5.6, :mod:`runtime.limits.nt_decay`)."""
        from runtime.limits.nt_decay import random_f0

        return self.regime == "operator" and random_f0(self.f0, self.training)

    @property
    def dropped(self) -> tuple[str, ...]:
        """Trained groups whose updates vanish in the limit (05 §5.5), in program order."""
        return tuple(t.name for t in self.training.tensors
                     if t.name not in self.contributing and not t.frozen)


@dataclass(frozen=True)
class LimitTrajectory:
    """f_t of the limit: ``f`` and ``stderr`` of shape (T+1, points, k) (stderr 0 where exact,
    NaN where unknown); ``engine`` ("nt", "mu"), ``path`` how it ran, ``notes`` for the user.
    ``bias`` (None: none) is a bound on a systematic error that ``stderr`` already includes in
    quadrature (e.g. the pool-size bias of a particle engine); the rest of ``stderr`` is noise."""

    plan: LimitPlan
    engine: str
    path: str
    f: np.ndarray
    stderr: np.ndarray
    particles: int | None = None
    seed: int = 0
    notes: tuple[str, ...] = field(default=())
    bias: np.ndarray | None = None

    @property
    def noise_variance(self) -> np.ndarray:
        """stderr² without the bias bound: the Monte Carlo variance alone."""
        var = np.square(self.stderr)
        return var if self.bias is None else np.maximum(var - np.square(self.bias), 0.0)

    @property
    def training(self) -> Training:
        return self.plan.training

    @property
    def f0_random(self) -> bool:
        return self.plan.f0_random

    def to_json(self) -> dict[str, Any]:
        """Points exactly as ``nexort train``; ``f``/``stderr`` as [t][point] (a trailing output
        axis when k > 1); an unknown standard error is null."""
        t = self.training
        f, se = (self.f, self.stderr) if t.outputs > 1 else (self.f[..., 0], self.stderr[..., 0])
        return {"points": list(t.schedule.points()), "f": f.tolist(),
                "stderr": _nulls(se.tolist()), "engine": self.engine, "method": self.path,
                "regime": self.plan.regime, "dropped": list(self.plan.dropped),
                "f0_random": self.f0_random, "particles": self.particles,
                "seed": self.seed, "steps": t.steps, "param": t.param.name,
                "e_out": fmt(t.e_out), "signal": t.signal.name, "center": t.center,
                "batch_size": t.schedule.batch_size, "outputs": list(t.program.outputs),
                "optimizers": {p.name: p.optimizer.text or p.optimizer.name for p in t.tensors},
                "notes": list(self.notes)}


def _nulls(x: Any) -> Any:
    if isinstance(x, list):
        return [_nulls(v) for v in x]
    return None if isinstance(x, float) and math.isnan(x) else x


class TrajectoryEngine(Protocol):
    """``name`` selects it ("nt", "mu"); ``regime`` is the one it computes."""

    @property
    def name(self) -> str: ...

    @property
    def regime(self) -> str: ...

    def applies(self, plan: LimitPlan) -> str | None:
        """None if it can run ``plan``, else why not."""
        ...

    def run(self, plan: LimitPlan, x: np.ndarray, y: np.ndarray, options: TrajectoryOptions,
            progress: TrajectoryProgress | None) -> LimitTrajectory: ...


TRAJECTORY_ENGINES: dict[str, TrajectoryEngine] = {}


def register(engine: TrajectoryEngine) -> None:
    if engine.name in TRAJECTORY_ENGINES:
        raise ValueError(f"a training-limit engine named {engine.name!r} is already registered")
    TRAJECTORY_ENGINES[engine.name] = engine


def plan_limit(training: Training) -> LimitPlan:
    """The limit ``training`` has, from its abcd analysis; a UsageError quoting the failed
    condition for an unstable, unfaithful or trivial table (05 §5.5)."""
    from compiler.abcd import analyse

    opts = {t.optimizer for t in training.tensors}
    analysis = analyse(training.program, training.param, next(iter(opts)))
    for name in ("stable", "faithful", "nontrivial"):
        verdict = analysis[name]
        if verdict.holds is not True:
            why = "; ".join(c.explain(analysis.symbols) for c in verdict.failing()[:3])
            state = "is not" if verdict.holds is False else "is not decided to be"
            raise UsageError(f"parametrization {training.param.name} {state} {name} for arch "
                             f"{training.program.name} under {_opt_name(training)}, so it has "
                             f"no infinite-width limit to compute (05 §5.5): {why or 'see abcd'}")
    regime = analysis.regime
    if regime not in REGIMES:
        raise UsageError(f"parametrization {training.param.name}: the regime is not decided "
                         f"(r = {fmt(analysis.r)}); give numeric exponents")
    contributing = frozenset(c.name for c in analysis.contributions
                             if c.name != "f_0" and c.holds is True)
    f0 = any(c.name == "f_0" and c.holds is True for c in analysis.contributions)
    return LimitPlan(training, analysis, regime, contributing, f0)


def _opt_name(training: Training) -> str:
    o = training.tensors[0].optimizer if training.tensors else None
    return "no optimizer" if o is None else (o.text or o.name)


def limit_trajectory(training: Training, x: np.ndarray, y: np.ndarray,
                     options: TrajectoryOptions = TrajectoryOptions(), engine: str = "auto",
                     progress: TrajectoryProgress | None = None) -> LimitTrajectory:
    """The limit of ``training`` on the points ``x`` (train then test, (points, d)) with targets
    ``y`` (B_train, k): the engine of the plan's regime, or ``engine`` by name."""
    _load_engines()
    plan = plan_limit(training)
    if engine == "auto":
        chosen = [e for e in TRAJECTORY_ENGINES.values() if e.regime == plan.regime]
        if not chosen:
            raise UsageError(f"the {plan.regime.replace('_', ' ')} limit of {training.param.name}"
                             " has no engine yet")
        eng = chosen[0]
    elif engine in TRAJECTORY_ENGINES:
        eng = TRAJECTORY_ENGINES[engine]
    else:
        raise UsageError(f"no training-limit engine named {engine!r} (have "
                         f"{', '.join(TRAJECTORY_ENGINES) or 'none'})")
    why = eng.applies(plan)
    if why is not None:
        raise UsageError(f"the {eng.name} limit engine cannot run {training.program.name} under "
                         f"{training.param.name}: {why}")
    return eng.run(plan, x, y, options, progress)


ENGINE_MODULES: tuple[str, ...] = ("runtime.limits.nt", "runtime.limits.mu_fast",
                                  "runtime.limits.mu_reference")
"""Modules that register a training-limit engine on import (the NT engine, the μ engines)."""


def _load_engines() -> None:
    import importlib

    for module in ENGINE_MODULES:
        importlib.import_module(module)
