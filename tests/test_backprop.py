"""Backpropagation (spec 02 §2.2): the backprop program's finite-width gradients equal
finite differences of the forward program on every sample and on generated programs with
OuterNonlin of orders 1 and 2, equal a hand-written reverse mode for mlp2, and bad requests fail
with clear located errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from compiler.cli import main
from compiler.errors import NotDifferentiableError, UsageError
from compiler.frontend.parse import parse_file, parse_text
from compiler.ir import MatMul, Nonlin, OuterNonlin
from compiler.passes.backprop import backprop, backprop_each, backprop_map
from compiler.printer import print_program
from runtime.executor import execute
from runtime.params import draw_parameters
from tests.conftest import ROOT, SAMPLES, sample_id
from tests.gradcheck import check_gradients
from tests.strategies import programs

GAUSS = np.load(ROOT / "samples" / "data" / "gauss10.npz")["X_train"]
SEQ = np.load(ROOT / "samples" / "data" / "seq3x4.npz")["X_train"].reshape(4, -1)
REFUSED = {"programs__signsgd_step": (13, 11, "step(h2)")}  # dh2 = v * step(h2) needs step'
TOLERANCE = 1e-6


def inputs_for(program, rows: int = 2) -> np.ndarray | None:
    """``rows`` fixed inputs of the program's dimension (Gaussian or sequence data)."""
    d = len(program.input_names)
    if d == 0:
        return None
    data = SEQ if d == SEQ.shape[1] else GAUSS
    return data[:rows, :d].copy()


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_backprop_equals_finite_differences(path):
    program = parse_file(path)
    if sample_id(path) in REFUSED:
        line, column, culprit = REFUSED[sample_id(path)]
        with pytest.raises(NotDifferentiableError, match=re.escape(culprit)) as e:
            backprop(program)
        assert (e.value.loc.line, e.value.loc.column) == (line, column)
        return
    check = check_gradients(program, 64, inputs_for(program), per_param=3)
    kinds = {program.kinds[name] for name in check.errors}
    assert "matrix" in kinds or not program.param_names("matrix")
    assert check.worst < TOLERANCE, check.errors


def test_mlp2_equals_handwritten_reverse_mode():
    program = parse_file(ROOT / "samples" / "mlp2.nx")
    n, xi = 64, GAUSS[0]
    p = draw_parameters(program, n, seed=3)
    u = np.stack([p[f"U[{j}]"] for j in range(10)], axis=1)  # (n, d)
    w, v = p["W"], p["v"]
    h1 = u @ xi
    x1 = np.maximum(h1, 0)
    h2 = w @ x1
    x2 = np.maximum(h2, 0)
    # F = (1/n) Σ v ⊙ x2, differentiated by hand
    g_h2 = v / n * (h2 > 0)
    g_w = np.outer(g_h2, x1)
    g_h1 = (w.T @ g_h2) * (h1 > 0)
    g_u, g_xi = np.outer(g_h1, xi), u.T @ g_h1
    bp = backprop_map(program)
    ex = execute(bp.program, n, 3, xi, params=p)
    grad = {k: bp.grads[k] for k in ("v", "xi[0]", "U[0]")}
    (use,) = bp.grads.matrix_uses("W")
    a, b = (ex[name][:, 0] for name in use.outer)
    np.testing.assert_allclose(np.outer(a, b) / n, g_w, rtol=1e-12, atol=1e-17)
    np.testing.assert_allclose(ex[grad["v"]][:, 0] / n, x2 / n, rtol=1e-12)
    np.testing.assert_allclose(ex[grad["U[0]"]][:, 0] / n, g_u[:, 0], rtol=1e-12, atol=1e-17)
    dxi = np.array([ex[bp.grads[f"xi[{j}]"]][0] for j in range(10)])
    np.testing.assert_allclose(dxi, g_xi, rtol=1e-10)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs(orders=(1, 2)))
def test_outer_nonlin_rules_on_generated_programs(program):
    x = np.random.default_rng(0).standard_normal((2, 2)) if program.input_names else None
    check = check_gradients(program, 10, x, per_param=2)
    assert check.worst < TOLERANCE, (check.errors, print_program(program))


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_steps=10))
def test_backprop_on_many_generated_programs(program):
    x = np.random.default_rng(0).standard_normal((3, 2)) if program.input_names else None
    check = check_gradients(program, 12, x, per_param=3)
    assert check.worst < TOLERANCE, (check.errors, print_program(program))


ORDER2 = """
arch outer_scalars {
    param x : vector
    param u : vector
    param W : matrix
    param c : scalar = 1/2
    h = W.T @ x
    t = avg(h * u)
    y = mean[b, e](tanh(c * x * h[b] + t * u[e]) * x[e] + sin(h[b] * u) * t)
    z = W @ y
    output z * u + t * x
}
"""


def test_order2_with_scalars_in_every_slot():
    program = parse_text(ORDER2)
    bp = backprop_map(program)
    outers = [i for i in bp.program.body[len(program.body):] if isinstance(i, OuterNonlin)]
    assert {i.order for i in outers} == {1, 2}  # a derivative that reads fewer copies sums less
    assert check_gradients(program, 12, None, per_param=4).worst < TOLERANCE


