"""The size calculus: abcd verdicts for any architecture (spec 03 §3.3, derived here).

An abstract interpretation over the backpropagation program (02 §2.2) that gives every vector and
scalar an exponent e0 (entries Θ(n^{e0}) at init) and ed (its change after the first update), as
sympy expressions in the abcd exponents:

* initial vector parameter −(a+b); input scalars 0; a scalar parameter −(a+b) (0 init: zero);
* MatMul W x: −(a+b) + ½ + e(x) at init (CLT); its change is W₀Δx (same size as the hat part, also
  when Δx is correlated with W₀ through backprop) plus ΔW x: −(a+c) + 1 + q_out + e(x) (a sum of n
  correlated terms; q_out is the exponent of Q's output, 0 when faithful);
* Avg of a mean-zero (odd) ket at init: e − ½ (CLT), in the forward and the backward pass: its
  limit is exactly 0 by a sign-flip symmetry (01 §1.4), what remains at width n is the CLT
  fluctuation; otherwise, and for every change, e (changes are correlated with what they are
  averaged against), except the mean of a MatMul output read only shift-invariantly (layer
  norm's avg(h)) under a linear Q: e − ½, its adjoint being exactly centred
  (:mod:`compiler.abcd.centring`); Nonlin/OuterNonlin: the formula rules of
  :mod:`compiler.abcd.sizes`;
* the Q input of a parameter (spec 04 §4.3 factors): D − e_out + e(dV) for a vector,
  D − e_out + max_u e(dy_u) + e(x_u) over the uses y_u = W x_u of a matrix, D + 1 − e_out + e(dθ)
  for a scalar (dθ = ∂F/∂θ is not scaled by n);
* exact zeros by symmetry (:mod:`compiler.abcd.zeros`): a gradient average that is odd at init
  (attention's score gradients avg(v ⊙ …), a layer-norm gain's dθ) is mean zero only through the
  readout's sign symmetry, which the first update breaks. The Q input of a group whose leading
  part goes through such averages is n^{-1/2} smaller at step 0 than its scale (``generic``: the
  same sizes with backward averages kept at e): its limit at step 0 is exactly 0 (Q(0) = 0 in
  the limit), its finite-width size the CLT one, and faithfulness is judged at that scale (03
  §3.2 item 2 is about the parametrization's scale, which the symmetry does not change; see the
  module);
* f_0 = n^{-e_out} Σ_α o_α: −e_out + ½ + e0(o) for a mean-zero o, else −e_out + 1 + e0(o);
  Δf: −e_out + 1 + ed(o).

The backprop program stands for the total program (02 §2.3): every input's copy has the same
exponents (inputs are Θ(1) constants) and the ΔW rule assumes the generic nonzero correlation
between inputs. Q's output exponent depends on the optimizer class (:mod:`compiler.train.classes`):
q for a linear Q, 0 for a scale-invariant one, min(q, 0) for an adaptive one. Because gradients can
grow during training (a readout that outgrows its initialisation, or a zero-initialised one whose
gradients behind it are exactly 0 at step 0), the update pass is repeated with the Q inputs
measured after it (Max of before and after) until they settle (≤ 3 passes; for a scale-invariant
Q only whether a gradient is exactly 0 matters). On a stable table the passes settle; on an
unstable one each pass feeds the last one's blow-up back, so only the first pass (one update
from init) is reported there (:mod:`compiler.abcd.exponent_values`).

Verdicts: :mod:`compiler.abcd.calculus_checks`. On MLPs they reproduce 03 §3.2 exactly
(tests/test_abcd_calculus.py compares the condition sets for L = 1…4 and random tables, zero
initialisation included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

import sympy

from compiler.abcd.centring import centred_outputs
from compiler.abcd.conditions import Exp
from compiler.abcd.param import HALF, Exponents, Parametrization
from compiler.abcd.sizes import (
    FormulaSizes,
    Size,
    Sized,
    eadd,
    emax,
    emin,
)
from compiler.abcd.verdict import Analysis
from compiler.abcd.zeros import Zero, flips, is_lower, odd_averages
from compiler.ir import Avg, Instruction, MatMul, Nonlin, OuterNonlin, Program, split_symbol
from compiler.kets.parity import is_odd, parities, sign_flips
from compiler.passes.backprop import Backprop, BackpropOptions
from compiler.passes.pipeline import run_pass
from compiler.train import Optimizer

MAX_PASSES = 3
Sizes = dict[str, Sized]


@dataclass(frozen=True)
class Step:
    """The update passes: the Q-input exponents the last one used, the sizes it produced (per
    backprop program), the Q-input exponents measured after it, the sizes of the first pass
    (one update from init) and each group's first nonzero Q input (at init, or after the
    first update for a gradient that is exactly 0 at init, behind a zero-initialised readout;
    at its scale for one whose limit is exactly 0 there by symmetry)."""

    q_in: dict[str, Size]
    sizes: tuple[Sizes, ...]
    q_after: dict[str, Size]
    first: tuple[Sizes, ...]
    q_first: dict[str, Size]
    q0: dict[str, Size]
    """Each group's Q input at step 0 (its finite-width size; None: exactly 0)."""
    vanishing: frozenset[str]
    """Groups whose Q input has limit exactly 0 at step 0 by symmetry (see the module)."""


