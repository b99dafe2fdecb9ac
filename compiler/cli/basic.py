"""``nexort compile``, ``check`` and ``exec``: the program itself, and its meaning at width n."""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from typing import Any

from compiler.cli.common import Reporter, _file_options, _fraction, command, load
from compiler.errors import UsageError
from compiler.printer import print_program
from compiler.serialize import program_dict


@command("compile", "print the flattened program (one instruction per line)", _file_options)
def cmd_compile(args: argparse.Namespace) -> int:
    program = load(args)
    if args.json:
        print(json.dumps(program_dict(program), indent=1))
    else:
        print(print_program(program, header=f"flattened from {args.file} by nexort"), end="")
    return 0


@command("check", "parse and verify an architecture file", _file_options)
def cmd_check(args: argparse.Namespace) -> int:
    program = load(args)
    counts: dict[str, int] = {}
    for ins in program.body:
        counts[type(ins).__name__] = counts.get(type(ins).__name__, 0) + 1
    summary = {
        "arch": program.name,
        "ok": True,
        "inputs": len(program.input_names),
        "parameters": {k: len(program.param_names(k)) for k in ("matrix", "vector", "scalar")},
        "instructions": counts,
        "outputs": list(program.outputs),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        parts = ", ".join(f"{v} {k}" for k, v in counts.items())
        params = ", ".join(f"{v} {k}" for k, v in summary["parameters"].items() if v)
        print(
            f"{args.file}: ok: arch {program.name}: {summary['inputs']} input coordinates, "
            f"parameters {params}; {len(program.body)} instructions ({parts})"
        )
    return 0


def _exec_options(p: argparse.ArgumentParser) -> None:
    _file_options(p)
    p.add_argument("--width", type=int, required=True, help="the width n")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inputs", metavar="DATA", help=".npz with X_train (and X_test), or 1,2,3")
    p.add_argument(
        "--dist", default="gaussian", help="matrix entries: gaussian, rademacher, uniform"
    )
    p.add_argument(
        "--e-out",
        type=_fraction,
        default=0.5,
        metavar="E",
        help="output multiplier: f = n^(-E) Σ_α o_α (default 1/2)",
    )
    p.add_argument("--plot", metavar="PNG", help="write coordinate histograms of the vectors")


@command("exec", "execute at finite width and print f", _exec_options)
def cmd_exec(args: argparse.Namespace) -> int:
    from runtime.data import load_inputs
    from runtime.executor import execute

    program = load(args)
    if args.width < 1:
        raise UsageError("--width must be a positive integer")
    x, n_train = (None, 1) if args.inputs is None else load_inputs(args.inputs)
    reporter = Reporter(sys.stderr.isatty() and not args.json)
    start = time.perf_counter()
    ex = execute(program, args.width, args.seed, x, args.dist, progress=reporter)
    elapsed = time.perf_counter() - start
    reporter.done()
    f = ex.f(args.e_out)
    if args.plot:
        from runtime.plots import plot_coordinates

        plot_coordinates(ex, args.plot)
    if args.json:
        print(json.dumps(_exec_json(args, ex, f, n_train, elapsed)))
        return 0
    _print_exec(args, ex, f, n_train, elapsed)
    return 0


def _exec_json(
    args: argparse.Namespace, ex: Any, f: Any, n_train: int, elapsed: float
) -> dict[str, Any]:
    scalars = {k: v.tolist() for k, v in ex.values.items() if ex.program.kinds.get(k) == "scalar"}
    return {
        "arch": ex.program.name,
        "width": ex.width,
        "seed": args.seed,
        "dist": args.dist,
        "e_out": args.e_out,
        "batch": ex.batch,
        "train": n_train,
        "outputs": list(ex.program.outputs),
        "f": f.tolist(),
        "scalars": scalars,
        "seconds": elapsed,
        "plot": args.plot,
    }


def _print_exec(args: argparse.Namespace, ex: Any, f: Any, n_train: int, elapsed: float) -> None:
    p = ex.program
    print(
        f"arch {p.name} at width n = {ex.width}, seed {args.seed}, {args.dist} matrices: "
        f"{ex.batch} input(s), {len(p.body)} instructions in {elapsed:.2f} s"
    )
    print(f"f(ξ) = n^(-{Fraction(args.e_out).limit_denominator()}) Σ_α o_α(ξ)")
    head = "  input  set   " + "  ".join(f"{o:>12}" for o in p.outputs)
    print(head)
    for i in range(ex.batch):
        which = "train" if i < n_train else "test"
        print(
            f"  {i:5d}  {which:<5} " + "  ".join(f"{f[k, i]:12.6f}" for k in range(len(p.outputs)))
        )
    if args.plot:
        print(f"plot: {args.plot}")


