"""What every command shares: the command registry, the report a command returns, loading.

A command is a pure function from parsed options to a :class:`Report` (a JSON document and the
same result as text); printing, ``--json [PATH]`` and errors are the application's job
(:mod:`compiler.cli.app`), so every command, present and coming, follows one output convention.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, TypeVar

from compiler.errors import UsageError

if TYPE_CHECKING:  # command registration (`nexort --help`) must not import sympy
    from compiler.ir import Program

T = TypeVar("T")


@dataclass(frozen=True)
class Report:
    """A command's result: ``doc`` for ``--json`` (without the envelope keys ``ok`` and
    ``command``), ``text`` for a reader; ``more``: the rest of the JSON document, built only
    when JSON is asked for (a large program's dict costs as much as the pass that made it)."""

    doc: dict[str, Any]
    text: str
    more: Callable[[], dict[str, Any]] | None = field(default=None, compare=False)

    def json_doc(self) -> dict[str, Any]:
        return self.doc if self.more is None else {**self.doc, **self.more()}


Run = Callable[[argparse.Namespace], Report]
Options = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    """``nexort NAME``: ``options`` adds its arguments, ``run`` computes its report."""

    name: str
    help: str
    options: Options
    run: Run = field(compare=False)


COMMANDS: dict[str, Command] = {}


def command(name: str, help_text: str, options: Options) -> Callable[[Run], Run]:
    """Register ``nexort NAME`` (the module defining it is listed in ``app.COMMAND_MODULES``)."""

    def register(fn: Run) -> Run:
        COMMANDS[name] = Command(name, help_text, options, fn)
        return fn

    return register


def parse_assignments(
    items: list[str], option: str, convert: Callable[[str], T], what: str
) -> dict[str, T]:
    """``NAME=VALUE`` pairs of a repeated option (``--const S=16``, ``--scalar b=1/4``);
    ``convert`` raises ValueError or ZeroDivisionError on a bad value, named as ``what``."""
    out: dict[str, T] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"{option} wants NAME={what}, got {item!r}")
        try:
            out[name] = convert(value.strip())
        except (ValueError, ZeroDivisionError):
            raise UsageError(f"{option} {name} must be {what}, got {value!r}") from None
    return out


def exact_number(text: str) -> float:
    """A number written as a decimal or fraction (``0.9``, ``3/2``, ``1e-3``)."""
    return float(Fraction(text))


def load(args: argparse.Namespace) -> Program:
    """The architecture file of the command, with its ``--const`` overrides."""
    from compiler.frontend.parse import parse_file

    consts = parse_assignments(args.const, "--const", int, "an integer")
    return parse_file(args.file, consts)


def arch_summary(program: Program) -> dict[str, Any]:
    """The keys every document about a program shares: ``arch`` (its name) and ``inputs`` (the
    input scalar coordinates, in order)."""
    return {"arch": program.name, "inputs": list(program.input_names)}
