"""Formula printing memoised by shape: a formula prints once per shape, then by substituting names.

Rule: sympy orders the terms and factors it prints only by comparing symbol *names* with each
other (``Basic.compare`` and ``default_sort_key`` look at ``Symbol.name``; the text of a name is
never inspected). Two formulas that are the same tree up to a renaming of their symbols that keeps
the names' relative order therefore print as the same text up to that renaming. The shape of a
formula is its tree with every symbol replaced by the index of its first appearance, together with
the order of those symbols by name and their assumptions; the first formula of a shape is printed
(ordered by its own names) with each symbol printed as a mark, and cut at the marks into a
template; every later formula of that shape is its template filled with its own names. A total
program repeats a few shapes under renamed copies, so printing costs one tree walk per formula
and one sympy print per shape (a formula of a new shape costs one sympy print, as before).

Anything whose printing could look at a name (undefined functions, symbol subclasses, a name
starting with ``(``, made by the contraction printer) is printed directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from operator import attrgetter
from typing import NamedTuple

import sympy
from sympy.core.function import AppliedUndef

# slot marks: control characters no source name contains around the symbol's appearance index
_MARK, _END = "\x01", "\x02"
_SLOT = re.compile(_MARK + r"(\d+)" + _END)
_MAX_SHAPES = 50_000  # a bound on the memo: a long session never holds more than this

_MAX_FORMULAS = 200_000  # a bound on the shapes remembered by formula identity

_templates: dict[Hashable, str] = {}
_assumptions: dict[sympy.Symbol, tuple[tuple[str, bool], ...]] = {}
_shapes: dict[int, tuple[sympy.Basic, Shape | None]] = {}


Printer = Callable[[sympy.Expr, Mapping[sympy.Basic, str]], str]
"""Prints a formula with the given symbols printed as the given text."""


class _UnshapedError(Exception):
    """The formula holds something whose printing may depend on a name: print it directly."""


class Shape(NamedTuple):
    """A formula's tree with symbols as first-appearance indices, and those symbols in order
    (immutable; a named tuple because a total program makes one per formula copy)."""

    tree: Hashable
    symbols: tuple[sympy.Symbol, ...]


def shape_of(expr: sympy.Basic) -> Shape | None:
    """The shape of ``expr``, or None when its printing may depend on a name (or it is too deep
    to walk recursively). Remembered by identity: the verifier and the printer of one command
    ask for the shape of the same formula objects, so each formula is walked once."""
    known = _shapes.get(id(expr))
    if known is not None and known[0] is expr:
        return known[1]
    symbols: dict[sympy.Symbol, int] = {}
    try:
        shape: Shape | None = Shape(_shape(expr, symbols, {}), tuple(symbols))
    except (_UnshapedError, RecursionError):
        shape = None
    if len(_shapes) >= _MAX_FORMULAS:
        _shapes.clear()
    _shapes[id(expr)] = (expr, shape)  # the formula is kept alive, so its id is not reused
    return shape


def remember_shape(expr: sympy.Basic, shape: Shape) -> None:
    """Record ``shape`` as the shape of ``expr``, from a pass that built ``expr`` node for node
    from a formula of that shape with the given symbols (:class:`compiler.rename.Copier`)."""
    if len(_shapes) >= _MAX_FORMULAS:
        _shapes.clear()
    _shapes[id(expr)] = (expr, shape)


def print_by_shape(
    expr: sympy.Expr, direct: Printer, shape: Shape | None = None
) -> str:
    """``direct(expr)``, computed from the memoised template of ``expr``'s shape (``shape``:
    ``shape_of(expr)`` if the caller has it already)."""
    if shape is None:
        shape = shape_of(expr)
        if shape is None:
            return direct(expr, {})
    names = [s.name for s in shape.symbols]
    order = tuple(sorted(range(len(names)), key=names.__getitem__)) if len(names) > 1 else ()
    key = (shape.tree, order, tuple(map(assumptions_of, shape.symbols)))
    template = _templates.get(key)
    if template is None:
        template = _template(expr, shape.symbols, direct)
        if len(_templates) >= _MAX_SHAPES:
            _templates.clear()
        _templates[key] = template
    return template.format(*names)


def _shape(
    expr: sympy.Basic, symbols: dict[sympy.Symbol, int], seen: dict[int, Hashable]
) -> Hashable:
    """The tree of ``expr`` with symbols as their first-appearance index (``symbols`` fills up in
    that order); shared subtrees are walked once."""
    done = seen.get(id(expr))
    if done is not None:
        return done
    args = expr.args
    key: Hashable
    if expr.is_Symbol:
        if type(expr) is not sympy.Symbol or expr.name.startswith("("):
            raise _UnshapedError
        key = symbols.setdefault(expr, len(symbols))
    elif not args:
        # a number or a named constant prints the same whatever the symbols are called; the
        # precision is part of a Float (equal values of different precision may print apart)
        key = (type(expr), expr, getattr(expr, "_prec", None))
    elif isinstance(expr, AppliedUndef):
        raise _UnshapedError
    else:
        key = (expr.func, *[_shape(a, symbols, seen) for a in args])
    seen[id(expr)] = key
    return key


def assumptions_of_by_dict(s: sympy.Symbol) -> tuple[tuple[str, bool], ...]:
    found = _assumptions.get(s)
    if found is None:
        found = _assumptions[s] = tuple(sorted(s.assumptions0.items()))
    return found


# sympy ≥ 1.12 keeps a symbol's assumptions sorted on it (read in C, once per symbol printed)
assumptions_of: Callable[[sympy.Symbol], tuple[tuple[str, bool], ...]] = (
    attrgetter("_assumptions0") if "_assumptions0" in getattr(sympy.Symbol, "__slots__", ())
    else assumptions_of_by_dict
)


def _template(expr: sympy.Expr, symbols: tuple[sympy.Symbol, ...], direct: Printer) -> str:
    """The text of ``expr`` as a ``str.format`` template whose field k is its k-th symbol by
    first appearance (the text's own braces doubled). ``expr`` itself is printed, its symbols as
    marks, so the order of its terms is the one its own names give (no renamed copy is built)."""
    text = direct(expr, {s: f"{_MARK}{i}{_END}" for i, s in enumerate(symbols)})
    parts = _SLOT.split(text)
    pieces = [p.replace("{", "{{").replace("}", "}}") for p in parts[0::2]]
    out = [pieces[0]]
    for slot, piece in zip(parts[1::2], pieces[1:], strict=True):
        out += ["{", slot, "}", piece]
    return "".join(out)
