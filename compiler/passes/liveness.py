"""Liveness: the one analysis of which objects some roots depend on (spec 01 §1.2 data flow).

An object is *live* for a set of roots when it is a root or when a live instruction reads it
(matrices, inputs and parameters included). Programs are single-assignment and in dependence
order, so one backward scan over the body finds every live object: no graph, no recursion, so
arbitrarily deep programs are fine. Used by dead-code elimination (roots: the outputs, plus any
kept names) and by backpropagation (root: the differentiated output).
"""

from __future__ import annotations

from collections.abc import Iterable

from compiler.errors import UsageError
from compiler.ir import Program, reads


def live_variables(program: Program, roots: Iterable[str]) -> set[str]:
    """The roots and every object they depend on; a root the program does not define is an error
    (a misspelt name would otherwise make everything dead)."""
    live = set(roots)
    unknown = sorted(live - set(program.kinds))
    if unknown:
        raise UsageError(f"arch {program.name} defines no {', '.join(unknown)}")
    for ins in reversed(program.body):
        if ins.out in live:
            live.update(reads(ins))
    return live
