"""The ``nexort`` command line: one subcommand per job, clean errors, never a traceback.

Every NexortError prints as ``FILE:LINE:COL: error: MESSAGE`` with the source line and a caret
and exits 1; anything unexpected prints one line naming it as an internal error and exits 2
(``--debug`` or NEXORT_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from compiler.errors import NexortError, UsageError
from compiler.ir import Instruction, Program
from compiler.parse import parse_file
from compiler.printer import format_instruction, print_program
from compiler.serialize import program_dict

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[Command, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(
    name: str, help_text: str, options: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Command], Command]:
    """Register ``nexort NAME``: ``options`` adds its arguments."""

    def register(fn: Command) -> Command:
        COMMANDS[name] = (fn, options, help_text)
        return fn

    return register


def _consts(values: list[str]) -> dict[str, int]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--const wants NAME=INTEGER, got {item!r}")
        try:
            out[name.strip()] = int(value)
        except ValueError:
            raise UsageError(f"--const {name.strip()} must be an integer, got {value!r}") from None
    return out


def load(args: argparse.Namespace) -> Program:
    return parse_file(args.file, _consts(args.const))


def _file_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="architecture file (.nx)")
    p.add_argument(
        "--const",
        action="append",
        default=[],
        metavar="NAME=INT",
        help="override a const of the arch (e.g. S=16)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


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


class Reporter:
    """Progress on stderr for runs longer than a second (only when stderr is a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.monotonic()

    def __call__(self, k: int, total: int, ins: Instruction) -> None:
        if self.enabled and time.monotonic() - self.start > 1.0:
            text = format_instruction(ins)[:60]
            print(f"\r[{k + 1}/{total}] {text:<60}", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled and time.monotonic() - self.start > 1.0:
            print("\r" + " " * 80 + "\r", end="", file=sys.stderr, flush=True)


def _fraction(text: str) -> float:
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


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


def _load_commands() -> None:
    """Import the modules that register further subcommands (one import line each)."""
    import compiler.cli_abcd  # abcd
    import compiler.cli_grad  # backprop, total
    import compiler.cli_limits  # noqa: F401 - lower, limit-scalars


def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    parser = argparse.ArgumentParser(
        prog="nexort",
        description="Compile neural architectures to Tensor Programs and run them at finite width.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (fn, options, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        options(p)
        p.set_defaults(func=fn)
    return parser


def _read_quietly(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NexortError as e:
        if e.source is None and e.loc is not None and os.path.isfile(str(e.loc.file)):
            e.source = _read_quietly(str(e.loc.file))  # quote the line of any located error
        print(e.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nexort … | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # a bug: one clear line unless asked for the traceback
        if args.debug or os.environ.get("NEXORT_DEBUG"):
            raise
        print(
            f"internal error: {type(e).__name__}: {e} (a bug in nexort; rerun with --debug)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
