"""Fast one-to-one renaming of the symbols of formulas (used by backprop and total, 02 §2.2–2.3).

The total program renames every formula of the backpropagation program once per input, and
backprop differentiates each formula in a canonical naming (so structurally equal formulas, e.g.
the same layer norm at every token, are differentiated once). Both need ``expr.xreplace(m)`` for
an injective map m of symbols to symbols; :func:`rename_symbols` computes the same expression
about four times faster (sympy's xreplace re-evaluates every node).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from operator import itemgetter

import sympy
from sympy.core.basic import _args_sortkey
from sympy.core.function import AppliedUndef

from compiler.shapeprint import Shape, remember_shape, shape_of


def split_name(name: str) -> tuple[str, str]:
    """(base, indices) of a variable name: ``h[2]`` → (``h``, ``[2]``)."""
    cut = name.find("[")
    return (name, "") if cut < 0 else (name[:cut], name[cut:])


def rename_symbols(expr: sympy.Expr, renaming: dict[sympy.Basic, sympy.Basic]) -> sympy.Expr:
    """``expr.xreplace(renaming)`` for an injective map of symbols to symbols.

    Renaming symbols one-to-one cannot make two terms alike, so the only part of sympy's
    canonical form that can change is the order of the arguments of sums and products (sorted
    by name): those are re-sorted with sympy's own key and rebuilt without re-evaluation.
    Functions of a sum are rebuilt with evaluation, because some canonicalise by the sort order of
    their argument (erf(a − b) = −erf(b − a)); other arguments only ever lead an odd function to
    pull out a numeric sign, which the original already did. A node one of whose arguments
    changed kind that way (a function became a product) is rebuilt with evaluation too, and so
    on upwards. ``renaming`` is extended with a memo of renamed sub-expressions (formulas of one
    program share big sub-expressions). The tests compare with xreplace on generated programs."""
    done = renaming.get(expr)
    if done is not None:
        return done
    if not expr.args:
        return expr
    args = [rename_symbols(a, renaming) for a in expr.args]
    if all(a is b for a, b in zip(args, expr.args, strict=True)):
        new = expr
    elif any(type(a) is not type(b) for a, b in zip(args, expr.args, strict=True)):
        new = expr.func(*args)  # a function below pulled out a sign (tanh(−x) = −tanh(x))
    elif expr.is_Add or expr.is_Mul:
        args.sort(key=_args_sortkey)
        new = expr.func._from_args(args, expr.is_commutative)
    elif expr.is_Pow:  # only a numeric or symbol base is canonicalised, never by name order
        new = sympy.Pow(*args, evaluate=False)
    elif not isinstance(expr, sympy.Function) or any(a.is_Add for a in args):
        new = expr.func(*args)
    else:  # what Function.__new__(evaluate=False) builds, without its costly nargs set
        new = sympy.Basic.__new__(expr.func, *args)
        new.nargs = expr.nargs
    renaming[expr] = new
    return new


def evaluated(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` rebuilt bottom-up with evaluation: the canonical form that parsing its printed
    text gives (sympy.factor_terms leaves unevaluated products such as 2*(x + y))."""
    if not expr.args:
        return expr
    return expr.func(*(evaluated(a) for a in expr.args))


Getter = Callable[[list[sympy.Basic]], tuple[sympy.Basic, ...]]


