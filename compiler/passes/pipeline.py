"""Pipelines: run passes in order and verify after each (the xDSL way).

``run_pipeline(program, [BackpropOptions(), DceOptions(keep=…)])`` type-checks the chain before
computing anything (a terminal result, such as the kets of ``lower``, can only come last),
verifies the input, then runs each pass on the Program carried by the previous result and checks
its result with the verifier of its declared type. A broken invariant fails at once, naming the
pass and quoting the printed instruction. Every step's typed result is kept in the
:class:`PipelineResult` (``find(Backprop).grads``), so nothing a later consumer needs is lost.

Pipelines also have a text form, ``backprop{output=o input_gradients=false},dce``: pass names
separated by commas, options in braces separated by spaces, tuple values separated by commas.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from compiler.errors import UsageError, VerifyError
from compiler.ir import Program
from compiler.passes.registry import PassInfo, PassOptions, get_pass, pass_of
from compiler.verify import verify

R = TypeVar("R")


@dataclass(frozen=True)
class Step:
    """One pass run: its name, its options and its (verified) result."""

    name: str
    options: PassOptions[Any]
    result: object


@dataclass(frozen=True)
class PipelineResult:
    """The input program and every step's result, in order."""

    source: Program
    steps: tuple[Step, ...]

    @property
    def last(self) -> object:
        """The result of the last pass (the input program for an empty pipeline)."""
        return self.steps[-1].result if self.steps else self.source

    @property
    def program(self) -> Program:
        """The last Program of the chain (the input program if no pass carries one)."""
        for step in reversed(self.steps):
            carry = pass_of(step.options).result.program
            if carry is not None:
                return carry(step.result)
        return self.source

    def find(self, cls: type[R]) -> R:
        """The latest result of class ``cls`` (e.g. ``Backprop`` for its gradient map)."""
        for step in reversed(self.steps):
            if isinstance(step.result, cls):
                return step.result
        raise UsageError(f"no pass of this pipeline produced a {cls.__name__}")


def run_pass(program: Program, options: PassOptions[R]) -> R:
    """Run the pass that takes ``options`` on ``program``; its result verified."""
    result = run_pipeline(program, [options]).last
    return typing.cast(R, result)


def run_pipeline(program: Program, passes: Sequence[PassOptions[Any]]) -> PipelineResult:
    """Run ``passes`` in order on ``program``, verifying the input and every result."""
    infos = [pass_of(opts) for opts in passes]
    for info, nxt in itertools.pairwise(infos):
        if info.result.program is None:
            raise UsageError(f"pass {nxt.name} needs a program, but pass {info.name} gives "
                             f"{info.result.cls.__name__} (a terminal result): put it last")
    _checked("in the input of the pipeline", verify, program)
    steps: list[Step] = []
    current = program
    for info, opts in zip(infos, passes, strict=True):
        result = info.run(current, opts)
        _checked(f"after pass {info.name}", info.result.verify, result)
        steps.append(Step(info.name, opts, result))
        if info.result.program is not None:
            current = info.result.program(result)
    return PipelineResult(program, tuple(steps))


def _checked(what: str, verifier: typing.Callable[[Any], object], value: object) -> None:
    try:
        verifier(value)
    except VerifyError as e:
        raise VerifyError(f"{what}: {e.message}", e.loc, e.source) from e


# -- the text form -------------------------------------------------------------------------------
_STEP = re.compile(r"\s*(?P<name>[\w-]+)\s*(?:\{(?P<opts>[^{}]*)\}\s*)?")


def parse_pipeline(text: str) -> list[PassOptions[Any]]:
    """``dce,backprop{output=o}`` → ``[DceOptions(), BackpropOptions(output="o")]``."""
    passes: list[PassOptions[Any]] = []
    pos = 0
    while text.strip():
        m = _STEP.match(text, pos)
        if m is None:
            raise _unreadable(text, pos + len(text[pos:]) - len(text[pos:].lstrip()))
        fields = dict(_option(text, item) for item in (m["opts"] or "").split())
        passes.append(make_options(m["name"], **fields))
        pos = m.end()
        if pos == len(text):
            break
        if text[pos] != ",":
            raise _unreadable(text, pos)
        pos += 1
    return passes


def _unreadable(text: str, pos: int) -> UsageError:
    return UsageError(f"pipeline {text!r}: cannot read from column {pos + 1} "
                      "(expected NAME or NAME{OPTION=VALUE …}, separated by commas)")


def _option(text: str, item: str) -> tuple[str, str]:
    key, eq, value = item.partition("=")
    if not eq or not key:
        raise UsageError(f"pipeline {text!r}: option {item!r} is not OPTION=VALUE")
    return key, value


def make_options(name: str, **fields: object) -> PassOptions[Any]:
    """The options of pass ``name`` from keyword values (strings are converted to the field's
    type: ``true``/``false``, integers, ``none``, comma-separated tuples)."""
    info = get_pass(name)
    hints = typing.get_type_hints(info.options)
    known = {f.name for f in dataclasses.fields(info.options)}
    values = {}
    for key, value in fields.items():
        if key not in known:
            have = ", ".join(sorted(known)) or "none"
            raise UsageError(f"pass {name} has no option {key!r} (options: {have})")
        values[key] = _convert(name, key, value, hints[key]) if isinstance(value, str) else value
    try:
        return typing.cast(PassOptions[Any], info.options(**values))
    except TypeError as e:  # a required option is missing
        raise UsageError(f"pass {name}: {e}") from e


def _convert(name: str, key: str, text: str, hint: Any) -> object:
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        if text.lower() == "none":
            return None
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is tuple:
        return tuple(t for t in text.split(",") if t)
    if hint is bool and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if hint is int and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if hint is str:
        return text
    want = getattr(hint, "__name__", hint)
    raise UsageError(f"pass {name}: option {key}={text!r} is not a {want}")


def describe(info: PassInfo[Any, Any]) -> str:
    """One line per pass for ``--help`` texts: name, options with defaults, first doc line."""
    opts = " ".join(
        f"{f.name}={f.default!r}" if f.default is not dataclasses.MISSING else f.name
        for f in dataclasses.fields(info.options)
    )
    return f"{info.name}{{{opts}}}: {info.doc}" if opts else f"{info.name}: {info.doc}"
