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
identity, else one cached Gauss–Hermite grid per activation (smooth φ only; its error is
estimated from two grid sizes and must be below 1e-13).  Reducing to the span ℓ first is what
makes ``relu(U . xi)`` as cheap as ``h = U . xi; relu(h)`` (one Gaussian, not ten).

Backward (05 §5.2): the readout o = v ⊙ X gives dX = v, so E[dX dX′] = 1; through x = φ(ℓ),
E[dℓ dℓ′] = E[dx dx′] ⊙ E[φ′(a) φ′(b)]; a base b of ℓ gets E[db db′] = c_b c_bᵀ ⊙ E[dℓ dℓ′], which
is its group's NTK block for a parameter and, for h = W x, gives W's block E[dh dh′] ⊙ E[x x′]
and E[dx dx′] += E[dh dh′] (Wᵀ dh is a fresh Gaussian).  The dot-product terms of the Master
Theorem vanish here because every backward vector is a zero-mean Gaussian independent of the
forward kets (gradient independence is exact for such a tree with a zero-mean readout).

``batched_kernel_blocks`` returns None for any program outside this class (a matrix used twice
or transposed, an Avg or OuterNonlin, an activation of two Gaussians, a shared base, a random
scalar, a kinked activation other than relu/step): the caller takes the general path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from compiler.ir import Avg, MatMul, Nonlin, Program
from compiler.rename import split_name
from compiler.symbols import sym
from runtime.limits.pairs import NotBatchedError, T, pair_expectation


@dataclass(frozen=True)
class Lin:
    """ℓ(ξ) = μ(ξ) + Σ_b c_b(ξ)·b: ``mean`` (B,), ``coefs`` base name → (B,)."""

    mean: np.ndarray
    coefs: Mapping[str, np.ndarray]


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
    try:
        return _Batched(program, inputs, output).blocks()
    except NotBatchedError:
        return None


