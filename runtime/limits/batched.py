"""Batched exact kernels: whole (B, B) NNGP and NTK blocks per layer (spec 05 §5.1–5.2, 07 §7.1).

In the limit (01 §1.4) every vector of a feed-forward program whose matrices are each used once
is a function of independent Gaussian bases: each vector parameter p (N(0, 1), the same ket for
every input) and each MatMul output h = W x (a fresh Gaussian ket with Cov(h(ξ^i), h(ξ^j)) =
E[x(ξ^i) x(ξ^j)]).  When every vector is either *linear* in the bases, ℓ(ξ) = μ(ξ) + Σ_b c_b(ξ)·b
(coefficients depending on the input scalars), or one activation of one such combination,
x = φ(ℓ), the B² kernel entries of a layer are one bivariate Gaussian integral evaluated at B²
covariances

    Σ_ℓ[i, j] = Σ_b c_b(ξ^i) c_b(ξ^j) Cov_b[i, j]      (Cov_p = 1, Cov_h = E[x x′] of its argument)
    E[x(ξ^i) x(ξ^j)] = E[φ(a) φ(b)],  (a, b) ~ N((μ_i, μ_j), Σ_ℓ restricted to {i, j}),

done at once on (B, B) arrays: closed forms (07 §7.1) for relu, step, erf, erf′ and the
identity, else one cached trapezoid grid per activation (smooth φ only; error ≤ 1e-14,
:mod:`runtime.limits.pairs`).  Reducing to the span ℓ first is what
makes ``relu(U . xi)`` as cheap as ``h = U . xi; relu(h)`` (one Gaussian, not ten).

Backward (05 §5.2): the readout o = v ⊙ X gives dX = v, so E[dX dX′] = 1; through x = φ(ℓ),
E[dℓ dℓ′] = E[dx dx′] ⊙ E[φ′(a) φ′(b)]; a base b of ℓ gets E[db db′] += c_b c_bᵀ ⊙ E[dℓ dℓ′],
which is its group's NTK block for a parameter and, for h = W x, gives W's block
E[dh dh′] ⊙ E[x x′] and E[dx dx′] += E[dh dh′] (Wᵀ dh is a fresh Gaussian).  The dot-product
terms of the Master Theorem vanish because every backward vector is a zero-mean Gaussian
independent of the forward kets (gradient independence is exact with an independent zero-mean
readout), and for the same reason the backward vectors of different consumed values are
independent: a base shared by several of them (a residual stream, ``samples/resmlp.nx``; a bias
used twice) just sums their terms.

The symbolic part (which values are linear, which activations, the coefficient formulas) is a
:class:`Plan`, built once per (program, output) and cached; evaluating it on data is numpy only.
``batched_kernel_blocks`` returns None for any program outside this class (a matrix used twice
or transposed — rnn —, an Avg or OuterNonlin — attention, layer norm —, an activation of two
Gaussians, the readout used inside the network, a random scalar, a kinked activation other than
relu/step, or one of a non-centred Gaussian): the caller takes the general path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import sympy

from compiler.ir import Avg, MatMul, Nonlin, Program
from compiler.rename import split_name
from compiler.symbols import sym
from runtime.limits.pairs import NotBatchedError, PairRule, T, pair_rule


@dataclass(frozen=True)
class Lin:
    """ℓ(ξ) = μ(ξ) + Σ_b c_b(ξ)·b: ``mean`` and ``coefs`` (base name → c_b) are formulas in the
    input scalars."""

    mean: sympy.Expr
    coefs: Mapping[str, sympy.Expr]


@dataclass(frozen=True)
class Act:
    """x = φ(ℓ): ``phi`` a formula in :data:`runtime.limits.pairs.T`."""

    phi: sympy.Expr
    lin: Lin


Value = Lin | Act


def batched_kernel_blocks(
    program: Program, inputs: object, output: str | None = None
) -> dict[str, np.ndarray] | None:
    """``{"nngp": …, group: …}`` as :func:`runtime.limits.kernels.exact_kernel_blocks`, or None
    when the program is outside the batched class."""
    from compiler.passes.total import input_array

    x = input_array(program, inputs)
    the_plan = plan(program, _output(program, output))
    if the_plan is None:
        return None
    try:
        return the_plan.blocks(x)
    except NotBatchedError:
        return None


@lru_cache(maxsize=32)
def plan(program: Program, output: str) -> Plan | None:
    """The symbolic plan of ``program``'s kernels of ``output``, or None outside the class."""
    try:
        return _Planner(program, output).plan()
    except NotBatchedError:
        return None


