"""``nexort backprop FILE [--output NAME]``: the backpropagation program of F = avg(output)
(spec 02 §2.2) as parseable source text, or with ``--json`` the program as data together with
where the gradients are (variable → gradient, and the uses of every matrix, whose outer products
(1/n)·Σ a bᵀ make up ∂F/∂W)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from compiler.cli.common import Report, arch_summary, command, load
from compiler.cli.options import file_options, output_choice

if TYPE_CHECKING:
    from compiler.passes.gradients import GradientMap


def gradient_options(p: argparse.ArgumentParser) -> None:
    """What ``backprop`` and ``total`` share: which output, whether input gradients."""
    file_options(p)
    output_choice(p, "the output vector o of F = avg(o) (default: the only output)")
    p.add_argument("--no-input-gradients", action="store_true",
                   help="leave out the gradients of the input scalars")


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
         gradient_options)
def cmd_backprop(args: argparse.Namespace) -> Report:
    from compiler.passes.backprop import BackpropOptions
    from compiler.passes.pipeline import run_pass
    from compiler.printer import print_program
    from compiler.serialize import program_dict

    program = load(args)
    result = run_pass(program, BackpropOptions(args.output, not args.no_input_gradients))
    doc = {**arch_summary(program), "program": program_dict(result.program),
           **grads_dict(result.grads)}
    head = (f"backpropagation of {args.file} by nexort: dx = n·∂F/∂x, dθ = ∂F/∂θ, "
            f"F = avg({result.grads.output})\n"
            "∂F/∂W = (1/n)·Σ dy xᵀ over the uses y = W x (and (1/n)·Σ x dyᵀ over y = W.T @ x)")
    return Report(doc, print_program(result.program, header=head))
