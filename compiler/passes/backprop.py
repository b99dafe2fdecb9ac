"""Backpropagation as a pass: the language is closed under differentiation (spec 02 §2.2).

Given a program π and one of its output vectors o, with F = avg(o), :func:`backprop` returns π
extended by the *scaled gradient* dx = n·∂F/∂x of every vector x and dθ = ∂F/∂θ of every scalar θ
that F depends on (Def. 2.9.14 of the paper). Forward instructions come first, then the gradient
instructions in reverse program order, one rule per instruction kind (02 §2.2):

* do = 1, the constant vector ``vec(1)``;
* MatMul ``y = W x`` → dx += Wᵀ dy (``y = Wᵀ x`` → dx += W dy);
* Avg ``θ = avg(x)`` → dx += dθ·1;
* Nonlin ``y = ψ(x; θ)`` → dx += dy·∂ψ/∂x and dθ += avg(dy·∂ψ/∂θ);
* OuterNonlin of order r, ``y = mean[b…](ψ)``: slot 0 and scalars → ``mean[b…](dy·∂ψ)`` (then an
  Avg for a scalar); copy slot bᵢ → the same mean with the own index and bᵢ exchanged, so that the
  sum runs over γ (the old own index) and the other copies.

Each gradient is the sum of the contributions of all uses: one Nonlin, or the single contributing
MatMul/OuterNonlin itself. Objects F does not depend on (by the one liveness analysis,
:mod:`compiler.passes.liveness`) get no gradient (no dead code). Matrices get no instruction:
∂F/∂W = (1/n)·Σ_u dy_u x_uᵀ (+ (1/n)·x_u dy_uᵀ per use of Wᵀ) is exposed as data
(:class:`~compiler.passes.gradients.MatrixUse`) for the passes that need it (training, abcd
sizes, NTK limits). Registered as the pass ``backprop`` (options :class:`BackpropOptions`): its
result :class:`Backprop` carries the :class:`~compiler.passes.gradients.GradientMap` and is
verified together with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from operator import attrgetter
from typing import TypeAlias, assert_never

import sympy

from compiler.errors import NotDifferentiableError, UsageError
from compiler.frontend.flatten import RESERVED
from compiler.ir import (
    Avg,
    Input,
    Instruction,
    Kind,
    Loc,
    MatMul,
    Nonlin,
    OuterNonlin,
    Param,
    Program,
    copy_ref,
    formula_args,
    reads,
    split_symbol,
)
from compiler.passes.gradients import GradientMap, MatrixUse, verify_gradients
from compiler.passes.liveness import live_variables
from compiler.passes.registry import PassOptions, ResultType, register_pass
from compiler.printer import format_formula, format_instruction
from compiler.rename import evaluated, rename_symbols, split_name
from compiler.symbols import WIDTH, nondifferentiable_in, sym
from compiler.verify import verify

Term: TypeAlias = sympy.Expr | MatMul | OuterNonlin
"""A contribution to a gradient: a formula, or an instruction whose result is not yet named."""

TIDY_OPS = 60
"""Derivatives up to this many operations get sympy.factor_terms (cheap, and it turns e.g. the
quotient rule of a softmax into (v − att)·p); larger ones are kept as sympy.diff returns them."""


@dataclass(frozen=True)
class Backprop:
    """The backpropagation program and where its gradients are."""

    program: Program
    grads: GradientMap


def verify_backprop(result: Backprop) -> None:
    """The program verifies and its gradient map fits it."""
    verify(result.program)
    verify_gradients(result.grads, result.program)


BACKPROP: ResultType[Backprop] = ResultType(Backprop, verify_backprop, attrgetter("program"))


@dataclass(frozen=True)
class BackpropOptions(PassOptions[Backprop]):
    """``output``: the o of F = avg(o) (None: the only output); ``input_gradients=False`` leaves
    out the gradients of the input scalars."""

    output: str | None = None
    input_gradients: bool = True


class _Namer:
    """Readable, collision-free gradient names: ``x1`` → ``dx1``, ``h[2]`` → ``dh[2]``. A base
    whose ``d``-name is taken becomes ``d_h``, then ``d_h_2``, …; every base of the program is
    assigned up front, so a name never depends on the order in which gradients are built."""

    def __init__(self, program: Program) -> None:
        copies = {c for ins in program.body if isinstance(ins, OuterNonlin) for c in ins.copies}
        decls = [*(d.name for d in program.inputs), *(d.name for d in program.params)]
        bases = dict.fromkeys([*decls, *(split_name(x)[0] for x in program.kinds)])
        self.taken = set(bases) | copies | RESERVED
        self.used = set(program.kinds) | copies
        self.base: dict[str, str] = {}
        for base in bases:
            self.base[base] = self._fresh_base(base)
        self.taken |= set(self.base.values())

    def _fresh_base(self, base: str) -> str:
        chosen = set(self.base.values())
        candidates = [f"d{base}", f"d_{base}"]
        k = 2
        while True:
            for cand in candidates:
                if cand not in self.taken and cand not in chosen:
                    return cand
            candidates = [f"d_{base}_{k}"]
            k += 1

    def grad(self, var: str) -> str:
        base, idx = split_name(var)
        name = self.base[base] + idx
        self.used.add(name)
        return name

    def temp(self, grad: str) -> str:
        """A fresh name for one contribution to ``grad``: ``dx1_1``, ``dh_2[3]``, …"""
        base, idx = split_name(grad)
        k = 1
        while f"{base}_{k}" in self.taken or f"{base}_{k}{idx}" in self.used:
            k += 1
        self.used.add(f"{base}_{k}{idx}")
        return f"{base}_{k}{idx}"


def choose_output(program: Program, output: str | None) -> str:
    """The output to differentiate: ``output`` if it is one, else the program's only output."""
    outs = ", ".join(program.outputs)
    if output is None:
        if len(program.outputs) == 1:
            return program.outputs[0]
        raise UsageError(f"arch {program.name} has {len(program.outputs)} outputs ({outs}); "
                         "choose one to differentiate (output=NAME, --output NAME)")
    if output not in program.outputs:
        what = f"a {program.kinds[output]}" if output in program.kinds else "not defined"
        where = getattr(program.producer.get(output), "loc", None)  # point at its definition
        raise UsageError(f"{output} is not an output of arch {program.name} ({output} is {what}; "
                         f"outputs: {outs}); backprop differentiates F = avg(o) for an output o",
                         where)
    return output


