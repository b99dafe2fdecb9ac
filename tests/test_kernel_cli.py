"""``limit-scalars --kernels``: NNGP and NTK as B×B matrices in JSON and in ``--out K.npz``
(issue 13 item 6), checked against the closed-form recursion (05 §5.1, 07 §7.1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compiler.cli import main
from runtime.limits.closed_forms import mlp_kernels

ROOT = Path(__file__).resolve().parent.parent
MLP2 = str(ROOT / "samples" / "mlp2.nx")


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """20 inputs: more than the old cap of 16."""
    x = np.random.default_rng(5).standard_normal((20, 10)) / np.sqrt(10)
    path = tmp_path / "x.npz"
    np.savez(path, X_train=x)
    return path, x


def test_json_has_matrices_and_user_visible_stderr(data, capsys) -> None:
    path, x = data
    assert main(["limit-scalars", MLP2, "--kernels", "--inputs", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    want = mlp_kernels(x, 2, "relu")
    np.testing.assert_allclose(doc["nngp"], want.nngp, rtol=0, atol=1e-12)
    np.testing.assert_allclose(doc["ntk"], want.ntk, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sum(np.array(b) for b in doc["blocks"].values()), doc["ntk"],
                               rtol=0, atol=1e-15)
    assert set(doc["blocks"]) == {"U", "W", "v"}
    assert set(doc["stderr"]) == {"nngp", "ntk"}
    assert np.array(doc["stderr"]["ntk"]).shape == (20, 20)
    assert doc["engine"] == "exact" and not np.any(doc["stderr"]["nngp"])


def test_out_writes_a_loadable_npz(data, tmp_path, capsys) -> None:
    path, x = data
    out = tmp_path / "K.npz"
    argv = ["limit-scalars", MLP2, "--kernels", "--inputs", str(path), "--out", str(out)]
    assert main(argv) == 0
    assert str(out) in capsys.readouterr().out
    k = np.load(out)
    want = mlp_kernels(x, 2, "relu")
    np.testing.assert_allclose(k["nngp"], want.nngp, rtol=0, atol=1e-12)
    np.testing.assert_allclose(k["ntk"], k["ntk_U"] + k["ntk_W"] + k["ntk_v"], atol=1e-15)
    np.testing.assert_array_equal(k["X"], x)


@pytest.mark.parametrize("extra,says", [
    (["--out", "K.npz"], "give --kernels too"),
    (["--kernels", "--inputs", "1,0,0,0,0,0,0,0,0,0", "--out", "K.txt"], "must end in .npz"),
])
def test_out_misuse_is_a_clear_error(extra, says, capsys) -> None:
    assert main(["limit-scalars", MLP2, *extra]) == 1
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_monte_carlo_kernels_have_standard_errors(data, capsys) -> None:
    """--method mc: the kernel program by Monte Carlo; every entry within 4 of its standard
    errors of the closed form (a 4σ two-sided bound fails with probability 6e-5 per entry)."""
    path, x = data
    small = path.parent / "three.npz"
    np.savez(small, X_train=x[:3])
    argv = ["limit-scalars", str(ROOT / "samples" / "mlp1.nx"), "--kernels", "--inputs",
            str(small), "--method", "mc", "--particles", "8192", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["engine"] == "mc" and doc["path"] == "kernel program"
    want = mlp_kernels(x[:3], 1, "relu")
    for kind, ref in (("nngp", want.nngp), ("ntk", want.ntk)):
        se = np.array(doc["stderr"][kind])
        assert np.all(se > 0)
        assert np.all(np.abs(np.array(doc[kind]) - ref) <= 4 * se), kind


def test_a_given_scalar_parameter_conditions_the_kernels(tmp_path, capsys) -> None:
    """``param s : scalar`` without init is outside the batched class; ``--scalar s=2`` makes
    x1 = relu(s·h1) = relu(h1 with ξ → 2ξ): the NNGP is mlp1's closed form at 2ξ."""
    text = (ROOT / "samples" / "mlp1.nx").read_text()
    assert "relu(h1)" in text
    prog = tmp_path / "s.nx"
    prog.write_text(text.replace("param v : vector", "param v : vector\n    param s : scalar")
                    .replace("relu(h", "relu(s*h", 1))
    x = np.random.default_rng(6).standard_normal((2, 10)) / np.sqrt(10)
    data = tmp_path / "x.npz"
    np.savez(data, X_train=x)
    argv = ["limit-scalars", str(prog), "--kernels", "--inputs", str(data), "--scalar", "s=2",
            "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(doc["nngp"], mlp_kernels(2 * x, 1, "relu").nngp, atol=1e-12)
