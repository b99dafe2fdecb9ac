"""The error signal χ and the loss in numpy (04 §4.2), for the finite-width trainer.

``f`` and ``y`` are (m, k) arrays (m points, k outputs); χ is divided by the batch size. The
loss reported per step is the mean over the training points of ½‖f − y‖² (mse) or of
−Σ_j y_j log softmax(f)_j (ce); a ``formula(…)`` signal defines χ only, so it has no loss (NaN).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, assert_never

import numpy as np
import sympy

from compiler.train.signals import ErrorSignal, F, Y


@lru_cache(maxsize=64)
def _entrywise(formula: sympy.Expr) -> Callable[..., Any]:
    return sympy.lambdify((F, Y), formula, modules="numpy")


def _log_softmax(f: np.ndarray) -> np.ndarray:
    shifted = f - f.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def chi(signal: ErrorSignal, f: np.ndarray, y: np.ndarray, batch: int) -> np.ndarray:
    """χ_{ij} for the points of one batch: (m, k)."""
    match signal.kind:
        case "entrywise":
            out = np.broadcast_to(_entrywise(signal.chi_formula)(f, y), f.shape)
        case "softmax":
            out = np.exp(_log_softmax(f)) - y
        case _:
            assert_never(signal.kind)
    return np.asarray(out, dtype=np.float64) / batch


def loss(signal: ErrorSignal, f: np.ndarray, y: np.ndarray) -> float:
    """The mean loss over the given points (NaN for a formula signal, which has none)."""
    match signal.name:
        case "mse":
            return float(0.5 * np.mean(np.sum((f - y) ** 2, axis=1)))
        case "ce":
            return float(np.mean(-np.sum(y * _log_softmax(f), axis=1)))
        case _:  # formula(chi = …) defines χ, not L
            return float("nan")
