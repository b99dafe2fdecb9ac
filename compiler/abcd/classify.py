"""The MLP classifier of spec 03 §3.2 (rules in :mod:`compiler.abcd.mlp`'s docstring).

Works on exponents that are numbers or linear forms in symbols: every verdict is a condition, True
or False for numbers and a set of values for a symbol (UP_s: stable and faithful iff
s ∈ [0, 1/2], feature learning iff s = 0). Each failing condition is stated with its value and
what goes wrong ("a_3+b_3+r = 1/2 < 1: W_0^{3}Δx^2 makes Δf grow like n^{1/2}").
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from compiler.abcd.conditions import Exp, fmt, relation
from compiler.abcd.mlp import MLPStructure
from compiler.abcd.optim import Optimizer, QClass
from compiler.abcd.param import HALF, Exponents, Parametrization
from compiler.abcd.pwl import canonical
from compiler.abcd.verdict import Analysis, Check, Contribution, Verdict, standard_verdicts

SP_OPEN = ("03 §3.2 'open': the paper's Rem. 2.2.7 calls SP with a global learning rate n^-1 "
           "under SignSGD/Adam stable and feature learning; nexort follows the conditions (c = 1 "
           "unstable for L ≥ 2, c = 3/2 operator regime), which the measurement in 03 §3.2 "
           "supports (|Δf| slope +0.44 for c = 1, −0.06 for c = 3/2)")


@dataclass(frozen=True)
class Effective:
    """Per layer 1..L+1: the raw rows (a_{L+1} includes e_out), the effective c', the faithful d
    at init d*, θ_l and r_l (l ≤ L), and r."""

    rows: tuple[Exponents, ...]
    c: tuple[Exp, ...]
    dstar: tuple[Exp, ...]
    theta: tuple[Exp, ...]
    r_l: tuple[Exp, ...]

    @property
    def r(self) -> Exp:
        return self.r_l[-1]

    @property
    def top(self) -> Exponents:
        return self.rows[-1]


def layer_rows(structure: MLPStructure, param: Parametrization) -> tuple[Exponents, ...]:
    """(a, b, c, d) of layers 1..L+1, the readout's a including e_out (Rem. 2.9.13)."""
    rows = [param[la.group] for la in structure.layers]
    top = rows[-1]
    rows[-1] = Exponents(top.a + param.e_out, top.b, top.c, top.d)
    return tuple(rows)


def effective(rows: tuple[Exponents, ...], q: QClass) -> Effective:
    """Fold the optimizer class into c (see :mod:`compiler.abcd.optim`)."""
    top, hidden = rows[-1], rows[:-1]
    c_top = _fold(top.c, top.d, top.a, q)
    size = top.b if q == "scale_invariant" else sympy.Min(top.b, c_top)
    c = (*(_fold(r.c, r.d, r.a + top.a + size, q) for r in hidden), c_top)
    c = tuple(canonical(x) for x in c)
    theta = tuple(canonical(r.a + ck - (0 if k == 0 else 1))
                  for k, (r, ck) in enumerate(zip(hidden, c[:-1], strict=True)))
    r_l = tuple(canonical(sympy.Min(*theta[: k + 1])) for k in range(len(theta)))
    dstar = (*(r.a + top.a + top.b for r in hidden), top.a)
    return Effective(rows, c, dstar, theta, r_l)


def _fold(c: Exp, d: Exp, dstar: Exp, q: QClass) -> Exp:
    if q == "linear":
        return c - d + dstar
    if q == "scale_invariant":
        return c
    return c + sympy.Max(dstar - d, 0)


def _stable_init(e: Effective) -> tuple[Check, ...]:
    rows, last = e.rows, len(e.rows)
    checks = [Check("a_1+b_1", rows[0].A, "==", 0,
                    f"h^1 has entries n^{fmt(-rows[0].A)}, not Θ(1)")]
    for k in range(1, last - 1):
        checks.append(Check(f"a_{k + 1}+b_{k + 1}", rows[k].A, "==", HALF,
                            f"h^{k + 1} = W^{k + 1}x^{k} has entries n^{fmt(HALF - rows[k].A)}"))
    checks.append(Check(f"a_{last}+b_{last}", e.top.A, ">=", HALF,
                        f"f_0 grows like n^{fmt(HALF - e.top.A)}"))
    return tuple(checks)


