"""Entrywise optimizers as data: the update function Q_t as formulas with named state (04 §4.1).

At step t (t = 0, 1, …) every entry of a parameter tensor sees its gradient g (already multiplied
by n^d, 03 §3.1). An :class:`Optimizer` first updates its state variables simultaneously,
``s ← update_s(g, t, s_1, …, s_k)`` (the right-hand sides see the previous values; before step 0
every s holds ``init_s``), then its update function is ``Q_t = q(g, t, s_1, …, s_k)`` of the new
values. The built-ins (PyTorch's conventions, 04 §4.1 table)::

    sgd                  Q = g
    momentum(beta)       m ← β m + g;                       Q = m
    signsgd(eps)         Q = g / √(g² + ε²)                 (ε = 0: Q = sign(g))
    adam(beta1, beta2, eps, eps_inside=false)
                         m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;
                         Q = m̂ / (√v̂ + ε),  m̂ = m/(1−β₁^{t+1}),  v̂ = v/(1−β₂^{t+1})
                         (eps_inside: Q = m̂ / √(v̂ + ε²), the paper's Eq. 2.2)
    rmsprop(beta, eps)   v ← βv + (1−β)g²;                  Q = g / (√v + ε)
    adagrad(eps)         s ← s + g²;                        Q = g / (√s + ε)

Around Q every optimizer has the learning rate η (``lr``), decoupled weight decay λ (``wd``,
04 §2.10 Eq. 2.50: p ← (1 − ηλ)p − η n^{-c} Q̃; note PyTorch's SGD couples its weight_decay into
the gradient instead) and an optional tensor-wise shaping of Q (Eq. 2.54, N = RMS of Q's entries
over the tensor): ``normalize`` (Q̃ = Q/N) or ``clip=τ`` (Q̃ = Q·min(1, τ/N)); without them Q̃ = Q.
How Q treats the scale of g (memoryless, stationary, linear, scale invariant, adaptive) is
derived from these formulas by :mod:`compiler.train.classes`, never looked up by name.
:meth:`Optimizer.run` is the float64 reference semantics the trainer and the tests check against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import sympy

from compiler.errors import UsageError
from compiler.numbers import rational

if TYPE_CHECKING:
    from compiler.train.classes import OptimizerClass, QClass

G = sympy.Symbol("g", real=True)  # the current gradient entry (times n^d)
T = sympy.Symbol("t", integer=True, nonnegative=True)  # the step index, from 0
ONE, ZERO = sympy.Integer(1), sympy.Integer(0)
Value: TypeAlias = "sympy.Rational | bool"  # an optimizer argument


def state_symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)


@dataclass(frozen=True)
class State:
    """One state variable: its update (of g, t and the previous state) and initial value."""

    name: str
    update: sympy.Expr
    init: sympy.Expr = ZERO

    @property
    def symbol(self) -> sympy.Symbol:
        return state_symbol(self.name)


@dataclass(frozen=True)
class Optimizer:
    """An entrywise update function Q_t with its state, learning rate, decay and shaping."""

    name: str
    q: sympy.Expr
    state: tuple[State, ...] = ()
    args: tuple[tuple[str, Value], ...] = ()  # the optimizer's own arguments, defaults filled in
    lr: sympy.Rational = ONE
    weight_decay: sympy.Rational = ZERO
    normalize: bool = False
    clip: sympy.Rational | None = None
    text: str = field(default="", compare=False)  # as the user wrote it

    def arg(self, name: str) -> Value | None:
        return dict(self.args).get(name)

    @property
    def eps(self) -> sympy.Rational | None:
        eps = self.arg("eps")
        return eps if isinstance(eps, sympy.Rational) else None

    @property
    def symbols(self) -> tuple[sympy.Symbol, ...]:
        return tuple(s.symbol for s in self.state)

    @cached_property
    def classes(self) -> OptimizerClass:
        """How Q treats the history and scale of g, derived from the formulas."""
        from compiler.train.classes import derive

        return derive(self)

    @property
    def qclass(self) -> QClass:
        """The abcd analysis's class of Q (03 §3.1); a UsageError when Q is in none of them."""
        q = self.classes.qclass
        if q is None:
            raise UsageError(f"--opt {self.text or self.name}: {self.classes.summary()}; the abcd "
                             "analysis needs Q linear, scale invariant or adaptive (linear near 0,"
                             " scale invariant at infinity)")
        return q

    def describe(self) -> str:
        text = self.text or self.name
        if self.qclass == "linear":
            return f"{text}: Q linear, d folds into c (Rem. 2.2.4: c_abc = c − d)"
        if self.qclass == "scale_invariant":
            return f"{text}: Q scale invariant (ε = 0), d is irrelevant (Rem. 2.2.6)"
        eps = f"ε = {float(self.eps):g} > 0" if self.eps is not None else "Q not homogeneous"
        return (f"{text}: Q adaptive with {eps}, so the gradient multiplier "
                "n^d matters: faithfulness is required (spec 03 §3.2)")

    def run(self, grads: np.ndarray) -> np.ndarray:
        """Q̃_0 … Q̃_{T−1} (float64) for the gradients ``grads[t]`` of one tensor at steps t."""
        return np.asarray(run(self, np.asarray(grads, dtype=float), _numpy_functions(self)))

    def trajectory(self, p0: np.ndarray, grads: np.ndarray) -> np.ndarray:
        """p_0 … p_T with p_{t+1} = (1 − ηλ)p_t − η Q̃_t (the width factor n^{-c} left out)."""
        qs, p = self.run(grads), np.asarray(p0, dtype=float)
        eta, decay = float(self.lr), float(self.lr * self.weight_decay)
        out = [p]
        for q in qs:
            p = (1 - decay) * p - eta * q
            out.append(p)
        return np.stack(out)


