"""``nexort compile FILE``: the flattened program, one instruction per line (parseable source).

JSON: ``arch``, ``inputs`` and the program as data under ``program``
(:func:`compiler.serialize.program_dict`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from compiler.cli.common import Report, arch_summary, command, load
from compiler.cli.options import file_options

if TYPE_CHECKING:
    from compiler.ir import Program


@command("compile", "print the flattened program (one instruction per line)", file_options)
def cmd_compile(args: argparse.Namespace) -> Report:
    from compiler.printer import print_program

    program = load(args)
    text = print_program(program, header=f"flattened from {args.file} by nexort")
    return Report(arch_summary(program), text, more=lambda: _program_doc(program))


def _program_doc(program: Program) -> dict[str, Any]:
    """The program as data, built only for ``--json`` (start-up and large programs)."""
    from compiler.serialize import program_dict

    return {"program": program_dict(program)}
