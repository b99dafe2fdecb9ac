"""Compiled formulas of a ket program and the forward-mode tangent plan (01 §1.4 Dot, §1.6).

``KetFunctions`` compiles each formula (and, on demand, its partial derivative in a slot-0 vector,
:func:`runtime.limits.aediff.formula_derivative`: Dirac deltas 0, radicals finite at a zero base)
with ``runtime.codegen.compile_formula``.  Formulas that mention the width n have no width-free
limit and are refused.

``tangent_plan`` decides, per ket, the hats whose tangents ∂|x⟩/∂H forward mode must carry:
the hats named by derivative-rule dot coefficients, propagated backwards to the arguments they
flow through (slot 0 of formulas, dot terms of MatMuls), and when each ket's tangents can be
dropped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import cache
from typing import assert_never

import numpy as np
import sympy

from compiler.errors import NumericError, UsageError
from compiler.ir import OuterNonlin, formula_args
from compiler.kets.lowering import (
    AvgLimit,
    FormulaKet,
    InitKet,
    KetProgram,
    MatMulKet,
    ScalarLimit,
    slot0_vectors,
)
from compiler.printer import format_instruction
from compiler.symbols import WIDTH
from runtime.codegen import compile_formula
from runtime.limits.aediff import formula_derivative

NumpyFunction = Callable[..., np.ndarray]


def check_finite(kets: KetProgram, name: str, value: object, stmt: object) -> None:
    """Raise :class:`NumericError` naming the limit ``name``, the ket of ``stmt`` and the source
    instruction that produced it when ``value`` holds a NaN or Inf (both evaluators use this)."""
    arr = np.asarray(value, dtype=np.float64)
    if np.all(np.isfinite(arr)):
        return
    bad = "NaN" if np.isnan(arr).any() else "Inf"
    src = getattr(stmt, "out", name)
    origin = kets.source.producer.get(src, getattr(stmt, "ins", None))
    text = format_instruction(origin, kets.source.kinds) if origin is not None else src
    raise NumericError(
        f"{bad} in the limit of {name} (ket |{src}⟩) from: {text}", getattr(stmt, "loc", None)
    )


class KetFunctions:
    """Lowered formulas and slot-0 derivatives of the formula kets of one program."""

    def __init__(self, kets: KetProgram) -> None:
        self.kets = kets
        self.kinds = kets.source.kinds

    def args(self, s: FormulaKet) -> list[tuple[str, int | None, str]]:
        """(variable, copy number 1…r or None, kind) per formula argument, in argument order."""
        own = s.ins.copies if isinstance(s.ins, OuterNonlin) else ()
        copies = {c: i + 1 for i, c in enumerate(own)}
        return [
            (var, copies[c] if c else None, self.kinds[var]) for _, var, c in formula_args(s.ins)
        ]

    def slot0(self, s: FormulaKet) -> tuple[str, ...]:
        return slot0_vectors(s.ins, self.kinds)

    def function(self, s: FormulaKet) -> NumpyFunction:
        return _function(s.ins.formula, _symbols(s), s.out)

    def derivative(self, s: FormulaKet, var: str) -> NumpyFunction:
        """∂ψ/∂(var at the own index), Dirac deltas dropped (see module docstring)."""
        sym = next(x for x, v, c in formula_args(s.ins) if v == var and c is None)
        return _derivative(s.ins.formula, _symbols(s), sym, s.out)


def _symbols(s: FormulaKet) -> tuple[sympy.Symbol, ...]:
    return tuple(x for x, _, _ in formula_args(s.ins))


@cache
def _function(formula: sympy.Expr, syms: tuple[sympy.Symbol, ...], out: str) -> NumpyFunction:
    if formula.has(WIDTH):
        raise UsageError(
            f"the formula of {out} depends on the width n; its limit needs a "
            "width-free program (absorb the n-dependence into the parametrization)"
        )
    return _compiled(*_canonical(formula, syms))


@cache
def _derivative(
    formula: sympy.Expr, syms: tuple[sympy.Symbol, ...], sym: sympy.Symbol, out: str
) -> NumpyFunction:
    _function(formula, syms, out)  # the width check
    canon, slots = _canonical(formula, syms)
    return _compiled(_canonical_derivative(canon, slots, syms.index(sym)), slots)


def _canonical(
    formula: sympy.Expr, syms: tuple[sympy.Symbol, ...]
) -> tuple[sympy.Expr, tuple[sympy.Symbol, ...]]:
    """``formula`` over positional symbols: formulas that differ only in their variables' names
    (the same instruction at every point and step of an unrolled training program) share one
    compiled function and one symbolic derivative — compiling was most of the reference path's
    time at small M (bench/bench_mu_reference.py)."""
    slots = _slots(len(syms))
    return formula.xreplace(dict(zip(syms, slots, strict=True))), slots


@cache
def _slots(k: int) -> tuple[sympy.Symbol, ...]:
    return tuple(sympy.Symbol(f"_slot{i}", real=True) for i in range(k))


@cache
def _canonical_derivative(
    canon: sympy.Expr, slots: tuple[sympy.Symbol, ...], index: int
) -> sympy.Expr:
    return formula_derivative(canon, slots[index])


@cache
def _compiled(canon: sympy.Expr, slots: tuple[sympy.Symbol, ...]) -> NumpyFunction:
    f = compile_formula(canon, slots)
    return lambda *arrays: f(*arrays, np.inf)


@dataclass(frozen=True)
class TangentPlan:
    need: dict[str, frozenset[str]]
    free_after: dict[int, tuple[str, ...]]


def tangent_plan(
    kets: KetProgram, stein_only: bool = False, keep: Collection[int] | None = None
) -> TangentPlan:
    """Which tangents to carry (see module docstring); with ``stein_only`` none are needed.
    ``keep``: the statements that run (:func:`demand`; None: all) — a tangent only a skipped
    statement reads is not carried."""
    need: dict[str, set[str]] = {}
    last: dict[str, int] = {}

    def carry(name: str, hats: Iterable[str], i: int) -> None:
        for h in hats:
            if h in kets.dep[name]:
                need.setdefault(name, set()).add(h)
                last.setdefault(name, i)

    for i in reversed(range(len(kets.stmts))):
        if keep is not None and i not in keep:
            continue
        s = kets.stmts[i]
        mine = need.get(s.out, set())
        match s:
            case MatMulKet():
                for c in s.live_dots:
                    if c.rule == "derivative" and not stein_only:
                        need.setdefault(s.hat.arg, set()).add(c.hat.out)
                        last.setdefault(s.hat.arg, i)
                    carry(c.hat.arg, mine - {s.out}, i)
            case FormulaKet():
                for a in slot0_vectors(s.ins, kets.source.kinds):
                    carry(a, mine, i)
            case ScalarLimit() | InitKet() | AvgLimit():
                pass  # no tangent flows through an initial object or an Avg (held fixed)
            case _:
                assert_never(s)
    free: dict[int, list[str]] = {}
    for name, i in last.items():
        free.setdefault(i, []).append(name)
    return TangentPlan(
        {k: frozenset(v) for k, v in need.items()}, {i: tuple(v) for i, v in free.items()}
    )


@dataclass(frozen=True)
class Demand:
    """The statements one evaluation runs (``keep``, indices in program order) and, per index,
    the names whose values are read for the last time there (``last_read``)."""

    keep: tuple[int, ...]
    last_read: dict[int, tuple[str, ...]]


def ket_reads(kets: KetProgram, i: int) -> tuple[str, ...]:
    """The names statement ``i`` reads (01 §1.4).  A formula reads its arguments; an Avg its
    argument, unless the sign-flip parity makes it exactly 0 (then nothing); a MatMul its
    argument, the arguments and hats of its live dot coefficients, and every earlier hat of its
    orientation — the hats of one orientation are drawn jointly (``runtime.limits.hats``), so
    keeping them keeps each kept hat's draw the same whatever else is requested."""
    s = kets.stmts[i]
    match s:
        case ScalarLimit() | InitKet():
            return ()
        case AvgLimit():
            odd = any(v == -1 for v in kets.parity[s.arg].values())
            return () if odd else (s.arg,)
        case FormulaKet():
            return tuple(dict.fromkeys(var for _, var, _ in formula_args(s.ins)))
        case MatMulKet():
            dots = [n for c in s.live_dots for n in (c.hat.arg, c.hat.out)]
            # Stein's lemma regresses on the earlier opposite-orientation hats the argument
            # depends on (runtime.limits.ketrules.stein_hats)
            other = (s.hat.matrix, not s.hat.transpose)
            stein = [t for t in same_before(kets, i, other) if t in kets.dep[s.hat.arg]]
            same = same_before(kets, i, s.hat.orientation)
            return tuple(dict.fromkeys([s.hat.arg, *dots, *same, *stein]))
        case _:
            assert_never(s)


