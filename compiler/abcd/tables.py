"""User parametrization tables in TOML or JSON (spec 03 §3.1).

A table names parameters of the architecture file and gives their exponents::

    name = "mup, readout at half speed"   # optional
    base = "mup"                          # optional: start from a built-in (sp, ntp, mup, up:S)
    e_out = 1                             # the output multiplier; required unless base gives it
    symbols = ["t"]                       # symbols the exponents may use (linear forms)

    [defaults.matrix]                     # per-role defaults: matrix, vector, readout, scalar
    a = 0
    b = "1/2"
    c = 1
    d = 1

    [params.v]                            # a parameter group of the architecture
    c = "t"
    sigma = 1.0                           # init std multiplier (width independent)
    lr = 0.5                              # learning-rate multiplier (width independent, exact: 1/2)

JSON has the same structure. A parameter's row is taken from ``params``, then ``defaults`` of its
role (a readout falls back to ``defaults.vector``), then ``base``. A base that has no row for a
parameter (a scalar under ``ntp``, spec 03 §3.3) is fine when the table gives the whole row. b and
c may be ``"inf"`` (zero initialisation, frozen); a, d and e_out may not. An exponent missing from
all three, an unknown parameter or role, an unknown key and a non-numeric value are errors that
name the file and line (a missing exponent: the parameter's first row, else the file's start).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy

from compiler.abcd.conditions import parse_exponent
from compiler.abcd.param import (
    LETTERS,
    Exponents,
    Parametrization,
    TensorRule,
    builtin,
    param_roles,
)
from compiler.errors import ParametrizationError, UsageError
from compiler.ir import Loc, Program
from compiler.numbers import float_rational

_TOP_KEYS = {"name", "base", "e_out", "symbols", "defaults", "params"}
_ROW_KEYS = {*LETTERS, "sigma", "lr"}
_ROLES = ("matrix", "vector", "readout", "scalar")


class _Source:
    """The table's text, to point errors at the line that defines a key."""

    def __init__(self, path: str, text: str) -> None:
        self.path, self.text = path, text
        self.lines = text.splitlines()

    def loc(self, *keys: str) -> Loc:
        """The first line mentioning the last key after the lines mentioning the others."""
        line = 0
        for key in keys:
            pat = re.compile(rf"(^|[\s\[.\"{{,]){re.escape(key)}([\s\]\".=:]|$)")
            for k in range(line, len(self.lines)):
                m = pat.search(self.lines[k])
                if m:
                    line = k
                    col = m.start() + len(m.group(1)) + 1
                    break
            else:
                return Loc(self.path, line + 1, 1)
        return Loc(self.path, line + 1, col) if keys else Loc(self.path, 1, 1)

    def find(self, section: str, key: str) -> Loc | None:
        """The line that opens [section.key] (TOML) or "section": {… "key": (JSON), None when
        the file has no such row."""
        header = re.compile(rf"^\s*\[\s*{re.escape(section)}\s*\.\s*\"?{re.escape(key)}\"?\s*\]")
        for k, line in enumerate(self.lines):
            m = header.search(line)
            if m:
                return Loc(self.path, k + 1, len(line) - len(line.lstrip()) + 1)
        start = self.text.find(f'"{section}"')
        if start >= 0 and re.search(rf'"{re.escape(key)}"\s*:', self.text[start:]):
            return self.loc(section, key)
        return None

    def error(self, message: str, *keys: str) -> ParametrizationError:
        return ParametrizationError(message, self.loc(*keys), self.text)


def _read(path: str) -> tuple[dict[str, Any], _Source]:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--param {path}: not a built-in (sp, sp:C, ntp, mup, up:S) and no "
                         "such table file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--param {path}: cannot read the table ({e})") from None
    src = _Source(path, text)
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise ParametrizationError(f"not valid JSON: {e.msg}", Loc(path, e.lineno, e.colno),
                                   text) from None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+), column (\d+)", str(e))
        loc = Loc(path, int(m.group(1)), int(m.group(2))) if m else Loc(path, 1, 1)
        raise ParametrizationError(f"not valid TOML: {e}", loc, text) from None
    if not isinstance(data, dict):
        raise src.error("a table must be a TOML table or a JSON object")
    return data, src


def load_table(path: str, program: Program) -> Parametrization:
    """The parametrization a TOML/JSON table defines for ``program``."""
    data, src = _read(path)
    try:
        return _load(data, src, path, program)
    except ParametrizationError as e:
        if e.loc is not None and e.loc.file == path:
            e.with_source(e.loc, src.text)
        raise


def _load(data: dict[str, Any], src: _Source, path: str, program: Program) -> Parametrization:
    unknown = set(data) - _TOP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise src.error(f"unknown key {key!r} (known: {', '.join(sorted(_TOP_KEYS))})", key)
    names = _symbols(data.get("symbols", []), src)
    base = _base(data.get("base"), src, program)
    e_out = _e_out(data, base, names, src)
    roles = param_roles(program)
    defaults = _section(data, "defaults", _ROLES, src, "role")
    params = _section(data, "params", tuple(roles), src, "parameter")
    rows = []
    for p in program.params:
        role = roles[p.name]
        chain = [("params", p.name, params.get(p.name, {})),
                 ("defaults", role, defaults.get(role, {}))]
        if role == "readout":
            chain.append(("defaults", "vector", defaults.get("vector", {})))
        rows.append((p.name, _row(p.name, role, chain, base, names, src)))
    name = str(data.get("name", Path(path).stem))
    return Parametrization(name, e_out, tuple(rows), tuple(roles.items()))


