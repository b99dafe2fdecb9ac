"""Gradient maps: where the gradients of one backpropagation live (spec 02 §2.2), and their check.

A :class:`GradientMap` names, for F = avg(o), the gradient variable of every variable F depends
on (dx = n·∂F/∂x for a vector, dθ = ∂F/∂θ for a scalar) and every matrix use y = W x (or Wᵀ x)
whose result has a gradient: ∂F/∂W = (1/n)·Σ_u a_u b_uᵀ with (a, b) = :attr:`MatrixUse.outer`.
:func:`verify_gradients` checks a map against its program: every name defined, of the right
kind, and every use the MatMul it claims to be, so passes that consume the map (total program,
kernel program, training) can rely on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property

from compiler.errors import VerifyError
from compiler.ir import MatMul, Program


@dataclass(frozen=True)
class MatrixUse:
    """One use ``out = matrix @ arg`` (or ``matrix.T @ arg``); ``d_out`` is the gradient of out."""

    matrix: str
    transpose: bool
    out: str
    arg: str
    d_out: str

    @property
    def outer(self) -> tuple[str, str]:
        """(a, b) such that this use contributes (1/n)·a bᵀ to ∂F/∂W (02 §2.2 scale bookkeeping):
        (dy, x) for y = W x, (x, dy) for y = Wᵀ x."""
        return (self.arg, self.d_out) if self.transpose else (self.d_out, self.arg)


@dataclass(frozen=True)
class GradientMap:
    """Where the gradients of one backpropagation live: variable → its gradient variable, and
    every matrix use whose result has a gradient (in program order)."""

    output: str
    names: tuple[tuple[str, str], ...]
    uses: tuple[MatrixUse, ...]

    @cached_property
    def table(self) -> dict[str, str]:
        return dict(self.names)

    def get(self, var: str) -> str | None:
        """The gradient variable of ``var``, or None when F does not depend on it (dvar = 0)."""
        return self.table.get(var)

    def __getitem__(self, var: str) -> str:
        return self.table[var]

    def __contains__(self, var: object) -> bool:
        return var in self.table

    def matrix_uses(self, matrix: str) -> tuple[MatrixUse, ...]:
        """The uses of ``matrix`` (and of its transpose) that contribute to ∂F/∂matrix."""
        return tuple(u for u in self.uses if u.matrix == matrix)

    def renamed(self, rename: Callable[[str], str]) -> GradientMap:
        """The same map with every non-matrix name passed through ``rename`` (total program)."""
        names = tuple((rename(v), rename(g)) for v, g in self.names)
        uses = tuple(
            replace(u, out=rename(u.out), arg=rename(u.arg), d_out=rename(u.d_out))
            for u in self.uses
        )
        return GradientMap(rename(self.output), names, uses)


def verify_gradients(grads: GradientMap, program: Program) -> None:
    """Raise VerifyError unless ``grads`` fits ``program`` (see the module docstring)."""
    kinds = program.kinds

    def fail(msg: str) -> VerifyError:
        return VerifyError(f"gradient map of F = avg({grads.output}) in {program.name}: {msg}")

    if kinds.get(grads.output) != "vector":
        raise fail(f"{grads.output} is not a vector of the program")
    for var, grad in grads.names:
        if var not in kinds or grad not in kinds:
            raise fail(f"d{var} = {grad} names an undefined object")
        if kinds[var] == "matrix" or kinds[grad] != kinds[var]:
            raise fail(f"the gradient {grad} ({kinds[grad]}) of {var} ({kinds[var]}) has the "
                       "wrong kind")
    for use in grads.uses:
        ins = program.producer.get(use.out)
        if ins != MatMul(use.out, use.matrix, use.arg, use.transpose):
            raise fail(f"use {use.out} = {use.matrix} @ {use.arg} is not an instruction")
        if kinds.get(use.d_out) != "vector":
            raise fail(f"the gradient {use.d_out} of {use.out} is not a vector")