Functions = tuple[Callable[..., Any], tuple[Callable[..., Any], ...], Callable[[Any], Any]]


def run(opt: Optimizer, grads: Any, fns: Functions) -> list[Any]:
    """The shaped updates Q̃_t for gradient tensors ``grads[t]`` (numpy arrays, float or object
    dtype); ``fns`` = (Q, the state updates, RMS) in the arithmetic of the arrays."""
    fq, fupdates, rms = fns
    state = [np.full(np.shape(grads[0]), _scalar(s.init, grads[0])) for s in opt.state]
    out = []
    for t, g in enumerate(grads):
        state = [np.broadcast_to(f(g, t, *state), np.shape(g)) for f in fupdates]
        q = np.broadcast_to(fq(g, t, *state), np.shape(g))
        out.append(_shape(opt, q, rms))
    return out


def _shape(opt: Optimizer, q: Any, rms: Callable[[Any], Any]) -> Any:
    """Eq. 2.54: divide by (normalize) or cap at τ (clip) the RMS of Q over the tensor."""
    if not opt.normalize and opt.clip is None:
        return q
    norm = rms(q)
    if norm == 0:
        return q
    if opt.clip is None:  # normalize
        return q / norm
    return q * min(1, _scalar(opt.clip, norm) / norm)


def _scalar(value: sympy.Expr, like: Any) -> Any:
    """A rational number in the arithmetic of ``like`` (float, or exact-ish mpmath)."""
    sample = np.asarray(like).flat[0]
    if isinstance(sample, float | np.floating):
        return float(value)
    num = rational(value)  # initial values and τ are numbers of the option string
    return type(sample)(int(num.p)) / type(sample)(int(num.q))


def lambdas(opt: Optimizer, modules: str | Sequence[Any]) -> tuple[Callable[..., Any], ...]:
    """Q and each state update as functions of (g, t, *state)."""
    args = (G, T, *opt.symbols)
    return tuple(sympy.lambdify(args, e, modules=modules)
                 for e in (opt.q, *(s.update for s in opt.state)))


def _numpy_functions(opt: Optimizer) -> Functions:
    fq, *fupdates = lambdas(opt, "numpy")
    return fq, tuple(fupdates), lambda q: float(np.sqrt(np.mean(np.square(q))))
