"""E′ over copies for OuterNonlin kets by blocked particle averages (spec 01 §1.4, §1.6).

|y⟩ = E′[ψ(|x⟩; |x⟩′¹; …; |x⟩′ʳ; θ̊)] is a function of the own particle's kets; the copies are
iid copies of the whole multi-ket, i.e. *other* particles of the same replica:

* order 1:  y(p) = 1/(P−1) Σ_{q≠p} ψ(X(p); X(q))  — every pair, O(P²), the diagonal q = p (not
  an independent copy) removed;
* order 2:  y(p) = 1/(K(K−1)) Σ_{q≠q′ in pool} ψ(X(p); X(q); X(q′))  over a pool of K ≤ P
  particles (O(P·K²) instead of O(P³)).  The pool is particles 0…K−1, except for those own
  particles themselves, which use K…2K−1 (when P ≥ 2K): a particle is never its own copy (that
  biased every average by about 2/P, measured 1e-3 at P = 1024).  (P particles per replica:
  ``n_own`` in the code, K: ``pool_k``.)

Blocks of the own index keep memory at about ``block`` ψ evaluations per array; several ψ functions
(ψ and its slot-0 derivatives, for forward-mode tangents) share one pass over the blocks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

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


def min_block_bytes(particles: int, order: int, pool: int, columns: int) -> int:
    """Bytes of one ψ temporary for the smallest block (one own particle)."""
    per_own = particles if order == 1 else min(pool, particles) ** 2
    return per_own * columns * 8


def copy_average(
    functions: Sequence[Callable[..., np.ndarray]],
    args: Sequence[Arg],
    order: int,
    pool: int = 256,
    block: int = BLOCK,
    tick: Callable[[float], None] | None = None,
) -> list[np.ndarray]:
    """E′ over copies of each ψ function, for every own particle: a list of (n_own, R, C) arrays.
    ``tick(fraction)`` is called after each block (the O(P²) loop is where long runs spend
    their time, so progress must come from inside it)."""
    if order not in (1, 2):
        raise UsageError(
            f"OuterNonlin of order {order}: the limit evaluator supports orders 1 and 2"
        )
    vec = [a.array for a in args if a.vector]
    n_own = vec[0].shape[0]
    cols = np.broadcast_shapes(
        *(a.shape[1:] for a in vec), *(a.array.shape for a in args if not a.vector)
    )
    pool_k = n_own if order == 1 else min(pool, n_own)
    if pool_k < 2:
        raise UsageError("an OuterNonlin limit needs at least 2 particles per replica")
    per_own = pool_k**order * int(np.prod(cols))
    step = max(1, block // per_own)
    outs = [np.empty((n_own, *cols)) for _ in functions]

    blocks = _blocks(n_own, step, order, pool_k)

    def run(block: tuple[int, int]) -> None:
        a0, a1 = block
        first = _pool_start(a0, n_own, order, pool_k)
        arrays = [_place(a, a0, a1, order, pool_k, first) for a in args]
        for out, fn in zip(outs, functions, strict=True):
            y = np.broadcast_to(fn(*arrays), (a1 - a0, *([pool_k] * order), *cols))
            out[a0:a1] = y.sum(axis=tuple(range(1, order + 1)))

    _run_blocks(run, blocks, tick)
    diag = _diagonal(functions, args, order, pool_k, cols)
    norm = (n_own - 1) if order == 1 else pool_k * (pool_k - 1)
    return [(o - d) / norm for o, d in zip(outs, diag, strict=True)]


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
    for k, block in enumerate(blocks):
        run(block)
        if tick is not None:
            tick((k + 1) / len(blocks))


def _blocks(n_own: int, step: int, order: int, pool_k: int) -> list[tuple[int, int]]:
    """(start, stop) of the own-particle blocks; for order 2 no block straddles the end of the
    first pool (the two sides use different pools)."""
    cuts = set(range(0, n_own, step))
    if order == 2 and pool_k < n_own:
        cuts |= set(range(0, pool_k, step)) | {pool_k}
    starts = sorted(cuts)
    return list(zip(starts, [*starts[1:], n_own], strict=True))


def _pool_start(a0: int, n_own: int, order: int, pool_k: int) -> int:
    """First particle of the copy pool for own particles from a0 on (see module docstring)."""
    return pool_k if order == 2 and a0 < pool_k and n_own >= 2 * pool_k else 0


def _place(a: Arg, a0: int, a1: int, order: int, pool_k: int, first: int = 0) -> np.ndarray:
    if not a.vector:
        return a.array
    x = a.array
    if a.copy is None:
        return x[a0:a1].reshape((a1 - a0, *([1] * order), *x.shape[1:]))
    shape = [1] * (order + 1)
    shape[a.copy] = pool_k
    return x[first : first + pool_k].reshape((*shape, *x.shape[1:]))


def _diagonal(
    functions: Sequence[Callable[..., np.ndarray]],
    args: Sequence[Arg],
    order: int,
    pool_k: int,
    cols: tuple[int, ...],
) -> list[np.ndarray]:
    """The excluded terms: q = p (order 1) or q = q′ (order 2), summed over the rest."""
    n_own = next(a.array.shape[0] for a in args if a.vector)
    if order == 1:
        arrays = [a.array for a in args]
        return [np.broadcast_to(k(*arrays), (n_own, *cols)) for k in functions]
    outs = [np.zeros((n_own, *cols)) for _ in functions]
    step = max(1, BLOCK // (pool_k * int(np.prod(cols))))
    for a0, a1 in _blocks(n_own, step, order, pool_k):
        first = _pool_start(a0, n_own, order, pool_k)
        arrays = []
        for a in args:
            if not a.vector:
                arrays.append(a.array)
            elif a.copy is None:
                arrays.append(a.array[a0:a1, None])
            else:
                arrays.append(a.array[None, first : first + pool_k])
        for out, fn in zip(outs, functions, strict=True):
            out[a0:a1] = np.broadcast_to(fn(*arrays), (a1 - a0, pool_k, *cols)).sum(axis=1)
    return outs
