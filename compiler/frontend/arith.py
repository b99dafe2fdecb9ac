"""Arithmetic of the expression evaluator, within the sizes every later stage can handle.

* Operator chains ``a + b - c …`` and ``a * b / c …`` are walked without recursion (a generated
  sum of 5000 terms is a parse tree 5000 links deep).
* A formula nested deeper than :data:`HOIST_DEPTH` becomes an instruction of its own, exactly as
  ``@`` hoists its operand, so formulas stay within :data:`SOURCE_DEPTH`, well inside the
  verifier's ``MAX_FORMULA_DEPTH`` (``compiler/symbols``);
  likewise a sum or product of more than :data:`MAX_TERMS` operands is split into partial results
  (Python's compiler, which the numpy code generator feeds, recurses once per operand).
* Numeric literals and powers of numbers must be representable floats (``frontend/numbers``):
  ``1e999`` and ``10^10^10`` are refused where they are written, before sympy computes them.

Where nothing can be hoisted (inside a def body, or a formula reading copies inside ``mean[…]``),
the limits are refused instead, with a located error naming the size.
"""

from __future__ import annotations

import sympy
from lark import Token, Tree

from compiler.errors import KindError, NexortError, NumberError, ProgramError
from compiler.frontend.deep import chain_family
from compiler.frontend.numbers import constant_problem, literal_problem, power_problem
from compiler.frontend.syntax import node_loc
from compiler.frontend.values import Val, ValKind
from compiler.ir import Avg, Loc, MatMul, Nonlin, OuterNonlin
from compiler.symbols import BAD_ATOMS, MAX_FORMULA_DEPTH, formula_depth, sym

HOIST_DEPTH = 30
"""A formula nested deeper than this is given its own instruction (its value is unchanged)."""
SOURCE_DEPTH = MAX_FORMULA_DEPTH - 40
"""The deepest formula the front end emits: the 40 levels left are for later passes (a
derivative is a few levels deeper than its formula)."""
DEF_DEPTH = SOURCE_DEPTH - HOIST_DEPTH
"""The deepest def body: inlined around arguments of depth ≤ HOIST_DEPTH it stays within bounds."""
MAX_TERMS = 1000
"""Operands of one sum or product formula; longer chains are split into partial results."""
_OPS = {"add": "'+'", "sub": "'-'", "mul": "'*'", "div": "'/'", "pow": "'^'"}


