"""Fused pair sums (spec 01 §1.6): OuterNonlins over the same pairs in one pass.

Backprop through an OuterNonlin gives several copy averages of the same order over the same
particle pairs whose formulas share subexpressions (outer1's ∂z, ∂x, ∂u, ∂c all contain
tanh(c + u·x[b]) or tanh(c + u[b]·x)).  Evaluated one by one, each repeats the pass over the
pairs and the shared tanh.  A *group* is a maximal run of order-r copy-reading OuterNonlins whose
arguments are all computed before the first of them; its members are evaluated together by one
:func:`runtime.limits.outer.copy_average_joint` pass of one joint ψ over the union of their
arguments, the common subexpressions (``sympy.cse``) computed once per pair block.

Groups and their common subexpressions are fixed by the whole program, not by which members a
caller requests: a requested subset runs the same operations for each member (dropping only the
subexpressions no requested member reads), so its values are bit-identical to the full
evaluation's — the demand contract of :mod:`runtime.limits.montecarlo`.  Copy symbols are
renamed canonically (``var·copy number``), since members may name their copies differently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import sympy

from compiler.ir import formula_args
from compiler.kets.lowering import FormulaKet, KetProgram
from compiler.symbols import sym
from runtime.codegen import compile_formula
from runtime.limits.aediff import formula_derivative
from runtime.limits.ketfuncs import KetFunctions, ket_reads
from runtime.limits.mcbias import reads_copy
from runtime.limits.pairkernel import PairFormulas

FUSE = True
"""Fuse groups (bench/bench_limits.py switches it off to measure the unfused pass)."""

ArgKey = tuple[str, int | None, str]
"""(variable, copy number or None, kind), as :meth:`KetFunctions.args`."""


@dataclass(frozen=True)
class Group:
    """The members (statement indices, program order) of one fused group and the joint formula:
    ``keys`` the union of their arguments, ``repl`` the shared subexpressions in order,
    ``reduced`` each member's formula in terms of ``keys`` and ``repl``."""

    members: tuple[int, ...]
    keys: tuple[ArgKey, ...]
    repl: tuple[tuple[sympy.Symbol, sympy.Expr], ...]
    reduced: tuple[sympy.Expr, ...]
    exprs: tuple[sympy.Expr, ...] = ()
    """Each member's formula in terms of ``keys`` (unreduced: for derivatives)."""

    @cached_property
    def symbols(self) -> tuple[sympy.Symbol, ...]:
        return (*(_canonical(k) for k in self.keys), *(s for s, _ in self.repl))

    def evaluator(self, subset: Sequence[int]) -> tuple[list[ArgKey], Callable[..., list]]:
        """The arguments the members ``subset`` read (in key order) and a function of them
        returning those members' ψ values."""
        rows = [self.members.index(j) for j in subset]
        need = set().union(*(self.reduced[r].free_symbols for r in rows))
        steps = []
        for k in reversed(range(len(self.repl))):  # the replacements ``need`` reaches
            sym, expr = self.repl[k]
            if sym in need:
                need |= expr.free_symbols
                steps.append(len(self.keys) + k)
        steps.reverse()
        used = [p for p, s in enumerate(self.symbols[: len(self.keys)]) if s in need]
        fns = [compile_formula(e, self.symbols) for _, e in self.repl]
        outs = [compile_formula(self.reduced[r], self.symbols) for r in rows]

        def joint(*arrays: np.ndarray) -> list[np.ndarray]:
            env: list[object] = [None] * len(self.symbols)
            for p, a in zip(used, arrays, strict=True):
                env[p] = a
            for k in steps:
                env[k] = fns[k - len(self.keys)](*env, np.inf)
            return [f(*env, np.inf) for f in outs]

        return [self.keys[p] for p in used], joint

    def pair_formulas(
        self, keys: Sequence[ArgKey], subset: Sequence[int], derivs: Sequence[tuple[int, str]]
    ) -> PairFormulas:
        """The members ``subset`` (over the shared subexpressions) and the slot-0 derivatives
        ``derivs`` = (member, own vector) as formulas over ``keys``, for
        :func:`runtime.limits.pairkernel.pair_average`."""
        rows = [self.members.index(j) for j in subset]
        grads = [
            slot_derivative(self.exprs[self.members.index(j)], _canonical((var, None, "")))
            for j, var in derivs
        ]
        return PairFormulas(
            tuple(_canonical(k) for k in keys),
            (*(self.reduced[r] for r in rows), *grads),
            self.repl,
        )


def slot_derivative(formula: sympy.Expr, own: sympy.Symbol) -> sympy.Expr:
    """∂ψ/∂(own symbol) by the rule of runtime.limits.ketfuncs (:mod:`runtime.limits.aediff`)."""
    return formula_derivative(formula, own)


def ket_formulas(s: FormulaKet, derivs: Sequence[str]) -> PairFormulas:
    """One OuterNonlin's ψ and its slot-0 derivatives in the own vectors ``derivs``, over its
    formula arguments in order."""
    args = formula_args(s.ins)
    own = {v: x for x, v, c in args if c is None}
    return PairFormulas(
        tuple(x for x, _, _ in args),
        (s.formula, *(slot_derivative(s.formula, own[a]) for a in derivs)),
    )


def _canonical(key: ArgKey) -> sympy.Symbol:
    """Real, as the program's own symbols (compiler.symbols.sym): sympy differentiates |g| of a
    symbol of unknown sign into re/im Derivative terms no printer compiles (Adam's first step
    √(g²) = |g|), and may simplify a formula differently over complex symbols."""
    var, copy, _ = key
    return sym(var if copy is None else f"{var}·{copy}")


def pair_groups(kets: KetProgram, funcs: KetFunctions) -> dict[int, Group]:
    """Every member of a group of two or more, by statement index (see module docstring)."""
    if not FUSE:
        return {}
    at = {s.out: i for i, s in enumerate(kets.stmts)}
    groups: dict[int, Group] = {}
    for i, s in enumerate(kets.stmts):
        if i in groups or not (isinstance(s, FormulaKet) and reads_copy(funcs, s)):
            continue
        members = [
            j
            for j in range(i, len(kets.stmts))
            if j not in groups
            and isinstance(t := kets.stmts[j], FormulaKet)
            and reads_copy(funcs, t)
            and t.order == s.order
            and all(at[n] < i for n in ket_reads(kets, j))
        ]
        if len(members) > 1:
            group = _group(kets, funcs, members)
            groups.update(dict.fromkeys(members, group))
    return groups


def _group(kets: KetProgram, funcs: KetFunctions, members: list[int]) -> Group:
    keys: dict[ArgKey, None] = {}
    exprs = []
    for j in members:
        s = kets.stmts[j]
        assert isinstance(s, FormulaKet)
        own = funcs.args(s)
        keys.update(dict.fromkeys(own))
        rename = {
            sym: _canonical(k) for (sym, _, _), k in zip(formula_args(s.ins), own, strict=True)
        }
        exprs.append(s.formula.xreplace(rename))
    names = sympy.numbered_symbols("_fuse")
    repl, reduced = sympy.cse(exprs, symbols=names)
    return Group(
        tuple(members), tuple(sorted(keys, key=str)), tuple(repl), tuple(reduced), tuple(exprs)
    )
