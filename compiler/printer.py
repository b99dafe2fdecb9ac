"""Program → text in the architecture language (spec 06), one instruction per line.

The output re-parses to an equal Program (``parse(print(p)) == p``, spec 06 §6): formulas print
with sympy's string printer adapted to the language (``^`` for powers, ``abs``, ``exp(1)`` for
e), numbers are exact rationals (a float prints as the rational of its shortest decimal, 0.9 as
``9/10``: :mod:`compiler.numbers`), a Nonlin without vector arguments prints as ``vec(…)`` and an
OuterNonlin as ``mean[b, …](…)``.

sympy builds ``Abs(Abs(u))`` from ``Abs(-Abs(u))``, a node its own text does not evaluate back
to: it prints as the expression it came from (``abs(-abs(u))``), checked to evaluate to the same
tree. A root of a numeric product with its radicals uncombined is another such node; the IR never
holds one (:mod:`compiler.radicals` makes every constant the one its text parses back to).
"""

from __future__ import annotations

import collections
import functools
import itertools
import re
from collections.abc import Mapping
from typing import TypeVar, assert_never

import sympy
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from compiler.gcpause import paused_gc
from compiler.ir import (
    Avg,
    Input,
    Instruction,
    MatMul,
    Nonlin,
    OuterNonlin,
    Param,
    Program,
    indexed,
)
from compiler.numbers import float_rational
from compiler.shapeprint import print_by_shape, shape_of
from compiler.symbols import WIDTH


class _FormulaPrinter(StrPrinter):
    # symbol → the text printed in its place (a template's slot marks: compiler.shapeprint)
    slots: Mapping[sympy.Basic, str] = {}

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        return self.slots.get(expr, expr.name) if self.slots else expr.name

    def _print_Abs(self, expr: sympy.Abs) -> str:
        arg = expr.args[0]
        # sympy keeps Abs(Abs(u)) unevaluated when it comes from Abs(-Abs(u)), but abs(abs(u))
        # evaluates to abs(u): print the argument it was made from
        if (
            (isinstance(arg, sympy.Abs) or arg.is_extended_nonnegative)
            and sympy.Abs(arg) != expr
            and sympy.Abs(-arg) == expr
        ):
            return f"abs({self._print(-arg)})"
        return f"abs({self._print(arg)})"

    def _print_Exp1(self, expr: sympy.Expr) -> str:
        return "exp(1)"

    def _print_Float(self, expr: sympy.Float) -> str:
        # the rational of the shortest decimal (0.9 → 9/10), not of the binary double
        if not expr.is_finite:
            return super()._print_Float(expr)
        return self._print(float_rational(expr))

    def _print_Mul(self, expr: sympy.Mul) -> str:
        # sympy prints (1/3)·(x+1)⁻¹ as 1/(3*(x + 1)), which parses back as (3x + 3)⁻¹ (a number
        # times a sum is distributed): keep such a fractional coefficient in front.
        coeff, rest = expr.as_coeff_Mul()
        text = super()._print_Mul(expr)
        if coeff != 1 and len(sympy.Mul.make_args(rest)) > 1 and _opens_with_sum(text, coeff):
            # c·A·(u + w) printed as c*(u + w)*A parses back with c distributed over the sum
            # ((c·u + c·w)·A, a different tree): multiply the whole product instead.
            inner = self._print(rest)
            return f"-({inner})" if coeff == -1 else f"{self._print(coeff)}*({inner})"
        if (
            coeff.is_Rational
            and coeff.q != 1
            and any(f.is_Pow and f.exp.is_negative for f in sympy.Mul.make_args(rest))
        ):
            sign = "-" if coeff < 0 else ""
            return f"{sign}{abs(coeff.p)}/{coeff.q}*{self.parenthesize(rest, PRECEDENCE['Mul'])}"
        return text


# an integer (sympy prints a fraction's numerator first: -7/5·(u + w)·A as -7*(u + w)*A/5) or a
# bare minus sign applied to a parenthesis
_OPENS_WITH_SUM = re.compile(r"-?\d+\*\(|-\(")


def _opens_with_sum(text: str, coeff: sympy.Expr) -> bool:
    """Whether the printed product starts with a number (its coefficient or the coefficient's
    numerator) applied to a parenthesis: the parser multiplies those two first, and a number
    times a sum is distributed."""
    return coeff.is_Rational and _OPENS_WITH_SUM.match(text) is not None


_PRINTER = _FormulaPrinter({"order": None})


def format_formula(expr: sympy.Expr, groups: tuple[tuple[str, ...], ...] = ()) -> str:
    """A formula in the language's syntax. ``groups`` lists declared 1-D groups (as entry-name
    tuples with the group name first): a sum Σ_j U[j]·xi[j] over two whole groups of an Add
    prints as the contraction ``U . xi``."""
    return _formula_text(expr, groups)[0]


