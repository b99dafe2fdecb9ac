"""BLAS thread limits for many small products (the μ-limit engine's particle algebra).

Products of (M, r) by (r, B) arrays with r, B ~ 10–200 are too small to gain from threads, and on
a shared machine the thread pool's spinning and hand-offs cost more than the arithmetic (last
session: mlp2 Adam B = 16, T = 10, M = 4096 took 9.9 s with the default pool and 1.6 s with one
thread). :func:`blas_threads` sets numpy's bundled OpenBLAS pool for a block and restores it; where
that library is not found it does nothing (the result is the same, only the speed differs).
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np


@lru_cache(maxsize=1)
def _openblas() -> tuple[Any, Any] | None:
    """(set, get) of the OpenBLAS bundled with numpy, or None."""
    root = os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs")
    for path in sorted(glob.glob(os.path.join(root, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("64_", ""):
            for prefix in ("scipy_openblas", "openblas"):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    return setter, getter
    return None


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` BLAS threads (restored afterwards)."""
    fns = _openblas()
    if fns is None:
        yield
        return
    setter, getter = fns
    before = int(getter())
    setter(ctypes.c_int(n))
    try:
        yield
    finally:
        setter(ctypes.c_int(before))
