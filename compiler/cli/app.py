"""The ``nexort`` command line: one subcommand per job, clean errors, never a traceback.

Every NexortError prints as ``FILE:LINE:COL: error: MESSAGE`` with the source line and a caret
and exits 1; anything unexpected prints one line naming it as an internal error and exits 2
(``--debug`` or NEXORT_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys

from compiler.cli.common import COMMANDS
from compiler.errors import NexortError


def _load_commands() -> None:
    """Import the modules that register further subcommands (one import line each)."""
    import compiler.cli.abcd  # abcd
    import compiler.cli.basic  # compile, check, exec
    import compiler.cli.grad  # backprop, total
    import compiler.cli.limits  # noqa: F401 - lower, limit-scalars


def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    parser = argparse.ArgumentParser(
        prog="nexort",
        description="Compile neural architectures to Tensor Programs and run them at finite width.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (fn, options, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        options(p)
        p.set_defaults(func=fn)
    return parser


def _read_quietly(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NexortError as e:
        if e.source is None and e.loc is not None and os.path.isfile(str(e.loc.file)):
            e.source = _read_quietly(str(e.loc.file))  # quote the line of any located error
        print(e.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nexort … | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # a bug: one clear line unless asked for the traceback
        if args.debug or os.environ.get("NEXORT_DEBUG"):
            raise
        print(
            f"internal error: {type(e).__name__}: {e} (a bug in nexort; rerun with --debug)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
