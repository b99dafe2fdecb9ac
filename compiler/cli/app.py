"""The ``nexort`` command line: one module per command, one output convention, clean errors.

Every user error (a NexortError, or a bad option value caught by the parser) prints as
``FILE:LINE:COL: error: MESSAGE`` (with the source line and a caret) or names the option, and
exits 1; under ``--json`` the error is also a JSON document (:mod:`compiler.cli.output`).
Anything unexpected prints one line naming it as an internal error and exits 2 (``--debug`` or
NEXORT_DEBUG=1 shows the traceback). ``python -m compiler.cli`` runs this same ``main``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from typing import NoReturn

from compiler.cli import lazy_sympy
from compiler.cli.common import COMMANDS
from compiler.cli.output import (
    check_outputs,
    emit,
    emit_error,
    error_doc,
    json_target_in,
    render_error,
    stderr_line,
)
from compiler.errors import NexortError, UsageError

COMMAND_MODULES = (
    "compile", "check", "exec", "backprop", "total", "abcd", "lower", "limit_scalars",
    "train", "unroll", "coordcheck", "limit", "converge",
)
# Command name -> the module registering it. Start-up: `nexort compile F` imports and builds
# the options of `compile` alone, not of thirteen commands (tested against the registry).
COMMAND_OF_NAME = {m.replace("_", "-"): m for m in COMMAND_MODULES}


class _Parser(argparse.ArgumentParser):
    """Option errors are usage errors: rendered and exited like every other user error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or, when ``argv`` names its command first (after the
    top-level ``--debug``), of that command alone: same parse, same errors, less start-up."""
    wanted = _named_command(argv or [])
    for module in COMMAND_MODULES if wanted is None else (wanted,):
        importlib.import_module(f"compiler.cli.{module}")  # each registers its command
    parser = _Parser(
        prog="nexort",
        description="Compile neural architectures to Tensor Programs and run them at finite width.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for cmd in COMMANDS.values():
        if wanted is None or cmd.name == wanted.replace("_", "-"):
            p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
            cmd.options(p)
    return parser


def _named_command(argv: list[str]) -> str | None:
    """The module of the command ``argv`` names in command position, else None (help, a
    misspelt command, no command: the full parser then answers as before)."""
    rest = [a for a in argv if a != "--debug"]
    return COMMAND_OF_NAME.get(rest[0]) if rest else None


def main(argv: list[str] | None = None) -> int:
    """Run one command. Called without ``argv`` (the console script, ``python -m``), the
    process ends after it: the objects still alive are then frozen, because the interpreter's
    final garbage collections would scan all of them for cycles (0.8 s of CPU after a total
    program of 68k instructions) only to free them at exit anyway."""
    argv_given = argv
    argv = sys.argv[1:] if argv is None else list(argv)
    args: argparse.Namespace | None = None
    try:
        lazy_sympy.install()  # start-up: sympy's tensor module only if used (not by nexort)
        args = build_parser(argv).parse_args(argv)
        cmd = COMMANDS[args.command]
        check_outputs(args.json, getattr(args, "plot", None))
        emit(cmd.run(args), cmd.name, args.json)
        if argv_given is None:  # the process ends now: spare its final collections (gc.freeze)
            gc.freeze()
        return 0
    except NexortError as e:
        _fail(args, argv, e, render_error(e))
        return 1
    except KeyboardInterrupt:
        stderr_line("interrupted")
        return 130
    except BrokenPipeError:  # `nexort … | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # a bug: one clear line unless asked for the traceback
        if (args is not None and args.debug) or os.environ.get("NEXORT_DEBUG"):
            raise
        _fail(args, argv, e, f"internal error: {type(e).__name__}: {e} "
                             "(a bug in nexort; rerun with --debug)")
        return 2


def _fail(args: argparse.Namespace | None, argv: list[str], e: BaseException, text: str) -> None:
    stderr_line(text)
    name = args.command if args is not None else next(
        (a for a in argv if a in COMMANDS), None)
    target = args.json if args is not None else json_target_in(argv)
    emit_error(error_doc(name, e), target)


if __name__ == "__main__":
    sys.exit(main())
