"""The MLP classifier of spec 03 §3.2 (rules in :mod:`compiler.abcd.mlp`'s docstring).

Works on exponents that are numbers or linear forms in symbols: every verdict is a condition, True
or False for numbers and a set of values for a symbol (UP_s: stable and faithful iff
s ∈ [0, 1/2], feature learning iff s = 0). Each failing condition is stated with its value, which
way it fails and what goes wrong ("a_3+b_3+r = 1/2 < 1: W_0^{3}Δx^2 blows up: Δf grows like
n^{1/2}"; "a_3+c_3 = 2 ≠ 1: the readout update is o(1)").

**Zero initialisation (b = ∞, decided here).** A zero readout is ΔW_0 = n^{-(a+c')} after its
first update (Q's output is Θ(1) when faithful), so during training it has the size exponent
b' = min(b, c') for every optimizer class; r, the training conditions, nontriviality and the
contributions use b' (this changes nothing when b ≤ c', the faithful case of 03 §3.2). The hidden
gradients are exactly 0 at step 0 (Q(0) = 0: no linearisation, no saturation) and have the scale
of b' from step 1 on, so the faithful d_l is a_l + a_{L+1} + b' and "b_{L+1} ≤ c_{L+1}" (the
readout must not outgrow its initial scale) is void: μP with a zero readout is feature learning
under SGD, SignSGD and Adam. A zero input layer or hidden matrix makes h^l identically 0 at init:
a_1+b_1 = 0 or a_l+b_l = ½ fails — not stable at init (degenerate: no Θ(1) feature), which is what
the conditions say and what the calculus says (r is then undefined). c = ∞ is a frozen tensor
(θ_l = ∞, no update, no contribution).

**Blow-ups.** r and e(Δf) are reported as diverging once they blow up, with their exponent after
the first update from init (:func:`first_update`; :mod:`compiler.abcd.exponent_values`), which
the size calculus reproduces on MLPs.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from compiler.abcd.conditions import Exp, decided, npow, relation
from compiler.abcd.mlp import MLPStructure
from compiler.abcd.param import HALF, Exponents, Parametrization
from compiler.abcd.pwl import canonical
from compiler.abcd.verdict import (
    Analysis,
    Check,
    Contribution,
    Verdict,
    conjunction,
    standard_verdicts,
)
from compiler.train import Optimizer, QClass

SP_OPEN = ("03 §3.2 'open': the paper's Rem. 2.2.7 calls SP with a global learning rate n^-1 "
           "under SignSGD/Adam stable and feature learning; nexort follows the conditions (c = 1 "
           "unstable for L ≥ 2, c = 3/2 operator regime), which the measurement in 03 §3.2 "
           "supports (|Δf| slope +0.44 for c = 1, −0.06 for c = 3/2)")


@dataclass(frozen=True)
class Effective:
    """Per layer 1..L+1: the raw rows (a_{L+1} includes e_out), the effective c', the faithful d
    of the first nonzero gradient d*, θ_l and r_l (l ≤ L), r, and the readout's size b' from
    its first update on."""

    rows: tuple[Exponents, ...]
    c: tuple[Exp, ...]
    dstar: tuple[Exp, ...]
    theta: tuple[Exp, ...]
    r_l: tuple[Exp, ...]
    b_top: Exp

    @property
    def r(self) -> Exp:
        return self.r_l[-1]

    @property
    def top(self) -> Exponents:
        return self.rows[-1]

    @property
    def a_top(self) -> Exp:
        """a_{L+1} + b'_{L+1}: the readout's size exponent during training."""
        return self.top.a + self.b_top


def layer_rows(structure: MLPStructure, param: Parametrization) -> tuple[Exponents, ...]:
    """(a, b, c, d) of layers 1..L+1, the readout's a including e_out (Rem. 2.9.13)."""
    rows = [param[la.group] for la in structure.layers]
    top = rows[-1]
    rows[-1] = Exponents(top.a + param.e_out, top.b, top.c, top.d)
    return tuple(rows)


