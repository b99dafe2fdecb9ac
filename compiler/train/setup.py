"""Training as one frozen record: T steps of an abcd-parametrized network (spec 04, 03 §3.1).

A :class:`Training` holds everything that defines training, independent of the width and of how
it is run: the architecture, its resolved abcd-parametrization (03 §3.1) with the output
multiplier e_out, per parameter group (a :class:`TensorTraining`) its exponents (a, b, c, d), its
width-independent constants σ and lr, its :class:`~compiler.train.Optimizer` (Q_t with named state,
04 §4.1) and the powers of n through which it enters the training program (04 §4.3,
:mod:`compiler.train.widths`); the error signal (04 §4.2), the number of steps T, the batch
schedule and centring. Three readers use it: the printer (:meth:`Training.format`), the
finite-width trainer (:mod:`runtime.trainer`) and the unroll pass (04 §4.3) with the limit engines.

Semantics fixed here (the trainer and the unrolled program both follow them), with P the actual
value the architecture computes with, P = n^{-a}p:

* initial values: a matrix P₀ = σ·n^{½−A}·W (W the program's draw, entries N(0, 1/n)); a vector or
  random scalar P₀ = σ·n^{-A}·v (v ~ N(0, 1)); a scalar with a declared value ``= r`` starts at
  P₀ = r (no random term). b = ∞ is a zero initialisation, c = ∞ a frozen tensor.
* step t: f_t on every point (train and test), χ_t = ε(f̃_t) on the step's batch (zero elsewhere;
  f̃ = f − f₀ when centring, else f), the input of Q is G = n^{D} Σ_i Σ_j χ_ij ∂f_j(ξ^i)/∂P (03 §3.1:
  the gradient of p times n^{d}), and P ← (1 − η·lr·λ)P − η·lr·n^{-C}·Q̃_t(G), with η, λ and the
  shaping Q̃ of the optimizer (04 §4.1; η·lr is the tensor's rate, per-tensor constant lr).
* a parameter *group* (``param U : vector[10]``) is one tensor for the optimizer: its RMS for
  ``normalize``/``clip`` runs over all its entries (one n×d input layer in PyTorch terms).
* mini-batches: step t trains on the ``batch_size`` consecutive training points starting at
  (t·b) mod B_train, cycling; χ is divided by the batch size (04 §4.2: mean over the batch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Literal

import sympy

from compiler.abcd.conditions import Exp, fmt
from compiler.abcd.param import Exponents, Parametrization, resolve
from compiler.errors import UsageError
from compiler.ir import Program
from compiler.train.optimizers import Optimizer
from compiler.train.options import parse_optimizer
from compiler.train.signals import ErrorSignal, parse_signal
from compiler.train.widths import (
    ParamWidthExponents,
    TrainingWidthExponents,
    training_width_exponents,
)

if TYPE_CHECKING:
    from compiler.passes.total import Total


@dataclass(frozen=True)
class TensorTraining:
    """One parameter group: how it is initialised, scaled and updated (03 §3.1, 04 §4.1)."""

    name: str
    kind: Literal["matrix", "vector", "scalar"]
    entries: tuple[str, ...]  # the program's entry names (U[0], …, or the name itself)
    exponents: Exponents
    sigma: sympy.Rational  # init std constant σ (width independent)
    lr: sympy.Rational  # per-tensor learning-rate constant (width independent)
    optimizer: Optimizer
    widths: ParamWidthExponents
    init: sympy.Rational | None = None  # a declared deterministic initial value (scalars)

    @property
    def frozen(self) -> bool:
        """c = ∞: learning rate 0."""
        return bool(sympy.oo == self.exponents.C)

    @property
    def zero_init(self) -> bool:
        """b = ∞: initialised at 0."""
        return self.init is None and bool(sympy.oo == self.exponents.A)

    def format(self) -> str:
        e = self.exponents
        abcd = ", ".join(fmt(x) for x in e.as_tuple())
        powers = "; ".join(f"{where.split(': ', 1)[1]} n^{fmt(k)}" for where, k in
                           self.widths.items())
        consts = f" σ={self.sigma} lr={self.lr}" if (self.sigma, self.lr) != (1, 1) else ""
        return (f"{self.kind} {self.name}: (a,b,c,d) = ({abcd}){consts}; opt "
                f"{self.optimizer.text or self.optimizer.name}; {powers}")


@dataclass(frozen=True)
class Schedule:
    """Which points each step trains on: B_train training points then B_test test points; step t
    uses ``batch_size`` consecutive training points from (t·batch_size) mod B_train, cycling."""

    n_train: int
    n_test: int
    batch_size: int

    @property
    def n_points(self) -> int:
        return self.n_train + self.n_test

    def points(self) -> tuple[str, ...]:
        """Point labels in data order: ``train:0`` …, then ``test:0`` …"""
        return (*(f"train:{i}" for i in range(self.n_train)),
                *(f"test:{i}" for i in range(self.n_test)))

    def batch(self, t: int) -> tuple[int, ...]:
        """The indices (into the training points) of step t's batch."""
        start = t * self.batch_size
        return tuple((start + j) % self.n_train for j in range(self.batch_size))

    @property
    def full_batch(self) -> bool:
        return self.batch_size == self.n_train


