"""Exact NNGP and NTK blocks of an architecture between B inputs (spec 05 §5.1–5.2, 01 §1.6).

``exact_kernel_blocks(program, inputs, output)`` gives ``{"nngp": K, group: Θ_group, ...}``, each a
symmetric (B, B) float64 array: K[i, j] = E[o(ξ^i) o(ξ^j)] and, per parameter group P (named as
the abcd tables name it: ``U`` for ``param U : vector[10]``), Θ_P[i, j] = the part of the neural
tangent kernel that P's gradient contributes (05 §5.2: Σ_v avg(dv dv′) for vector parameters,
Σ_{uses} avg(a a′)·avg(b b′) for a matrix).  The NTK is the sum of the group blocks
(:func:`ntk_of`).

Two paths give the same numbers:

- the general path: the kernel program (:mod:`compiler.passes.kernel_program`: the total
  program of B copies plus one Avg per factor of every entry), evaluated by the exact limit engine
  (quadrature); any architecture the exact engine takes (attention, layer norm, rnn), but each of
  the B² entries is its own integral;
- the batched path (:mod:`runtime.limits.batched`), for architectures whose parameters are not
  shared across positions (an MLP chain): one kernel recursion per layer on whole (B, B) matrices
  (closed forms 07 §7.1 for relu and erf, one cached Gauss–Hermite grid per activation otherwise).

``exact_kernel_blocks`` takes the batched path where it applies and the general one otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from compiler.errors import UsageError
from compiler.ir import Program
from runtime.limits.result import LimitOptions, Progress


def ntk_of(blocks: Mapping[str, np.ndarray]) -> np.ndarray:
    """Θ = Σ over parameter groups of their blocks (05 §5.2: the NTK is a sum over parameters)."""
    groups = [b for k, b in blocks.items() if k != "nngp"]
    if not groups:
        return np.zeros_like(blocks["nngp"])
    return np.asarray(sum(groups), dtype=np.float64)


@dataclass(frozen=True)
class KernelLimits:
    """The kernels of one evaluation: ``blocks`` as :func:`exact_kernel_blocks` returns them,
    the standard errors of the NNGP and NTK entries (zeros where exact, NaN where unknown),
    the engine (``"exact"`` or ``"mc"``), how (``path``: ``"batched"`` or ``"kernel program"``),
    and the engines' notes."""

    blocks: dict[str, np.ndarray]
    nngp_stderr: np.ndarray
    ntk_stderr: np.ndarray
    engine: str
    description: str
    path: str
    notes: tuple[str, ...] = ()

    @property
    def nngp(self) -> np.ndarray:
        return self.blocks["nngp"]

    @property
    def ntk(self) -> np.ndarray:
        return ntk_of(self.blocks)

    @property
    def groups(self) -> dict[str, np.ndarray]:
        """The NTK block of every parameter group."""
        return {k: v for k, v in self.blocks.items() if k != "nngp"}


