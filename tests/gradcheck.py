"""Finite-difference checks of backpropagation programs (spec 02 §2.2, 07 §7.3 "Backprop").

The backprop program's values give ∂F/∂(entry) of every parameter and input entry through the
scale bookkeeping of 02 §2.2: ∂F/∂W = (1/n)·Σ_u a_u b_uᵀ over the matrix's uses ((a, b) =
(dy, x) for y = W x, (x, dy) for y = Wᵀ x), ∂F/∂v = dv/n for a vector, ∂F/∂θ = dθ for a scalar.
:func:`check_gradients` compares them with central differences of the forward program on random
entries, with parameters overridden through ``execute(params=…)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from compiler.ir import Program
from compiler.passes.backprop import Backprop, backprop_map
from runtime.executor import Execution, execute
from runtime.params import draw_parameters

STEP = 1e-5
"""Central-difference step relative to an entry's scale: truncation error ~STEP² and rounding
error ~1e-16/STEP are both far below the 1e-6 tolerance."""

ZERO = 1e-3
"""A group whose gradient's rms is below ZERO × the largest of its kind is checked on that scale.
On the samples at n = 64 every group is above it (the smallest, U[9] of the MLPs where ξ_9 is
small, is at 2e-2 of U's largest), so they are all checked relatively."""


@dataclass(frozen=True)
class Check:
    """Worst relative error per parameter or input entry (name → error) of one program."""

    errors: Mapping[str, float]

    @property
    def worst(self) -> float:
        return max(self.errors.values(), default=0.0)


def analytic_gradients(program: Program, bp: Backprop, ex: Execution) -> dict[str, np.ndarray]:
    """∂F_b/∂(entry) for every input b: matrices (B, n, n), vectors (B, n), scalars (B,)."""
    n, batch = ex.width, ex.batch
    full = {
        k: np.broadcast_to(v, (n, batch) if v.ndim == 2 else (batch,)) for k, v in ex.values.items()
    }
    grads: dict[str, np.ndarray] = {}
    for name in (*program.param_names(), *program.input_names):
        kind = program.kinds[name]
        if kind == "matrix":
            g = np.zeros((batch, n, n))
            for use in bp.grads.matrix_uses(name):
                a, b = use.outer
                g += np.einsum("ib,jb->bij", full[a], full[b]) / n
        else:
            d = bp.grads.get(name)
            zero = np.zeros((n, batch) if kind == "vector" else (batch,))
            g = full[d] if d is not None else zero
            g = g.T / n if kind == "vector" else g
        grads[name] = np.asarray(g)
    return grads


Objective = Callable[[Mapping[str, np.ndarray], "np.ndarray | None"], np.ndarray]


def _objective(program: Program, width: int, seed: int, output: int) -> Objective:
    def f(params: Mapping[str, np.ndarray], inputs: np.ndarray | None) -> np.ndarray:
        return execute(program, width, seed, inputs, params=params).averages()[output]

    return f


def check_gradients(
    program: Program,
    width: int,
    inputs: np.ndarray | None,
    seed: int = 0,
    per_param: int = 3,
    rng: np.random.Generator | None = None,
    output: str | None = None,
) -> Check:
    """Relative errors of the backprop gradients against central differences, on ``per_param``
    random entries of every matrix and vector parameter and on every scalar and input entry.

    An entry's error is |fd − bp| / max(|bp|, rms), rms being the root mean square of the whole
    group's backprop gradient (all entries, all inputs): rounding makes the difference quotient's
    error absolute (~1e-16·|F|/h, independent of the entry), so an entry whose gradient is ~0 — a
    relu-dead coordinate — is judged on the scale of its group, where it is meaningful. A group
    whose gradient is 0 or nearly (F does not depend on it, or the dependence cancels, as in
    (θ − 1/2)·y at θ = 1/2, or W x − W x) is judged on ZERO × the largest rms of a group of its
    kind, i.e. checked to 1e-9 of that in absolute terms: both programs then compute
    rounding noise (W.T @ dy rounds differently for a (n, 1) and a (n, B) dy; a cancelling
    forward formula leaves F depending on its input through rounding only, ~1e-11/h)."""
    rng = rng or np.random.default_rng(1)
    bp = backprop_map(program, output)
    params = draw_parameters(program, width, seed)
    ex = execute(bp.program, width, seed, inputs, params=params)
    grads = analytic_gradients(program, bp, ex)
    f = _objective(program, width, seed, program.outputs.index(bp.grads.output))
    rms = {name: float(np.sqrt(np.mean(g**2))) for name, g in grads.items()}
    largest = _largest_by_kind(program, rms)
    errors: dict[str, float] = {}
    for name, g in grads.items():
        floor = max(rms[name], ZERO * largest[program.kinds[name]])
        for fd, exact in _differences(program, name, params, inputs, g, f, per_param, rng):
            err = np.abs(fd - exact) / np.maximum(np.abs(exact), floor)
            errors[name] = max(errors.get(name, 0.0), float(err.max()))
    return Check(errors)


def _largest_by_kind(program: Program, rms: Mapping[str, float]) -> dict[str, float]:
    """The largest group rms per kind: entries of matrices, vectors and scalars have natural
    sizes 1/n², 1/n and 1, so a group is compared with its own kind (else with any)."""
    overall = max((r for r in rms.values() if r > 0), default=1.0)
    out = {}
    for kind in ("matrix", "vector", "scalar"):
        same = [r for name, r in rms.items() if program.kinds[name] == kind and r > 0]
        out[kind] = max(same, default=overall)
    return out


def _differences(
    program: Program,
    name: str,
    params: Mapping[str, np.ndarray],
    inputs: np.ndarray | None,
    g: np.ndarray,
    f: Objective,
    per_param: int,
    rng: np.random.Generator,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(finite difference (B,), backprop value (B,)) for the checked entries of ``name``."""
    if name in program.input_names:
        j = program.input_names.index(name)
        h = STEP * max(1.0, float(np.abs(inputs[:, j]).max()))
        up, down = inputs.copy(), inputs.copy()
        up[:, j] += h  # every row perturbs its own input: F_b depends on row b only
        down[:, j] -= h
        yield (f(params, up) - f(params, down)) / (2 * h), g
        return
    value = np.asarray(params[name])
    width = value.shape[0] if value.ndim else 1
    scale = 1.0 / np.sqrt(width) if value.ndim == 2 else 1.0  # matrix entries are N(0, 1/n)
    count = per_param if value.ndim else 1
    for _ in range(count):
        idx = tuple(int(rng.integers(0, s)) for s in value.shape)
        h = STEP * max(scale, abs(float(value[idx])))
        up, down = dict(params), dict(params)
        up[name], down[name] = value.copy(), value.copy()
        up[name][idx] += h
        down[name][idx] -= h
        yield (f(up, inputs) - f(down, inputs)) / (2 * h), g[(slice(None), *idx)]