@dataclass(frozen=True)
class Training:
    """T steps of training ``program`` under ``param`` (see the module docstring)."""

    program: Program
    param: Parametrization
    tensors: tuple[TensorTraining, ...]
    signal: ErrorSignal
    steps: int
    schedule: Schedule
    center: bool
    widths: TrainingWidthExponents

    @property
    def e_out(self) -> Exp:
        return self.param.e_out

    @property
    def outputs(self) -> int:
        """k, the number of outputs f_j (one per output vector of the architecture)."""
        return len(self.program.outputs)

    def __getitem__(self, name: str) -> TensorTraining:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def with_optimizers(self, optimizers: Mapping[str, Optimizer]) -> Training:
        """The same training with some groups' optimizers replaced (by group name)."""
        unknown = set(optimizers) - {t.name for t in self.tensors}
        if unknown:
            raise UsageError(f"no parameter group named {', '.join(sorted(unknown))} in arch "
                             f"{self.program.name}")
        tensors = tuple(replace(t, optimizer=optimizers.get(t.name, t.optimizer))
                        for t in self.tensors)
        return replace(self, tensors=tensors)

    @cached_property
    def symbols(self) -> frozenset[sympy.Symbol]:
        """Free symbols of the exponents (``up:s``): a finite-width run needs none."""
        return self.param.symbols

    @cached_property
    def totals(self) -> tuple[Total, ...]:
        """The per-step total program over all points (02 §2.3), one per output f_j (its
        gradient maps give every dy, x of ∂f_j/∂W); built on first use."""
        from compiler.passes.pipeline import run_pass
        from compiler.passes.total import TotalOptions

        return tuple(run_pass(self.program, TotalOptions(self.schedule.n_points, output=o,
                                                         input_gradients=False))
                     for o in self.program.outputs)

    def format(self) -> str:
        s = self.schedule
        lines = [f"training {self.program.name}: T = {self.steps} steps, parametrization "
                 f"{self.param.name} (e_out = {fmt(self.e_out)}), error signal {self.signal.name}"
                 f"{', centred' if self.center else ''}",
                 f"points: {s.n_train} train, {s.n_test} test; batch {s.batch_size}"
                 f"{' (full)' if s.full_batch else ' (consecutive slices, cycling)'}"]
        lines += [f"  {t.format()}" for t in self.tensors]
        lines.append(f"  output f: n^{fmt(self.widths.output)}·avg(o)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def build_training(program: Program, param_spec: str | Parametrization,
                   opt_spec: str | Optimizer, loss_spec: str | ErrorSignal, steps: int,
                   n_train: int, n_test: int = 0, batch_size: int | None = None,
                   center: bool = False) -> Training:
    """The training record; strings are parsed as the options ``--param``, ``--opt`` and
    ``--loss`` (located errors), bad counts are errors naming their option."""
    param = resolve(param_spec, program) if isinstance(param_spec, str) else param_spec
    opt = parse_optimizer(opt_spec) if isinstance(opt_spec, str) else opt_spec
    signal = parse_signal(loss_spec) if isinstance(loss_spec, str) else loss_spec
    _check_counts(steps, n_train, n_test, batch_size)
    check_signal(program, signal)
    widths = training_width_exponents(program, param)
    tensors = tuple(
        TensorTraining(p.name, p.kind, p.names, param[p.name], param.table[p.name].sigma,
                       param.table[p.name].lr, opt, widths[p.name], p.init)
        for p in program.params)
    schedule = Schedule(n_train, n_test, batch_size or n_train)
    return Training(program, param, tensors, signal, steps, schedule, center, widths)


def check_signal(program: Program, signal: ErrorSignal) -> None:
    """Cross-entropy needs k ≥ 2 outputs: the softmax of one logit is 1, so χ would vanish."""
    if signal.kind == "softmax" and len(program.outputs) < 2:
        raise UsageError(f"--loss {signal.name}: cross-entropy needs k ≥ 2 outputs (arch "
                         f"{program.name} has {len(program.outputs)}; softmax of one logit is 1, "
                         "so χ would vanish); use mse or list several outputs")


def _check_counts(steps: int, n_train: int, n_test: int, batch_size: int | None) -> None:
    if steps <= 0:
        raise UsageError(f"--steps must be a positive integer (T ≥ 1), got {steps}")
    if n_train <= 0:
        raise UsageError(f"the data must have at least one training point (X_train has {n_train}"
                         " rows)")
    if n_test < 0:
        raise UsageError(f"X_test cannot have {n_test} rows")
    if batch_size is not None and not 1 <= batch_size <= n_train:
        raise UsageError(f"--batch-size must be between 1 and the {n_train} training points, "
                         f"got {batch_size}")
