"""``nexort unroll FILE --param P --opt OPT --steps T [--batch B]``: print the training program.

T steps of training as one flat NE⊗OR⊤ program (spec 04 §4.3, :mod:`compiler.passes.unroll`):
step s is the backpropagation program on the step's batch, the error signal χ_s and the updates;
updated matrices act through OuterNonlins whose ψ is Q_s of the gradient history, every power of
n is an explicit factor (none under μP). ``--batch B`` symbolic points (``xi_ξi``), of which the
first ``--train`` (default all) are training points with targets ``target_ξi``; ``--batch-size``
and ``--center`` as for ``nexort train``. JSON: the program, its instruction count, the scalar
F_t(ξ^i) = avg(o) of every step and point (f = n^{1−e_out}·F) and the powers of n.
"""

from __future__ import annotations

import argparse

from compiler.cli.common import Report, arch_summary, command, load
from compiler.cli.options import (
    file_options,
    integer_at_least,
    training_options,
)


def _options(p: argparse.ArgumentParser) -> None:
    file_options(p)
    training_options(p)
    p.add_argument("--steps", type=integer_at_least(1), required=True, metavar="T",
                   help="training steps T")
    p.add_argument("--batch", type=integer_at_least(1), default=1, metavar="B",
                   help="the number of points (default 1)")
    p.add_argument("--train", type=integer_at_least(1), metavar="B_TRAIN",
                   help="the first B_TRAIN points are training points, the rest test points "
                        "(default all)")
    p.add_argument("--batch-size", type=integer_at_least(1), metavar="b",
                   help="mini-batches of b consecutive training points, cycling (default all)")
    p.add_argument("--center", action="store_true", help="train f - f_0 (spec 04 §4.2)")


@command("unroll", "print the training program: T steps of training as one NE⊗OR⊤ program",
         _options)
def cmd_unroll(args: argparse.Namespace) -> Report:
    from compiler.abcd.conditions import fmt
    from compiler.errors import UsageError
    from compiler.passes.pipeline import run_pass
    from compiler.passes.unroll import UnrollOptions
    from compiler.printer import print_program
    from compiler.serialize import program_dict

    if args.train is not None and args.train > args.batch:
        raise UsageError(f"--train {args.train} is more than the --batch {args.batch} points")
    program = load(args)
    options = UnrollOptions(args.param, args.opt, args.loss, args.steps, args.batch, args.train,
                            args.batch_size, args.center)
    result = run_pass(program, options)
    tr = result.training
    doc = {
        **arch_summary(program),
        "param": tr.param.name, "opt": args.opt, "loss": args.loss, "steps": tr.steps,
        "points": list(tr.schedule.points()), "batch_size": tr.schedule.batch_size,
        "center": tr.center, "instructions": len(result.program.body),
        "f_scalars": [list(row) for row in result.f_names],
        "f_scale": f"n^{fmt(tr.widths.output)}",
        "width_exponents": {where: fmt(e) for where, e in tr.widths.items()},
        "width_free": tr.widths.width_free,
        "program": program_dict(result.program),
    }
    head = "\n".join([
        f"training program of {args.file} by nexort (spec 04 §4.3): "
        f"{len(result.program.body)} instructions",
        *tr.format().splitlines(),
        "step s: variables end in _ξi_ts; F_ts_ξi = avg(o) with f = "
        f"n^{fmt(tr.widths.output)}·F; chi_ts_ξi the error signal; P_ts the parameter P",
    ])
    return Report(doc, print_program(result.program, header=head))
