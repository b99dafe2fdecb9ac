"""Numeric constants a program may hold: those a float64 executor can represent (spec 06
"Numbers"), checked before sympy computes them.

sympy evaluates rational arithmetic exactly, so ``10^10^10`` would build an integer of ten billion
digits and ``1e999`` an exact 10^999 that the finite-width executor later overflows. Both are
refused at their place in the source: a literal must be a finite nonzero-or-zero float (no
overflow to ±inf, no underflow of a nonzero literal to 0), and a power of two numbers is estimated
from the operands' bit lengths before it is computed.
"""

from __future__ import annotations

import math
import sys

import sympy

FLOAT_MAX = sys.float_info.max
_LOG2_MAX = math.log2(FLOAT_MAX)  # ≈ 1024: magnitudes beyond 2^±_LOG2_MAX are not floats
_BEYOND = f"beyond the float range (±{FLOAT_MAX:.4g})"
_EXACT_BITS = 1 << 16  # exact rational powers costlier than this are never needed


def literal_problem(text: str) -> str | None:
    """Why the numeric literal ``text`` cannot be a program constant, or None."""
    value = float(text)  # never slow: the float parser saturates at inf / 0
    if math.isinf(value):
        return f"number {text} is too large: beyond {FLOAT_MAX:.4g}, the largest float"
    if value == 0 and any(c in "123456789" for c in text.split("e")[0].split("E")[0]):
        return f"number {text} is too small: it underflows to 0 as a float"
    return None


def power_problem(base: sympy.Expr, exp: sympy.Expr, shown: str = "") -> str | None:
    """Why ``base ^ exp`` of two numbers is not a representable constant, or None. sympy
    computes a rational power exactly (and simplifies ``sqrt(2)^k`` to ``2^(k/2)``), so its
    size is estimated first; a power of a symbol stays symbolic and is harmless. ``shown`` is
    the power as written (the message names it)."""
    if not (base.is_number and exp.is_Rational) or base.is_zero:
        return None
    size = _log2_abs(base)
    if size is None or size == 0:
        return None
    magnitude = float(exp) * size  # log2 of |result|
    cost = abs(float(exp)) * (_bits(base.p) + _bits(base.q)) if base.is_Rational else 0
    if abs(magnitude) > _LOG2_MAX or cost > _EXACT_BITS:
        return f"{shown or f'({base})^({exp})'} is about 2^{magnitude:.4g}: {_BEYOND}"
    return None


def constant_problem(value: sympy.Expr) -> str | None:
    """Why a computed rational constant cannot be a program constant (too large), or None."""
    if value.is_Rational and value != 0 and abs(_log2(abs(value))) > _LOG2_MAX:
        return f"constant {_short(value)} is {_BEYOND}"
    return None


def _log2_abs(number: sympy.Expr) -> float | None:
    """log2 |number| (exact for rationals, whose size may exceed a float), None if unknown."""
    if number.is_Rational:
        return _log2(abs(number))
    try:
        value = abs(complex(number))
    except (TypeError, ValueError, OverflowError):
        return None
    return math.log2(value) if 0 < value < math.inf else None


def _bits(k: sympy.Integer | int) -> int:
    return int(abs(int(k))).bit_length()


def _log2(r: sympy.Rational) -> float:
    """log2 of a positive rational without converting it to a float (it may not fit one)."""
    p, q = int(r.p), int(r.q)
    return _log2_int(p) - _log2_int(q)


def _log2_int(k: int) -> float:
    shift = max(k.bit_length() - 53, 0)
    return math.log2(k >> shift) + shift


def _short(value: sympy.Rational) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"
