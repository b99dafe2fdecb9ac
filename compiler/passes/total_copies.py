"""The copies of the total program (spec 02 §2.3): building them fast, and checking them.

Copy i of the backpropagation program π_bp is π_bp with every non-parameter name ``x`` renamed
``per_input(x, i)`` (``h[2]`` → ``h_ξi[2]``), formulas included; parameters are shared.

*Building* (:meth:`Renamer.copies`). Copy 1 is renamed in full (:func:`rename_symbols`: sums
re-sorted, functions of sums re-canonicalised). Copies i ≥ 2 are renamings ``_ξ1`` → ``_ξi`` of
copy 1, which keep the order of the symbols' names (see :class:`compiler.rename.Copier`), so each
is copy 1's formulas rebuilt node for node: no sort, no evaluation, and each copy's formula shape
(:mod:`compiler.shapeprint`) known without a walk.

*Checking* (:func:`check_copies`), after the verifier has checked the total program as a
program: each copy must be the renaming of π_bp, instruction for instruction: the same kind of
instruction, the renamed output and arguments, the same parameters and copy indices, and a
formula equal to the renamed one. Copy 1's formulas are compared with the full renaming of π_bp's
(exact sympy equality); copy i's with copy 1's by shape (the same tree, the symbols' names mapped
``_ξ1`` → ``_ξi``), falling back to exact equality with the full renaming where the shapes
differ (a renaming that reorders names re-sorts sums). So a pass that corrupts one copy — a
formula reading another copy's variable, a wrong argument, a dropped term — fails the check even
when the corrupted program is well formed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import assert_never

import sympy

from compiler.errors import VerifyError
from compiler.ir import (
    Avg,
    Instruction,
    Kind,
    MatMul,
    Nonlin,
    OuterNonlin,
    Program,
    formula_args,
    out_kind,
)
from compiler.printer import format_instruction
from compiler.rename import Copier, rename_symbols, split_name
from compiler.shapeprint import assumptions_of, shape_of
from compiler.symbols import sym
from compiler.verify import check_formula_facts, check_outputs, declared_kinds, verify


def per_input(name: str, i: int) -> str:
    """The name of variable ``name`` in the copy of input i (1-based): ``h[2]`` → ``h_ξ1[2]``."""
    base, idx = split_name(name)
    return f"{base}_ξ{i}{idx}"


class Renamer:
    """Per-input renaming of every non-parameter variable of a program, formulas included."""

    def __init__(self, program: Program) -> None:
        self.shared = set(program.param_names())
        own = [*program.input_names, *(ins.out for ins in program.body)]
        self.parts = {name: split_name(name) for name in own}
        self.refs: dict[sympy.Symbol, tuple[str, str]] = {}  # symbol → (variable, "[copy]" or "")
        for ins in program.body:
            if isinstance(ins, Nonlin | OuterNonlin):
                for s, var, copy in formula_args(ins):
                    if var not in self.shared:
                        self.refs[s] = (var, "" if copy is None else f"[{copy}]")
        self._names: dict[int, dict[str, str]] = {}

    def names(self, i: int) -> dict[str, str]:
        """Every non-parameter name → its name in the copy of input i (see :func:`per_input`);
        remembered, since building, checking and the name check all ask."""
        found = self._names.get(i)
        if found is None:
            found = self._names[i] = {
                name: f"{base}_ξ{i}{idx}" for name, (base, idx) in self.parts.items()
            }
        return found

    def name(self, var: str, i: int) -> str:
        return var if var in self.shared else per_input(var, i)

    def targets(self, i: int) -> list[sympy.Symbol]:
        """The symbols of copy i, in the order of :attr:`refs`."""
        new = self.names(i)
        return [sym(new[var] + copy) for var, copy in self.refs.values()]

    def full(self, i: int) -> dict[sympy.Basic, sympy.Basic]:
        """The symbol map of copy i for :func:`rename_symbols` (a fresh dict: it is its memo)."""
        return dict(zip(self.refs, self.targets(i), strict=True))

    def instructions(
        self, body: Iterable[Instruction], i: int, formulas: Iterable[sympy.Expr] | None = None
    ) -> list[Instruction]:
        """Copy i of ``body``; its formulas renamed here, or taken in order from ``formulas``."""
        new = self.names(i)
        if formulas is None:
            symbols = self.full(i)
            formulas = (rename_symbols(ins.formula, symbols) for ins in body
                        if isinstance(ins, Nonlin | OuterNonlin))
        renamed = iter(formulas)
        out: list[Instruction] = []
        for ins in body:  # constructors, not dataclasses.replace: this loop runs B·|π_bp| times
            match ins:
                case MatMul(out=y, matrix=w, arg=x, transpose=t):
                    out.append(MatMul(new[y], w, new.get(x, x), t, ins.loc))
                case Avg(out=y, arg=x):
                    out.append(Avg(new[y], new.get(x, x), ins.loc))
                case Nonlin(out=y):
                    out.append(Nonlin(new[y], next(renamed), ins.loc))
                case OuterNonlin(out=y, copies=c):
                    out.append(OuterNonlin(new[y], c, next(renamed), ins.loc))
                case _:
                    assert_never(ins)
        return out

    def copies(self, body: tuple[Instruction, ...], batch: int) -> list[Instruction]:
        """Copies 1..B of ``body`` (see the module docstring); a copy whose renaming would
        reorder names is renamed in full."""
        first = self.instructions(body, 1)
        out = list(first)
        if batch == 1:
            return out
        formulas = [ins.formula for ins in first if isinstance(ins, Nonlin | OuterNonlin)]
        copier = Copier(formulas, self.targets(1))
        for i in range(2, batch + 1):
            out += self.instructions(body, i, copier.copy(self.targets(i)))
        return out


def verify_copies(base: Program, program: Program, batch: int) -> None:
    """Raise VerifyError unless ``program`` is the total program of ``base`` for B inputs.

    Equivalent to :func:`compiler.verify.verify` of ``program`` plus the copy check (module
    docstring), at the cost of one verification of ``base``: a renaming that is injective (all
    names distinct, checked here) and keeps kinds maps a verified program to a verified one
    (defined-before-use, kinds and copy references carry over), so each copy needs only the
    structural check, and the facts of a tree (depth, non-finite atoms) are checked where a tree
    is new: copy 1 (renaming re-canonicalises) and any formula that differs from copy 1's."""
    verify(base)
    kinds = declared_kinds(program)
    inputs = [replace(d, name=per_input(d.name, i)) for i in range(1, batch + 1)
              for d in base.inputs]
    if list(program.inputs) != inputs or program.params != base.params:
        raise VerifyError(f"the declarations of {program.name} are not the parameters of "
                          f"{base.name} and its inputs once per copy")
    outs = [ins.out for ins in program.body]
    if len(set(outs)) != len(outs) or not kinds.keys().isdisjoint(outs):
        twice = next(x for x, k in Counter([*kinds, *outs]).items() if k > 1)
        raise VerifyError(f"{twice} is assigned twice (programs are single-assignment)")
    kinds.update((ins.out, out_kind(ins)) for ins in program.body)
    check_copies(base, program, batch, kinds)
    check_outputs(program, kinds)


