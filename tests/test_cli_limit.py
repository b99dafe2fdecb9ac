"""``nexort limit``: the JSON shapes, the points of ``nexort train``, the text table, the plot,
refusals and bad input as clean errors, determinism for a seed — against the test engines of
:mod:`tests.fake_limit` (the real NT and μ engines are tested with their own code)."""

from __future__ import annotations

import json

import pytest

import tests.fake_limit as fake
from compiler.cli import main
from tests.conftest import ROOT

MLP2 = str(ROOT / "samples" / "mlp2.nx")
DATA = str(ROOT / "samples" / "data" / "regress10.npz")
STEPS = 3
BASE = ["limit", MLP2, "--data", DATA, "--steps", str(STEPS), "--engine", "test-proxy",
        "--particles", "32", "--replicas", "2"]
POINTS = 12  # regress10: 8 train + 4 test (samples/data/make_data.py)


def _json(capsys, argv: list[str]) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_has_f_and_stderr_per_step_and_point(capsys):
    doc = _json(capsys, [*BASE, "--param", "ntp", "--opt", "sgd"])
    assert doc["ok"] and doc["command"] == "limit" and doc["arch"] == "mlp2"
    for key in ("f", "stderr"):
        assert len(doc[key]) == STEPS + 1 and all(len(row) == POINTS for row in doc[key])
    assert (doc["engine"], doc["method"], doc["regime"]) == ("test-proxy", "mc", "operator")
    assert doc["particles"] == 32 and doc["seed"] == 0 and doc["steps"] == STEPS


def test_points_are_those_of_nexort_train(capsys):
    limit = _json(capsys, [*BASE, "--param", "ntp"])
    train = _json(capsys, ["train", MLP2, "--data", DATA, "--steps", str(STEPS), "--width", "8",
                           "--param", "ntp"])
    assert limit["points"] == train["points"] and len(limit["points"]) == POINTS


@pytest.mark.parametrize(("param", "center", "random"),
                         [("ntp", False, True), ("ntp", True, False), ("mup", False, False)])
def test_f0_is_random_only_in_the_operator_regime_uncentred(capsys, param, center, random):
    """05 §5.1: f_0 ~ GP(0, NNGP) in NTP; centring removes it; μP's f_0 vanishes."""
    argv = [*BASE, "--param", param, *(["--center"] if center else [])]
    doc = _json(capsys, argv)
    assert doc["f0_random"] is random and doc["center"] is center
    assert main(argv) == 0
    assert ("f_0 is a Gaussian process" in capsys.readouterr().out) is random


def test_text_table_has_every_point_and_the_engine(capsys):
    assert main([*BASE, "--param", "ntp"]) == 0
    out = capsys.readouterr().out
    assert "limit: operator regime" in out and "engine test-proxy, path mc" in out
    rows = [line for line in out.splitlines() if line.strip().startswith(("train:", "test:"))]
    assert len(rows) == POINTS and all(line.count("±") == 3 for line in rows)  # t = 0, 1, 3


def test_plot_is_a_png(tmp_path, capsys):
    out = tmp_path / "limit.png"
    assert main([*BASE, "--param", "ntp", "--center", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot: {out}" in capsys.readouterr().out


def test_same_seed_same_limit_other_seed_other_limit(capsys):
    first = _json(capsys, [*BASE, "--param", "ntp"])
    again = _json(capsys, [*BASE, "--param", "ntp"])
    other = _json(capsys, [*BASE, "--param", "ntp", "--seed", "1"])
    assert first["f"] == again["f"] and first["stderr"] == again["stderr"]
    assert first["f"] != other["f"]


def _refusals() -> list[tuple[list[str], str]]:
    return [
        ([*BASE, "--param", "sp", "--opt", "sgd"], "is not stable"),
        ([*BASE[:-6], "--engine", "test-refuses", "--param", "ntp"], fake.REFUSAL),
        ([*BASE[:-6], "--engine", "nope"], "no training-limit engine named 'nope'"),
        ([*BASE, "--method", "fast"], "--method"),
        ([*BASE, "--particles", "2"], "--particles"),
        ([*BASE, "--replicas", "1"], "--replicas"),
        ([*BASE, "--memory-limit", "0"], "--memory-limit"),
        ([*BASE, "--steps", "0"], "--steps"),
        ([*BASE, "--opt", "adam(lr=-1)"], "lr"),
        ([*BASE, "--data", str(ROOT / "samples" / "data" / "gauss10.npz")], "y_train"),
        (["limit", MLP2, "--steps", "2"], "--data"),
    ]


@pytest.mark.parametrize("k", range(len(_refusals())))
def test_refusals_and_bad_input_are_clean_errors(capsys, k):
    argv, says = _refusals()[k]
    assert main(argv) == 1
    out = capsys.readouterr()
    assert says in out.err and "Traceback" not in out.err and "internal error" not in out.err
    assert main([*argv, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and says in doc["error"]["message"]


def test_a_bad_file_is_located(capsys):
    bad = ROOT / "tests" / "bad" / "missing_equals.nx"
    assert main(["limit", str(bad), "--data", DATA, "--steps", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:") and err.split(":")[1].isdigit() and "^" in err


SMALL = ["limit", MLP2, "--steps", "2"]


@pytest.fixture
def small_data(tmp_path) -> str:
    """3 training points and 1 test point in R^10 (ξ ~ N(0, I/10), y ~ N(0, 1)): the engines'
    cost grows with the points, these tests need only the shapes and the choice."""
    import numpy as np

    rng = np.random.default_rng(0)
    path = tmp_path / "small.npz"
    np.savez(path, X_train=rng.standard_normal((3, 10)) / np.sqrt(10),
             y_train=rng.standard_normal(3), X_test=rng.standard_normal((1, 10)) / np.sqrt(10))
    return str(path)


def test_auto_runs_the_nt_engine_exactly_for_ntp_sgd(capsys, small_data):
    """05 §5.5: NTP is the operator regime; SGD's Q is linear, so auto takes the exact path."""
    doc = _json(capsys, [*SMALL, "--data", small_data, "--param", "ntp", "--opt", "sgd",
                         "--center"])
    assert (doc["engine"], doc["method"], doc["regime"]) == ("nt", "exact", "operator")
    assert doc["f"][0] == [0.0] * 4 and all(s == 0 for row in doc["stderr"] for s in row)


def test_auto_runs_the_mu_engine_for_mup_adam(capsys, small_data):
    doc = _json(capsys, [*SMALL, "--data", small_data, "--param", "mup", "--particles", "256"])
    assert (doc["engine"], doc["regime"], doc["f0_random"]) == ("mu", "feature_learning", False)
    assert len(doc["f"]) == 3 and all(s > 0 for s in doc["stderr"][-1])
