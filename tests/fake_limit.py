"""Test engines for the training-limit interface (runtime/limits/trajectory.py), so that the
``nexort limit`` / ``nexort converge`` commands are tested without the real NT and μ engines.

``test-proxy`` (any regime): the "limit" is the seed mean of a wide finite-width run (width
``PROXY_WIDTH``, R = replicas seeds, default 4), its standard error the seed standard
deviation / √R: a stand-in with the right shapes and a real Monte Carlo standard error, not the
limit.  ``test-refuses``: ``applies`` returns a reason.
Importing this module registers them (once).  Their ``regime`` is "test", which no plan has: an
``--engine auto`` run (here or in another test module of the same session) never picks them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.limits.trajectory import (
    TRAJECTORY_ENGINES,
    LimitPlan,
    LimitTrajectory,
    TrajectoryOptions,
    TrajectoryProgress,
    register,
)

PROXY_WIDTH = 256
REFUSAL = "this test engine runs nothing"


@dataclass(frozen=True)
class ProxyEngine:
    """The wide-network stand-in for a limit engine (see the module docstring)."""

    name: str = "test-proxy"
    regime: str = "test"

    def applies(self, plan: LimitPlan) -> str | None:
        return None

    def run(self, plan: LimitPlan, x: np.ndarray, y: np.ndarray, options: TrajectoryOptions,
            progress: TrajectoryProgress | None) -> LimitTrajectory:
        from runtime.trainer import train

        reps = options.replicas or 4
        width = options.particles or PROXY_WIDTH
        seeds = range(10_000 + options.seed * reps, 10_000 + (options.seed + 1) * reps)
        steps = plan.training.steps + 1
        res = train(plan.training, x, y, width, seeds, "gaussian",
                    None if progress is None else
                    lambda k, t: progress(k * steps + t + 1, reps * steps, f"replica {k}"))
        f = res.f.mean(axis=0)
        se = res.f.std(axis=0, ddof=1) / np.sqrt(reps)
        path = "mc" if options.method == "auto" else options.method
        return LimitTrajectory(plan, self.name, path, f, se, width, options.seed,
                               (f"test proxy: {reps} networks of width {width}",))


@dataclass(frozen=True)
class RefusingEngine:
    name: str = "test-refuses"
    regime: str = "test"

    def applies(self, plan: LimitPlan) -> str | None:
        return REFUSAL

    def run(self, plan: LimitPlan, x: np.ndarray, y: np.ndarray, options: TrajectoryOptions,
            progress: TrajectoryProgress | None) -> LimitTrajectory:
        raise AssertionError("applies() refused")


for _engine in (ProxyEngine(), RefusingEngine()):
    if _engine.name not in TRAJECTORY_ENGINES:
        register(_engine)
