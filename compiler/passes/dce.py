"""Dead-code elimination: keep the instructions some output (or a kept name) depends on.

Liveness is the one analysis of :mod:`compiler.passes.liveness`, with the outputs and ``keep``
as roots. Declarations are kept even when dead: they are the program's signature (01 §1.1), and
the executor draws parameters by declaration. ``keep`` lets a pipeline run dce after backprop
without losing the gradients, which are not outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ir import Program
from compiler.passes.liveness import live_variables
from compiler.passes.registry import PROGRAM, PassOptions, register_pass


@dataclass(frozen=True)
class DceOptions(PassOptions[Program]):
    """``keep``: names to keep alive besides the outputs."""

    keep: tuple[str, ...] = ()


def dead_code_elimination(program: Program, keep: tuple[str, ...] = ()) -> Program:
    """Drop instructions whose results no output (nor a ``keep`` name) depends on."""
    live = live_variables(program, (*program.outputs, *keep))
    return program.replace(body=tuple(i for i in program.body if i.out in live))


@register_pass("dce", DceOptions, PROGRAM, sample=DceOptions())
def run_dce(program: Program, options: DceOptions) -> Program:
    """Drop instructions whose results no output depends on (declarations are kept)."""
    return dead_code_elimination(program, options.keep)