def same_before(kets: KetProgram, i: int, orientation: object) -> list[str]:
    """The MatMuls before statement ``i`` whose hats have ``orientation`` (a prefix of the
    program's per-orientation list: a scan of every earlier statement made the lowering's
    reads quadratic in the statements)."""
    at, names = kets.matmuls_by_orientation.get(orientation, ([], []))
    return names[:bisect_left(at, i)]


def demand(kets: KetProgram, wanted: Iterable[str] | None) -> Demand:
    """The live set backward from the roots ``wanted`` (scalar or ket names; None: every
    scalar), as compiler/passes/liveness.py does for programs: a statement runs when its output
    is wanted or read by a statement that runs."""
    names = {s.out for s in kets.stmts}
    roots = set(kets.scalar_names if wanted is None else wanted)
    unknown = roots - names
    if unknown:
        raise UsageError(
            f"requested limits of {', '.join(sorted(unknown))}: not objects of {kets.source.name}"
        )
    live, keep = set(roots), []
    last: dict[str, int] = {}
    for i in reversed(range(len(kets.stmts))):
        if kets.stmts[i].out not in live:
            continue
        keep.append(i)
        for name in ket_reads(kets, i):
            live.add(name)
            last.setdefault(name, i)
    by_index: dict[int, list[str]] = {}
    for name, i in last.items():
        if name not in roots:
            by_index.setdefault(i, []).append(name)
    return Demand(tuple(reversed(keep)), {i: tuple(v) for i, v in by_index.items()})
