"""Deeply nested source: measure the nesting of a parse tree and evaluate it with enough stack.

The parser is LALR (its stack is a list), but the flattener evaluates an expression by recursion
over the parse tree, a few Python frames per level: ``tanh(tanh(…(v)…))`` 300 deep needs more than
Python's default 1000 frames. A chain of one associative operator (``a + b - c + …``) is walked
iteratively and does not count. :func:`nesting` measures the depth without recursion; the
flattener then runs with a recursion limit sized to it (in a thread with a large stack, so that
the C stack cannot overflow first), and a tree nested deeper than :data:`MAX_NESTING` is refused
with a located error naming the depth.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from lark import Token, Tree

MAX_NESTING = 5000  # levels of nested expressions; far beyond any generated architecture
CHAINS = {"add": "sum", "sub": "sum", "mul": "product", "div": "product"}
_SHALLOW = 100  # below this the default recursion limit suffices
_FRAMES_PER_LEVEL = 8  # value → ev → call → comprehension → …, with headroom
_STACK_BYTES = 512 * 1024 * 1024  # virtual: only the pages a deep evaluation touches are used

T = TypeVar("T")


def chain_family(node: Tree | Token | None) -> str | None:
    """``"sum"`` or ``"product"`` if ``node`` is a link of an operator chain, else None."""
    return CHAINS.get(str(node.data)) if isinstance(node, Tree) else None


def nesting(tree: Tree) -> tuple[int, Tree]:
    """The deepest evaluation nesting of ``tree`` and the node where it is reached. The left
    operand of a chain link of the same family is at the link's own level."""
    deepest, where = 0, tree
    stack: list[tuple[Tree, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest, where = depth, node
        family = chain_family(node)
        for k, child in enumerate(node.children):
            if isinstance(child, Tree):
                same = k == 0 and family is not None and chain_family(child) == family
                stack.append((child, depth if same else depth + 1))
    return deepest, where


def tokens(tree: Tree) -> set[str]:
    """Every token text of ``tree`` (Lark's ``scan_values`` recurses)."""
    return {str(c) for t in tree.iter_subtrees() for c in t.children if isinstance(c, Token)}


def with_room(depth: int, fn: Callable[[], T]) -> T:
    """``fn()`` with a recursion limit (and stack) for evaluating a tree ``depth`` levels deep."""
    if depth <= _SHALLOW:
        return fn()
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as e:
            failure.append(e)

    old_limit, old_stack = sys.getrecursionlimit(), threading.stack_size()
    sys.setrecursionlimit(max(old_limit, 1000 + _FRAMES_PER_LEVEL * depth))
    try:
        try:
            threading.stack_size(_STACK_BYTES)
            worker = threading.Thread(target=run, name="nexort-deep", daemon=True)
            worker.start()
        except (RuntimeError, ValueError, MemoryError):  # no such stack here: use our own
            threading.stack_size(old_stack)
            return fn()
        threading.stack_size(old_stack)
        worker.join()
    finally:
        threading.stack_size(old_stack)
        sys.setrecursionlimit(old_limit)
    if failure:
        raise failure[0]
    return result[0]
