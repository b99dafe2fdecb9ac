"""The total program: backpropagation for B inputs at once, parameters shared (spec 02 §2.3).

π_bp(ξ¹) ⋯ π_bp(ξ^B) (Def. 2.9.16 of the paper) is the concatenation of B copies of the
backpropagation program (:mod:`compiler.passes.backprop`), one per input, sharing the initial
matrices, vectors and scalars (the parameters), with every other variable renamed per input:
``_ξi`` is appended to the base name, before any indices (``h1`` → ``h1_ξ1``, ``h[2]`` →
``h_ξ1[2]``, ``dU[3]`` → ``dU_ξ1[3]``). The input coordinates stay symbolic, declared once per copy
(``input xi_ξ1[10]``): the structure of the total program depends only on B, and :meth:`Total.bind`
maps a (B, d) data array to its input names for the executor. The outputs are the copies' outputs,
input by input. In the limit, the hat-kets of W x(ξ^i) across copies are jointly Gaussian with
covariance ⟨x(ξ^i)|x(ξ^j)⟩ (02 §2.3): where the NNGP kernel comes from.

Registered as the pass ``total`` (options :class:`TotalOptions`): its result :class:`Total`
carries each copy's gradient map and is verified together with them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from operator import attrgetter

import numpy as np

from compiler.errors import DuplicateError, UsageError
from compiler.ir import (
    Input,
    OuterNonlin,
    Program,
)
from compiler.passes.backprop import backprop_map
from compiler.passes.gradients import GradientMap, verify_gradients
from compiler.passes.registry import PassOptions, ResultType, register_pass
from compiler.passes.total_copies import Renamer, per_input, verify_copies
from compiler.verify import verify


@dataclass(frozen=True)
class Total:
    """The total program, the forward program it came from, and each copy's gradient map."""

    program: Program
    forward: Program
    batch: int
    grads: tuple[GradientMap, ...] | None
    base: Program | None = None  # the program copied per input (π_bp, or π for forward copies)

    def name(self, var: str, i: int) -> str:
        """The total program's name of ``var`` of the copy for input i (parameters are shared)."""
        return var if var in self.forward.param_names() else per_input(var, i)

    def bind(self, data: object) -> dict[str, np.ndarray]:
        """{input entry name: (1,) array} for :func:`runtime.executor.execute`, from (B, d) data
        (row i − 1 is input ξ^i)."""
        x = input_array(self.forward, data)
        if x.shape[0] != self.batch:
            msg = f"data has {x.shape[0]} rows, but the total program has B = {self.batch}"
            raise UsageError(msg)
        names = self.forward.input_names
        return {
            per_input(name, i + 1): x[i, j : j + 1].copy()
            for i in range(self.batch)
            for j, name in enumerate(names)
        }


def input_array(program: Program, data: object) -> np.ndarray:
    """``data`` as a (B, d) float array; a clear error when d is not the program's."""
    x = np.asarray(data, dtype=np.float64)
    x = x.reshape(1, -1) if x.ndim <= 1 else x.reshape(x.shape[0], -1)
    d = len(program.input_names)
    if x.shape[1] != d:
        decl = ", ".join(f"input {i.name}{''.join(f'[{k}]' for k in i.shape)}"
                         for i in program.inputs)
        where = program.inputs[0].loc if program.inputs else None  # the input declaration
        raise UsageError(f"inputs have dimension {x.shape[1]}, but arch {program.name} takes {d}"
                         f" ({decl or 'no inputs'})", where)
    if x.shape[0] < 1:
        raise UsageError("no inputs: the data has 0 rows")
    return x


def batch_size(program: Program, inputs: object) -> int:
    """B from an int or from (B, d) data (whose dimension must be the program's)."""
    if isinstance(inputs, int | np.integer) and not isinstance(inputs, bool):
        if inputs < 1:
            raise UsageError(f"the total program needs at least one input, got B = {inputs}")
        return int(inputs)
    return input_array(program, inputs).shape[0]


def _check_names(program: Program, batch: int, renamer: Renamer) -> None:
    """Refuse a renaming that would give two objects one name (e.g. a parameter named h_ξ1)."""
    shared = {d.name for d in program.params} | set(program.param_names())
    copies = {c for ins in program.body if isinstance(ins, OuterNonlin) for c in ins.copies}
    groups = [inp.name for inp in program.inputs if inp.shape]
    names = sorted(shared | copies)
    for i in range(1, batch + 1):  # the names the copies are built with (remembered there)
        names += [*renamer.names(i).values(), *(per_input(g, i) for g in groups)]
    dup = [x for x, k in Counter(names).items() if k > 1]
    if dup:
        raise DuplicateError(
            f"total program of arch {program.name}: renaming per input would give two objects "
            f"the name {dup[0]}; rename the variable or parameter called {dup[0]}"
        )


def total_map(
    program: Program,
    inputs: object,
    output: str | None = None,
    gradients: bool = True,
    input_gradients: bool = True,
) -> Total:
    """The total program for B inputs (``inputs``: B, or (B, d) data) with its gradient maps.
    ``gradients=False`` concatenates forward copies only (enough for NNGP kernels)."""
    batch = batch_size(program, inputs)
    bp = backprop_map(program, output, input_gradients) if gradients else None
    base = bp.program if bp is not None else program
    renamer = Renamer(base)
    _check_names(base, batch, renamer)
    decls: list[Input] = []
    for i in range(1, batch + 1):
        decls += [replace(inp, name=per_input(inp.name, i)) for inp in program.inputs]
    body = renamer.copies(base.body, batch)
    outputs = tuple(per_input(o, i) for i in range(1, batch + 1) for o in program.outputs)
    result = program.replace(
        name=f"{program.name}_total", inputs=tuple(decls), body=tuple(body), outputs=outputs
    )
    grads = None
    if bp is not None:
        grads = tuple(bp.grads.renamed(partial(renamer.name, i=i)) for i in range(1, batch + 1))
    return Total(result, program, batch, grads, base)


def total(
    program: Program,
    inputs: object,
    output: str | None = None,
    gradients: bool = True,
    input_gradients: bool = True,
) -> Program:
    """The total program alone (see :func:`total_map`)."""
    return total_map(program, inputs, output, gradients, input_gradients).program


def verify_total(result: Total) -> None:
    """The program verifies and each copy is the base program renamed for its input
    (:func:`verify_copies`: the base verified once, the copies checked by structure), and every
    copy's gradient map fits the program."""
    if result.base is None:
        verify(result.program)
    else:
        verify_copies(result.base, result.program, result.batch)
    for grads in result.grads or ():
        verify_gradients(grads, result.program)


TOTAL: ResultType[Total] = ResultType(Total, verify_total, attrgetter("program"))


@dataclass(frozen=True)
class TotalOptions(PassOptions[Total]):
    """``batch``: B, the number of inputs; ``output``, ``input_gradients``: as for backprop;
    ``gradients=False``: forward copies only (enough for NNGP kernels)."""

    batch: int
    output: str | None = None
    gradients: bool = True
    input_gradients: bool = True


@register_pass("total", TotalOptions, TOTAL, sample=TotalOptions(batch=2))
def run_total(program: Program, options: TotalOptions) -> Total:
    """The total program: one renamed backprop copy per input, parameters shared (02 §2.3)."""
    return total_map(
        program, options.batch, options.output, options.gradients, options.input_gradients
    )