class Copier:
    """Copies of a fixed list of formulas under renamings of some of their symbols ("movable"),
    each copy one pass over the formulas' distinct nodes, children first, without evaluation.

    Rule: sympy's canonical form of a tree (the order of the arguments of sums and products, the
    sign an odd function pulls out of a sum) depends on its symbols only through the order of
    their names (``Basic.compare`` and ``sort_key`` compare ``Symbol.name`` strings) and their
    assumptions. A renaming that keeps the order of all the symbols' names and their assumptions
    therefore maps the canonical tree to the canonical tree node for node, and the copy is the
    template rebuilt with the same constructors sympy's unevaluated ``_from_args`` uses. The
    total program's copies of input i ≥ 2 are such renamings of the copy of input 1 (``h_ξ1`` →
    ``h_ξi`` keeps the name order unless a parameter is named like ``h_ξ12``): :meth:`copy`
    checks the order and returns None when it is not kept (the caller renames in full)."""

    def __init__(self, formulas: Sequence[sympy.Expr], movable: Sequence[sympy.Symbol]) -> None:
        self.movable = tuple(movable)
        slot: dict[sympy.Basic, int] = {s: k for k, s in enumerate(self.movable)}
        nodes: list[sympy.Basic] = []
        self.fixed: list[sympy.Basic] = []  # atoms, and subtrees without a movable symbol
        for f in formulas:
            _collect(f, slot, nodes, self.fixed)
            _list_fixed(f, slot, self.fixed)  # a formula without movable symbols is shared
        shapes = [shape_of(f) for f in formulas]
        for sh in shapes:  # a copy's shape names its fixed symbols too, even inside fixed trees
            for x in sh.symbols if sh is not None else ():
                _list_fixed(x, slot, self.fixed)
        slot.update({a: len(self.movable) + k for k, a in enumerate(self.fixed)})
        base = len(self.movable) + len(self.fixed)
        slot.update({node: base + k for k, node in enumerate(nodes)})
        self.steps = [(*_maker(node), _getter([slot[a] for a in node.args])) for node in nodes]
        self.roots = [slot[f] for f in formulas]
        # each copy has its template's shape with its own symbols: handed to the verifier and
        # the printer (compiler.shapeprint), which would otherwise walk every copy again
        self.shapes = [None if sh is None else (sh.tree, _getter([slot[x] for x in sh.symbols]))
                       for sh in shapes]
        symbols = [*self.movable, *_symbols_in(self.fixed)]
        self.order = sorted(range(len(symbols)), key=lambda k: symbols[k].name)
        self.symbols = symbols

    def copy(self, targets: Sequence[sympy.Symbol]) -> list[sympy.Expr] | None:
        """The formulas with ``movable[k]`` renamed ``targets[k]``, or None when that renaming
        does not keep the order of the names (or the assumptions) of the symbols."""
        if not self._keeps_order(targets):
            return None
        vals: list[sympy.Basic] = [*targets, *self.fixed]
        push, new = vals.append, sympy.Basic.__new__
        for kind, cls, extra, args in self.steps:  # one Python call per node: B·|nodes| of them
            if kind == _ASSOC:
                node = new(cls, *args(vals))
                node.is_commutative = extra
            elif kind == _FUNCTION:
                node = new(cls, *args(vals))
                node.nargs = extra
            else:
                node = cls(*args(vals))
            push(node)
        out: list[sympy.Expr] = [vals[k] for k in self.roots]
        for formula, shape in zip(out, self.shapes, strict=True):
            if shape is not None:
                remember_shape(formula, Shape(shape[0], shape[1](vals)))
        return out

    def _keeps_order(self, targets: Sequence[sympy.Symbol]) -> bool:
        m = len(self.movable)
        if len(targets) != m:
            raise ValueError(f"{len(targets)} targets for {m} movable symbols")
        for old, new in zip(self.movable, targets, strict=True):
            if type(new) is not type(old) or _assumed(new) != _assumed(old):
                return False
        now = [*targets, *self.symbols[m:]]
        names = [now[k].name for k in self.order]
        return all(a < b for a, b in itertools.pairwise(names))


def _assumed(s: sympy.Symbol) -> tuple[tuple[str, bool], ...]:
    found = getattr(s, "_assumptions0", None)  # sympy ≥ 1.12 keeps them sorted on the symbol
    return found if found is not None else tuple(sorted(s.assumptions0.items()))


def _collect(
    expr: sympy.Basic, slot: dict[sympy.Basic, int], nodes: list[sympy.Basic],
    fixed: list[sympy.Basic],
) -> bool:
    """Append the distinct nodes of ``expr`` that hold a movable symbol to ``nodes`` children
    first, and the largest subtrees that hold none, where a moving node uses them, to ``fixed``
    (copies share those); whether ``expr`` holds a movable symbol. ``slot`` marks what was seen:
    movable ≥ 0, moving node −2, fixed −1 (−3 once listed)."""
    seen = slot.get(expr)
    if seen is not None:
        return seen >= 0 or seen == _MOVING
    moves = [_collect(a, slot, nodes, fixed) for a in expr.args]
    if not any(moves):
        slot[expr] = _FIXED
        return False
    for a in expr.args:
        _list_fixed(a, slot, fixed)
    nodes.append(expr)
    slot[expr] = _MOVING
    return True


def _list_fixed(expr: sympy.Basic, slot: dict[sympy.Basic, int], fixed: list[sympy.Basic]) -> None:
    if slot[expr] == _FIXED:
        fixed.append(expr)
        slot[expr] = _LISTED


_MOVING, _FIXED, _LISTED = -2, -1, -3


def _symbols_in(fixed: list[sympy.Basic]) -> list[sympy.Symbol]:
    """The symbols of the fixed subtrees (their names count in the order check)."""
    found: dict[sympy.Symbol, None] = {}
    for a in fixed:
        found.update(dict.fromkeys(a.atoms(sympy.Symbol)))
    return list(found)


def _getter(slots: list[int]) -> Getter:
    """The arguments at ``slots`` of the values list, as a tuple (itemgetter: in C)."""
    if any(k < 0 for k in slots):  # a mark of _collect: something used was never given a slot
        raise AssertionError(f"Copier: unlisted value in slots {slots}")
    if not slots:
        return lambda vals: ()
    if len(slots) == 1:
        k = slots[0]
        return lambda vals: (vals[k],)
    return itemgetter(*slots)


_ASSOC, _FUNCTION, _EVALUATED = 0, 1, 2


def _maker(node: sympy.Basic) -> tuple[int, type, object]:
    """How to rebuild ``node`` from renamed arguments, as (kind, class, extra). Sums, products
    and powers: what their unevaluated constructors build (``AssocOp._from_args``,
    ``Pow(b, e, evaluate=False)`` without its cache, which would hash the new arguments: a walk of
    their trees), with the template's commutativity; functions: what ``Function.__new__`` builds
    unevaluated, without its costly ``nargs`` set; anything else is rebuilt with evaluation,
    which is exact (as :func:`rename_symbols` does once the order is known to be kept)."""
    if node.is_Add or node.is_Mul or node.is_Pow:
        return _ASSOC, node.func, node.is_commutative
    if isinstance(node, sympy.Function) and not isinstance(node, AppliedUndef):
        return _FUNCTION, node.func, node.nargs
    return _EVALUATED, node.func, None