def check_copies(base: Program, program: Program, batch: int, kinds: dict[str, Kind]) -> None:
    """Raise VerifyError unless ``program``'s body is copies 1..B of ``base``'s (module doc)."""
    n = len(base.body)
    if len(program.body) != n * batch:
        raise VerifyError(f"total program {program.name} has {len(program.body)} instructions, "
                          f"not B = {batch} copies of the {n} of {base.name}")
    renamer = Renamer(base)
    first = program.body[:n]
    symbols1 = renamer.full(1)

    def same1(b: Instruction, c: Instruction) -> bool:
        return _equal(b, c, symbols1) and _facts_ok(c, kinds)

    _check_copy(base.body, first, renamer.names(1), 1, same1)
    names1 = [s.name for s in renamer.targets(1)]
    for i in range(2, batch + 1):
        to_i = dict(zip(names1, (s.name for s in renamer.targets(i)), strict=True))
        full: list[dict[sympy.Basic, sympy.Basic]] = []  # built only if a shape differs

        def same(b: Instruction, c: Instruction, c1: Instruction, i: int = i,
                 to_i: dict[str, str] = to_i,
                 full: list[dict[sympy.Basic, sympy.Basic]] = full) -> bool:
            if _same_shape(c1, c, to_i):
                return True  # copy 1's tree: its facts were checked
            full[:] = full or [renamer.full(i)]
            return _equal(b, c, full[0]) and _facts_ok(c, kinds)

        copy = program.body[(i - 1) * n : i * n]
        _check_copy(base.body, copy, renamer.names(i), i, same, first)


