"""``nexort exec FILE --width n``: run the program at finite width n and print
f(ξ) = n^(-e_out) Σ_α o_α(ξ) for every input (spec 01 §1.3), optionally with histograms of the
vectors' coordinates (``--plot``)."""

from __future__ import annotations

import argparse
import time
from fractions import Fraction
from typing import Any

from compiler.cli.common import Report, arch_summary, command, load
from compiler.cli.options import data_options, file_options, fraction, plot_option, width_options
from compiler.cli.progress import Progress


def _options(p: argparse.ArgumentParser) -> None:
    file_options(p)
    plot_option(p, "histograms of the vectors' coordinates")
    width_options(p)
    data_options(p)
    p.add_argument("--dist", default="gaussian",
                   help="matrix entries: gaussian, rademacher, uniform")
    p.add_argument("--e-out", type=fraction, default=0.5, metavar="E",
                   help="output multiplier: f = n^(-E) Σ_α o_α (default 1/2)")


@command("exec", "execute at finite width and print f", _options)
def cmd_exec(args: argparse.Namespace) -> Report:
    from runtime.data import load_inputs
    from runtime.executor import execute

    program = load(args)
    x, n_train = (None, 1) if args.inputs is None else load_inputs(args.inputs)
    progress = Progress("exec")
    start = time.perf_counter()
    ex = execute(program, args.width, args.seed, x, args.dist, progress=progress.instruction)
    elapsed = time.perf_counter() - start
    progress.done()
    f = ex.f(args.e_out)
    if args.plot:
        from runtime.plots import plot_coordinates

        plot_coordinates(ex, args.plot)
    return Report(_exec_json(args, ex, f, n_train, elapsed), _exec_text(args, ex, f, n_train,
                                                                         elapsed))


def _exec_json(
    args: argparse.Namespace, ex: Any, f: Any, n_train: int, elapsed: float
) -> dict[str, Any]:
    scalars = {k: v.tolist() for k, v in ex.values.items() if ex.program.kinds.get(k) == "scalar"}
    return {
        **arch_summary(ex.program),
        "width": ex.width,
        "seed": args.seed,
        "dist": args.dist,
        "e_out": str(Fraction(args.e_out).limit_denominator()),
        "batch": ex.batch,
        "train": n_train,
        "outputs": list(ex.program.outputs),
        "f": f.tolist(),
        "scalars": scalars,
        "seconds": elapsed,
        "plot": args.plot,
    }


def _exec_text(args: argparse.Namespace, ex: Any, f: Any, n_train: int, elapsed: float) -> str:
    p = ex.program
    lines = [
        f"arch {p.name} at width n = {ex.width}, seed {args.seed}, {args.dist} matrices: "
        f"{ex.batch} input(s), {len(p.body)} instructions in {elapsed:.2f} s",
        f"f(ξ) = n^(-{Fraction(args.e_out).limit_denominator()}) Σ_α o_α(ξ)",
        "  input  set   " + "  ".join(f"{o:>12}" for o in p.outputs),
    ]
    for i in range(ex.batch):
        which = "train" if i < n_train else "test"
        cells = "  ".join(f"{f[k, i]:12.6f}" for k in range(len(p.outputs)))
        lines.append(f"  {i:5d}  {which:<5} " + cells)
    if args.plot:
        lines.append(f"plot: {args.plot}")
    return "\n".join(lines) + "\n"
