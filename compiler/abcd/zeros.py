"""Exact zeros by symmetry in the size calculus: which Q inputs vanish at step 0, and what follows
for the optimizer (spec 03 §3.3 size calculus, §3.4 coordinate check; 01 §1.4; 04 §4.1).

**The rule.** A gradient average avg(z) whose ket z is odd under a sign flip of the initial
objects (:mod:`compiler.kets.parity`), typically z = v ⊙ … behind the readout v, has limit exactly
0 at init: the flip preserves the law and maps the limit to its negative. At width n what remains
is the CLT fluctuation, Θ(n^{-1/2}) times the entries of z. The first update breaks the symmetry
(the readout moves along what it reads), so from step 1 on the average has its generic size.
Attention's score gradients da[s] = avg(datt ⊙ (val[s] − att)·softmax) are such averages, so
the Q input of Wq and Wk at step 0 is n^{-1/2} smaller than its scale; so is a layer-norm gain's.

**Verdicts.** 03 §3.2 item 2 asks that the input of every Q be Θ(1) at the parametrization's
scale: neither linearised nor saturated for a generic gradient. A symmetric zero is a property
of the architecture at step 0, not of the table: no choice of d makes the step-0 input Θ(1)
without blowing it up by n^{1/2} once the symmetry is broken. So such a Q input is judged at its
scale (``q₁``: its size with the gradient averages at their generic size, which the first update
reaches when it moves the readout by Θ(1)), and the verdicts do not change; the table (step 0,
step 1) and the notes say what happens at step 0. (In an operator regime the first update breaks
the symmetry only by n^{-r}, so such an input stays below its scale during training; the Q-input
rows show it, the verdicts do not judge it.)

**What follows for Q** (the notes), with q₀ < 0 the step-0 exponent of the Q input n^{D}·∂L/∂P
(D = d − a) and κ its RMS times n^{−q₀} (width independent):

* adaptive (Adam, RMSProp, … with ε > 0): the limit step is Q(0) = 0, the tensor does not move at
  step 0; at width n Adam normalises the noise into a Θ(1) step of random sign (ΔW·x = Θ(1))
  while κ·n^{q₀} ≫ ε, i.e. below the crossover width n* = (κ/ε)^{−1/q₀}. In PyTorch the raw
  gradient of the stored p is Θ(n^{q₀ − d}) against the recipe's eps = ε·n^{−d}: the same n*.
* scale invariant (SignSGD, Adam with ε = 0): a Θ(1) step of random sign at every width; Q is
  discontinuous at 0, so the limit's Q(0) = 0 does not describe that step.
* linear (SGD, momentum): the step is Θ(n^{q₀}) small, as in the limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import assert_never

import sympy

from compiler.abcd.conditions import Exp, decided, fmt, npow, relation
from compiler.abcd.sizes import Size
from compiler.ir import Avg, MatMul, Nonlin, OuterNonlin, Program, reads
from compiler.kets.parity import Parities
from compiler.train import Optimizer

MAX_NAMED = 4


@dataclass(frozen=True)
class Zero:
    """A group whose Q input has limit exactly 0 at step 0: the gradient averages responsible
    and the sign flips under which they are odd."""

    group: str
    q0: Exp
    averages: tuple[str, ...]
    flips: tuple[str, ...]


def odd_averages(program: Program, forward: frozenset[str], par: Parities) -> dict[str, set[str]]:
    """Every variable → the odd backward averages it depends on (those the CLT rule lowers)."""
    dep: dict[str, set[str]] = {}
    for ins in program.body:
        got: set[str] = set()
        for r in reads(ins):
            got |= dep.get(r, set())
        match ins:
            case Avg(arg=x):
                if ins.out not in forward and any(s == -1 for s in par[x].values()):
                    got.add(ins.out)
            case MatMul() | Nonlin() | OuterNonlin():
                pass
            case _:
                assert_never(ins)
        dep[ins.out] = got
    return dep


def flips(par: Parities, averages: tuple[str, ...], named: frozenset[str]) -> tuple[str, ...]:
    """The sign flips under which the averages' kets are odd; single tensors or groups first
    (the readout v says more than "all vectors")."""
    odd = sorted({g for a in averages for g, s in par[a].items() if s == -1})
    own = [g for g in odd if g in named]
    return tuple(own or odd)


def crossover(q0: Exp) -> str:
    """The exponent of κ/ε in the crossover width: n* = (κ/ε)^{−1/q₀}."""
    return fmt(sympy.simplify(-1 / q0))


def note(names: str, z: Zero, opt: Optimizer, d: Exp, e_out: Exp) -> str:
    """What the exact zero means for the optimizer (see the module)."""
    avgs = ", ".join(z.averages[:MAX_NAMED]) + (", …" if len(z.averages) > MAX_NAMED else "")
    why = (f"{names}: Q input {npow(z.q0)} at step 0 with limit exactly 0 (the gradient "
           f"averages {avgs} are odd under the sign flip of {', '.join(z.flips)}: mean zero at "
           f"init, the CLT fluctuation at width n; the first update breaks the symmetry and "
           f"faithfulness is judged at its scale)")
    match opt.qclass:
        case "adaptive":
            eps = f"{float(opt.eps):g}" if opt.eps is not None else "ε"
            return (f"{why}. With {opt.name} (ε = {eps}): the limit step is Q(0) = 0 (the tensor "
                    f"does not move at step 0), while at width n Q normalises the noise into a "
                    f"Θ(1) step of random sign as long as κ·{npow(z.q0)} ≫ ε, i.e. below the "
                    f"crossover width n* = (κ/ε)^{crossover(z.q0)} (q₀ = D − e_out + e(∂) = "
                    f"{fmt(z.q0)}, e_out = {fmt(e_out)}; κ = the RMS of n^D·∂L/∂P times "
                    f"n^{fmt(-z.q0)}). In PyTorch the raw gradient of p is "
                    f"{npow(sympy.simplify(z.q0 - d))} against eps = ε·{npow(-d)}: the same n*")
        case "scale_invariant":
            return (f"{why}. With {opt.name} (scale invariant): a Θ(1) step of random sign at "
                    "every width, while the limit step is Q(0) = 0 (Q is discontinuous at 0, "
                    "the limit does not describe this step; ε > 0 restores it beyond n*)")
        case "linear":
            return f"{why}. With {opt.name} (linear Q): the step-0 update is {npow(z.q0)}, as in " \
                   "the limit (0)"
        case _:
            assert_never(opt.qclass)


def notes(zeros: tuple[Zero, ...], opt: Optimizer, rows: Mapping[str, tuple[Exp, Exp]]) -> tuple[
        str, ...]:
    """One note per set of groups with the same story (Wq and Wk share one); ``rows``: each
    group's (d, e_out)."""
    keyed: dict[tuple[object, ...], list[Zero]] = {}
    for z in zeros:
        keyed.setdefault((z.q0, z.flips, rows[z.group]), []).append(z)
    out = []
    for same in keyed.values():
        d, e_out = rows[same[0].group]
        avgs = tuple(sorted({a for z in same for a in z.averages}))
        merged = Zero(same[0].group, same[0].q0, avgs, same[0].flips)
        out.append(note(", ".join(z.group for z in same), merged, opt, d, e_out))
    return tuple(out)


def is_lower(q0: Size, scale: Size) -> bool:
    """Whether a step-0 Q input is below its scale somewhere (its limit vanishes there)."""
    return q0 is not None and scale is not None and decided(relation(q0, "==", scale)) is not True
