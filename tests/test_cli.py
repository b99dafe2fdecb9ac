"""The command line (compiler/cli): compile, check and exec, in text and JSON."""

from __future__ import annotations

import json

import numpy as np

from compiler.cli import main
from compiler.frontend.parse import parse_file, parse_text
from tests.conftest import ROOT

MLP2 = str(ROOT / "samples" / "mlp2.nx")
DATA = str(ROOT / "samples" / "data" / "gauss10.npz")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_compile_prints_a_program_that_parses_back(capsys):
    code, out, _ = run(capsys, "compile", MLP2)
    assert code == 0
    assert out.startswith("# flattened from")
    assert parse_text(out) == parse_file(MLP2)


def test_compile_json_lists_every_instruction(capsys):
    code, out, _ = run(capsys, "compile", MLP2, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["arch"] == doc["program"]["name"] == "mlp2"
    assert doc["inputs"] == [f"xi[{i}]" for i in range(10)]
    program = doc["program"]
    assert [i["op"] for i in program["body"]] == ["nonlin", "nonlin", "matmul", "nonlin", "nonlin"]
    assert program["body"][2] == {
        "op": "matmul",
        "out": "h2",
        "text": "h2 = W @ x1",
        "line": 11,
        "matrix": "W",
        "arg": "x1",
        "transpose": False,
    }
    assert program["params"][0] == {"name": "U", "kind": "vector", "shape": [10], "init": None}


def test_check_summarises(capsys):
    code, out, _ = run(capsys, "check", MLP2, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and len(doc["inputs"]) == 10
    assert doc["parameters"] == {"matrix": 1, "vector": 11, "scalar": 0}


def test_const_override_unrolls_longer_sequences(capsys):
    path = str(ROOT / "samples" / "transformer_block.nx")
    code, out, _ = run(capsys, "check", path, "--const", "S=5", "--json")
    assert code == 0 and len(json.loads(out)["inputs"]) == 5 * 4


def test_exec_table_json_and_plot(capsys, tmp_path):
    png = tmp_path / "coords.png"
    code, out, _ = run(capsys, "exec", MLP2, "--width", "256", "--inputs", DATA, "--plot", str(png))
    assert code == 0 and png.stat().st_size > 10_000
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 12 and [r[1] for r in rows].count("test") == 4
    code, out, _ = run(capsys, "exec", MLP2, "--width", "256", "--inputs", DATA, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["batch"] == 12 and doc["train"] == 8
    table = np.array([float(r[2]) for r in rows])
    np.testing.assert_allclose(np.array(doc["f"][0]), table, atol=5e-7)


def test_exec_comma_list_and_e_out(capsys):
    x = ",".join(["0.1"] * 10)
    _, out, _ = run(capsys, "exec", MLP2, "--width", "64", "--inputs", x, "--json")
    _, out1, _ = run(capsys, "exec", MLP2, "--width", "64", "--inputs", x, "--json", "--e-out", "1")
    f_half, f_one = json.loads(out)["f"][0][0], json.loads(out1)["f"][0][0]
    assert np.isclose(f_half, f_one * np.sqrt(64))  # f = n^{1-e_out} avg(o)


def test_exec_usage_errors(capsys, tmp_path):
    code, _, err = run(capsys, "exec", MLP2, "--width", "64", "--inputs", "1,2,3")
    assert code == 1 and "dimension 3" in err and "input xi[10]" in err
    code, _, err = run(capsys, "exec", MLP2, "--width", "0", "--inputs", "1,2")
    assert code == 1 and "--width" in err
    bad = tmp_path / "x.npz"
    np.savez(bad, X=np.ones((2, 10)))
    code, _, err = run(capsys, "exec", MLP2, "--width", "8", "--inputs", str(bad))
    assert code == 1 and "no X_train" in err
    code, _, err = run(capsys, "exec", MLP2, "--width", "8", "--inputs", DATA, "--dist", "cauchy")
    assert code == 1 and "unknown distribution" in err