def useful_variables(program: Program, input_gradients: bool = True) -> set[str]:
    """Variables whose gradient someone needs: vector and scalar parameters (and inputs, if
    asked), every MatMul result (its gradient makes ∂F/∂W) and everything computed from a useful
    variable. A gradient of anything else would be dead code (e.g. of a constant vec(2))."""
    initial = [*program.param_names(), *(program.input_names if input_gradients else ())]
    useful = {x for x in initial if program.kinds[x] != "matrix"}
    for ins in program.body:
        if isinstance(ins, MatMul) or any(v in useful for v in reads(ins)):
            useful.add(ins.out)
    return useful


def _uses_copy(expr: sympy.Expr, copy: str) -> bool:
    return any(split_symbol(s.name, (copy,))[1] == copy for s in expr.free_symbols)


def mean_term(copies: tuple[str, ...], formula: sympy.Expr, loc: Loc | None) -> Term:
    """n^{-r} Σ over ``copies`` of ``formula``, dropping copies the formula does not read (their
    average is trivial): a plain formula when none is left, else an unnamed OuterNonlin."""
    kept = tuple(c for c in copies if _uses_copy(formula, c))
    return OuterNonlin("", kept, formula, loc) if kept else formula


def derivative(
    ins: Nonlin | OuterNonlin, symbol: sympy.Symbol, kinds: dict[str, Kind]
) -> sympy.Expr:
    """∂ψ/∂symbol of an instruction's formula ψ, simplified once; refuses a Dirac delta.

    ψ is differentiated in a canonical naming (its symbols sorted by name become ψ0, ψ1, …) and
    cached, so structurally equal formulas (the same layer at every token or step) cost one
    sympy.diff; the result is renamed back."""
    bad = nondifferentiable_in(ins.formula, symbol)
    order = sorted(ins.formula.free_symbols - {WIDTH}, key=lambda s: s.name)
    if isinstance(ins, Nonlin):
        order.append(sym(ins.out))  # the forward value y = ψ, reused in ψ' (see _derivative)
    canon = {s: sym(f"ψ{k}") for k, s in enumerate(order)}
    y = canon[order[-1]] if isinstance(ins, Nonlin) else None
    d = None if bad is not None else _derivative(ins.formula.xreplace(canon), canon[symbol], y)
    if d is None:
        culprit = format_formula(bad) if bad is not None else "a step or sign"
        fn = bad.func.__name__ if bad is not None else "it"
        raise NotDifferentiableError(
            f"cannot backpropagate through {culprit} in '{format_instruction(ins, kinds)}': "
            f"{fn} is not differentiable (its derivative is a Dirac delta) and the gradient with "
            f"respect to {symbol.name} is needed; use a smooth function instead",
            ins.loc,
        )
    return rename_symbols(d, {v: k for k, v in canon.items()})