def exact_kernel_blocks(
    program: Program, inputs: object, output: str | None = None, *,
    general: bool = False, progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """``{"nngp": (B, B), group: (B, B) NTK block, ...}`` of ``program`` between the rows of
    ``inputs`` ((B, d) data), of the output ``output`` (None: the only one).  ``general``: force
    the general path (the kernel program through the exact engine)."""
    method = "exact-general" if general else "exact"
    return kernel_limits(program, inputs, output, method, progress=progress).blocks


def kernel_limits(
    program: Program, inputs: object, output: str | None = None, method: str = "exact",
    options: LimitOptions | None = None, *, progress: Progress | None = None,
    scalars: Mapping[str, float] | None = None,
) -> KernelLimits:
    """The kernels by ``method``: ``"exact"`` (batched where it applies, else the kernel program
    on the exact engine), ``"exact-general"`` (always the kernel program), ``"mc"`` (the kernel
    program by Monte Carlo) or ``"auto"`` (batched where it applies, else the engines'
    ``"auto"`` choice on the kernel program).  ``scalars``: values of scalar parameters without
    init (the batched path takes only programs without them)."""
    if method in ("exact", "auto"):
        from runtime.limits.batched import batched_kernel_blocks

        fast = batched_kernel_blocks(program, inputs, output)
        if fast is not None:
            zero = np.zeros_like(fast["nngp"])
            how = "exact (batched kernel recursion: closed forms and quadrature)"
            return KernelLimits(fast, zero, zero, "exact", how, "batched")
    engine = {"exact-general": "exact"}.get(method, method)
    return general_kernel_limits(program, inputs, output, engine, options, progress=progress,
                                 scalars=scalars)


def general_kernel_blocks(
    program: Program, inputs: object, output: str | None = None, *,
    method: str = "exact", options: LimitOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """The blocks by the kernel program and the limit engine ``method`` (exact: quadrature)."""
    return general_kernel_limits(program, inputs, output, method, options,
                                 progress=progress).blocks


def general_kernel_limits(
    program: Program, inputs: object, output: str | None, method: str,
    options: LimitOptions | None, *, progress: Progress | None = None,
    scalars: Mapping[str, float] | None = None,
) -> KernelLimits:
    """The kernel program (one Avg per factor of every entry) through the engine ``method``."""
    from compiler.kets.lowering import lower
    from compiler.passes.kernel_program import kernel_program
    from compiler.passes.total import batch_size
    from runtime.limits.engines import evaluate

    batch = batch_size(program, inputs)
    _check_size(program, batch, output, options)
    kp = kernel_program(program, batch, output)
    if "nngp" in kp.groups:
        raise UsageError("a parameter group named nngp: its NTK block would shadow the NNGP")
    wanted = {*kp.nngp.values(), *kp.ntk.values()}
    for block in kp.groups.values():
        wanted |= {n for terms in block.values() for t in terms for n in t}
    res = evaluate(lower(kp.program), kp.bind(inputs), method, options, progress=progress,
                   scalars_wanted=wanted, scalars=scalars)
    value = {n: float(res.scalars[n][0]) for n in wanted}
    out = {"nngp": _symmetric(batch, {ij: value[n] for ij, n in kp.nngp.items()})}
    for group, block in kp.groups.items():
        entries = {ij: sum(float(np.prod([value[n] for n in t])) for t in terms)
                   for ij, terms in block.items()}
        out[group] = _symmetric(batch, entries)
    se = {n: float(res.stderr[n][0]) for n in (*kp.nngp.values(), *kp.ntk.values())}
    return KernelLimits(
        out,
        _symmetric(batch, {ij: se[n] for ij, n in kp.nngp.items()}),
        _symmetric(batch, {ij: se[n] for ij, n in kp.ntk.items()}),
        res.method, res.description, "kernel program", tuple(res.notes),
    )


def _check_size(
    program: Program, batch: int, output: str | None, options: LimitOptions | None
) -> None:
    """Refuse, before building it, a kernel program (B² entries) larger than the memory budget
    (``--memory-limit``; default half of physical memory)."""
    from runtime.limits.exactcost import kernel_program_size, size_text
    from runtime.limits.mccost import budget

    count, need = kernel_program_size(program, batch, output)
    have = budget(options or LimitOptions())
    if need > have:
        raise UsageError(
            f"the kernel program of {program.name} for {batch} inputs has {count} instructions "
            f"and needs about {size_text(need)} to build, more than the memory budget of "
            f"{size_text(have)}; use fewer inputs or a larger --memory-limit")


def _symmetric(batch: int, entries: Mapping[tuple[int, int], float]) -> np.ndarray:
    """The (B, B) matrix with entries (i, j), i ≤ j, given (0 where absent) and mirrored."""
    m = np.zeros((batch, batch))
    for (i, j), v in entries.items():
        m[i, j] = m[j, i] = v
    return m
