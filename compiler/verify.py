"""The IR verifier: run after construction and after every pass (developers' guide, "Style").

Checks, in program order: names are well formed; every object is defined once (single
assignment) and before use; kinds fit (MatMul takes an initial matrix and a vector, Avg a vector,
formulas read vectors and scalars, copy references ``x[b]`` read vectors at a copy index declared
by their OuterNonlin of order ≥ 1); formulas are finite real expressions; outputs are vectors.
It also refuses what no pass or engine supports: an OuterNonlin of order above
:data:`MAX_ORDER` (01 §1.2 allows any order r, but the limit engines of 05 integrate over at
most two copies) and a formula deeper than ``MAX_FORMULA_DEPTH`` (sympy recurses once per level).
Errors quote the printed instruction.
"""

from __future__ import annotations

import re
from collections.abc import Hashable

import sympy

from compiler.errors import VerifyError
from compiler.ir import (
    Avg,
    Instruction,
    Kind,
    MatMul,
    Nonlin,
    OuterNonlin,
    Param,
    Program,
    out_kind,
    split_symbol,
)
from compiler.printer import format_instruction
from compiler.shapeprint import shape_of
from compiler.symbols import MAX_FORMULA_DEPTH, WIDTH, FormulaFacts, formula_facts

NAME = re.compile(r"^(?!\d)\w+(\[\d+\])*$")
IDENT = re.compile(r"^(?!\d)\w+$")
MAX_ORDER = 2


def verify(program: Program) -> Program:
    """Return ``program`` unchanged if it is well formed; raise VerifyError otherwise."""
    kinds = declared_kinds(program)
    for ins in program.body:
        _check_instruction(ins, kinds)
    check_outputs(program, kinds)
    return program


def declared_kinds(program: Program) -> dict[str, Kind]:
    """The kinds of the declared names, each declaration checked (well-formed name, positive
    shape, an initial value only for scalars, no name declared twice)."""
    kinds: dict[str, Kind] = {}
    for decl in program.declarations:
        if not IDENT.match(decl.name) or any(s < 1 for s in decl.shape):
            raise VerifyError(f"bad declaration {decl.name}{list(decl.shape)}", decl.loc)
        kind: Kind = decl.kind if isinstance(decl, Param) else "scalar"  # inputs are scalars
        if isinstance(decl, Param) and decl.init is not None and kind != "scalar":
            raise VerifyError(f"{kind} parameter {decl.name} has an initial value", decl.loc)
        for name in decl.names:
            if name in kinds:
                raise VerifyError(f"{name} is declared twice", decl.loc)
            kinds[name] = kind
    return kinds


def check_outputs(program: Program, kinds: dict[str, Kind]) -> None:
    """The program has outputs, and each is a vector of ``kinds``."""
    if not program.outputs:
        raise VerifyError(f"program {program.name} has no output")
    for out in program.outputs:
        if kinds.get(out) != "vector":
            raise VerifyError(f"output {out} is not a defined vector (it is {kinds.get(out)})")


def _fail(ins: Instruction, msg: str, kinds: dict[str, Kind]) -> VerifyError:
    return VerifyError(f"{msg}\n    in: {format_instruction(ins, kinds)}", ins.loc)


def _need(ins: Instruction, name: str, want: Kind, kinds: dict[str, Kind]) -> None:
    have = kinds.get(name)
    if have is None:
        raise _fail(ins, f"{name} is used before it is defined", kinds)
    if have != want:
        raise _fail(ins, f"{name} is a {have}, but a {want} is needed here", kinds)


def _check_instruction(ins: Instruction, kinds: dict[str, Kind]) -> None:
    if not NAME.match(ins.out):
        raise _fail(ins, f"bad variable name {ins.out!r}", kinds)
    if ins.out in kinds:
        raise _fail(ins, f"{ins.out} is assigned twice (programs are single-assignment)", kinds)
    match ins:
        case MatMul(matrix=w, arg=x):
            _need(ins, w, "matrix", kinds)
            _need(ins, x, "vector", kinds)
        case Avg(arg=x):
            _need(ins, x, "vector", kinds)
        case Nonlin() | OuterNonlin():
            _check_formula(ins, kinds)
        case _:
            raise VerifyError(f"not an instruction: {ins!r}")
    kinds[ins.out] = out_kind(ins)


def facts_of(formula: sympy.Basic) -> FormulaFacts:
    """:func:`formula_facts` of ``formula``, by its shape (:mod:`compiler.shapeprint`): the depth
    and the non-finite atoms are properties of the tree, the same for every formula of a shape
    (a total program's B copies of one backprop formula are one shape), so they are computed once
    per shape; the symbols are the shape's own. The shape walk is remembered for the printer."""
    shape = shape_of(formula)
    if shape is None:
        return formula_facts(formula)
    tree = _TREE_FACTS.get(shape.tree)
    if tree is None:
        facts = formula_facts(formula)
        if len(_TREE_FACTS) >= _MAX_TREES:
            _TREE_FACTS.clear()
        tree = _TREE_FACTS[shape.tree] = (facts.depth, facts.bad)
    return FormulaFacts(tree[0], tree[1], frozenset(shape.symbols))


_TREE_FACTS: dict[Hashable, tuple[int, bool]] = {}  # shape tree → (depth, holds a bad atom)
_MAX_TREES = 50_000


def check_formula_facts(ins: Nonlin | OuterNonlin, kinds: dict[str, Kind]) -> FormulaFacts:
    """The formula is not too deep and holds no non-finite or complex atom; its facts."""
    facts = facts_of(ins.formula)
    depth = facts.depth
    if depth > MAX_FORMULA_DEPTH:  # quoting the formula would exhaust the stack: name it only
        msg = f"the formula of {ins.out} is nested {depth} levels deep"
        raise VerifyError(f"{msg}; at most {MAX_FORMULA_DEPTH} are supported", ins.loc)
    if facts.bad:
        raise _fail(ins, "formula is not a finite real expression", kinds)
    return facts


def _check_formula(ins: Nonlin | OuterNonlin, kinds: dict[str, Kind]) -> None:
    facts = check_formula_facts(ins, kinds)
    if isinstance(ins, OuterNonlin):
        if ins.order < 1 or len(set(ins.copies)) != ins.order:
            raise _fail(ins, "mean[…] needs distinct copy indices", kinds)
        if ins.order > MAX_ORDER:
            msg = (
                f"mean[…] over {ins.order} copy indices: the limit engines support at most "
                f"{MAX_ORDER}"
            )
            raise _fail(ins, msg, kinds)
        for c in ins.copies:
            if not IDENT.match(c) or c in kinds:
                raise _fail(ins, f"bad copy index {c!r}", kinds)
    copies = ins.copies if isinstance(ins, OuterNonlin) else ()
    # by name, so that the first error reported does not depend on set order; the width is no
    # variable (compared by identity first: sympy's == costs a call per symbol)
    names = sorted(s.name for s in facts.symbols if s is not WIDTH and s != WIDTH)
    for name in names:
        var, copy = split_symbol(name, copies)
        have = kinds.get(var)
        if have is None:
            raise _fail(ins, f"{var} is used before it is defined", kinds)
        if have == "matrix" or (copy is not None and have != "vector"):
            where = f" at copy index {copy}" if copy else ""
            raise _fail(ins, f"{have} {var} cannot appear in a formula{where}", kinds)
