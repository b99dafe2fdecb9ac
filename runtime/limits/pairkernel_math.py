"""Scalar functions for the compiled pair kernel that the loop vectorizer can inline (numba).

``math.exp`` and ``math.tanh`` are calls into libm, which stop LLVM from vectorizing the pair loop
of :mod:`runtime.limits.pairkernel_numba` (and cost ~20 ns each).  These are branch-free
arithmetic (selects, no calls), compiled with ``error_model='numpy'`` (no ZeroDivisionError
branch) and ``fastmath=False`` (IEEE operations in the written order), so a loop of them runs
4 doubles at a time on AVX2:

* ``vexp``: Cephes' exp — x = k·ln2 + r (ln2 split in two parts, so r is exact), e^r by the
  (3, 3) Padé form 1 + 2r·P(r²)/(Q(r²) − r·P(r²)) on |r| ≤ ln2/2 (Cephes: 2.2e-16 peak relative
  error), times 2^k built from its bits in two factors (so subnormal results round once).
  Overflow (x > 709.78) gives inf, underflow (x < −745.14) 0, NaN stays NaN.
* ``vtanh``: Cephes' tanh — x + x³·P(x²)/Q(x²) for |x| < 0.625, else sign(x)·(1 − 2/(e^{2|x|}+1))
  (|x| clamped at 20, where tanh = ±1 in float64), with e^{2|x|} kept as a ratio s/d so that the
  whole function costs one division (divisions are the slowest vector operation).
* ``sigmoid`` = 1/(1 + e^{−|x|}) (or e^{−|x|} times that for x < 0: no overflow), ``softplus``
  = max(x, 0) + log1p(e^{−|x|}), ``relu``, ``step`` (step(0) = 0, spec 02 §2.2).

tests/test_pairkernel_math.py checks them against numpy to a few ulp over the whole range.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_OPTS: dict[str, Any] = {"cache": True, "fastmath": False, "error_model": "numpy"}

LOG2E = 1.4426950408889634
LN2_HI = 6.93145751953125e-1
LN2_LO = 1.42860682030941723212e-6
ROUND = 6755399441055744.0  # 1.5·2^52: (t + ROUND) − ROUND rounds t to the nearest integer
EXP_P = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
EXP_Q = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
         2.00000000000000000009e0)
TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)
EXP_MAX = 709.782712893384
EXP_MIN = -745.1332191019412


@intrinsic
def _bits_to_double(typingctx: Any, i: Any) -> Any:
    """Reinterpret an int64 as the float64 with the same bits (LLVM bitcast: vectorizable)."""
    sig = types.float64(types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@njit(inline="always", **_OPTS)
def _pow2(k: int) -> float:
    """2^k for −1022 ≤ k ≤ 1023: the bits (k + 1023)·2^52."""
    return _bits_to_double((np.int64(k) + 1023) * 4503599627370496)  # type: ignore[call-arg]


@njit(inline="always", **_OPTS)
def _exp_parts(x: float) -> tuple[float, float, float]:
    """(n, d, k) with e^x = 2^k·n/d for EXP_MIN ≤ x ≤ EXP_MAX: the Padé form 1 + 2p/(q − p) is
    (q + p)/(q − p) — callers fold d into their own division."""
    k = (x * LOG2E + ROUND) - ROUND
    r = (x - k * LN2_HI) - k * LN2_LO
    rr = r * r
    p = r * ((EXP_P[0] * rr + EXP_P[1]) * rr + EXP_P[2])
    q = ((EXP_Q[0] * rr + EXP_Q[1]) * rr + EXP_Q[2]) * rr + EXP_Q[3]
    return q + p, q - p, k


@njit(inline="always", **_OPTS)
def _scale(y: float, k: float) -> float:
    """y·2^k for −1075 ≤ k ≤ 1024, in two normal factors (a subnormal result rounds once)."""
    k1 = (k * 0.5 + ROUND) - ROUND
    k1 = k1 if k1 * 2.0 <= k else k1 - 1.0
    return (y * _pow2(k1)) * _pow2(k - k1)


@njit(inline="always", **_OPTS)
def vexp(x: float) -> float:
    c = x if not (x > EXP_MAX) else EXP_MAX  # NaN passes through the comparisons unchanged
    c = c if not (c < EXP_MIN) else EXP_MIN
    n, d, k = _exp_parts(c)
    y = _scale(n / d, k)
    y = y if not (x > EXP_MAX) else math.inf
    return y if not (x < EXP_MIN) else 0.0


@njit(inline="always", **_OPTS)
def vtanh(x: float) -> float:
    """One division: both branches' numerators and denominators are selected before it."""
    a = abs(x)
    z = x * x
    small = a < 0.625
    num_s = x * z * ((TANH_P[0] * z + TANH_P[1]) * z + TANH_P[2])
    den_s = ((z + TANH_Q[0]) * z + TANH_Q[1]) * z + TANH_Q[2]
    n, d, k = _exp_parts(2.0 * (a if a < 20.0 else 20.0))
    s = n * _pow2(k)  # e^{2a} = s/d (k ≤ 58)
    ratio = (num_s if small else 2.0 * d) / (den_s if small else s + d)  # 2/(e^{2a}+1)
    big = 1.0 - ratio
    big = big if x >= 0.0 else -big
    return big if a >= 0.625 else x + ratio  # NaN: x + ratio, which is NaN


@njit(inline="always", **_OPTS)
def sigmoid(x: float) -> float:
    """1/(1 + e^{−|x|}) = d/(d + s), or s/(d + s) for x < 0 (e^{−|x|} = s/d): one division."""
    a = abs(x)
    n, d, k = _exp_parts(-(a if a < -EXP_MIN else -EXP_MIN))
    s = _scale(n, k)  # e^{−|x|} = s/d, no overflow (k ≤ 0)
    y = (d if x >= 0.0 else s) / (d + s)
    y = y if not (x < EXP_MIN) else 0.0
    return y if x == x else x  # NaN stays NaN


@njit(inline="always", **_OPTS)
def softplus(x: float) -> float:
    return (x if x > 0.0 else 0.0) + math.log1p(vexp(-abs(x)))


@njit(inline="always", **_OPTS)
def relu(x: float) -> float:
    return 0.0 if x < 0.0 else x  # NaN stays NaN, as np.maximum


@njit(inline="always", **_OPTS)
def step(x: float) -> float:
    return 1.0 if x > 0.0 else 0.0
