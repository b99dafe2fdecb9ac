"""The values an expression evaluates to (spec 06): a vector or scalar formula (:class:`Val`), an
initial matrix (:class:`Mat`, only valid left of ``@``), a declared group not yet indexed down to
one entry (:class:`Group`), and a user function (:class:`UserFunction`, inlined at each call)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sympy

from compiler.ir import Kind, indexed

ValKind = Literal["vector", "scalar"]


@dataclass(frozen=True)
class Val:
    """A vector- or scalar-valued formula over program symbols."""

    kind: ValKind
    expr: sympy.Expr


@dataclass(frozen=True)
class Mat:
    """An initial matrix, possibly transposed (only valid left of ``@``)."""

    name: str
    transpose: bool = False


@dataclass(frozen=True)
class Group:
    """A declared group of objects not yet indexed down to one entry."""

    base: str
    kind: Kind
    shape: tuple[int, ...]
    prefix: tuple[int, ...] = ()

    def describe(self) -> str:
        dims = "".join(f"[{s}]" for s in self.shape)
        return f"{indexed(self.base, self.prefix)} (a group of {self.kind}s {dims})"

    def entries(self) -> tuple[str, ...]:
        if len(self.shape) != 1:
            raise ValueError("only 1-D groups have entries")
        return tuple(indexed(self.base, (*self.prefix, j)) for j in range(self.shape[0]))


Value = Val | Mat | Group


@dataclass(frozen=True)
class UserFunction:
    """``def NAME(params) = body``, inlined at every call."""

    name: str
    params: tuple[sympy.Symbol, ...]
    body: sympy.Expr
