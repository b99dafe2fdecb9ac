"""``nexort abcd``: table, JSON, LaTeX, torch recipe and clean errors (spec 03)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from compiler.cli import main
from tests.conftest import ROOT

SAMPLES = ROOT / "samples"
MLP2 = str(SAMPLES / "mlp2.nx")
LN = str(SAMPLES / "layernorm_mlp.nx")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["abcd", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_table(capsys):
    code, out, err = run(capsys, MLP2, "--param", "mup", "--opt", "adam")
    assert code == 0 and not err
    assert "param  role     a  b    c  d  A    C  D" in out
    assert "W      matrix   0  1/2  1  1  1/2  1  1" in out
    assert "regime: feature learning; r = 0" in out


def test_json_fields(capsys):
    code, out, _ = run(capsys, MLP2, "--param", "ntp", "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["parameters"]["W"] | {} == doc["parameters"]["W"]
    w = doc["parameters"]["W"]
    assert {k: w[k] for k in "abcd"} == {"a": "1/2", "b": "0", "c": "1", "d": "1"}
    assert (doc["stable"], doc["faithful"], doc["nontrivial"]) == (True, True, True)
    assert doc["regime"] == "operator" and doc["r"] == "1/2" and doc["method"] == "mlp"
    assert isinstance(doc["reasons"], list) and doc["reasons"]


def test_json_symbolic(capsys):
    _, out, _ = run(capsys, MLP2, "--param", "up:s", "--json")
    doc = json.loads(out)
    assert doc["nontrivial"] == "s ∈ [0, 1/2]"
    assert doc["feature_learning"] == "s = 0" and doc["r"] == "s"
    assert doc["parameters"]["W"]["c"] == "s + 1"


def test_json_unstable_gives_reasons(capsys):
    _, out, _ = run(capsys, MLP2, "--param", "sp:1", "--opt", "signsgd", "--json")
    doc = json.loads(out)
    assert doc["stable"] is False and doc["regime"] is None
    assert any("a_3+b_3+r = 1/2 < 1" in r for r in doc["reasons"])


def test_calculus_on_a_general_architecture(capsys):
    code, out, _ = run(capsys, str(SAMPLES / "transformer_block.nx"), "--param", "mup",
                       "--json")
    doc = json.loads(out)
    assert code == 0 and doc["method"] == "calculus" and doc["regime"] == "feature_learning"


def test_latex(capsys):
    code, out, _ = run(capsys, MLP2, "--param", "up:s", "--latex")
    assert code == 0
    assert r"\begin{tabular}" in out and r"$s + 1$" in out and r"\caption{" in out


def test_torch_recipe(capsys):
    code, out, _ = run(capsys, LN, "--param", "mup", "--torch-recipe", "--width", "4096",
                       "--base-width", "256", "--json")
    doc = json.loads(out)
    w, v, gain = (doc["parameters"][k] for k in ("W", "v", "gain"))
    assert code == 0 and doc["output_multiplier"] == 1 / 16
    assert (w["init_std_factor"], w["lr_factor"], w["adam_eps_factor"]) == (0.25, 1 / 16, 1 / 16)
    assert w["init_std_at_width"] == 4096 ** -0.5
    assert (v["init_std_factor"], v["lr_factor"], v["adam_eps_factor"]) == (1, 1, 1 / 16)
    assert gain["deterministic_init"] and gain["adam_eps_factor"] == 1


def test_torch_recipe_sgd_folds_d(capsys):
    code, out, _ = run(capsys, MLP2, "--param", "mup", "--opt", "sgd", "--torch-recipe",
                       "--width", "1024", "--base-width", "256")
    assert code == 0 and "adam eps: not needed (linear Q" in out
    row = next(line for line in out.splitlines() if line.startswith("U "))
    assert row.split()[5] == "4"  # lr × (N/N0)^{d-c} = 4 for the input layer


def test_ntp_with_scalar_parameter_is_a_located_error(capsys):
    code, _, err = run(capsys, LN, "--param", "ntp")
    assert code == 1
    assert err.startswith(f"{LN}:8:5: error: scalar parameter gain under ntp: not allowed")
    assert "^" in err and "Traceback" not in err


def test_bad_table_is_a_located_error(capsys, tmp_path):
    table = tmp_path / "t.toml"
    table.write_text('base = "mup"\n[params.W]\nc = "fast"\n')
    code, _, err = run(capsys, MLP2, "--param", str(table))
    assert code == 1 and err.startswith(f"{table}:3:1: error: [params.W] c: 'fast' is not")


@pytest.mark.parametrize(("argv", "message"), [
    (["--opt", "lion"], "unknown optimizer 'lion'"),
    (["--param", "up"], "up:S"),
    (["--param", "missing.toml"], "no such table file"),
    (["--torch-recipe"], "needs --width"),
])
def test_usage_errors(capsys, argv, message):
    code, _, err = run(capsys, MLP2, *argv)
    assert code == 1 and message in err and "Traceback" not in err


def test_method_mlp_refuses_a_non_mlp(capsys):
    code, _, err = run(capsys, str(SAMPLES / "rnn.nx"), "--method", "mlp")
    assert code == 1 and "not an MLP" in err


def test_entry_point():
    # the installed entry point and ``python -m compiler.cli`` behave the same
    main_ = "import sys; from compiler.cli import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", main_, "abcd", MLP2, "--param", "sp:3/2",
                           "--opt", "signsgd"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "regime: operator; r = 1/2" in done.stdout
