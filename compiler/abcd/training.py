"""The powers of n in the unrolled training program of an abcd-parametrization (spec 04 §4.3).

Training is a NE⊗OR⊤ program in which the parametrization appears only through powers of the
width, as scalars (04 §4.3):

| where                                  | power of n          |
|----------------------------------------|---------------------|
| matrix W: W₀x (entries N(0, 1/n))       | ½ − (a+b)           |
| matrix W: its update Δw x (sum over β)  | 1 − (a+c)           |
| matrix W: the input of Q                | d − a − e_out       |
| vector V: initial value n^{-a}v         | −(a+b)              |
| vector V: update                        | −(a+c)              |
| vector V: the input of Q                | d − a − e_out       |
| scalar θ: initial value (if random)     | −(a+b)              |
| scalar θ: update                        | −(a+c)              |
| scalar θ: the input of Q                | d − a + 1 − e_out   |
| output f = n^{1−e_out}·avg(o)           | 1 − e_out           |

In μP every one of them is 0 for every architecture: the μP training program is width free
(Rem. 2.7.2, 2.9.28), and its ket limit is the μ-limit (05 §5.4). Negative powers mark terms that
vanish in the limit, positive ones instability. :func:`training_width_exponents` lists them from
the table; :func:`width_powers` reads the powers of n that actually occur in a program's formulas,
so that the unroll pass (a later issue) can be checked against the table with
:func:`assert_width_free` once it exists.
"""

from __future__ import annotations

import sympy

from compiler.abcd.conditions import Exp
from compiler.abcd.param import HALF, Parametrization
from compiler.ir import Nonlin, OuterNonlin, Program
from compiler.symbols import WIDTH


def training_width_exponents(program: Program, param: Parametrization) -> dict[str, Exp]:
    """Every power of n the training program of ``program`` under ``param`` contains."""
    out: dict[str, Exp] = {}
    e_out = param.e_out
    for p in program.params:
        e = param[p.name]
        if p.kind == "matrix":
            out[f"{p.name}: W_0 x"] = HALF - e.A
            out[f"{p.name}: update"] = 1 - e.C
            out[f"{p.name}: Q input"] = e.D - e_out
        else:
            if p.init is None:
                out[f"{p.name}: initial value"] = -e.A
            out[f"{p.name}: update"] = -e.C
            out[f"{p.name}: Q input"] = e.D - e_out + (1 if p.kind == "scalar" else 0)
    out["output f"] = 1 - e_out
    return out


def width_powers(program: Program) -> dict[str, set[Exp]]:
    """The exponents k of every n^k appearing in the formulas of ``program`` (by variable)."""
    out: dict[str, set[Exp]] = {}
    for ins in program.body:
        if not isinstance(ins, Nonlin | OuterNonlin) or WIDTH not in ins.formula.free_symbols:
            continue
        powers = set()
        for node in sympy.preorder_traversal(ins.formula):
            if isinstance(node, sympy.Pow) and node.base == WIDTH:
                powers.add(node.exp)
        bare = ins.formula.xreplace({sympy.Pow(WIDTH, k): sympy.Dummy() for k in powers})
        if WIDTH in bare.free_symbols:
            powers.add(sympy.S.One)
        out[ins.out] = powers
    return out


def assert_width_free(training_program: Program) -> None:
    """Fail unless no power of n other than n^0 occurs in ``training_program`` (04 §4.3: the μP
    training program is width free). For the unroll pass's tests once it exists."""
    powers = {x: ks for x, ks in width_powers(training_program).items() if ks - {0}}
    assert not powers, f"the training program is not width free: {powers}"
