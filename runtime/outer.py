"""E′ over copies for OuterNonlin kets by blocked particle averages (spec 01 §1.4, §1.6).

|y⟩ = E′[ψ(|x⟩; |x⟩′¹; …; |x⟩′ʳ; θ̊)] is a function of the own particle's kets; the copies are
iid copies of the whole multi-ket, i.e. *other* particles of the same replica:

* order 1:  y(p) = 1/(P−1) Σ_{q≠p} ψ(X(p); X(q))  — every pair, O(P²), the diagonal q = p (not
  an independent copy) removed;
* order 2:  y(p) = 1/(K(K−1)) Σ_{q≠q′ in pool} ψ(X(p); X(q); X(q′))  over a pool of K ≤ P
  particles (O(P·K²) instead of O(P³); the pairs q = p are a fraction K/P of the pool terms and
  bias y by O(1/P) only).  (P particles per replica: ``n_own`` in the code, K: ``pool_k``.)

Blocks of the own index keep memory at about ``block`` ψ evaluations per array; several kernels
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
    kernels: Sequence[Callable[..., np.ndarray]],
    args: Sequence[Arg],
    order: int,
    pool: int = 256,
    block: int = BLOCK,
    tick: Callable[[float], None] | None = None,
) -> list[np.ndarray]:
    """E′ over copies of each kernel, for every own particle: a list of (n_own, R, C) arrays.
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
    outs = [np.empty((n_own, *cols)) for _ in kernels]

    def run(a0: int) -> None:
        a1 = min(n_own, a0 + step)
        arrays = [_place(a, a0, a1, order, pool_k) for a in args]
        for out, kern in zip(outs, kernels, strict=True):
            y = np.broadcast_to(kern(*arrays), (a1 - a0, *([pool_k] * order), *cols))
            out[a0:a1] = y.sum(axis=tuple(range(1, order + 1)))

    starts = range(0, n_own, step)
    if THREADS > 1 and len(starts) > 1:  # numpy ufuncs release the GIL: blocks run in parallel
        with ThreadPoolExecutor(THREADS) as pool:
            for k, _ in enumerate(pool.map(run, starts)):
                if tick is not None:
                    tick((k + 1) / len(starts))
    else:
        for k, a0 in enumerate(starts):
            run(a0)
            if tick is not None:
                tick((k + 1) / len(starts))
    diag = _diagonal(kernels, args, order, pool_k, cols)
    norm = (n_own - 1) if order == 1 else pool_k * (pool_k - 1)
    return [(o - d) / norm for o, d in zip(outs, diag, strict=True)]


def _place(a: Arg, a0: int, a1: int, order: int, pool_k: int) -> np.ndarray:
    if not a.vector:
        return a.array
    x = a.array
    if a.copy is None:
        return x[a0:a1].reshape((a1 - a0, *([1] * order), *x.shape[1:]))
    shape = [1] * (order + 1)
    shape[a.copy] = pool_k
    return x[:pool_k].reshape((*shape, *x.shape[1:]))


def _diagonal(
    kernels: Sequence[Callable[..., np.ndarray]],
    args: Sequence[Arg],
    order: int,
    pool_k: int,
    cols: tuple[int, ...],
) -> list[np.ndarray]:
    """The excluded terms: q = p (order 1) or q = q′ (order 2), summed over the rest."""
    n_own = next(a.array.shape[0] for a in args if a.vector)
    if order == 1:
        arrays = [a.array for a in args]
        return [np.broadcast_to(k(*arrays), (n_own, *cols)) for k in kernels]
    outs = [np.zeros((n_own, *cols)) for _ in kernels]
    step = max(1, BLOCK // (pool_k * int(np.prod(cols))))
    for a0 in range(0, n_own, step):
        a1 = min(n_own, a0 + step)
        arrays = []
        for a in args:
            if not a.vector:
                arrays.append(a.array)
            elif a.copy is None:
                arrays.append(a.array[a0:a1, None])
            else:
                arrays.append(a.array[None, :pool_k])
        for out, kern in zip(outs, kernels, strict=True):
            out[a0:a1] = np.broadcast_to(kern(*arrays), (a1 - a0, pool_k, *cols)).sum(axis=1)
    return outs
