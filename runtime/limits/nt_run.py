"""The neural-tangent iteration by Monte Carlo (spec 05 §5.1–5.2), any entrywise optimizer.

    f_{t+1}(ξ) = f_t(ξ) − Σ_W η·lr_W · E[ G_W(ξ) · Q̃_{W,t}( Σ_i χ_{t,i} G_W(ξ^i) ) ]

over the samples of :mod:`runtime.limits.nt_samples` (a vector's entry has G = Z^{dv}, a matrix
the (Z, Z′) product).  Memoryful optimizers (momentum, Adam, RMSProp, Adagrad, user formulas)
keep their state *per sample* and reuse the same samples at every step: the "pairing of
coordinates shared across s" of 05 §5 (Q_t(G_0, …, G_t) with the same Z, Z′ for every s).  The
optimizer is stepped by :class:`runtime.training.stepper.GroupStepper`, the trainer's own, one
per replica and group, so ``normalize``/``clip`` use the RMS over the replica's samples of the
whole group — √E[Q²] over both copies for a matrix, exactly 05 §5.6 (Def. 2.10.7).

χ_t = ε(f_t) on the step's batch (0 elsewhere; test points always 0), from f̃ = f − f_0 when
centring (04 §4.2).  Every replica runs the whole iteration on its own samples, so the spread of
the R trajectories gives the standard error (NaN with R = 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from compiler.errors import NumericError
from compiler.train.setup import Training
from runtime.limits.nt_decay import NO_DECAY, Decay
from runtime.limits.nt_samples import NTSamples
from runtime.training import signal as signals
from runtime.training.stepper import GroupStepper

StepProgress = Callable[[int, int], None]
"""progress(steps done, T)."""

ChiFn = Callable[[int, np.ndarray], np.ndarray]
"""χ(t, f_t over the points (C·k,), centred if the run is) → χ_t (C·k,)."""


def chi_at(training: Training, t: int, f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """χ_t on every point (C, k): ε(f) on step t's batch, zero elsewhere (04 §4.2)."""
    batch = list(training.schedule.batch(t))
    chi = np.zeros_like(f)
    chi[batch] = signals.chi(training.signal, f[batch], y[batch], len(batch))
    return chi


def chi_of_points(training: Training, y: np.ndarray) -> ChiFn:
    """χ for one output (k = 1): :func:`chi_at` on the (C, 1) view."""
    return lambda t, f: chi_at(training, t, f[:, None], y)[:, 0]


def iterate(training: Training, samples: NTSamples, rates: Mapping[str, float],
            f0: np.ndarray, chi_of: ChiFn, progress: StepProgress | None = None,
            decay: Decay = NO_DECAY) -> np.ndarray:
    """f_t for t = 0..T per replica: (R, T+1, C).  ``rates`` η·lr per contributing group,
    ``f0`` (R, C) the initial outputs (zeros when centred or when f_0 vanishes), ``chi_of`` the
    error signal (:func:`chi_of_points`; k > 1 outputs: :mod:`.nt_outputs`); ``decay`` a
    decaying readout (per-group accumulators and scaled gradients, :mod:`.nt_decay`)."""
    reps, steps = samples.replicas, training.steps
    f = np.empty((reps, steps + 1, f0.shape[1]))
    f[:, 0] = f0
    steppers = [{g.name: GroupStepper(training[g.name].optimizer,
                                      [(g.entries, samples.particles)])
                 for g in samples.groups} for _ in range(reps)]
    acc = np.zeros((reps, len(samples.groups), f0.shape[1]))
    keep = np.array([decay.keep(g.name) for g in samples.groups])
    for t in range(steps):
        scale = np.array([decay.scale(g.name, t) for g in samples.groups])
        after = np.array([decay.scale(g.name, t + 1) for g in samples.groups])
        for r in range(reps):
            chi = chi_of(t, f[r, t] - f0[r] if training.center else f[r, t])
            step = _update(samples, r, steppers[r], rates, t, chi, scale)
            acc[r] = keep[:, None] * acc[r] - step
            f[r, t + 1] = decay.base(t + 1) * f0[r] + after @ acc[r]
        if not np.all(np.isfinite(f[:, t + 1])):
            raise NumericError(f"NT limit step {t}: the trajectory is not finite; the training "
                               "diverges in the limit, try a smaller lr")
        if progress is not None:
            progress(t + 1, steps)
    return f


def _update(samples: NTSamples, r: int, steppers: Mapping[str, GroupStepper],
            rates: Mapping[str, float], t: int, chi: np.ndarray,
            scale: np.ndarray) -> np.ndarray:
    """η K_Q(χ) for replica r, one row per group (G, C): per group, Q of the χ-weighted
    gradient (times the group's gradient scale, 1 without decay) per sample and entry, then the
    sample mean of G(ξ)·Q for every point ξ (two matrix products per group; the stepper sees
    the group as one (E, P) tensor: entrywise state, RMS over all of it)."""
    out = np.zeros((len(samples.groups), chi.shape[0]))
    for k, g in enumerate(samples.groups):
        vals = g.values[r].reshape(-1, chi.shape[0])  # (E·P, C)
        # einsum, not BLAS: a threaded gemv this thin is 25x slower on a loaded machine
        ins = np.einsum("pc,c->p", vals, scale[k] * chi).reshape(g.entries, samples.particles)
        (q,) = steppers[g.name].step(t, [ins])
        out[k] = rates[g.name] * np.einsum("p,pc->c", q.reshape(-1), vals) / samples.particles
    return out


def f0_draw(samples: NTSamples, z: np.ndarray) -> np.ndarray:
    """f_0 per replica (R, C): one standard normal vector ``z`` times the symmetric square root
    of each replica's covariance estimate, so the draw is the same GP sample in every replica
    (and on the exact path) and the estimate's error shows in the standard error."""
    assert samples.f0_cov is not None
    return np.stack([sqrt_psd(cov) @ z for cov in samples.f0_cov])


def sqrt_psd(cov: np.ndarray) -> np.ndarray:
    """A symmetric square root (eigenvalues clipped at 0: repeated points are singular)."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return np.asarray((v * np.sqrt(np.clip(w, 0.0, None))) @ v.T)
