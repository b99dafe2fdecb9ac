"""abcd-parametrizations: exponent tables and verdicts for any architecture (spec 03).

:func:`analyse` is the entry point: it binds a parametrization (a built-in or a TOML/JSON
table, :mod:`compiler.abcd.param`) to an architecture and returns an
:class:`~compiler.abcd.verdict.Analysis` with the verdicts of 03 §3.2 (stable, faithful,
nontrivial, feature learning or operator regime), r, which parameters contribute to the limit
(05 §5.5) and the reasons. MLPs are recognised structurally and classified exactly
(:mod:`compiler.abcd.classify`); any other architecture goes through the size calculus
(:mod:`compiler.abcd.calculus`, 03 §3.3), which reproduces the MLP classification exactly on
MLPs. Exponents that blow up are reported as diverging, with their first-update exponent
(:mod:`compiler.abcd.exponent_values`).
"""

from __future__ import annotations

from typing import Literal

from compiler.abcd.param import Parametrization, resolve
from compiler.abcd.verdict import Analysis
from compiler.errors import UsageError
from compiler.ir import Program
from compiler.train import Optimizer, parse_optimizer

Method = Literal["auto", "mlp", "calculus"]


def analyse(program: Program, param: str | Parametrization, opt: str | Optimizer = "adam",
            method: Method = "auto") -> Analysis:
    """Verdicts of ``param`` (a --param spec or a bound parametrization) for ``program`` trained
    with ``opt``: the exact MLP classifier when the program is an MLP (unless
    method="calculus"), else the size calculus."""
    from compiler.abcd.calculus import analyse_sizes
    from compiler.abcd.classify import classify_mlp
    from compiler.abcd.mlp import recognise

    bound = resolve(param, program) if isinstance(param, str) else param
    optimizer = parse_optimizer(opt) if isinstance(opt, str) else opt
    if method in ("auto", "mlp"):
        structure = recognise(program)
        if structure is not None:
            return classify_mlp(structure, bound, optimizer)
        if method == "mlp":
            raise UsageError(f"arch {program.name} is not an MLP (spec 03 §3.2 Eq. 2.3: "
                             "v ⊙ φ(W^L … φ(U·ξ)) and nothing else); use --method calculus")
    return analyse_sizes(program, bound, optimizer)


__all__ = ["Analysis", "Optimizer", "Parametrization", "analyse", "parse_optimizer", "resolve"]
