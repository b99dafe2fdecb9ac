"""The fast copies of the total program (compiler/passes/total_copies.py, compiler/rename.Copier)
and their structural check (02 §2.3).

Copies i ≥ 2 are rebuilt node for node from copy 1: each must equal sympy's own renaming of the
backprop formula (``xreplace``, which evaluates), and the shape remembered for it must be the one
a fresh walk finds (the verifier and the printer use it instead of walking). A renaming that would
reorder names falls back to the full renaming. The check after the pass must catch a copy that is
wrong but well formed (a formula or argument of another copy, a dropped term), and every way of
breaking the program the general verifier catches."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sympy
from hypothesis import HealthCheck, given, settings

import compiler.shapeprint as shapeprint
from compiler.errors import NotDifferentiableError, VerifyError
from compiler.frontend.parse import parse_file, parse_text
from compiler.ir import MatMul, Nonlin, OuterNonlin, Program
from compiler.passes.backprop import backprop_map
from compiler.passes.pipeline import run_pipeline
from compiler.passes.total import Total, TotalOptions, total_map, verify_total
from compiler.passes.total_copies import Renamer
from compiler.printer import _print_direct, print_program
from compiler.rename import Copier
from compiler.symbols import sym
from compiler.verify import verify
from tests.conftest import ROOT, SAMPLES, sample_id
from tests.strategies import programs

B = 3  # copies 2 and 3 are built by the Copier


def _formulas(program: Program) -> list[sympy.Expr]:
    return [ins.formula for ins in program.body if isinstance(ins, Nonlin | OuterNonlin)]


def _fresh_shape(expr: sympy.Expr) -> shapeprint.Shape:
    """The shape by a walk of ``expr`` itself (not the memo the Copier fills)."""
    symbols: dict[sympy.Symbol, int] = {}
    return shapeprint.Shape(shapeprint._shape(expr, symbols, {}), tuple(symbols))


def _check_against_xreplace(result: Total) -> None:
    """Every copy's formulas equal sympy's renaming of the base's, and their remembered shapes
    are those of a fresh walk."""
    assert result.base is not None
    base = _formulas(result.base)
    renamer = Renamer(result.base)
    n = len(base)
    copies = _formulas(result.program)
    for i in range(1, result.batch + 1):
        renaming = dict(zip(renamer.refs, renamer.targets(i), strict=True))
        for f, c in zip(base, copies[(i - 1) * n : i * n], strict=True):
            assert c == f.xreplace(renaming), (i, f)
            known = shapeprint.shape_of(c)
            if known is not None:
                assert known == _fresh_shape(c), (i, f)


@pytest.mark.parametrize("path", [p for p in SAMPLES if "signsgd" not in p.name],
                         ids=sample_id)
def test_copies_equal_sympys_renaming_on_every_sample(path):
    program = parse_file(path, {"S": 2}) if path.name == "transformer_block.nx" else \
        parse_file(path)
    _check_against_xreplace(total_map(program, B))
    _check_against_xreplace(total_map(program, B, gradients=False))


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_steps=8))
def test_copies_equal_sympys_renaming_on_random_programs(program):
    try:
        result = total_map(program, B)
    except NotDifferentiableError:
        result = total_map(program, B, gradients=False)
    _check_against_xreplace(result)
    verify_total(result)
    assert print_program(result.program) == _direct_text(result.program)


def _direct_text(program: Program) -> str:
    """The program printed with every formula through sympy's printer (no shape memo)."""
    import compiler.printer as printer

    saved = printer.print_by_shape
    printer.print_by_shape = lambda expr, direct, shape=None: direct(expr, {})  # type: ignore[assignment]
    try:
        printer._plain.clear()
        printer._contracted.clear()
        return print_program(program)
    finally:
        printer.print_by_shape = saved
        printer._plain.clear()
        printer._contracted.clear()


CLASH = """
arch clash {
    param x_ξ12 : scalar
    param w : vector
    x = tanh(w)
    y = erf(x - x_ξ12) * x + x_ξ12 * (x - w)
    output y
}
"""


def test_a_renaming_that_reorders_names_is_renamed_in_full():
    # copy 1 names x_ξ1 < x_ξ12 (the parameter), copy 2 names x_ξ2 > x_ξ12: sums re-sort
    program = parse_text(CLASH)
    base = backprop_map(program).program
    renamer = Renamer(base)
    first = renamer.instructions(base.body, 1)
    copier = Copier(_formulas(Program("c", (), (), tuple(first), ())), renamer.targets(1))
    assert copier.copy(renamer.targets(2)) is None
    assert copier.copy(renamer.targets(1)) is not None  # the identity keeps the order
    result = total_map(program, 2)
    _check_against_xreplace(result)
    verify_total(result)


