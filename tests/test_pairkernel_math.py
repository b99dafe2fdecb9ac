"""The vectorizable functions of runtime/limits/pairkernel_math.py against numpy/scipy.

Tolerance: 4 ulp of the reference value (Cephes' exp and tanh are within ~1 ulp; our evaluation
adds a few roundings: measured max 2 ulp for exp/tanh, 3 for softplus), plus 1e-300 absolute:
scipy's expit returns 0 for x < −709.78 where the true (subnormal) value is ~5e-309, which ours
returns.  Non-finite values (inf, NaN) must match exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

numba = pytest.importorskip("numba")  # a dependency; the evaluator itself falls back without it

from runtime.limits import pairkernel_math as pm  # noqa: E402

REFERENCE = {
    "vexp": np.exp,
    "vtanh": np.tanh,
    "sigmoid": scipy.special.expit,
    "softplus": lambda x: np.logaddexp(0.0, x),
    "relu": lambda x: np.maximum(x, 0.0),
    "step": lambda x: (x > 0).astype(np.float64),
}


def _points() -> np.ndarray:
    rng = np.random.default_rng(0)
    spread = [rng.standard_normal(200_000) * s for s in (0.1, 1.0, 5.0, 30.0, 300.0)]
    edges = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, -1e-300, 5e-324, 0.625, -0.625,
             np.nextafter(0.625, 0), 20.0, -20.0, 709.78, 709.79, -745.13, -745.14, -708.4]
    return np.concatenate([*spread, np.linspace(-760, 720, 100_001), np.array(edges)])


@numba.njit(error_model="numpy")
def _apply_all(a: np.ndarray, out: np.ndarray) -> None:
    """One compilation for all six functions (rows in the order of sorted(REFERENCE))."""
    for i in range(a.size):
        x = a[i]
        out[0, i] = pm.relu(x)
        out[1, i] = pm.sigmoid(x)
        out[2, i] = pm.softplus(x)
        out[3, i] = pm.step(x)
        out[4, i] = pm.vexp(x)
        out[5, i] = pm.vtanh(x)


@pytest.fixture(scope="module")
def values() -> tuple[np.ndarray, np.ndarray]:
    xs = _points()
    got = np.empty((len(REFERENCE), xs.size))
    _apply_all(xs, got)
    return xs, got


@pytest.mark.parametrize(("row", "name"), list(enumerate(sorted(REFERENCE))))
def test_matches_numpy_within_a_few_ulp(values, row, name):
    xs, out = values
    got = out[row]
    with np.errstate(all="ignore"):
        want = REFERENCE[name](xs)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[np.isinf(want)], want[np.isinf(want)])
    fin = np.isfinite(want)
    err = np.abs(got[fin] - want[fin])
    bound = 4 * np.spacing(np.abs(want[fin])) + 1e-300
    assert np.all(err <= bound), float(np.max(err / bound))