@lru_cache(maxsize=8192)
def _derivative(formula: sympy.Expr, x: sympy.Symbol, y: sympy.Symbol | None) -> sympy.Expr | None:
    """∂formula/∂x (None if it needs a Dirac delta); with ``y`` = formula (a Nonlin's result),
    occurrences of ±formula become ±y: tanh' = 1 − y², softmax' = (v − y)·p."""
    d = sympy.diff(formula, x)
    if d.has(sympy.DiracDelta):
        return None
    if sympy.count_ops(d) <= TIDY_OPS:
        d = evaluated(sympy.factor_terms(d))
    if y is not None:
        d = d.xreplace({formula: y, -formula: -y})
    return d


class _Builder:
    """The state of one backpropagation: gradient names, pending contributions, new body."""

    def __init__(self, program: Program, output: str, input_gradients: bool) -> None:
        self.program = program
        self.output = output
        self.kinds: dict[str, Kind] = dict(program.kinds)
        self.useful = useful_variables(program, input_gradients)
        self.names = _Namer(program)
        self.body: list[Instruction] = list(program.body)
        self.terms: dict[str, list[Term]] = {}
        self.grads: dict[str, str] = {}
        self.uses: list[MatrixUse] = []

    def run(self) -> Backprop:
        live = live_variables(self.program, (self.output,))
        loc = self.loc_of(self.output)
        self.grads[self.output] = self.names.grad(self.output)
        self.emit(Nonlin(self.grads[self.output], sympy.Integer(1), loc))
        for ins in reversed(self.program.body):
            if ins.out in live and ins.out in self.useful:
                dy = self.grads.get(ins.out) or self.finish(ins.out, ins.loc)
                if dy is not None:
                    self.contribute(ins, dy)
        for name in (*self.program.input_names, *self.program.param_names()):
            if name not in self.grads and self.kinds[name] != "matrix":
                self.finish(name, self.loc_of(name))
        grads = GradientMap(self.output, tuple(self.grads.items()), tuple(reversed(self.uses)))
        program = self.program.replace(name=f"{self.program.name}_backprop", body=tuple(self.body))
        return Backprop(program, grads)

    def loc_of(self, name: str) -> Loc | None:
        if name in self.program.producer:
            return self.program.producer[name].loc
        decls: tuple[Input | Param, ...] = (*self.program.inputs, *self.program.params)
        return next((d.loc for d in decls if name in d.names), None)

    def emit(self, ins: Instruction) -> None:
        self.body.append(ins)
        self.kinds[ins.out] = "scalar" if isinstance(ins, Avg) else "vector"

    def add(self, var: str, term: Term) -> None:
        if var in self.useful:
            self.terms.setdefault(var, []).append(term)

    # -- one rule per instruction kind (02 §2.2) ---------------------------------------------------
    def contribute(self, ins: Instruction, dy: str) -> None:
        match ins:
            case MatMul(out=y, matrix=w, arg=x, transpose=t):
                self.uses.append(MatrixUse(w, t, y, x, dy))
                self.add(x, MatMul("", w, dy, not t, ins.loc))
            case Avg(arg=x):
                self.add(x, sym(dy))
            case Nonlin():
                for s, var, _ in self.wanted(ins):
                    self.add(var, sym(dy) * derivative(ins, s, self.kinds))
            case OuterNonlin(copies=copies):
                for s, var, copy in self.wanted(ins):
                    f = sym(dy) * derivative(ins, s, self.kinds)
                    if copy is not None:
                        f = self.exchange(f, copies, copy)
                    self.add(var, mean_term(copies, f, ins.loc))
            case _:
                assert_never(ins)

    def wanted(self, ins: Nonlin | OuterNonlin) -> Iterable[tuple[sympy.Symbol, str, str | None]]:
        return (a for a in formula_args(ins) if a[1] in self.useful)

    def exchange(self, f: sympy.Expr, copies: tuple[str, ...], copy: str) -> sympy.Expr:
        """Swap the own index and copy ``copy``: x ↦ x[copy], x[copy] ↦ x (scalars stay). The old
        own index becomes the summed γ, and the variable read at ``copy`` becomes the own index."""
        swap = {}
        for s in f.free_symbols - {WIDTH}:
            var, c = split_symbol(s.name, copies)
            if c is None and self.kinds[var] == "vector":
                swap[s] = sym(copy_ref(var, copy))
            elif c == copy:
                swap[s] = sym(var)
        return f.xreplace(swap)

    # -- summing the contributions into one gradient ---------------------------------------------
    def finish(self, var: str, loc: Loc | None) -> str | None:
        """Emit the gradient of ``var`` from its contributions; None if it has none."""
        terms = [t for t in self.terms.pop(var, []) if not (isinstance(t, sympy.Expr) and t == 0)]
        if not terms:
            return None
        name = self.names.grad(var)
        if self.kinds[var] == "vector":
            self.sum_into(name, terms, loc)
        else:
            self.emit(Avg(name, self.vector_of(name, terms, loc), loc))
        self.grads[var] = name
        return name

    def sum_into(self, name: str, terms: list[Term], loc: Loc | None) -> None:
        if len(terms) == 1 and not isinstance(terms[0], sympy.Expr):
            self.emit(replace(terms[0], out=name))  # the single MatMul/OuterNonlin is the gradient
            return
        self.emit(Nonlin(name, sympy.Add(*(self.as_expr(name, t) for t in terms)), loc))

    def vector_of(self, grad: str, terms: list[Term], loc: Loc | None) -> str:
        """A vector variable whose average is the sum of the scalar contributions ``terms``."""
        if len(terms) == 1 and not isinstance(terms[0], sympy.Expr):
            return self.as_expr(grad, terms[0]).name
        formula = sympy.Add(*(self.as_expr(grad, t) for t in terms))
        if isinstance(formula, sympy.Symbol) and self.kinds.get(formula.name) == "vector":
            return formula.name
        tmp = self.names.temp(grad)
        self.emit(Nonlin(tmp, formula, loc))
        return tmp

    def as_expr(self, grad: str, term: Term) -> sympy.Expr:
        if isinstance(term, sympy.Expr):
            return term
        tmp = self.names.temp(grad)
        self.emit(replace(term, out=tmp))
        return sym(tmp)


def backprop_map(
    program: Program, output: str | None = None, input_gradients: bool = True
) -> Backprop:
    """The backpropagation program of F = avg(output) and its :class:`GradientMap` (02 §2.2).
    ``input_gradients=False`` leaves out the gradients of the input scalars."""
    return _Builder(program, choose_output(program, output), input_gradients).run()


def backprop_each(program: Program, input_gradients: bool = True) -> tuple[Backprop, ...]:
    """One verified backpropagation per output coordinate of a multi-output architecture."""
    from compiler.passes.pipeline import run_pass

    return tuple(run_pass(program, BackpropOptions(o, input_gradients)) for o in program.outputs)


def backprop(program: Program, output: str | None = None, input_gradients: bool = True) -> Program:
    """The backpropagation program alone (see :func:`backprop_map`)."""
    return backprop_map(program, output, input_gradients).program


@register_pass("backprop", BackpropOptions, BACKPROP, sample=BackpropOptions())
def run_backprop(program: Program, options: BackpropOptions) -> Backprop:
    """Extend the program by the scaled gradients dx = n·∂F/∂x, dθ = ∂F/∂θ of F = avg(output)."""
    return backprop_map(program, options.output, options.input_gradients)
