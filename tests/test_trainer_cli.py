"""``nexort train``: the JSON document, the text and the plot, and every bad input as a clear
error (exit 1, the option or the array and row named, never a traceback)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compiler.cli import main
from compiler.frontend.parse import parse_file
from compiler.train.setup import build_training
from runtime.trainer import train
from tests.conftest import ROOT
from tests.conftest import TWO_OUTPUT_MLP as TWO

MLP2 = str(ROOT / "samples" / "mlp2.nx")
REGRESS = str(ROOT / "samples" / "data" / "regress10.npz")
BASE = ["train", MLP2, "--param", "mup", "--opt", "adam(lr=0.02, eps=1e-4)", "--steps", "3",
        "--width", "32"]


def test_json_document_has_points_f_and_loss(capsys) -> None:
    assert main([*BASE, "--data", REGRESS, "--seeds", "2", "--center", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    with np.load(REGRESS) as d:
        n_train, n_test = len(d["X_train"]), len(d["X_test"])
    assert doc["points"] == [*(f"train:{i}" for i in range(n_train)),
                             *(f"test:{i}" for i in range(n_test))]
    f = np.array(doc["f"])
    assert f.shape == (2, 4, n_train + n_test) and doc["width"] == 32
    assert np.array(doc["loss"]).shape == (2, 4)
    assert np.all(f[:, 0] == 0) and np.abs(f[:, -1]).max() > 0  # centred: f̃_0 = 0


def test_cli_equals_the_library(capsys, tmp_path) -> None:
    args = [*BASE, "--data", REGRESS, "--batch-size", "3", "--loss", "mse", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    with np.load(REGRESS) as d:
        x = np.vstack([d["X_train"], d["X_test"]])
        y = d["y_train"][:, None]
        n_train, n_test = len(d["X_train"]), len(d["X_test"])
    tr = build_training(parse_file(MLP2), "mup", "adam(lr=0.02, eps=1e-4)", "mse", 3, n_train,
                        n_test, 3)
    np.testing.assert_array_equal(np.array(doc["f"]), train(tr, x, y, 32).f[..., 0])


def test_text_and_plot(capsys, tmp_path) -> None:
    plot = tmp_path / "train.png"
    assert main([*BASE, "--data", REGRESS, "--seeds", "2", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "train:0" in out and "test:3" in out and "loss" in out
    assert plot.stat().st_size > 1000


def test_two_outputs_cross_entropy_with_labels(capsys, tmp_path) -> None:
    (tmp_path / "two.nx").write_text(TWO)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cls.npz", X_train=rng.standard_normal((4, 10)),
             y_train=np.array([0, 1, 1, 0]))
    argv = ["train", str(tmp_path / "two.nx"), "--loss", "ce", "--opt", "sgd(lr=0.5)",
            "--data", str(tmp_path / "cls.npz"), "--steps", "2", "--width", "16", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert np.array(doc["f"]).shape == (1, 3, 4, 2)  # trailing output axis
    assert doc["loss"][0][2] < doc["loss"][0][0]


@pytest.fixture
def bad(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 10))
    nan = x.copy()
    nan[2, 3] = np.nan
    np.savez(tmp_path / "dim.npz", X_train=rng.standard_normal((4, 7)), y_train=np.zeros(4))
    np.savez(tmp_path / "nan.npz", X_train=nan, y_train=np.zeros(4))
    np.savez(tmp_path / "inf_y.npz", X_train=x, y_train=np.array([0, 1, np.inf, 0]))
    np.savez(tmp_path / "shape.npz", X_train=x, y_train=np.zeros((4, 3)))
    np.savez(tmp_path / "rows.npz", X_train=x, y_train=np.zeros(5))
    np.savez(tmp_path / "noy.npz", X_train=x)
    np.savez(tmp_path / "test.npz", X_train=x, y_train=np.zeros(4), X_test=np.zeros((2, 9)))
    (tmp_path / "text.npz").write_text("not a zip")
    return tmp_path


def _cases(d):
    run = [*BASE[:-4], "--width", "32"]
    data = ["--steps", "2", "--data"]
    return [
        ([*run, *data, str(d / "dim.npz")], "takes d = 10 input scalars"),
        ([*run, *data, str(d / "nan.npz")], "X_train row 2 contains NaN"),
        ([*run, *data, str(d / "inf_y.npz")], "y_train row 2 contains Inf"),
        ([*run, *data, str(d / "shape.npz")], "y_train has shape (4, 3)"),
        ([*run, *data, str(d / "rows.npz")], "y_train has shape (5,)"),
        ([*run, *data, str(d / "noy.npz")], "no y_train"),
        ([*run, *data, str(d / "test.npz")], "X_test rows have 9"),
        ([*run, *data, str(d / "text.npz")], "not an .npz"),
        ([*run, *data, str(d / "none.npz")], "no such file"),
        ([*run, "--steps", "0", "--data", REGRESS], "--steps"),
        ([*run, "--steps", "2", "--seeds", "0", "--data", REGRESS], "--seeds"),
        ([*run, "--steps", "2", "--batch-size", "99", "--data", REGRESS], "--batch-size"),
        ([*run, "--steps", "2", "--opt", "adam(lr=0.1, bta1=0.9)", "--data", REGRESS], "bta1"),
        ([*run, "--steps", "2", "--opt", "adum", "--data", REGRESS], "unknown optimizer"),
        ([*run, "--steps", "2", "--loss", "huber", "--data", REGRESS], "unknown error signal"),
        ([*run, "--steps", "2", "--loss", "ce", "--data", REGRESS], "k ≥ 2 outputs"),
        ([*run, "--steps", "2", "--param", "nosuch.toml", "--data", REGRESS], "nosuch.toml"),
        ([*BASE[:-2], "--width", "3000000", "--data", REGRESS], "smaller --width"),
        ([*run, "--steps", "40", "--opt", "sgd(lr=1e200)", "--param", "sp", "--data", REGRESS],
         "training step"),
    ]


@pytest.mark.parametrize("k", range(19))
def test_bad_input_is_a_clear_error(k, bad, capsys) -> None:
    argv, says = _cases(bad)[k]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and "internal error" not in err


def test_bad_options_are_located(bad, capsys) -> None:
    assert main([*BASE, "--opt", "adam(lr=0.1, bta1=0.9)", "--data", REGRESS]) == 1
    err = capsys.readouterr().err
    assert "^" in err  # a caret under the offending text of the option string
