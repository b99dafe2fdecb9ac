"""The update function Q_t of one parameter group, stepped one step at a time (04 §4.1).

The same semantics as :meth:`compiler.train.Optimizer.run` (state updated simultaneously from the
previous values, then Q of the new values; shaping by the RMS of Q), but with the state carried
between calls, so that training materialises it once per step instead of replaying the history
(O(T) work, not O(T²)). A parameter *group* (``param U : vector[10]``) is one tensor: every entry
has its own state, and ``normalize``/``clip`` use the RMS over all entries of the group
(:mod:`compiler.train.setup`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from compiler.train.optimizers import Optimizer, lambdas

Functions = tuple[Callable[..., Any], tuple[Callable[..., Any], ...]]


@lru_cache(maxsize=256)
def _functions(opt: Optimizer) -> Functions:
    """Q and the state updates as numpy functions of (g, t, *state), compiled once."""
    fq, *fupdates = lambdas(opt, "numpy")
    return fq, tuple(fupdates)


class GroupStepper:
    """The optimizer state of one group: an array per state variable per entry."""

    def __init__(self, opt: Optimizer, shapes: Sequence[tuple[int, ...]]) -> None:
        self.opt = opt
        self.fq, self.fupdates = _functions(opt)
        self.state: list[list[np.ndarray]] = [
            [np.full(shape, float(s.init)) for s in opt.state] for shape in shapes]

    def step(self, t: int, grads: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Q̃_t for every entry, given each entry's (multiplied) gradient at step t."""
        qs = []
        for k, g in enumerate(grads):
            new = [np.broadcast_to(f(g, t, *self.state[k]), g.shape) for f in self.fupdates]
            self.state[k] = new
            qs.append(np.broadcast_to(self.fq(g, t, *new), g.shape))
        return self._shape(qs)

    def _shape(self, qs: list[np.ndarray]) -> list[np.ndarray]:
        """Eq. 2.54 over the whole group: Q/N (normalize) or Q·min(1, τ/N) (clip)."""
        opt = self.opt
        if not opt.normalize and opt.clip is None:
            return qs
        count = sum(q.size for q in qs)
        norm = float(np.sqrt(sum(float(np.vdot(q, q)) for q in qs) / count))
        if norm == 0:
            return qs
        factor = 1 / norm if opt.clip is None else min(1.0, float(opt.clip) / norm)
        return [q * factor for q in qs]
