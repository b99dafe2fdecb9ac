"""Bra-ket printer of a lowered program (spec 01 §1.4 notation), unicode or LaTeX.

Unicode: |x⟩ for the ket of x, |x⟩′ (|x⟩″) for the copies an OuterNonlin averages over (E′),
θ̊ for the limit of an Avg or a parameter scalar, |Ŵx⟩ / |Ŵᵀx⟩ for hat-kets and
E[∂|x⟩/∂|Ŵᵀz⟩] for dot coefficients.  Dot coefficients proven zero are dropped from the equation
and listed with the symmetry that kills them; Stein-rule coefficients are flagged.  LaTeX uses
``\\lvert x\\rangle``, ``\\mathring{\\theta}``, ``\\hat{W}`` and ``\\mathbb{E}`` so lines paste into
papers (one ``align*`` row per ket).
"""

from __future__ import annotations

import re
import unicodedata
from typing import assert_never

import sympy

from compiler.ir import OuterNonlin, formula_args
from compiler.kets.lowering import (
    AvgLimit,
    DotCoeff,
    FormulaKet,
    HatKet,
    InitKet,
    Ket,
    KetProgram,
    MatMulKet,
    ScalarLimit,
)
from compiler.printer import _rows as printer_rows
from compiler.printer import format_formula
from compiler.symbols import sym

_NAME = re.compile(r"^(?P<base>[^\[]*)(?P<idx>(\[\d+\])*)$")
_PRIMES = ("′", "″", "‴")


def _split(name: str) -> tuple[str, list[str]]:
    m = _NAME.match(name)
    if not m:
        return name, []
    return m.group("base"), re.findall(r"\d+", m.group("idx"))


class Notation:
    """How names, hats, limits and coefficients are written (unicode by default)."""

    latex = False

    def ket(self, name: str, copy: int = 0) -> str:
        return f"|{name}⟩" + (_PRIMES[copy - 1] if copy else "")

    def ring(self, name: str) -> str:
        base, idx = _split(name)
        return unicodedata.normalize("NFC", f"{base}\u030a") + "".join(f"[{i}]" for i in idx)

    def hat(self, h: HatKet) -> str:
        t = "ᵀ" if h.transpose else ""
        return unicodedata.normalize("NFC", f"|{h.matrix[0]}\u0302{h.matrix[1:]}{t} {h.arg}⟩")

    def coeff(self, c: DotCoeff) -> str:
        return f"E[∂{self.ket(c.arg)}/∂{self.hat(c.hat)}]"

    def given(self, name: str) -> str:
        """An input scalar (its value comes with the data)."""
        return name

    def formula(
        self,
        expr: sympy.Expr,
        names: dict[sympy.Symbol, str],
        rows: tuple[tuple[str, ...], ...] = (),
    ) -> str:
        return format_formula(expr.xreplace({s: sym(v) for s, v in names.items()}), rows)

    def expect(self, inner: str) -> str:
        return f"E[{inner}]"

    def eq(self, lhs: str, rhs: str, note: str = "") -> str:
        return f"  {lhs} = {rhs}" + (f"    # {note}" if note else "")


class LatexNotation(Notation):
    latex = True

    def _name(self, name: str) -> str:
        base, idx = _split(name)
        m = re.match(r"^([A-Za-z]+)(\d*)$", base)
        if m:
            letters, digits = m.groups()
            body = letters if len(letters) == 1 else rf"\mathit{{{letters}}}"
            sub = [digits] if digits else []
        else:
            body, sub = rf"\mathrm{{{base.replace('_', chr(92) + '_')}}}", []
        sub += idx
        return body + (f"_{{{','.join(sub)}}}" if sub else "")

    def ket(self, name: str, copy: int = 0) -> str:
        return rf"\lvert {self._name(name)}\rangle" + ("'" * copy)

    def ring(self, name: str) -> str:
        return rf"\mathring{{{self._name(name)}}}"

    def given(self, name: str) -> str:
        return self._name(name)

    def hat(self, h: HatKet) -> str:
        m = self._name(h.matrix) + (r"^{\top}" if h.transpose else "")
        return rf"\lvert \widehat{{{m}}}\, {self._name(h.arg)}\rangle"

    def coeff(self, c: DotCoeff) -> str:
        num, den = self.ket(c.arg), self.hat(c.hat)
        return rf"\mathbb{{E}}\Big[\frac{{\partial {num}}}{{\partial {den}}}\Big]"

    def formula(
        self,
        expr: sympy.Expr,
        names: dict[sympy.Symbol, str],
        rows: tuple[tuple[str, ...], ...] = (),
    ) -> str:
        return sympy.latex(expr, symbol_names=names)

    def expect(self, inner: str) -> str:
        return rf"\mathbb{{E}}\big[{inner}\big]"

    def eq(self, lhs: str, rhs: str, note: str = "") -> str:
        return rf"{lhs} &= {rhs}" + (rf" && \text{{{note}}}" if note else "") + r" \\"


