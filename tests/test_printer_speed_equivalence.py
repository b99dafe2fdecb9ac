"""The shape-memoised printer (compiler/shapeprint.py) prints byte-identical text to sympy's printer
applied formula by formula: over every golden program, over hypothesis-generated programs, and over
formulas renamed so that their names change order (a template must never be reused for a renaming
that reorders sympy's terms)."""

from __future__ import annotations

import os
import random

import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compiler.printer as printer
from compiler.frontend.parse import parse_file
from compiler.ir import Nonlin, Program
from compiler.printer import format_formula, print_program
from compiler.shapeprint import shape_of
from compiler.symbols import BUILTINS, WIDTH, sym
from tests.conftest import GOLDEN
from tests.test_roundtrip import programs

GOLDEN_PROGRAMS = sorted(GOLDEN.glob("*.nx"))


def _direct(program: Program, monkeypatch: pytest.MonkeyPatch) -> str:
    """The program printed without the memos: every formula through sympy's printer."""
    with monkeypatch.context() as m:
        m.setattr(printer, "_plain", {})
        m.setattr(printer, "_contracted", {})
        m.setattr(printer, "print_by_shape", lambda expr, direct, shape=None: direct(expr, {}))
        return print_program(program)


@pytest.mark.parametrize("path", GOLDEN_PROGRAMS, ids=lambda p: p.name)
def test_golden_programs_print_the_same_by_shape(path, monkeypatch):
    program = parse_file(path)
    assert print_program(program) == _direct(program, monkeypatch)


@settings(
    max_examples=int(os.environ.get("ROUNDTRIP_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(program=programs(), rnd=st.randoms(use_true_random=False))
def test_random_programs_and_their_renamings_print_the_same(program, rnd, monkeypatch):
    assert print_program(program) == _direct(program, monkeypatch)
    for ins in program.body:  # the same shapes again under names in another order
        if isinstance(ins, Nonlin):
            renamed = _renamed(ins.formula, rnd)
            assert format_formula(renamed) == printer._print_direct(renamed)


def _renamed(expr: sympy.Expr, rnd: random.Random) -> sympy.Expr:
    """``expr`` with its symbols (except the width) renamed to a shuffled set of names."""
    olds = sorted((s for s in expr.free_symbols if s != WIDTH), key=str)
    news = [f"v{k}" for k in range(len(olds))] + ["a", "zz", "m_1"]
    rnd.shuffle(news)
    return expr.xreplace({s: sym(n) for s, n in zip(olds, news, strict=False)})


def test_a_renaming_that_reorders_terms_gets_its_own_template():
    tanh, sin = BUILTINS["tanh"].build, BUILTINS["sin"].build
    a, b, c = sym("a"), sym("b"), sym("c")
    first = a * tanh(b) + sympy.Rational(-1, 3) * b * sin(c) + c**2
    for names in ("abc", "cba", "bac", "acb", "cab", "bca"):
        x, y, z = (sym(k) for k in names)
        f = first.xreplace({a: x, b: y, c: z})
        assert format_formula(f) == printer._print_direct(f), names


def test_names_the_printer_could_look_at_are_printed_directly():
    f_undef = sympy.Function("g")(sym("x")) + sym("y")
    assert shape_of(f_undef) is None
    paren = sympy.Symbol("(U . xi)") ** 2 + sym("y")
    assert shape_of(paren) is None
    assert format_formula(paren) == printer._print_direct(paren)


def test_renamed_copies_share_one_shape():
    """Many renamed copies of one shape: the memo holds one template (not one per copy)."""
    tanh = BUILTINS["tanh"].build
    shapes = {
        shape_of(tanh(sym(f"h{i}") * WIDTH) + sym(f"u{i}") * sym(f"h{i}")).tree  # type: ignore[union-attr]
        for i in range(50)
    }
    assert len(shapes) == 1
