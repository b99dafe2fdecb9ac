"""The unrolled training program as a pass (spec 04 §4.3): T steps of training, one flat program.

Training a network for T steps under an abcd-parametrization (03 §3.1) with an entrywise optimizer
(04 §4.1) and an error signal (04 §4.2) is itself a NE⊗OR⊤ program: step s is the
backpropagation program (02 §2.2) on every point of the step's batch (the forward program on the
others), followed by the error signal χ_s and the parameters' updates; the updated matrices act
through OuterNonlins of order 1 whose ψ is Q_s of the whole gradient history, vectors and
scalars update through Nonlins, every power of n is an explicit factor n^k of a formula (in μP
there is none: the program is width free, :func:`compiler.train.widths.check_width_free`).
The rules are those of :mod:`compiler.passes.unroll_steps`, on the semantics of
:mod:`compiler.train.setup` (the :class:`~compiler.train.setup.Training` record).

The program's initial objects are the architecture's parameters (the same draws as every other
program of it, :func:`runtime.params.draw_parameters`), the input coordinates of every point
(``xi_ξi``) and the target y of every training point (``target_ξi``, ``target_ξi[j]`` for k > 1
outputs); its outputs are the output vectors o_j of every step and point, and F_t(ξ^i) = avg(o)
is the scalar ``F_ti_ξi`` (``Fj_ti_ξi``; :attr:`Unrolled.f_names`), so f_t = n^{1−e_out}·F_t
(:meth:`Unrolled.f`). With k > 1 outputs the gradient variables of output j end in ``_oj``.
Registered as the pass ``unroll`` (options :class:`UnrollOptions`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter

import numpy as np

from compiler.errors import DuplicateError, UsageError, VerifyError
from compiler.ir import Input, Program
from compiler.passes.backprop import backprop_map
from compiler.passes.registry import PassOptions, ResultType, register_pass
from compiler.passes.total import input_array, per_input
from compiler.passes.unroll_steps import StepBuilder, check_supported, target_name
from compiler.train.setup import Training, build_training
from compiler.verify import verify


@dataclass(frozen=True)
class Unrolled:
    """The unrolled training program, the training it unrolls and where f_t lives."""

    program: Program
    training: Training
    f_names: tuple[tuple[tuple[str, ...], ...], ...]  # [t][point][j]: F_t(ξ^i) = avg(o_j)

    @property
    def steps(self) -> int:
        return self.training.steps

    def bind(self, x: object, y: object) -> dict[str, np.ndarray]:
        """{input name: (1,) array} for :func:`runtime.executor.execute`: ``x`` (points × d, the
        training points first) and ``y`` (B_train or B_train × k targets)."""
        s, k = self.training.schedule, self.training.outputs
        xs = input_array(self.training.program, x)
        ys = np.asarray(y, dtype=np.float64).reshape(-1, k)
        if xs.shape[0] != s.n_points or ys.shape[0] != s.n_train:
            raise UsageError(f"the unrolled program takes {s.n_points} points and {s.n_train} "
                             f"× {k} targets, got {xs.shape[0]} and {ys.shape[0]} × {k}")
        names = self.training.program.input_names
        out = {per_input(name, i + 1): xs[i, j:j + 1].copy()
               for i in range(s.n_points) for j, name in enumerate(names)}
        out.update({target_name(i + 1, j, k): ys[i, j:j + 1].copy()
                    for i in range(s.n_train) for j in range(k)})
        return out

    def f(self, scalars: Mapping[str, np.ndarray], width: int) -> np.ndarray:
        """f_t(ξ^i) = n^{1−e_out}·F_t(ξ^i) (minus f_0 when centring) from an execution's values:
        shape (T+1, points), with a trailing output axis when k > 1."""
        scale = float(width) ** float(self.training.widths.output)
        f = np.array([[[float(np.ravel(scalars[x])[0]) for x in point] for point in row]
                      for row in self.f_names]) * scale
        f = f - f[0] if self.training.center else f
        return f if self.training.outputs > 1 else f[..., 0]


def verify_unrolled(result: Unrolled) -> None:
    """The program verifies and every F_t name is one of its scalars."""
    kinds = verify(result.program).kinds
    for row in result.f_names:
        for x in (x for point in row for x in point):
            if kinds.get(x) != "scalar":
                raise VerifyError(f"unrolled program {result.program.name}: F = {x} is not a "
                                  "scalar of the program")


UNROLLED: ResultType[Unrolled] = ResultType(Unrolled, verify_unrolled, attrgetter("program"))


@dataclass(frozen=True)
class UnrollOptions(PassOptions[Unrolled]):
    """``param``, ``opt``, ``loss``: as the options --param, --opt, --loss; ``steps``: T;
    ``batch``: the number of points, of which the first ``train`` (default all) are training
    points and the rest test points; ``batch_size``: the mini-batch b (default all training
    points); ``center``: train f − f₀."""

    param: str = "mup"
    opt: str = "sgd"
    loss: str = "mse"
    steps: int = 1
    batch: int = 1
    train: int | None = None
    batch_size: int | None = None
    center: bool = False

    def training(self, program: Program) -> Training:
        n_train = self.batch if self.train is None else self.train
        if self.batch < 1:
            raise UsageError(f"the training program needs at least one point, got {self.batch}")
        return build_training(program, self.param, self.opt, self.loss, self.steps, n_train,
                              self.batch - n_train, self.batch_size, self.center)


@register_pass("unroll", UnrollOptions, UNROLLED,
               sample=UnrollOptions(param="mup", opt="adam", steps=2, batch=1))
def run_unroll(program: Program, options: UnrollOptions) -> Unrolled:
    """T steps of training as one flat NE⊗OR⊤ program (04 §4.3)."""
    return unroll(options.training(program))


def unroll(training: Training) -> Unrolled:
    """The unrolled training program of ``training`` (see the module docstring)."""
    check_supported(training)
    program = training.program
    bps = [backprop_map(program, o, input_gradients=False) for o in program.outputs]
    steps = StepBuilder(training, bps)
    steps.initial_values()
    schedule = training.schedule
    for s in range(training.steps + 1):
        last = s == training.steps
        batch = () if last else tuple(i + 1 for i in schedule.batch(s))
        steps.forward_backward(s, frozenset(batch), last)
        if not last:
            steps.update(s, steps.error_signal(s, batch))
    inputs = [Input(per_input(inp.name, i), inp.shape)
              for i in range(1, schedule.n_points + 1) for inp in program.inputs]
    k = training.outputs
    inputs += [Input(target_name(i), () if k == 1 else (k,))
               for i in range(1, schedule.n_train + 1)]
    outputs = tuple(steps.name(o, i, s) for s in range(training.steps + 1)
                    for i in range(1, schedule.n_points + 1) for o in program.outputs)
    result = program.replace(name=f"{program.name}_train", inputs=tuple(inputs),
                             body=tuple(steps.body), outputs=outputs)
    _check_unique(result)
    return Unrolled(result, training, tuple(steps.f_names))


def _check_unique(program: Program) -> None:
    """Refuse a program in which a new name collides with one of the architecture's."""
    names = [*program.input_names, *program.param_names(), *(ins.out for ins in program.body)]
    dup = [x for x, k in Counter(names).items() if k > 1]
    if dup:
        raise DuplicateError(f"training program of arch {program.name}: two objects would be "
                             f"called {dup[0]}; rename the variable or parameter {dup[0]}")
