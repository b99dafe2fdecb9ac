"""``nexort converge FILE --param P --opt OPT --loss L --data DATA --steps T --widths
256,…,8192 --seeds K [--particles M] [--plot OUT.png]``: finite-width training (seeds 0..K−1
at every width, :mod:`runtime.trainer`) against the infinite-width limit (``nexort limit``),
the distance per width and its fitted log-log slope (:mod:`runtime.converge`): the paper's
Figs. 5.1/5.2 (07 §7.4) for any architecture file.  JSON: ``{"widths", "distance",
"distance_stderr", "slope", "slope_stderr", "finite_mean": [width][t][point], "limit": {…}}``."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from compiler.cli.common import Report, arch_summary, command
from compiler.cli.limit import describe, engine_options, trajectory_options
from compiler.cli.options import integer_at_least, plot_option, widths
from compiler.cli.progress import Progress
from compiler.cli.train import run_options, setup

if TYPE_CHECKING:
    from runtime.converge import Convergence

READING = ("how to read it: D_n = RMS over steps and points of (seed-mean f_t − limit f_t), "
           "the limit's Monte Carlo variance subtracted; as the networks approach the limit "
           "D_n falls like n^{-1/2} (slope ≈ −0.5, Master Theorem).  A slope near 0 means "
           "they do not approach this limit, or D_n is at the noise of the seed average "
           "(column 'seed noise': add --seeds) or of the limit (add --particles).")


def _options(p: argparse.ArgumentParser) -> None:
    run_options(p)
    engine_options(p)
    p.add_argument("--widths", type=widths, default=[256, 512, 1024, 2048], metavar="N1,N2,…",
                   help="finite widths (default 256,512,1024,2048)")
    p.add_argument("--seeds", type=integer_at_least(2), default=4, metavar="K",
                   help="network seeds 0..K-1 per width (default 4)")
    p.add_argument("--seed", type=integer_at_least(0), default=0,
                   help="seed of the limit's particles (default 0)")
    p.add_argument("--dist", default="gaussian",
                   help="initial matrix entries: gaussian, rademacher, uniform")
    plot_option(p, "a few points' trajectories (widths as seed bands, the limit ± 2 s.e.) "
                   "and the distance against n with the n^(-1/2) guide")


@command("converge", "finite widths against the infinite-width limit: distance and its rate",
         _options)
def cmd_converge(args: argparse.Namespace) -> Report:
    from runtime.converge import converge

    training, data = setup(args)
    progress = Progress("converge")
    start = time.perf_counter()
    result = converge(training, data.x, data.y, args.widths, range(args.seeds),
                      trajectory_options(args, args.seed), args.engine, args.dist, progress)
    elapsed = time.perf_counter() - start
    progress.done()
    if args.plot:
        from runtime.converge_plot import plot_convergence

        plot_convergence(result, args.plot)
    doc = {**arch_summary(training.program), **result.to_json(), "opt": args.opt,
           "loss_spec": args.loss, "data": args.data, "dist": args.dist,
           "seconds": {"total": elapsed, "limit": result.seconds[0],
                       "networks": result.seconds[1]},
           "plot": args.plot}
    return Report(doc, _text(result, elapsed, args.plot))


def _text(result: Convergence, elapsed: float, plot: str | None) -> str:
    lines = [result.training.format(), *describe(result.limit),
             f"{len(result.seeds)} seeds per width; {elapsed:.2f} s (limit "
             f"{result.seconds[0]:.2f} s, networks {result.seconds[1]:.2f} s)",
             f"{'width':>7} {'D_n':>10} {'± s.e.':>9} {'raw D_n':>10} {'seed noise':>11}"]
    for d in result.distances:
        lines.append(f"{d.width:>7} {d.distance:10.3g} {d.stderr:9.2g} {d.raw:10.3g} "
                     f"{d.noise:11.2g}")
    lines.append(f"fitted slope of log D_n against log n: {result.slope:+.3f} "
                 f"± {result.slope_stderr:.3f} (predicted −0.5)")
    lines += [f"note: {n}" for n in result.notes]
    lines.append(READING)
    if plot:
        lines.append(f"plot: {plot}")
    return "\n".join(lines) + "\n"