class _Batched:
    """One evaluation: the forward values (symbolic once), then the (B, B) recursions."""

    def __init__(self, program: Program, inputs: object, output: str | None) -> None:
        from compiler.passes.total import input_array

        self.program = program
        self.x = input_array(program, inputs)
        self.out = _output(program, output)
        self.kinds = program.kinds
        self.consts = _constants(program)
        self.values: dict[str, Value] = {}
        self.matmul: dict[str, MatMul] = {}  # base name → its MatMul
        self.second: dict[str, np.ndarray] = {}  # base h = W x → E[x x′] (B, B)

    def blocks(self) -> dict[str, np.ndarray]:
        readout, top = self._forward()
        nngp = self.moment(top)
        out: dict[str, np.ndarray] = {"nngp": nngp, split_name(readout)[0]: nngp}
        grads: dict[str, np.ndarray] = {}  # consumed value name → E[dv dv′]
        self._backward(top, np.ones_like(nngp), out, grads)
        if readout in grads:
            raise NotBatchedError(f"the readout {readout} is used inside the network too")
        return out

    # forward ---------------------------------------------------------------------------------

    def _forward(self) -> tuple[str, Value]:
        """Every value the output needs, in program order; (readout parameter, X) of o = v ⊙ X."""
        needed = _ancestors(self.program, self.out)
        used: set[str] = set()
        for ins in self.program.body:
            if ins.out not in needed or ins.out == self.out:
                continue
            if isinstance(ins, MatMul):
                if ins.transpose or ins.matrix in used:
                    raise NotBatchedError(f"matrix {ins.matrix} transposed or used twice")
                used.add(ins.matrix)
                self.matmul[ins.out] = ins
                one = np.ones(len(self.x))
                self.values[ins.out] = Lin(np.zeros(len(self.x)), {ins.out: one})
            elif isinstance(ins, Nonlin):
                self.values[ins.out] = self._nonlin(ins.formula)
            else:
                raise NotBatchedError(f"{type(ins).__name__} {ins.out}")
        return self._readout()

    def _readout(self) -> tuple[str, Value]:
        producer = self.program.producer.get(self.out)
        if not isinstance(producer, Nonlin):
            raise NotBatchedError("the output is not v ⊙ X")
        formula = producer.formula.xreplace(self.consts)
        params = [s for s in formula.free_symbols if self.kinds.get(s.name) == "vector"
                  and s.name in self.program.param_names("vector")]
        for v in params:
            rest = sympy.simplify(formula / v)
            if not rest.has(v) and v.name not in self._bases_of(rest):
                return v.name, self._nonlin(rest)
        raise NotBatchedError("the output is not v ⊙ X with v a vector parameter used once")

    def _bases_of(self, expr: sympy.Expr) -> set[str]:
        out: set[str] = set()
        for s in expr.free_symbols:
            val = self.values.get(s.name)
            lin = val.lin if isinstance(val, Act) else val
            if lin is not None:
                out |= set(lin.coefs)
            elif s.name in self.program.param_names("vector"):
                out.add(s.name)
        return out

    def _nonlin(self, formula: sympy.Expr) -> Value:
        """The value of a Nonlin: substitute linear values by their bases, activations by a
        stand-in; then linear → Lin, one activation of it → composed Act, else φ(one linear
        sub-expression holding every base)."""
        formula = formula.xreplace(self.consts)
        subs: dict[sympy.Symbol, Any] = {}
        lin_of: dict[sympy.Symbol, Lin] = {}
        acts: dict[sympy.Symbol, Act] = {}
        for s in formula.free_symbols:
            kind, val = self.kinds.get(s.name), self.values.get(s.name)
            if isinstance(val, Act):
                acts[s] = val
            elif isinstance(val, Lin):
                lin_of[s] = val
            elif kind == "vector" and s.name in self.program.param_names("vector"):
                one = np.ones(len(self.x))
                lin_of[s] = Lin(np.zeros(len(self.x)), {s.name: one})
            elif s.name not in self.program.input_names:
                raise NotBatchedError(f"{s.name}: not a value of the batched class")
        if acts:
            return self._compose(formula, acts, lin_of)
        expr, stand = self._expand(formula, lin_of, subs)
        if _is_linear(expr, stand):
            return self._lin(expr, stand)
        return self._activation(expr, stand)

    def _compose(self, formula: sympy.Expr, acts: dict[sympy.Symbol, Act],
                 lin_of: dict[sympy.Symbol, Lin]) -> Act:
        """ψ(φ(ℓ)) for one activation and no other vector or input dependence."""
        if len(acts) != 1 or lin_of or any(
            s.name in self.program.input_names for s in formula.free_symbols
        ):
            raise NotBatchedError("a function of several vectors")
        (s, act), = acts.items()
        return Act(formula.xreplace({s: act.phi}), act.lin)

    def _expand(self, formula: sympy.Expr, lin_of: dict[sympy.Symbol, Lin],
                subs: dict[sympy.Symbol, Any]) -> tuple[sympy.Expr, dict[sympy.Symbol, str]]:
        """The formula in base symbols: each linear value replaced by μ + Σ c_b·b, where the
        per-input parts μ, c_b are symbols standing for their (B,) arrays."""
        stand: dict[sympy.Symbol, str] = {}
        self._arrays: dict[sympy.Symbol, np.ndarray] = getattr(self, "_arrays", {})
        for s, lin in lin_of.items():
            terms: list[Any] = []
            for b, c in lin.coefs.items():
                base = sym(f"@{b}")
                stand[base] = b
                terms.append(self._array_symbol(c) * base)
            terms.append(self._array_symbol(lin.mean))
            subs[s] = sympy.Add(*terms)
        return formula.xreplace(subs), stand

    def _array_symbol(self, a: np.ndarray) -> Any:
        """A constant array as a number when it is one, else a symbol standing for it."""
        if np.all(a == a[0]):
            return sympy.Float(float(a[0])) if a[0] != int(a[0]) else sympy.Integer(int(a[0]))
        s = sym(f"@arr{len(self._arrays)}")
        self._arrays[s] = a
        return s

    def _per_input(self, expr: sympy.Expr) -> np.ndarray:
        """A formula of input scalars and stand-in arrays, evaluated for each input (B,)."""
        from runtime.codegen import compile_formula

        args = tuple(sorted(expr.free_symbols, key=lambda s: s.name))
        if not args:
            return np.full(len(self.x), float(expr))
        names = self.program.input_names
        vals = [self._arrays[a] if a in self._arrays else self.x[:, names.index(a.name)]
                for a in args]
        return np.broadcast_to(compile_formula(expr, args)(*vals, 1), (len(self.x),)).astype(
            np.float64)

    def _lin(self, expr: sympy.Expr, stand: dict[sympy.Symbol, str]) -> Lin:
        coefs = {}
        for base, name in stand.items():
            coefs[name] = self._per_input(expr.diff(base))
        mean = self._per_input(expr.xreplace({b: sympy.S.Zero for b in stand}))
        return Lin(mean, coefs)

    def _activation(self, expr: sympy.Expr, stand: dict[sympy.Symbol, str]) -> Act:
        """expr = φ(s) for one linear sub-expression s holding every base."""
        for node in sympy.preorder_traversal(expr):
            if not all(node.has(b) for b in stand) or not _is_linear(node, stand):
                continue
            phi = expr.xreplace({node: T})
            if phi.has(*stand) or any(
                s.name in self.program.input_names or s in self._arrays
                for s in phi.free_symbols
            ):
                continue
            return Act(phi, self._lin(node, stand))
        raise NotBatchedError("an activation of several Gaussians")

    # moments ---------------------------------------------------------------------------------

    def cov(self, lin: Lin) -> np.ndarray:
        """Σ_ℓ[i, j] = Σ_b c_b(ξ^i) c_b(ξ^j) Cov_b[i, j] (the covariance of the centred part)."""
        out = np.zeros((len(self.x), len(self.x)))
        for b, c in lin.coefs.items():
            out += np.outer(c, c) * self._base_cov(b)
        return out

    def _base_cov(self, b: str) -> np.ndarray | float:
        if b not in self.matmul:
            return 1.0  # a vector parameter: one N(0, 1) ket shared by every input
        if b not in self.second:
            self.second[b] = self.moment(self.values[self.matmul[b].arg])
        return self.second[b]

    def moment(self, value: Value) -> np.ndarray:
        """E[x(ξ^i) x(ξ^j)] (B, B)."""
        lin = value.lin if isinstance(value, Act) else value
        phi = value.phi if isinstance(value, Act) else T
        return pair_expectation(phi, self.cov(lin), lin.mean)

    # backward --------------------------------------------------------------------------------

    def _backward(self, value: Value, grad: np.ndarray, out: dict[str, np.ndarray],
                  seen: dict[str, np.ndarray]) -> None:
        """Push E[dx dx′] = ``grad`` of ``value`` down to its bases, adding group blocks."""
        lin = value.lin if isinstance(value, Act) else value
        if isinstance(value, Act):
            dphi = value.phi.diff(T)
            grad = grad * pair_expectation(dphi, self.cov(lin), lin.mean)
        for b, c in lin.coefs.items():
            if b in seen:
                raise NotBatchedError(f"{b} reached twice (a shared base)")
            gb = np.outer(c, c) * grad
            seen[b] = gb
            if b not in self.matmul:
                _add(out, split_name(b)[0], gb)
                continue
            mm = self.matmul[b]
            _add(out, split_name(mm.matrix)[0], gb * self._base_cov(b))
            self._backward(self.values[mm.arg], gb, out, seen)


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
    from compiler.errors import UsageError

    if output is None:
        if len(program.outputs) != 1:
            raise UsageError(f"{program.name} has outputs {', '.join(program.outputs)}: choose one")
        return program.outputs[0]
    if output not in program.outputs:
        raise UsageError(f"{output} is not an output of {program.name}")
    return output


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
