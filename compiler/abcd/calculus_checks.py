"""Verdicts from the size calculus's exponents (spec 03 §3.3; rules: :mod:`compiler.abcd.calculus`).

* stable at init: every forward non-output vector Θ(1) (e0 = 0). A vector that is identically 0
  at init (fed only by zero-initialised parameters: an input layer or hidden matrix with b = ∞)
  is not Θ(1) either: the network is degenerate, as 03 §3.2 item 1 says (a_1+b_1 = 0 fails).
  Forward scalars, the arguments of non-homogeneous functions and f_0 must be O(1);
* faithful at init (adaptive Q): every group's first nonzero Q input has exponent 0 — at init,
  or after the first update for a gradient that is exactly 0 at init (behind a zero readout:
  Q(0) = 0 is neither linearised nor saturated, so only the scale it has from step 1 on counts)
  at its scale (the size once the symmetry is broken) for one whose limit is exactly 0 there by
  symmetry (its n^{-1/2} is the CLT fluctuation of a zero, not the table's scale:
  :mod:`compiler.abcd.zeros`, whose notes say what Q makes of it);
  faithful during training: no Q input grows beyond that;
* stable during training: no forward change and no Δf exponent positive; nontrivial: Δf = Θ(1);
* r = −max e(Δx) over the forward non-output vectors.

A blow-up is stated with the exponent after the first update from init ("grows at least like
n^{1/2}"), never with the exponent of the last update pass, which only counts passes
(:mod:`compiler.abcd.exponent_values`). Contributions (05 §5.5) are the Δf exponents of one group's
update with every variable at its size after the first update(s), so that a zero-initialised
readout counts with the size n^{-(a+c)} it has from then on.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from compiler.abcd.calculus import SizeCalculus, Sizes, Step
from compiler.abcd.classify import SP_OPEN
from compiler.abcd.conditions import Exp, decided, npow, relation
from compiler.abcd.sizes import FormulaSizes, Size, Sized, emax
from compiler.abcd.verdict import (
    Analysis,
    Check,
    Contribution,
    QInput,
    conjunction,
    standard_verdicts,
)
from compiler.abcd.zeros import Zero
from compiler.abcd.zeros import notes as zero_notes
from compiler.ir import Nonlin, OuterNonlin, split_symbol
from compiler.printer import format_instruction


@dataclass(frozen=True)
class Feature:
    """A forward quantity whose size stability constrains: a vector, a scalar, or the argument
    of a function inside a formula (a pre-activation fused into its activation); ``first`` is
    its change after the first update from init."""

    label: str
    where: str
    e0: Size
    ed: Size
    first: Size
    kind: str
    vector: bool


def grows(first: Size) -> str:
    """How a quantity that blows up grows: its first-update exponent when that is positive."""
    if first is None or decided(relation(first, ">", 0)) is not True:
        return "grows with n"
    return f"grows at least like {npow(first)} after the first update"


def _q_low_high(g: str, q: Exp, later: bool, vanishing: bool) -> tuple[str, str]:
    head = (f"the gradient of {g} has limit 0 at init (by symmetry); at its scale it enters Q at "
            if vanishing else
            f"the gradient of {g} is 0 at init and its first nonzero value enters Q at "
            if later else f"the gradient of {g} enters Q at ")
    return (f"{head}{npow(q)}, too small: Q is linearised (ε dominates)",
            f"{head}{npow(q)}, too large: Q saturates to a sign")


class Checks:
    """The checks of 03 §3.3 from the sizes the calculus found."""

    def __init__(self, calc: SizeCalculus, step: Step) -> None:
        self.calc, self.step = calc, step
        self.init, self.sizes = calc.init[0], step.sizes[0]
        self.q0 = calc.q_inputs(calc.init, after=False)
        self.adaptive = calc.opt.qclass == "adaptive"
        final = self._features(step.sizes[0])
        firsts = self._features(step.first[0])
        self.features = [Feature(f.label, f.where, f.e0, f.ed, g.ed, f.kind, f.vector)
                         for f, g in zip(final, firsts, strict=True)]

    def text(self, x: str) -> str:
        return format_instruction(self.calc.program.producer[x], self.calc.program.kinds)

    def _features(self, sizes: Sizes) -> list[Feature]:
        prog, copies, out = self.calc.program, self.calc.copies, []
        fs = FormulaSizes(lambda s: sizes[split_symbol(s.name, copies)[0]])
        for x in self.calc.forward:
            if x in prog.outputs:
                continue
            sz, ins, kind = sizes[x], prog.producer[x], prog.kinds[x]
            out.append(Feature(f"e({x})", f"'{self.text(x)}'", sz.e0, sz.ed, None, kind,
                               kind == "vector"))
            if isinstance(ins, Nonlin | OuterNonlin):
                fs.arguments.clear()
                fs(ins.formula)
                for arg, (fn, a) in fs.arguments.items():
                    vec = any(prog.kinds.get(split_symbol(v.name, copies)[0]) == "vector"
                              for v in arg.free_symbols)
                    out.append(Feature(f"e(arg of {fn} in {x})", f"the argument {arg} of {fn} "
                                       f"in '{self.text(x)}'", a.e0, a.ed, None, "argument", vec))
        return out

    def features_init(self) -> tuple[Check, ...]:
        """Every forward vector Θ(1) at init (identically 0 is not), every pre-activation inside
        a formula O(1)."""
        out = []
        for f in self.features:
            if f.kind == "vector" and f.e0 is None:
                out.append(Check(f.label, -sympy.oo, "==", 0,
                                 f"{f.where} is identically 0 at init (only zero-initialised "
                                 "parameters feed it): not Θ(1), the network is degenerate"))
            elif f.kind == "vector":
                out.append(Check(f.label, f.e0, "==", 0,
                                 low=f"{f.where} vanishes at init (entries {npow(f.e0)}): "
                                     "not Θ(1)",
                                 high=f"{f.where} blows up at init (entries {npow(f.e0)})"))
            elif f.vector and f.e0 is not None:
                out.append(self._bounded(f))
        return tuple(out)

    @staticmethod
    def _bounded(f: Feature) -> Check:
        return Check(f.label, f.e0, "<=", 0, f"{f.where} blows up at init: it grows like "
                                            f"{npow(f.e0)}")

    def stable_init(self, f0: Size) -> tuple[Check, ...]:
        out = list(self.features_init())
        # scalars may be o(1) (a mean-zero average); arguments of scalar formulas must be O(1)
        out += [self._bounded(f) for f in self.features
                if f.kind != "vector" and not f.vector and f.e0 is not None]
        if f0 is not None:
            out.append(Check("e(f_0)", f0, "<=", 0, f"f_0 blows up: it grows like {npow(f0)}"))
        return tuple(out)

    def faithful_init(self) -> tuple[Check, ...]:
        if not self.adaptive:
            return ()
        out = []
        for g, q in self.step.q_first.items():
            if q is None:
                continue
            vanishing = g in self.step.vanishing
            later = self.q0[g] is None or vanishing
            low, high = _q_low_high(g, q, later, vanishing)
            out.append(Check(f"q₁({g})" if later else f"q({g})", q, "==", 0, low=low, high=high))
        return tuple(out)

    def training(self, df: Exp, df_first: Exp) -> tuple[tuple[Check, ...], tuple[Check, ...]]:
        stab = [Check(f"e(Δ{f.label[2:]}", f.ed, "<=", 0,
                      f"{f.where} blows up: its change {grows(f.first)}", grows=True)
                for f in self.features if f.ed is not None]
        stab.append(Check("e(Δf)", df, "<=", 0, f"Δf blows up: it {grows(df_first)}",
                          grows=True))
        faith = [] if not self.adaptive else [
            Check(f"q({g}) in training", q, "<=", self.step.q_first[g],
                  f"the gradient of {g} grows during training (its Q input reaches {npow(q)})")
            for g, q in self.step.q_after.items()
            if q is not None and self.step.q_first[g] is not None]
        return tuple(stab), tuple(faith)

    def r(self, first: bool = False) -> Exp:
        """−max e(Δx) over the forward vectors (after the first update, or the last pass)."""
        top = emax(*((f.first if first else f.ed) for f in self.features if f.vector))
        return sympy.oo if top is None else -top


def analysis(calc: SizeCalculus, step: Step) -> Analysis:
    """The calculus's :class:`Analysis` of one architecture, parametrization and optimizer."""
    checks = Checks(calc, step)
    f0, df, df_first = calc.f0(), calc.delta_f(step.sizes), calc.delta_f(step.first)
    stab, faith = checks.training(df, df_first)
    blows = decided(relation(df, ">", 0)) is True
    nt = (Check("e(Δf)", df, "==", 0, low=f"f moves by {npow(df)}: the updates are o(1)",
                high=f"Δf blows up: it {grows(df_first)}", grows=blows),)
    r = checks.r()
    verdicts = standard_verdicts(checks.stable_init(f0), checks.faithful_init(), stab, faith,
                                 nt, r, "Δf = Θ(1), given stable and faithful")
    unstable = verdicts[2].holds is False  # then the first update is the meaningful one
    shown = step.first[0] if unstable else checks.sizes
    every = [ins.out for ins in calc.bps[0].program.body]  # forward, then the gradients
    sizes = tuple((x, checks.init[x].e0, shown[x].ed) for x in every)
    quantities = [("e(f_0)", f0), ("e(Δf)", df)]
    for g, q in checks.q0.items():  # q₁: the first Q input whose limit is not 0
        quantities += [(f"q({g})", q)] if q is not None else []
        quantities += [(f"q₁({g})", step.q_first[g])] if q is None or g in step.vanishing else []
    first = (("r", checks.r(first=True)), ("e(Δf)", df_first))
    zeros = calc.zeros(step)
    notes = ((SP_OPEN,) if calc.param.name.startswith("sp") else ()) + zero_notes(
        zeros, calc.opt, {g: (calc.param[g].d, calc.param.e_out) for g in calc.param})
    return Analysis("calculus", f"arch {calc.program.name}", calc.param, calc.opt, verdicts, r,
                    _contributions(calc, step, verdicts[4].condition, f0), notes,
                    tuple(quantities), sizes, first, conjunction(*checks.features_init()),
                    _q_rows(calc, step, zeros))