def _symbol_names(k: FormulaKet, program: KetProgram, nt: Notation) -> dict[sympy.Symbol, str]:
    own = k.ins.copies if isinstance(k.ins, OuterNonlin) else ()
    copies = {c: i + 1 for i, c in enumerate(own)}
    names = {}
    for s, var, copy in formula_args(k.ins):
        if program.kind(var) == "vector":
            names[s] = nt.ket(var, copies[copy] if copy else 0)
        elif var in program.source.input_names:
            names[s] = nt.given(var)
        else:
            names[s] = nt.ring(var)
    return names


def _rows(program: KetProgram, nt: Notation) -> tuple[tuple[str, ...], ...]:
    """Declared 1-D rows in display names, so Σ_j U[j]·xi[j] prints as ``|U⟩ . xi``."""
    out = []
    for row, *entries in printer_rows(program.source):
        if program.kind(entries[0]) == "vector":
            out.append((nt.ket(row), *(nt.ket(e) for e in entries)))
        elif entries[0] in program.source.input_names:
            out.append((row, *entries))
    return tuple(out)


def format_ket(k: Ket, program: KetProgram, nt: Notation) -> list[str]:
    """The line(s) of one ket statement."""
    match k:
        case ScalarLimit(out=name, source="fixed", value=v):
            return [nt.eq(nt.ring(name), str(v) if not nt.latex else sympy.latex(v))]
        case ScalarLimit(out=name, source="random"):
            return [
                nt.eq(nt.ring(name), "given", "N(0,1) scalar parameter: limit conditioned on it")
            ]
        case ScalarLimit():
            return []
        case InitKet(out=name):
            return [
                nt.eq(
                    nt.ket(name), r"\mathcal{N}(0,1)" if nt.latex else "N(0, 1)", "initial vector"
                )
            ]
        case AvgLimit(out=y, arg=x):
            return [nt.eq(nt.ring(y), nt.expect(nt.ket(x)))]
        case FormulaKet():
            body = nt.formula(k.formula, _symbol_names(k, program, nt), _rows(program, nt))
            return [
                nt.eq(
                    nt.ket(k.out),
                    nt.expect(body).replace("E[", "E′[", 1)
                    if k.order and not nt.latex
                    else (rf"\mathbb{{E}}'\big[{body}\big]" if k.order else body),
                )
            ]
        case MatMulKet():
            return _matmul_lines(k, nt)
        case _:
            assert_never(k)


def _matmul_lines(k: MatMulKet, nt: Notation) -> list[str]:
    terms = [nt.hat(k.hat)]
    notes = []
    for c in k.dots:
        if c.rule == "zero":
            notes.append(nt.eq(nt.coeff(c), "0", c.why))
            continue
        terms.append(
            rf"{nt.ket(c.hat.arg)}\,{nt.coeff(c)}"
            if nt.latex
            else f"{nt.ket(c.hat.arg)}·{nt.coeff(c)}"
        )
        if c.rule == "stein":
            notes.append(
                nt.eq(
                    nt.coeff(c),
                    "C⁺·E[x G] (Stein)" if not nt.latex else r"C^{+}\,\mathbb{E}[x\,G]",
                    c.why,
                )
            )
    lines = [nt.eq(nt.ket(k.out), " + ".join(terms))]
    return lines + ([("%" if nt.latex else "") + "    " + n.strip() for n in notes])


def print_kets(program: KetProgram, latex: bool = False) -> str:
    """The whole ket program as text (unicode) or as a LaTeX ``align*`` block."""
    nt: Notation = LatexNotation() if latex else Notation()
    lines = []
    inits = [k.out for k in program.stmts if isinstance(k, InitKet)]
    if inits and not latex:
        shown = inits if len(inits) <= 6 else [*inits[:3], "…", *inits[-2:]]
        lines.append(
            f"  {', '.join(nt.ket(v) if v != '…' else v for v in shown)} ~ N(0, 1) iid"
            "    # initial vectors"
        )
    for k in program.stmts:
        if isinstance(k, InitKet) and not latex:
            continue
        lines += format_ket(k, program, nt)
    inputs = program.source.input_names
    head = f"kets of {program.source.name} (spec 01 §1.4)"
    hats = _hat_summary(program)
    if latex:
        body = "\n".join(["% " + head, r"\begin{align*}", *lines, r"\end{align*}"])
        return body + "\n" + "".join(f"% {h}\n" for h in hats)
    pre = [head]
    if inputs:
        pre.append(f"  input scalars (values from data): {', '.join(inputs)}")
    return "\n".join([*pre, *lines, *hats]) + "\n"


def _hat_summary(program: KetProgram) -> list[str]:
    groups: dict[tuple[str, bool], list[str]] = {}
    for h in program.hats.values():
        groups.setdefault(h.orientation, []).append(h.arg)
    out = ["hats: centred jointly Gaussian, Cov(|Ŵa⟩, |Ŵb⟩) = ⟨a|b⟩; W and Wᵀ independent"]
    for (w, t), args in groups.items():
        out.append(f"  {w}{'ᵀ' if t else ''}: {', '.join(args)}")
    return out
