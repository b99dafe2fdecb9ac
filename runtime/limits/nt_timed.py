"""Weight decay of any group in the NT limit: kets at every time (spec 05 §5.6, Def. 2.10.1–2.10.2,
Thm 2.10.3), Monte Carlo path.

With decoupled decay (04, Eq. 2.50) group g's weights are W_{g,t} = ρ_g^t W_{g,0} + ΔW_{g,t},
ρ_g = 1 − η·lr·λ_g, ΔW_{g,t+1} = ρ_g ΔW_{g,t} − η_g Q̃_{g,t}(…).  The decayed initial weights
D_t W_0 rescale the features at O(1); the updates stay O(n^{-½}) per entry, so linearising in
them (the NT limit, 05 §5.1–5.2):

    f_t(ξ) = f(D_t W_0; ξ) + Σ_g ⟨∇_g f(D_t W_0; ξ), ΔW_{g,t}⟩.

**Derived here: every time is a copy of one network.**  (ρ^t W) x = W (ρ^t x) and a vector entry
U enters as ρ^t U, so the network at D_t W_0 is the program with a per-group scalar input d_g
(= ρ_g^t) multiplying the argument of each use of W and each entry of U; the total program over
the (T+1)·C copies (time, point), parameters shared (02 §2.3), then gives the joint Gaussian law
of the kets at all times (the covariances scaled by powers of ρ of Def. 2.10.1 come out of it).
The program's gradient in W is d_g times the gradient in the actual weight W_t, so the samples of
copy t are divided by ρ_g^t.  ΔW_g is kept per sample, as its ket: for a sample (Z, Z′),
Δ_{g,t+1} = ρ_g Δ_{g,t} − η_g Q̃_{g,t}(Σ_i χ_{t,i} G_g^{(t)}(ξ^i)), and

    f_t(ξ) = b_t(ξ) + Σ_g E[G_g^{(t)}(ξ) Δ_{g,t}],

b_t = f(D_t W_0; ·) a Gaussian process over (t, ξ) (drawn with the seed when f_0 survives the
limit; 0 when it vanishes).  Centring subtracts b_0, so f̃_t keeps b_t − b_0: random.  With ρ = 1
for every group this is the plain iteration.  Only the Monte Carlo path: the exact kernels of the
(T+1)·C·k copies would be a general kernel program far too slow to be worth it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from compiler.errors import NumericError, UsageError
from compiler.ir import Input, Instruction, MatMul, Nonlin, OuterNonlin, Program
from compiler.symbols import sym
from compiler.train.setup import Training, build_training
from runtime.limits import nt_outputs
from runtime.limits.nt_run import ChiFn, StepProgress
from runtime.limits.nt_samples import NTSamples
from runtime.training.stepper import GroupStepper

DECAY = "nt_decay"


def rhos(training: Training) -> dict[str, float]:
    """ρ_g = 1 − η·lr·λ per group with λ ≠ 0 (the trainer's decay, frozen groups included)."""
    return {t.name: 1.0 - float(t.optimizer.lr * t.lr * t.optimizer.weight_decay)
            for t in training.tensors if t.optimizer.weight_decay != 0}


def problem(training: Training) -> str | None:
    """Why the decayed program cannot be built (None: it can)."""
    decaying = set(rhos(training))
    zero = [g for g, r in rhos(training).items() if r == 0]
    if zero:
        return (f"η·lr·λ = 1 for {', '.join(zero)}: the decay zeroes the initial weights in one "
                "step, so the weights are the updates alone; these are not small against the "
                "vanished W_0, the features move at O(1) with them and the NT linearisation "
                "fails: the network leaves the operator regime (05 §5.6); no NT limit")
    for t in training.tensors:
        if t.name in decaying and t.kind == "scalar":
            return f"weight decay on the scalar parameter {t.name}: the NT limit takes none"
    entries = {e for t in training.tensors if t.name in decaying and t.kind == "vector"
               for e in t.entries}
    for i in training.program.body:
        if isinstance(i, OuterNonlin) and {s.name for s in i.formula.free_symbols} & entries:
            return (f"weight decay on a vector read by the OuterNonlin {i.out}: not implemented "
                    "in the NT limit")
    return None


def decayed_program(training: Training) -> Program:
    """The program with the input d ∈ R^G (one scalar per decaying group, in :func:`rhos`
    order) scaling every use of a decaying group (module docstring)."""
    program, order = training.program, list(rhos(training))
    index = {t.name: order.index(t.name) for t in training.tensors if t.name in order}
    scale = {e: sym(f"{DECAY}[{index[t.name]}]") for t in training.tensors
             if t.name in index and t.kind == "vector" for e in t.entries}
    body: list[Instruction] = []
    for k, i in enumerate(program.body):
        if isinstance(i, MatMul) and i.matrix in index:
            scaled = f"nt_scaled{k}"
            body.append(Nonlin(scaled, sym(f"{DECAY}[{index[i.matrix]}]") * sym(i.arg)))
            body.append(replace(i, arg=scaled))
        elif isinstance(i, Nonlin) and scale:
            body.append(replace(i, formula=i.formula.xreplace(
                {s: scale[s.name] * s for s in i.formula.free_symbols if s.name in scale})))
        else:
            body.append(i)
    return replace(program, inputs=(*program.inputs, Input(DECAY, (len(order),))),
                   body=tuple(body))


def timed_training(training: Training, program: Program, copies: int) -> Training:
    """One output over ``copies`` points of ``program``, the same groups and optimizers."""
    flat = build_training(program, training.param, "sgd", "mse", steps=training.steps,
                          n_train=copies, n_test=0)
    return flat.with_optimizers({t.name: t.optimizer for t in training.tensors})


def timed_source(training: Training, x: np.ndarray) -> tuple[Training, np.ndarray]:
    """The one-output training over the copies (time, point[, output]) and their rows: the
    decayed program, with the output selector of :mod:`.nt_outputs` when k > 1."""
    k, program = training.outputs, decayed_program(training)
    points = timed_points(training, x)  # rows (t, i); then (t, i, j) for k > 1
    if k > 1:
        program, points = nt_outputs.selector_program(program), nt_outputs.flat_points(points, k)
    return timed_training(training, program, points.shape[0]), points


def timed_points(training: Training, points: np.ndarray) -> np.ndarray:
    """Rows (point row, ρ^t per decaying group) for t = 0..T, time-major."""
    r = np.array(list(rhos(training).values()))
    return np.concatenate([np.concatenate([points, np.tile(r**t, (points.shape[0], 1))], 1)
                           for t in range(training.steps + 1)])


def iterate_timed(training: Training, samples: NTSamples, rates: Mapping[str, float],
                  base: np.ndarray, chi_of: ChiFn, progress: StepProgress | None = None
                  ) -> np.ndarray:
    """f_t per replica, (R, T+1, C): ``base`` (R, T+1, C) the decayed initial outputs b_t
    (zeros when f_0 vanishes), samples over (T+1)·C copies, time-major."""
    reps, steps, c = samples.replicas, training.steps, base.shape[2]
    decay = rhos(training)
    f = base.copy()
    for r in range(reps):
        steppers = {g.name: GroupStepper(training[g.name].optimizer,
                                         [(g.entries, samples.particles)])
                    for g in samples.groups}
        deltas = {g.name: np.zeros(g.entries * samples.particles) for g in samples.groups}
        for t in range(steps):
            ft = f[r, t] - base[r, 0] if training.center else f[r, t]
            chi = chi_of(t, ft)
            for g in samples.groups:
                rho = decay.get(g.name, 1.0)
                vals = _at(g.values[r], t, c) / rho**t
                ins = np.einsum("pc,c->p", vals, chi).reshape(g.entries, samples.particles)
                (q,) = steppers[g.name].step(t, [ins])
                deltas[g.name] = rho * deltas[g.name] - rates[g.name] * q.reshape(-1)
                after = _at(g.values[r], t + 1, c) / rho ** (t + 1)
                f[r, t + 1] += np.einsum("p,pc->c", deltas[g.name], after) / samples.particles
            if not np.all(np.isfinite(f[r, t + 1])):
                raise NumericError(f"NT limit step {t}: the trajectory is not finite; the "
                                   "training diverges in the limit, try a smaller lr")
        if progress is not None:
            progress(r + 1, reps)
    return f


def _at(values: np.ndarray, t: int, c: int) -> np.ndarray:
    """(E·P, C): one replica's samples of the copies of time t."""
    return values[..., t * c:(t + 1) * c].reshape(-1, c)


def check_method(method: str) -> None:
    if method == "exact":
        raise UsageError("--method exact: weight decay of hidden groups has the Monte Carlo "
                         "path only (kets at every time, 05 §5.6); use --method mc or auto")


def base_draw(cov: np.ndarray, z: np.ndarray, c: int, given: np.ndarray | None) -> np.ndarray:
    """One replica's b over all copies (time-major, ``c`` per time) from its covariance estimate
    ``cov`` and the standard normal ``z``: b_0 = ``given``, or S₀₀^{½} z₀ (the very draw of the
    paths without decay, same seed); the rest is the conditional Gaussian given b_0 (mean
    S₁₀S₀₀⁺b₀, covariance the Schur complement).  For a positively homogeneous network b_t is a
    multiple of b_0 and the conditional variance vanishes."""
    from runtime.limits.nt_run import sqrt_psd

    s00, s10, s11 = cov[:c, :c], cov[c:, :c], cov[c:, c:]
    b0 = sqrt_psd(s00) @ z[:c] if given is None else given
    gain = s10 @ np.linalg.pinv(s00, hermitian=True)
    rest = gain @ b0 + sqrt_psd(s11 - gain @ s10.T) @ z[c:]
    return np.concatenate([b0, rest])