class Arithmetic:
    """Literals, operator chains and powers; the subclass evaluates operands (:meth:`value`) and
    supplies the instruction sink (:meth:`emit`, :meth:`fresh`)."""

    filename: str
    source: str
    copies: tuple[str, ...] = ()  # copy indices of the enclosing mean[…]
    def_params: dict[str, sympy.Symbol] | None = None  # inside a def body

    def value(self, node: Tree | Token, what: str) -> Val:
        raise NotImplementedError

    def emit(self, ins: MatMul | Avg | Nonlin | OuterNonlin) -> None:
        raise NotImplementedError

    def fresh(self) -> str:
        raise NotImplementedError

    def var_kind(self, name: str) -> str | None:
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------------------
    def loc(self, node: Tree | Token) -> Loc:
        return node_loc(node, self.filename)

    def fail(self, cls: type[NexortError], msg: str, node: Tree | Token) -> NexortError:
        return cls(msg, self.loc(node), self.source)

    def checked(self, expr: sympy.Expr, node: Tree | Token) -> sympy.Expr:
        if expr.has(*BAD_ATOMS):
            raise self.fail(NumberError, f"expression is not a finite real number: {expr}", node)
        return expr

    def has_copy(self, expr: sympy.Expr) -> bool:
        return any(s.name.endswith(tuple(f"[{c}]" for c in self.copies)) for s in expr.free_symbols)

    def hoist(self, v: Val, node: Tree) -> str:
        """The name of a variable holding vector ``v`` (emitting a Nonlin if it is a formula)."""
        if self.has_copy(v.expr):
            msg = "a copy-indexed value cannot pass through @ or avg inside mean[…]"
            raise self.fail(KindError, msg, node)
        if isinstance(v.expr, sympy.Symbol) and self.var_kind(v.expr.name) == "vector":
            return v.expr.name
        name = self.fresh()
        self.emit(Nonlin(name, v.expr, self.loc(node)))
        return name

    def can_hold(self, expr: sympy.Expr) -> bool:
        """Whether ``expr`` can become an instruction here (not a def body, reads no copy)."""
        return self.def_params is None and not self.has_copy(expr)

    def hold(self, v: Val, node: Tree) -> Val:
        """``v`` as a variable: a vector as a Nonlin, a scalar as a constant vector and its
        average (Lemma 2.6.2), as in an assignment."""
        name = self.hoist(Val("vector", v.expr), node)
        if v.kind == "vector":
            return Val("vector", sym(name))
        out = self.fresh()
        self.emit(Avg(out, name, self.loc(node)))
        return Val("scalar", sym(out))

    # -- arithmetic --------------------------------------------------------------------------------
    def number(self, node: Tree) -> Val:
        text = str(node.children[0])
        problem = literal_problem(text)
        if problem is not None:
            raise self.fail(NumberError, problem, node)
        return Val("scalar", sympy.Rational(text))

    def chain(self, node: Tree) -> Val:
        """``a + b - c …`` or ``a * b / c …``, the left spine walked without recursion."""
        links = [node]
        while chain_family(links[-1].children[0]) == chain_family(node):
            links.append(links[-1].children[0])
        first = self.value(links[-1].children[0], _OPS[links[-1].data])
        operands = [first]
        for link in reversed(links):
            b = self.value(link.children[1], _OPS[link.data])
            match link.data:
                case "add" | "mul":
                    operands.append(b)
                case "sub":
                    operands.append(Val(b.kind, -b.expr))
                case "div":
                    if b.expr.is_number and b.expr.is_zero:  # no inference on symbols
                        raise self.fail(NumberError, "division by zero", link.children[1])
                    operands.append(Val(b.kind, 1 / b.expr))
                case other:
                    raise AssertionError(f"not a chain operator: {other}")
        if chain_family(node) == "sum":
            return self.add_all(operands, node)
        return self.multiply_all(operands, node)

    def add_all(self, terms: list[Val], node: Tree) -> Val:
        """The sum of ``terms``: one n-ary Add, equal to the pairwise sums (Add is associative
        in sympy's canonical form) without their quadratic cost. Split every MAX_TERMS terms
        when they do not combine into fewer."""
        while len(terms) > MAX_TERMS and len(sympy.Add.make_args(_sum(terms))) > MAX_TERMS:
            terms = [
                self.split(terms[i : i + MAX_TERMS], sympy.Add, node)
                for i in range(0, len(terms), MAX_TERMS)
            ]
        e = _sum(terms)
        self.check_constant(e, node)
        return Val(_kind(terms), self.checked(e, node))

    def multiply_all(self, factors: list[Val], node: Tree) -> Val:
        """The product of ``factors`` folded pairwise, left to right (sympy distributes a number
        over a sum only in a two-factor product, so an n-ary Mul could differ)."""
        e, kinds, count = factors[0].expr, {factors[0].kind}, 1
        for f in factors[1:]:
            if count == MAX_TERMS:
                e, count = self.split([Val(_kind_of(kinds), e)], sympy.Mul, node).expr, 1
            e, count = e * f.expr, count + 1
            kinds.add(f.kind)
            self.check_constant(e, node)
        return Val(_kind_of(kinds), self.checked(e, node))

    def split(self, part: list[Val], op: type[sympy.Add] | type[sympy.Mul], node: Tree) -> Val:
        """A partial sum or product of a chain longer than MAX_TERMS, held in a variable."""
        v = Val(_kind(part), self.checked(op(*(t.expr for t in part)), node))
        if not self.can_hold(v.expr):
            where = "a def body" if self.def_params is not None else "mean[…]"
            msg = f"more than {MAX_TERMS} operands in one sum or product in {where}"
            raise self.fail(ProgramError, msg, node)
        return self.hold(v, node)

    def power(self, node: Tree) -> Val:
        a = self.value(node.children[0], "'^'")
        b = self.value(node.children[1], "'^'")
        meta = node.meta
        shown = self.source[meta.start_pos : meta.end_pos] if not meta.empty else ""
        problem = power_problem(a.expr, b.expr, shown)
        if problem is not None:
            raise self.fail(NumberError, problem, node)
        e = a.expr**b.expr
        self.check_constant(e, node)
        return Val(_kind([a, b]), self.checked(e, node))

    def check_constant(self, e: sympy.Expr, node: Tree) -> None:
        problem = constant_problem(e)
        if problem is not None:
            raise self.fail(NumberError, problem, node)

    def shallow(self, v: Val, node: Tree) -> Val:
        """``v``, or a variable holding it if its formula is deeper than HOIST_DEPTH."""
        depth = formula_depth(v.expr)
        if depth <= HOIST_DEPTH:
            return v
        if self.can_hold(v.expr):
            return self.hold(v, node)
        in_def = self.def_params is not None
        limit, where = (DEF_DEPTH, "a def body") if in_def else (SOURCE_DEPTH, "mean[…]")
        if depth > limit:
            msg = f"formula nested {depth} levels deep in {where}; at most {limit} are supported"
            raise self.fail(ProgramError, msg, node)
        return v


def _sum(terms: list[Val]) -> sympy.Expr:
    return sympy.Add(*(t.expr for t in terms))


def _kind(vals: list[Val]) -> ValKind:
    return _kind_of({v.kind for v in vals})


def _kind_of(kinds: set[ValKind]) -> ValKind:
    return "vector" if "vector" in kinds else "scalar"
