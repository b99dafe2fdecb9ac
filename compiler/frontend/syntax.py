"""Source text → Lark parse tree, with every failure turned into a located NexortError.

The grammar (``grammar/nexort.lark``, spec 06) is LALR(1); the parser is built once per process,
from Lark's cache file in the user's cache directory when one is there (Lark checks it against the
grammar's and the options' hash and rebuilds a stale, torn or foreign one; an unwritable or
missing directory only means no cache).
Failures are classified for the user: not text (EncodingError), unterminated blocks and other
syntax errors (SourceSyntaxError), each with file:line:column. (Malformed numbers lex as
BAD_NUMBER and the flattener reports them, so they get their own class and exact position.)
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

import lark
from lark import Lark, Token, Tree

from compiler.errors import EncodingError, SourceSyntaxError, UsageError
from compiler.ir import Loc

_PRETTY = {
    "_NL": "end of line",
    "$END": "end of file",
    "NAME": "a name",
    "NUMBER": "a number",
    "KIND": "matrix, vector or scalar",
}


def _grammar_text() -> str:
    # The file itself first (an installed package keeps it in compiler/grammar, a source tree
    # in grammar/): importlib.resources costs ~4 ms of start-up and is needed only for a
    # package that is not a directory (a zip).
    here = Path(__file__).resolve().parent.parent
    for path in (here / "grammar" / "nexort.lark", here.parent / "grammar" / "nexort.lark"):
        if path.is_file():
            return path.read_text()
    from importlib import resources

    return resources.files("compiler.grammar").joinpath("nexort.lark").read_text()


@cache
def parser() -> Lark:
    """The LALR parser of the language (built once, or loaded from the cache)."""
    return Lark(
        _grammar_text(),
        start="file",
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        cache=_cache_file() or False,
    )


def _cache_file() -> str | None:
    """Where the built parser is kept: ``$NEXORT_CACHE_DIR``, else ``$XDG_CACHE_HOME/nexort`` or
    ``~/.cache/nexort`` (``NEXORT_CACHE_DIR=`` with an empty value turns the cache off). Named by
    the Lark and Python versions, so that two environments do not overwrite each other's."""
    root = os.environ.get("NEXORT_CACHE_DIR")
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "nexort")
    if not root:
        return None
    try:
        os.makedirs(root, exist_ok=True)
    except OSError:  # read-only home or no home: build the parser every time
        return None
    py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return os.path.join(root, f"grammar-lark{lark.__version__}-py{py}.pickle")


def read_source(path: str | Path) -> str:
    """The text of a source file; a clean error for missing, unreadable or binary files."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except (IsADirectoryError, PermissionError, OSError) as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    return decode_source(data, str(path))


def decode_source(data: bytes, filename: str) -> str:
    """UTF-8 text of ``data``; EncodingError at the first byte that is not text."""
    bad = data.find(b"\x00")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = e.start if bad < 0 else min(bad, e.start)
        text = ""
    if bad >= 0:
        line = data.count(b"\n", 0, bad) + 1
        col = bad - (data.rfind(b"\n", 0, bad) + 1) + 1
        raise EncodingError(
            f"not a text file: byte 0x{data[bad]:02x} at offset {bad} is not UTF-8 text",
            Loc(filename, line, col),
        )
    return text


def parse_tree(text: str, filename: str = "<string>") -> Tree:
    """Parse ``text``; raise a located NexortError (never a Lark exception)."""
    try:
        return parser().parse(text)
    except lark.exceptions.UnexpectedCharacters as e:
        raise SourceSyntaxError(
            f"unexpected character {text[e.pos_in_stream or 0]!r}",
            Loc(filename, e.line, e.column),
            text,
        ) from None
    except lark.exceptions.UnexpectedToken as e:
        raise _token_error(text, filename, e) from None
    except lark.exceptions.UnexpectedEOF:
        raise _eof_error(text, filename, set()) from None


def _token_error(text: str, filename: str, e: lark.exceptions.UnexpectedToken) -> Exception:
    tok = e.token
    if tok.type == "$END":
        return _eof_error(text, filename, set(e.expected))
    shown = "end of line" if tok.type == "_NL" else repr(str(tok))
    loc = Loc(filename, tok.line, tok.column, getattr(tok, "end_column", None))
    return SourceSyntaxError(f"unexpected {shown}; expected {_expected(e.expected)}", loc, text)


def _expected(names: set[str]) -> str:
    pretty = []
    for name in sorted(names):
        if name in _PRETTY:
            pretty.append(_PRETTY[name])
            continue
        try:
            pattern = parser().get_terminal(name).pattern
            pretty.append(repr(pattern.value) if pattern.type == "str" else name.lower())
        except KeyError:
            pretty.append(name.lower())
    pretty = sorted(set(pretty))
    return pretty[0] if len(pretty) == 1 else ", ".join(pretty[:-1]) + " or " + pretty[-1]


def _eof_error(text: str, filename: str, expected: set[str]) -> SourceSyntaxError:
    brace = _unclosed_brace(text)
    if brace is not None:
        line, col = brace
        return SourceSyntaxError(
            "unterminated block: this '{' is never closed", Loc(filename, line, col), text
        )
    lines = text.splitlines() or [""]
    loc = Loc(filename, len(lines), len(lines[-1]) + 1)
    what = f"; expected {_expected(expected)}" if expected else ""
    return SourceSyntaxError(f"unexpected end of file{what}", loc, text)


def _unclosed_brace(text: str) -> tuple[int, int] | None:
    """The '{' that is never closed. Braces are matched by count, but a '}' that starts a line
    closes the innermost block opened on a line of the same indentation: blocks opened deeper
    and still open at that point are the unclosed ones (the usual cause is a forgotten '}')."""
    stack: list[tuple[int, int, int]] = []  # (line, column, indentation of the opening line)
    unclosed: list[tuple[int, int]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        indent = len(code) - len(code.lstrip())
        for col, ch in enumerate(code, 1):
            if ch == "{":
                stack.append((lineno, col, indent))
            elif ch == "}" and stack:
                starts_line = col == indent + 1
                match = [k for k, e in enumerate(stack) if e[2] == indent] if starts_line else []
                k = match[-1] if match else len(stack) - 1
                unclosed += [(e[0], e[1]) for e in stack[k + 1 :]]
                del stack[k:]
    unclosed += [(e[0], e[1]) for e in stack]
    return min(unclosed) if unclosed else None


def node_loc(node: Tree | Token, filename: str) -> Loc:
    """The source position of a parse-tree node or token (end column when on one line)."""
    if isinstance(node, Token):
        return Loc(filename, node.line or 1, node.column or 1, node.end_column)
    meta = node.meta
    end = meta.end_column if getattr(meta, "end_line", None) == getattr(meta, "line", 0) else None
    return Loc(filename, getattr(meta, "line", 1), getattr(meta, "column", 1), end)