def _q_rows(calc: SizeCalculus, step: Step, zeros: tuple[Zero, ...]) -> tuple[QInput, ...]:
    """Each group's Q input at step 0 and after the first update (the coordinate check's rows)."""
    q1 = calc.q_inputs(step.first, after=True)
    by = {z.group: z.flips for z in zeros}
    return tuple(QInput(g, q, q1[g], by.get(g, ())) for g, q in step.q0.items())


def _contributions(calc: SizeCalculus, step: Step, nontrivial: sympy.Basic,
                   f0: Size) -> tuple[Contribution, ...]:
    out = []
    trained = tuple({x: Sized(s.e1) for x, s in sz.items()} for sz in step.sizes)
    for g, q in step.q_in.items():
        x = -sympy.oo
        if q is not None:
            sizes = tuple(calc.changes(k, step.q_in, only=g, forward_only=True, base=trained[k])
                          for k in range(len(calc.bps)))
            x = calc.delta_f(sizes)
        out.append(Contribution(g, f"update of {g}", x,
                                sympy.And(nontrivial, relation(x, "==", 0))))
    x0 = -sympy.oo if f0 is None else f0
    out.append(Contribution("f_0", "initial output f_0", x0,
                            sympy.And(nontrivial, relation(x0, "==", 0))))
    return tuple(out)
