"""samples/paper/ (07 §7.4): the data is what make_data.py makes (100 Gaussian training inputs in
R^10, random targets, 4 test inputs), and the README's exact commands run as written — at tiny
widths, with the test engine of :mod:`tests.fake_limit` standing in for the limit."""

from __future__ import annotations

import re
import runpy
import shlex
import shutil

import numpy as np
import pytest

import tests.fake_limit  # noqa: F401  (registers the test engines)
from compiler.cli import main
from tests.conftest import ROOT

PAPER = ROOT / "samples" / "paper"


def test_bundled_data_is_make_data_output(tmp_path):
    shutil.copy(PAPER / "make_data.py", tmp_path / "make_data.py")
    runpy.run_path(str(tmp_path / "make_data.py"))
    with np.load(PAPER / "paper.npz") as ours, np.load(tmp_path / "paper.npz") as fresh:
        assert sorted(ours.files) == ["X_test", "X_train", "y_train"]
        assert ours["X_train"].shape == (100, 10) and ours["y_train"].shape == (100,)
        assert ours["X_test"].shape == (4, 10)
        for key in ours.files:
            np.testing.assert_array_equal(ours[key], fresh[key])


def _commands() -> list[list[str]]:
    text = (PAPER / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    return [shlex.split(c)[1:] for c in re.findall(r"^ {4}(nexort converge .*)$", text, re.M)]


@pytest.mark.parametrize("k", [0, 1])
def test_readme_commands_run_as_written(k, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    argv = _commands()[k]
    assert argv[0] == "converge" and "--center" in argv
    small = {"--widths": "8,16", "--seeds": "2", "--steps": "1",
             "--plot": str(tmp_path / "f.png"), "--json": str(tmp_path / "f.json")}
    argv = [small.get(argv[i - 1], a) if i else a for i, a in enumerate(argv)]
    assert main([*argv, "--engine", "test-proxy", "--particles", "16", "--replicas", "2"]) == 0
    assert "fitted slope" in capsys.readouterr().out and (tmp_path / "f.png").is_file()
