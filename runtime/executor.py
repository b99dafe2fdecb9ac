"""Finite-width executor: the meaning of a program at width n (spec 01 §1.3).

An interpreter over the IR with one rule per instruction kind. A batch of B inputs runs at once:
vectors are (n, B) arrays, scalars (B,) arrays; parameters are shared, as (n, 1) and (1,) arrays
that broadcast. An OuterNonlin of order r, y_α = n^{-r} Σ_β ψ(x_α; x_{β₁}; …; θ), is evaluated in
blocks of α (and, if needed, of β₁) so that memory stays O(block·n^{r−1}·B), never O(n^{r+1}).
Every result is checked for NaN/Inf; the error names the instruction that produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import assert_never

import numpy as np

from compiler.errors import NumericError
from compiler.ir import Avg, Instruction, MatMul, Nonlin, OuterNonlin, Program, formula_args
from compiler.printer import format_instruction
from runtime.codegen import compile_instruction
from runtime.data import input_batch
from runtime.params import draw_parameters

BLOCK_ELEMENTS = 1 << 21
"""Largest number of ψ evaluations held in memory at once by an OuterNonlin block."""


@dataclass(frozen=True)
class Execution:
    """Every vector ((n, B) or (n, 1)) and scalar ((B,) or (1,)) of one run, and the matrices."""

    program: Program
    width: int
    batch: int
    values: Mapping[str, np.ndarray]
    matrices: Mapping[str, np.ndarray] = field(repr=False)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    def averages(self) -> np.ndarray:
        """F = avg(o) for every output vector o: shape (outputs, B)."""
        return np.stack(
            [
                np.broadcast_to(self.values[o].mean(axis=0), (self.batch,))
                for o in self.program.outputs
            ]
        )

    def f(self, e_out: float = 0.5) -> np.ndarray:
        """f(ξ) = n^{-e_out} Σ_α o_α(ξ) = n^{1-e_out}·avg(o) (spec 02 §2.1): (outputs, B)."""
        return self.width ** (1.0 - e_out) * self.averages()


Progress = Callable[[int, int, Instruction], None]


def execute(
    program: Program,
    width: int,
    seed: int = 0,
    inputs: object = None,
    dist: str = "gaussian",
    params: Mapping[str, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> Execution:
    """Run ``program`` at width ``width``. ``inputs``: (B, d) array, one input (d,), or a dict of
    input names to (B,) arrays; ``params`` overrides the drawn parameters (same shapes as
    :func:`runtime.params.draw_parameters`). Deterministic for a given seed."""
    drawn = dict(params) if params is not None else draw_parameters(program, width, seed, dist)
    batch, values = input_batch(program, inputs)
    matrices: dict[str, np.ndarray] = {}
    for name in program.param_names():
        arr = np.asarray(drawn[name], dtype=np.float64)
        kind = program.kinds[name]
        if kind == "matrix":
            matrices[name] = arr
        else:
            values[name] = arr.reshape(width, 1) if kind == "vector" else arr.reshape(1)
    kinds = program.kinds
    total = len(program.body)
    for k, ins in enumerate(program.body):
        if progress is not None:
            progress(k, total, ins)
        with np.errstate(all="ignore"):  # overflow/invalid are reported below, by instruction
            y = _run(ins, values, matrices, kinds, width)
        if not np.all(np.isfinite(y)):
            bad = "NaN" if np.isnan(y).any() else "Inf"
            msg = f"{bad} produced at width {width} by: {format_instruction(ins, kinds)}"
            raise NumericError(msg, ins.loc)
        values[ins.out] = y
    return Execution(program, width, batch, values, matrices)


def _run(
    ins: Instruction,
    values: dict[str, np.ndarray],
    matrices: dict[str, np.ndarray],
    kinds: Mapping[str, str],
    n: int,
) -> np.ndarray:
    match ins:
        case MatMul(matrix=w, arg=x, transpose=t):
            m = matrices[w]
            return (m.T if t else m) @ values[x]
        case Avg(arg=x):
            return values[x].mean(axis=0)
        case Nonlin():
            return _nonlin(ins, values, n)
        case OuterNonlin():
            return _outer(ins, values, kinds, n)
        case _:
            assert_never(ins)


def _batch_of(arrays: list[np.ndarray]) -> int:
    return max((a.shape[-1] for a in arrays), default=1)


def _nonlin(ins: Nonlin, values: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    arrays = [values[var] for _, var, _ in formula_args(ins)]
    y = compile_instruction(ins)(*arrays, n)
    return np.array(np.broadcast_to(y, (n, _batch_of(arrays))), dtype=np.float64)


def _outer(
    ins: OuterNonlin, values: Mapping[str, np.ndarray], kinds: Mapping[str, str], n: int
) -> np.ndarray:
    r = ins.order
    args = formula_args(ins)
    psi = compile_instruction(ins)
    batch = _batch_of([values[var] for _, var, _ in args])
    axis_of = {c: i + 1 for i, c in enumerate(ins.copies)}
    rest = n ** (r - 1) * batch  # elements per (α, β₁) pair
    b_block = n if n * rest <= BLOCK_ELEMENTS else max(1, BLOCK_ELEMENTS // rest)
    a_block = max(1, BLOCK_ELEMENTS // (b_block * rest))
    out = np.empty((n, batch))
    for a0 in range(0, n, a_block):
        a1 = min(n, a0 + a_block)
        acc = np.zeros((a1 - a0, batch))
        for b0 in range(0, n, b_block):
            b1 = min(n, b0 + b_block)
            arrays = []
            for _, var, copy in args:
                v = values[var]
                if kinds[var] == "scalar":
                    arrays.append(v)
                    continue
                shape = [1] * (r + 1) + [v.shape[-1]]
                axis = 0 if copy is None else axis_of[copy]
                part = v[a0:a1] if axis == 0 else (v[b0:b1] if axis == 1 else v)
                shape[axis] = part.shape[0]
                arrays.append(part.reshape(shape))
            y = psi(*arrays, n)
            full = (a1 - a0, b1 - b0, *([n] * (r - 1)), batch)
            acc += np.broadcast_to(y, full).sum(axis=tuple(range(1, r + 1)))
        out[a0:a1] = acc
    return out / float(n) ** r
