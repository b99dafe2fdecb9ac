"""``nexort unroll``: the printed training program re-parses to the pass's program, the JSON
document, the fast trainer agrees with the literal program, and bad options are clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compiler.cli import main
from compiler.frontend.parse import parse_file, parse_text
from compiler.passes.pipeline import run_pass
from compiler.passes.unroll import UnrollOptions
from compiler.train.setup import build_training
from runtime.executor import execute
from runtime.trainer import train
from tests.conftest import ROOT
from tests.conftest import TWO_OUTPUT_MLP as TWO

MLP2 = str(ROOT / "samples" / "mlp2.nx")
BASE = ["unroll", MLP2, "--param", "mup", "--opt", "adam(lr=0.02, eps=1e-4)", "--steps", "2"]


def test_printed_program_is_the_pass_result(capsys) -> None:
    assert main([*BASE, "--batch", "3", "--train", "2", "--batch-size", "1", "--center"]) == 0
    text = capsys.readouterr().out
    options = UnrollOptions("mup", "adam(lr=0.02, eps=1e-4)", "mse", 2, 3, 2, 1, True)
    assert parse_text(text) == run_pass(parse_file(MLP2), options).program


def test_json_document(capsys) -> None:
    assert main([*BASE, "--batch", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["points"] == ["train:0", "train:1"] and doc["steps"] == 2
    assert doc["f_scalars"] == [[[f"F_t{t}_ξ{i}"] for i in (1, 2)] for t in range(3)]
    assert doc["width_free"] is True and set(doc["width_exponents"].values()) == {"0"}
    assert doc["instructions"] == len(doc["program"]["body"])


def test_fast_trainer_equals_the_literal_program() -> None:
    """runtime.trainer (materialised matrices and state) against the unrolled program executed
    instruction by instruction: the same f_t to float64 rounding (04 §4.3)."""
    program = parse_file(MLP2)
    opt, n, seed, steps = "adam(lr=0.05, beta2=0.9, eps=1e-3)", 20, 2, 3
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 10)) / np.sqrt(10), rng.standard_normal(2)
    result = run_pass(program, UnrollOptions("ntp", opt, "mse", steps, 3, 2, 1, True))
    literal = result.f(execute(result.program, n, seed, inputs=result.bind(x, y)).values, n)
    training = build_training(program, "ntp", opt, "mse", steps, 2, 1, 1, True)
    fast = train(training, x, y.reshape(-1, 1), n, (seed,)).f[0, :, :, 0]
    assert np.ptp(literal[:, 0]) > 1e-3
    assert np.max(np.abs(literal - fast)) <= 1e-10 * max(1.0, np.abs(fast).max())


@pytest.mark.parametrize(("args", "message"), [
    (["--opt", "adam(lr=0.1, betta=0.9)"], "betta"),
    (["--opt", "adam(lr=)"], "lr must be a number, got ')'\n    adam(lr=)\n            ^"),
    (["--loss", "formula(chi = f -)"], "^"),
    (["--steps", "0"], "--steps"),
    (["--batch", "2", "--train", "3"], "--train"),
    (["--batch", "2", "--batch-size", "3"], "--batch-size"),
    (["--param", "up:s"], "symbol"),
    (["--opt", "adamm(lr=0.1)"], "adamm"),
])
def test_bad_options_are_clear_errors(capsys, args, message) -> None:
    assert main([*BASE, *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err




def test_two_outputs_cross_entropy_equals_the_fast_trainer() -> None:
    """k = 2 outputs: one backprop per output (gradients of output j end in _oj), χ_ij of the
    softmax, targets target_ξi[j]; the trainer (one-hot rows) gives the same f_t."""
    program = parse_text(TWO)
    opt, n, seed, steps = "adam(lr=0.05, eps=1e-3)", 16, 1, 2
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 10)) / np.sqrt(10)
    y = np.eye(2)[[0, 1]]
    result = run_pass(program, UnrollOptions("mup", opt, "ce", steps, 3, 2))
    assert "dx_o1_ξ1_t0" in result.program.kinds and "target_ξ2[1]" in result.program.kinds
    literal = result.f(execute(result.program, n, seed, inputs=result.bind(x, y)).values, n)
    training = build_training(program, "mup", opt, "ce", steps, 2, 1)
    fast = train(training, x, y, n, (seed,)).f[0]
    assert literal.shape == fast.shape == (steps + 1, 3, 2) and np.ptp(literal[:, 0, 0]) > 1e-3
    assert np.max(np.abs(literal - fast)) <= 1e-10 * max(1.0, np.abs(fast).max())


def test_pipeline_text_form() -> None:
    from compiler.passes.pipeline import parse_pipeline

    got = parse_pipeline("unroll{opt=adam(lr=0.1,eps=1e-4) steps=2 batch=3 train=2 center=true}")
    assert got == [UnrollOptions("mup", "adam(lr=0.1,eps=1e-4)", "mse", 2, 3, 2, None, True)]