def test_copier_refuses_a_renaming_that_changes_assumptions():
    x, w = sym("x_ξ1"), sym("w")
    copier = Copier([sympy.tanh(x) * w + x], [x])
    assert copier.copy([sympy.Symbol("x_ξ2", positive=True)]) is None
    assert copier.copy([sym("x_ξ2")]) == [sympy.tanh(sym("x_ξ2")) * w + sym("x_ξ2")]


def test_remembered_symbols_are_sympys_real_symbols():
    for name in ("h_ξ7[3]", "dW_ξ2", "u[b]"):
        mine, theirs = sym(name), sympy.Symbol(name, real=True)
        assert mine == theirs and hash(mine) == hash(theirs) and mine is sym(name)
        for fact in ("real", "positive", "integer", "finite", "commutative", "zero"):
            assert getattr(mine, f"is_{fact}") == getattr(theirs, f"is_{fact}"), fact
        assert (mine**2).is_nonnegative and _print_direct(mine) == name


# -- a broken copy is caught ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlp2_total() -> Total:
    return total_map(parse_file(ROOT / "samples" / "mlp2.nx"), B)


def _with(result: Total, k: int, ins: object) -> Total:
    body = (*result.program.body[:k], ins, *result.program.body[k + 1 :])
    return replace(result, program=result.program.replace(body=body))  # type: ignore[arg-type]


def _index(result: Total, out: str) -> int:
    return next(k for k, ins in enumerate(result.program.body) if ins.out == out)


def test_a_copy_reading_another_copy_is_caught_though_well_formed(mlp2_total):
    verify_total(mlp2_total)
    k3, k2 = _index(mlp2_total, "x2_ξ3"), _index(mlp2_total, "x2_ξ2")
    stolen = replace(mlp2_total.program.body[k2], out="x2_ξ3")  # reads h2_ξ2, not h2_ξ3
    bad = _with(mlp2_total, k3, stolen)
    verify(bad.program)  # a well-formed program: only the copy check can tell
    with pytest.raises(VerifyError, match=r"copy 3 of the total program .* x2 = relu\(h2\)"):
        verify_total(bad)


def test_a_copy_with_a_wrong_argument_or_a_dropped_term_is_caught(mlp2_total):
    k = next(k for k, ins in enumerate(mlp2_total.program.body)
             if isinstance(ins, MatMul) and ins.out.endswith("_ξ2") and ins.arg.endswith("_ξ2"))
    ins = mlp2_total.program.body[k]
    assert isinstance(ins, MatMul)
    wrong_arg = _with(mlp2_total, k, replace(ins, arg=ins.arg.replace("_ξ2", "_ξ1")))
    verify(wrong_arg.program)
    with pytest.raises(VerifyError, match="copy 2 of the total program"):
        verify_total(wrong_arg)
    k = next(k for k, ins in enumerate(mlp2_total.program.body)
             if isinstance(ins, Nonlin) and ins.out.endswith("_ξ3") and ins.formula.is_Add)
    ins = mlp2_total.program.body[k]
    assert isinstance(ins, Nonlin)
    dropped = _with(mlp2_total, k, replace(ins, formula=sympy.Add(*ins.formula.args[1:])))
    with pytest.raises(VerifyError, match="copy 3 of the total program"):
        verify_total(dropped)


def test_what_the_verifier_catches_is_still_caught(mlp2_total):
    k = _index(mlp2_total, "x2_ξ2")
    ins = mlp2_total.program.body[k]
    later = _with(mlp2_total, k, replace(ins, formula=sym("x2_ξ3")))  # used before defined
    with pytest.raises(VerifyError):
        verify_total(later)
    infinite = _with(mlp2_total, k, replace(ins, formula=sympy.zoo))
    with pytest.raises(VerifyError):
        verify_total(infinite)
    twice = _with(mlp2_total, k, replace(ins, out="x2_ξ1"))
    with pytest.raises(VerifyError, match="x2_ξ1 is assigned twice"):
        verify_total(twice)
    short = replace(mlp2_total, program=mlp2_total.program.replace(
        body=mlp2_total.program.body[:-1]))
    with pytest.raises(VerifyError, match="instructions, not B = 3 copies"):
        verify_total(short)


def test_a_pass_that_corrupts_a_copy_fails_after_the_pass(monkeypatch):
    original = Renamer.copies

    def corrupt(self: Renamer, body: tuple, batch: int) -> list:
        out = original(self, body, batch)
        k = next(k for k, ins in enumerate(out) if ins.out.endswith("_ξ3")
                 and isinstance(ins, Nonlin))
        out[k] = replace(out[k], formula=out[k].formula + 1)
        return out

    monkeypatch.setattr(Renamer, "copies", corrupt)
    with pytest.raises(VerifyError, match="after pass total: copy 3 of the total program"):
        run_pipeline(parse_file(ROOT / "samples" / "mlp2.nx"), [TotalOptions(batch=B)])
