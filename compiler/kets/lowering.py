"""Kets: the limit objects of a program, and the ``lower`` pass (spec 01 §1.4, Def. 2.6.5).

``lower(program)`` gives one ket per vector and one limit per scalar, by the rules of 01 §1.4:

* **Init**   an initial vector v:  |v⟩ ~ N(0, 1), independent of every other initial ket and hat.
  Input scalars take their values from data; scalar parameters with ``init`` have that limit;
  scalar parameters without ``init`` are N(0, 1)-random in the theory (05 §5.4) and the limit is
  *conditioned on their value* (the evaluator takes it as an argument: see ``ScalarLimit``).
* **Avg**    θ̊ = E|x⟩ (deterministic).
* **OuterNonlin** (order 0 = Nonlin)  |y⟩ = E′[ψ(|x⟩; |x⟩′¹; …; θ̊)].
* **MatMul** y = W x:  |y⟩ = |Ŵx⟩ + Σ_z |z⟩·E[∂|x⟩/∂|Ŵᵀz⟩]  (**Hat** + **Dot**).  Hats are grouped
  per *orientation* (W, transposed?): W and Wᵀ are distinct matrices for the hat law.  The dot sum
  runs over the earlier hats of the opposite orientation that |x⟩ depends on; each coefficient is
  a symbolic :class:`DotCoeff` whose ``rule`` tells the evaluator how to get its number:

  - ``zero``: proven 0 by a sign-flip symmetry (:func:`compiler.kets.parity.sign_flips`), e.g.
  E[v·δ(h)] = 0 in MLP backprop because the readout |v⟩ is odd and independent;
  - ``stein``: the derivative path crosses step/sign (sympy gives a DiracDelta, whose expectation
    is not the a.e. derivative 0), so the coefficient must come from Stein's lemma
    (E[∂x/∂G_j])_j = C⁺(E[x G_j])_j (01 §1.4, Rem. 2.6.6);
  - ``derivative``: forward-mode differentiation through the ket program is valid.

Dependence ("|x⟩ is a function of hat H") follows slot 0 of formulas and the dot terms of MatMuls;
Avg limits and the copies of an OuterNonlin are deterministic, so they carry no dependence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, assert_never

import sympy

from compiler.ir import Avg, Loc, MatMul, Nonlin, OuterNonlin, Program, formula_args
from compiler.kets.parity import parities, sign_flips, singular_deps

Orientation = tuple[str, bool]
"""(matrix name, transposed?): W and Wᵀ are different matrices for the hat law (01 §1.4 Hat)."""

Rule = Literal["zero", "stein", "derivative"]


@dataclass(frozen=True)
class HatKet:
    """|Ŵx⟩ (or |Ŵᵀx⟩): the Gaussian part of MatMul ``out``; ``index`` counts the hats of its
    orientation in program order."""

    matrix: str
    transpose: bool
    arg: str
    out: str
    index: int

    @property
    def orientation(self) -> Orientation:
        return (self.matrix, self.transpose)


@dataclass(frozen=True)
class DotCoeff:
    """E[∂|arg⟩/∂|hat⟩], ``hat`` of the opposite orientation; the dot term is |hat.arg⟩ · this."""

    arg: str
    hat: HatKet
    rule: Rule
    why: str = ""


@dataclass(frozen=True)
class ScalarLimit:
    """An initial scalar: ``input`` (value from data), ``fixed`` (init value) or ``random``
    (an N(0,1) scalar parameter; the limit is conditioned on its value)."""

    out: str
    source: Literal["input", "fixed", "random"]
    value: sympy.Expr | None = None


@dataclass(frozen=True)
class InitKet:
    """|v⟩ ~ N(0, 1) for an initial vector v (01 §1.4 Init)."""

    out: str


@dataclass(frozen=True)
class MatMulKet:
    """|out⟩ = |hat⟩ + Σ_c |c.hat.arg⟩ · c (zero-rule coefficients are kept for the record)."""

    out: str
    hat: HatKet
    dots: tuple[DotCoeff, ...]
    loc: Loc | None = None

    @property
    def live_dots(self) -> tuple[DotCoeff, ...]:
        return tuple(c for c in self.dots if c.rule != "zero")


@dataclass(frozen=True)
class FormulaKet:
    """|out⟩ = E′[ψ(|x⟩; |x⟩′…; θ̊)] (order 0: ψ(|x⟩; θ̊)); ``ins`` is the source instruction."""

    out: str
    ins: Nonlin | OuterNonlin
    loc: Loc | None = None

    @property
    def order(self) -> int:
        return self.ins.order if isinstance(self.ins, OuterNonlin) else 0

    @property
    def formula(self) -> sympy.Expr:
        return self.ins.formula


@dataclass(frozen=True)
class AvgLimit:
    """θ̊ = E|arg⟩ (01 §1.4 Avg)."""

    out: str
    arg: str
    loc: Loc | None = None


Ket = ScalarLimit | InitKet | MatMulKet | FormulaKet | AvgLimit


@dataclass(frozen=True)
class KetProgram:
    """The lowered program: ``stmts`` in program order (initial objects first), the hat
    dependence ``dep`` of every vector ket, and the parities used to prove coefficients zero."""

    source: Program
    stmts: tuple[Ket, ...]
    dep: Mapping[str, frozenset[str]]
    singular: Mapping[str, frozenset[str]]
    parity: Mapping[str, Mapping[str, int]]

    @cached_property
    def by_name(self) -> dict[str, Ket]:
        return {s.out: s for s in self.stmts}

    @cached_property
    def hats(self) -> dict[str, HatKet]:
        """Every hat by its MatMul's output name."""
        return {s.out: s.hat for s in self.stmts if isinstance(s, MatMulKet)}

    @cached_property
    def matmuls_by_orientation(self) -> dict[object, tuple[list[int], list[str]]]:
        """Per hat orientation, the MatMul statements' indices and outputs in program order."""
        out: dict[object, tuple[list[int], list[str]]] = {}
        for i, s in enumerate(self.stmts):
            if isinstance(s, MatMulKet):
                at, names = out.setdefault(s.hat.orientation, ([], []))
                at.append(i)
                names.append(s.out)
        return out

    def kind(self, name: str) -> str:
        return self.source.kinds[name]

    @cached_property
    def scalar_names(self) -> tuple[str, ...]:
        return tuple(s.out for s in self.stmts if isinstance(s, ScalarLimit | AvgLimit))

    @cached_property
    def avg_names(self) -> tuple[str, ...]:
        return tuple(s.out for s in self.stmts if isinstance(s, AvgLimit))


