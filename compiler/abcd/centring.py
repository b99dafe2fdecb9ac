"""Exact centring in the size calculus: a mean that a linear update cannot move (spec 03 §3.3,
size calculus, "derived here"; measured by the coordinate check, 03 §3.4).

**The rule.** Let y = W x be a MatMul whose output the network reads only shift-invariantly:
F(y + c·1) = F(y) for every c (layer norm: y enters through y − avg(y) and the variance of that).
Then its adjoint dy = n·∂F/∂y has coordinates summing to exactly 0 at every width, step and
point. If every use of W is such a y (and W is never used transposed in the forward pass):

* the update of a linear Q (SGD, momentum) is ΔW = Σ (centred dy)·xᵀ, so 1ᵀΔW = 0 and
  avg(ΔW x') = 0 exactly;
* avg(W₀ Δx') = (1/n)(W₀ᵀ1)·Δx': W₀ᵀ1 is the hat part of a MatMul whose Gaussian part has
  covariance E[Z^{dy}] = 0 with every W₀ᵀ dy the backward pass forms, so Δx' (a function of those)
  is uncorrelated with it in the limit and the average is a CLT sum, n^{-1/2} smaller.

So avg(Δy) is n^{-1/2} below e(Δy) under a linear Q. (Measured on ``layernorm_mlp`` under μP with
SGD, 16 seeds, n = 128…4096: Δmu slope −0.53 ± 0.04 at t = 1, 2, 3; an intercept fit of
size² = A² + B²/n gives A² consistent with 0.) A nonlinear Q (Adam, SignSGD) applied entrywise
to a centred but skewed gradient has a nonzero mean, so there the generic rule stands.

:func:`centred_outputs` finds those y by propagating a shift through the forward program: a
formula whose shifted arguments x ↦ x + c leave it unchanged (sympy's canonical form, no
simplification: a conservative check) absorbs the shift.
"""

from __future__ import annotations

from typing import Literal

import sympy

from compiler.ir import Avg, MatMul, Nonlin, OuterNonlin, Program, formula_args

Shift = Literal["shift", "changed"]
_C = sympy.Symbol("_centring_shift")
MAX_OPS = 200
"""Formulas larger than this are not expanded (assumed not invariant): bounded cost."""


def _absorbs(ins: Nonlin | OuterNonlin, shifted: set[str]) -> bool:
    """Whether the formula is unchanged when every symbol of a shifted variable gets + c."""
    subs = {sym: sym + _C for sym, var, _ in formula_args(ins) if var in shifted}
    # sympy's automatic canonical form cancels c in (x + c) − (m + c); no simplify (it takes
    # minutes on an RNN's formulas): a formula not seen invariant keeps the generic rule
    diff = ins.formula.subs(subs) - ins.formula
    return diff == 0 or (sympy.count_ops(diff) <= MAX_OPS and sympy.expand(diff) == 0)


def shift_invariant(program: Program, y: str) -> bool:
    """F(y + c·1) = F(y): the shift of y reaches no output (module docstring)."""
    status: dict[str, Shift] = {y: "shift"}
    for ins in program.body:
        match ins:
            case MatMul(arg=a) | Avg(arg=a):
                if a in status:
                    status[ins.out] = "changed" if isinstance(ins, MatMul) else status[a]
            case Nonlin() | OuterNonlin():
                args = {var for _, var, _ in formula_args(ins)}
                hit = {a: status[a] for a in args if a in status}
                if "changed" in hit.values() or (hit and not _absorbs(ins, set(hit))):
                    status[ins.out] = "changed"
    return not any(o in status for o in program.outputs)


def centred_outputs(program: Program) -> frozenset[str]:
    """The MatMul outputs y = W x whose average a linear update moves only by CLT noise: every
    use of W is untransposed and read shift-invariantly."""
    uses: dict[str, list[MatMul]] = {}
    for ins in program.body:
        if isinstance(ins, MatMul):
            uses.setdefault(ins.matrix, []).append(ins)
    out: set[str] = set()
    for mms in uses.values():
        if all(not m.transpose for m in mms) and all(shift_invariant(program, m.out)
                                                       for m in mms):
            out.update(m.out for m in mms)
    return frozenset(out)
