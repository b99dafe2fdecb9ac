"""MLPs: structural recognition and the exact classification of spec 03 §3.2.

**Recognition.** An architecture is the L-hidden-layer MLP of Eq. 2.3 when its only output is
v ⊙ φ_L(h^L) for a vector parameter v, h^l = W^l φ_{l−1}(h^{l−1}) for distinct matrix parameters
(2 ≤ l ≤ L), and h¹ = Σ_j U[j] ξ_j contracts a vector group U with the whole input (Nonlins are
inlined, so ``x = relu(h)`` and ``v * relu(W @ x)`` are the same). Any depth, any activations
(per layer); nothing else may be in the program. Layer 1 is the vector group, layers 2..L are
matrices and layer L+1 is the readout with a_{L+1} = a_v + e_out (Rem. 2.9.13).

**Classification** (03 §3.2, with the optimizer classes of :mod:`compiler.train.classes`):
θ_1 = a_1+c_1, θ_l = a_l+c_l−1, r_l = min_{m≤l} θ_m, r = r_L, and

1. stable at init iff a_1+b_1 = 0, a_l+b_l = ½ (2 ≤ l ≤ L), a_{L+1}+b_{L+1} ≥ ½;
2. faithful at init iff d_l = a_l+a_{L+1}+b_{L+1} (l ≤ L) and d_{L+1} = a_{L+1};
3. stable and faithful throughout iff r ≥ 0, a_{L+1}+c_{L+1} ≥ 1, a_{L+1}+b_{L+1}+r ≥ 1, and
   b_{L+1} ≤ c_{L+1} (the last one only matters for an adaptive Q, where it is faithfulness);
4. nontrivial iff a_{L+1}+c_{L+1} = 1 or a_{L+1}+b_{L+1}+r = 1;
5. feature learning iff r = 0, operator regime iff r > 0.

For a linear or scale-invariant Q item 2 is automatic: c is replaced by the effective c' (linear:
c − d + d*, with d* the faithful d computed from the readout's size during training
b' = min(b_{L+1}, c'_{L+1}); scale invariant: c). For an adaptive Q with wrong d the sizes are
still predicted with c' = c + max(d* − d, 0) (see optim), but the verdict is "unfaithful".
In items 3–4 and the contributions b_{L+1} is b' (equivalent when b ≤ c'); a zero readout
(b = ∞) has b' = c' and its faithful d uses b' (see :mod:`compiler.abcd.classify`).
Contributions to the limit (05 §5.5): the readout's update iff a_{L+1}+c'_{L+1} = 1, layer l's
update iff a_{L+1}+b'_{L+1}+θ_l = 1, the initial output f_0 iff a_{L+1}+b_{L+1} = ½.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

import sympy

from compiler.ir import Avg, MatMul, Nonlin, OuterNonlin, Program
from compiler.passes.dce import dead_code_elimination
from compiler.symbols import WIDTH, sym

T = sympy.Symbol("t", real=True)


@dataclass(frozen=True)
class Layer:
    """Layer ``index`` (1..L+1): its parameter entry and group, and its activation φ(t)."""

    index: int
    entry: str
    group: str
    activation: sympy.Expr | None


@dataclass(frozen=True)
class MLPStructure:
    """An architecture recognised as the MLP of 03 §3.2 (L hidden layers)."""

    depth: int
    layers: tuple[Layer, ...]

    def describe(self) -> str:
        dot = sympy.Symbol("·")
        acts = {str(la.activation.xreplace({T: dot})) for la in self.layers[:-1] if la.activation}
        parts = [f"layer {la.index} = {la.entry}" for la in self.layers]
        return (f"{self.depth}-hidden-layer MLP (activation {', '.join(sorted(acts))}): "
                + ", ".join(parts) + " (readout)")


def recognise(program: Program) -> MLPStructure | None:
    """The MLP structure of ``program``, or None when it is not an MLP (03 §3.2 Eq. 2.3)."""
    program = dead_code_elimination(program)
    if len(program.outputs) != 1 or len(program.inputs) != 1 or len(program.inputs[0].shape) != 1:
        return None
    group = {name: p.name for p in program.params for name in (*p.names, p.name)}
    inliner = _Inliner(program)
    out = inliner.expr(program.outputs[0])
    if out is None or WIDTH in out.free_symbols:
        return None
    readout = [s for s in out.free_symbols if s.name in group and program.kinds[s.name] == "vector"]
    return _peel(program, inliner, out, readout, group)


class _Inliner:
    """Formulas of vectors in terms of MatMul results, parameters and inputs."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.visited: set[str] = set()

    def expr(self, name: str) -> sympy.Expr | None:
        match self.program.producer.get(name):
            case None:  # an initial object
                return sym(name)
            case MatMul():
                self.visited.add(name)
                return sym(name)
            case Nonlin() as ins:
                return self._formula(name, ins)
            case Avg() | OuterNonlin():  # not in an MLP (03 §3.2 Eq. 2.3)
                return None
            case other:
                assert_never(other)

    def _formula(self, name: str, ins: Nonlin) -> sympy.Expr | None:
        self.visited.add(name)
        swap = {}
        for s in ins.formula.free_symbols:
            if isinstance(self.program.producer.get(s.name), Nonlin):
                inner = self.expr(s.name)
                if inner is None:
                    return None
                swap[s] = inner
        return ins.formula.xreplace(swap)


