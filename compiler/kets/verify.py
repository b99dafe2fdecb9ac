"""The ket verifier: the invariants of a lowered program (spec 01 §1.4), run after ``lower``.

A :class:`KetProgram` is well formed when its source program verifies and its statements are the
rules of 01 §1.4 applied to that program, one per object, in order: the input scalars
(``input``), the initial vectors (Init), the scalar parameters (``fixed`` with their init value,
else ``random``), then one ket per instruction, of the instruction's rule (Hat + Dot for a
MatMul, Avg, OuterNonlin). Each hat counts the earlier hats of its orientation; every dot
coefficient pairs the MatMul's argument with an earlier hat of the opposite orientation; every
vector ket has a hat dependence made of earlier hats. Errors quote the source instruction.
"""

from __future__ import annotations

from typing import assert_never

from compiler.errors import VerifyError
from compiler.ir import Avg, Instruction, Loc, MatMul, Nonlin, OuterNonlin, Program
from compiler.kets.lowering import (
    AvgLimit,
    FormulaKet,
    InitKet,
    Ket,
    KetProgram,
    MatMulKet,
    Orientation,
    ScalarLimit,
)
from compiler.printer import format_instruction
from compiler.verify import verify

RULES = ("zero", "stein", "derivative")


def verify_kets(kets: KetProgram) -> KetProgram:
    """Return ``kets`` unchanged if well formed; raise VerifyError otherwise."""
    program = verify(kets.source)
    initial = (*program.input_names, *program.param_names("vector"),
               *program.param_names("scalar"))
    expected = (*initial, *(ins.out for ins in program.body))
    names = tuple(s.out for s in kets.stmts)
    if names != expected:
        at = next((k for k, (a, b) in enumerate(zip(names, expected, strict=False)) if a != b),
                  min(len(names), len(expected)))
        raise VerifyError(f"kets of {program.name}: statement {at} is "
                          f"{names[at] if at < len(names) else 'missing'}, expected "
                          f"{expected[at] if at < len(expected) else 'nothing'}")
    for name, stmt in zip(initial, kets.stmts, strict=False):
        _check_initial(program, name, stmt)
    hats: dict[Orientation, list[str]] = {}
    for ins, stmt in zip(program.body, kets.stmts[len(initial):], strict=True):
        _check_rule(program, ins, stmt, hats)
    _check_dependence(kets)
    return kets


def _check_initial(program: Program, name: str, stmt: Ket) -> None:
    kind = program.kinds[name]
    if name in program.input_names:
        ok = stmt == ScalarLimit(name, "input")
    elif kind == "vector":
        ok = stmt == InitKet(name)
    else:
        init = next(p.init for p in program.params if name in p.names)
        ok = stmt == (ScalarLimit(name, "random") if init is None
                      else ScalarLimit(name, "fixed", init))
    if not ok:
        raise VerifyError(f"kets of {program.name}: {stmt!r} is not the limit of initial {name}")


def _check_rule(
    program: Program, ins: Instruction, stmt: Ket, hats: dict[Orientation, list[str]]
) -> None:
    def fail(msg: str, loc: Loc | None = ins.loc) -> VerifyError:
        return VerifyError(f"{msg}\n    in: {format_instruction(ins, program.kinds)}", loc)

    match ins:
        case MatMul(out=y, matrix=w, arg=x, transpose=t):
            if not isinstance(stmt, MatMulKet):
                raise fail(f"the ket of MatMul {y} is a {type(stmt).__name__}")
            mine = hats.setdefault((w, t), [])
            h = stmt.hat
            if (h.matrix, h.transpose, h.arg, h.out, h.index) != (w, t, x, y, len(mine)):
                raise fail(f"hat {h!r} does not match its MatMul")
            for c in stmt.dots:
                if c.arg != x or c.rule not in RULES or c.hat.out not in hats.get((w, not t), ()):
                    raise fail(f"dot coefficient {c!r} is not an earlier opposite hat of {x}")
            mine.append(y)
        case Avg(out=y, arg=x):
            if not isinstance(stmt, AvgLimit) or (stmt.out, stmt.arg) != (y, x):
                raise fail(f"the limit of Avg {y} is {stmt!r}")
        case Nonlin() | OuterNonlin():
            if not isinstance(stmt, FormulaKet) or stmt.ins != ins:
                raise fail(f"the ket of {ins.out} is not its formula's: {stmt!r}")
        case _:
            assert_never(ins)


def _check_dependence(kets: KetProgram) -> None:
    """Every vector ket depends on earlier hats only (its own, for a MatMul)."""
    seen: set[str] = set()
    for stmt in kets.stmts:
        match stmt:
            case MatMulKet() | FormulaKet() | InitKet():
                if stmt.out not in kets.dep:
                    raise VerifyError(f"kets of {kets.source.name}: no dependence for {stmt.out}")
                own = {stmt.out} if isinstance(stmt, MatMulKet) else set()
                stray = kets.dep[stmt.out] - seen - own
                if stray:
                    raise VerifyError(f"kets of {kets.source.name}: |{stmt.out}⟩ depends on "
                                      f"{', '.join(sorted(stray))}, not earlier hats")
                seen |= own
            case ScalarLimit() | AvgLimit():
                pass
            case _:
                assert_never(stmt)
