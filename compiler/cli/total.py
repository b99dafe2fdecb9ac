"""``nexort total FILE (--inputs DATA | --batch B)``: the total program for B inputs (spec 02
§2.3), one backpropagation copy per input with the parameters shared; with ``--json`` also where
every copy's gradients are and, for ``--inputs``, the value of every input coordinate."""

from __future__ import annotations

import argparse
from typing import Any

from compiler.cli.backprop import gradient_options, grads_dict
from compiler.cli.common import Report, command, load
from compiler.cli.options import data_options, integer_at_least


def _options(p: argparse.ArgumentParser) -> None:
    gradient_options(p)
    which = p.add_mutually_exclusive_group(required=True)
    data_options(which)
    which.add_argument("--batch", type=integer_at_least(1), metavar="B", help="B symbolic inputs")
    p.add_argument("--forward-only", action="store_true",
                   help="copies of the forward program only (no gradients; NNGP kernels)")


@command("total", "print the total program: one backprop copy per input, parameters shared",
         _options)
def cmd_total(args: argparse.Namespace) -> Report:
    from compiler.passes.pipeline import run_pass
    from compiler.passes.total import TotalOptions, batch_size
    from compiler.printer import print_program
    from compiler.serialize import program_dict
    from runtime.data import load_inputs

    program = load(args)
    if args.batch is not None:
        data, inputs = None, args.batch
    else:
        data, _ = load_inputs(args.inputs)
        inputs = data
    options = TotalOptions(batch_size(program, inputs), args.output, not args.forward_only,
                           not args.no_input_gradients)
    result = run_pass(program, options)
    def more() -> dict[str, Any]:
        doc: dict[str, Any] = {"program": program_dict(result.program), "batch": result.batch}
        if data is not None:
            doc["input_values"] = {k: float(v[0]) for k, v in result.bind(data).items()}
        doc["copies"] = [grads_dict(g) for g in result.grads or ()]
        return doc

    source = "symbolic inputs" if data is None else f"the {result.batch} inputs of {args.inputs}"
    head = (f"total program of {args.file} by nexort for {source} (B = {result.batch}): "
            "variables of input i end in _ξi, parameters are shared\n"
            "run it with the data flattened row by row into one input")
    return Report({"arch": program.name, "inputs": list(result.program.input_names)},
                  print_program(result.program, header=head), more)
