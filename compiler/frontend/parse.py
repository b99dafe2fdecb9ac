"""Entry points from text to a verified Program: :func:`parse_text` and :func:`parse_file`.

Before flattening, the parse tree's nesting is measured (``frontend/deep``): a tree nested deeper
than ``MAX_NESTING`` is refused at its deepest node, and a deep one is flattened with the stack
it needs.
"""

from __future__ import annotations

from pathlib import Path

from compiler.errors import ProgramError
from compiler.frontend.deep import MAX_NESTING, nesting, with_room
from compiler.frontend.flatten import flatten
from compiler.frontend.syntax import node_loc, parse_tree, read_source
from compiler.ir import Program
from compiler.verify import verify


def parse_text(
    text: str, filename: str = "<string>", consts: dict[str, int] | None = None
) -> Program:
    """Parse, flatten and verify one architecture. ``consts`` overrides ``const`` declarations
    (e.g. ``{"S": 16}`` to unroll a sequence model over 16 tokens)."""
    tree = parse_tree(text, filename)
    depth, deepest = nesting(tree)
    if depth > MAX_NESTING:
        msg = f"expressions nested {depth} levels deep; at most {MAX_NESTING} are supported"
        raise ProgramError(msg, node_loc(deepest, filename), text)
    return verify(with_room(depth, lambda: flatten(tree, filename, text, consts)))


def parse_file(path: str | Path, consts: dict[str, int] | None = None) -> Program:
    """Parse the architecture file at ``path`` (errors name the file)."""
    return parse_text(read_source(path), str(path), consts)
