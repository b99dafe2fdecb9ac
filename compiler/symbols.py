"""Symbols and built-in functions of formulas (spec 06 "Built-in functions").

Every formula of a program is a sympy expression over real symbols named after program variables
(``x``, ``h[2]``, a copy reference ``x[b]``) plus the width symbol ``n``. Symbols are created only
through :func:`sym`, so two parses of the same text build structurally equal expressions; it
remembers each name's symbol (one object per name) and makes a new real symbol as a copy of a
template one (sympy canonicalises the assumptions of every new symbol: most of the cost of naming
a total program's B·|π_bp| variables), checked once against sympy's own constructor.

Functions that sympy lacks or treats unhelpfully are small ``sympy.Function`` classes here:
``relu`` (derivative ``step``), ``step`` (Heaviside with step(0) = 0), ``sigmoid`` and ``softplus``
(kept as named functions so that :mod:`runtime.codegen` can use overflow-safe forms). ``step``
and ``sign`` are not differentiable: their derivative is a DiracDelta, which
:func:`nondifferentiable_in` detects before a pass differentiates a formula.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy

WIDTH = sympy.Symbol("n", positive=True)
"""The width symbol n (spec 06): may appear in formulas; executors substitute the width."""


def sym(name: str) -> sympy.Symbol:
    """The real symbol standing for the program variable (or copy reference) ``name``."""
    found = _SYMBOLS.get(name)
    if found is None:
        if len(_SYMBOLS) >= _MAX_SYMBOLS:
            _SYMBOLS.clear()
        found = _SYMBOLS[name] = WIDTH if name == "n" else _new_real(name)
    return found


# sympy.Symbol(name, real=True) canonicalises its assumptions on every call (~5-10 µs, most of
# building a total program's B·|π_bp| names): symbols are remembered by name (bounded for a long
# session), and a new one is a copy of a template real symbol with only the name changed
_SYMBOLS: dict[str, sympy.Symbol] = {}
_MAX_SYMBOLS = 1 << 20
_REAL = sympy.Symbol("_nexort_template_", real=True)
_SLOTS = ("_assumptions", "_assumptions_orig", "_assumptions0")


def _cloned_real(name: str) -> sympy.Symbol:
    """``sympy.Symbol(name, real=True)`` as a copy of :data:`_REAL`. A symbol's assumption facts
    depend on its assumptions only (never on its name), so every real symbol may share the
    template's fact base, including the facts sympy adds to it later on demand."""
    new = sympy.Expr.__new__(sympy.Symbol)
    new.name = name
    new._assumptions = _REAL._assumptions
    new._assumptions_orig = _REAL._assumptions_orig
    new._assumptions0 = _REAL._assumptions0
    return new


def _clone_is_exact() -> bool:
    """Whether this sympy's symbols are made as :func:`_cloned_real` assumes (checked once)."""
    try:
        probe, clone = sympy.Symbol("_nexort_probe_", real=True), _cloned_real("_nexort_probe_")
    except AttributeError:
        return False
    same = all(getattr(probe, k) == getattr(clone, k) for k in (*_SLOTS, "name", "args"))
    return same and probe == clone and hash(probe) == hash(clone) and set(
        sympy.Symbol.__slots__) == {"name", *_SLOTS[1:]}


def _sympy_real(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)


_new_real = _cloned_real if _clone_is_exact() else _sympy_real


class relu(sympy.Function):  # noqa: N801 - DSL names are lower case
    """relu(x) = max(x, 0); relu'(x) = step(x) (spec 02 §2.2: H(0) = 0)."""

    is_real = True

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        if x.is_number and x.is_comparable:  # softplus(2) is a real number sympy cannot order
            return sympy.Max(x, 0)
        return None

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return step(self.args[0])


class step(sympy.Function):  # noqa: N801
    """Heaviside step with step(0) = 0; its derivative is a Dirac delta (not differentiable)."""

    is_real = True

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        if x.is_number and x.is_comparable:  # softplus(2) is a real number sympy cannot order
            return sympy.Integer(1) if x > 0 else sympy.Integer(0)
        return None

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sympy.DiracDelta(self.args[0])


