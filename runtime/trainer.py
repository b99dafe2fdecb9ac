"""The finite-width trainer: T steps of a :class:`~compiler.train.setup.Training` at width n.

Parameters and optimizer state are materialised (matrices as n×n arrays) and carried from step to
step, so T steps cost O(T) passes of n×n work. Each step executes the backpropagation program of
every output f_j (02 §2.2, through :func:`runtime.executor.execute` with the *current* parameter
values) on all points at once, forms χ_t from f_t on the step's batch (04 §4.2), and updates every
group with the powers of n of 04 §4.3 (P the actual value, F_j = avg(o_j), dx = n·∂F_j/∂x):

    matrix  G = n^{D−e_out} Σ_i Σ_j χ_ij Σ_u dy_u(ξ^i) x_u(ξ^i)ᵀ    (∂F/∂W = (1/n) Σ_u dy xᵀ)
    vector  G = n^{D−e_out} Σ_i Σ_j χ_ij dV(ξ^i)
    scalar  G = n^{D+1−e_out} Σ_i Σ_j χ_ij dΘ(ξ^i)
    P ← (1 − η·lr·λ) P − η·lr·n^{-C} Q̃_t(G)

f(ξ) = n^{1−e_out}·avg(o). Initial values are :func:`runtime.params.draw_parameters` scaled by the
table (:mod:`compiler.train.setup`). A NaN or Inf is an error naming the step and the tensor (or
the instruction); memory is estimated before anything is allocated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import sympy

from compiler.abcd.conditions import Exp, fmt
from compiler.errors import NumericError, UsageError
from compiler.ir import Program
from compiler.passes.backprop import Backprop, BackpropOptions
from compiler.passes.pipeline import run_pass
from compiler.train.setup import TensorTraining, Training
from runtime import memory
from runtime.executor import Execution, execute
from runtime.params import draw_parameters
from runtime.training import signal as signals
from runtime.training.stepper import GroupStepper

Progress = Callable[[int, int], None]
"""progress(seed index, step) after every step."""


@dataclass(frozen=True)
class StepView:
    """What step t of one seed sees, for an observer (e.g. a coordinate check), before the
    update: ``values`` every vector (n, points) and scalar of the forward and backward pass of
    the first output, ``params`` the current parameter values P_t, ``f`` (points, k) (centred
    if asked), ``q_inputs`` per trained group the input of Q of each entry (empty at t = T).
    The arrays are the trainer's own: read them, do not keep or modify them."""

    seed: int
    t: int
    values: Mapping[str, np.ndarray]
    params: Mapping[str, np.ndarray]
    f: np.ndarray
    q_inputs: Mapping[str, tuple[np.ndarray, ...]]


Observer = Callable[[StepView], None]


@dataclass(frozen=True)
class TrainResult:
    """f_t and the loss for every seed: ``f`` (K, T+1, points, k), ``loss`` (K, T+1)."""

    training: Training
    width: int
    seeds: tuple[int, ...]
    f: np.ndarray
    loss: np.ndarray

    def to_json(self) -> dict[str, Any]:
        t = self.training
        f = self.f if t.outputs > 1 else self.f[..., 0]
        loss = [[None if np.isnan(v) else float(v) for v in row] for row in self.loss]
        return {"points": list(t.schedule.points()), "f": f.tolist(), "loss": loss,
                "width": self.width, "seeds": list(self.seeds), "steps": t.steps,
                "param": t.param.name, "e_out": fmt(t.e_out), "signal": t.signal.name,
                "center": t.center, "batch_size": t.schedule.batch_size,
                "outputs": list(t.program.outputs),
                "optimizers": {p.name: p.optimizer.text or p.optimizer.name for p in t.tensors},
                "width_exponents": {w: fmt(e) for w, e in t.widths.items()}}


@dataclass(frozen=True)
class _Factors:
    """The numbers a group needs at width n: initial scale, Q-input multiplier, rate, decay."""

    init: float
    q_input: float
    rate: float
    decay: float


