"""The ``--opt`` option string: a built-in optimizer or a user formula (04 §4.1).

Grammar (values are decimal numbers, read exactly: ``0.9`` is 9/10)::

    option   := NAME [ "(" [ arg ("," arg)* ] ")" ]
    arg      := [ NAME "=" ] value | FLAG            (a bare flag means flag=true)
    value    := ["-"] NUMBER | "true" | "false"

Positional arguments come first, in the order of :mod:`compiler.train.builtins` (e.g.
``adam(0.9, 0.99, 0)`` = beta1, beta2, eps). Every optimizer also takes ``lr=η`` (default 1),
``wd=λ`` (decoupled weight decay), ``normalize`` and ``clip=τ``. A user update function is::

    formula(Q = EXPR, NAME = EXPR [from NUMBER], …, [lr=…, wd=…, normalize, clip=…])

where each ``NAME = EXPR`` other than Q and the common keywords declares a state variable with its
update (initial value 0 unless ``from`` gives one). The formulas use g (the gradient), t (the step,
from 0) and the state variables: updates see the previous values, Q the new ones, e.g. heavy-ball
momentum is ``formula(Q = m, m = 0.9*m + g)``. Errors are
:class:`~compiler.train.syntax.OptionError` with a caret under the offending text: an unknown
optimizer or keyword (the known ones listed), a non-number, an argument out of range (ε < 0,
β outside [0, 1), lr ≤ 0), a duplicate argument.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import sympy

from compiler.numbers import rational
from compiler.printer import format_formula
from compiler.train.builtins import BUILTINS, COMMON, Arg
from compiler.train.optimizers import ZERO, G, Optimizer, State, T, Value, state_symbol
from compiler.train.syntax import FUNCTIONS, Cursor, Token, expression, number, shown

_FORMULA, _RESERVED = "formula", {"g", "t", "Q", "from", "true", "false"}


def parse_optimizer(text: str, option: str = "--opt") -> Optimizer:
    """``sgd``, ``momentum(0.9)``, ``adam(eps=0, lr=1e-3)``, ``formula(Q = m, m = 0.9*m + g)``…"""
    cur = Cursor(option, text)
    head = cur.next()
    if head.kind != "name" or (head.text not in BUILTINS and head.text != _FORMULA):
        known = ", ".join([*sorted(BUILTINS), _FORMULA])
        raise cur.error(head, f"unknown optimizer {head.text!r} (known: {known})")
    opt = _formula(cur) if head.text == _FORMULA else _builtin(cur, head.text)
    if cur.peek.kind != "end":
        raise cur.error(cur.peek, f"unexpected {cur.peek.text!r} after the optimizer")
    return opt


def _builtin(cur: Cursor, name: str) -> Optimizer:
    b = BUILTINS[name]
    given = _arguments(cur, name, (*b.args, *COMMON))
    own = {a.name: _given_or_default(given, a) for a in b.args}
    q, state = b.build(own)
    wd = given.get("wd", b.wd)
    return _common(Optimizer(name, q, state, tuple(own.items()), text=cur.text.strip()), given,
                   wd if isinstance(wd, sympy.Rational) else ZERO)


def _given_or_default(given: dict[str, Value], arg: Arg) -> Value:
    value = given.get(arg.name, arg.default)
    assert value is not None, arg.name  # every optimizer argument has a default
    return value


def _common(opt: Optimizer, given: dict[str, Value], wd: sympy.Rational) -> Optimizer:
    lr, clip = given.get("lr", sympy.Integer(1)), given.get("clip")
    assert not isinstance(lr, bool) and not isinstance(clip, bool)  # Arg.check: numbers
    return Optimizer(opt.name, opt.q, opt.state, opt.args, lr, wd,
                     bool(given.get("normalize", False)), clip, opt.text)


def _arguments(cur: Cursor, name: str, args: tuple[Arg, ...]) -> dict[str, Value]:
    """The arguments of ``name(…)`` by canonical name, each checked where it is written."""
    out: dict[str, Value] = {}
    spelled = {alias: a for a in args for alias in (a.name, *a.aliases)}
    if cur.accept("(") is None:
        return out
    positional, where, keywords = 0, {}, False
    while cur.peek.text != ")":
        key = _keyword(cur, spelled)
        keywords |= key is not None
        if key is None and keywords:
            raise cur.error(cur.peek, "a positional argument after a keyword argument")
        if key is None and positional >= _positional_count(args):
            raise cur.error(cur.peek, f"{name} takes at most {_positional_count(args)} "
                                      "positional arguments")
        tok = key or cur.peek
        arg = spelled[key.text] if key is not None else args[positional]
        positional += key is None
        value = _value(cur, arg, bare=key is not None and cur.peek.text in (",", ")"))
        if arg.name in out:
            raise cur.error(tok, f"{arg.name} of {name} given twice")
        out[arg.name] = value
        where[arg.name] = tok
        if cur.accept(",") is None:
            break
    cur.expect(")", f"to close {name}(…)")
    if out.get("normalize") and "clip" in out:
        raise cur.error(where["clip"], "normalize and clip exclude each other")
    return out


def _positional_count(args: tuple[Arg, ...]) -> int:
    return sum(1 for a in args if a not in COMMON)


def _keyword(cur: Cursor, spelled: dict[str, Arg]) -> Token | None:
    """The keyword token of ``NAME = …`` or of a bare flag, else None (a positional value)."""
    tok = cur.peek
    if tok.kind != "name" or tok.text in ("true", "false"):
        return None
    if tok.text not in spelled:
        known = ", ".join(a for a, arg in spelled.items() if a == arg.name)
        raise cur.error(tok, f"unknown keyword {tok.text!r} (known: {known})")
    cur.next()
    if cur.accept("=") is None and spelled[tok.text].kind != "flag":
        raise cur.error(cur.peek, f"expected '=' after {tok.text}, got {cur.peek.text!r}")
    return tok


def _value(cur: Cursor, arg: Arg, bare: bool) -> Value:
    if bare and arg.kind == "flag":  # a flag written alone (``lr=)`` is a missing number)
        return True
    start = cur.peek
    value: Value
    if start.kind == "name" and start.text in ("true", "false"):
        cur.next()
        value = start.text == "true"
    else:
        minus = cur.accept("-") is not None
        tok = cur.next()
        if tok.kind != "num":
            raise cur.error(tok, f"{arg.name} must be a number, got {tok.text or 'nothing'!r}")
        value = rational(-number(cur, tok)) if minus else number(cur, tok)
    reason = arg.check(value)
    if reason is not None:
        end = cur.tokens[cur.pos - 1]
        raise cur.error(Token("num", cur.text[start.column - 1:end.column - 1 + end.width],
                              start.column), reason)
    return value


def _formula(cur: Cursor) -> Optimizer:
    cur.expect("(", "after formula (e.g. formula(Q = m, m = 0.9*m + g))")
    common = {a.name: a for a in COMMON}
    heads = _scan_heads(cur)
    names = {t.text: state_symbol(t.text) for t in heads if t.text not in common and t.text != "Q"}
    names |= {"g": G, "t": T}
    q: sympy.Expr | None = None
    state: list[State] = []
    given: dict[str, Value] = {}
    for head in heads:
        cur.pos = cur.tokens.index(head) + 1
        if head.text in common:
            bare = cur.peek.text in (",", ")") and common[head.text].kind == "flag"
            if not bare:
                cur.expect("=", f"after {head.text}")
            given[head.text] = _value(cur, common[head.text], bare)
        elif head.text == "Q":
            cur.expect("=", "after Q")
            q = expression(cur, names)
        else:
            cur.expect("=", f"after the state variable {head.text}")
            state.append(State(head.text, expression(cur, names), _init(cur)))
        if cur.peek.text not in (",", ")"):
            raise cur.error(cur.peek, f"unexpected {shown(cur.peek)} in {head.text} = …")
    cur.expect(")", "to close formula(…)")
    if q is None:
        raise cur.error(cur.tokens[0], "formula(…) needs Q = … (the update function)")
    if given.get("normalize") and "clip" in given:
        clip = next(h for h in heads if h.text == "clip")
        raise cur.error(clip, "normalize and clip exclude each other")
    opt = Optimizer(_FORMULA, q, tuple(state), text=cur.text.strip())
    wd = given.get("wd", ZERO)
    return _common(opt, given, wd if isinstance(wd, sympy.Rational) else ZERO)


def _scan_heads(cur: Cursor) -> list[Token]:
    """The first token of every top-level argument of formula(…), checked to be a new name."""
    heads: list[Token] = []
    depth, expect_head = 0, True
    for tok in cur.tokens[cur.pos:]:
        if expect_head:
            if tok.kind != "name" or tok.text in _RESERVED - {"Q"} or tok.text in FUNCTIONS:
                raise cur.error(tok, f"expected Q or a state name, got {tok.text or 'the end'!r}")
            if any(h.text == tok.text for h in heads):
                raise cur.error(tok, f"{tok.text} defined twice")
            heads.append(tok)
            expect_head = False
        depth += (tok.text == "(") - (tok.text == ")")
        if depth < 0 or tok.kind == "end":
            break
        expect_head = depth == 0 and tok.text == ","
    return heads


def _init(cur: Cursor) -> sympy.Expr:
    if not (cur.peek.kind == "name" and cur.peek.text == "from"):
        return ZERO
    cur.next()
    minus = cur.accept("-") is not None
    tok = cur.next()
    if tok.kind != "num":
        raise cur.error(tok, f"expected a number after 'from', got {tok.text or 'nothing'!r}")
    return -number(cur, tok) if minus else number(cur, tok)


def format_optimizer(opt: Optimizer) -> str:
    """The canonical option string of ``opt`` (it parses back to an equal Optimizer)."""
    common = [f"lr={decimal_text(opt.lr)}"] if opt.lr != 1 else []
    builtin = BUILTINS.get(opt.name)
    if opt.weight_decay != (builtin.wd if builtin else 0):
        common.append(f"wd={decimal_text(opt.weight_decay)}")
    common += ["normalize"] * opt.normalize + ([f"clip={decimal_text(opt.clip)}"]
                                              if opt.clip is not None else [])
    if builtin is not None:
        args = [f"{k}={_value_text(v)}" for k, v in opt.args]
    else:
        args = [f"Q = {_expr_text(opt.q)}"] + [
            f"{s.name} = {_expr_text(s.update)}" + (f" from {decimal_text(s.init)}"
                                                    if s.init != 0 else "") for s in opt.state]
    inner = ", ".join(args + common)
    return f"{opt.name}({inner})" if inner else opt.name


def _value_text(v: Value) -> str:
    return str(v).lower() if isinstance(v, bool) else decimal_text(v)


def _expr_text(e: sympy.Expr) -> str:
    return format_formula(e).replace("Max(", "max(").replace("Min(", "min(")


def decimal_text(r: sympy.Expr) -> str:
    """A decimal literal with exactly the value ``r`` (a rational with a finite decimal)."""
    r = rational(r)
    with localcontext() as ctx:
        ctx.prec = len(str(r.p)) + len(str(r.q)) + 2  # enough for an exact finite decimal
        d = Decimal(int(r.p)) / Decimal(int(r.q))
    if sympy.Rational(str(d)) != r:
        raise ValueError(f"{r} has no finite decimal expansion")
    return format(d.normalize(), "g") if d else "0"
