"""Random initial objects of a program at width n (spec 01 §1.3, Setups 2.6.3 and 2.6.4).

Matrices have iid entries of variance 1/n: Gaussian N(0, 1/n), or non-Gaussian (Rademacher ±1/√n,
uniform on [−√3, √3]/√n). Vectors are iid N(0, 1); scalars are N(0, 1) unless declared with a
deterministic initial value. Each entry name draws from its own stream seeded by (seed, name), so
every program derived from an architecture (backprop, total, training) sees the same parameters
for the same seed, and tests can rebuild the draws independently.
"""

from __future__ import annotations

import zlib

import numpy as np

from compiler.errors import UsageError
from compiler.ir import Program
from runtime import memory

DISTRIBUTIONS = ("gaussian", "rademacher", "uniform")


def stream(seed: int, name: str) -> np.random.Generator:
    """The random stream of the entry ``name`` for ``seed``."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def draw_matrix(rng: np.random.Generator, n: int, dist: str) -> np.ndarray:
    match dist:
        case "gaussian":
            m = rng.standard_normal((n, n))
        case "rademacher":
            m = rng.integers(0, 2, size=(n, n)).astype(np.float64) * 2.0 - 1.0
        case "uniform":
            m = rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), size=(n, n))
        case _:
            raise UsageError(f"unknown distribution {dist!r}; choose one of {DISTRIBUTIONS}")
    m *= 1.0 / np.sqrt(n)
    return m


def check_memory(matrices: int, width: int) -> None:
    """Refuse, before allocating, a run whose n×n matrices will not fit in memory."""
    need = matrices * width * width * 8
    what = f"width {width} needs {matrices} n×n float64 matrices"
    memory.check_memory(need, what, "choose a smaller width")


def draw_parameters(
    program: Program, width: int, seed: int, dist: str = "gaussian"
) -> dict[str, np.ndarray]:
    """Every parameter entry: matrices (n, n), vectors (n,), scalars 0-d arrays."""
    if dist not in DISTRIBUTIONS:
        raise UsageError(f"unknown distribution {dist!r}; choose one of {', '.join(DISTRIBUTIONS)}")
    check_memory(len(program.param_names("matrix")), width)
    out: dict[str, np.ndarray] = {}
    for p in program.params:
        for name in p.names:
            rng = stream(seed, name)
            if p.kind == "matrix":
                out[name] = draw_matrix(rng, width, dist)
            elif p.kind == "vector":
                out[name] = rng.standard_normal(width)
            elif p.init is not None:
                out[name] = np.array(float(p.init))
            else:
                out[name] = np.array(rng.standard_normal())
    return out
