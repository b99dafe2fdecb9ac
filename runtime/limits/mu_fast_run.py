"""One replica of the μ-limit: the per-step backprop programs interpreted on M particles (05 §5.4).

"Transcribe the finite-width computation into kets": the same programs the finite-width trainer
runs (:mod:`runtime.trainer`, one backprop program per output f_j) are evaluated with every vector
an (M, points) particle array, MatMul → the operator W̊_t = σ·W̊_0 + ΔW_t of
:mod:`runtime.limits.mu_fast_ops`, Avg → the particle mean (E), Nonlin/OuterNonlin as at width M
(an OuterNonlin's E′ over the other particles). f_t(ξ) = E|o_t(ξ)⟩ (the μP output power n⁰).
Updates (05 §5.4): W̊_{t+1} = (1 − ηλ)W̊_t − η Q̄_t(Σ_i χ_i G_W(ξ^i)), |v_{t+1}⟩ = (1 − ηλ)|v_t⟩ −
η Q_t(Σ_i χ_i |dv(ξ^i)⟩), θ̊ likewise; only the plan's contributing groups update (05 §5.5).

The backward half of each program only matters at the step's batch points (χ = 0 elsewhere),
so it runs on those columns: fewer kets reach W̊_0ᵀ, so its basis (and the Monte Carlo noise of
its dot terms) stays smaller, with the same limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from compiler.errors import NumericError
from compiler.ir import MatMul, Nonlin, Program
from compiler.passes.backprop import Backprop
from compiler.printer import format_instruction
from compiler.train.setup import TensorTraining, Training
from runtime.data import input_batch
from runtime.executor import _run as run_instruction
from runtime.limits.mu_fast_forms import LinearForm, contract, deferred_gradients, nonlin
from runtime.limits.mu_fast_ops import GaussianPool, InitialOperator, LowRankDelta, PairDelta
from runtime.training import signal as signals
from runtime.training.stepper import GroupStepper

Values = dict[str, np.ndarray]


@dataclass(frozen=True)
class GroupLimit:
    """A group's numbers in the limit: initial scale σ (0: no initial term), rate η·lr (0: its
    update is dropped, 05 §5.5), decoupled decay η·λ, and whether Q is linear (low rank)."""

    tensor: TensorTraining
    init: float
    rate: float
    decay: float
    linear: bool

    @property
    def trained(self) -> bool:
        return bool(self.rate or self.decay)


def qmc_dims(training: Training, bps: Sequence[Backprop], groups: Sequence[GroupLimit],
             split: int) -> int:
    """How many of the pool's first draws are randomised QMC: the initial vector parameters
    (drawn first, in group order) and a bound on the Gaussians every W̊_0 side draws at step 0
    (one per column the first time it meets a ket: every point forward, the batch backward).
    Those carry the leading randomness of the trajectory (the kernels of step 0); later draws
    are residual directions of the updates. Measured on mlp2 (μP, B = 16, T = 10, 32 × 4096
    particles, no bias check): s.e.²·time 4.2e-6 with the vectors alone → 2.9e-6 with the step-0
    forward and backward hats; adding step 1's draws gave nothing more (2.9e-6, 3.4e-6). The
    pool draws at most QMC_MAX_DIMS of them from Sobol' but orthogonalises them all."""
    dims = sum(len(g.tensor.entries) for g in groups if g.tensor.kind == "vector"
               and g.tensor.init is None)
    initial = {e for g in groups if g.tensor.kind == "matrix" and g.init for e in g.tensor.entries}
    s = training.schedule
    for j, bp in enumerate(bps):
        for k, ins in enumerate(bp.program.body):
            if isinstance(ins, MatMul) and ins.matrix in initial and (k >= split or j == 0):
                dims += s.batch_size if k >= split else s.n_points
    return dims


