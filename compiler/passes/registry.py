"""The pass registry (the xDSL way): a pass is a frozen options dataclass plus a pure run function
``(Program, options) → result``, registered by name.

Every pass declares its result by a :class:`ResultType`: the result's class, the verifier for
it, the :class:`Program` it carries on to the next pass (None for a terminal result such as the
kets of ``lower``, which no Program pass can take) and how it prints. So what a later step needs
(backprop's gradient map, the total program's per-input maps, the kernel entries) is part of a
typed result instead of being thrown away, and each result is checked by the verifier of its own
type. :mod:`compiler.passes.pipeline` runs passes and verifies after each. The golden files (with
the round trip of 07 §7.3) and the verify-every-sample test run every pass with its ``sample``
options on every sample.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from compiler.errors import UsageError
from compiler.ir import Program
from compiler.printer import print_program
from compiler.verify import verify

R = TypeVar("R")
Opts = TypeVar("Opts", bound="PassOptions[Any]")


@dataclass(frozen=True)
class PassOptions(Generic[R]):
    """Base of every pass's frozen options dataclass; ``R`` is the class of the pass's result, so
    ``run_pass(program, BackpropOptions())`` is typed ``Backprop``."""


@dataclass(frozen=True)
class ResultType(Generic[R]):
    """What a pass produces: the result class, its verifier (raises VerifyError), the Program it
    carries on (None: terminal), its printed form (default: the carried program, printed) and the
    suffix of its golden files."""

    cls: type[R]
    verify: Callable[[R], object]
    program: Callable[[R], Program] | None
    printer: Callable[[R], str] | None = None
    suffix: str = "nx"

    def text(self, result: R) -> str:
        if self.printer is not None:
            return self.printer(result)
        assert self.program is not None, "a terminal result type needs a printer"
        return print_program(self.program(result))


PROGRAM: ResultType[Program] = ResultType(Program, verify, lambda p: p)
"""A plain program (01 §1.2), checked by :func:`compiler.verify.verify`."""


@dataclass(frozen=True)
class PassInfo(Generic[Opts, R]):
    """A registered pass. ``sample``: the options it runs with on the bundled samples (golden
    files, verify-every-sample test), None when the samples lack what it needs; ``golden``:
    whether its printed result on every sample is pinned by a golden file."""

    name: str
    options: type[Opts]
    run: Callable[[Program, Opts], R]
    result: ResultType[R]
    doc: str
    sample: Opts | None
    golden: bool


PASSES: dict[str, PassInfo[Any, Any]] = {}
BY_OPTIONS: dict[type, PassInfo[Any, Any]] = {}

PASS_MODULES = (
    "compiler.passes.dce",
    "compiler.passes.backprop",
    "compiler.passes.total",
    "compiler.passes.kernel_program",
    "compiler.passes.lower",
    "compiler.passes.unroll",
)
"""Modules that register passes when imported."""


def load_passes() -> dict[str, PassInfo[Any, Any]]:
    """The registry with every pass module imported."""
    for module in PASS_MODULES:
        importlib.import_module(module)
    return PASSES


def register_pass(
    name: str,
    options: type[Opts],
    result: ResultType[R],
    sample: Opts | None = None,
    golden: bool = True,
) -> Callable[[Callable[[Program, Opts], R]], Callable[[Program, Opts], R]]:
    """Register ``run`` as pass ``name``, taking ``options`` and producing ``result``."""

    def wrap(run: Callable[[Program, Opts], R]) -> Callable[[Program, Opts], R]:
        known = BY_OPTIONS.get(options)
        if known is not None and known.name != name:
            raise ValueError(f"{options.__name__} already belongs to pass {known.name}")
        doc = (run.__doc__ or "").strip().splitlines()[0] if run.__doc__ else ""
        info = PassInfo(name, options, run, result, doc, sample, golden and sample is not None)
        PASSES[name] = BY_OPTIONS[options] = info
        return run

    return wrap


def get_pass(name: str) -> PassInfo[Any, Any]:
    """The pass called ``name``; a usage error listing the known passes otherwise."""
    load_passes()
    if name not in PASSES:
        raise UsageError(f"unknown pass {name!r}; known: {', '.join(sorted(PASSES))}")
    return PASSES[name]


def pass_of(options: PassOptions[Any]) -> PassInfo[Any, Any]:
    """The pass that takes ``options`` (found by the options' class)."""
    load_passes()
    info = BY_OPTIONS.get(type(options))
    if info is None:
        raise TypeError(f"{type(options).__name__} are not the options of a registered pass")
    return info
