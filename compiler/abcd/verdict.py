"""Result objects of the abcd analyses: checks, verdicts and the whole analysis (spec 03 §3.2).

A :class:`Check` is one condition of the spec in the form "lhs op rhs", with what it means and
what goes wrong when it fails. A :class:`Verdict` is a named boolean combination of checks and
earlier verdicts ("given 1 and 2" in 03 §3.2); with numeric exponents it is True or False, with
symbolic ones it is a set of values (:meth:`Verdict.solutions`). The same verdict names are
produced by the MLP classifier (03 §3.2) and by the size calculus (03 §3.3):

* ``stable_init``: features Θ(1) and f_0 = O(1) at initialisation (item 1);
* ``faithful_init``: stable at init and every Q input Θ(1) (item 2; automatic when Q is linear
  or scale invariant, see :mod:`compiler.train.classes`);
* ``stable``: stable at init and during training (items 1 and 3: features, f and their updates
  do not blow up);
* ``faithful``: faithful at init and, when stable, throughout training (items 2 and 3; for an
  unstable parametrization faithfulness during training is meaningless, so only init counts);
* ``nontrivial``: stable, faithful and f moves by Θ(1) (item 4);
* ``feature_learning`` / ``operator``: nontrivial with r = 0 / r > 0 (item 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import sympy
from sympy.logic.boolalg import Boolean

from compiler.abcd.conditions import OPS, Exp, condition_set, decided, fmt, fmt_set, relation
from compiler.abcd.exponent_values import Reported, on_set, report
from compiler.abcd.param import Parametrization
from compiler.train import Optimizer

VERDICTS = ("stable_init", "faithful_init", "stable", "faithful", "nontrivial",
            "feature_learning", "operator")
MAX_LISTED = 8
_NEGATED = {">=": "<", "<=": ">", "==": "≠", ">": "≤", "<": "≥"}


@dataclass(frozen=True)
class Check:
    """One condition ``lhs op rhs`` (op in >=, <=, ==, >, <).

    ``meaning`` says what goes wrong when it fails; ``low`` / ``high``, when given, replace it
    for a failure with lhs < rhs / lhs > rhs (an exponent too small or too large: "o(1)" and
    "blows up" are different failures). ``vacuous`` is where the check is not needed
    (faithfulness during training of a parametrization that is unstable there), so the listed
    set is the one the verdict uses. ``grows`` marks an lhs that is not meaningful when the check
    fails (a multi-update exponent of something that blows up): its value is then not printed."""

    label: str
    lhs: Exp
    op: str
    rhs: Exp
    meaning: str = ""
    low: str = ""
    high: str = ""
    vacuous: Boolean = sympy.false
    grows: bool = False

    @cached_property
    def condition(self) -> Boolean:
        return relation(self.lhs, self.op, self.rhs)

    @cached_property
    def shown(self) -> Boolean:
        """The condition as the verdict needs it: true where the check is vacuous."""
        return sympy.Or(self.vacuous, self.condition)

    def why(self) -> str:
        """What goes wrong, for a check that fails."""
        if self.high and decided(relation(self.lhs, ">", self.rhs)) is True:
            return self.high
        if self.low and decided(relation(self.lhs, "<", self.rhs)) is True:
            return self.low
        return self.meaning

    def explain(self, symbol_names: str = "") -> str:
        """The check in words with its value: '✓ a_1+b_1 = 0' or '✗ … = 1/2 < 1: meaning'."""
        got = decided(self.shown)
        lhs, rhs = fmt(self.lhs), fmt(self.rhs)
        value = f"{self.label} = {lhs}" if lhs != self.label else self.label
        if got is True:
            return f"✓ {value} {OPS[self.op]} {rhs}"
        if got is False:
            why = self.why()
            if self.grows:
                value = self.label
            return f"✗ {value} {_NEGATED[self.op]} {rhs}" + (f": {why}" if why else "")
        where = fmt_set(condition_set(self.shown), symbol_names)
        extra = "" if self.vacuous is sympy.false else " (needed only where stable in training)"
        if self.grows:  # the formula only means something where it holds: show it there
            return (f"? {self.label} {OPS[self.op]} {rhs}{extra} holds iff {where} (there "
                    f"{self.label} = {fmt(on_set(self.lhs, self.shown))})")
        return f"? {value} {OPS[self.op]} {rhs}{extra} holds iff {where}"


@dataclass(frozen=True)
class Verdict:
    """A named condition: checks (all must hold) and earlier verdicts it is given."""

    name: str
    condition: Boolean
    checks: tuple[Check, ...] = ()
    summary: str = ""

    @property
    def holds(self) -> bool | None:
        """True/False when decided for every value of the symbols, else None."""
        return decided(self.condition)

    def solutions(self) -> sympy.Set | Boolean:
        """The values of the exponent symbols for which the verdict holds."""
        return condition_set(self.condition)

    def failing(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if decided(c.shown) is not True)


@dataclass(frozen=True)
class Contribution:
    """Whether a parameter's update (or the initial output f_0) is part of the limit (05 §5.5):
    it is when the exponent of its effect on Δf (on f_0) is 0 in a nontrivial limit."""

    name: str
    what: str
    exponent: Exp
    condition: Boolean

    @property
    def holds(self) -> bool | None:
        return decided(self.condition)


@dataclass(frozen=True)
class QInput:
    """One parameter group's Q input n^{D}·∂L/∂P (entries Θ(n^e)) at step 0 and after the first
    update; ``zero_by``: the sign flips that make its step-0 limit exactly 0 (empty: it is not;
    :mod:`compiler.abcd.zeros`)."""

    group: str
    step0: Exp | None
    step1: Exp | None
    zero_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Analysis:
    """Everything an abcd analysis found: verdicts with reasons, r, contributions."""

    method: str
    program: str
    param: Parametrization
    optimizer: Optimizer
    verdicts: tuple[Verdict, ...]
    r: Exp
    contributions: tuple[Contribution, ...]
    notes: tuple[str, ...] = ()
    quantities: tuple[tuple[str, Exp | None], ...] = ()
    sizes: tuple[tuple[str, Exp | None, Exp | None], ...] = field(default=(), repr=False)
    first: tuple[tuple[str, Exp | None], ...] = ()
    """r and e(Δf) after the very first update from init (lower bounds when they diverge)."""
    features_init: Boolean = sympy.true
    """Whether the features (not f_0) are Θ(1) at init: r is undefined where they are not."""
    q_inputs: tuple[QInput, ...] = ()
    """The size calculus's Q inputs per group (what the coordinate check measures, 03 §3.4)."""

    def __getitem__(self, name: str) -> Verdict:
        return next(v for v in self.verdicts if v.name == name)

    @property
    def symbols(self) -> str:
        return ", ".join(sorted(s.name for s in self.param.symbols))

    @property
    def regime(self) -> str | None:
        """feature_learning / operator when decided, None otherwise (or when trivial)."""
        for name in ("feature_learning", "operator"):
            if self[name].holds is True:
                return name
        return None

    def quantity(self, name: str) -> Exp | None:
        return dict(self.quantities)[name]

    def reported(self, name: str) -> Reported:
        """r or e(Δf) as the outputs show it (:mod:`compiler.abcd.exponent_values`): diverging where
        it blows up, simplified on the stable set otherwise."""
        features = relation(self.r, "<", 0)
        value = self.r if name == "r" else self.quantity(name)
        grows = features if name == "r" else sympy.Or(
            features, sympy.false if value is None else relation(value, ">", 0))
        bound = dict(self.first).get(name)
        if name == "r" and bound is not None:
            bound = -bound  # r blows up when the features' change n^{-r} does
        return report(value, grows, self["stable"].condition, bound, self.features_init)

    def reasons(self) -> list[str]:
        """One line per verdict (with why), then the failing checks in words."""
        out = []
        for v in self.verdicts:
            holds = v.holds
            state = {True: "yes", False: "no", None: "iff " + fmt_set(v.solutions(), self.symbols)}
            summary = (f"r = {self.reported('r').text(self.symbols)}"
                       if v.name in ("feature_learning", "operator") else v.summary)
            out.append(f"{v.name}: {state[holds]}" + (f" ({summary})" if summary else ""))
            if holds is not True:  # why not (or where): the checks that do not always hold
                bad = [f"  {c.explain(self.symbols)}" for c in v.failing()]
                out += bad[:MAX_LISTED]
                if len(bad) > MAX_LISTED:
                    out.append(f"  … and {len(bad) - MAX_LISTED} more")
        return out