def _peel(program: Program, inliner: _Inliner, out: sympy.Expr, readout: list[sympy.Symbol],
          group: dict[str, str]) -> MLPStructure | None:
    split = [(v, *out.as_independent(v, as_Add=False)) for v in readout]
    split = [(v, rest) for v, rest, vpart in split if vpart == v]
    if len(split) != 1:
        return None
    v, rest = split[0]
    layers: list[tuple[str, sympy.Expr]] = []
    expr = rest
    while True:
        syms = expr.free_symbols
        ins = program.producer.get(next(iter(syms)).name) if len(syms) == 1 else None
        if isinstance(ins, MatMul):
            phi = expr.xreplace({next(iter(syms)): T})
            if ins.transpose or program.kinds.get(ins.matrix) != "matrix" or phi == 0:
                return None
            layers.insert(0, (ins.matrix, phi))
            inliner.visited.add(ins.out)
            nxt = inliner.expr(ins.arg)
            if nxt is None:
                return None
            expr = nxt
            continue
        first = _first_layer(program, expr, group)
        if first is None:
            return None
        layers.insert(0, first)
        break
    return _check_uses(program, inliner, layers, v.name, group)


def _first_layer(program: Program, expr: sympy.Expr,
                 group: dict[str, str]) -> tuple[str, sympy.Expr] | None:
    xi = program.inputs[0]
    candidates = [p for p in program.params if p.kind == "vector" and p.shape == xi.shape]
    for u in candidates:
        lin = sympy.Add(*(sym(a) * sym(b) for a, b in zip(u.names, xi.names, strict=True)))
        phi = expr.subs(lin, T)
        if phi.free_symbols == {T}:
            return (u.name, phi)
    return None


def _check_uses(program: Program, inliner: _Inliner, layers: list[tuple[str, sympy.Expr]],
                v: str, group: dict[str, str]) -> MLPStructure | None:
    first = next(p for p in program.params if p.name == layers[0][0])
    entries = [*first.names, *(name for name, _ in layers[1:]), v]
    if len(set(entries)) != len(entries) or set(entries) != set(program.param_names()):
        return None
    if inliner.visited != {ins.out for ins in program.body}:
        return None
    out = [Layer(k + 1, e, group[e], phi) for k, (e, phi) in enumerate(layers)]
    out.append(Layer(len(layers) + 1, v, group[v], None))
    return MLPStructure(len(layers), tuple(out))