def effective(rows: tuple[Exponents, ...], q: QClass) -> Effective:
    """Fold the optimizer class into c (see :mod:`compiler.train.classes`), with the readout at its
    size b' = min(b, c') during training (a zero readout, b = ∞, has b' = c')."""
    top, hidden = rows[-1], rows[:-1]
    c_top = _fold(top.c, top.d, top.a, q)
    size = canonical(sympy.Min(top.b, c_top))
    c = (*(_fold(r.c, r.d, r.a + top.a + size, q) for r in hidden), c_top)
    c = tuple(canonical(x) for x in c)
    theta = _thetas(hidden, c[:-1])
    r_l = tuple(canonical(sympy.Min(*theta[: k + 1])) for k in range(len(theta)))
    first_b = size if top.b == sympy.oo else top.b  # the first nonzero gradient's scale
    dstar = (*(r.a + top.a + first_b for r in hidden), top.a)
    return Effective(rows, c, dstar, theta, r_l, size)


def _thetas(hidden: tuple[Exponents, ...], c: tuple[Exp, ...]) -> tuple[Exp, ...]:
    return tuple(canonical(r.a + ck - (0 if k == 0 else 1))
                 for k, (r, ck) in enumerate(zip(hidden, c, strict=True)))


def _fold(c: Exp, d: Exp, dstar: Exp, q: QClass) -> Exp:
    if q == "linear":
        return c - d + dstar
    if q == "scale_invariant":
        return c
    return c + sympy.Max(dstar - d, 0)


def first_update(structure: MLPStructure, e: Effective, q: QClass) -> dict[str, Exp]:
    """r and e(Δf) after the first update from init (the lower bounds of a blow-up), when the
    features are Θ(1) at init: the hidden gradients have their init scale (b, not b'; none at
    all for a zero readout) and every term of W_1 x_1 − W_0 x_0 counts, ΔW·Δx included:
    ρ^h_l = min(ρ^x_{l−1}, θ_l + min(0, ρ^x_{l−1})), ρ^x_l = ρ^h_l, or max(ρ^h_l, 0) for a
    saturating activation, Δf = max(1 − C' + max(0, −ρ^x_L), 1 − A − ρ^x_L)."""
    rows, top = e.rows, e.top
    init = [relation(rows[0].A, "==", 0), *(relation(r.A, "==", HALF) for r in rows[1:-1])]
    if decided(sympy.And(*init)) is not True:
        return {}
    hidden = rows[:-1]
    zero = top.b == sympy.oo
    c0 = tuple(sympy.oo if zero else _fold(r.c, r.d, r.a + top.a + top.b, q) for r in hidden)
    theta = _thetas(hidden, c0)
    rho_x, r = sympy.oo, sympy.oo
    for k, th in enumerate(theta):
        rho_h = th if k == 0 else sympy.Min(rho_x, th + sympy.Min(0, rho_x))
        rho_x = sympy.Max(rho_h, 0) if _saturates(structure.layers[k].activation) else rho_h
        r = sympy.Min(r, rho_h, rho_x)
    df = sympy.Max(1 - top.a - e.c[-1] + sympy.Max(0, -rho_x), 1 - top.A - rho_x)
    return {"r": canonical(r), "e(Δf)": canonical(df)}


def _saturates(phi: sympy.Expr | None) -> bool:
    """Whether φ(t) stays O(1) when t blows up (tanh, erf), by the calculus's size rules."""
    from compiler.abcd.sizes import FormulaSizes, Sized

    if phi is None:
        return False
    grows = FormulaSizes(lambda s: Sized(sympy.S.Zero, sympy.S.One))(phi).ed
    return grows is None or decided(relation(grows, "<=", 0)) is True


