"""One interface to every limit engine, and the choice between them (spec 01 §1.5).

A limit engine evaluates the infinite-width limit of every scalar of a program representation it
declares (``takes``): the ket program for the exact engine (quadrature,
:mod:`runtime.limits.quadrature`) and the Monte Carlo engine (:mod:`runtime.limits.montecarlo`);
a training representation for the neural-tangent and μ-limit engines to come.  Every engine gives
one :class:`~runtime.limits.result.LimitResult`, and refuses a program outside its reach with
:class:`~runtime.limits.result.NotApplicableError` saying why.

``evaluate(program, inputs, method)``: an engine by name, or ``"auto"``: the registered engines
that take the program, in registration order (exact ones first), the first that applies; each
engine passed over leaves a note in the result saying why.  ``"auto"`` weighs cost too: an
engine that can estimate its own run time (``estimate_seconds``, Monte Carlo) bounds the time
the engines before it may take, AUTO_FACTOR times its estimate and at least AUTO_FLOOR seconds
(``LimitOptions.time_limit``); an exact engine still running then gives up and the cheaper
engine runs (an exact answer is worth a few times the cost of a noisy one, not 25×).
Before that, an engine that estimates its whole cost up front (``estimate_cost``, the exact
path: :mod:`runtime.limits.exactcost`) is passed over when the estimate exceeds that bound or
the memory budget, and the note says so with the numbers; when it runs although it is not cheap
(over AUTO_FLOOR seconds), the note says it was chosen and why.  The time limit stays as the
safety net for an estimate that was too low.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar, runtime_checkable

from compiler.errors import UsageError
from runtime.limits.exactcost import ExactCost
from runtime.limits.mccost import budget
from runtime.limits.montecarlo import MonteCarloEngine
from runtime.limits.quadrature import ExactEngine
from runtime.limits.result import LimitOptions, LimitResult, NotApplicableError, Progress

P_contra = TypeVar("P_contra", contravariant=True)


class LimitEngine(Protocol[P_contra]):
    """``name``: the method that selects it; ``label``: what it is called in messages ("exact
    path"); ``takes``: the program type it evaluates.  ``evaluate`` conditions on ``scalars``
    (values of random scalar parameters), reports ``progress`` if it can, and raises
    :class:`NotApplicableError` for a program outside its reach."""

    @property
    def name(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def takes(self) -> type: ...

    def evaluate(
        self,
        program: P_contra,
        inputs: object,
        scalars: Mapping[str, float],
        options: LimitOptions,
        progress: Progress | None,
    ) -> LimitResult: ...


@runtime_checkable
class DemandEngine(Protocol):
    """An engine that can evaluate only the limits ``wanted`` (scalar or ket names) and what
    they depend on; an engine without it evaluates everything and the result is restricted."""

    def evaluate_demand(
        self,
        program: Any,
        inputs: object,
        scalars: Mapping[str, float],
        options: LimitOptions,
        progress: Progress | None,
        wanted: Collection[str],
    ) -> LimitResult: ...


@runtime_checkable
class CostedEngine(Protocol):
    """An engine that can estimate the seconds a run will take before it starts."""

    def estimate_seconds(
        self, program: Any, inputs: object, options: LimitOptions, wanted: Collection[str] | None
    ) -> float: ...


@runtime_checkable
class EstimatedEngine(Protocol):
    """An engine that can estimate its whole cost before it starts (the exact path:
    :class:`runtime.limits.exactcost.ExactCost`: seconds, bytes, and a static refusal)."""

    def estimate_cost(self, program: Any, inputs: object, options: LimitOptions) -> ExactCost: ...


AUTO_FACTOR = 4.0
AUTO_FLOOR = 5.0

ENGINES: dict[str, LimitEngine[Any]] = {}
"""Every engine by method name, in the order ``"auto"`` tries them."""


def register(engine: LimitEngine[Any]) -> None:
    """Add an engine; ``"auto"`` tries it after those registered before it."""
    if engine.name in ENGINES or engine.name == "auto":
        raise ValueError(f"a limit engine named {engine.name!r} is already registered")
    ENGINES[engine.name] = engine


register(ExactEngine())
register(MonteCarloEngine())


def methods() -> tuple[str, ...]:
    """Every value ``method`` may take."""
    return ("auto", *ENGINES)


def evaluate(
    program: object,
    inputs: object = None,
    method: str = "auto",
    options: LimitOptions | None = None,
    *,
    scalars: Mapping[str, float] | None = None,
    progress: Progress | None = None,
    scalars_wanted: Collection[str] | None = None,
) -> LimitResult:
    """Every scalar limit of ``program`` by the engine ``method`` (``"auto"``: the first engine
    that applies; the result's ``method`` and ``notes`` say which, and why not the others).
    ``inputs`` as for the executor; ``scalars``: values of random scalar parameters;
    ``scalars_wanted``: only these limits (scalar or ket names, None: every scalar), and a
    demand-driven engine computes only what they depend on."""
    options = options or LimitOptions()
    given = dict(scalars or {})
    run = _Call(inputs, given, options, progress, scalars_wanted)
    return _drawn_noted(_evaluate(program, method, run), given)


def _drawn_noted(res: LimitResult, given: Mapping[str, float]) -> LimitResult:
    """A scalar parameter without init and without a given value was conditioned on a random
    draw: its value, and every limit that depends on it, is that draw's, not a property of the
    architecture — say so, and how to choose it."""
    drawn = {k: v for k, v in res.given.items() if k not in given}
    return res.noted(
        *(
            f"scalar parameter {k} has no value: the limits are conditioned on its random "
            f"(seed-0) draw {k} = {v:.6g}; give --scalar {k}=VALUE to choose it"
            for k, v in drawn.items()
        )
    )


@dataclass(frozen=True)
class _Call:
    """The arguments every engine is called with."""

    inputs: object
    given: dict[str, float]
    options: LimitOptions
    progress: Progress | None
    wanted: Collection[str] | None

    def on(self, engine: LimitEngine[Any], program: object) -> LimitResult:
        if self.wanted is None:
            return engine.evaluate(
                program, self.inputs, self.given, self.options, self.progress
            )
        if isinstance(engine, DemandEngine):
            return engine.evaluate_demand(
                program, self.inputs, self.given, self.options, self.progress, self.wanted
            )
        res = engine.evaluate(program, self.inputs, self.given, self.options, self.progress)
        return res.only(self.wanted)


def _evaluate(program: object, method: str, run: _Call) -> LimitResult:
    if method != "auto":
        engine = _engine(method, program)
        try:
            return run.on(engine, program)
        except NotApplicableError as e:
            raise NotApplicableError(f"no {engine.label} for this program: {e.message}") from None
    engines = [e for e in ENGINES.values() if isinstance(program, e.takes)]
    if not engines:
        raise UsageError(f"no limit engine evaluates a {type(program).__name__}")
    notes: list[str] = []
    for k, engine in enumerate(engines):
        try:
            chosen = _weigh(engine, engines[k + 1:], program, run)
            res = _timed(run, engines[k + 1:], program).on(engine, program)
            return res.noted(*notes, *chosen)
        except NotApplicableError as e:
            if k + 1 == len(engines):
                raise
            after = engines[k + 1].label
            notes.append(f"{engine.label} not applicable ({e.message}); {after} instead")
    raise AssertionError("unreachable: the last engine returns or raises")


def _weigh(
    engine: LimitEngine[Any], later: list[LimitEngine[Any]], program: object, run: _Call
) -> tuple[str, ...]:
    """``auto``'s choice before ``engine`` runs, from its up-front estimate: NotApplicableError
    (the next engine runs) when it cannot apply, does not fit the memory budget, or would take
    more than AUTO_FACTOR times (and AUTO_FLOOR seconds beyond) the cheapest later engine's
    estimate; else the note saying it was chosen over that engine (none when it is cheap)."""
    if not isinstance(engine, EstimatedEngine):
        return ()
    cost = engine.estimate_cost(program, run.inputs, run.options)
    if cost.refusal is not None:
        raise NotApplicableError(cost.refusal)
    have = budget(run.options)
    if cost.bytes > have:
        raise NotApplicableError(cost.refusal_over(have))
    rivals = [(e.estimate_seconds(program, run.inputs, run.options, run.wanted), e.label)
              for e in later if isinstance(e, CostedEngine)]
    if not rivals:
        return ()
    seconds, label = min(rivals)
    why = f"estimated {cost.seconds:.1f} s ({cost.summary()}) against {label}'s {seconds:.1f} s"
    if cost.seconds > max(AUTO_FLOOR, AUTO_FACTOR * seconds):
        raise NotApplicableError(f"{why}, over {AUTO_FACTOR:g}×")
    if cost.seconds < AUTO_FLOOR:
        return ()
    return (f"{engine.label} chosen over {label}: {why}, within {AUTO_FACTOR:g}×",)


def _engine(method: str, program: object) -> LimitEngine[Any]:
    engine = ENGINES.get(method)
    if engine is None:
        raise UsageError(f"unknown limit method {method!r}: one of {', '.join(methods())}")
    if not isinstance(program, engine.takes):
        raise UsageError(
            f"the {engine.label} evaluates a {engine.takes.__name__}, "
            f"not a {type(program).__name__}"
        )
    return engine


def _timed(run: _Call, later: list[LimitEngine[Any]], program: object) -> _Call:
    """``run`` with a time limit from the cheapest later engine that estimates its cost (none
    when the caller set one, or no later engine can estimate)."""
    if run.options.time_limit is not None:
        return run
    costs = [
        e.estimate_seconds(program, run.inputs, run.options, run.wanted)
        for e in later
        if isinstance(e, CostedEngine)
    ]
    if not costs:
        return run
    limit = max(AUTO_FLOOR, AUTO_FACTOR * min(costs))
    return replace(run, options=replace(run.options, time_limit=limit))
