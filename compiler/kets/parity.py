"""The one sign-flip parity analysis (spec 01 §1.3–1.4, 03 §3.3), and Dirac-delta detection.

**Generators.** A *generator* flips the sign of a set of initial objects at once (its name →
the flipped names).  :func:`sign_flips` gives the standard set: each initial vector and matrix
alone, each declared group at once (``U`` flips every U[j], which makes U·ξ odd), all vectors,
all matrices, and everything.  Each leaves the law of the random initial objects unchanged:
initial vectors have iid N(0, 1) entries and matrices iid entries symmetric in every setup of
01 §1.3 (W → −W flips Wᵀ too), and a composition of such flips is one too.

**Parity.** Under a generator S every object x either maps to +x, to −x, or to neither; that is
its *parity* (+1, −1, 0) under S, computed instruction by instruction: an initial object is −1
under the generators that flip it; a MatMul by W multiplies its argument's parity by −1 when S
flips W; an Avg keeps its argument's; a formula's parity is read off symbolically by
substituting −x for every odd argument (0, unknown, when an argument is 0 or sympy cannot tell).
Two consumers, one analysis:

* the ket lowering (:mod:`compiler.kets.lowering`): a dot coefficient E[∂x/∂H] vanishes when x
  and H have opposite parity under some S (the flip maps ∂x/∂H to −∂x/∂H and preserves the law;
  this makes gradient independence exact in MLP backprop, everything downstream of the readout v
  being odd in v), and the limit of an Avg of an odd ket is exactly 0;
* the abcd size calculus (:mod:`compiler.abcd.calculus`): an odd vector has mean-zero entries,
  so its average is n^{-1/2} smaller than they are (CLT; 03 §3.3 "over a mean-zero one").

**Random scalars are not generators.** A scalar parameter without ``init`` is one N(0, 1) draw:
averaging over coordinates never averages over it, so the limit is a random variable *conditioned
on* its value (05 §5.4 "condition on θ̊_0"; ``limit-scalars --scalar NAME=VALUE``), and at width n
avg(s·relu(Wu)) = s·avg(relu(Wu)) → s·E relu(N(0,1)) ≠ 0 for the drawn s.  Flipping s preserves
only the law averaged over s, so it proves E_s[…] = 0, which is neither the conditioned limit nor
the size of one run.  The abcd calculus once flipped every random parameter group, scalars
included, and so called s·relu(Wu) mean-zero (f_0 smaller by n^{-1/2}) where the lowering, which
flips only vectors and matrices, did not: the lowering was right, and both now use
:func:`sign_flips` (tests/test_parity.py pins the program and both uses), so abcd also gains the
compositions (u + w is odd only when u and w flip together).  :func:`parities` still accepts a
random scalar in a generator, for quantities averaged over draws (seeds).

**Dirac deltas and peaks.** The a.e. derivative of step/sign is 0, but E[∂ψ/∂G] of a ψ
containing step(G…) has a delta part (E[∂ step(G)/∂G] = density of G at 0).  A division by a
quantity that can come near 0 is the same in practice: Adam's Q = m/(|g| + ε) has
∂Q/∂g = ε/(|g| + ε)² at its first step, a peak of mass 2 and width ε that no particle sample
resolves (and 0/0 = NaN where relu makes g exactly 0).  :func:`singular_deps` marks the hats
whose derivative path crosses either, so their coefficients come from Stein's lemma
(01 §1.4 Rem. 2.6.6), which needs no derivative.  The test is structural, on ψ itself — no
symbolic differentiation (:func:`nonsmooth_args`): an argument inside step/sign/Heaviside/
DiracDelta or a Piecewise condition, or any argument of a formula that has a negative or
fractional power of a base that depends on its arguments and is not bounded away from 0
(sympy cannot prove it positive, or it is below :data:`PEAK_FLOOR` where every argument is 0).
Smooth formulas (relu, erf, polynomials, divisions by constants or Avg scalars) pass untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Literal, assert_never

import sympy

from compiler.ir import Avg, MatMul, Nonlin, OuterNonlin, Program, formula_args
from compiler.symbols import step, sym

Sign = Literal[-1, 0, 1]
Generators = Mapping[str, frozenset[str]]
"""generator name → the initial objects it flips."""
Parities = dict[str, dict[str, Sign]]
"""object name → {generator: −1 (odd) or 0 (neither/unknown)}; a generator absent is +1 (even)."""
_NEGATED: dict[Sign, Sign] = {1: -1, -1: 1, 0: 0}


def sign_flips(program: Program) -> dict[str, frozenset[str]]:
    """The standard generators: each initial vector and matrix alone, each declared group of
    them at once, all vectors, all matrices, everything (no random scalar: see the module doc)."""
    vecs, mats = program.param_names("vector"), program.param_names("matrix")
    gens = {name: frozenset({name}) for name in (*vecs, *mats)}
    for p in program.params:
        if p.kind != "scalar" and len(p.names) > 1:
            gens[p.name] = frozenset(p.names)
    gens["all vectors"] = frozenset(vecs)
    gens["all matrices"] = frozenset(mats)
    gens["everything"] = frozenset((*vecs, *mats))
    return {g: s for g, s in gens.items() if s}


def flippable(program: Program) -> frozenset[str]:
    """Initial objects whose law is sign-symmetric: parameters drawn at random (matrices,
    vectors, scalars without ``init``); inputs and initialised scalars are given numbers."""
    return frozenset(name for p in program.params if p.init is None for name in p.names)


def parities(program: Program, generators: Generators) -> Parities:
    """The parity of every object of ``program`` under every generator (see the module doc)."""
    bad = sorted(set().union(*generators.values()) - flippable(program))
    if bad:
        raise ValueError(f"not a sign-symmetric initial object: {', '.join(bad)}")
    par: Parities = {name: {} for name in program.kinds}
    for name in flippable(program):
        par[name] = {g: -1 for g, members in generators.items() if name in members}
    memo: dict[tuple[sympy.Expr, frozenset[sympy.Symbol]], Sign] = {}
    for ins in program.body:
        match ins:
            case MatMul(out=y, matrix=w, arg=x):
                par[y] = {}
                for g, members in generators.items():
                    s = par[x].get(g, 1)
                    s = _NEGATED[s] if w in members else s
                    if s != 1:
                        par[y][g] = s
            case Avg(out=y, arg=x):
                par[y] = dict(par[x])
            case Nonlin() | OuterNonlin():
                par[ins.out] = _formula_parities(ins, generators, par, memo)
            case _:
                assert_never(ins)
    return par


def is_odd(parity: Mapping[str, Sign]) -> bool:
    """Whether an object is odd under some generator (its ket, and its entries, have mean 0)."""
    return any(s == -1 for s in parity.values())


def _formula_parities(
    ins: Nonlin | OuterNonlin,
    generators: Generators,
    par: Parities,
    memo: dict[tuple[sympy.Expr, frozenset[sympy.Symbol]], Sign],
) -> dict[str, Sign]:
    args = formula_args(ins)
    out: dict[str, Sign] = {}
    canonical: tuple[sympy.Expr, dict[sympy.Symbol, sympy.Symbol]] | None = None
    for g in generators:
        signs = {s: par[var].get(g, 1) for s, var, _ in args}
        if any(v == 0 for v in signs.values()):
            out[g] = 0
            continue
        odd = frozenset(s for s, v in signs.items() if v == -1)
        if not odd:
            continue
        if canonical is None:
            canonical = _canonical(ins.formula, [s for s, _, _ in args])
        formula, rename = canonical
        key = (formula, frozenset(rename[s] for s in odd))
        if key not in memo:
            memo[key] = _symmetry(*key)
        if memo[key] != 1:
            out[g] = memo[key]
    return out


def _canonical(formula: sympy.Expr, syms: list[sympy.Symbol]
               ) -> tuple[sympy.Expr, dict[sympy.Symbol, sympy.Symbol]]:
    """The formula over positional symbols (real, as the program's own: the symmetry of ψ does
    not depend on its arguments' names), so that the many instructions of an unrolled or
    multi-input program that share one ψ share one memo entry. Measured on the paper's Fig. 5.1
    limit (mlp4, NTP, Adam, 104 points, T = 10, 4096 particles): 3328 sympy symmetry checks
    before; with ketfuncs.same_before's prefix lookup the whole `nexort limit` process went from
    5.86 to 3.39 s wall (medians of 3)."""
    rename = {s: sym(f"§{i}") for i, s in enumerate(syms)}
    return formula.xreplace(rename), rename


def _symmetry(f: sympy.Expr, odd: frozenset[sympy.Symbol]) -> Sign:
    """+1 if f(−odd) = f, −1 if f(−odd) = −f, 0 if neither or sympy cannot tell."""
    g = f.xreplace({s: -s for s in odd})
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


DELTA_FUNCTIONS: tuple[type[sympy.Basic], ...] = (step, sympy.sign, sympy.Heaviside,
                                                 sympy.DiracDelta)
"""Functions whose derivative has a Dirac delta (relu, Abs, Max, Min have a.e. derivatives)."""

PEAK_FLOOR = 1e-3
"""A power base whose value at 0 is below this is a peak of width ~ε (Adam's |g| + ε)."""


@cache
def nonsmooth_args(formula: sympy.Expr, syms: frozenset[sympy.Symbol]) -> frozenset[sympy.Symbol]:
    """The symbols among ``syms`` in which ∂formula has a delta or a peak (module doc)."""
    out: set[sympy.Symbol] = set()
    for node in sympy.preorder_traversal(formula):
        if isinstance(node, DELTA_FUNCTIONS):
            out |= node.args[0].free_symbols & syms
        elif isinstance(node, sympy.Piecewise):
            out |= set().union(*(c.free_symbols for _, c in node.args)) & syms
        elif isinstance(node, sympy.Pow) and _peaked(node, syms):
            return frozenset(formula.free_symbols & syms)
    return frozenset(out)


def _peaked(node: sympy.Pow, syms: frozenset[sympy.Symbol]) -> bool:
    base, e = node.args
    if e.is_integer and e.is_nonnegative:
        return False
    live = base.free_symbols & syms
    if not live:
        return False
    if base.is_positive is not True:
        return True
    at_zero = base.xreplace({x: sympy.Integer(0) for x in live})
    try:
        return not float(at_zero) >= PEAK_FLOOR
    except TypeError:  # still symbolic (a scalar argument): cannot bound it
        return True


def singular_deps(
    ins: Nonlin | OuterNonlin,
    args: tuple[str, ...],
    dep: Mapping[str, frozenset[str]],
    singular: Mapping[str, frozenset[str]],
    kinds: Mapping[str, str],
) -> frozenset[str]:
    """Hats H for which ∂|ins.out⟩/∂H has a Dirac-delta part or a peak: those of an argument
    in which ψ is nonsmooth (:func:`nonsmooth_args`, over the vector arguments, own and copies:
    scalars are deterministic limits), plus those already singular in an argument."""
    out: set[str] = set()
    fargs = formula_args(ins)
    syms = {var: s for s, var, copy in fargs if copy is None}
    vectors = frozenset(s for s, var, _ in fargs if kinds[var] == "vector")
    bad = nonsmooth_args(ins.formula, vectors)
    for a in args:
        out |= singular[a]
        if dep[a] and syms[a] in bad:
            out |= dep[a]
    return frozenset(out)
