"""Entry points from text to a verified Program: :func:`parse_text` and :func:`parse_file`."""

from __future__ import annotations

from pathlib import Path

from compiler.frontend.flatten import flatten
from compiler.frontend.syntax import parse_tree, read_source
from compiler.ir import Program
from compiler.verify import verify


def parse_text(
    text: str, filename: str = "<string>", consts: dict[str, int] | None = None
) -> Program:
    """Parse, flatten and verify one architecture. ``consts`` overrides ``const`` declarations
    (e.g. ``{"S": 16}`` to unroll a sequence model over 16 tokens)."""
    tree = parse_tree(text, filename)
    return verify(flatten(tree, filename, text, consts))


def parse_file(path: str | Path, consts: dict[str, int] | None = None) -> Program:
    """Parse the architecture file at ``path`` (errors name the file)."""
    return parse_text(read_source(path), str(path), consts)
