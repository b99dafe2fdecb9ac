"""The NE⊗OR⊤ intermediate representation (spec 01 §1.1–1.2).

A :class:`Program` holds its initial objects (inputs and parameters: matrices, vectors, scalars)
and an ordered, single-assignment tuple of instructions:

* :class:`MatMul`       y = W x or y = Wᵀ x                       (vector)
* :class:`Avg`          θ = avg(x) = (1/n) Σ_α x_α                  (scalar)
* :class:`Nonlin`       y_α = ψ(x_α; θ), ψ a sympy formula          (vector)
* :class:`OuterNonlin`  y_α = n^{-r} Σ_{β₁..β_r} ψ(x_α; x_{β₁}; …; θ) (vector, order r ≥ 1)

Formulas name their arguments by symbol: ``x`` is vector x at the own index α (slot 0), ``x[b]``
is vector x at copy index b (slot b of an OuterNonlin), scalars appear by name, ``n`` is the width.
Source locations ride along but never take part in equality, so ``parse(print(p)) == p``; a
formula's numeric constants are made canonical as the instruction is built (the tree its printed
text parses back to: :mod:`compiler.radicals`), whichever pass builds it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Literal, assert_never

import sympy

from compiler.radicals import canonical_constants
from compiler.shapeprint import shape_of
from compiler.symbols import WIDTH

Kind = Literal["matrix", "vector", "scalar"]
KINDS: tuple[Kind, ...] = ("matrix", "vector", "scalar")


@dataclass(frozen=True)
class Loc:
    """A position in a source file (1-based line and column)."""

    file: str
    line: int
    column: int
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def indexed(base: str, index: tuple[int, ...]) -> str:
    """The variable name of entry ``index`` of a group: indexed("U", (3,)) == "U[3]"."""
    return base + "".join(f"[{i}]" for i in index)


def group_names(base: str, shape: tuple[int, ...]) -> tuple[str, ...]:
    """All entry names of a group, in row-major order (a shape () group is the name itself)."""
    return tuple(indexed(base, idx) for idx in itertools.product(*(range(s) for s in shape)))


@dataclass(frozen=True)
class Input:
    """``input xi[d]``: the input coordinates, initial scalars set per input (spec 02 §2.1)."""

    name: str
    shape: tuple[int, ...] = ()
    loc: Loc | None = field(default=None, compare=False, repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        return group_names(self.name, self.shape)


@dataclass(frozen=True)
class Param:
    """``param NAME : KIND[shape] (= init)``: a group of initial matrices, vectors or scalars.

    ``init`` is a deterministic initial value (scalars only, spec 03 §3.3); otherwise the executor
    draws the parameter (matrices N(0, 1/n), vectors and scalars N(0, 1); spec 01 §1.3)."""

    name: str
    kind: Kind
    shape: tuple[int, ...] = ()
    init: sympy.Rational | None = None
    loc: Loc | None = field(default=None, compare=False, repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        return group_names(self.name, self.shape)


@dataclass(frozen=True)
class MatMul:
    """y = W x (or y = Wᵀ x when ``transpose``): 01 §1.2 MatMul."""

    out: str
    matrix: str
    arg: str
    transpose: bool = False
    loc: Loc | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Avg:
    """θ = avg(x): 01 §1.2 Avg."""

    out: str
    arg: str
    loc: Loc | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Nonlin:
    """y_α = ψ(x_α; θ): 01 §1.2 OuterNonlin of order 0. A formula without vector symbols is the
    constant vector ψ(θ)·1 (printed ``vec(…)``)."""

    out: str
    formula: sympy.Expr
    loc: Loc | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _canonical_formula(self)


@dataclass(frozen=True)
class OuterNonlin:
    """y_α = n^{-r} Σ_β ψ(x_α; x_{β₁}; …; x_{β_r}; θ) with r = len(copies) ≥ 1 (01 §1.2)."""

    out: str
    copies: tuple[str, ...]
    formula: sympy.Expr
    loc: Loc | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _canonical_formula(self)

    @property
    def order(self) -> int:
        return len(self.copies)


def _canonical_formula(ins: Nonlin | OuterNonlin) -> None:
    """Make the formula's numeric constants canonical (:mod:`compiler.radicals`), so that every
    program the printer sees parses back from its text (spec 06 §6) whichever pass built it.
    Whether a formula holds a constant to rebuild is a property of its shape (numbers are part
    of the shape tree, names are not): it is decided once per shape tree, and a total program's
    copies of one formula share their shape tree, found by the formula's identity."""
    f = ins.formula
    shape = shape_of(f)
    if shape is None:  # printed directly (names matter, or too deep): decide on the formula
        new = canonical_constants(f)
    else:
        known = _CHANGES.get(id(shape.tree))
        if known is None or known[0] is not shape.tree:
            new = canonical_constants(f)
            if len(_CHANGES) >= _MAX_TREES:
                _CHANGES.clear()
            _CHANGES[id(shape.tree)] = (shape.tree, new is not f)
        else:
            new = canonical_constants(f) if known[1] else f
    if new is not f:
        object.__setattr__(ins, "formula", new)  # still frozen to every caller