def _formula_text(
    expr: sympy.Expr, groups: tuple[tuple[str, ...], ...]
) -> tuple[str, frozenset[str]]:
    """The text of ``expr`` and the names of its symbols other than the width. Printed by shape
    (:mod:`compiler.shapeprint`); a formula holding fewer than two whole rows of groups cannot
    contract (``a . b`` needs every entry of both), so it prints as without groups."""
    known = _plain.get(id(expr))
    if known is not None and known[0] is expr:
        plain = known[1]
    else:
        plain = _remember(_plain, id(expr), (expr, _plain_text(expr)))[1]
    if not groups or not _two_whole_rows(_row_index(groups), plain[1]):
        return plain
    found = _contracted.get((id(expr), id(groups)))
    if found is not None and found[0] is expr and found[1] is groups:
        return found[2]
    contracted = _contract(expr, groups)
    text = plain[0] if contracted is expr else _print_direct_or_by_shape(contracted)
    return _remember(_contracted, (id(expr), id(groups)), (expr, groups, (text, plain[1])))[2]


def _two_whole_rows(index: dict[str, tuple[str, int, int]], names: frozenset[str]) -> bool:
    """Whether ``names`` holds every entry of at least two rows (of the given length)."""
    if index.keys().isdisjoint(names):
        return False
    count: collections.Counter[tuple[str, int]] = collections.Counter(
        (row, size) for row, _, size in map(index.get, names & index.keys())  # type: ignore[misc]
    )
    return sum(k == size for (_, size), k in count.items()) >= 2


# a command prints the same formula up to three times (program text, and the JSON document's
# instruction text and formula): remember the texts by the formula's identity (the entry keeps
# the formula alive, so its id is not reused); hashing a new formula would walk its whole tree
_MAX_TEXTS = 200_000
_plain: dict[int, tuple[sympy.Expr, tuple[str, frozenset[str]]]] = {}
_contracted: dict[tuple[int, int], tuple[sympy.Expr, object, tuple[str, frozenset[str]]]] = {}
_K = TypeVar("_K")
_V = TypeVar("_V")


def _remember(memo: dict[_K, _V], key: _K, value: _V) -> _V:
    if len(memo) >= _MAX_TEXTS:
        memo.clear()
    memo[key] = value
    return value


def _plain_text(expr: sympy.Expr) -> tuple[str, frozenset[str]]:
    shape = shape_of(expr)
    if shape is None:
        return _print_direct(expr), _names(expr)
    names = frozenset(s.name for s in shape.symbols)
    if WIDTH.name in names and any(map(_is_width, shape.symbols)):  # the width is no argument
        names = frozenset(s.name for s in shape.symbols if not _is_width(s))
    return print_by_shape(expr, _print_direct, shape), names


def _print_direct_or_by_shape(expr: sympy.Expr) -> str:
    return print_by_shape(expr, _print_direct)


def _names(expr: sympy.Expr) -> frozenset[str]:
    return frozenset(s.name for s in expr.free_symbols if not _is_width(s))


def _is_width(s: sympy.Basic) -> bool:
    return s is WIDTH or (getattr(s, "name", None) == WIDTH.name and s == WIDTH)


def _print_direct(expr: sympy.Expr, slots: Mapping[sympy.Basic, str] | None = None) -> str:
    """sympy's text of ``expr`` in the language, with the symbols in ``slots`` printed as the
    given marks (the order of terms still follows the real names)."""
    _PRINTER.slots = slots or {}
    try:
        return _PRINTER.doprint(expr).replace("**", "^")
    finally:
        _PRINTER.slots = {}


def _contract(expr: sympy.Expr, rows: tuple[tuple[str, ...], ...]) -> sympy.Expr:
    if not rows or not expr.args:
        return expr
    return _contract_in(expr, _row_index(rows))


_last_index: list[tuple[tuple[tuple[str, ...], ...], dict[str, tuple[str, int, int]]]] = []


def _row_index(rows: tuple[tuple[str, ...], ...]) -> dict[str, tuple[str, int, int]]:
    """:func:`_row_index_of`, found by identity when the rows are the last ones asked for:
    every formula of a program asks with the same tuple, and hashing it costs its whole size."""
    if _last_index and _last_index[0][0] is rows:
        return _last_index[0][1]
    index = _row_index_of(rows)
    _last_index[:] = [(rows, index)]
    return index