def conjunction(*parts: Boolean | Verdict | Check) -> Boolean:
    """And of verdicts, checks and booleans."""
    conds = []
    for p in parts:
        conds.append(p.condition if isinstance(p, Verdict | Check) else p)
    return sympy.And(*conds)


def standard_verdicts(si: tuple[Check, ...], fi: tuple[Check, ...], stab: tuple[Check, ...],
                      faith: tuple[Check, ...], nt: tuple[Check, ...], r: Exp,
                      nt_summary: str) -> tuple[Verdict, ...]:
    """The verdicts of 03 §3.2 from the checks of items 1 (si), 2 (fi), 3 (stab: stability
    during training, faith: faithfulness during training), 4 (nt, any of) and r (item 5).

    Faithfulness is stable-at-init ∧ item 2 ∧ (unstable in training ∨ item 3's faithfulness):
    faithfulness during training only means something for a parametrization that is stable
    there, so its checks are listed as vacuous where it is not, and the init checks are listed
    too, so that the listed sets explain the verdict's set."""
    stable = Verdict("stable", conjunction(*si, *stab), si + stab)
    unstable = sympy.Not(conjunction(*stab))
    faith = tuple(replace(c, vacuous=unstable) for c in faith)
    faithful = Verdict("faithful", sympy.And(conjunction(*si, *fi), sympy.Or(unstable,
                                                                            conjunction(*faith))),
                       si + fi + faith)
    nontrivial = Verdict("nontrivial", sympy.And(stable.condition, faithful.condition,
                                                 sympy.Or(*(c.condition for c in nt))),
                         nt, nt_summary)
    return (
        Verdict("stable_init", conjunction(*si), si),
        Verdict("faithful_init", conjunction(*si, *fi), si + fi),
        stable,
        faithful,
        nontrivial,
        Verdict("feature_learning", sympy.And(nontrivial.condition, relation(r, "==", 0))),
        Verdict("operator", sympy.And(nontrivial.condition, relation(r, ">", 0))),
    )