def _check_copy(
    base: tuple[Instruction, ...], copy: tuple[Instruction, ...], new: dict[str, str], i: int,
    same: Callable[..., bool], first: tuple[Instruction, ...] | None = None,
) -> None:
    """Each instruction of ``copy`` is the one of ``base`` renamed by ``new``; formula
    instructions compared by ``same(base instruction, copy's[, copy 1's])``."""
    for k, (b, c) in enumerate(zip(base, copy, strict=True)):
        if not _renamed(b, c, new, same, None if first is None else first[k]):
            raise VerifyError(
                f"copy {i} of the total program is not the backprop program renamed for input "
                f"{i}: instruction {k + 1} should be {format_instruction(b)} renamed"
                f"\n    in: {format_instruction(c)}", c.loc)


def _renamed(
    b: Instruction, c: Instruction, new: dict[str, str], same: Callable[..., bool],
    c1: Instruction | None,
) -> bool:
    """Whether ``c`` is ``b`` renamed by ``new`` (``c1``: copy 1's instruction, for shapes)."""
    if type(c) is not type(b) or c.out != new[b.out]:
        return False
    if isinstance(b, MatMul) and isinstance(c, MatMul):
        return (c.matrix, c.arg, c.transpose) == (b.matrix, new.get(b.arg, b.arg), b.transpose)
    if isinstance(b, Avg) and isinstance(c, Avg):
        return c.arg == new.get(b.arg, b.arg)
    if isinstance(b, OuterNonlin) and isinstance(c, OuterNonlin) and c.copies != b.copies:
        return False
    return same(b, c) if c1 is None else same(b, c, c1)


def _equal(b: Instruction, c: Instruction, symbols: dict[sympy.Basic, sympy.Basic]) -> bool:
    """The formula of ``c`` equals that of ``b`` renamed (both Nonlin or both OuterNonlin)."""
    assert isinstance(b, Nonlin | OuterNonlin) and isinstance(c, Nonlin | OuterNonlin)
    return bool(rename_symbols(b.formula, symbols) == c.formula)


def _facts_ok(c: Instruction, kinds: dict[str, Kind]) -> bool:
    assert isinstance(c, Nonlin | OuterNonlin)
    check_formula_facts(c, kinds)  # raises on a formula too deep or not finite
    return True


def _same_shape(i1: Instruction, ic: Instruction, to_i: dict[str, str]) -> bool:
    """Whether the formula of ``ic`` is that of ``i1`` with its symbols' names mapped by
    ``to_i`` (others kept): the same shape tree and the mapped names (shapes are remembered by
    identity: no walk for the copies the pass built)."""
    assert isinstance(i1, Nonlin | OuterNonlin) and isinstance(ic, Nonlin | OuterNonlin)
    s1, s = shape_of(i1.formula), shape_of(ic.formula)
    if s1 is None or s is None or len(s1.symbols) != len(s.symbols):
        return False
    if s.tree is not s1.tree and s.tree != s1.tree:
        return False
    return all(to_i.get(a.name, a.name) == b.name and assumptions_of(a) == assumptions_of(b)
               for a, b in zip(s1.symbols, s.symbols, strict=True))