class sigmoid(sympy.Function):  # noqa: N801
    """sigmoid(x) = 1/(1 + exp(-x)); sigmoid' = sigmoid·(1 − sigmoid)."""

    is_real = True

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        # numbers only: is_zero of a deep symbolic argument runs sympy's assumption inference,
        # exponential in the depth (a nested tanh/sigmoid expression hung the parser)
        if x.is_number and x.is_zero:
            return sympy.Rational(1, 2)
        return None

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return self * (1 - self)


class softplus(sympy.Function):  # noqa: N801
    """softplus(x) = log(1 + exp(x)); softplus' = sigmoid."""

    is_real = True

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        if x.is_number and x.is_zero:  # numbers only, as sigmoid.eval
            return sympy.log(2)
        return None

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return sigmoid(self.args[0])


def _gelu(x: sympy.Expr) -> sympy.Expr:
    return x * (1 + sympy.erf(x / sympy.sqrt(2))) / 2


@dataclass(frozen=True)
class Builtin:
    """A function of the language: its arity and how it builds a sympy expression."""

    name: str
    arity: int
    build: Callable[..., sympy.Expr]


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin("relu", 1, relu),
        Builtin("step", 1, step),
        Builtin("tanh", 1, sympy.tanh),
        Builtin("sigmoid", 1, sigmoid),
        Builtin("softplus", 1, softplus),
        Builtin("erf", 1, sympy.erf),
        Builtin("gelu", 1, _gelu),
        Builtin("exp", 1, sympy.exp),
        Builtin("log", 1, sympy.log),
        Builtin("sqrt", 1, sympy.sqrt),
        Builtin("abs", 1, sympy.Abs),
        Builtin("sign", 1, sympy.sign),
        Builtin("id", 1, lambda x: x),
        Builtin("sin", 1, sympy.sin),
        Builtin("cos", 1, sympy.cos),
    )
}

CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi}
"""Named constants of formulas; ``n`` (the width) is handled separately."""

NONDIFFERENTIABLE = (step, sympy.sign)
"""Functions whose derivative is a Dirac delta: a pass that needs it must refuse (02 §2.2)."""

BAD_ATOMS = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I)


def nondifferentiable_in(expr: sympy.Expr, var: sympy.Symbol) -> sympy.Expr | None:
    """The first sub-expression step(·) or sign(·) of ``expr`` whose argument depends on ``var``
    (differentiating it would need a Dirac delta), or None."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, NONDIFFERENTIABLE) and node.args[0].has(var):
            return node
    return None


MAX_FORMULA_DEPTH = 100
"""The deepest formula a program may hold (the verifier refuses deeper ones). sympy's
differentiation and string printer recurse once per level of a formula, several Python frames
each: 150 levels already exhaust the default recursion limit, so 100 leaves every pass and
engine room (the front end splits deeper expressions into instructions, see ``frontend/expr``)."""


@dataclass(frozen=True)
class FormulaFacts:
    """What the verifier needs of a formula, from one walk: its depth (as
    :func:`formula_depth`), whether it holds a non-finite or complex atom (:data:`BAD_ATOMS`), and
    its free symbols."""

    depth: int
    bad: bool
    symbols: frozenset[sympy.Symbol]


_BAD = frozenset(BAD_ATOMS)


def formula_facts(expr: sympy.Basic) -> FormulaFacts:
    """:class:`FormulaFacts` of ``expr`` in one non-recursive walk (three walks cost three times
    as much on a total program's tens of thousands of formulas)."""
    depth: dict[int, int] = {}
    bad = False
    symbols: set[sympy.Symbol] = set()
    stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in depth:
            continue
        args = node.args
        if done or not args:
            depth[id(node)] = 1 + max((depth[id(a)] for a in args), default=0)
            if not args:
                if isinstance(node, sympy.Symbol):
                    symbols.add(node)
                elif node in _BAD:
                    bad = True
            continue
        stack.append((node, True))
        stack.extend((a, False) for a in args if id(a) not in depth)
    return FormulaFacts(depth[id(expr)], bad, frozenset(symbols))


def formula_depth(expr: sympy.Basic) -> int:
    """The number of nodes on the longest root-to-leaf path of ``expr`` (a symbol has depth 1),
    computed without recursion so that it can measure formulas too deep for sympy itself."""
    depth: dict[int, int] = {}
    stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in depth:
            continue
        if done or not node.args:
            depth[id(node)] = 1 + max((depth[id(a)] for a in node.args), default=0)
            continue
        stack.append((node, True))
        stack.extend((a, False) for a in node.args if id(a) not in depth)
    return depth[id(expr)]
