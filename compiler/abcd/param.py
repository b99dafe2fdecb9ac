"""abcd-parametrizations of an architecture (spec 03 §3.1, §3.3).

Every parameter tensor P of the architecture file gets four exponents (a, b, c, d): P = n^{-a}p,
p initialised iid N(0, σ²n^{-2b}), learning rate η·lr·n^{-c}, gradient multiplied by n^{d} before
the update function Q (03 §3.1); σ and lr are width-independent constants. The architecture's
output multiplier is f = n^{-e_out} Σ_α o_α (02 §2.1). A group such as ``param U : vector[10]``
shares one row. Exponents are sympy numbers, linear forms in symbols (``up:s``) or ``oo``: b = ∞
is a zero initialisation, c = ∞ a frozen tensor (learning rate 0); an infinite a or d, or any
−∞, has no meaning and is refused (:func:`~compiler.abcd.conditions.parse_exponent`).

Built-ins (03 §3.2, §3.3), by the role a parameter plays in the program:

| role    | SP(c)          | NTP          | μP         | UP_s                |
|---------|----------------|--------------|------------|---------------------|
| matrix  | 0 / ½ / c / 0  | ½ / 0 / 1 / 1 | 0 / ½ / 1 / 1 | 0 / ½ / 1+s / 1−s |
| vector  | 0 / 0 / c / 0  | 0 / 0 / ½ / ½ | 0 / 0 / 0 / 1 | 0 / 0 / s / 1−s   |
| readout | 0 / ½ / c / 0  | as vector    | as vector  | as vector           |
| scalar  | 0 / 0 / c / 0  | not allowed  | 0 / 0 / 0 / 0 | 0 / 0 / s / −s    |
| e_out   | 0              | ½            | 1          | 1 − s               |

A *readout* is a vector parameter read by an output instruction (o = v ⊙ x); it differs from other
vectors only under SP, whose readout has fan-in n (b = ½) while an input layer's columns have fan-in
d (b = 0). Mapped onto the MLP of 03 §3.2 (layer 1 → vector, 2..L → matrix, L+1 → readout with
a_{L+1} = a_vector + e_out, Rem. 2.9.13) these give exactly the SP/NTP/μP/UP_s tables of 03 §3.2.
The UP_s column is derived here: the MLP representative of 03 §3.2 item 7 with e_out = 1 − s and
the readout's a = 1 − s moved into e_out, so that the same row serves input and readout vectors;
a scalar parameter gets D = −s (its gradient n^{1−e_out}dθ enters Q at Θ(1)) and C = s (it moves
features by n^{-s}, like every other layer of UP_s). ``sp:C`` is SP with a global learning rate
n^{-C} (03 §3.2 "SP under adaptive optimizers").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

import sympy

from compiler.abcd.conditions import Exp, parse_exponent, symbol
from compiler.errors import ParametrizationError, UsageError
from compiler.ir import Nonlin, Program

Role = Literal["matrix", "vector", "readout", "scalar"]
HALF = sympy.Rational(1, 2)
LETTERS = ("a", "b", "c", "d")


@dataclass(frozen=True)
class Exponents:
    """(a, b, c, d) of one parameter tensor (03 §3.1)."""

    a: Exp
    b: Exp
    c: Exp
    d: Exp

    def __post_init__(self) -> None:  # accept plain numbers
        for letter in LETTERS:
            value = sympy.sympify(getattr(self, letter))
            object.__setattr__(self, letter, value)
            # only b = ∞ (zero init) and c = ∞ (frozen) mean something (see parse_exponent)
            if value.has(sympy.nan, sympy.zoo, -sympy.oo) or (
                    letter in "ad" and value.has(sympy.oo)):
                raise ParametrizationError(f"exponent {letter} cannot be {value}: only b and c "
                                           "may be infinite (b = ∞: zero init, c = ∞: frozen)")

    @classmethod
    def of(cls, a: object, b: object, c: object, d: object) -> Exponents:
        return cls(*(sympy.sympify(x) for x in (a, b, c, d)))

    @property
    def A(self) -> Exp:
        """a + b: entries of P_0 are Θ(n^{-A})."""
        return self.a + self.b

    @property
    def C(self) -> Exp:
        """a + c: the learning-rate scale P sees."""
        return self.a + self.c

    @property
    def D(self) -> Exp:
        """d − a: the gradient multiplier P sees (ΔP = −η n^{-C} Q(n^{D} ∂L/∂P))."""
        return self.d - self.a

    def shifted(self, theta: Exp) -> Exponents:
        """The symmetry of Prop. 2.2.3: (a+θ, b−θ, c−θ, d+θ)."""
        theta = sympy.sympify(theta)
        return Exponents(self.a + theta, self.b - theta, self.c - theta, self.d + theta)

    def as_tuple(self) -> tuple[Exp, Exp, Exp, Exp]:
        return (self.a, self.b, self.c, self.d)


@dataclass(frozen=True)
class TensorRule:
    """The row of one parameter group: exponents plus width-independent constants."""

    exponents: Exponents
    sigma: sympy.Rational = sympy.S.One  # exact values of the table's decimals
    lr: sympy.Rational = sympy.S.One


@dataclass(frozen=True)
class Parametrization:
    """An abcd-parametrization bound to one architecture: a row per parameter group."""

    name: str
    e_out: Exp
    rows: tuple[tuple[str, TensorRule], ...]
    roles: tuple[tuple[str, Role], ...]

    @cached_property
    def table(self) -> dict[str, TensorRule]:
        return dict(self.rows)

    def __getitem__(self, group: str) -> Exponents:
        return self.table[group].exponents

    def __iter__(self) -> Iterator[str]:
        return iter(name for name, _ in self.rows)

    def role(self, group: str) -> Role:
        return dict(self.roles)[group]

    @cached_property
    def symbols(self) -> frozenset[sympy.Symbol]:
        exprs = [self.e_out, *(x for _, r in self.rows for x in r.exponents.as_tuple())]
        return frozenset(s for e in exprs for s in e.free_symbols)

    def with_exponents(self, new: Mapping[str, Exponents],
                       name: str | None = None) -> Parametrization:
        rows = tuple((g, replace(r, exponents=new.get(g, r.exponents))) for g, r in self.rows)
        return replace(self, rows=rows, name=name or self.name)


def param_roles(program: Program) -> dict[str, Role]:
    """The role of every parameter group: its kind, except that a vector group read by an output
    instruction is a readout."""
    out_syms = {s.name for ins in program.body if ins.out in program.outputs
                and isinstance(ins, Nonlin) for s in ins.formula.free_symbols}
    roles: dict[str, Role] = {}
    for p in program.params:
        if p.kind == "vector" and out_syms & set(p.names):
            roles[p.name] = "readout"
        else:
            roles[p.name] = p.kind
    return roles


@dataclass(frozen=True)
class Builtin:
    """A built-in parametrization: a row per role and the output multiplier."""

    name: str
    by_role: Mapping[Role, Exponents | None]
    e_out: Exp

    def bind(self, program: Program) -> Parametrization:
        roles = param_roles(program)
        rows = []
        for p in program.params:
            row = self.by_role[roles[p.name]]
            if row is None:
                raise ParametrizationError(
                    f"scalar parameter {p.name} under {self.name}: not allowed (spec 03 §3.3: "
                    "NTP has no scalar parameters; its neural-tangent limit requires none, "
                    "Thm 2.9.19); use mup or up:S, or give the parameter a row in a table", p.loc)
            rows.append((p.name, TensorRule(row)))
        return Parametrization(self.name, self.e_out, tuple(rows), tuple(roles.items()))


def sp(c: Exp = sympy.S.Zero) -> Builtin:
    """Standard parametrization with a global learning rate n^{-c} (Ex. 2.2.2)."""
    c = sympy.sympify(c)
    m, v = Exponents.of(0, HALF, c, 0), Exponents.of(0, 0, c, 0)
    name = "sp" if c == 0 else f"sp:{c}"
    return Builtin(name, {"matrix": m, "vector": v, "readout": m, "scalar": v}, sympy.S.Zero)


def ntp() -> Builtin:
    """Neural tangent parametrization (Def. 2.4.1, 2.9.11)."""
    v = Exponents.of(0, 0, HALF, HALF)
    return Builtin("ntp", {"matrix": Exponents.of(HALF, 0, 1, 1), "vector": v, "readout": v,
                           "scalar": None}, HALF)


def mup() -> Builtin:
    """Maximal update parametrization (Def. 2.5.1, 2.9.12)."""
    v = Exponents.of(0, 0, 0, 1)
    return Builtin("mup", {"matrix": Exponents.of(0, HALF, 1, 1), "vector": v, "readout": v,
                           "scalar": Exponents.of(0, 0, 0, 0)}, sympy.S.One)


def up(s: Exp) -> Builtin:
    """Uniform parametrization UP_s (Rem. 2.8.25); UP_0 = μP, UP_½ ≅ NTP."""
    s = sympy.sympify(s)
    v = Exponents.of(0, 0, s, 1 - s)
    return Builtin(f"up:{s}", {"matrix": Exponents.of(0, HALF, 1 + s, 1 - s), "vector": v,
                               "readout": v, "scalar": Exponents.of(0, 0, s, -s)}, 1 - s)


def builtin(spec: str) -> Builtin | None:
    """The built-in named by ``spec`` (``sp``, ``sp:1``, ``ntp``, ``mup``, ``up:1/4``, ``up:s``),
    or None when ``spec`` names no built-in (then it is a table file)."""
    name, sep, arg = spec.partition(":")
    name = name.strip().lower()
    if name in ("mup", "μp", "ntp") and not sep:
        return mup() if name != "ntp" else ntp()
    if name == "sp" and not sep:
        return sp()
    if name in ("sp", "up") and sep:
        value = _argument(arg, spec)
        return sp(value) if name == "sp" else up(value)
    if name == "up":
        raise UsageError("--param up needs its exponent: up:S with S a number or a symbol, "
                         "e.g. up:1/4 or up:s")
    return None


def _argument(arg: str, spec: str) -> Exp:
    text = arg.strip()
    if text.isidentifier() and text.lower() not in ("inf", "oo"):
        if text == "n":
            raise UsageError(f"--param {spec}: the width n cannot be an exponent symbol")
        return symbol(text)
    try:
        return parse_exponent(text, (), f"--param {spec}")
    except ParametrizationError as e:
        raise UsageError(e.message) from None


def resolve(spec: str, program: Program) -> Parametrization:
    """``--param SPEC`` bound to ``program``: a built-in or a TOML/JSON table file."""
    found = builtin(spec)
    if found is not None:
        return found.bind(program)
    from compiler.abcd.tables import load_table

    return load_table(spec, program)
