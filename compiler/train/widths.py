"""The powers of n in the unrolled training program of an abcd-parametrization (spec 04 §4.3).

Training is a NE⊗OR⊤ program in which the parametrization appears only through powers of the
width, as scalars (04 §4.3), with invariants A = a+b, C = a+c, D = d−a (03 §3.1):

| where                                  | power of n          | field of the record     |
|----------------------------------------|---------------------|-------------------------|
| matrix W: W₀x (entries N(0, 1/n))       | ½ − A               | ``initial``             |
| matrix W: its update Δw x (sum over β)  | 1 − C               | ``update``              |
| matrix W: the input of Q                | D − e_out           | ``q_input``             |
| vector V: initial value n^{-a}v         | −A                  | ``initial``             |
| vector V: update                        | −C                  | ``update``              |
| vector V: the input of Q                | D − e_out           | ``q_input``             |
| scalar θ: initial value (if random)     | −A                  | ``initial``             |
| scalar θ: update                        | −C                  | ``update``              |
| scalar θ: the input of Q                | D + 1 − e_out       | ``q_input``             |
| output f = n^{1−e_out}·avg(o)           | 1 − e_out           | ``output``              |

A vector or scalar parameter with a deterministic initial value (``= formula``) has no random
initial term (``initial`` is None). In μP every power is 0 for every architecture: the μP training
program is width free (Rem. 2.7.2, 2.9.28) and its ket limit is the μ-limit (05 §5.4); negative
powers mark terms that vanish in the limit, positive ones instability.
:func:`training_width_exponents` gives the table as a :class:`TrainingWidthExponents`;
:func:`width_powers` reads the powers of n that actually occur in a program's formulas, and
:func:`check_width_free` raises a :class:`~compiler.errors.VerifyError` naming the instructions
that carry one (for the unroll pass's output).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import sympy

from compiler.abcd.conditions import Exp
from compiler.abcd.param import HALF, Parametrization
from compiler.errors import VerifyError
from compiler.ir import Nonlin, OuterNonlin, Program
from compiler.printer import format_instruction
from compiler.symbols import WIDTH


@dataclass(frozen=True)
class ParamWidthExponents:
    """The powers of n through which one parameter tensor enters the training program."""

    name: str
    kind: Literal["matrix", "vector", "scalar"]
    initial: Exp | None  # W₀x for a matrix; the random initial value n^{-a}p₀ otherwise
    update: Exp
    q_input: Exp

    def items(self) -> Iterator[tuple[str, Exp]]:
        """(where, exponent) for every power this parameter contributes."""
        first = "W_0 x" if self.kind == "matrix" else "initial value"
        if self.initial is not None:
            yield f"{self.name}: {first}", self.initial
        yield f"{self.name}: update", self.update
        yield f"{self.name}: Q input", self.q_input


@dataclass(frozen=True)
class TrainingWidthExponents:
    """Every power of n of the training program: per parameter, and the output's."""

    params: tuple[ParamWidthExponents, ...]
    output: Exp

    def __getitem__(self, name: str) -> ParamWidthExponents:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def items(self) -> Iterator[tuple[str, Exp]]:
        for p in self.params:
            yield from p.items()
        yield "output f", self.output

    def exponents(self) -> set[Exp]:
        return {e for _, e in self.items()}

    @property
    def width_free(self) -> bool:
        return all(e == 0 for _, e in self.items())


def training_width_exponents(program: Program, param: Parametrization) -> TrainingWidthExponents:
    """The powers of n the training program of ``program`` under ``param`` contains (table)."""
    e_out, rows = param.e_out, []
    for p in program.params:
        e = param[p.name]
        if p.kind == "matrix":
            rows.append(ParamWidthExponents(p.name, "matrix", HALF - e.A, 1 - e.C, e.D - e_out))
        else:
            initial = -e.A if p.init is None else None
            extra = 1 if p.kind == "scalar" else 0  # dΘ is not scaled by n like dV (04 §4.3)
            rows.append(ParamWidthExponents(p.name, p.kind, initial, -e.C, e.D - e_out + extra))
    return TrainingWidthExponents(tuple(rows), 1 - e_out)


def width_powers(program: Program) -> dict[str, frozenset[Exp]]:
    """The exponents k of every n^k appearing in the formulas of ``program`` (by variable)."""
    out: dict[str, frozenset[Exp]] = {}
    for ins in program.body:
        if not isinstance(ins, Nonlin | OuterNonlin) or WIDTH not in ins.formula.free_symbols:
            continue
        powers = {node.exp for node in sympy.preorder_traversal(ins.formula)
                  if isinstance(node, sympy.Pow) and node.base == WIDTH}
        bare = ins.formula.xreplace({sympy.Pow(WIDTH, k): sympy.Dummy() for k in powers})
        if WIDTH in bare.free_symbols:
            powers.add(sympy.S.One)
        out[ins.out] = frozenset(powers)
    return out


def check_width_free(program: Program) -> None:
    """Raise unless no power of n other than n⁰ occurs in ``program`` (04 §4.3: the μP training
    program is width free); the error quotes the first offending instruction."""
    powers = {x: ks for x, ks in width_powers(program).items() if ks - {0}}
    if not powers:
        return
    first = next(ins for ins in program.body if ins.out in powers)
    listed = ", ".join(f"{x}: {sorted(map(str, ks))}" for x, ks in powers.items())
    raise VerifyError(f"{program.name} is not width free (powers of n in {listed}): "
                      f"{format_instruction(first, program.kinds)}")
