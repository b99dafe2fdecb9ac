"""What every command shares: the command registry, the file options, loading, progress."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from fractions import Fraction

from compiler.errors import UsageError
from compiler.frontend.parse import parse_file
from compiler.ir import Instruction, Program
from compiler.printer import format_instruction

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[Command, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(
    name: str, help_text: str, options: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Command], Command]:
    """Register ``nexort NAME``: ``options`` adds its arguments."""

    def register(fn: Command) -> Command:
        COMMANDS[name] = (fn, options, help_text)
        return fn

    return register


def _consts(values: list[str]) -> dict[str, int]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--const wants NAME=INTEGER, got {item!r}")
        try:
            out[name.strip()] = int(value)
        except ValueError:
            raise UsageError(f"--const {name.strip()} must be an integer, got {value!r}") from None
    return out


def load(args: argparse.Namespace) -> Program:
    return parse_file(args.file, _consts(args.const))


def _file_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="architecture file (.nx)")
    p.add_argument(
        "--const",
        action="append",
        default=[],
        metavar="NAME=INT",
        help="override a const of the arch (e.g. S=16)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


class Reporter:
    """Progress on stderr for runs longer than a second (only when stderr is a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.monotonic()

    def __call__(self, k: int, total: int, ins: Instruction) -> None:
        if self.enabled and time.monotonic() - self.start > 1.0:
            text = format_instruction(ins)[:60]
            print(f"\r[{k + 1}/{total}] {text:<60}", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled and time.monotonic() - self.start > 1.0:
            print("\r" + " " * 80 + "\r", end="", file=sys.stderr, flush=True)


def _fraction(text: str) -> float:
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