@functools.lru_cache(maxsize=8)
def _row_index_of(rows: tuple[tuple[str, ...], ...]) -> dict[str, tuple[str, int, int]]:
    """entry name → (row name, position, row length), built once per program, so that each sum
    finds its contractions by looking at its own terms (not by trying every pair of rows: that
    made printing a total program cubic in the number of inputs)."""
    return {e: (row, j, len(es)) for row, *es in rows for j, e in enumerate(es)}


def _contract_in(expr: sympy.Expr, index: dict[str, tuple[str, int, int]]) -> sympy.Expr:
    if not expr.args:
        return expr
    args = tuple(_contract_in(a, index) for a in expr.args)
    if any(new is not old for new, old in zip(args, expr.args, strict=True)):
        expr = expr.func(*args)
    # an unchanged node is kept as it is (rebuilding it would give an equal tree, at sympy's cost)
    if isinstance(expr, sympy.Pow) and expr.base.is_Symbol and " . " in expr.base.name:
        return sympy.Pow(sympy.Symbol(f"({expr.base})"), expr.exp)  # '.' binds looser than '^'
    if not isinstance(expr, sympy.Add):
        return expr
    pairs: dict[tuple[str, str, int], dict[int, sympy.Expr]] = collections.defaultdict(dict)
    for t in expr.args:
        if not (t.is_Mul and len(t.args) == 2 and all(f.is_Symbol for f in t.args)):
            continue
        ea, eb = (index.get(f.name) for f in t.args)
        if ea is None or eb is None or ea[0] == eb[0] or ea[1:] != eb[1:]:
            continue
        (ra, j, size), (rb, _, _) = sorted((ea, eb))
        pairs[(ra, rb, size)][j] = t
    terms = set(expr.args)
    for (ra, rb, size), found in pairs.items():
        if len(found) == size:  # Σ_j a[j]·b[j] over the whole rows
            terms = (terms - set(found.values())) | {sympy.Symbol(f"{ra} . {rb}")}
    return sympy.Add(*terms) if len(terms) < len(expr.args) else expr


def _dims(shape: tuple[int, ...]) -> str:
    return "".join(f"[{s}]" for s in shape)


def format_decl(decl: Input | Param) -> str:
    if isinstance(decl, Input):
        return f"input {decl.name}{_dims(decl.shape)}"
    init = f" = {format_formula(decl.init)}" if decl.init is not None else ""
    return f"param {decl.name} : {decl.kind}{_dims(decl.shape)}{init}"


def format_instruction(
    ins: Instruction,
    kinds: Mapping[str, str] | None = None,
    groups: tuple[tuple[str, ...], ...] = (),
) -> str:
    """One instruction as a line of the language (also used to quote it in errors).

    ``kinds`` (the program's kinds) tells a constant vector ``vec(θ)`` from a vector formula;
    without it, a formula is taken as vector-valued if it has any argument."""
    match ins:
        case MatMul(out=y, matrix=w, arg=x, transpose=t):
            return f"{y} = {w}{'.T' if t else ''} @ {x}"
        case Avg(out=y, arg=x):
            return f"{y} = avg({x})"
        case Nonlin(out=y, formula=f):
            text, names = _formula_text(f, groups)
            args = names
            vector = (
                any(kinds.get(a) == "vector" for a in args) if kinds is not None else bool(args)
            )
            return f"{y} = {text}" if vector else f"{y} = vec({text})"
        case OuterNonlin(out=y, copies=copies, formula=f):
            return f"{y} = mean[{', '.join(copies)}]({format_formula(f)})"
        case _:
            assert_never(ins)


def _rows(program: Program) -> tuple[tuple[str, ...], ...]:
    """Every last-axis row of a declared group, as (row name, *entry names): the operands that
    can print as a contraction (``U``, ``xi[2]``)."""
    rows = []
    for d in program.declarations:
        if not d.shape or (isinstance(d, Param) and d.kind == "matrix"):
            continue
        for prefix in itertools.product(*(range(s) for s in d.shape[:-1])):
            row = indexed(d.name, prefix)
            rows.append((row, *(indexed(row, (j,)) for j in range(d.shape[-1]))))
    return tuple(rows)


def print_program(program: Program, header: str | None = None) -> str:
    """The whole program as source text that parses back to ``program``."""
    kinds = program.kinds
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    lines.append(f"arch {program.name} {{")
    lines += [f"    {format_decl(d)}" for d in program.declarations]
    groups = _rows(program)
    with paused_gc():  # one text and memo entry per instruction, no cycles (compiler.gcpause)
        lines += [f"    {format_instruction(ins, kinds, groups)}" for ins in program.body]
    lines.append(f"    output {', '.join(program.outputs)}")
    lines.append("}")
    return "\n".join(lines) + "\n"
