"""Typed evaluation of expressions (spec 06): each sub-expression becomes a value of a kind.

Entrywise arithmetic and function calls build one sympy formula; the operations that are
instructions of their own — ``W @ x`` (MatMul), ``avg(x)`` (Avg), ``mean[b](…)`` (OuterNonlin) —
are hoisted: their operand becomes a variable and the instruction is emitted before the formula
that uses its result (01 §1.2). So ``relu(W @ x + b)`` flattens to ``_1 = W @ x`` and
``relu(_1 + b)``. Kind rules: a matrix is only ever the left side of ``@`` (or ``.T``); ``avg``
takes a vector; a group (``param U : vector[10]``) is indexed (``U[3]``) or contracted
(``U . xi`` = Σ_j U[j]·xi[j]).

Literals, operator chains and powers, and the size limits that keep every formula within what
later passes and engines handle, are in ``frontend/arith``.
"""

from __future__ import annotations

import sympy
from lark import Token, Tree

from compiler.errors import ArityError, KindError, NexortError, NumberError, UndefinedError
from compiler.frontend.arith import Arithmetic
from compiler.frontend.values import Group, Mat, UserFunction, Val, ValKind, Value
from compiler.ir import Avg, Kind, MatMul, OuterNonlin, copy_ref
from compiler.symbols import BUILTINS, CONSTANTS, WIDTH, sym

__all__ = ["ExprEvaluator", "Group", "Mat", "UserFunction", "Val", "Value"]

_NOT_IN_DEF = frozenset({"matmul", "transpose", "contract", "avg", "vec", "mean", "sum_over"})