def _init_words(k: int, e: Effective, names: list[str], target: Exp) -> tuple[str, str]:
    row = e.rows[k]
    h = "h^1" if k == 0 else f"h^{k + 1} = W^{k + 1}x^{k}"
    size = npow(target - row.A)
    if row.b == sympy.oo:
        return (f"{h} blows up at init (entries {size})",
                f"{h} is identically 0 at init ({names[k]} is zero-initialised): the features "
                "are not Θ(1), the network is degenerate")
    return (f"{h} blows up at init (entries {size})",
            f"{h} vanishes at init (entries {size}): the features are not Θ(1)")


def _stable_init(e: Effective, names: list[str]) -> tuple[Check, ...]:
    last, checks = len(e.rows), []
    for k in range(last - 1):
        target = sympy.S.Zero if k == 0 else HALF
        low, high = _init_words(k, e, names, target)
        checks.append(Check(f"a_{k + 1}+b_{k + 1}", e.rows[k].A, "==", target, low=low,
                            high=high))
    checks.append(Check(f"a_{last}+b_{last}", e.top.A, ">=", HALF,
                        f"f_0 blows up: it grows like {npow(HALF - e.top.A)}"))
    return tuple(checks)


def _faithful_init(e: Effective, names: list[str], q: QClass) -> tuple[Check, ...]:
    if q != "adaptive":
        return ()
    checks = []
    for k, (row, dstar) in enumerate(zip(e.rows, e.dstar, strict=True)):
        gap = row.d - dstar
        checks.append(Check(f"d_{k + 1}", row.d, "==", dstar,
                            low=f"the gradient of {names[k]} enters Q at {npow(gap)}, too small: "
                                "Q is linearised (ε dominates)",
                            high=f"the gradient of {names[k]} enters Q at {npow(gap)}, too large: "
                                 "Q saturates to a sign"))
    return tuple(checks)


def _grows(x: Exp | None) -> str:
    if x is None or decided(relation(x, ">", 0)) is not True:
        return "grows with n"
    return f"grows at least like {npow(x)} after the first update"


def _training(e: Effective, q: QClass, first: dict[str, Exp]) -> tuple[tuple[Check, ...],
                                                                        tuple[Check, ...]]:
    last, top, r = len(e.rows), e.top, e.r
    b = f"b_{last}" if e.b_top == top.b else f"b'_{last}"
    features_blow = decided(relation(r, "<", 0)) is True
    stab = (
        Check("r", r, ">=", 0, f"the features blow up: Δx^l {_grows(-first['r'])}"
              if "r" in first else "the features blow up: Δx^l grows with n", grows=True),
        Check(f"a_{last}+c_{last}", top.a + e.c[-1], ">=", 1,
              f"the readout's update blows up: it moves f by {npow(1 - top.a - e.c[-1])}"),
        Check(f"a_{last}+{b}+r", e.a_top + r, ">=", 1,
              "Δf grows with n (the features blow up)" if features_blow else
              f"W^{last}_0 Δx^{last - 1} blows up: Δf grows like {npow(1 - e.a_top - r)}",
              grows=decided(relation(r, ">=", 0)) is not True),
    )
    faith = () if q != "adaptive" or top.b == sympy.oo else (
        Check(f"b_{last}", top.b, "<=", e.c[-1],
              "the readout outgrows its initialisation, changing the scale of every gradient "
              "that enters Q"),)
    return stab, faith


def _nontrivial(e: Effective) -> tuple[Check, ...]:
    last, top = len(e.rows), e.top
    b = f"b_{last}" if e.b_top == top.b else f"b'_{last}"
    ro, fe = 1 - top.a - e.c[-1], 1 - e.a_top - e.r
    features_blow = decided(relation(e.r, "<", 0)) is True
    return (Check(f"a_{last}+c_{last}", top.a + e.c[-1], "==", 1,
                  low=f"the readout update blows up (it moves f by {npow(ro)})",
                  high=f"the readout update is o(1) (it moves f by {npow(ro)})"),
            Check(f"a_{last}+{b}+r", e.a_top + e.r, "==", 1,
                  low="the feature updates make Δf blow up" + (
                      "" if features_blow else f" (like {npow(fe)})"),
                  high=f"the feature updates are o(1) (they move f by {npow(fe)})",
                  grows=decided(relation(e.r, ">=", 0)) is not True))