def test_unused_objects_get_no_gradient():
    program = parse_text("""
arch dead {
    input xi[2]
    param U : vector[2]
    param W : matrix
    param V : matrix
    param v : vector
    h = U . xi
    dead1 = V @ h
    dead2 = tanh(dead1) * W @ h
    s = avg(dead2)
    two = vec(2)
    output v * tanh(h) * two
}
""")
    bp = backprop_map(program)
    assert bp.program.body[: len(program.body)] == program.body  # extends the forward program
    for var in ("dead1", "dead2", "s", "_1", "two"):  # two is live but passes no gradient on
        assert bp.grads.get(var) is None
    assert bp.grads.matrix_uses("V") == () and bp.grads.matrix_uses("W") == ()
    new = {i.out for i in bp.program.body[len(program.body):]}
    assert not any(isinstance(i, MatMul) for i in bp.program.body[len(program.body):])
    assert new == {"dout", "dh", "dv", "dU[0]", "dU[1]", "dxi_1[0]", "dxi[0]",
                   "dxi_1[1]", "dxi[1]"}, new


def test_gradient_names_avoid_taken_names():
    program = parse_text("""
arch names {
    param v : vector
    param W : matrix
    param ef : scalar = 1
    h = W @ v
    dh = v * sigmoid(h)
    x = ef * tanh(dh + h)
    output v * x
}
""")
    bp = backprop_map(program)
    assert bp.grads["h"] == "d_h" and bp.grads["dh"] == "ddh" and bp.grads["x"] == "dx"
    assert bp.grads["ef"] == "d_ef"  # "def" is a keyword
    assert parse_text(print_program(bp.program)) == bp.program
    assert check_gradients(program, 16, None).worst < TOLERANCE


def test_reused_forward_value_in_derivatives():
    bp = backprop(parse_file(ROOT / "samples" / "rnn.nx"))
    text = print_program(bp)
    assert "d_2 = dh[2]*(1 - h[2]^2)" in text  # tanh' written with the forward value


def test_multi_output_needs_a_choice_and_gets_one_backprop_each():
    program = parse_text("""
arch two {
    param v : vector
    param W : matrix
    h = W @ v
    a = tanh(h)
    output a, a * sin(h)
}
""")
    with pytest.raises(UsageError, match="has 2 outputs"):
        backprop(program)
    each = backprop_each(program)
    assert [b.grads.output for b in each] == ["a", "out1"]
    assert check_gradients(program, 16, None, output="out1").worst < TOLERANCE
    assert check_gradients(program, 16, None, output="a").worst < TOLERANCE


def test_gradient_of_a_non_output_is_refused():
    program = parse_file(ROOT / "samples" / "mlp2.nx")
    with pytest.raises(UsageError, match="x1 is not an output of arch mlp2"):
        backprop(program, output="x1")
    with pytest.raises(UsageError, match=r"nope is not an output .*not defined"):
        backprop(program, output="nope")


SIGN = """arch s {
    param v : vector
    param W : matrix
    h = W @ v
    y = abs(h) + sign(h) * h
    output v * y
}
"""


def test_sign_where_its_derivative_is_needed():
    with pytest.raises(NotDifferentiableError) as e:
        backprop(parse_text(SIGN, "s.nx"))
    assert (e.value.loc.file, e.value.loc.line, e.value.loc.column) == ("s.nx", 5, 9)
    assert "sign(h)" in e.value.message and "with respect to h" in e.value.message
    assert "\n" not in e.value.message


def test_step_of_an_input_only_matters_for_input_gradients():
    program = parse_text("""
arch gate {
    input xi[2]
    param U : vector[2]
    h = U . xi
    g = vec(step(xi[0]) + xi[1])
    output g * tanh(h)
}
""")
    with pytest.raises(NotDifferentiableError, match=r"with respect to xi\[0\]"):
        backprop(program)
    bp = backprop_map(program, input_gradients=False)
    assert bp.grads.get("xi[0]") is None and bp.grads.get("U[1]") == "dU[1]"
    assert set(dict(bp.grads.names)) == {"out", "h", "U[0]", "U[1]"}  # no dg: dead code


def test_cli_backprop_text_json_and_errors(capsys):
    mlp2 = str(ROOT / "samples" / "mlp2.nx")
    assert main(["backprop", mlp2]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# backpropagation of") and parse_text(out) == backprop(parse_file(mlp2))
    assert main(["backprop", mlp2, "--json", "--no-input-gradients"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["gradients"]["h2"] == "dh2" and "xi[0]" not in doc["gradients"]
    assert doc["matrix_uses"] == [{"matrix": "W", "transpose": False, "out": "h2", "arg": "x1",
                                   "d_out": "dh2", "outer": ["dh2", "x1"]}]
    assert main(["backprop", mlp2, "--output", "h1"]) == 1
    assert "h1 is not an output" in capsys.readouterr().err
    signsgd = str(ROOT / "samples" / "programs" / "signsgd_step.nx")
    assert main(["backprop", signsgd]) == 1
    err = capsys.readouterr().err
    assert "signsgd_step.nx:13:11: error: cannot backpropagate through step(h2)" in err
    assert "dh2 = v * step(h2)" in err and "^~~~" in err  # the source line with a caret


def test_instruction_count_is_linear_in_the_forward_program():
    for tokens in (3, 6):
        program = parse_file(ROOT / "samples" / "rnn.nx", {"S": tokens})
        bp = backprop_map(program, input_gradients=False)
        grads = len(bp.program.body) - len(program.body)
        assert grads <= 2 * len(program.body) + 8, (tokens, grads)
        assert sum(isinstance(i, Nonlin) for i in bp.program.body) > 0
