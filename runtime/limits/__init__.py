"""Infinite-width limits (spec 01 §1.4–1.6): the limit engines behind one interface.

``evaluate(program, inputs, method="auto"|"exact"|"mc", options)`` gives a :class:`LimitResult`
(values, standard errors — real zeros only where exact —, how each scalar was obtained, notes).
Engines (:mod:`runtime.limits.engines`): exact quadrature (:mod:`.quadrature`, :mod:`.quadgrid`)
and Monte Carlo (:mod:`.montecarlo`, :mod:`.hats`, :mod:`.outer`, :mod:`.ketfuncs`), sharing the
per-ket rules of :mod:`.ketrules`; closed forms as oracle (:mod:`.closed_forms`); finite width
against the limit (:mod:`.compare`).
"""

from runtime.limits.compare import SeedAverage, WidthComparison, compare_widths
from runtime.limits.engines import ENGINES, LimitEngine, evaluate, methods, register
from runtime.limits.ketrules import condition_scalars
from runtime.limits.quadrature import NotExactError, evaluate_exact
from runtime.limits.result import (
    LimitOptions,
    LimitResult,
    NotApplicableError,
    Progress,
    ScalarMethod,
)

__all__ = [
    "ENGINES",
    "LimitEngine",
    "LimitOptions",
    "LimitResult",
    "NotApplicableError",
    "NotExactError",
    "Progress",
    "ScalarMethod",
    "SeedAverage",
    "WidthComparison",
    "compare_widths",
    "condition_scalars",
    "evaluate",
    "evaluate_exact",
    "methods",
    "register",
]
