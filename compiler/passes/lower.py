"""The ``lower`` pass: Program → kets, the limit objects of 01 §1.4 (see
:mod:`compiler.kets.lowering` for the rules).

Its result is a :class:`~compiler.kets.lowering.KetProgram`, not a Program: the result type is
terminal (no Program pass can follow it in a pipeline) and is checked by the ket verifier,
:func:`compiler.kets.verify.verify_kets`; it prints in bra-ket notation.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ir import Program
from compiler.kets.lowering import KetProgram, lower
from compiler.kets.printer import print_kets
from compiler.kets.verify import verify_kets
from compiler.passes.registry import PassOptions, ResultType, register_pass

KETS: ResultType[KetProgram] = ResultType(KetProgram, verify_kets, None, print_kets, "kets")


@dataclass(frozen=True)
class LowerOptions(PassOptions[KetProgram]):
    """``lower`` has no options."""


@register_pass("lower", LowerOptions, KETS, sample=LowerOptions())
def run_lower(program: Program, options: LowerOptions) -> KetProgram:
    """Lower a program to kets: Init, Avg, OuterNonlin, Hat and Dot (01 §1.4)."""
    return lower(program)
