"""Parse tree → Program: declarations, unrolled loops, one instruction per line (spec 06).

Statements are processed in order. ``for t in a..b { … }`` unrolls with t = a, …, b−1 (the upper
bound is exclusive, as in Rust and Python); an indexed name ``h[t-1]`` becomes the variable
``h[2]``. Every assignment is single (01 §1.2): a second assignment to a name is an error. A scalar
assignment that is not an ``avg`` becomes a constant vector and its average (Lemma 2.6.2 of the
paper: scalar functions of scalars are Nonlin + Avg), so every scalar of a program is an Avg.
Before a top-level loop is unrolled, its instruction count is bounded from below from its bounds
(``frontend/size``), so an oversized loop is refused at once.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import replace

import sympy
from lark import Token, Tree

from compiler.errors import (
    DuplicateError,
    IndexRangeError,
    KindError,
    NexortError,
    ProgramError,
    UndefinedError,
    UsageError,
)
from compiler.frontend.deep import tokens
from compiler.frontend.expr import ExprEvaluator, Group, Mat, UserFunction, Val
from compiler.frontend.size import MAX_INSTRUCTIONS, check_loop_size
from compiler.ir import (
    Avg,
    Input,
    Instruction,
    Kind,
    Loc,
    Nonlin,
    Param,
    Program,
    indexed,
    out_kind,
)
from compiler.symbols import BUILTINS, CONSTANTS, sym

KEYWORDS = frozenset(
    {"def", "arch", "param", "input", "output", "for", "in", "const", "mean", "sum", "avg"}
    | {"vec", "matrix", "vector", "scalar"}
)
RESERVED = KEYWORDS | set(BUILTINS) | set(CONSTANTS) | {"n", "T"}
_TEMP = re.compile(r"^_\d+$")
_TOP_LEVEL_ONLY = frozenset({"input_decl", "param_decl", "const_decl", "output_stmt"})
MAX_ENTRIES = 100_000  # per declared group: beyond this a file is a mistake, not an architecture
MAX_RANGE = 100_000  # iterations of one for loop or sum


class Flattener(ExprEvaluator):
    """Builds one Program from the parse tree of a file."""

    def __init__(self, filename: str, source: str, consts: dict[str, int] | None = None) -> None:
        self.filename, self.source = filename, source
        self.overrides = dict(consts or {})
        self.scope = {}
        self.functions = {}
        self.groups: dict[str, tuple[Kind, tuple[int, ...]]] = {}
        self.kinds: dict[str, Kind] = {}
        self.defined_at: dict[str, Loc] = {}
        self.body: list[Instruction] = []
        self.inputs: list[Input] = []
        self.params: list[Param] = []
        self.outputs: tuple[str, ...] | None = None
        self.taken: set[str] = set()
        self.counter = 0
        self.stmt_start = 0
        self.loop_depth = 0

    # -- ExprEvaluator hooks ----------------------------------------------------------------------
    def emit(self, ins: Instruction) -> None:
        if len(self.body) >= MAX_INSTRUCTIONS:
            msg = f"the program exceeds {MAX_INSTRUCTIONS} instructions (runaway loop?)"
            raise ProgramError(msg, ins.loc, self.source)
        self.body.append(ins)
        self.kinds[ins.out] = out_kind(ins)

    def fresh(self) -> str:
        while True:
            self.counter += 1
            name = f"_{self.counter}"
            if name not in self.taken and name not in self.kinds:
                return name

    def var_kind(self, name: str) -> Kind | None:
        return self.kinds.get(name)

    def resolve(self, node: Tree) -> Val | Mat | Group:
        name_tok, *idx = node.children
        base = str(name_tok)
        if not idx:
            v = self.width_or_constant(base)
            if v is not None:
                return v
        if self.def_params is not None:
            raise self.fail(UndefinedError, f"{base} is not a parameter of this def", name_tok)
        if base in self.groups:
            return self.resolve_group(base, idx, node)
        name = base
        for k, i in enumerate(idx):
            copy = self.copy_index(i)
            if copy is not None:
                if k != len(idx) - 1:
                    raise self.fail(IndexRangeError, "a copy index must come last", i)
                return self.copy_value(name, copy, node)
            name = indexed(name, (self.index(i),))
        kind = self.kinds.get(name)
        if kind is None:
            raise self.fail(UndefinedError, self.undefined(name), node)
        return Val(kind, sym(name))  # type: ignore[arg-type]

    # -- names ------------------------------------------------------------------------------------
    def copy_index(self, node: Tree) -> str | None:
        if isinstance(node, Tree) and node.data == "ref" and len(node.children) == 1:
            name = str(node.children[0])
            if name in self.copies:
                return name
            if self.copies and name not in self.scope and name not in self.kinds:
                declared = ", ".join(self.copies)
                msg = f"copy index {name} is not declared in mean[{declared}]"
                raise self.fail(UndefinedError, msg + f"; write mean[{declared}, {name}]", node)
        return None

    def copy_value(self, var: str, copy: str, node: Tree) -> Val:
        kind = self.kinds.get(var) or (self.groups.get(var, (None,))[0])
        if kind is None:
            raise self.fail(UndefinedError, self.undefined(var), node)
        if kind != "vector":
            why = "scalars are shared by every coordinate" if kind == "scalar" else "use W @ x"
            raise self.fail(KindError, f"{kind} {var} has no copies ({why})", node)
        return Val("vector", self.copy_symbol(var, copy))

    def resolve_group(self, base: str, idx: list[Tree], node: Tree) -> Val | Mat | Group:
        kind, shape = self.groups[base]
        prefix: list[int] = []
        for k, i in enumerate(idx):
            copy = self.copy_index(i)
            if copy is not None and len(prefix) == len(shape) and k == len(idx) - 1:
                return self.copy_value(indexed(base, tuple(prefix)), copy, node)
            if len(prefix) == len(shape):
                dims = "".join(f"[{s}]" for s in shape)
                msg = f"too many indices: {base} is declared {base}{dims}"
                if not shape:
                    msg = f"{base} is a single {kind}; it takes no index"
                raise self.fail(IndexRangeError, msg, i)
            j = self.index(i)
            if not 0 <= j < shape[len(prefix)]:
                bound = shape[len(prefix)]
                msg = f"index {j} out of range for {base}: valid indices are 0..{bound - 1}"
                raise self.fail(IndexRangeError, msg, i)
            prefix.append(j)
        if len(prefix) < len(shape):
            return Group(base, kind, shape[len(prefix) :], tuple(prefix))
        name = indexed(base, tuple(prefix))
        return Mat(name) if kind == "matrix" else Val(kind, sym(name))

    def index(self, node: Tree) -> int:
        """An integer index; a bare unknown name gets a message about what an index can be."""
        if isinstance(node, Tree) and node.data == "ref" and len(node.children) == 1:
            name = str(node.children[0])
            if name not in self.scope and name not in self.kinds and name not in self.groups:
                msg = (
                    f"unknown index {name}: not a loop variable or const "
                    f"(a copy index must be declared by an enclosing mean[{name}](…))"
                )
                raise self.fail(UndefinedError, msg, node)
        return self.constant_int(node, "an index")

    def undefined(self, name: str) -> str:
        known = [*self.kinds, *self.groups, *self.scope]
        close = difflib.get_close_matches(name, known, n=1)
        return f"undefined name {name}" + (f"; did you mean {close[0]}?" if close else "")

    def check_new(self, name: str, node: Tree | Token, declaring: bool = False) -> None:
        base = name.split("[", 1)[0]
        if base in RESERVED:
            raise self.fail(DuplicateError, f"{base} is a reserved name", node)
        if name in self.kinds or base in self.groups or name in self.scope:
            where = self.defined_at.get(name) or self.defined_at.get(base)
            at = f" at line {where.line}" if where else ""
            hint = ""
            if self.loop_depth and name == base:
                hint = "; inside a loop, index it by the loop variable (e.g. x[t])"
            msg = f"{name} is already defined{at} (programs are single-assignment){hint}"
            if declaring:
                msg = f"{name} is already defined{at}; choose another name"
            raise self.fail(DuplicateError, msg, node)

    def define(self, name: str, kind: Kind, node: Tree | Token) -> None:
        self.kinds[name] = kind
        self.defined_at[name] = self.loc(node)

    # -- statements -------------------------------------------------------------------------------
    def statement(self, node: Tree) -> None:
        handler = getattr(self, f"stmt_{node.data}")
        if self.loop_depth and node.data in _TOP_LEVEL_ONLY:
            what = node.data.split("_")[0]
            msg = f"{what} belongs at the top level of arch, not inside a for loop"
            raise self.fail(ProgramError, msg, node)
        self.stmt_start = len(self.body)
        handler(node)

    def block(self, node: Tree) -> None:
        for child in node.children:
            if isinstance(child, Tree):
                self.statement(child)

    def dims(self, node: Tree) -> tuple[int, ...]:
        shape = tuple(self.constant_int(d, "a dimension") for d in node.children)
        for d, child in zip(shape, node.children, strict=True):
            if d < 1:
                raise self.fail(IndexRangeError, f"dimension must be at least 1, got {d}", child)
        if shape and int(math.prod(float(d) for d in shape)) > MAX_ENTRIES:
            msg = f"a declaration may have at most {MAX_ENTRIES} entries, this one has {shape}"
            raise self.fail(IndexRangeError, msg, node)
        return shape

    def declare_group(self, name_tok: Token | Tree, kind: Kind, shape: tuple[int, ...]) -> None:
        name = str(name_tok)
        self.check_new(name, name_tok, declaring=True)
        self.groups[name] = (kind, shape)
        self.defined_at[name] = self.loc(name_tok)
        for idx_name in Param(name, kind, shape).names:
            self.kinds[idx_name] = kind

    def stmt_input_decl(self, node: Tree) -> None:
        name_tok, dims = node.children
        shape = self.dims(dims)
        self.declare_group(name_tok, "scalar", shape)
        self.inputs.append(Input(str(name_tok), shape, self.loc(node)))

    def stmt_param_decl(self, node: Tree) -> None:
        name_tok, kind_tok, dims, init_node = node.children
        kind: Kind = str(kind_tok)  # type: ignore[assignment]
        shape = self.dims(dims)
        init = None
        if init_node is not None:
            if kind != "scalar":
                msg = f"only scalar parameters take an initial value, not a {kind}"
                raise self.fail(KindError, msg, init_node)
            init = self.constant(init_node, "an initial value")
        self.declare_group(name_tok, kind, shape)
        self.params.append(Param(str(name_tok), kind, shape, init, self.loc(node)))

    def constant(self, node: Tree, what: str) -> sympy.Rational:
        v = self.value(node, what)
        if not (v.expr.is_Rational or v.expr.is_Integer):
            raise self.fail(KindError, f"{what} must be a number, got {v.expr}", node)
        return v.expr

    def stmt_const_decl(self, node: Tree) -> None:
        name_tok, expr = node.children
        name = str(name_tok)
        self.check_new(name, name_tok)
        value = self.constant(expr, "a constant")
        if name in self.overrides:
            value = sympy.Integer(self.overrides.pop(name))
        self.scope[name] = value
        self.defined_at[name] = self.loc(name_tok)

    def target(self, node: Tree) -> str:
        name_tok, *idx = node.children
        name = str(name_tok)
        for i in idx:
            name = indexed(name, (self.constant_int(i, "an index"),))
        self.check_new(name, node)
        return name

    def stmt_assign(self, node: Tree) -> None:
        ref, expr = node.children
        name = self.target(ref)
        v = self.ev(expr)
        if isinstance(v, Mat):
            msg = f"cannot assign the matrix {v.name}: programs never create matrices"
            raise self.fail(KindError, msg, expr)
        v = self.value(expr, "an assignment") if not isinstance(v, Val) else v
        last = self.body[-1] if len(self.body) > self.stmt_start else None
        fresh_result = last is not None and v.expr == sym(last.out) and _TEMP.match(last.out)
        if last is not None and fresh_result and (v.kind == "vector" or isinstance(last, Avg)):
            del self.kinds[last.out]
            self.body[-1] = replace(last, out=name)
            self.kinds[name] = v.kind
        elif v.kind == "vector":
            self.emit(Nonlin(name, v.expr, self.loc(expr)))
        else:  # a scalar formula: constant vector, then its average (Lemma 2.6.2)
            tmp = self.fresh()
            self.emit(Nonlin(tmp, v.expr, self.loc(expr)))
            self.emit(Avg(name, tmp, self.loc(expr)))
        self.defined_at[name] = self.loc(ref)

    def stmt_output_stmt(self, node: Tree) -> None:
        if self.outputs is not None:
            raise self.fail(
                DuplicateError, "a second output statement (list all outputs in one)", node
            )
        names = []
        for k, expr in enumerate(node.children):
            v = self.value(expr, "output")
            if v.kind != "vector":
                msg = "an output must be a vector (f = n^{-e_out} Σ_α o_α), got a scalar"
                raise self.fail(KindError, msg, expr)
            if isinstance(v.expr, sympy.Symbol) and self.kinds.get(v.expr.name) == "vector":
                names.append(v.expr.name)
                continue
            name = self.output_name(k, len(node.children))
            self.emit(Nonlin(name, v.expr, self.loc(expr)))
            names.append(name)
        self.outputs = tuple(names)

    def output_name(self, k: int, count: int) -> str:
        base = "out" if count == 1 else f"out{k}"
        name, j = base, 1
        while name in self.kinds or name in self.taken or name in self.groups:
            j += 1
            name = f"{base}_{j}"
        return name

    def stmt_for_stmt(self, node: Tree) -> None:
        var_tok, lo_node, hi_node, block = node.children
        var = str(var_tok)
        self.check_new(var, var_tok)
        lo = self.constant_int(lo_node, "a loop bound")
        hi = self.constant_int(hi_node, "a loop bound")
        if hi < lo:
            msg = f"loop range {lo}..{hi} runs backwards (the upper bound is exclusive)"
            raise self.fail(IndexRangeError, msg, hi_node)
        if hi - lo > MAX_RANGE:
            raise self.fail(IndexRangeError, f"loop range longer than {MAX_RANGE}", hi_node)
        if self.loop_depth == 0:
            check_loop_size(self, node, f"for {var} in {lo}..{hi}")
        self.loop_depth += 1
        try:
            for t in range(lo, hi):
                self.scope[var] = sympy.Integer(t)
                self.block(block)
        finally:
            self.scope.pop(var, None)
            self.loop_depth -= 1

    # -- file -------------------------------------------------------------------------------------
    def define_function(self, node: Tree) -> None:
        name_tok, *rest = node.children
        *param_toks, body = rest
        name = str(name_tok)
        if name in RESERVED or name in self.functions:
            raise self.fail(DuplicateError, f"function {name} is already defined", name_tok)
        params = [str(p) for p in param_toks if p is not None]
        if len(set(params)) != len(params):
            raise self.fail(DuplicateError, f"repeated parameter in def {name}", node)
        dummies = {p: sympy.Dummy(p, real=True) for p in params}
        self.def_params = dummies
        try:
            v = self.value(body, f"def {name}")
        finally:
            self.def_params = None
        self.functions[name] = UserFunction(name, tuple(dummies.values()), v.expr)

    def program(self, tree: Tree) -> Program:
        self.taken = tokens(tree)
        archs = [c for c in tree.children if isinstance(c, Tree) and c.data == "arch"]
        for c in tree.children:
            if isinstance(c, Tree) and c.data == "def_stmt":
                self.define_function(c)
        if not archs:
            msg = "no arch block: a file defines one architecture, arch NAME { … }"
            raise ProgramError(msg, Loc(self.filename, 1, 1), self.source)
        if len(archs) > 1:
            raise self.fail(ProgramError, "a file defines one arch; found another here", archs[1])
        name_tok, block = archs[0].children
        self.block(block)
        if self.overrides:
            unknown = ", ".join(sorted(self.overrides))
            raise UsageError(f"no const named {unknown} in arch {name_tok}")
        if self.outputs is None:
            raise self.fail(ProgramError, f"arch {name_tok} has no output statement", name_tok)
        return Program(
            str(name_tok), tuple(self.inputs), tuple(self.params), tuple(self.body), self.outputs
        )


def flatten(
    tree: Tree, filename: str, source: str, consts: dict[str, int] | None = None
) -> Program:
    """The Program of a parsed file (not yet verified)."""
    try:
        return Flattener(filename, source, consts).program(tree)
    except NexortError as e:
        raise e.with_source(None, source) from None