def power(n: int, e: Exp, what: str) -> float:
    """n^e as a float (n^{-∞} = 0); a symbolic exponent cannot run at a finite width."""
    if e.free_symbols:
        raise UsageError(f"{what} has the symbolic exponent {fmt(e)}: finite-width training needs"
                         " numbers (give --param a number, e.g. up:1/4)")
    return float(sympy.Integer(n) ** e)


def _factors(t: TensorTraining, n: int, e_out: Exp) -> _Factors:
    e, what = t.exponents, f"parameter {t.name}"
    init = sympy.Rational(1, 2) - e.A if t.kind == "matrix" else -e.A
    q_in = e.D - e_out + (1 if t.kind == "scalar" else 0)  # dΘ is not scaled by n (04 §4.3)
    eta = float(t.optimizer.lr * t.lr)
    return _Factors(float(t.sigma) * power(n, init, what), power(n, q_in, what),
                    eta * power(n, -e.C, what), eta * float(t.optimizer.weight_decay))


def backprops(program: Program) -> tuple[Backprop, ...]:
    """One backpropagation program per output f_j (parameters' gradients only)."""
    return tuple(run_pass(program, BackpropOptions(o, input_gradients=False))
                 for o in program.outputs)


def estimate_bytes(training: Training, bps: Sequence[Backprop], width: int, points: int) -> int:
    """Matrices with their state and work arrays, plus every vector of one step's executions."""
    per_matrix = sum((3 + len(t.optimizer.state)) * len(t.entries)
                     for t in training.tensors if t.kind == "matrix")
    vectors = sum(len(bp.program.body) for bp in bps)
    return 8 * width * (width * per_matrix + vectors * points)


def train(training: Training, x: np.ndarray, y: np.ndarray, width: int,
          seeds: Sequence[int] = (0,), dist: str = "gaussian",
          progress: Progress | None = None, observer: Observer | None = None) -> TrainResult:
    """Train at width ``width`` for each seed. ``x``: (points, d), training points first;
    ``y``: (B_train, k) targets (one-hot rows for ce); ``observer`` sees every step."""
    s = training.schedule
    if x.shape[0] != s.n_points or y.shape != (s.n_train, training.outputs):
        raise UsageError(f"data of shape {x.shape} / targets {y.shape} do not match the training "
                         f"({s.n_points} points, {s.n_train} × {training.outputs} targets)")
    factors = {t.name: _factors(t, width, training.e_out) for t in training.tensors}
    bps = backprops(training.program)
    need = estimate_bytes(training, bps, width, s.n_points)
    memory.check_memory(need, f"training at width {width} ({s.n_points} points)",
                        "choose a smaller --width")
    fs, losses = [], []
    for k, seed in enumerate(seeds):
        run = _SeedRun(training, bps, factors, width, x, y, observer)
        f, loss = run.run(seed, dist, None if progress is None else partial(progress, k))
        fs.append(f)
        losses.append(loss)
    return TrainResult(training, width, tuple(seeds), np.stack(fs), np.stack(losses))