@dataclass(frozen=True)
class Plan:
    """``values``: every vector the output needs (Lin or Act); ``matmul``: base h → the value
    name of its argument x (h = W x) and W; ``readout`` v and ``top`` X of o = v ⊙ X;
    ``coef``: every coefficient formula compiled to a function of the (B, d) data; the pair
    rules of every activation and of its derivative."""

    values: Mapping[str, Value]
    matmul: Mapping[str, tuple[str, str]]
    readout: str
    top: Value
    coef: Mapping[sympy.Expr, Callable[[np.ndarray], np.ndarray]] = field(repr=False)
    rules: Mapping[sympy.Expr, PairRule] = field(repr=False)  # φ → E[φ(a)φ(b)]
    drules: Mapping[sympy.Expr, PairRule] = field(repr=False)  # φ → E[φ′(a)φ′(b)]

    def blocks(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return _Evaluation(self, x).blocks()


class _Planner:
    """The forward values of the output, symbolically (see the module docstring)."""

    def __init__(self, program: Program, output: str) -> None:
        self.program = program
        self.out = output
        self.kinds = program.kinds
        self.vectors = set(program.param_names("vector"))
        self.inputs = set(program.input_names)
        self.consts = _constants(program)
        self.values: dict[str, Value] = {}
        self.matmul: dict[str, tuple[str, str]] = {}

    def plan(self) -> Plan:
        needed = _ancestors(self.program, self.out)
        used: set[str] = set()
        for ins in self.program.body:
            if ins.out not in needed or ins.out == self.out:
                continue
            if isinstance(ins, MatMul):
                if ins.transpose or ins.matrix in used:
                    raise NotBatchedError(f"matrix {ins.matrix} transposed or used twice")
                used.add(ins.matrix)
                self.matmul[ins.out] = (ins.arg, ins.matrix)
                self.values[ins.out] = Lin(sympy.S.Zero, {ins.out: sympy.S.One})
            elif isinstance(ins, Nonlin):
                self.values[ins.out] = self._nonlin(ins.formula)
            else:
                raise NotBatchedError(f"{type(ins).__name__} {ins.out}")
        readout, top = self._readout()
        lins = [v.lin if isinstance(v, Act) else v for v in (*self.values.values(), top)]
        if any(readout in lin.coefs for lin in lins):
            raise NotBatchedError(f"the readout {readout} is used inside the network")
        formulas = {f for lin in lins for f in (lin.mean, *lin.coefs.values())}
        names = self.program.input_names
        coef = {f: _compiled(f, names) for f in formulas}
        phis = {v.phi for v in (*self.values.values(), top) if isinstance(v, Act)}
        rules = {p: pair_rule(p) for p in phis}
        drules = {p: pair_rule(sympy.diff(p, T)) for p in phis}
        return Plan(self.values, self.matmul, readout, top, coef, rules, drules)

    def _readout(self) -> tuple[str, Value]:
        producer = self.program.producer.get(self.out)
        if not isinstance(producer, Nonlin):
            raise NotBatchedError("the output is not v ⊙ X")
        formula = producer.formula.xreplace(self.consts)
        for v in formula.free_symbols:
            if v.name not in self.vectors or v.name in self.values:
                continue
            rest = sympy.cancel(formula / v)
            if not rest.has(v):
                return v.name, self._nonlin(rest)
        raise NotBatchedError("the output is not v ⊙ X with v a vector parameter")

    def _nonlin(self, formula: sympy.Expr) -> Value:
        """The value of a Nonlin: linear values replaced by μ + Σ c_b·b (b a base symbol); then
        linear → Lin, a function of one activation → composed Act, else φ(one linear
        sub-expression holding every base)."""
        formula = formula.xreplace(self.consts)
        subs: dict[sympy.Symbol, Any] = {}
        acts: dict[sympy.Symbol, Act] = {}
        stand: dict[sympy.Symbol, str] = {}
        for s in formula.free_symbols:
            val = self.values.get(s.name)
            if isinstance(val, Act):
                acts[s] = val
                continue
            if val is None and s.name in self.vectors:
                val = Lin(sympy.S.Zero, {s.name: sympy.S.One})
            if val is None:
                if s.name not in self.inputs:
                    raise NotBatchedError(f"{s.name}: not a value of the batched class")
                continue
            for b in val.coefs:
                stand[sym(f"@{b}")] = b
            subs[s] = val.mean + sympy.Add(*(c * sym(f"@{b}") for b, c in val.coefs.items()))
        if acts:
            if len(acts) != 1 or subs or formula.free_symbols & {sym(n) for n in self.inputs}:
                raise NotBatchedError("a function of several vectors")
            (s, act), = acts.items()
            return Act(formula.xreplace({s: act.phi}), act.lin)
        expr = formula.xreplace(subs)
        if _is_linear(expr, stand):
            return _lin(expr, stand)
        return self._activation(expr, stand)

    def _activation(self, expr: sympy.Expr, stand: dict[sympy.Symbol, str]) -> Act:
        """expr = φ(s) for one linear sub-expression s holding every base."""
        for node in sympy.preorder_traversal(expr):
            if not all(node.has(b) for b in stand) or not _is_linear(node, stand):
                continue
            phi = expr.xreplace({node: T})
            if phi.free_symbols <= {T}:
                return Act(phi, _lin(node, stand))
        raise NotBatchedError("an activation of several Gaussians or of an input")


def _lin(expr: sympy.Expr, stand: Mapping[sympy.Symbol, str]) -> Lin:
    coefs = {name: sympy.diff(expr, b) for b, name in stand.items()}
    return Lin(expr.xreplace({b: sympy.S.Zero for b in stand}), coefs)


def _compiled(formula: sympy.Expr, names: tuple[str, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """(B, d) data → (B,) values of a formula in the input scalars."""
    if formula.is_Number:
        value = float(formula)
        return lambda x: np.full(len(x), value)
    if isinstance(formula, sympy.Symbol):
        col = names.index(formula.name)
        return lambda x: x[:, col]
    from runtime.codegen import compile_formula

    args = tuple(sorted(formula.free_symbols, key=lambda s: s.name))
    cols = [names.index(a.name) for a in args]
    f = compile_formula(formula, args)
    return lambda x: np.broadcast_to(f(*(x[:, c] for c in cols), 1), (len(x),)).astype(float)


class _Evaluation:
    """The (B, B) recursions of one plan on one data set."""

    def __init__(self, plan: Plan, x: np.ndarray) -> None:
        self.plan = plan
        self.x = x
        self.coef: dict[sympy.Expr, np.ndarray] = {}
        self.second: dict[str, np.ndarray] = {}  # base h = W x → E[x x′]
        self.covs: dict[int, np.ndarray] = {}  # id(lin) → Σ_ℓ (the plan keeps every lin alive)

    def c(self, formula: sympy.Expr) -> np.ndarray:
        if formula not in self.coef:
            self.coef[formula] = self.plan.coef[formula](self.x)
        return self.coef[formula]

    def blocks(self) -> dict[str, np.ndarray]:
        nngp = self.moment(self.plan.top)
        out: dict[str, np.ndarray] = {"nngp": nngp, split_name(self.plan.readout)[0]: nngp}
        grads = self._backward(np.ones_like(nngp))
        for b, g in grads.items():
            if b in self.plan.matmul:
                _add(out, split_name(self.plan.matmul[b][1])[0], g * self.base_cov(b))
            else:
                _add(out, split_name(b)[0], g)
        return out

    def _backward(self, top: np.ndarray) -> dict[str, np.ndarray]:
        """E[db db′] of every base b (05 §5.2 backward, gradient independence): the consumed
        values — the readout's X (dX = v, E[dX dX′] = ``top``) and every MatMul argument x
        (dx = Σ over its matrices of Wᵀ dh, E[dx dx′] = Σ E[dh dh′]) — in reverse program order,
        each adding c_b c_bᵀ ⊙ E[dx dx′] ⊙ E[φ′φ′] to the bases b of its ℓ.  Different consumed
        values have independent backward vectors (distinct Wᵀ's, or v), so a base shared by
        several values (a residual stream, a bias used twice) just adds their terms."""
        grads: dict[str, np.ndarray] = {}
        consumed: list[tuple[Value, np.ndarray | None]] = [(self.plan.top, top)]
        args = {arg for arg, _ in self.plan.matmul.values()}
        order = reversed(list(self.plan.values.items()))
        consumed += [(v, None) for name, v in order if name in args]
        names = {id(v): name for name, v in self.plan.values.items()}
        for value, given in consumed:
            grad = given if given is not None else self._arg_grad(names[id(value)], grads)
            lin = value.lin if isinstance(value, Act) else value
            if isinstance(value, Act):
                grad = grad * self.plan.drules[value.phi](self.cov(lin), self.c(lin.mean))
            for b, c in lin.coefs.items():
                cb = self.c(c)
                _add(grads, b, np.outer(cb, cb) * grad)
        return grads

    def _arg_grad(self, arg: str, grads: dict[str, np.ndarray]) -> np.ndarray:
        """E[dx dx′] of a MatMul argument: Σ over the MatMuls reading it of E[dh dh′]."""
        hs = [h for h, (a, _) in self.plan.matmul.items() if a == arg and h in grads]
        return np.asarray(sum(grads[h] for h in hs)) if hs else np.zeros((len(self.x),) * 2)

    def cov(self, lin: Lin) -> np.ndarray:
        """Σ_ℓ = Σ_b c_b c_bᵀ ⊙ Cov_b; the parameter bases (Cov_b = 1) as one product C Cᵀ."""
        if id(lin) not in self.covs:
            self.covs[id(lin)] = self._cov(lin)
        return self.covs[id(lin)]

    def _cov(self, lin: Lin) -> np.ndarray:
        params = [self.c(c) for b, c in lin.coefs.items() if b not in self.plan.matmul]
        out = np.zeros((len(self.x), len(self.x)))
        if params:
            cp = np.stack(params, axis=1)
            out += cp @ cp.T
        for b, c in lin.coefs.items():
            if b in self.plan.matmul:
                cb = self.c(c)
                out += np.outer(cb, cb) * self.base_cov(b)
        return out

    def base_cov(self, b: str) -> np.ndarray:
        if b not in self.second:
            self.second[b] = self.moment(self.plan.values[self.plan.matmul[b][0]])
        return self.second[b]

    def moment(self, value: Value) -> np.ndarray:
        """E[x(ξ^i) x(ξ^j)] (B, B)."""
        lin = value.lin if isinstance(value, Act) else value
        cov, mean = self.cov(lin), self.c(lin.mean)
        if isinstance(value, Lin):
            return cov + np.outer(mean, mean)
        return self.plan.rules[value.phi](cov, mean)


def _add(out: dict[str, np.ndarray], key: str, block: np.ndarray) -> None:
    out[key] = out[key] + block if key in out else block


def _is_linear(expr: sympy.Expr, stand: Mapping[sympy.Symbol, str]) -> bool:
    """Whether ``expr`` is affine in the base symbols (coefficients free of them)."""
    for b in stand:
        d = expr.diff(b)
        if any(d.has(c) for c in stand):
            return False
    return True


def _output(program: Program, output: str | None) -> str:
    from compiler.passes.backprop import choose_output

    return choose_output(program, output)

def _constants(program: Program) -> dict[sympy.Symbol, sympy.Expr]:
    """Scalar parameters with an init, as their values."""
    out: dict[sympy.Symbol, sympy.Expr] = {}
    for p in program.params:
        if p.kind != "scalar":
            continue
        if p.init is not None:  # a random one stays a symbol, and is refused where it is used
            out.update({sym(n): p.init for n in p.names})
    return out


def _ancestors(program: Program, out: str) -> set[str]:
    """Every variable ``out`` depends on, itself included."""
    need, stack = set(), [out]
    while stack:
        v = stack.pop()
        if v in need:
            continue
        need.add(v)
        ins = program.producer.get(v)
        if isinstance(ins, MatMul | Avg):
            stack.append(ins.arg)
        elif ins is not None:
            stack.extend(s.name for s in ins.formula.free_symbols)
            stack.extend(getattr(ins, "copies", ()))
    return need
