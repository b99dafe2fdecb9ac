"""Result objects of the abcd analyses: checks, verdicts and the whole analysis (spec 03 §3.2).

A :class:`Check` is one condition of the spec in the form "lhs op rhs", with what it means and
what goes wrong when it fails. A :class:`Verdict` is a named boolean combination of checks and
earlier verdicts ("given 1 and 2" in 03 §3.2); with numeric exponents it is True or False, with
symbolic ones it is a set of values (:meth:`Verdict.solutions`). The same verdict names are
produced by the MLP classifier (03 §3.2) and by the size calculus (03 §3.3):

* ``stable_init``: features Θ(1) and f_0 = O(1) at initialisation (item 1);
* ``faithful_init``: stable at init and every Q input Θ(1) (item 2; automatic when Q is linear
  or scale invariant, see :mod:`compiler.abcd.optim`);
* ``stable``: stable at init and during training (items 1 and 3: features, f and their updates
  do not blow up);
* ``faithful``: faithful at init and, when stable, throughout training (items 2 and 3; for an
  unstable parametrization faithfulness during training is meaningless, so only init counts);
* ``nontrivial``: stable, faithful and f moves by Θ(1) (item 4);
* ``feature_learning`` / ``operator``: nontrivial with r = 0 / r > 0 (item 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import sympy
from sympy.logic.boolalg import Boolean

from compiler.abcd.conditions import OPS, Exp, condition_set, decided, fmt, fmt_set, relation
from compiler.abcd.optim import Optimizer
from compiler.abcd.param import Parametrization

VERDICTS = ("stable_init", "faithful_init", "stable", "faithful", "nontrivial",
            "feature_learning", "operator")
MAX_LISTED = 8
_NEGATED = {">=": "<", "<=": ">", "==": "≠", ">": "≤", "<": "≥"}


@dataclass(frozen=True)
class Check:
    """One condition ``lhs op rhs`` (op in >=, <=, ==, >, <)."""

    label: str
    lhs: Exp
    op: str
    rhs: Exp
    meaning: str = ""

    @cached_property
    def condition(self) -> Boolean:
        return relation(self.lhs, self.op, self.rhs)

    def explain(self, symbol_names: str = "") -> str:
        """The check in words with its value: '✓ a_1+b_1 = 0' or '✗ … = 1/2 < 1: meaning'."""
        got = decided(self.condition)
        lhs, rhs = fmt(self.lhs), fmt(self.rhs)
        value = f"{self.label} = {lhs}" if lhs != self.label else self.label
        if got is True:
            return f"✓ {value} {OPS[self.op]} {rhs}"
        if got is False:
            tail = f": {self.meaning}" if self.meaning else ""
            return f"✗ {value} {_NEGATED[self.op]} {rhs}{tail}"
        where = fmt_set(condition_set(self.condition), symbol_names)
        return f"? {value} {OPS[self.op]} {rhs} holds iff {where}"


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
        return tuple(c for c in self.checks if decided(c.condition) is not True)


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

    def reasons(self) -> list[str]:
        """One line per verdict (with why), then the failing checks in words."""
        out = []
        for v in self.verdicts:
            holds = v.holds
            state = {True: "yes", False: "no", None: "iff " + fmt_set(v.solutions(), self.symbols)}
            out.append(f"{v.name}: {state[holds]}" + (f" ({v.summary})" if v.summary else ""))
            if holds is not True:  # why not (or where): the checks that do not always hold
                bad = [f"  {c.explain(self.symbols)}" for c in v.checks
                       if decided(c.condition) is not True]
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
    during training, faith: faithfulness during training), 4 (nt, any of) and r (item 5)."""
    stable = Verdict("stable", conjunction(*si, *stab), si + stab)
    during = sympy.Or(sympy.Not(conjunction(*stab)), conjunction(*faith))
    # faithfulness during training only means something for a stable parametrization
    shown = fi if decided(conjunction(*stab)) is False else fi + faith
    faithful = Verdict("faithful", sympy.And(conjunction(*si, *fi), during), shown)
    nontrivial = Verdict("nontrivial", sympy.And(stable.condition, faithful.condition,
                                                 sympy.Or(*(c.condition for c in nt))),
                         nt, nt_summary)
    return (
        Verdict("stable_init", conjunction(*si), si),
        Verdict("faithful_init", conjunction(*si, *fi), fi),
        stable,
        faithful,
        nontrivial,
        Verdict("feature_learning", sympy.And(nontrivial.condition, relation(r, "==", 0)),
                summary=f"r = {fmt(r)}"),
        Verdict("operator", sympy.And(nontrivial.condition, relation(r, ">", 0)),
                summary=f"r = {fmt(r)}"),
    )
