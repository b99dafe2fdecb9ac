"""``nexort lower FILE [--latex]``: the kets (limit objects) of a program in bra-ket notation
(spec 01 §1.4); JSON lists every ket and every dot coefficient with the rule that decided it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from compiler.cli.common import Report, arch_summary, command, load
from compiler.cli.options import file_options

if TYPE_CHECKING:
    from compiler.kets.lowering import KetProgram


def _options(p: argparse.ArgumentParser) -> None:
    file_options(p)
    p.add_argument("--latex", action="store_true", help="LaTeX (align*) instead of unicode")


@command("lower", "print the kets (limit objects) of a program in bra-ket notation", _options)
def cmd_lower(args: argparse.Namespace) -> Report:
    from compiler.kets.printer import print_kets
    from compiler.passes.lower import LowerOptions
    from compiler.passes.pipeline import run_pass

    kets = run_pass(load(args), LowerOptions())
    return Report(_kets_json(kets), print_kets(kets, latex=args.latex))


def _kets_json(kets: KetProgram) -> dict[str, Any]:
    from compiler.kets.lowering import MatMulKet

    dots = [
        {
            "out": s.out,
            "arg": c.arg,
            "hat": c.hat.out,
            "matrix": c.hat.matrix,
            "transpose": c.hat.transpose,
            "rule": c.rule,
            "why": c.why,
        }
        for s in kets.stmts
        if isinstance(s, MatMulKet)
        for c in s.dots
    ]
    return {
        **arch_summary(kets.source),
        "kets": [type(s).__name__ + ":" + s.out for s in kets.stmts],
        "dots": dots,
    }