def _faithful_init(e: Effective, names: list[str], q: QClass) -> tuple[Check, ...]:
    if q != "adaptive":
        return ()
    checks = []
    for k, (row, dstar) in enumerate(zip(e.rows, e.dstar, strict=True)):
        gap = row.d - dstar
        how = ("too small: Q is linearised (ε dominates)" if gap.is_negative else
               "too large: Q saturates to a sign" if gap.is_positive else "not Θ(1)")
        checks.append(Check(f"d_{k + 1}", row.d, "==", dstar,
                            f"the gradient of {names[k]} enters Q at n^{fmt(gap)}, {how}"))
    return tuple(checks)


def _training(e: Effective, q: QClass) -> tuple[tuple[Check, ...], tuple[Check, ...]]:
    last, top, r = len(e.rows), e.top, e.r
    stab = (
        Check("r", r, ">=", 0, f"features blow up: Δx^l grows like n^{fmt(-r)}"),
        Check(f"a_{last}+c_{last}", top.a + e.c[-1], ">=", 1,
              f"the readout's update moves f by n^{fmt(1 - top.a - e.c[-1])}"),
        Check(f"a_{last}+b_{last}+r", top.A + r, ">=", 1,
              f"W^{last}_0 Δx^{last - 1} makes Δf grow like n^{fmt(1 - top.A - r)}"),
    )
    faith = () if q != "adaptive" else (
        Check(f"b_{last}", top.b, "<=", e.c[-1],
              "the readout outgrows its initialisation, changing the scale of every gradient "
              "that enters Q"),)
    return stab, faith


def _nontrivial(e: Effective) -> tuple[Check, ...]:
    last, top = len(e.rows), e.top
    return (Check(f"a_{last}+c_{last}", top.a + e.c[-1], "==", 1, "the readout update is o(1)"),
            Check(f"a_{last}+b_{last}+r", top.A + e.r, "==", 1, "the feature updates are o(1)"))


def classify_mlp(structure: MLPStructure, param: Parametrization, opt: Optimizer) -> Analysis:
    """Verdicts, r and contributions of an abcd-parametrized MLP (03 §3.2, 05 §5.5)."""
    e = effective(layer_rows(structure, param), opt.qclass)
    names = [la.group for la in structure.layers]
    si, fi = _stable_init(e), _faithful_init(e, names, opt.qclass)
    stab, faith = _training(e, opt.qclass)
    nt = _nontrivial(e)
    top = structure.depth + 1
    verdicts = standard_verdicts(si, fi, stab, faith, nt, e.r, f"a_{top}+c_{top} = 1 or "
                                 f"a_{top}+b_{top}+r = 1, given stable and faithful")
    return Analysis("mlp", structure.describe(), param, opt, verdicts, e.r,
                    _contributions(e, names, verdicts[4]), _notes(structure, param, opt),
                    quantities=_quantities(e))


def _contributions(e: Effective, names: list[str], nontriv: Verdict) -> tuple[Contribution, ...]:
    top, out = e.top, []
    for k, th in enumerate(e.theta):
        x = 1 - top.A - th
        out.append(Contribution(names[k], f"update of layer {k + 1} ({names[k]})", x,
                                sympy.And(nontriv.condition, relation(x, "==", 0))))
    x = 1 - top.a - e.c[-1]
    out.append(Contribution(names[-1], f"update of the readout ({names[-1]})", x,
                            sympy.And(nontriv.condition, relation(x, "==", 0))))
    x = HALF - top.A
    out.append(Contribution("f_0", "initial output f_0 (a Gaussian process)", x,
                            sympy.And(nontriv.condition, relation(x, "==", 0))))
    return tuple(out)


def _quantities(e: Effective) -> tuple[tuple[str, Exp], ...]:
    out: list[tuple[str, Exp]] = []
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
