"""The size of an unrolled loop, estimated before unrolling it (spec 06 "for").

Unrolling ``for t in 0..S { for s in 0..t+1 { a[t][s] = avg(q[t] * k[s]) } }`` with S = 2000
builds two million instructions; doing so to find out takes minutes. :func:`loop_instructions`
counts instead: every statement of a loop body emits at least one instruction, and at least one
per ``@``, ``avg`` and ``mean[…]`` it contains (a top-level ``sum[…]`` repeats its body's). The
count is a lower bound, so a loop refused for exceeding the instruction cap would have exceeded it.

Loop bounds are evaluated with the loop variables of enclosing loops bound; a bound that is not a
plain constant expression (or fails to evaluate) counts its loop as empty, and the unroller then
reports it. Loops whose bodies hold no inner loop are multiplied, not enumerated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy
from lark import Token, Tree

from compiler.errors import NexortError, ProgramError

if TYPE_CHECKING:
    from compiler.frontend.flatten import Flattener

MAX_INSTRUCTIONS = 1_000_000
"""The largest program the front end builds: beyond this a file is a runaway loop."""
_INSTRUCTIONS = frozenset({"matmul", "avg", "mean"})
_CONSTANT = frozenset({"number", "ref", "add", "sub", "mul", "div", "neg", "pow"})
_ENUMERATION_BUDGET = 1_000_000  # loop iterations enumerated before settling for the count so far


def check_loop_size(fl: Flattener, node: Tree, loop: str) -> None:
    """Refuse the top-level for statement ``node`` (described as ``loop``) if unrolling it would
    take the program past MAX_INSTRUCTIONS."""
    least = len(fl.body) + loop_instructions(fl, node, MAX_INSTRUCTIONS)
    if least > MAX_INSTRUCTIONS:
        msg = f"unrolling {loop} gives at least {least} instructions; the cap is {MAX_INSTRUCTIONS}"
        raise fl.fail(ProgramError, msg, node)


def loop_instructions(fl: Flattener, node: Tree, cap: int) -> int:
    """A lower bound on the instructions unrolling the for statement ``node`` emits; counting
    stops once it exceeds ``cap``."""
    return _Counter(fl, cap).loop(node)


class _Counter:
    def __init__(self, fl: Flattener, cap: int) -> None:
        self.fl, self.cap, self.work = fl, cap, 0

    def loop(self, node: Tree) -> int:
        var_tok, lo_node, hi_node, block = node.children
        lo, hi = self.bound(lo_node), self.bound(hi_node)
        if lo is None or hi is None or hi <= lo:
            return 0
        stmts = [c for c in block.children if isinstance(c, Tree)]
        if not any(s.data == "for_stmt" or self.sums(s) for s in stmts):
            return (hi - lo) * sum(self.statement(s) for s in stmts)
        var, total = str(var_tok), 0
        shadowed = self.fl.scope.get(var)  # an error the unroller reports; leave the scope as found
        try:
            for t in range(lo, hi):
                self.fl.scope[var] = sympy.Integer(t)
                total += sum(self.statement(s) for s in stmts)
                self.work += 1
                if total > self.cap or self.work > _ENUMERATION_BUDGET:
                    break
        finally:
            if shadowed is None:
                self.fl.scope.pop(var, None)
            else:
                self.fl.scope[var] = shadowed
        return total

    def statement(self, stmt: Tree) -> int:
        if stmt.data == "for_stmt":
            return self.loop(stmt)
        return max(1, self.count(stmt))

    def count(self, tree: Tree) -> int:
        """Instruction nodes of ``tree``; a sum[…] counts its body once per term."""
        total, stack = 0, [tree]
        while stack:
            node = stack.pop()
            if node.data == "sum_over":
                _, lo_node, hi_node, body = node.children
                lo, hi = self.bound(lo_node), self.bound(hi_node)
                inner = _nodes(body)
                total += inner * max(hi - lo, 1) if lo is not None and hi is not None else inner
                continue
            total += node.data in _INSTRUCTIONS
            stack.extend(c for c in node.children if isinstance(c, Tree))
        return total

    def sums(self, stmt: Tree) -> bool:
        """Whether ``stmt`` has a sum[…] over instructions (its count may depend on the loop)."""
        return any(t.data == "sum_over" and _nodes(t.children[3]) for t in stmt.iter_subtrees())

    def bound(self, node: Tree | Token) -> int | None:
        if not isinstance(node, Tree) or not all(
            t.data in _CONSTANT and (t.data != "ref" or len(t.children) == 1)
            for t in node.iter_subtrees()
        ):
            return None
        try:
            return self.fl.constant_int(node, "a loop bound")
        except NexortError:
            return None


def _nodes(tree: Tree | Token) -> int:
    if not isinstance(tree, Tree):
        return 0
    return sum(t.data in _INSTRUCTIONS for t in tree.iter_subtrees())
