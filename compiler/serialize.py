"""Program → JSON-ready dict (``nexort compile --json``), for scripts.

Formulas appear as text in the language (parseable, exact rationals) together with their argument
list, so a consumer never has to parse sympy's own syntax.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, assert_never

from compiler.ir import Avg, Instruction, MatMul, Nonlin, OuterNonlin, Program, formula_args
from compiler.printer import format_formula, format_instruction


def instruction_dict(ins: Instruction, kinds: Mapping[str, str]) -> dict[str, Any]:
    base: dict[str, Any] = {"out": ins.out, "text": format_instruction(ins, kinds)}
    if ins.loc is not None:
        base["line"] = ins.loc.line
    match ins:
        case MatMul(matrix=w, arg=x, transpose=t):
            return {"op": "matmul", **base, "matrix": w, "arg": x, "transpose": t}
        case Avg(arg=x):
            return {"op": "avg", **base, "arg": x}
        case Nonlin() | OuterNonlin():
            args = [
                {"symbol": s.name, "var": var, "copy": copy, "kind": kinds[var]}
                for s, var, copy in formula_args(ins)
            ]
            op = "nonlin" if isinstance(ins, Nonlin) else "outer_nonlin"
            extra = {"copies": list(ins.copies)} if isinstance(ins, OuterNonlin) else {}
            return {"op": op, **base, **extra, "formula": format_formula(ins.formula), "args": args}
        case _:
            assert_never(ins)


def program_dict(program: Program) -> dict[str, Any]:
    kinds = dict(program.kinds)
    return {
        "name": program.name,
        "inputs": [{"name": i.name, "shape": list(i.shape)} for i in program.inputs],
        "params": [
            {
                "name": p.name,
                "kind": p.kind,
                "shape": list(p.shape),
                "init": None if p.init is None else format_formula(p.init),
            }
            for p in program.params
        ],
        "body": [instruction_dict(ins, kinds) for ins in program.body],
        "outputs": list(program.outputs),
    }
