"""Decoupled weight decay of the readout in the neural-tangent limit (spec 05 §5.6, 04 §4.1).

Finite width (04, Eq. 2.50): p_{t+1} = (1 − ηλ)p_t − η n^{-c} Q̃_t, per group, with η·lr the
group's rate (:mod:`runtime.trainer`).  Write ρ = 1 − η·lr·λ for the decaying group R.

**The readout case, derived here.**  Let R be the readout: used once, by the instruction that
makes the output, which is linear and homogeneous in R (``output v * x`` or ``output R @ x``).
Then R_t = ρ^t R_0 + ΔR_t and every other parameter keeps its initial value up to its own small
update, so, linearising in the updates as the NT limit does (05 §5.1–5.2):

* the initial part of the output is f(ρ^t R_0, W_0; ξ) = ρ^t f_0(ξ) (homogeneity);
* the gradient of every other group W is ∝ R (the output's partial derivatives in its other
  arguments are), so at step t it is ρ^t times the one at initialisation, in G_W and in Q's input;
  R's own gradient (the features) does not move;
* an update of W made at step s enters f_t with W's gradient at time t, an update of R with the
  features: the accumulated ΔR decays by ρ per step, ΔW does not.

So per contributing group g, with its function-space accumulator a_g (C values),

    a_{g,t+1} = κ_g a_{g,t} − η_g E[G_g(ξ) Q̃_{g,t}(s_{g,t} Σ_i χ_{t,i} G_g(ξ^i))],
    f_t = ρ^t f_0 + Σ_g s_{g,t} a_{g,t},

κ_R = ρ, s_{R,t} = 1; κ_W = 1, s_{W,t} = ρ^t for W ≠ R.  With ρ = 1 this is the plain iteration.
For a linear Q the scaled χ goes into the χ-space optimizer state (momentum's history included).

Consequence: f_0 no longer cancels under centring: f̃_t = f_t − f_0 carries (ρ^t − 1)·f_0, a
Gaussian process draw of size O(1) when f_0 survives the limit (NTP), so the centred limit is
random too; it is drawn with the seed like the uncentred one (:func:`random_f0`).

**Decay of any other group** is not this module's: a decaying hidden matrix or input layer
rescales the pre-activations by ρ^t at O(1), so the kets at different times are jointly Gaussian
with covariances scaled by powers of ρ (05 §5.6, Def. 2.10.1–2.10.2, Thm 2.10.3); the engine then
evaluates the kets of all T+1 decayed networks at once (:mod:`runtime.limits.nt_timed`, Monte
Carlo only).  :func:`problem` says when that is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from compiler.ir import MatMul, Nonlin, Program, reads
from compiler.train.setup import TensorTraining, Training


@dataclass(frozen=True)
class Decay:
    """The readout group ``group`` decaying by ``rho`` per step (None: no decay)."""

    group: str | None = None
    rho: float = 1.0

    def base(self, t: int) -> float:
        """The factor of f_0 in f_t."""
        return self.rho**t

    def scale(self, name: str, t: int) -> float:
        """s_{g,t}: the factor of group ``name``'s gradient (and of its accumulator) at step t."""
        return 1.0 if name == self.group else self.rho**t

    def keep(self, name: str) -> float:
        """κ_g: the factor of the accumulated update per step."""
        return self.rho if name == self.group else 1.0

    @property
    def active(self) -> bool:
        return self.group is not None and self.rho != 1.0


NO_DECAY = Decay()


def _decaying(training: Training) -> list[TensorTraining]:
    """Groups with λ ≠ 0; the trainer decays frozen groups too (their rate is 0, not their
    decay), so frozen ones count."""
    return [t for t in training.tensors if t.optimizer.weight_decay != 0]


def _rho(t: TensorTraining) -> float:
    return 1.0 - float(t.optimizer.lr * t.lr * t.optimizer.weight_decay)


def is_readout(program: Program, t: TensorTraining) -> bool:
    """Whether ``t`` is one tensor read only by the output's instruction, which is linear and
    homogeneous in it (so decaying it rescales f_0 and every other gradient by the same ρ^t)."""
    if len(t.entries) != 1 or t.kind == "scalar" or len(program.outputs) != 1:
        return False
    name = t.entries[0]
    users = [i for i in program.body if name in reads(i)]
    if len(users) != 1 or users[0].out != program.outputs[0]:
        return False
    op = users[0]
    if isinstance(op, MatMul):
        return op.matrix == name and op.arg != name
    if not isinstance(op, Nonlin):
        return False
    syms = [s for s in op.formula.free_symbols if getattr(s, "name", None) == name]
    if len(syms) != 1:
        return False
    e = syms[0]
    slope = sympy.diff(op.formula, e)
    return e not in slope.free_symbols and sympy.simplify(op.formula - e * slope) == 0


def problem(training: Training) -> str | None:
    """Why this module cannot take the training's weight decay (None: it can; otherwise the
    engine takes the timed path of :mod:`runtime.limits.nt_timed`)."""
    groups = _decaying(training)
    other = [t.name for t in groups if not is_readout(training.program, t)]
    if other:
        return (f"weight decay on {', '.join(other)}: decaying weights other than the readout "
                "rescale the features by (1 − ηλ)^t, so the kets at different times are jointly "
                "Gaussian with scaled covariances (05 §5.6, Def. 2.10.1); not implemented "
                "(only the readout may decay; set wd=0 on the other groups)")
    return None


def decay_of(training: Training) -> Decay:
    """The readout's decay (NO_DECAY without decay, or when :func:`problem` refuses it)."""
    groups = _decaying(training)
    if len(groups) != 1 or not is_readout(training.program, groups[0]):
        return NO_DECAY
    return Decay(groups[0].name, _rho(groups[0]))


def random_f0(plan_f0: bool, training: Training) -> bool:
    """Whether the limit carries a draw of f_0 (05 §5.1): uncentred, or centred with any decay
    (f̃_t keeps (ρ^t − 1)·f_0, or b_t − b_0 of :mod:`runtime.limits.nt_timed`)."""
    return plan_f0 and (not training.center or bool(_decaying(training)))
