"""E′ over copies for OuterNonlin kets by averages over other particles (spec 01 §1.4, §1.6).

|y⟩ = E′[ψ(|x⟩; |x⟩′¹; …; |x⟩′ʳ; θ̊)] is a function of the own particle's kets; the copies are
iid copies of the whole multi-ket, i.e. *other* particles of the same replica.  Own particle p
of a replica of P reads the ``span`` particles that follow it cyclically, p+1 … p+span
(span ≤ P − 1, so never p itself: a particle is not its own copy):

* order 1:  y(p) = 1/span Σ_{i=1..span} ψ(X(p); X(p+i));
* order 2:  y(p) = mean over the pairs (q, q′) = (p+i, p+i+s), s = 1…S, i = 1…span−s, of
  ψ(X(p); X(q); X(q′)): an incomplete U-statistic.  Every pair is distinct and has q ≠ q′, so
  each term is an unbiased draw of E″ψ; S (the number of shifts) is the smallest giving about
  ``pool``² pairs per own particle, the cost of the old K-particle pool.

Why not a pool of K particles shared by every pair (all K² pairs of K particles, as before): the
noise of y(p) is then 4σ₁²/K, where σ₁² is the variance of E[ψ | one copy]; a nonlinear
function g of y averages g(y + noise), biased by ½g″·Var (by ∝ sd when y sits at a kink, as
relu(0)).  Pairs spread over all span copies have noise σ²/pairs + O(σ₁²/span): with span ≈ P
it is the replica size, not the pool, that sets the bias, which then falls with M.  The bias
that remains is measured by the caller (:mod:`runtime.limits.montecarlo`) from a second run at
half the span.

Arrays are moved to (R, C, P) so that the copies of a block of own particles are a sliding
window (a view, no gather, contiguous inner axis); blocks of own particles keep memory at about
``block`` ψ evaluations per array, and several ψ functions (ψ and its slot-0 derivatives, for
forward-mode tangents) share one pass over the blocks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from compiler.errors import UsageError

BLOCK = 1 << 18
"""ψ evaluations held at once by one block (2 MiB per float64 temporary; with THREADS blocks in
flight this was the fastest size measured by bench/bench_limits.py)."""

THREADS = min(4, os.cpu_count() or 1)
"""Blocks evaluated concurrently (numpy releases the GIL inside ufuncs)."""


@dataclass(frozen=True)
class Arg:
    """One formula argument: its array and where it is read (None = own particle, else the copy
    number 1…r); scalars have ``copy`` None and shape (R, C)."""

    array: np.ndarray
    copy: int | None
    vector: bool


def shifts(order: int, span: int, pool: float) -> int:
    """S: the pair offsets q′ − q used by order 2 (about pool² pairs per own particle); 1 for
    order 1 (the window itself)."""
    if order == 1:
        return 1
    return int(min(max(1, -(-(pool * pool) // span)), span - 1))


def pairs_per_own(order: int, span: int, pool: float) -> int:
    """ψ evaluations per own particle: span (order 1), Σ_{s≤S} (span − s) (order 2)."""
    if order == 1:
        return span
    s = shifts(order, span, pool)
    return s * span - s * (s + 1) // 2


def min_block_bytes(particles: int, order: int, pool: int, columns: int) -> int:
    """Bytes of one ψ temporary for the smallest block (one own particle, one shift)."""
    return max(1, particles - 1) * columns * 8


def copy_average(
    functions: Sequence[Callable[..., np.ndarray]],
    args: Sequence[Arg],
    order: int,
    pool: float = 96,
    span: int | None = None,
    block: int = BLOCK,
    tick: Callable[[float], None] | None = None,
) -> list[np.ndarray]:
    """E′ over copies of each ψ function, for every own particle: a list of (n_own, R, C) arrays.
    ``span``: copies per own particle (default all others, P − 1).  ``tick(fraction)`` is called
    after each block (the pair loop is where long runs spend their time)."""
    return copy_average_joint(
        lambda *a: [fn(*a) for fn in functions], len(functions), args, order, pool, span, block,
        tick,
    )


def copy_average_joint(
    joint: Callable[..., Sequence[np.ndarray]],
    outputs: int,
    args: Sequence[Arg],
    order: int,
    pool: float = 96,
    span: int | None = None,
    block: int = BLOCK,
    tick: Callable[[float], None] | None = None,
) -> list[np.ndarray]:
    """:func:`copy_average` of the ``outputs`` ψ values that one call of ``joint`` returns on a
    pair block: several ψ share the pass (and, inside ``joint``, their common subexpressions —
    :mod:`runtime.limits.fusion`)."""
    n_own = next(a.array.shape[0] for a in args if a.vector)
    span = n_own - 1 if span is None else min(span, n_own - 1)
    check_order(order, span)
    cols = columns(args)
    moved = [_particles_last(a, span) for a in args]
    n_shift = shifts(order, span, pool)
    step = max(1, block // (span * int(np.prod(cols))))
    outs = [np.zeros((*cols, n_own)) for _ in range(outputs)]
    blocks = [(a0, min(a0 + step, n_own)) for a0 in range(0, n_own, step)]

    def run(blk: tuple[int, int]) -> None:
        a0, a1 = blk
        for s in range(1, n_shift + 1):
            arrays = [
                _place(a, x, a0, a1, order, span, s) for a, x in zip(args, moved, strict=True)
            ]
            width = span if order == 1 else span - s
            for out, value in zip(outs, joint(*arrays), strict=True):
                y = np.broadcast_to(value, (*cols, a1 - a0, width))
                out[..., a0:a1] += y.sum(axis=-1)

    _run_blocks(run, blocks, tick)
    norm = pairs_per_own(order, span, pool)
    return [np.ascontiguousarray(np.moveaxis(o / norm, -1, 0)) for o in outs]


def check_order(order: int, span: int) -> None:
    """Refuse orders other than 1 and 2, and replicas too small for ``order`` distinct copies."""
    if order not in (1, 2):
        raise UsageError(
            f"OuterNonlin of order {order}: the limit evaluator supports orders 1 and 2"
        )
    if span < order:
        raise UsageError(
            f"an OuterNonlin limit of order {order} needs at least {order + 1} particles per "
            "replica"
        )


def columns(args: Sequence[Arg]) -> tuple[int, ...]:
    """The (R, C) shape that every argument broadcasts to (vectors without their particle axis)."""
    vec = [a.array.shape[1:] for a in args if a.vector]
    return tuple(np.broadcast_shapes(*vec, *(a.array.shape for a in args if not a.vector)))


def _particles_last(a: Arg, span: int) -> np.ndarray:
    """A vector (P, R, C) as (R, C, P + span): particles last, the first span repeated at the
    end so that the cyclic window p+1 … p+span is a plain slice; scalars (R, C) unchanged."""
    if not a.vector:
        return a.array
    x = np.moveaxis(a.array, 0, -1)
    if a.copy is None:
        return x
    return np.ascontiguousarray(np.concatenate([x, x[..., :span]], axis=-1))


def _place(
    a: Arg, x: np.ndarray, a0: int, a1: int, order: int, span: int, s: int
) -> np.ndarray:
    """The argument for own particles a0…a1 and shift s, shaped (R, C, own, window)."""
    if not a.vector:
        return x[..., None, None]
    if a.copy is None:
        return x[..., a0:a1, None]
    # order 1: q = p+1 … p+span; order 2: q = p+i, q′ = p+i+s for i = 1 … span−s
    width = span if order == 1 else span - s
    first = 1 if a.copy == 1 else 1 + s
    return sliding_window_view(x, width, axis=-1)[..., a0 + first : a1 + first, :]


def _run_blocks(
    run: Callable[[tuple[int, int]], None],
    blocks: list[tuple[int, int]],
    tick: Callable[[float], None] | None,
) -> None:
    """Run every block, in THREADS threads (numpy ufuncs release the GIL), ticking after each."""
    if THREADS > 1 and len(blocks) > 1:
        with ThreadPoolExecutor(THREADS) as pool:
            for k, _ in enumerate(pool.map(run, blocks)):
                if tick is not None:
                    tick((k + 1) / len(blocks))
        return
    for k, blk in enumerate(blocks):
        run(blk)
        if tick is not None:
            tick((k + 1) / len(blocks))
