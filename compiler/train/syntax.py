"""Tokens, located errors and formulas of the training option strings (``--opt``, ``--loss``).

An option string is one line, so an error is located by its column: :class:`OptionError` is a
:class:`~compiler.errors.UsageError` whose message names the option, quotes the string and puts a
caret under the offending text::

    --opt: unknown keyword 'beta3' of adam (known: beta1, beta2, eps, eps_inside, …)
        adam(beta3=0.9)
             ^~~~~

Formulas (user update functions and error signals) use the architecture language's arithmetic
(spec 06): numbers, names, ``+ - * /``, ``^`` (or ``**``, right associative, binding tighter than
unary minus: ``-g^2`` is −(g²)), parentheses and the functions of :data:`FUNCTIONS`. A number is
the exact rational of its decimal text (:func:`compiler.numbers.decimal_rational`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sympy

from compiler.errors import UsageError
from compiler.numbers import decimal_rational

_TOKEN = re.compile(r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>\*\*|[-+*/^(),=]))")

FUNCTIONS: dict[str, tuple[int, Callable[..., sympy.Expr]]] = {
    "sqrt": (1, sympy.sqrt), "abs": (1, sympy.Abs), "sign": (1, sympy.sign),
    "exp": (1, sympy.exp), "log": (1, sympy.log), "tanh": (1, sympy.tanh),
    "max": (2, sympy.Max), "min": (2, sympy.Min),
}


class OptionError(UsageError):
    """A malformed option string; ``column`` (1-based) and ``width`` locate the offending text."""

    def __init__(self, option: str, text: str, column: int, width: int, message: str) -> None:
        caret = " " * (column - 1) + "^" + "~" * max(width - 1, 0)
        super().__init__(f"{option}: {message}\n    {text}\n    {caret}")
        self.option, self.text, self.column, self.width = option, text, column, width
        self.reason = message


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "name", "op" or "end"
    text: str
    column: int  # 1-based

    @property
    def width(self) -> int:
        return max(len(self.text), 1)


class Cursor:
    """The tokens of one option string and the position of the next one."""

    def __init__(self, option: str, text: str) -> None:
        self.option, self.text = option, text
        self.tokens = _tokenize(option, text)
        self.pos = 0

    @property
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return tok

    def accept(self, text: str) -> Token | None:
        return self.next() if self.peek.kind == "op" and self.peek.text == text else None

    def expect(self, text: str, why: str) -> Token:
        tok = self.accept(text)
        if tok is None:
            raise self.error(self.peek, f"expected {text!r} {why}, got {shown(self.peek)}")
        return tok

    def error(self, tok: Token, message: str) -> OptionError:
        return OptionError(self.option, self.text, tok.column, tok.width, message)


def _tokenize(option: str, text: str) -> list[Token]:
    tokens, pos = [], 0
    while text[pos:].strip():
        m = _TOKEN.match(text, pos)
        start = pos + len(text[pos:]) - len(text[pos:].lstrip())
        if m is None or m.lastgroup is None:
            raise OptionError(option, text, start + 1, 1, f"unexpected character {text[start]!r}")
        kind = m.lastgroup
        tokens.append(Token(kind, m.group(kind), m.start(kind) + 1))
        pos = m.end()
        if kind == "num" and pos < len(text) and (text[pos].isalnum() or text[pos] in "._"):
            raise OptionError(option, text, m.start(kind) + 1, pos - m.start(kind) + 1,
                              f"malformed number {text[m.start(kind):pos + 1]!r}")
    tokens.append(Token("end", "", len(text.rstrip()) + 1))
    return tokens


def shown(tok: Token) -> str:
    return "the end of the string" if tok.kind == "end" else repr(tok.text)


def number(cur: Cursor, tok: Token) -> sympy.Rational:
    """The exact value of a number token (an error at it if out of range)."""
    try:
        return decimal_rational(tok.text)
    except ValueError as e:
        raise cur.error(tok, str(e)) from None


def expression(cur: Cursor, names: Mapping[str, sympy.Symbol]) -> sympy.Expr:
    """A formula of the symbols ``names`` (by their spelling); stops before ``,``, ``)``, a
    keyword or the end."""
    value = _term(cur, names)
    while (op := cur.accept("+") or cur.accept("-")) is not None:
        rhs = _term(cur, names)
        value = value + rhs if op.text == "+" else value - rhs
    return value


def _term(cur: Cursor, names: Mapping[str, sympy.Symbol]) -> sympy.Expr:
    value = _unary(cur, names)
    while (op := cur.accept("*") or cur.accept("/")) is not None:
        rhs = _unary(cur, names)
        if op.text == "/" and rhs == 0:
            raise cur.error(op, "division by zero")
        value = value * rhs if op.text == "*" else value / rhs
    return value


def _unary(cur: Cursor, names: Mapping[str, sympy.Symbol]) -> sympy.Expr:
    if cur.accept("-") is not None:
        return -_unary(cur, names)
    if cur.accept("+") is not None:
        return _unary(cur, names)
    base = _atom(cur, names)
    if cur.accept("^") or cur.accept("**"):
        return sympy.Pow(base, _unary(cur, names))
    return base


def _atom(cur: Cursor, names: Mapping[str, sympy.Symbol]) -> sympy.Expr:
    tok = cur.next()
    match tok.kind:
        case "num":
            return number(cur, tok)
        case "name" if tok.text in FUNCTIONS:
            return _call(cur, tok, names)
        case "name" if tok.text in names:
            return names[tok.text]
        case "name":
            known = ", ".join([*names, *FUNCTIONS])
            raise cur.error(tok, f"unknown name {tok.text!r} in a formula (known: {known})")
        case "op" if tok.text == "(":
            inner = expression(cur, names)
            cur.expect(")", "to close the parenthesis")
            return inner
        case "op" | "end":
            raise cur.error(tok, f"expected a number, name or '(', got {shown(tok)}")
        case _:
            raise AssertionError(f"unknown token kind {tok.kind!r}")


def _call(cur: Cursor, fn: Token, names: Mapping[str, sympy.Symbol]) -> sympy.Expr:
    arity, build = FUNCTIONS[fn.text]
    cur.expect("(", f"after the function {fn.text}")
    args = [expression(cur, names)]
    while cur.accept(",") is not None:
        args.append(expression(cur, names))
    cur.expect(")", f"to close {fn.text}(…)")
    if len(args) != arity:
        raise cur.error(fn, f"{fn.text} takes {arity} argument{'s' * (arity > 1)}, "
                            f"got {len(args)}")
    return build(*args)
