"""``nexort backprop`` and ``nexort total``: print the gradient programs of an architecture.

``backprop FILE [--output NAME]`` prints the backpropagation program of F = avg(output)
(spec 02 §2.2); ``total FILE (--inputs DATA | --batch B)`` prints the total program for B inputs
(02 §2.3). Both print parseable source text, or with ``--json`` the program as data together
with where the gradients are (variable → gradient, and the uses of every matrix, whose outer
products (1/n)·Σ a bᵀ make up ∂F/∂W).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from compiler.cli.common import _file_options, command, load
from compiler.errors import NexortError, UsageError
from compiler.frontend.syntax import read_source
from compiler.passes.backprop import GradientMap, backprop_map
from compiler.passes.total import total_map
from compiler.printer import print_program
from compiler.serialize import program_dict
from compiler.verify import verify


def _grad_options(p: argparse.ArgumentParser) -> None:
    _file_options(p)
    p.add_argument("--output", metavar="NAME", help="the output vector o of F = avg(o) "
                   "(default: the only output)")
    p.add_argument("--no-input-gradients", action="store_true",
                   help="leave out the gradients of the input scalars")


def _total_options(p: argparse.ArgumentParser) -> None:
    _grad_options(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--inputs", metavar="DATA",
                       help=".npz with X_train (and X_test), or 1,2,3 for one input")
    which.add_argument("--batch", type=int, metavar="B", help="B symbolic inputs")
    p.add_argument("--forward-only", action="store_true",
                   help="copies of the forward program only (no gradients; NNGP kernels)")


def _quoting_source(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Errors located in the architecture file (e.g. a step the gradient must pass through) show
    the offending line with a caret, like parse errors do."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except NexortError as e:
            if e.source is None and e.loc is not None and e.loc.file == args.file:
                e.source = read_source(args.file)
            raise

    run.__doc__ = fn.__doc__
    return run


def grads_dict(grads: GradientMap) -> dict[str, Any]:
    """A gradient map as JSON-ready data."""
    return {
        "output": grads.output,
        "gradients": dict(grads.names),
        "matrix_uses": [
            {"matrix": u.matrix, "transpose": u.transpose, "out": u.out, "arg": u.arg,
             "d_out": u.d_out, "outer": list(u.outer)}
            for u in grads.uses
        ],
    }


@command("backprop", "print the backpropagation program (scaled gradients of F = avg(output))",
         _grad_options)
@_quoting_source
def cmd_backprop(args: argparse.Namespace) -> int:
    result = backprop_map(load(args), args.output, not args.no_input_gradients)
    verify(result.program)  # a pass's result is verified before anyone sees it
    if args.json:
        print(json.dumps({"program": program_dict(result.program), **grads_dict(result.grads)},
                         indent=1, ensure_ascii=False))
        return 0
    head = (f"backpropagation of {args.file} by nexort: dx = n·∂F/∂x, dθ = ∂F/∂θ, "
            f"F = avg({result.grads.output})\n"
            "∂F/∂W = (1/n)·Σ dy xᵀ over the uses y = W x (and (1/n)·Σ x dyᵀ over y = W.T @ x)")
    print(print_program(result.program, header=head), end="")
    return 0


@command("total", "print the total program: one backprop copy per input, parameters shared",
         _total_options)
@_quoting_source
def cmd_total(args: argparse.Namespace) -> int:
    from runtime.data import load_inputs

    program = load(args)
    if args.batch is not None:
        data, inputs = None, args.batch
    else:
        data, _ = load_inputs(args.inputs)
        inputs = data
    if args.batch is not None and args.batch < 1:
        raise UsageError("--batch must be a positive integer")
    result = total_map(program, inputs, args.output, not args.forward_only,
                       not args.no_input_gradients)
    verify(result.program)
    if args.json:
        out: dict[str, Any] = {"program": program_dict(result.program), "batch": result.batch}
        if data is not None:
            out["inputs"] = {k: float(v[0]) for k, v in result.bind(data).items()}
        out["copies"] = [grads_dict(g) for g in result.grads or ()]
        print(json.dumps(out, indent=1, ensure_ascii=False))
        return 0
    source = "symbolic inputs" if data is None else f"the {result.batch} inputs of {args.inputs}"
    head = (f"total program of {args.file} by nexort for {source} (B = {result.batch}): "
            "variables of input i end in _ξi, parameters are shared\n"
            "run it with the data flattened row by row into one input")
    print(print_program(result.program, header=head), end="")
    return 0
