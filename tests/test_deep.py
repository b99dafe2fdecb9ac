"""Deep and large sources: generated architectures nest
hundreds of calls and sum thousands of terms. They compile, execute and differentiate — or are
refused with a located error naming the size — and never end in a RecursionError or a hang."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import sympy

from compiler.cli import main
from compiler.errors import NexortError, NumberError, ProgramError
from compiler.frontend.arith import HOIST_DEPTH, MAX_TERMS, SOURCE_DEPTH
from compiler.frontend.deep import MAX_NESTING
from compiler.frontend.numbers import literal_problem, power_problem
from compiler.frontend.parse import parse_text
from compiler.frontend.size import MAX_INSTRUCTIONS
from compiler.ir import Nonlin, OuterNonlin
from compiler.printer import print_program
from compiler.symbols import MAX_FORMULA_DEPTH, formula_depth, sym
from runtime.executor import execute
from runtime.params import draw_parameters
from tests.conftest import ROOT

DEPTH = 300  # as deep as the generated architectures of the issue
TERMS = 5000


def arch(output: str, extra: str = "") -> str:
    return f"arch a {{\n    param v : vector\n{extra}    output {output}\n}}\n"


def deep_tanh(depth: int) -> str:
    # built iteratively: nested() itself would recurse as deep as the text it writes
    return "tanh(" * depth + "v" + ")" * depth


@pytest.fixture(scope="module")
def deep_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("deep") / "deep.nx"
    path.write_text(arch(deep_tanh(DEPTH)))
    return path


def test_nested_calls_split_into_instructions_with_the_same_value(deep_file):
    program = parse_text(deep_file.read_text())
    assert all(
        formula_depth(i.formula) <= SOURCE_DEPTH
        for i in program.body
        if isinstance(i, (Nonlin, OuterNonlin))
    )
    assert len(program.body) >= DEPTH // HOIST_DEPTH
    params = draw_parameters(program, 16, 0)
    got = execute(program, 16, params=params).values[program.outputs[0]]
    want = params["v"]
    for _ in range(DEPTH):
        want = np.tanh(want)
    np.testing.assert_allclose(got.ravel(), want, rtol=1e-12, atol=1e-15)


def test_deep_program_prints_and_reparses_to_itself(deep_file):
    program = parse_text(deep_file.read_text())
    assert parse_text(print_program(program)) == program


@pytest.mark.parametrize("command", ["check", "compile", "backprop", "lower", "exec"])
def test_every_command_handles_the_deep_file(deep_file, command, capsys):
    width = ["--width", "8"] if command == "exec" else []
    assert main([command, str(deep_file), *width]) == 0
    assert "error" not in capsys.readouterr().err


def test_sum_of_5000_terms_is_one_exact_formula():
    program = parse_text(arch(" + ".join(f"v*{k}" for k in range(TERMS))))
    (ins,) = program.body
    assert ins.formula == sympy.Integer(TERMS * (TERMS - 1) // 2) * sym("v")


def test_sum_of_distinct_terms_is_split_and_executes():
    count = MAX_TERMS + 1  # two partial sums
    terms = [f"tanh({k}*v)" for k in range(1, count + 1)]
    program = parse_text(arch(" - ".join(terms)))
    assert all(len(sympy.Add.make_args(i.formula)) <= MAX_TERMS for i in program.body)
    params = draw_parameters(program, 4, 1)
    got = execute(program, 4, params=params).values[program.outputs[0]].ravel()
    v = params["v"]
    want = np.tanh(v) - sum(np.tanh(k * v) for k in range(2, count + 1))
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_long_product_keeps_its_value():
    program = parse_text(arch(" * ".join(["v"] * (MAX_TERMS + 5))))
    params = draw_parameters(program, 4, 2)
    got = execute(program, 4, params=params).values[program.outputs[0]].ravel()
    np.testing.assert_allclose(got, params["v"] ** (MAX_TERMS + 5), rtol=1e-9)


def test_nesting_beyond_the_cap_names_the_depth():
    text = arch("-" * MAX_NESTING + "v")
    with pytest.raises(ProgramError) as info:
        parse_text(text, "deep.nx")
    depth = int(info.value.message.split("nested ")[1].split()[0])
    assert depth > MAX_NESTING and f"at most {MAX_NESTING}" in info.value.message
    assert info.value.loc.line == 3


def test_recursion_limit_is_restored(deep_file):
    before = sys.getrecursionlimit()
    parse_text(deep_file.read_text())
    assert sys.getrecursionlimit() == before


def test_verifier_refuses_formulas_deeper_than_the_engines_handle():
    from compiler.errors import VerifyError
    from compiler.verify import verify

    program = parse_text(arch("v"))
    deep = sym("v")
    for _ in range(MAX_FORMULA_DEPTH):
        deep = sympy.tanh(deep)
    with pytest.raises(VerifyError, match=f"nested {MAX_FORMULA_DEPTH + 1} levels"):
        verify(program.__class__(program.name, (), program.params, (Nonlin("o", deep),), ("o",)))


# -- numbers ---------------------------------------------------------------------------------------
LARGEST = sys.float_info.max


@pytest.mark.parametrize(
    ("text", "ok"),
    [(repr(LARGEST), True), ("1e308", True), ("1e309", False), ("1e-320", True), ("1e-999", False)],
)
def test_literals_must_be_floats(text, ok):
    assert (literal_problem(text) is None) == ok
    assert (float(text) not in (0.0, float("inf"))) == ok


def test_power_bound_is_the_float_range():
    # 10^308 < LARGEST < 10^309; 2^-1074 is the smallest subnormal, 2^-1100 is not a float
    ten, two = sympy.Integer(10), sympy.Integer(2)
    assert power_problem(ten, sympy.Integer(308)) is None
    assert power_problem(ten, sympy.Integer(309)) is not None
    assert power_problem(two, sympy.Integer(-1100)) is not None
    assert power_problem(sympy.Rational(1, 2), sympy.Integer(10**10)) is not None
    assert power_problem(sym("v"), sympy.Integer(10**10)) is None  # symbolic: nothing computed


@pytest.mark.parametrize("expr", ["v * 10^10^10", "v * 2^(10^9)", "v * (1/3)^(10^9)", "v * 1e400"])
def test_huge_constants_are_refused_where_written(expr):
    with pytest.raises(NumberError) as info:
        parse_text(arch(expr), "f.nx")
    assert info.value.loc.line == 3 and info.value.loc.column >= 12


# -- loops ---------------------------------------------------------------------------------------
def test_transformer_at_2000_tokens_is_refused_from_its_bounds():
    from compiler.frontend.parse import parse_file

    s = 2000
    with pytest.raises(ProgramError) as info:
        parse_file(ROOT / "samples" / "transformer_block.nx", {"S": s})
    message = info.value.message
    assert "for t in 0..2000" in message and str(MAX_INSTRUCTIONS) in message
    least = int(message.split("at least ")[1].split()[0])
    assert least > MAX_INSTRUCTIONS  # Σ_t (t + 1) avg instructions alone is s(s+1)/2 ≈ 2·10^6


@pytest.mark.parametrize("tokens", [1, 3, 8])
def test_loop_estimate_is_a_lower_bound(tokens):
    from compiler.frontend.flatten import Flattener
    from compiler.frontend.size import loop_instructions
    from compiler.frontend.syntax import parse_tree

    text = (ROOT / "samples" / "transformer_block.nx").read_text()
    fl = Flattener("t.nx", text, {"S": tokens})
    estimates: list[int] = []
    original = fl.stmt_for_stmt

    def counting(node):  # the estimate of each top-level loop, then the loop itself
        if fl.loop_depth == 0:
            start = len(fl.body)
            estimate = loop_instructions(fl, node, MAX_INSTRUCTIONS)
            original(node)
            estimates.append(len(fl.body) - start - estimate)
        else:
            original(node)

    fl.stmt_for_stmt = counting  # type: ignore[method-assign]
    fl.program(parse_tree(text))
    assert estimates and all(slack >= 0 for slack in estimates)


def test_legitimate_errors_still_win_over_estimates():
    with pytest.raises(NexortError, match="runs backwards"):
        parse_text(arch("v", "    for t in 3..1 {\n        h[t] = v\n    }\n"))
    shadowing = (  # the estimate binds S while counting, and must leave the const in place
        "    const S = 2\n    for t in 0..S {\n        for S in 0..2 {\n"
        "            for u in 0..1 {\n                h[t][S][u] = v\n            }\n"
        "        }\n    }\n"
    )
    with pytest.raises(NexortError, match="S is already defined"):
        parse_text(arch("v", shadowing))