class SizeCalculus:
    """The calculus for one architecture, parametrization and optimizer."""

    def __init__(self, program: Program, param: Parametrization, opt: Optimizer) -> None:
        self.program, self.param, self.opt = program, param, opt
        self.group = {name: p.name for p in program.params for name in p.names}
        self.decl = {name: p for p in program.params for name in p.names}
        self.bps: tuple[Backprop, ...] = tuple(  # verified, one per output (02 §2.2)
            run_pass(program, BackpropOptions(o, input_gradients=False)) for o in program.outputs
        )
        self.parity = {id(bp): parities(bp.program, sign_flips(bp.program)) for bp in self.bps}
        self.forward = tuple(ins.out for ins in program.body)
        self.copies = tuple({c for ins in program.body if isinstance(ins, OuterNonlin)
                             for c in ins.copies})
        self.centred = centred_outputs(program)
        """MatMul outputs whose mean a linear update moves by CLT noise only (centring)."""
        self.init = tuple(self._init_sizes(bp, symmetric=True) for bp in self.bps)
        self.generic = tuple(self._init_sizes(bp, symmetric=False) for bp in self.bps)
        """The step-0 sizes with every gradient average at the size it has once the first
        update broke the readout's symmetry: the scale faithfulness is judged at."""

    def exps(self, entry: str) -> Exponents:
        return self.param[self.group[entry]]

    # -- initialisation -----------------------------------------------------------------------
    def _leaf(self, name: str) -> Sized:
        if name not in self.decl:
            return Sized(sympy.S.Zero)  # an input coordinate
        e, init = self.exps(name), self.decl[name].init
        # a deterministic init value c stands for c·n^{-(a+b)}, so that the symmetry holds
        zero = sympy.oo == e.A or (init is not None and init == 0)
        return Sized(None if zero else -e.A)

    def _init_sizes(self, bp: Backprop, symmetric: bool) -> Sizes:
        prog = bp.program
        par = self.parity[id(bp)]
        sizes: Sizes = {n: self._leaf(n) for n in (*prog.input_names, *prog.param_names())}
        fs = FormulaSizes(lambda s: sizes[split_symbol(s.name, self.copies)[0]])
        forward = set(self.forward)
        for ins in prog.body:
            match ins:
                case MatMul(matrix=w, arg=x):
                    sizes[ins.out] = Sized(eadd(HALF - self.exps(w).A, sizes[x].e0))
                case Avg(arg=x):
                    e0 = sizes[x].e0
                    if e0 is not None and (symmetric or ins.out in forward) and is_odd(par[x]):
                        e0 = e0 - HALF
                    sizes[ins.out] = Sized(e0)
                case Nonlin() | OuterNonlin():
                    sizes[ins.out] = Sized(fs(ins.formula).e0)
                case _:
                    assert_never(ins)
        return sizes

    # -- Q inputs -----------------------------------------------------------------------------
    def q_inputs(self, sizes: tuple[Sizes, ...], after: bool) -> dict[str, Size]:
        """Exponent of the input n^{D}·∂L/∂P of every parameter group's Q (None: no gradient)."""
        pick = (lambda s: s.e1) if after else (lambda s: s.e0)
        raw: dict[str, list[Size]] = {}
        for bp, sz in zip(self.bps, sizes, strict=True):
            for p in self.program.params:
                for name in p.names:
                    raw.setdefault(p.name, []).append(self._grad_size(bp, sz, name, p.kind, pick))
        out: dict[str, Size] = {}
        for g, vals in raw.items():
            e = self.param[g]
            best = emax(*vals)
            out[g] = eadd(best, e.D - self.param.e_out)
        return out

    def _grad_size(self, bp: Backprop, sizes: Sizes, name: str, kind: str,
                   pick: Callable[[Sized], Size]) -> Size:
        if kind == "matrix":
            uses = bp.grads.matrix_uses(name)
            return emax(*(eadd(pick(sizes[u.outer[0]]), pick(sizes[u.outer[1]])) for u in uses))
        grad = bp.grads.get(name)
        if grad is None:
            return None
        return eadd(pick(sizes[grad]), sympy.S.One if kind == "scalar" else sympy.S.Zero)

    def q_out(self, q: Size) -> Size:
        """The exponent of Q's output for an input of exponent q (see optim)."""
        if q is None:
            return None
        if self.opt.qclass == "linear":
            return q
        if self.opt.qclass == "scale_invariant":
            return sympy.S.Zero
        return emin(q, sympy.S.Zero)

    # -- changes ------------------------------------------------------------------------------
    def changes(self, k: int, q_in: dict[str, Size], only: str | None = None,
                forward_only: bool = False, base: Sizes | None = None) -> Sizes:
        """ed of every variable of backprop program k after one update with Q inputs ``q_in``
        (only the group ``only`` updated, if given), from the sizes ``base`` (default: init)."""
        prog, init = self.bps[k].program, base or self.init[k]
        qo = {g: self.q_out(q) if only in (None, g) else None for g, q in q_in.items()}
        sizes: Sizes = {n: Sized(init[n].e0) for n in prog.input_names}
        for name in prog.param_names():
            q = qo[self.group[name]] if self.decl[name].kind != "matrix" else None
            sizes[name] = Sized(init[name].e0, eadd(-self.exps(name).C, q))
        fs = FormulaSizes(lambda s: sizes[split_symbol(s.name, self.copies)[0]])
        body = prog.body[: len(self.forward)] if forward_only else prog.body
        for ins in body:
            sizes[ins.out] = Sized(init[ins.out].e0, self._change(ins, sizes, fs, qo))
        return sizes

    def _change(self, ins: Instruction, sizes: Sizes, fs: FormulaSizes,
                qo: dict[str, Size]) -> Size:
        match ins:
            case MatMul(matrix=w, arg=x):
                e = self.exps(w)
                hat = eadd(HALF - e.A, sizes[x].ed)
                upd = eadd(1 - e.C, qo[self.group[w]], sizes[x].e1)
                return emax(hat, upd)
            case Avg(arg=x):
                if x in self.centred and self.opt.qclass == "linear":
                    return eadd(sizes[x].ed, -HALF)  # 1ᵀΔW = 0 and W₀ᵀ1 ⟂ Δx (centring)
                return sizes[x].ed
            case Nonlin() | OuterNonlin():
                return fs(ins.formula).ed
            case _:
                assert_never(ins)

    def run(self) -> Step:
        """Update passes until the Q inputs settle."""
        q_in = self.q_inputs(self.init, after=False)
        q0, scale = dict(q_in), self.scales(q_in)
        q_first = q_in | scale  # a symmetric zero is judged at its scale (see the module)
        pending = {g for g, q in q_in.items() if q is None}
        first: tuple[Sizes, ...] = ()
        for _ in range(MAX_PASSES):
            sizes = tuple(self.changes(k, q_in) for k in range(len(self.bps)))
            first = first or sizes
            after = self.q_inputs(sizes, after=True)
            for g in [g for g in pending if after[g] is not None]:
                q_first[g] = after[g]  # the first nonzero Q input
                pending.discard(g)
            if self._settled(q_in, after):
                break
            q_in = after
        return Step(q_in, sizes, after, first, q_first, q0, frozenset(scale))

    def scales(self, q0: dict[str, Size]) -> dict[str, Size]:
        """The scale of every group whose step-0 Q input is below it: only the symmetric CLT
        drop of gradient averages separates ``init`` from ``generic``, so its limit is 0."""
        scale = self.q_inputs(self.generic, after=False)
        return {g: scale[g] for g, q in q0.items() if is_lower(q, scale[g])}

    def zeros(self, step: Step) -> tuple[Zero, ...]:
        """Each vanishing group with the odd gradient averages its gradient reads."""
        out = []
        named = frozenset(self.decl) | frozenset(self.group.values())
        for g in (g for g in self.group.values() if g in step.vanishing):
            avgs: set[str] = set()
            found: list[str] = []
            for bp in self.bps:
                par = self.parity[id(bp)]
                dep = odd_averages(bp.program, frozenset(self.forward), par)
                mine = set().union(*(dep[x] for x in self._grad_vectors(bp, g)))
                found += flips(par, tuple(sorted(mine)), named)
                avgs |= mine
            q0 = step.q0[g]
            assert q0 is not None  # vanishing groups have a step-0 Q input
            out.append(Zero(g, q0, tuple(sorted(avgs)), tuple(dict.fromkeys(found))))
        return tuple(dict.fromkeys(out))

    def _grad_vectors(self, bp: Backprop, group: str) -> list[str]:
        names = [n for n, g in self.group.items() if g == group]
        out = [x for n in names for u in bp.grads.matrix_uses(n) for x in u.outer]
        return out + [gr for n in names if (gr := bp.grads.get(n)) is not None]

    def _settled(self, q_in: dict[str, Size], after: dict[str, Size]) -> bool:
        # a scale-invariant Q only cares whether a gradient is exactly zero (Q(0) = 0)
        if self.opt.qclass == "scale_invariant":
            return all((q_in[g] is None) == (after[g] is None) for g in after)
        return after == q_in

    # -- the output -----------------------------------------------------------------------------
    def f0(self) -> Size:
        out = []
        for bp, sz in zip(self.bps, self.init, strict=True):
            o = bp.grads.output
            zero_mean = is_odd(self.parity[id(bp)][o])
            out.append(eadd(sz[o].e0, HALF if zero_mean else sympy.S.One, -self.param.e_out))
        return emax(*out)

    def delta_f(self, sizes: tuple[Sizes, ...]) -> Exp:
        got = emax(*(eadd(sz[bp.grads.output].ed, 1 - self.param.e_out)
                     for bp, sz in zip(self.bps, sizes, strict=True)))
        return -sympy.oo if got is None else got  # f does not move at all


def analyse_sizes(program: Program, param: Parametrization, opt: Optimizer) -> Analysis:
    """The size calculus's verdicts for any architecture (03 §3.3)."""
    from compiler.abcd.calculus_checks import analysis

    calc = SizeCalculus(program, param, opt)
    return analysis(calc, calc.run())
