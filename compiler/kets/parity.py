"""Sign-flip symmetries and Dirac-delta detection for the ket lowering (spec 01 §1.3–1.4).

**Symmetries.** The law of a program's random initial objects is invariant under flipping the
sign of any one initial vector v (entries iid N(0,1)) and of any one matrix W (entries iid and
symmetric in every setup of 01 §1.3; W → −W flips Wᵀ too).  Under such a flip S every object x
of the program either maps to +x, to −x, or to neither; that is its *parity* (+1, −1, 0) under S,
computed instruction by instruction (a MatMul by W multiplies the parity of its argument by −1
under S = flip(W); a formula's parity is read off symbolically by substituting ±x for every
argument).  The kets inherit it.  Consequences used by the lowering and the evaluators:

* a dot coefficient E[∂x/∂H] vanishes when x and H have opposite parity under some S (the flip
  maps ∂x/∂H to −∂x/∂H and preserves the law);  this is what makes gradient independence exact in
  MLP backprop (everything downstream of the readout v is odd in v) without Monte Carlo noise;
* an Avg of an odd ket has limit 0.

**Dirac deltas.** The a.e. derivative of step/sign is 0, but E[∂ψ/∂G] of a ψ containing step(G…)
has a delta part (E[∂ step(G)/∂G] = density of G at 0).  ``singular_deps`` marks the hats whose
derivative path crosses such a function, so their coefficients come from Stein's lemma instead.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy

from compiler.ir import Avg, MatMul, Nonlin, OuterNonlin, Program, formula_args


def generators(program: Program) -> dict[str, frozenset[str]]:
    """The sign flips used: each initial vector and matrix alone, each declared group at once
    (``U`` flips every U[j], which makes U·ξ odd), all vectors, all matrices, and everything."""
    vecs, mats = program.param_names("vector"), program.param_names("matrix")
    gens = {name: frozenset({name}) for name in (*vecs, *mats)}
    for p in program.params:
        if p.kind != "scalar" and len(p.names) > 1:
            gens[p.name] = frozenset(p.names)
    gens["all vectors"] = frozenset(vecs)
    gens["all matrices"] = frozenset(mats)
    gens["everything"] = frozenset((*vecs, *mats))
    return {g: s for g, s in gens.items() if s}


def parities(program: Program) -> dict[str, dict[str, int]]:
    """name → {generator: −1 or 0} for every object under every flip of :func:`generators`
    (absent means even, +1)."""
    gens = generators(program)
    par: dict[str, dict[str, int]] = {name: {} for name in program.kinds}
    for v in program.param_names("vector"):
        par[v] = {g: -1 for g, members in gens.items() if v in members}
    for ins in program.body:
        match ins:
            case MatMul(out=y, matrix=w, arg=x):
                p = {
                    g: par[x].get(g, 1) * (-1 if w in members else 1) for g, members in gens.items()
                }
                par[y] = {g: s for g, s in p.items() if s != 1}
            case Avg(out=y, arg=x):
                par[y] = dict(par[x])
            case Nonlin() | OuterNonlin():
                par[ins.out] = {g: s for g in gens if (s := _formula_parity(ins, g, par)) != 1}
    return par


def _formula_parity(
    ins: Nonlin | OuterNonlin, gen: str, par: Mapping[str, Mapping[str, int]]
) -> int:
    args = formula_args(ins)
    signs = {s: par[var].get(gen, 1) for s, var, _ in args}
    if all(v == 1 for v in signs.values()):
        return 1
    if any(v == 0 for v in signs.values()):
        return 0
    f = ins.formula
    g = f.xreplace({s: -s for s, v in signs.items() if v == -1})
    if g == f:
        return 1
    if g == -f:
        return -1
    try:
        if sympy.expand(g - f) == 0:
            return 1
        if sympy.expand(g + f) == 0:
            return -1
    except (TypeError, ValueError, RecursionError):  # a formula sympy cannot expand: unknown
        return 0
    return 0


def has_delta(expr: sympy.Expr) -> bool:
    """Whether a derivative produced by sympy contains a Dirac delta (from step, sign, Heaviside,
    Max/Min)."""
    return bool(expr.has(sympy.DiracDelta))


def singular_deps(
    ins: Nonlin | OuterNonlin,
    args: tuple[str, ...],
    dep: Mapping[str, frozenset[str]],
    singular: Mapping[str, frozenset[str]],
) -> frozenset[str]:
    """Hats H for which ∂|ins.out⟩/∂H has a Dirac-delta part: those of an argument whose partial
    derivative of ψ contains a delta, plus those already singular in an argument."""
    out: set[str] = set()
    syms = {var: s for s, var, copy in formula_args(ins) if copy is None}
    for a in args:
        out |= singular[a]
        if dep[a] and has_delta(sympy.diff(ins.formula, syms[a])):
            out |= dep[a]
    return frozenset(out)
