"""Error signals χ = ε(f) as formulas (04 §4.2), parsed from the ``--loss`` option string.

χ_{t,ij} is the derivative of the batch loss with respect to the output f_j(ξ^i); the trainer
multiplies the gradients of f by it (g_P = Σ_i Σ_j χ_ij ∂f_j(ξ^i)/∂P). For a batch of B inputs
and k outputs (y the target: k numbers for mse and custom signals, a one-hot row for ce)::

    mse                       L = (1/2B) Σ_i ‖f − y‖²,          χ_ij = (f_j − y_j)/B
    ce                        L = (1/B) Σ_i −log softmax(f)·y,  χ_ij = (softmax(f)_j − y_j)/B
    formula(chi = EXPR)       χ_ij = EXPR(f_j, y_j)/B           (EXPR of f and y)
    formula(loss = EXPR)      χ_ij = ∂EXPR/∂f (f_j, y_j)/B      (a per-output loss)

Formulas use the syntax of :mod:`compiler.train.syntax`; errors are located option errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import sympy

from compiler.train.syntax import Cursor, expression, shown

F = sympy.Symbol("f", real=True)  # one output f_j(ξ^i)
Y = sympy.Symbol("y", real=True)  # its target y_j^i
_KNOWN = ("mse", "ce", "formula")


@dataclass(frozen=True)
class ErrorSignal:
    """χ per output: ``entrywise`` (a formula of f and y) or ``softmax`` (cross-entropy)."""

    name: str
    kind: Literal["entrywise", "softmax"]
    chi_formula: sympy.Expr  # χ·B of one output, of F and Y (entrywise signals)

    def chi(self, f: Sequence[sympy.Expr], y: Sequence[sympy.Expr], batch: int | sympy.Expr
            ) -> tuple[sympy.Expr, ...]:
        """χ_{i,·} of one input with outputs ``f`` and targets ``y`` in a batch of ``batch``."""
        match self.kind:
            case "entrywise":
                per = sympy.Pow(batch, -1)
                return tuple(sympy.Mul(self._at(fj, yj), per) for fj, yj in zip(f, y, strict=True))
            case "softmax":
                top = sympy.Max(*f) if len(f) > 1 else f[0]  # shift for a stable softmax
                total = sympy.Add(*(sympy.exp(fj - top) for fj in f))
                return tuple((sympy.exp(fj - top) / total - yj) / batch
                             for fj, yj in zip(f, y, strict=True))
            case _:
                raise AssertionError(f"unknown error signal kind {self.kind!r}")


    def _at(self, f: sympy.Expr, y: sympy.Expr) -> sympy.Expr:
        return cast(sympy.Expr, self.chi_formula.xreplace({F: f, Y: y}))


MSE = ErrorSignal("mse", "entrywise", F - Y)
CE = ErrorSignal("ce", "softmax", sympy.S.Zero)


def parse_signal(text: str, option: str = "--loss") -> ErrorSignal:
    """``mse``, ``ce``, ``formula(chi = f - y)``, ``formula(loss = (f - y)^4/4)``."""
    cur = Cursor(option, text)
    head = cur.next()
    if head.kind != "name" or head.text not in _KNOWN:
        raise cur.error(head, f"unknown error signal {head.text!r} (known: {', '.join(_KNOWN)})")
    signal = {"mse": MSE, "ce": CE}.get(head.text) or _formula(cur)
    if cur.peek.kind != "end":
        raise cur.error(cur.peek, f"unexpected {shown(cur.peek)} after the error signal")
    return signal


def _formula(cur: Cursor) -> ErrorSignal:
    cur.expect("(", "after formula (e.g. formula(chi = f - y))")
    key = cur.next()
    if key.text not in ("chi", "loss"):
        raise cur.error(key, f"expected chi = … or loss = …, got {shown(key)}")
    cur.expect("=", f"after {key.text}")
    expr = expression(cur, {"f": F, "y": Y})
    cur.expect(")", "to close formula(…)")
    chi = expr if key.text == "chi" else sympy.diff(expr, F)
    return ErrorSignal("formula", "entrywise", chi)
