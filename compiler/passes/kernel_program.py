"""Kernel scalars as programs: the NNGP and NTK entries of an architecture (spec 05 §5.1–5.2).

``kernel_program(program, batch)`` appends to the total program of the backprop program
(02 §2.3: one renamed copy per input, parameters shared) one Avg per kernel entry, so that
the generic ket lowering and evaluator give their limits with no special-case code:

    nngp[i][j] = avg(o(ξ^i) ⊙ o(ξ^j))                          → E[|o(ξ^i)⟩|o(ξ^j)⟩]
    ntk[i][j]  = Σ_v avg(dv(ξ^i) ⊙ dv(ξ^j))                     vector parameters v
               + Σ_W Σ_{uses u, u′} avg(a_u(ξ^i) a_u′(ξ^j))·avg(b_u(ξ^i) b_u′(ξ^j))

where (a, b) = (dy, x) for a use y = W x and (x, dy) for y = Wᵀ x (the (α, β) entry of W's scaled
gradient, 05 §5.2 G_W).  In NTP (f = n^{-1/2} Σ_α o_α) the limit of this scalar is the neural
tangent kernel Θ(ξ^i, ξ^j) of 05 §5.1 (the product of two averages is the limit of the
(1/n²)-normalised Frobenius inner product of the two rank-one gradients).  Scalar parameters are
left out (05 §5.2 assumes none).  Indices i, j are 0-based; entries i ≤ j.

Registered as the pass ``kernel-program`` (options :class:`KernelOptions`); its result is checked
by :func:`verify_kernels`: the program verifies and every entry names one of its scalars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from compiler.errors import VerifyError
from compiler.ir import Avg, Instruction, Nonlin, Program
from compiler.passes.registry import PassOptions, ResultType, register_pass
from compiler.passes.total import total_map
from compiler.rename import split_name
from compiler.symbols import sym
from compiler.verify import verify


@dataclass(frozen=True)
class KernelProgram:
    program: Program
    nngp: dict[tuple[int, int], str]
    ntk: dict[tuple[int, int], str]
    bind: Callable[[Any], dict[str, np.ndarray]]  # Total.bind: (B, d) data → input values
    groups: dict[str, dict[tuple[int, int], tuple[tuple[str, ...], ...]]] = field(
        default_factory=dict
    )
    """Per parameter group (``U`` for ``param U : vector[10]``, as the abcd tables name it):
    entry (i, j) of its NTK block is Σ over terms of the product of the term's Avg scalars."""


class _Emitter:
    def __init__(self, taken: set[str]) -> None:
        self.taken = taken
        self.body: list[Instruction] = []
        self.k = 0

    def fresh(self) -> str:
        while f"_k{self.k}" in self.taken:
            self.k += 1
        self.taken.add(name := f"_k{self.k}")
        return name

    def avg_product(self, a: str, b: str) -> str:
        prod, out = self.fresh(), self.fresh()
        self.body += [Nonlin(prod, sym(a) * sym(b)), Avg(out, prod)]
        return out

    def scalar(self, name: str, formula: object) -> str:
        vec = self.fresh()
        self.body += [Nonlin(vec, formula), Avg(name, vec)]
        return name


def kernel_program(program: Program, batch: int, output: str | None = None) -> KernelProgram:
    """The total program of ``program`` for ``batch`` inputs plus nngp/ntk scalars."""
    tot = total_map(program, batch, output, gradients=True, input_gradients=False)
    assert tot.grads is not None
    em = _Emitter(set(tot.program.kinds))
    nngp, ntk = {}, {}
    groups: dict[str, dict[tuple[int, int], tuple[tuple[str, ...], ...]]] = {}
    for i in range(batch):
        for j in range(i, batch):
            gi, gj = tot.grads[i], tot.grads[j]
            nngp[(i, j)] = em.scalar(f"nngp[{i}][{j}]", sym(em.avg_product(gi.output, gj.output)))
            terms: list[tuple[str, tuple[str, ...]]] = []
            for v in program.param_names("vector"):
                if gi.get(v) and gj.get(v):
                    terms.append((v, (em.avg_product(gi[v], gj[v]),)))
            for w in program.param_names("matrix"):
                for ui in gi.matrix_uses(w):
                    for uj in gj.matrix_uses(w):
                        a = em.avg_product(ui.outer[0], uj.outer[0])
                        b = em.avg_product(ui.outer[1], uj.outer[1])
                        terms.append((w, (a, b)))
            for p, t in terms:
                block = groups.setdefault(split_name(p)[0], {})
                block[(i, j)] = (*block.get((i, j), ()), t)
            total = sum(_product(t) for _, t in terms)
            ntk[(i, j)] = em.scalar(f"ntk[{i}][{j}]", total)
    prog = tot.program.replace(name=f"{program.name}_kernels", body=(*tot.program.body, *em.body))
    return KernelProgram(prog, nngp, ntk, tot.bind, groups)


def _product(names: tuple[str, ...]) -> Any:
    out: Any = 1
    for n in names:
        out = out * sym(n)
    return out


def verify_kernels(result: KernelProgram) -> None:
    """The program verifies and every NNGP/NTK entry is one of its scalars."""
    kinds = verify(result.program).kinds
    for (i, j), name in (*result.nngp.items(), *result.ntk.items()):
        if kinds.get(name) != "scalar":
            raise VerifyError(f"kernel entry ({i}, {j}) of {result.program.name}: {name} is not "
                              "a scalar of the program")


KERNELS: ResultType[KernelProgram] = ResultType(
    KernelProgram, verify_kernels, attrgetter("program")
)


@dataclass(frozen=True)
class KernelOptions(PassOptions[KernelProgram]):
    """``batch``: the number of inputs B; ``output``: the output o (None: the only one)."""

    batch: int
    output: str | None = None


@register_pass("kernel-program", KernelOptions, KERNELS, sample=KernelOptions(batch=2))
def run_kernel_program(program: Program, options: KernelOptions) -> KernelProgram:
    """The total program for ``batch`` inputs plus one scalar per NNGP and NTK entry (05 §5.1)."""
    return kernel_program(program, options.batch, options.output)
