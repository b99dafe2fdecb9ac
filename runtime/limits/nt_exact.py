"""The exact neural-tangent path for linear update functions (spec 05 §5.1–5.2).

For a linear Q (SGD, momentum, any user formula of degree 1 and linear), Q_t(Σ_i χ_{s,i} G(ξ^i))
= Σ_i G(ξ^i)·Q_t(χ_0, …, χ_t)_i: the optimizer acts on the error signals themselves, and the NT
operator of group W is its kernel block,

    f_{t+1} = f_t − Σ_W η·lr_W · Θ_W Q_{W,t}(χ_0, …, χ_t),      Θ_W(ξ, ξ′) = E[G_W(ξ) G_W(ξ′)],

with the blocks of :func:`runtime.limits.kernels.exact_kernel_blocks` (closed forms or quadrature,
01 §1.6).  The optimizer state therefore lives in χ-space, one state vector per group, stepped by
the trainer's own :class:`~runtime.training.stepper.GroupStepper`.  f_0 is drawn from the exact
NNGP with the same normal vector as the Monte Carlo path (:func:`runtime.limits.nt_run.f0_draw`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from compiler.errors import NumericError
from compiler.train.classes import derive
from compiler.train.optimizers import Optimizer
from compiler.train.setup import Training
from runtime.limits.nt_decay import NO_DECAY, Decay
from runtime.limits.nt_run import ChiFn, StepProgress
from runtime.training.stepper import GroupStepper


@lru_cache(maxsize=64)
def is_linear(opt: Optimizer) -> bool:
    """Q̃ linear in the gradient history (04 §4.1, :mod:`compiler.train.classes`); shaping
    (normalize, clip) is not."""
    return derive(opt).linear and not opt.normalize and opt.clip is None


def kernel_blocks(training: Training, x: np.ndarray) -> dict[str, np.ndarray]:
    """The exact NNGP and the NTK block of every group between the points ``x`` (one output)."""
    from runtime.limits.kernels import exact_kernel_blocks

    return exact_kernel_blocks(training.program, x, training.program.outputs[0])


def iterate_exact(training: Training, blocks: Mapping[str, np.ndarray],
                  rates: Mapping[str, float], f0: np.ndarray, chi_of: ChiFn,
                  progress: StepProgress | None = None, decay: Decay = NO_DECAY) -> np.ndarray:
    """f_t for t = 0..T, (T+1, C), by kernel iteration with per-group χ-space optimizer state;
    with a decaying readout the per-group accumulators of :mod:`.nt_decay` (05 §5.6), the scaled
    χ going into the optimizer state."""
    steps, c = training.steps, f0.shape[0]
    f = np.empty((steps + 1, c))
    f[0] = f0
    steppers = {g: GroupStepper(training[g].optimizer, [(c,)]) for g in rates}
    acc = {g: np.zeros(c) for g in rates}
    for t in range(steps):
        chi = chi_of(t, f[t] - f0 if training.center else f[t])
        for g, rate in rates.items():
            (q,) = steppers[g].step(t, [decay.scale(g, t) * chi])
            acc[g] = decay.keep(g) * acc[g] - rate * (blocks[g] @ q)
        f[t + 1] = decay.base(t + 1) * f0 + sum(
            (decay.scale(g, t + 1) * a for g, a in acc.items()), np.zeros(c))
        if not np.all(np.isfinite(f[t + 1])):
            raise NumericError(f"NT limit step {t}: the trajectory is not finite; the training "
                               "diverges in the limit, try a smaller lr")
        if progress is not None:
            progress(t + 1, steps)
    return f