class ExprEvaluator(Arithmetic):
    """Evaluates expression trees; a subclass supplies the symbol table and instruction sink."""

    filename: str
    source: str
    scope: dict[str, sympy.Integer | sympy.Rational]  # loop variables and constants
    functions: dict[str, UserFunction]

    # -- supplied by the flattener -------------------------------------------------------------
    def resolve(self, node: Tree) -> Value:
        raise NotImplementedError

    def var_kind(self, name: str) -> Kind | None:
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------------------
    def value(self, node: Tree | Token, what: str) -> Val:
        """Evaluate ``node`` and insist on a vector or scalar (``what`` names the context)."""
        v = self.ev(node)
        if isinstance(v, Mat):
            hint = f"; did you mean {v.name}{'.T' if v.transpose else ''} @ x?"
            raise self.fail(KindError, f"matrix {v.name} used as a vector in {what}{hint}", node)
        if isinstance(v, Group):
            hint = " (contract it with '.', e.g. U . xi)" if len(v.shape) == 1 else ""
            msg = f"{v.describe()} used as a single value in {what}; index it{hint}"
            raise self.fail(KindError, msg, node)
        return v

    # -- evaluation -------------------------------------------------------------------------------
    def ev(self, node: Tree | Token) -> Value:
        if isinstance(node, Token):  # a bare NAME never reaches here; numbers are Trees
            raise self.fail(NexortError, f"unexpected token {node}", node)
        if self.def_params is not None and node.data in _NOT_IN_DEF:
            msg = "a def body is an entrywise formula: no @, avg, vec, mean or contraction"
            raise self.fail(KindError, msg, node)
        match node.data:
            case "number":
                return self.number(node)
            case "bad_number":
                raise self.fail(NumberError, f"malformed number {str(node.children[0])!r}", node)
            case "ref":
                return self.resolve(node)
            case "add" | "sub" | "mul" | "div":
                return self.shallow(self.chain(node), node)
            case "pow":
                return self.shallow(self.power(node), node)
            case "neg":
                v = self.value(node.children[0], "'-'")
                return self.shallow(Val(v.kind, -v.expr), node)
            case "call":
                return self.shallow(self.call(node), node)
            case "matmul":
                return self.matmul(node)
            case "transpose":
                return self.transpose(node)
            case "contract":
                return self.contract(node)
            case "avg":
                return self.avg(node)
            case "vec":
                return Val("vector", self.value(node.children[0], "vec(…)").expr)
            case "mean":
                return self.mean(node)
            case "sum_over":
                return self.sum_over(node)
            case other:
                raise self.fail(NexortError, f"unsupported expression {other}", node)

    def call(self, node: Tree) -> Val:
        name_tok, *arg_nodes = node.children
        name = str(name_tok)
        arg_nodes = [a for a in arg_nodes if a is not None]
        if name in self.functions:
            fn = self.functions[name]
            arity, build = len(fn.params), None
        elif name in BUILTINS:
            arity, build = BUILTINS[name].arity, BUILTINS[name].build
        else:
            raise self.fail(UndefinedError, self.unknown_function(name), name_tok)
        if len(arg_nodes) != arity:
            plural = "s" if arity != 1 else ""
            msg = f"{name} takes {arity} argument{plural}, got {len(arg_nodes)}"
            raise self.fail(ArityError, msg, node)
        args = [self.value(a, f"the argument of {name}(…)") for a in arg_nodes]
        if build is None:
            e = fn.body.xreplace(dict(zip(fn.params, (a.expr for a in args), strict=True)))
        else:
            e = build(*(a.expr for a in args))
        kind: ValKind = "vector" if any(a.kind == "vector" for a in args) else "scalar"
        return Val(kind, self.checked(e, node))

    def unknown_function(self, name: str) -> str:
        import difflib

        if self.var_kind(name) is not None or name in self.scope:
            return f"{name} is not a function"
        known = sorted({*BUILTINS, *self.functions})
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (known: {', '.join(known)})"
        return f"unknown function {name}{hint}"

    def matmul(self, node: Tree) -> Val:
        left, right = node.children
        w = self.ev(left)
        if not isinstance(w, Mat):
            what = w.describe() if isinstance(w, Group) else f"a {w.kind}"
            raise self.fail(KindError, f"the left side of @ must be a matrix, got {what}", left)
        x = self.value(right, "the right side of @")
        if x.kind != "vector":
            raise self.fail(KindError, "the right side of @ must be a vector, got a scalar", right)
        arg = self.hoist(x, right)
        out = self.fresh()
        self.emit(MatMul(out, w.name, arg, w.transpose, self.loc(node)))
        return Val("vector", sym(out))

    def transpose(self, node: Tree) -> Mat:
        w = self.resolve(node.children[0])
        if not isinstance(w, Mat):
            what = w.describe() if isinstance(w, Group) else f"a {w.kind}"
            raise self.fail(KindError, f".T applies to a matrix, got {what}", node)
        return Mat(w.name, not w.transpose)

    def contract(self, node: Tree) -> Val:
        a, b = (self.ev(c) for c in node.children)
        groups: list[Group] = []
        for v, child in ((a, node.children[0]), (b, node.children[1])):
            if not isinstance(v, Group) or len(v.shape) != 1 or v.kind == "matrix":
                msg = "'.' contracts two 1-D groups of vectors or scalars (e.g. U . xi)"
                raise self.fail(KindError, msg, child)
            groups.append(v)
        a, b = groups
        if a.shape != b.shape:
            msg = f"cannot contract {a.describe()} with {b.describe()}: lengths differ"
            raise self.fail(KindError, msg, node)
        e = sympy.Add(*(sym(x) * sym(y) for x, y in zip(a.entries(), b.entries(), strict=True)))
        kind: ValKind = "vector" if "vector" in (a.kind, b.kind) else "scalar"
        return Val(kind, e)

    def avg(self, node: Tree) -> Val:
        x = self.value(node.children[0], "avg(…)")
        if x.kind != "vector":
            msg = "avg of a scalar: avg averages the n coordinates of a vector"
            raise self.fail(KindError, msg, node.children[0])
        arg = self.hoist(x, node.children[0])
        out = self.fresh()
        self.emit(Avg(out, arg, self.loc(node)))
        return Val("scalar", sym(out))

    def mean(self, node: Tree) -> Val:
        *idx_toks, body = node.children
        copies = tuple(str(t) for t in idx_toks)
        if self.copies:
            msg = "nested mean[…]: write one mean over all copy indices, e.g. mean[b, c](…)"
            raise self.fail(KindError, msg, node)
        for t in idx_toks:
            if str(t) in self.scope or self.var_kind(str(t)) is not None or str(t) == "n":
                raise self.fail(KindError, f"copy index {t} shadows a name in scope", t)
        if len(set(copies)) != len(copies):
            raise self.fail(KindError, "repeated copy index in mean[…]", node)
        self.copies = copies
        try:
            v = self.value(body, "mean[…](…)")
        finally:
            self.copies = ()
        out = self.fresh()
        self.emit(OuterNonlin(out, copies, v.expr, self.loc(node)))
        return Val("vector", sym(out))

    def sum_over(self, node: Tree) -> Val:
        """``sum[s in a..b](e)``: the unrolled Σ_{s=a}^{b-1} e (a compile-time sum, e.g. over the
        tokens of a sequence)."""
        var_tok, lo_node, hi_node, body = node.children
        var = str(var_tok)
        if var in self.scope or self.var_kind(var) is not None or var in self.copies:
            raise self.fail(KindError, f"sum index {var} shadows a name in scope", var_tok)
        lo = self.constant_int(lo_node, "a sum bound")
        hi = self.constant_int(hi_node, "a sum bound")
        if hi <= lo:
            raise self.fail_index(
                f"sum range {lo}..{hi} is empty (the upper bound is exclusive)", hi_node
            )
        if hi - lo > 100_000:
            raise self.fail_index("sum range longer than 100000", hi_node)
        terms: list[Val] = []
        try:
            for s in range(lo, hi):
                self.scope[var] = sympy.Integer(s)
                terms.append(self.value(body, "sum[…](…)"))
        finally:
            self.scope.pop(var, None)
        return self.add_all(terms, node)

    def constant_int(self, node: Tree, what: str) -> int:
        """Evaluate ``node`` to an integer constant (indices, dims, loop bounds)."""
        v = self.value(node, what)
        if not v.expr.is_Integer:
            raise self.fail_index(f"{what} must be an integer constant, got {v.expr}", node)
        return int(v.expr)

    def fail_index(self, msg: str, node: Tree) -> NexortError:
        from compiler.errors import IndexRangeError

        return self.fail(IndexRangeError, msg, node)

    def width_or_constant(self, name: str) -> Val | None:
        if name == "n":
            return Val("scalar", WIDTH)
        if name in CONSTANTS:
            return Val("scalar", CONSTANTS[name])
        if name in self.scope:
            return Val("scalar", self.scope[name])
        if self.def_params is not None and name in self.def_params:
            return Val("scalar", self.def_params[name])
        return None

    @staticmethod
    def copy_symbol(var: str, copy: str) -> sympy.Symbol:
        return sym(copy_ref(var, copy))
