"""``nexort limit FILE --param P --opt OPT --loss L --data DATA --steps T [--particles M]
[--seed S] [--center] [--method auto|exact|mc] [--engine auto|NAME] [--replicas R]
[--memory-limit GIB] [--plot OUT.png]``: the infinite-width limit of training (05 §5.1–5.5,
:func:`runtime.limits.trajectory.limit_trajectory`) on the points of ``nexort train``.

The options mean what they mean for ``nexort train``.  The abcd analysis picks the regime and the
engine (05 §5.5); an unstable, unfaithful or trivial table, or an engine that cannot run the
training, is a usage error quoting the reason.  JSON: ``{"points", "f": [t][point], "stderr":
[t][point], "method", "regime", "engine", "f0_random", …}`` (t = 0..T; a trailing output axis when
k > 1).  Text: f_t ± s.e. per point at a few steps.  ``--plot``: f_t per point with ±2 s.e. bands.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from compiler.cli.common import Report, arch_summary, command
from compiler.cli.options import (
    integer_at_least,
    plot_option,
    positive_number,
)
from compiler.cli.progress import Progress
from compiler.cli.train import run_options, setup

if TYPE_CHECKING:  # `nexort --help` must not import numpy
    from runtime.limits.trajectory import LimitTrajectory, TrajectoryOptions

GIB = 2**30
METHODS = ("auto", "exact", "mc")


def engine_options(p: argparse.ArgumentParser) -> None:
    """The limit engine's choices: particles, replicas, method, engine, memory."""
    p.add_argument("--particles", type=integer_at_least(4), metavar="M",
                   help="Monte Carlo particles (default: the engine's)")
    p.add_argument("--replicas", type=integer_at_least(2), metavar="R",
                   help="independent replicas for the standard errors (default: the engine's)")
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="exact kernel iteration (linear Q only) or Monte Carlo (default auto)")
    p.add_argument("--engine", default="auto", metavar="NAME",
                   help="the limit engine: auto (by the regime), nt, mu, mu-reference")
    p.add_argument("--memory-limit", type=positive_number, metavar="GIB",
                   help="refuse runs above this many GiB (default: half of physical memory)")


def _options(p: argparse.ArgumentParser) -> None:
    run_options(p)
    engine_options(p)
    p.add_argument("--seed", type=integer_at_least(0), default=0,
                   help="seed of the particles and of f_0's draw (default 0)")
    plot_option(p, "f_t per point with ±2 s.e. bands")


def trajectory_options(args: argparse.Namespace, seed: int) -> TrajectoryOptions:
    from runtime.limits.trajectory import TrajectoryOptions

    budget = None if args.memory_limit is None else int(args.memory_limit * GIB)
    return TrajectoryOptions(args.particles, args.replicas, seed, args.method, budget)


@command("limit", "the infinite-width limit of training: f_t per point with standard errors",
         _options)
def cmd_limit(args: argparse.Namespace) -> Report:
    from runtime.limits.trajectory import limit_trajectory

    training, data = setup(args)
    progress = Progress("limit")
    start = time.perf_counter()
    traj = limit_trajectory(training, data.x, data.y, trajectory_options(args, args.seed),
                            args.engine, progress)
    elapsed = time.perf_counter() - start
    progress.done()
    if args.plot:
        from runtime.limit_plot import plot_limit

        plot_limit(traj, args.plot)
    doc = {**arch_summary(training.program), **traj.to_json(), "opt": args.opt,
           "loss_spec": args.loss, "data": args.data, "seconds": elapsed, "plot": args.plot}
    return Report(doc, text(traj, elapsed, args.plot))


def describe(traj: LimitTrajectory) -> list[str]:
    """Which limit was computed, by what, and what the user should know about it."""
    plan = traj.plan
    regime = {"operator": "operator regime (neural-tangent limit, 05 §5.1–5.2)",
              "feature_learning": "feature-learning regime (μ-limit, 05 §5.3–5.4)"}
    lines = [f"limit: {regime.get(plan.regime, plan.regime)}; engine {traj.engine}, "
             f"path {traj.path}" + ("" if traj.particles is None
                                    else f", {traj.particles} particles") + f", seed {traj.seed}"]
    if plan.dropped:
        lines.append("updates that vanish in the limit (dropped, 05 §5.5): "
                     + ", ".join(plan.dropped))
    if traj.f0_random:
        fix = ("weight decay keeps (ρ^t − 1)·f_0 in f − f_0 even centred (05 §5.6)"
               if traj.training.center else "give --center for the deterministic limit of f − f_0")
        lines.append(f"f_0 is a Gaussian process in this limit (05 §5.1): one draw (seed "
                     f"{traj.seed}); {fix}")
    lines += [f"note: {n}" for n in traj.notes]
    return lines


def text(traj: LimitTrajectory, elapsed: float, plot: str | None) -> str:
    tr = traj.training
    lines = [tr.format(), *describe(traj), f"{elapsed:.2f} s"]
    steps = sorted({0, 1, tr.steps // 2, tr.steps})
    what = "f̃_t = f_t − f_0" if tr.center else "f_t"
    lines.append(f"{what} of the limit (± s.e.) at t = " + ", ".join(map(str, steps)))
    for i, label in enumerate(tr.schedule.points()):
        for j in range(tr.outputs):
            cells = "  ".join(_cell(traj.f[t, i, j], traj.stderr[t, i, j]) for t in steps)
            lines.append(f"  {label:>9}{'' if tr.outputs == 1 else f' f{j}'}  {cells}")
    if plot:
        lines.append(f"plot: {plot}")
    return "\n".join(lines) + "\n"


def _cell(f: Any, se: Any) -> str:
    import math

    if math.isnan(se):
        return f"{f:10.5f} ± ?      "
    return f"{f:10.5f} ± {se:.1e}" if se > 0 else f"{f:10.5f} (exact)"
