"""The built-in optimizers of 04 §4.1 as formulas, with PyTorch's defaults and argument rules.

Each :class:`Builtin` lists its arguments (positional order, default, admissible range) and builds
(Q, state) from their exact values; the formulas are documented in
:mod:`compiler.train.optimizers`. Defaults follow PyTorch: adam β = (0.9, 0.999), ε = 1e-8;
adamw the same with weight decay 1e-2; rmsprop β (PyTorch's ``alpha``) = 0.99, ε = 1e-8;
adagrad ε = 1e-10. ``signsgd`` without ε is the exact sign (ε = 0) and ``momentum`` without β
is 0.9. Every optimizer also takes the keywords of :data:`COMMON`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import sympy

from compiler.numbers import decimal_rational
from compiler.train.optimizers import ONE, ZERO, G, State, T, Value, state_symbol

Kind = Literal["beta", "eps", "positive", "flag"]
Built = tuple[sympy.Expr, tuple[State, ...]]


@dataclass(frozen=True)
class Arg:
    """One argument: its name, default, admissible values and other spellings."""

    name: str
    default: Value | None
    kind: Kind
    aliases: tuple[str, ...] = ()

    def check(self, value: Value) -> str | None:
        """Why ``value`` is not admissible (None when it is)."""
        if self.kind == "flag":
            return None if isinstance(value, bool) else f"{self.name} must be true or false"
        if isinstance(value, bool):
            return f"{self.name} must be a number, not {str(value).lower()}"
        if self.kind == "beta" and not 0 <= value < 1:
            return f"{self.name} must be in [0, 1), got {value}"
        if self.kind == "eps" and value < 0:
            return f"{self.name} must be ≥ 0, got {value}"
        if self.kind == "positive" and value <= 0:
            return f"{self.name} must be > 0, got {value}"
        return None


@dataclass(frozen=True)
class Builtin:
    name: str
    args: tuple[Arg, ...]
    build: Callable[[dict[str, Value]], Built]
    wd: sympy.Rational = ZERO  # default decoupled weight decay


def _n(text: str) -> sympy.Rational:
    return decimal_rational(text)


def _num(args: dict[str, Value], name: str) -> sympy.Expr:
    value = args[name]
    assert not isinstance(value, bool), name  # Arg.check admitted only numbers here
    return value


def _sgd(args: dict[str, Value]) -> Built:
    return G, ()


def _momentum(args: dict[str, Value]) -> Built:
    m = state_symbol("m")
    return m, (State("m", _num(args, "beta") * m + G),)


def _signsgd(args: dict[str, Value]) -> Built:
    eps = _num(args, "eps")
    return (sympy.sign(G) if eps == 0 else G / sympy.sqrt(G**2 + eps**2)), ()


def _adam(args: dict[str, Value]) -> Built:
    b1, b2, eps = _num(args, "beta1"), _num(args, "beta2"), _num(args, "eps")
    m, v = state_symbol("m"), state_symbol("v")
    m_hat, v_hat = m / (1 - b1 ** (T + 1)), v / (1 - b2 ** (T + 1))
    q = m_hat / (sympy.sqrt(v_hat + eps**2) if args["eps_inside"] else sympy.sqrt(v_hat) + eps)
    return q, (State("m", b1 * m + (1 - b1) * G), State("v", b2 * v + (1 - b2) * G**2))


def _rmsprop(args: dict[str, Value]) -> Built:
    beta, eps, v = _num(args, "beta"), _num(args, "eps"), state_symbol("v")
    return G / (sympy.sqrt(v) + eps), (State("v", beta * v + (1 - beta) * G**2),)


def _adagrad(args: dict[str, Value]) -> Built:
    s = state_symbol("s")
    return G / (sympy.sqrt(s) + _num(args, "eps")), (State("s", s + G**2),)


_ADAM_ARGS = (Arg("beta1", _n("0.9"), "beta"), Arg("beta2", _n("0.999"), "beta"),
              Arg("eps", _n("1e-8"), "eps"), Arg("eps_inside", False, "flag"))

BUILTINS: dict[str, Builtin] = {b.name: b for b in (
    Builtin("sgd", (), _sgd),
    Builtin("momentum", (Arg("beta", _n("0.9"), "beta"),), _momentum),
    Builtin("signsgd", (Arg("eps", ZERO, "eps"),), _signsgd),
    Builtin("adam", _ADAM_ARGS, _adam),
    Builtin("adamw", _ADAM_ARGS, _adam, wd=_n("1e-2")),
    Builtin("rmsprop", (Arg("beta", _n("0.99"), "beta", ("alpha",)), Arg("eps", _n("1e-8"), "eps")),
            _rmsprop),
    Builtin("adagrad", (Arg("eps", _n("1e-10"), "eps"),), _adagrad),
)}

# keywords every optimizer takes (04 §2.10): η, decoupled weight decay, shaping of Q
COMMON = (Arg("lr", ONE, "positive"), Arg("wd", None, "eps"), Arg("normalize", False, "flag"),
          Arg("clip", None, "positive"))