# shape tree's id → (the tree, kept alive so that its id is not reused; whether its formulas'
# constants change)
_CHANGES: dict[int, tuple[object, bool]] = {}
_MAX_TREES = 50_000


Instruction = MatMul | Avg | Nonlin | OuterNonlin

_COPY_REF = re.compile(r"^(?P<var>.+)\[(?P<copy>[^\W\d]\w*)\]$")


def copy_ref(var: str, copy: str) -> str:
    """The symbol name of vector ``var`` read at copy index ``copy`` (e.g. ``x[b]``)."""
    return f"{var}[{copy}]"


def split_symbol(name: str, copies: tuple[str, ...] = ()) -> tuple[str, str | None]:
    """(variable, copy index or None) of a formula symbol name, given the instruction's copies."""
    m = _COPY_REF.match(name)
    if m and m.group("copy") in copies:
        return m.group("var"), m.group("copy")
    return name, None


def formula_args(instr: Nonlin | OuterNonlin) -> tuple[tuple[sympy.Symbol, str, str | None], ...]:
    """(symbol, variable, copy or None) for every argument symbol of a formula, sorted by name;
    the width ``n`` is not an argument."""
    return _formula_args(instr.formula, instr.copies if isinstance(instr, OuterNonlin) else ())


@lru_cache(maxsize=1 << 16)
def _formula_args(
    formula: sympy.Expr, copies: tuple[str, ...]
) -> tuple[tuple[sympy.Symbol, str, str | None], ...]:
    # remembered: the limit engines ask again and again, and free_symbols of a large formula
    # (an unrolled Adam update) is a full tree walk (a fifth of the mu-reference path's time)
    syms = sorted((s for s in formula.free_symbols if s != WIDTH), key=lambda s: s.name)
    return tuple((s, *split_symbol(s.name, copies)) for s in syms)


def reads(instr: Instruction) -> tuple[str, ...]:
    """The variables an instruction reads (matrix included), in a stable order, no repeats."""
    match instr:
        case MatMul(matrix=w, arg=x):
            return (w, x)
        case Avg(arg=x):
            return (x,)
        case Nonlin() | OuterNonlin():
            return tuple(dict.fromkeys(var for _, var, _ in formula_args(instr)))
        case _:
            assert_never(instr)


def out_kind(instr: Instruction) -> Kind:
    """The kind of the object an instruction creates."""
    match instr:
        case Avg():
            return "scalar"
        case MatMul() | Nonlin() | OuterNonlin():
            return "vector"
        case _:
            assert_never(instr)


@dataclass(frozen=True)
class Program:
    """An architecture or any program a pass derives from one (01 §1.1–1.2, 02 §2.1)."""

    name: str
    inputs: tuple[Input, ...]
    params: tuple[Param, ...]
    body: tuple[Instruction, ...]
    outputs: tuple[str, ...]

    @cached_property
    def kinds(self) -> dict[str, Kind]:
        """Kind of every named object: inputs (scalars), parameters, instruction outputs."""
        kinds: dict[str, Kind] = {}
        for inp in self.inputs:
            kinds.update(dict.fromkeys(inp.names, "scalar"))
        for p in self.params:
            kinds.update(dict.fromkeys(p.names, p.kind))
        for ins in self.body:
            kinds[ins.out] = out_kind(ins)
        return kinds

    @property
    def declarations(self) -> tuple[Input | Param, ...]:
        """The initial objects' declarations: inputs, then parameters."""
        return (*self.inputs, *self.params)

    @cached_property
    def input_names(self) -> tuple[str, ...]:
        return tuple(name for inp in self.inputs for name in inp.names)

    def param_names(self, kind: Kind | None = None) -> tuple[str, ...]:
        """Entry names of all parameters (of one kind if given), in declaration order."""
        return tuple(
            name for p in self.params if kind is None or p.kind == kind for name in p.names
        )

    @cached_property
    def producer(self) -> dict[str, Instruction]:
        """The instruction that creates each non-initial variable."""
        return {ins.out: ins for ins in self.body}

    def replace(self, **changes: object) -> Program:
        """A copy with some fields changed (a Program is immutable)."""
        fields: dict[str, object] = {
            "name": self.name,
            "inputs": self.inputs,
            "params": self.params,
            "body": self.body,
            "outputs": self.outputs,
        }
        fields.update(changes)
        return Program(**fields)  # type: ignore[arg-type]