class _SeedRun:
    """One seed's training: the current parameter values and each group's optimizer state."""

    def __init__(self, training: Training, bps: Sequence[Backprop],
                 factors: dict[str, _Factors], width: int, x: np.ndarray, y: np.ndarray,
                 observer: Observer | None = None) -> None:
        self.tr, self.bps, self.factors, self.n = training, bps, factors, width
        self.x, self.y, self.observer = x, y, observer
        self.n_train = training.schedule.n_train
        self.out_scale = power(width, 1 - training.e_out, "the output multiplier")

    def run(self, seed: int, dist: str, progress: Callable[[int], None] | None
            ) -> tuple[np.ndarray, np.ndarray]:
        self.seed = seed
        self.params = self._initial(seed, dist)
        self.steppers = {t.name: GroupStepper(t.optimizer, [self.params[e].shape for e in
                                                            t.entries])
                         for t in self.tr.tensors}
        fs, losses, f0 = [], [], None
        for t in range(self.tr.steps + 1):
            runs = self._execute(t)
            f = self.out_scale * np.stack(
                [r.values[o].mean(axis=0) for r, o in zip(runs, self.tr.program.outputs,
                                                           strict=True)], axis=-1)
            if self.tr.center:
                f0 = f.copy() if f0 is None else f0
                f = f - f0
            fs.append(f)
            with np.errstate(all="ignore"):  # a diverging run is reported by tensor, below
                losses.append(signals.loss(self.tr.signal, f[:self.n_train], self.y))
                if t < self.tr.steps:
                    self._step(t, runs, f)
                elif self.observer is not None:
                    self.observer(StepView(seed, t, runs[0].values, self.params, f, {}))
            if progress is not None:
                progress(t)
        return np.stack(fs), np.array(losses)

    def _initial(self, seed: int, dist: str) -> dict[str, np.ndarray]:
        drawn = draw_parameters(self.tr.program, self.n, seed, dist)
        for t in self.tr.tensors:
            for e in t.entries:
                if t.init is not None:
                    drawn[e] = np.array(float(t.init))
                else:
                    drawn[e] *= self.factors[t.name].init  # in place: no second n×n copy
        return drawn

    def _execute(self, t: int) -> list[Execution]:
        """Forward and backward of every output at the current parameters (one run per output);
        the last step's f_T needs the forward program only (the same output names)."""
        try:
            if t == self.tr.steps:
                forward = execute(self.tr.program, self.n, inputs=self.x, params=self.params)
                return [forward] * len(self.bps)
            return [execute(bp.program, self.n, inputs=self.x, params=self.params)
                    for bp in self.bps]
        except NumericError as e:
            raise NumericError(f"training step {t}: {e.message}", e.loc) from None

    def _step(self, t: int, runs: list[Execution], f: np.ndarray) -> None:
        tr = self.tr
        batch = list(tr.schedule.batch(t))
        chi = np.zeros_like(f)
        chi[batch] = signals.chi(tr.signal, f[batch], self.y[batch], len(batch))
        trained = [tensor for tensor in tr.tensors  # not frozen (c = ∞) without decay
                   if self.factors[tensor.name].rate or self.factors[tensor.name].decay]
        q_inputs = {tensor.name: tuple(self.factors[tensor.name].q_input *
                                       self._gradient(tensor, e, runs, chi)
                                       for e in tensor.entries) for tensor in trained}
        if self.observer is not None:
            self.observer(StepView(self.seed, t, runs[0].values, self.params, f, q_inputs))
        for tensor in trained:
            fac = self.factors[tensor.name]
            qs = self.steppers[tensor.name].step(t, q_inputs[tensor.name])
            for e, q in zip(tensor.entries, qs, strict=True):
                p = self.params[e]
                if fac.decay:
                    p *= 1 - fac.decay
                p -= fac.rate * q
                if not np.all(np.isfinite(p)):
                    bad = "NaN" if np.isnan(p).any() else "Inf"
                    raise NumericError(f"training step {t}: {bad} in {tensor.kind} {e} after its "
                                       f"update (width {self.n}); the training diverges, try a "
                                       "smaller lr")

    def _gradient(self, tensor: TensorTraining, entry: str, runs: list[Execution],
                  chi: np.ndarray) -> np.ndarray:
        """Σ_i Σ_j χ_ij · (n·∂F_j/∂P at ξ^i), the matrix one as Σ_u dy xᵀ (without n^{D−e_out})."""
        n, points = self.n, chi.shape[0]
        if tensor.kind == "matrix":
            left, right = [], []
            for j, (bp, r) in enumerate(zip(self.bps, runs, strict=True)):
                for use in bp.grads.matrix_uses(entry):
                    a, b = use.outer
                    left.append(np.broadcast_to(r.values[a], (n, points)) * chi[:, j])
                    right.append(np.broadcast_to(r.values[b], (n, points)))
            if not left:
                return np.zeros((n, n))
            return np.hstack(left) @ np.hstack(right).T
        total = np.zeros(n if tensor.kind == "vector" else ())
        for j, (bp, r) in enumerate(zip(self.bps, runs, strict=True)):
            name = bp.grads.get(entry)
            if name is None:  # f_j does not depend on this entry
                continue
            shape = (n, points) if tensor.kind == "vector" else (points,)
            total = total + np.broadcast_to(r.values[name], shape) @ chi[:, j]
        return np.asarray(total, dtype=np.float64)
