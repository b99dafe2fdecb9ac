"""Joint samples of the kets the neural-tangent operator reads (spec 05 §5.1–5.2, 01 §1.4).

In the NT limit the features do not move, so K_Q is an expectation over the kets of the total
(forward + backward) program *at initialisation*, on every point at once (05 §5.1).  This module
draws M = R·P of them with the landed Monte Carlo evaluator (:mod:`runtime.limits.montecarlo`,
dot terms included where gradient independence fails, 05 §5.2 / Rem. 2.9.20) and keeps, per
parameter group and entry, the per-sample quantity whose χ-weighted sum is the input of Q:

* a vector entry v:  Z^{dv(ξ)}, the ket of its gradient dv = n·∂F/∂v;
* a matrix W:  G_W(ξ)(Z, Z′) = Σ_{y = Wx} Z^{dy(ξ)} Z′^{x(ξ)} + Σ_{y = Wᵀx} Z^{x(ξ)} Z′^{dy(ξ)},
  the (α, β) entry of W's scaled gradient, where Z (the α side) and Z′ (the β side) are two
  *independent* evaluations of the same ket program (different coordinates of a limit vector
  are iid), so a sample is a pair (Z_p, Z′_p) and no O(M²) pairing is needed (05 §5.2 "Cost").

The joint law over points comes from the *total* program (02 §2.3: one renamed copy of the
backprop program per point, parameters shared), whose hats of W x(ξ^i) are jointly Gaussian
across copies; the landed evaluator treats input columns of one program as independent, so
the copies must be separate vectors.  Cost: each orientation of a weight matrix conditions one hat
per copy on all the earlier ones, O(M·C²) per orientation by Gram–Schmidt in particle space
(:class:`runtime.limits.hats.ParticleHats`; measured on the paper's 104 points, mlp4, Adam: 65536
particles in ~25 s on 2 shared cores, bench/bench_nt_many.py), linear in M.

Each replica has its own particles and dot-coefficient estimates (the evaluator's replicas;
Z and Z′ from differently seeded calls), so the spread of the replicas is an honest standard
error of the whole pipeline.  The output ket o is kept as well: f_0 ~ GP(0, E[o(ξ)o(ξ′)]) when
it is part of the limit (05 §5.1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from compiler.errors import UsageError
from compiler.kets.lowering import KetProgram
from compiler.passes.total import Total
from compiler.train.setup import TensorTraining
from runtime.limits.mccost import budget, estimate_memory
from runtime.limits.montecarlo import evaluate
from runtime.limits.result import LimitOptions

SampleProgress = Callable[[int, int], None]
"""progress(replicas done, replicas in total)."""


@dataclass(frozen=True)
class GroupSamples:
    """One parameter group's per-sample gradient kets: ``values`` is (R, E, P, C), E entries
    (1 for a matrix), stacked so that one matrix product serves the whole group."""

    name: str
    kind: str
    values: np.ndarray

    @property
    def entries(self) -> int:
        return int(self.values.shape[1])


@dataclass(frozen=True)
class NTSamples:
    """The samples of every contributing group, and ``f0_cov`` (R, C, C), each replica's estimate
    of E[o(ξ)o(ξ′)] (None when f_0 is not needed)."""

    groups: tuple[GroupSamples, ...]
    f0_cov: np.ndarray | None
    particles: int
    replicas: int

    @property
    def total(self) -> int:
        return self.particles * self.replicas


@dataclass(frozen=True)
class SampleRequest:
    """What to draw: ``P`` particles in each of ``R`` replicas, ``dot_terms`` False drops every
    dot coefficient (the gradient-independence approximation, for comparison only)."""

    particles: int
    replicas: int
    seed: int
    dot_terms: bool = True
    f0: bool = False
    memory_budget: int | None = None


def _seed(seed: int, replica: int, side: int) -> int:
    """A seed per (replica, side): independent streams for Z, Z′ and every replica."""
    return int(np.random.SeedSequence([seed, replica, side]).generate_state(1)[0])


def _names(total: Total, groups: Sequence[TensorTraining]) -> tuple[list[str], list[str]]:
    """The kets read on the α side (Z) and on the β side (Z′), over every copy ξ^i."""
    assert total.grads is not None
    alpha = [total.name(total.forward.outputs[0], i + 1) for i in range(total.batch)]
    beta: list[str] = []
    for grads in total.grads:
        for t in groups:
            if t.kind == "matrix":
                for use in grads.matrix_uses(t.name):
                    alpha.append(use.outer[0])
                    beta.append(use.outer[1])
            else:
                alpha.extend(g for e in t.entries if (g := grads.get(e)) is not None)
    return alpha, beta


def chunk(kets: KetProgram, req: SampleRequest) -> int:
    """Replicas per evaluation: as many as fit in a quarter of the memory budget (each call of
    the evaluator compiles the program once, so fewer, larger calls are faster)."""
    one = estimate_memory(kets, req.particles, 1, _options(req, 0, 1))  # copies: C = 1
    share = budget(LimitOptions(memory_budget=req.memory_budget)) // 4
    return max(1, min(req.replicas, share // max(one, 1)))


def estimate_bytes(kets: KetProgram, groups: Sequence[TensorTraining], req: SampleRequest,
                   points: int) -> int:
    """The kept samples (one (R, P, C) array per entry), the optimizer state (one (R, P) array
    per entry and state variable, plus Q and its input), and two live evaluations (Z and Z′)."""
    sizes = [(1 if t.kind == "matrix" else len(t.entries), len(t.optimizer.state)) for t in groups]
    entries = sum(e for e, _ in sizes)
    state = sum(e * (k + 2) for e, k in sizes)
    kept = 8 * req.replicas * req.particles * (points * (entries + 1) + state)
    rc = chunk(kets, req)
    one = estimate_memory(kets, req.particles * rc, 1, _options(req, 0, rc))
    return kept + 2 * one


def _options(req: SampleRequest, seed: int, replicas: int) -> LimitOptions:
    return LimitOptions(particles=req.particles * replicas, replicas=replicas, seed=seed,
                        keep_values=True, gradient_independence=not req.dot_terms,
                        memory_budget=req.memory_budget)


def draw(total: Total, kets: KetProgram, groups: Sequence[TensorTraining], x: np.ndarray,
         req: SampleRequest, progress: SampleProgress | None = None) -> NTSamples:
    """The samples of ``groups`` (parameter groups of ``total``'s forward program, ``kets`` its
    lowering) on the points ``x`` (C, d), one copy of the network per point (02 §2.3: the hats
    of W x(ξ^i) across copies are jointly Gaussian); memory is checked by the caller with
    :func:`estimate_bytes`.  Replicas are evaluated in chunks (:func:`chunk`); every chunk and
    side draws from its own seed."""
    inputs = total.bind(x)
    alpha, beta = _names(total, groups)
    c, reps, p = x.shape[0], req.replicas, req.particles
    store = {t.name: np.empty((reps, len(_entry_names(total, t)), p, c)) for t in groups}
    cov = np.empty((reps, c, c)) if req.f0 else None
    rc = chunk(kets, req)
    for start in range(0, reps, rc):
        n = min(rc, reps - start)
        z = _values(kets, inputs, alpha, req, n, _seed(req.seed, start, 0))
        zp = _values(kets, inputs, beta, req, n, _seed(req.seed, start, 1)) if beta else {}
        # every replica of the chunk at once: (P, n, C) per entry, stored as (n, P, C)
        for t in groups:
            for k, arr in enumerate(_gradient_samples(total, t, z, zp)):
                store[t.name][start: start + n, k] = arr.transpose(1, 0, 2)
        if cov is not None:
            o = np.stack([z[total.name(total.forward.outputs[0], i + 1)] for i in range(c)], 2)
            cov[start: start + n] = np.einsum("pni,pnj->nij", o, o) / p
        if progress is not None:
            progress(start + n, reps)
    samples = tuple(GroupSamples(t.name, t.kind, store[t.name]) for t in groups)
    return NTSamples(samples, cov, p, reps)


def _entry_names(total: Total, t: TensorTraining) -> list[str]:
    assert total.grads is not None
    if t.kind == "matrix":
        return [t.name]
    return [e for e in t.entries if total.grads[0].get(e) is not None]


def _values(kets: KetProgram, inputs: dict[str, np.ndarray], names: list[str],
            req: SampleRequest, replicas: int, seed: int) -> dict[str, np.ndarray]:
    """The (P, replicas) samples of ``names`` from one evaluation."""
    res = evaluate(kets, inputs, None, _options(req, seed, replicas), wanted=sorted(set(names)))
    return {n: np.broadcast_to(res.values[n][:, :, 0], (req.particles, replicas))
            for n in names}


def _gradient_samples(total: Total, t: TensorTraining, z: dict[str, np.ndarray],
                      zp: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Per entry, (P, n, C) over the n replicas of a chunk and the copies: Z^{dv(ξ^i)} (vector),
    or G_W(ξ^i)(Z, Z′) summed over W's uses (matrix)."""
    assert total.grads is not None
    if t.kind == "matrix":
        cols = []
        for grads in total.grads:
            uses = grads.matrix_uses(t.name)
            if not uses:
                raise UsageError(f"matrix {t.name} is not used by the output")
            cols.append(sum((z[u.outer[0]] * zp[u.outer[1]] for u in uses),
                            np.zeros_like(z[uses[0].outer[0]])))
        return [np.stack(cols, axis=2)]
    return [np.stack([z[grads[e]] for grads in total.grads], axis=2)
            for e in _entry_names(total, t)]
