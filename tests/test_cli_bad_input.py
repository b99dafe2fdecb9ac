"""Bad command-line input as a new user types it: every case is an error that names the
option or points into the file, exit 1, never a traceback; under ``--json`` the error is the
document ``{"ok": false, "error": {…}}`` on stdout; output paths are refused before computing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compiler.cli import main
from tests.conftest import ROOT

MLP2 = str(ROOT / "samples" / "mlp2.nx")
X1 = ",".join(["1"] + ["0"] * 9)
TWO_OUTPUTS = """arch two {
    input xi[2]
    param U : vector[2]
    param W : matrix
    param v : vector
    param u : vector
    y = W @ tanh(U . xi)
    output v * tanh(y), u * y
}
"""


@pytest.fixture
def files(tmp_path):
    np.savez(tmp_path / "empty.npz", X_train=np.zeros((0, 10)))
    (tmp_path / "two.nx").write_text(TWO_OUTPUTS)
    return tmp_path


def _cases(d):
    """(argv, what the message must say) for every bad input."""
    return [
        (["exec", MLP2, "--width", "8", "--seed", "-1"], "--seed"),
        (["exec", MLP2, "--width", "0"], "--width"),
        (["exec", MLP2, "--width", "eight"], "--width"),
        (["exec", MLP2, "--width", "10000000"], "choose a smaller width"),  # 800 TB of W
        (["exec", MLP2, "--width", "8", "--inputs", str(d / "empty.npz")], "X_train is empty"),
        (["exec", MLP2, "--width", "8", "--plot", "/nonexistent/x.png"], "--plot"),
        (["exec", MLP2, "--width", "8", "--plot", str(d / "x.foo")], ".png"),
        (["exec", MLP2, "--width", "8", "--plot", str(d)], "is a directory"),
        (["check", MLP2, "--json", str(d / "no" / "x.json")], "--json"),
        (["check", MLP2, "--json", str(d / "two.nx")], "overwrite"),
        (["check", MLP2, "--const", "S"], "--const"),
        (["total", MLP2, "--batch", "0"], "--batch"),
        (["abcd", MLP2, "--torch-recipe", "--width", "0", "--base-width", "8"], "--width"),
        (["limit-scalars", MLP2, "--particles", "2"], "--particles"),
        (["limit-scalars", MLP2, "--seed", "-1"], "--seed"),
        (["limit-scalars", MLP2, "--outer2-pool", "1"], "--outer2-pool"),
        (["limit-scalars", MLP2, "--memory-limit", "0"], "--memory-limit"),
        (["limit-scalars", MLP2, "--compare-widths", "1,4"], "--compare-widths"),
        (["limit-scalars", MLP2, "--compare-widths", "8", "--seeds", "1"], "--seeds"),
        (["limit-scalars", MLP2, "--scalar", "b=x"], "--scalar"),
        (["limit-scalars", MLP2, "--plot", str(d / "p.png")], "--compare-widths"),
        (["limit-scalars", MLP2, "--output", "out"], "--kernels"),
        (["limit-scalars", str(d / "two.nx"), "--kernels", "--inputs", "1,0"], "--output"),
        (["nosuchcommand", MLP2], "invalid choice"),
    ]


CASES = range(len(_cases(ROOT)))


@pytest.mark.parametrize("k", CASES)
def test_bad_input_is_a_clear_error(k, files, capsys):
    argv, says = _cases(files)[k]
    assert main(argv) == 1
    out = capsys.readouterr()
    assert says in out.err and "Traceback" not in out.err and "internal error" not in out.err
    if "--json" in argv:  # a --json PATH that cannot be written: the document comes on stdout
        assert json.loads(out.out)["ok"] is False
    else:
        assert out.out == ""


@pytest.mark.parametrize("k", CASES)
def test_bad_input_under_json_is_a_json_error(k, files, capsys):
    argv, says = _cases(files)[k]
    argv = argv if "--json" in argv else [*argv, "--json"]
    assert main(argv) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and says in doc["error"]["message"]
    assert doc["command"] == (argv[0] if argv[0] != "nosuchcommand" else None)


def test_output_paths_are_refused_before_computing(files, capsys, monkeypatch):
    def no_run(*args, **kwargs):
        raise AssertionError("computed before checking the output path")

    monkeypatch.setattr("runtime.executor.execute", no_run)
    for bad in ("/nonexistent/x.png", str(files / "x.foo"), str(files)):
        assert main(["exec", MLP2, "--width", "8", "--plot", bad]) == 1
        assert "--plot" in capsys.readouterr().err
    assert not (files.parent / (files.name + ".png")).exists()  # no DIR.png behind our back


def test_a_located_error_under_json_gives_file_line_and_column(capsys):
    assert main(["backprop", MLP2, "--output", "x1", "--json"]) == 1
    out = capsys.readouterr()
    err = json.loads(out.out)["error"]
    line = next(i for i, t in enumerate(Path(MLP2).read_text().splitlines(), 1) if "x1 = relu" in t)
    assert (err["file"], err["line"], err["kind"]) == (MLP2, line, "UsageError")
    assert err["column"] >= 1 and "not an output" in err["message"]
    assert out.err.startswith(f"{MLP2}:{line}:") and "^" in out.err  # the quoted source line


def test_an_error_with_json_path_writes_the_error_document(files, capsys):
    path = files / "err.json"
    assert main(["exec", MLP2, "--width", "8", "--seed", "-1", "--json", str(path)]) == 1
    assert json.loads(path.read_text())["error"]["message"].startswith("argument --seed")
    assert "--seed" in capsys.readouterr().err


def test_an_internal_error_is_one_line_and_a_json_document(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("compiler.cli.check.load", broken)
    assert main(["check", MLP2, "--json"]) == 2
    out = capsys.readouterr()
    assert out.err.startswith("internal error: RuntimeError: boom")
    assert json.loads(out.out)["error"] == {"kind": "RuntimeError", "message": "boom"}


def test_json_path_never_overwrites_an_architecture(files, capsys):
    arch = files / "two.nx"
    assert main(["check", MLP2, "--json", str(arch)]) == 1
    assert arch.read_text() == TWO_OUTPUTS
    assert json.loads(capsys.readouterr().out)["error"]["message"].startswith("--json")


def test_the_memory_guard_refuses_above_its_fraction(monkeypatch):
    from compiler.errors import UsageError
    from runtime import memory

    monkeypatch.setattr(memory, "physical_memory", lambda: 10 * 2**30)
    memory.check_memory(8 * 2**30, "eight GiB", "ask for less")  # 80% of 10 GiB: allowed
    with pytest.raises(UsageError, match=r"nine GiB = 9\.0 GiB, more than 80% of this "
                                         r"machine's 10\.0 GiB; ask for less"):
        memory.check_memory(9 * 2**30, "nine GiB", "ask for less")
    monkeypatch.setattr(memory, "physical_memory", lambda: None)
    memory.check_memory(2**60, "anything", "")  # the OS does not say: no guard
