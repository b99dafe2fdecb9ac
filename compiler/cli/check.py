"""``nexort check FILE``: parse and verify an architecture; a one-line summary of what it holds."""

from __future__ import annotations

import argparse

from compiler.cli.common import Report, arch_summary, command, load
from compiler.cli.options import file_options


@command("check", "parse and verify an architecture file", file_options)
def cmd_check(args: argparse.Namespace) -> Report:
    program = load(args)
    counts: dict[str, int] = {}
    for ins in program.body:
        counts[type(ins).__name__] = counts.get(type(ins).__name__, 0) + 1
    parameters = {k: len(program.param_names(k)) for k in ("matrix", "vector", "scalar")}
    doc = {
        **arch_summary(program),
        "parameters": parameters,
        "instructions": counts,
        "outputs": list(program.outputs),
    }
    parts = ", ".join(f"{v} {k}" for k, v in counts.items())
    params = ", ".join(f"{v} {k}" for k, v in parameters.items() if v)
    text = (
        f"{args.file}: ok: arch {program.name}: {len(program.input_names)} input coordinates, "
        f"parameters {params}; {len(program.body)} instructions ({parts})"
    )
    return Report(doc, text)