def classify_mlp(structure: MLPStructure, param: Parametrization, opt: Optimizer) -> Analysis:
    """Verdicts, r and contributions of an abcd-parametrized MLP (03 §3.2, 05 §5.5)."""
    e = effective(layer_rows(structure, param), opt.qclass)
    names = [la.group for la in structure.layers]
    first = first_update(structure, e, opt.qclass)
    si, fi = _stable_init(e, names), _faithful_init(e, names, opt.qclass)
    stab, faith = _training(e, opt.qclass, first)
    nt = _nontrivial(e)
    verdicts = standard_verdicts(si, fi, stab, faith, nt, e.r, f"{nt[0].label} = 1 or "
                                 f"{nt[1].label} = 1, given stable and faithful")
    return Analysis("mlp", structure.describe(), param, opt, verdicts, e.r,
                    _contributions(e, names, verdicts[4]), _notes(structure, param, opt),
                    quantities=_quantities(e), first=tuple(first.items()),
                    features_init=conjunction(*si[:-1]))


def _contributions(e: Effective, names: list[str], nontriv: Verdict) -> tuple[Contribution, ...]:
    top, out = e.top, []
    for k, th in enumerate(e.theta):
        x = 1 - e.a_top - th
        out.append(Contribution(names[k], f"update of layer {k + 1} ({names[k]})", x,
                                sympy.And(nontriv.condition, relation(x, "==", 0))))
    x = 1 - top.a - e.c[-1]
    out.append(Contribution(names[-1], f"update of the readout ({names[-1]})", x,
                            sympy.And(nontriv.condition, relation(x, "==", 0))))
    x = HALF - top.A
    out.append(Contribution("f_0", "initial output f_0 (a Gaussian process)", x,
                            sympy.And(nontriv.condition, relation(x, "==", 0))))
    return tuple(out)


def delta_f(e: Effective) -> Exp:
    """e(Δf) during training: the readout's update (1 − C') or W_t Δx^L (1 − A' − r), A' the
    readout's size exponent a + b' (ΔW·Δx is smaller when r ≥ 0)."""
    return canonical(sympy.Max(1 - e.top.a - e.c[-1], 1 - e.a_top - e.r))


def _quantities(e: Effective) -> tuple[tuple[str, Exp], ...]:
    out: list[tuple[str, Exp]] = [("e(Δf)", delta_f(e))]
    for k, th in enumerate(e.theta):
        out += [(f"θ_{k + 1}", th), (f"r_{k + 1}", e.r_l[k])]
    out += [(f"c'_{k + 1}", c) for k, c in enumerate(e.c) if c != e.rows[k].c]
    return tuple(out)


def _notes(structure: MLPStructure, param: Parametrization, opt: Optimizer) -> tuple[str, ...]:
    notes = []
    odd = [la.index for la in structure.layers[:-1] if not _relu_like(la.activation)]
    if odd:
        notes.append(f"Assumption 2.8.2 (φ, φ' ≥ 0, relu-like) fails for layer(s) "
                     f"{', '.join(map(str, odd))}: the verdicts assume it")
    if param.name.startswith("sp"):
        notes.append(SP_OPEN)
    return tuple(notes)


def _relu_like(phi: sympy.Expr | None) -> bool:
    from compiler.abcd.mlp import T

    if phi is None:
        return True
    dphi = sympy.diff(phi, T)
    pts = [sympy.Rational(k, 4) for k in range(-12, 13) if k]
    try:
        return all(float(phi.subs(T, p)) >= 0 and float(dphi.subs(T, p)) >= 0 for p in pts)
    except (TypeError, ValueError):
        return False
