"""What every limit engine takes and gives (spec 01 §1.5: a scalar's limit is one number per input).

``LimitOptions``: the knobs of an evaluation (the Monte Carlo ones are ignored by exact engines).
``LimitResult``: the one result type of every engine — per scalar its value, its standard error
and how it was obtained.  A standard error is 0 only where the value is exact (quadrature, a
sign-flip zero, an input or a fixed or conditioned scalar); a Monte Carlo value whose error the
run cannot measure (one replica) has NaN, never 0.  ``NotApplicableError``: an engine cannot
evaluate this program (it says why); ``method="auto"`` then falls back to the next engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from compiler.errors import UsageError

Progress = Callable[[float, float, str], None]
"""progress(done, total, label): work done so far of the total (an engine's own unit)."""

ScalarMethod = Literal["exact", "mc", "symmetry", "data"]
"""How one scalar's limit was obtained: quadrature; Monte Carlo; exactly 0 by a sign-flip
symmetry (an odd Avg, :mod:`compiler.kets.parity`); or known without integration (an input,
a fixed init, a conditioned random scalar).  Only "mc" values have a non-zero standard error."""

DEFAULT_PARTICLES = 16384

MIN_PER_REPLICA = 32
"""Fewest particles P per replica.  A replica estimates Grams, dot coefficients and Avg limits from
its own P particles, and nonlinear functions of those estimates (a hat's scale √Gram, later
formulas of an Avg) are biased by O(1/P) while the replica s.e. is O(1/√(R·P)): P ≥ R keeps the
bias below about one s.e., and P ≥ 32 keeps it below a few per cent of the value."""

MIN_PER_REPLICA_OUTER = 128
"""Fewest particles per replica for a program with an OuterNonlin that reads copies: a copy
average over the other P − 1 particles has noise variance O(1/P), which biases every nonlinear
function of it by O(1/P) (O(1/√P) at a kink); the half-span bias check of
:mod:`runtime.limits.montecarlo` measures that bias only in this asymptotic regime."""


class NotApplicableError(UsageError):
    """This engine cannot evaluate this program (the message says why); ``evaluate`` with
    ``method="auto"`` tries the next engine, with an explicit method it reports it."""


@dataclass(frozen=True)
class LimitOptions:
    """``particles`` M in total (None: 16384; Monte Carlo only, and noted as ignored when given
    to an exact engine); ``replicas`` R (None: 16 when M ≥ 2048, else M // 128, at least 1);
    every replica keeps at least max(MIN_PER_REPLICA, R) particles (else refused);
    ``stein``: every dot coefficient by Stein's lemma; ``outer2_pool``: K, about K² copy pairs
    per particle for order-2 OuterNonlins (:mod:`runtime.limits.outer`); ``memory_budget`` in
    bytes (None: half of physical memory);
    ``keep_values``: keep the particle values of every ket; ``gradient_independence``: set every
    dot coefficient to 0 (the classical approximation, for comparison only — wrong when W and Wᵀ
    interact, 05 §5.2);
    ``time_limit``: CPU seconds the exact path may run before it gives up (NotApplicableError; None:
    no limit; ``method="auto"`` sets it from the Monte Carlo cost estimate)."""

    particles: int | None = None
    replicas: int | None = None
    seed: int = 0
    stein: bool = False
    outer2_pool: int = 96
    memory_budget: int | None = None
    keep_values: bool = False
    gradient_independence: bool = False
    time_limit: float | None = None

    def __post_init__(self) -> None:
        checks = (
            ("particles", self.particles, 4),
            ("replicas", self.replicas, 1),
            ("outer2_pool", self.outer2_pool, 2),
            ("memory_budget", self.memory_budget, 1),
        )
        for name, value, least in checks:
            if value is not None and value < least:
                raise UsageError(f"{name} must be at least {least}, got {value}")
        if self.seed < 0:
            raise UsageError(f"seed must be a non-negative integer, got {self.seed}")
        if self.replicas is not None:
            self._check_replicas(self.particle_count, self.replicas)

    @staticmethod
    def _check_replicas(m: int, r: int) -> None:
        """Refuse replicas that leave too few particles each (see MIN_PER_REPLICA)."""
        p = m // r
        need = max(MIN_PER_REPLICA, r)
        if p < need:
            most = max(1, min(m // MIN_PER_REPLICA, math.isqrt(m)))
            raise UsageError(
                f"replicas {r} of {m} particles leave {p} particles per replica; at least "
                f"{need} are needed (at least {MIN_PER_REPLICA} and no fewer than the replicas: "
                f"a replica's estimates are biased by O(1/P) and its s.e. is O(1/√(R·P))), so "
                f"at most {most} replicas here, or more particles"
            )

    @property
    def particle_count(self) -> int:
        return DEFAULT_PARTICLES if self.particles is None else self.particles


@dataclass
class LimitResult:
    """Every scalar's limit and standard error ((B,) arrays, B the number of inputs), how each
    was obtained (``methods``), every live dot coefficient with its standard error (keyed by
    (MatMul out, hat out)), the values the limit was conditioned on (``given``: every random
    scalar parameter), and notes (e.g. why ``auto`` fell back).  ``method`` names the engine,
    ``description`` says it in words; ``particles``/``replicas`` are None for exact engines;
    ``values`` holds particle values when asked for (``LimitOptions.keep_values``)."""

    method: str
    description: str
    batch: int
    scalars: dict[str, np.ndarray] = field(default_factory=dict)
    stderr: dict[str, np.ndarray] = field(default_factory=dict)
    methods: dict[str, ScalarMethod] = field(default_factory=dict)
    dots: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    given: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    particles: int | None = None
    replicas: int | None = None
    values: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def exact_zero(self) -> set[str]:
        """The scalars that are exactly 0 by a sign-flip symmetry."""
        return {k for k, m in self.methods.items() if m == "symmetry"}

    @property
    def exact(self) -> bool:
        """Every scalar is exact (standard errors all real zeros)."""
        return all(m != "mc" for m in self.methods.values())

    def noted(self, *notes: str) -> LimitResult:
        return replace(self, notes=(*self.notes, *(n for n in notes if n)))

    def only(self, names: Iterable[str]) -> LimitResult:
        """The same result restricted to the scalars ``names`` (dots kept)."""
        keep = set(names)
        return replace(
            self,
            scalars={k: v for k, v in self.scalars.items() if k in keep},
            stderr={k: v for k, v in self.stderr.items() if k in keep},
            methods={k: v for k, v in self.methods.items() if k in keep},
        )

    def as_json(self) -> dict[str, Any]:
        """The JSON form: lists per scalar, an unknown standard error as null."""
        return {
            "engine": self.method,
            "description": self.description,
            "note": "; ".join(self.notes),
            "given": dict(self.given),
            "scalars": {k: v.tolist() for k, v in self.scalars.items()},
            "stderr": {k: [_json_float(e) for e in v.tolist()] for k, v in self.stderr.items()},
            "per_scalar": dict(self.methods),
            "exact_zero": sorted(self.exact_zero),
        }


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None
