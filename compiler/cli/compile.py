"""``nexort compile FILE``: the flattened program, one instruction per line (parseable source).

JSON: ``arch``, ``inputs`` and the program as data under ``program``
(:func:`compiler.serialize.program_dict`).
"""

from __future__ import annotations

import argparse

from compiler.cli.common import Report, arch_summary, command, load
from compiler.cli.options import file_options


@command("compile", "print the flattened program (one instruction per line)", file_options)
def cmd_compile(args: argparse.Namespace) -> Report:
    from compiler.printer import print_program
    from compiler.serialize import program_dict

    program = load(args)
    text = print_program(program, header=f"flattened from {args.file} by nexort")
    return Report({**arch_summary(program), "program": program_dict(program)}, text)