def _symbols(value: Any, src: _Source) -> tuple[str, ...]:
    names_ok = isinstance(value, list) and all(isinstance(s, str) and s.isidentifier()
                                               for s in value)
    if not names_ok:
        raise src.error("symbols must be a list of names, e.g. symbols = [\"s\"]", "symbols")
    if "n" in value:
        raise src.error("n is the width and cannot be an exponent symbol", "symbols")
    return tuple(value)


@dataclass(frozen=True)
class _Base:
    """A built-in as a table's base: its name, e_out and row per parameter group (None where
    the built-in allows none, a scalar under NTP: the table must then give the whole row)."""

    name: str
    e_out: sympy.Expr
    rows: dict[str, Exponents | None]


def _base(value: Any, src: _Source, program: Program) -> _Base | None:
    if value is None:
        return None
    found = builtin(value) if isinstance(value, str) else None
    if found is None:
        raise src.error(f"base must name a built-in (sp, sp:C, ntp, mup, up:S), got {value!r}",
                        "base")
    roles = param_roles(program)
    return _Base(found.name, found.e_out,
                 {p.name: found.by_role[roles[p.name]] for p in program.params})


def _e_out(data: dict[str, Any], base: _Base | None, names: tuple[str, ...],
           src: _Source) -> sympy.Expr:
    if "e_out" in data:
        return parse_exponent(data["e_out"], names, "e_out", src.loc("e_out"))
    if base is None:
        raise src.error("missing e_out (the output multiplier f = n^{-e_out} Σ o) and no base "
                        "to take it from")
    return base.e_out


def _section(data: dict[str, Any], key: str, allowed: tuple[str, ...], src: _Source,
             what: str) -> dict[str, dict[str, Any]]:
    section = data.get(key, {})
    if not isinstance(section, dict):
        raise src.error(f"{key} must be a table of {what}s", key)
    for name, row in section.items():
        if name not in allowed:
            raise src.error(f"unknown {what} {name!r} in [{key}]{_suggest(name, allowed)}",
                            key, name)
        if not isinstance(row, dict):
            raise src.error(f"[{key}.{name}] must be a table of a, b, c, d (sigma, lr)", key, name)
        bad = set(row) - _ROW_KEYS
        if bad:
            k = sorted(bad)[0]
            raise src.error(f"unknown key {k!r} in [{key}.{name}] (known: a, b, c, d, sigma, lr)",
                            key, name, k)
    return section


def _suggest(name: str, allowed: tuple[str, ...]) -> str:
    import difflib

    same_case = [a for a in allowed if a.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, allowed, n=1)
    if close:
        return f"; did you mean {close[0]}?"
    return f" (the architecture has: {', '.join(allowed)})" if allowed else ""


def _row(group: str, role: str, chain: list[tuple[str, str, dict[str, Any]]],
         base: _Base | None, names: tuple[str, ...], src: _Source) -> TensorRule:
    values: list[sympy.Expr] = []
    for letter in LETTERS:
        found = next(((sec, key, row[letter]) for sec, key, row in chain if letter in row), None)
        if found is not None:
            sec, key, raw = found
            what = f"[{sec}.{key}] {letter}"
            values.append(parse_exponent(raw, names, what, src.loc(sec, key, letter),
                                         allow_inf=letter in "bc"))
        elif base is not None and base.rows[group] is not None:
            values.append(getattr(base.rows[group], letter))
        else:
            raise _missing(group, role, letter, chain, base, src)
    consts = {}
    for key in ("sigma", "lr"):
        raw = next((row[key] for _, _, row in chain if key in row), None)
        if raw is None:
            consts[key] = sympy.Integer(1)  # the built-ins have no constants
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw < math.inf:
            raise src.error(f"{key} of {group} must be a positive number, got {raw!r}",
                            "params", group, key)
        # exact: lr = 0.5 is 1/2 and 0.1 is 1/10 (item 6), not the binary double
        consts[key] = sympy.Integer(raw) if isinstance(raw, int) else float_rational(raw)
    return TensorRule(Exponents(*values), consts["sigma"], consts["lr"])


def _missing(group: str, role: str, letter: str, chain: list[tuple[str, str, dict[str, Any]]],
             base: _Base | None, src: _Source) -> ParametrizationError:
    """The error for an exponent no row gives, at the first table row of the parameter (its
    [params] row, else its role's [defaults] row, else the base line or the file's start)."""
    where = next((src.find(sec, key) for sec, key, row in chain if row), None)
    if base is not None:  # the base has no row for this parameter (a scalar under NTP)
        message = (f"{role} parameter {group}: base {base.name} gives it no row (spec 03 §3.3: "
                   f"NTP has no scalar parameters, Thm 2.9.19), and exponent {letter} is missing; "
                   f"give all of a, b, c, d in [params.{group}] or [defaults.{role}]")
        where = where or src.loc("base")
    else:
        message = (f"parameter {group} ({role}): missing exponent {letter} (give it in "
                   f"[params.{group}] or [defaults.{role}], or set base)")
    return ParametrizationError(message, where or Loc(src.path, 1, 1), src.text)
