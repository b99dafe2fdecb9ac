"""Code generation: sympy formulas → vectorised numpy functions (shared by the finite-width
executor and the limit engines).

Each Nonlin/OuterNonlin formula becomes a Python function of its argument arrays (in the order
of :func:`compiler.ir.formula_args`) and the width ``n`` (always the last argument), generated
once per instruction by ``sympy.lambdify``. The language's own functions get numerically careful
implementations: relu' = step with step(0) = 0 (spec 02 §2.2), an overflow-free sigmoid and
softplus, and scipy's erf (numpy has none; scipy is a dependency for this reason).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import scipy.special
import sympy

from compiler.ir import Nonlin, OuterNonlin, formula_args
from compiler.symbols import WIDTH

NumpyFunction = Callable[..., np.ndarray]
"""f(*arrays, n): a formula compiled to numpy (not a kernel: that word means NNGP/NTK)."""


def _step(x: np.ndarray) -> np.ndarray:
    return np.greater(x, 0).astype(np.float64)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


NUMPY_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "relu": _relu,
    "step": _step,
    "sigmoid": scipy.special.expit,
    "softplus": _softplus,
    "erf": scipy.special.erf,
    "sign": np.sign,
}


@lru_cache(maxsize=4096)
def compile_formula(formula: sympy.Expr, args: tuple[sympy.Symbol, ...]) -> NumpyFunction:
    """A numpy function f(*arrays, n) computing ``formula`` (arrays broadcast entrywise)."""
    return sympy.lambdify(
        (*args, WIDTH), formula, modules=[NUMPY_FUNCTIONS, "numpy"], cse=True, docstring_limit=0
    )


def compile_instruction(ins: Nonlin | OuterNonlin) -> NumpyFunction:
    """An instruction's formula compiled, arguments as listed by ``formula_args``."""
    return compile_formula(ins.formula, tuple(s for s, _, _ in formula_args(ins)))
