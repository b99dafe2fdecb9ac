"""The pass registry: a pass is a pure function Program → Program, registered by name.

:func:`run_pass` runs the verifier on every result, so a pass that breaks an IR invariant fails
at once with the offending instruction quoted. Golden files pin the printed output of every
registered pass on every sample (``tests/test_golden.py``); ``golden`` gives the options used for
that, or None for passes that need data the samples do not carry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from compiler.errors import UsageError
from compiler.ir import Program
from compiler.verify import verify

PassFn = Callable[..., Program]


@dataclass(frozen=True)
class PassInfo:
    name: str
    fn: PassFn
    doc: str
    golden: dict[str, Any] | None = field(default_factory=dict)


PASSES: dict[str, PassInfo] = {}

PASS_MODULES = ("compiler.passes.backprop", "compiler.passes.total")
"""Modules that register further passes when imported (one entry per module)."""


def load_passes() -> dict[str, PassInfo]:
    """The registry with every pass module imported."""
    for module in PASS_MODULES:
        importlib.import_module(module)
    return PASSES


def register_pass(name: str, golden: dict[str, Any] | None = None) -> Callable[[PassFn], PassFn]:
    """Register a pass (``golden``: options for its golden-file run; default {})."""

    def wrap(fn: PassFn) -> PassFn:
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        PASSES[name] = PassInfo(name, fn, doc, {} if golden is None else golden)
        return fn

    return wrap


def run_pass(name: str, program: Program, **options: Any) -> Program:
    """Run pass ``name`` and verify its result."""
    load_passes()
    if name not in PASSES:
        raise UsageError(f"unknown pass {name!r}; known: {', '.join(sorted(PASSES))}")
    return verify(PASSES[name].fn(program, **options))


def dependency_graph(program: Program) -> nx.DiGraph:
    """The derived dependency view: an edge u → v when instruction v reads u (matrices too)."""
    from compiler.ir import reads

    g = nx.DiGraph()
    kinds = program.kinds
    g.add_nodes_from((name, {"kind": kind}) for name, kind in kinds.items())
    for ins in program.body:
        g.add_edges_from((src, ins.out) for src in reads(ins))
    return g


@register_pass("dce")
def dead_code_elimination(program: Program) -> Program:
    """Drop instructions whose results no output depends on (declarations are kept)."""
    g = dependency_graph(program)
    live: set[str] = set(program.outputs)
    for out in program.outputs:
        live |= nx.ancestors(g, out)
    return program.replace(body=tuple(i for i in program.body if i.out in live))