def slot0_vectors(ins: Nonlin | OuterNonlin, kinds: Mapping[str, str]) -> tuple[str, ...]:
    """The vectors a formula reads at the own index (the only ones that carry dependence)."""
    return tuple(
        dict.fromkeys(
            var for _, var, copy in formula_args(ins) if copy is None and kinds[var] == "vector"
        )
    )


def lower(program: Program) -> KetProgram:
    """Lower ``program`` to kets (01 §1.4): Init, Avg, OuterNonlin, Hat and Dot."""
    kinds = program.kinds
    initial = (*program.input_names, *program.param_names("vector"), *program.param_names("scalar"))
    stmts: list[Ket] = [_initial(program, name) for name in initial]
    dep: dict[str, frozenset[str]] = {s.out: frozenset() for s in stmts}
    parity = parities(program, sign_flips(program))
    hats: dict[Orientation, list[HatKet]] = {}
    singular: dict[str, frozenset[str]] = dict.fromkeys(dep, frozenset())
    for ins in program.body:
        match ins:
            case MatMul(out=y, matrix=w, arg=x, transpose=t):
                mine = hats.setdefault((w, t), [])
                hat = HatKet(w, t, x, y, len(mine))
                mine.append(hat)
                dots = tuple(
                    _dot(x, h, parity, singular)
                    for h in hats.get((w, not t), ())
                    if h.out in dep[x]
                )
                live = [c for c in dots if c.rule != "zero"]
                dep[y] = frozenset({y}).union(*(dep[c.hat.arg] for c in live))
                singular[y] = frozenset().union(*(singular[c.hat.arg] for c in live))
                stmts.append(MatMulKet(y, hat, dots, ins.loc))
            case Avg(out=y, arg=x):
                dep[y] = singular[y] = frozenset()
                stmts.append(AvgLimit(y, x, ins.loc))
            case Nonlin() | OuterNonlin():
                args = slot0_vectors(ins, kinds)
                dep[ins.out] = frozenset().union(*(dep[a] for a in args))
                singular[ins.out] = singular_deps(ins, args, dep, singular, kinds)
                stmts.append(FormulaKet(ins.out, ins, ins.loc))
            case _:
                assert_never(ins)
    return KetProgram(program, tuple(stmts), dep, singular, parity)


def _initial(program: Program, name: str) -> Ket:
    kind = program.kinds[name]
    if name in program.input_names:
        return ScalarLimit(name, "input")
    if kind == "vector":
        return InitKet(name)
    init = next(p.init for p in program.params if name in p.names)
    return ScalarLimit(name, "random") if init is None else ScalarLimit(name, "fixed", init)


def _dot(
    x: str,
    hat: HatKet,
    parity: Mapping[str, Mapping[str, int]],
    singular: Mapping[str, frozenset[str]],
) -> DotCoeff:
    """The coefficient E[∂|x⟩/∂|hat⟩] and how to evaluate it."""
    for gen, sx in parity[x].items():
        sh = parity[hat.out].get(gen, 1)
        if sx * sh == -1:
            # flipping `gen` preserves the law, maps ∂x/∂H to −∂x/∂H: its mean is 0
            return DotCoeff(x, hat, "zero", f"odd under {gen} ↦ −{gen}")
    if hat.out in singular[x]:
        return DotCoeff(x, hat, "stein", "derivative passes through step/sign (Dirac delta)")
    return DotCoeff(x, hat, "derivative")
