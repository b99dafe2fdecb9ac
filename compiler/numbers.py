"""Exact numbers from decimal text: what a user typed prints as typed (9/10, not a binary fraction).

A number a user writes as ``0.9`` means nine tenths, not the binary double nearest to it: every
numeric value that reaches a formula (option strings, parametrization tables, printed programs)
is the sympy Rational of its decimal text, so that programs print ``9/10`` and never
``8106479329266893/9007199254740992``. A float that arrives from elsewhere (a TOML value, a
sympy Float) is read back through its shortest round-tripping decimal (``repr``), which is the
text the user typed whenever the user typed a float.
"""

from __future__ import annotations

import math
import re

import sympy
from mpmath import libmp

DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
MAX_EXPONENT = 300  # a decimal exponent beyond any double: 1e999 is a typo, not a number


def decimal_rational(text: str) -> sympy.Rational:
    """The exact value of a decimal literal (``0.9`` → 9/10, ``1e-8`` → 1/10⁸).

    Raises ValueError for text that is not a finite decimal or whose exponent is beyond
    ±:data:`MAX_EXPONENT` (such a number would take the exact arithmetic forever)."""
    text = text.strip()
    if not DECIMAL.fullmatch(text):
        raise ValueError(f"not a decimal number: {text!r}")
    mantissa, _, exponent = text.lower().partition("e")
    digits = mantissa.lstrip("+-").replace(".", "").lstrip("0")
    if exponent and digits and abs(int(exponent) + len(digits)) > MAX_EXPONENT:
        raise ValueError(f"{text!r} is out of range (|exponent| > {MAX_EXPONENT})")
    return rational(text)


def float_rational(x: float | sympy.Float) -> sympy.Rational:
    """The rational of the shortest decimal that reads back as ``x`` (0.9 → 9/10)."""
    if isinstance(x, sympy.Float):
        if x._prec > 53:  # more digits than a double: the decimal at the Float's own precision
            return rational(libmp.to_str(x._mpf_, libmp.prec_to_dps(x._prec)))
        x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {x!r}")
    return rational(repr(float(x)))


def rational(value: str | int | sympy.Expr) -> sympy.Rational:
    """``sympy.Rational(value)``, refusing what is not a finite rational (nan, zoo, √2)."""
    r = sympy.Rational(value) if isinstance(value, str | int) else value
    if not isinstance(r, sympy.Rational):
        raise ValueError(f"not a finite rational number: {value}")
    return r