class ReplicaRun:
    """One independent replica: M particles, its own W̊_0 draws and initial kets."""

    def __init__(self, training: Training, bps: Sequence[Backprop], groups: Sequence[GroupLimit],
                 m: int, split: int, rng: np.random.Generator, orthogonal: bool = True,
                 qmc: bool = False) -> None:
        self.tr, self.bps, self.groups, self.m, self.split, self.rng = (
            training, bps, groups, m, split, rng)
        self.pool = GaussianPool(m, rng, orthogonal, qmc_dims(training, bps, groups, split)
                                 if qmc else 0)
        self.params: Values = {}
        self.w0: dict[str, InitialOperator] = {}
        self.low: dict[str, LowRankDelta] = {}
        self.pair: dict[str, tuple[PairDelta, int]] = {}
        self.steppers: dict[str, GroupStepper] = {}
        for g in groups:
            self._init_group(g)
        vectors = [e for g in groups if g.trained and g.tensor.kind == "vector"
                   for e in g.tensor.entries]
        # gradient kets only the update reads: contracted with χ, never formed (mu_fast_forms)
        self.deferred = [deferred_gradients(bp.program, bp.grads, vectors, split) for bp in bps]

    def _init_group(self, g: GroupLimit) -> None:
        t, m = g.tensor, self.m
        if t.kind == "matrix":
            for e in t.entries:
                if g.init:
                    self.w0[e] = InitialOperator(m, g.init, self.pool)
                if g.trained and g.linear:
                    self.low[e] = LowRankDelta(m, self.tr.steps, t.optimizer)
            if g.trained and not g.linear:
                pd = PairDelta(m, t.optimizer, len(t.entries))
                self.pair.update({e: (pd, k) for k, e in enumerate(t.entries)})
            return
        shape = (m, 1) if t.kind == "vector" else (1,)
        for e in t.entries:
            if t.init is not None:
                self.params[e] = np.full(shape, float(t.init))
            elif t.kind == "vector":
                self.params[e] = g.init * self.pool.draw(1)
            else:  # a random scalar: one draw per replica (the limit is conditional on it)
                self.params[e] = g.init * self.rng.standard_normal(shape)
        if g.trained:
            self.steppers[t.name] = GroupStepper(t.optimizer, [shape] * len(t.entries))

    def matmul(self, w: str, x: np.ndarray, transpose: bool) -> np.ndarray:
        """W̊_t x: the initial operator plus the accumulated update."""
        x = np.broadcast_to(x, (self.m, x.shape[-1]))
        out = np.zeros_like(x, dtype=np.float64)
        if w in self.w0:
            out = out + self.w0[w].apply(x, transpose)
        if w in self.low:
            out = out + self.low[w].apply(x, transpose)
        if w in self.pair:
            pd, k = self.pair[w]
            out = out + pd.apply(k, x, transpose)
        return out

    def execute(self, program: Program, values: Values, start: int, stop: int, t: int,
                skip: Mapping[str, LinearForm] | None = None) -> None:
        kinds = program.kinds
        for ins in program.body[start:stop]:
            if skip and ins.out in skip:
                continue
            with np.errstate(all="ignore"):  # reported below, by instruction
                if isinstance(ins, MatMul):
                    y = self.matmul(ins.matrix, values[ins.arg], ins.transpose)
                elif isinstance(ins, Nonlin):
                    y = nonlin(ins, values, self.m, kinds)
                else:
                    y = run_instruction(ins, values, {}, kinds, self.m)
            if not np.all(np.isfinite(y)):
                bad = "NaN" if np.isnan(y).any() else "Inf"
                raise NumericError(f"μ-limit step {t}: {bad} in the ket of "
                                   f"{format_instruction(ins, kinds)}", ins.loc)
            values[ins.out] = y

    def run(self, x: np.ndarray, y: np.ndarray, progress: Callable[[int], None] | None,
            observe: Callable[[int, Values], None] | None = None,
            steps: int | None = None) -> np.ndarray:
        """f_t for t = 0..T on every point: (T+1, points, k); ``observe(t, kets)`` sees the
        forward kets (M, points) of every step before its update; ``steps`` < T stops early."""
        fs, f0 = [], None
        last = self.tr.steps if steps is None else steps
        for t in range(last + 1):
            _, values = input_batch(self.tr.program, x)
            values.update(self.params)
            self.execute(self.bps[0].program, values, 0, self.split, t)
            f = np.stack([np.broadcast_to(values[o].mean(axis=0), (x.shape[0],))
                          for o in self.tr.program.outputs], axis=-1)
            if self.tr.center:
                f0 = f.copy() if f0 is None else f0
                f = f - f0
            fs.append(f)
            if observe is not None:
                observe(t, values)
            if t < last:
                self.step(t, values, f, y)
            if progress is not None:
                progress(t)
        return np.stack(fs)

    def step(self, t: int, forward: Values, f: np.ndarray, y: np.ndarray) -> None:
        batch = list(self.tr.schedule.batch(t))
        chi = signals.chi(self.tr.signal, f[batch], y[batch], len(batch))
        backs = []
        for bp, skip in zip(self.bps, self.deferred, strict=True):
            values = _columns(forward, batch, f.shape[0])
            self.execute(bp.program, values, self.split, len(bp.program.body), t, skip)
            backs.append(values)
        for g in self.groups:
            if g.trained:
                self._update(t, g, backs, chi)

    def _update(self, t: int, g: GroupLimit, backs: list[Values], chi: np.ndarray) -> None:
        tensor = g.tensor
        if tensor.kind == "matrix":
            cols = [self._outer_columns(e, backs, chi) for e in tensor.entries]
            if g.linear:
                for e, (a, b) in zip(tensor.entries, cols, strict=True):
                    self.low[e].step(t, a, b, g.rate, g.decay)
            elif tensor.entries:
                self.pair[tensor.entries[0]][0].step(t, cols, g.rate, g.decay)
                _check(t, tensor, self.pair[tensor.entries[0]][0].d)
            return
        grads = [self._gradient(e, tensor.kind, backs, chi) for e in tensor.entries]
        qs = self.steppers[tensor.name].step(t, grads)
        for e, q in zip(tensor.entries, qs, strict=True):
            p = self.params[e] * (1.0 - g.decay) - g.rate * q
            _check(t, tensor, [p])
            self.params[e] = p

    def _outer_columns(self, entry: str, backs: list[Values], chi: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
        """G_W = Σ_j Σ_i χ_ij Σ_u |a_u(ξ^i)⟩⟨b_u(ξ^i)| as columns (a·χ, b), (M, k) each."""
        left, right = [], []
        for j, (bp, values) in enumerate(zip(self.bps, backs, strict=True)):
            for use in bp.grads.matrix_uses(entry):
                a, b = use.outer
                left.append(np.broadcast_to(values[a], (self.m, chi.shape[0])) * chi[:, j])
                right.append(np.broadcast_to(values[b], (self.m, chi.shape[0])))
        if not left:
            return np.zeros((self.m, 0)), np.zeros((self.m, 0))
        return np.hstack(left), np.hstack(right)

    def _gradient(self, entry: str, kind: str, backs: list[Values], chi: np.ndarray
                  ) -> np.ndarray:
        """Σ_j Σ_i χ_ij |dV(ξ^i)⟩ (vector, (M, 1)) or Σ χ dΘ(ξ^i) (scalar, (1,))."""
        shape = (self.m, 1) if kind == "vector" else (1,)
        total = np.zeros(shape)
        for j, (bp, values) in enumerate(zip(self.bps, backs, strict=True)):
            name = bp.grads.get(entry)
            if name is None:
                continue
            if name in self.deferred[j]:
                total = total + contract(self.deferred[j][name], values, self.m, chi[:, j])
                continue
            full = (self.m, chi.shape[0]) if kind == "vector" else (chi.shape[0],)
            total = total + (np.broadcast_to(values[name], full) @ chi[:, j]).reshape(shape)
        return total


def _columns(values: Values, batch: list[int], points: int) -> Values:
    """The forward values restricted to the batch's columns (broadcast ones kept); a batch of
    consecutive points (the usual schedule) is a slice, a view, instead of a fancy-index copy."""
    first = batch[0]
    pick: slice | list[int] = (slice(first, first + len(batch))
                               if batch == list(range(first, first + len(batch))) else batch)
    out: Values = {}
    for k, v in values.items():
        out[k] = v[..., pick] if v.shape[-1] == points and points > 1 else v
    return out


def _check(t: int, tensor: TensorTraining, arrays: Sequence[np.ndarray]) -> None:
    for a in arrays:
        if not np.all(np.isfinite(a)):
            bad = "NaN" if np.isnan(a).any() else "Inf"
            raise NumericError(f"μ-limit step {t}: {bad} in {tensor.kind} {tensor.name} after its "
                               "update; the training diverges, try a smaller lr")
