"""``nexort limit-scalars FILE``: every scalar's infinite-width limit ± its standard error, by
the Master Theorem (spec 01 §1.4–1.6).

The exact path (quadrature, :mod:`runtime.limits.quadrature`) is taken when the program allows
it and Monte Carlo otherwise (``--engine``); with ``--compare-widths 256,1024,4096 --seeds K``
the seed-averaged finite-width values are printed beside them, and ``--plot`` draws how they
approach the limits. Scalar parameters without an init are conditioned on a value (``--scalar
NAME=VALUE``, default the executor's seed-0 draw), and the finite-width runs use the same value.
``--kernels`` replaces the program's scalars by the NNGP and NTK matrices between the inputs
(05 §5.1–5.2), of the output ``--output NAME`` when there are several; ``--out K.npz`` writes
them (:mod:`compiler.cli.limit_kernels`).
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from compiler.cli.common import Report, command, exact_number, load, parse_assignments
from compiler.cli.options import (
    data_options,
    file_options,
    output_choice,
    particle_options,
    plot_option,
    seed_option,
    widths_seeds_options,
)
from compiler.cli.progress import Progress
from compiler.errors import UsageError

if TYPE_CHECKING:  # command registration (`nexort --help`) must not import sympy or numpy
    from compiler.kets.lowering import KetProgram
    from runtime.limits import LimitResult


def _options(p: argparse.ArgumentParser) -> None:
    file_options(p)
    plot_option(p, "|finite − limit| against n, log-log, for --compare-widths")
    data_options(p)
    particle_options(p)
    seed_option(p, "seed of the particles (default 0)")
    p.add_argument("--engine", "--method", dest="method", choices=("auto", "exact", "mc"),
                   default="auto",
                   help="limit engine: exact quadrature, Monte Carlo, or exact when possible "
                        "(default; --method is the older spelling)")
    p.add_argument("--stein", action="store_true", help="every dot coefficient by Stein's lemma")
    p.add_argument("--scalar", action="append", default=[], metavar="NAME=VALUE",
                   help="value of a scalar parameter without init (the limit conditions on it)")
    widths_seeds_options(p)
    p.add_argument("--kernels", action="store_true",
                   help="the NNGP and NTK entries between the --inputs (05 §5.1-5.2) instead of "
                        "the program's own scalars")
    output_choice(p, "with --kernels: the output vector the kernels are of (default: the only "
                     "output)")
    p.add_argument("--out", metavar="K.npz",
                   help="with --kernels: write nngp, ntk and the per-group NTK blocks (numpy "
                        ".npz)")


def _check_request(args: argparse.Namespace) -> None:
    """Combinations of options that cannot work, refused before anything is computed."""
    if args.plot and not args.compare_widths:
        raise UsageError("--plot draws the comparison: give --compare-widths too")
    if args.output is not None and not args.kernels:
        raise UsageError("--output chooses the output of --kernels: give --kernels too (the "
                         "limits of all the program's scalars do not depend on an output)")
    if args.out is not None:
        if not args.kernels:
            raise UsageError("--out writes the kernel matrices: give --kernels too")
        from compiler.cli.output import check_output_path

        check_output_path(args.out, "--out", ".npz")


@command(
    "limit-scalars", "every scalar's infinite-width limit ± s.e. (Master Theorem)", _options
)
def cmd_limit_scalars(args: argparse.Namespace) -> Report:
    from compiler.passes.lower import LowerOptions
    from compiler.passes.pipeline import run_pass
    from runtime.data import load_inputs

    _check_request(args)
    program = load(args)
    x, n_train = (None, 1) if args.inputs is None else load_inputs(args.inputs)
    if args.kernels:
        from compiler.cli.limit_kernels import kernel_report

        return kernel_report(args, program, x, n_train)
    kets = run_pass(program, LowerOptions())
    given = parse_assignments(args.scalar, "--scalar", exact_number, "a number")
    start = time.perf_counter()
    res = _limits(args, kets, x, given)
    lim = res.as_json()
    lim["seconds"] = time.perf_counter() - start
    lim["inputs"] = list(program.input_names)
    cmp = None
    if args.compare_widths:
        from runtime.limits import compare_widths

        cmp = compare_widths(program, x, args.compare_widths, args.seeds, res.given).as_json()
    if args.plot and cmp is not None:
        from runtime.plots import plot_master_theorem

        drawn = {k: v for k, v in lim["scalars"].items()
                 if k not in lim["inputs"] and k not in set(lim.get("exact_zero", ()))}
        plot_master_theorem(program.name, drawn, cmp, args.plot)
        lim["plot"] = args.plot
    # ``engine`` names the limit engine that ran (``method`` is abcd's analysis)
    doc = {"arch": program.name, **lim, "compare": cmp}
    return Report(doc, _limits_text(program.name, lim, cmp, n_train))


def _limits(
    args: argparse.Namespace, kets: KetProgram, x: Any, given: dict[str, float],
    wanted: set[str] | None = None,
) -> LimitResult:
    """The limits ``wanted`` (None: all) by the engine ``--engine`` asks for (auto: exact where
    it applies)."""
    from runtime.limits import LimitOptions, evaluate

    budget = int(args.memory_limit * 2**30) if args.memory_limit else None
    try:
        opts = LimitOptions(particles=args.particles, replicas=args.replicas, seed=args.seed,
                            stein=args.stein, outer2_pool=args.outer2_pool, memory_budget=budget)
    except UsageError as e:  # name the option as the user wrote it (replicas -> --replicas)
        named = f"--{e.message}" if e.message.startswith("replicas") else e.message
        raise UsageError(named) from None
    progress = Progress("limit")
    try:
        return evaluate(kets, x, args.method, opts, scalars=given, progress=progress,
                        scalars_wanted=wanted)
    finally:
        progress.done()


def _limits_text(arch: str, lim: dict[str, Any], cmp: dict[str, Any] | None, n_train: int) -> str:
    lines: list[str] = []
    lines.append(f"limits of {arch}: {lim['description']} ({lim['seconds']:.2f} s)")
    if lim["note"]:
        lines.append(f"note: {lim['note']}")
    for k, v in lim["given"].items():
        lines.append(f"conditioned on scalar parameter {k} = {v:g}")
    zero = set(lim.get("exact_zero", ()))
    head = f"  {'scalar':<16} {'input':>5}  {'limit':>12} {'± s.e.':>10}"
    widths = list(cmp) if cmp else []
    for n in widths:
        head += f"  {'n=' + n:>12} {'± s.e.':>10}"
    lines.append(head)
    exact = {k for k, m in lim["per_scalar"].items() if m == "exact"}
    for name, vals in lim["scalars"].items():
        if name in lim["inputs"]:
            continue
        for i, val in enumerate(vals):
            se = lim["stderr"][name][i]
            shown_se = "unknown" if se is None else f"{se:10.2e}"
            tag = "0 by sym." if name in zero else ("exact" if name in exact else shown_se)
            row = f"  {name:<16} {i:>5}  {val:12.6f} {tag:>10}"
            for n in widths:
                c = cmp[n].get(name) if cmp else None
                if c is not None:
                    row += f"  {c['mean'][i]:12.6f} {c['stderr'][i]:10.2e}"
            lines.append(row)
    if not any(name not in lim["inputs"] for name in lim["scalars"]):
        lines.append("  (the program has no scalars besides its inputs: add avg(…) or run `nexort "
              "backprop` first)")
    if n_train > 1:
        lines.append(f"inputs 0..{n_train - 1} are training rows; later rows are test rows")
    if lim.get("plot"):
        lines.append(f"plot: {lim['plot']}")
    return "\n".join(lines) + "\n"
