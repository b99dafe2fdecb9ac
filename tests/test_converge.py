"""The distance of finite width to the limit and its rate (runtime/converge.py) against
constructed cases with known answers, and ``nexort converge`` end to end with the test engine
of :mod:`tests.fake_limit` (JSON, text, plot, determinism, refusals)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tests.fake_limit  # noqa: F401  (registers the test engines)
from compiler.cli import main
from runtime.converge import distances, log_slope, width_distance
from tests.conftest import ROOT

MLP2 = str(ROOT / "samples" / "mlp2.nx")
DATA = str(ROOT / "samples" / "data" / "regress10.npz")
WIDTHS = (256, 512, 1024, 2048, 4096)
SHAPE = (5, 40, 1)  # T+1 steps, points, outputs


def test_a_pure_bias_gives_its_rms_and_slope_exactly():
    """finite = limit + c·n^{-1/2}·pattern for every seed: D_n = |c|·RMS(pattern)·n^{-1/2}."""
    rng = np.random.default_rng(1)
    limit, pattern = rng.standard_normal(SHAPE), rng.standard_normal(SHAPE)
    finite = np.stack([np.stack([limit + 3 * n**-0.5 * pattern] * 4) for n in WIDTHS])
    per, slope, se = distances(WIDTHS, finite, limit, 0.0)
    rms = np.sqrt(np.mean(pattern**2))
    for d, n in zip(per, WIDTHS, strict=True):
        assert d.distance == pytest.approx(3 * rms * n**-0.5, rel=1e-12) and d.stderr < 1e-12
    assert slope == pytest.approx(-0.5, abs=1e-12) and se < 1e-12


def test_subtracting_the_limit_variance_removes_its_bias():
    """f̂ = f + e, e ~ N(0, s²): E (f̄ − f̂)² = bias² + s², so E D² = bias² after subtracting
    s² (checked over 400 draws of e, within 4 standard errors of their mean)."""
    rng = np.random.default_rng(2)
    limit, s, bias = rng.standard_normal(SHAPE), 0.05, 0.02
    finite = np.stack([limit + bias] * 3)
    d2 = [width_distance(64, finite, limit + s * rng.standard_normal(SHAPE), s**2).distance**2
          for _ in range(400)]
    raw = [width_distance(64, finite, limit + s * rng.standard_normal(SHAPE), s**2).raw**2
           for _ in range(400)]
    # D = 0 where the draw's D² < 0 (clipped): rare here, bias² = 4e-4 against sd(D²) ≈ 2e-4
    assert abs(np.mean(d2) - bias**2) <= 4 * np.std(d2) / np.sqrt(len(d2)) + 1e-6
    assert np.mean(raw) == pytest.approx(bias**2 + s**2, rel=0.05)


def test_seed_noise_falls_at_the_half_rate_and_its_jackknife_error_is_right():
    """Independent seeds f = limit + σ n^{-1/2} Z: E D² = σ²/(nK), so the slope is −½ (within 4
    jackknife s.e.), and the jackknife s.e. of D matches the spread of D over repetitions
    (within 30%: the jackknife variance of a smooth statistic with K = 10 is near unbiased,
    and 200 repetitions fix the spread to ±5%)."""
    rng = np.random.default_rng(3)
    limit, k = np.zeros(SHAPE), 10
    finite = np.stack([limit + n**-0.5 * rng.standard_normal((k, *SHAPE)) for n in WIDTHS])
    _, slope, se = distances(WIDTHS, finite, limit, 0.0)
    assert 0 < se < 0.1 and abs(slope + 0.5) <= 4 * se
    reps = [width_distance(256, rng.standard_normal((k, 2, 10, 1)), np.zeros((2, 10, 1)), 0.0)
            for _ in range(200)]
    spread = np.std([d.distance for d in reps], ddof=1)
    assert np.mean([d.stderr for d in reps]) == pytest.approx(spread, rel=0.3)


def test_log_slope_ignores_zero_distances():
    assert log_slope([1, 2, 4, 8], [1.0, 0.5, 0.0, 0.125]) == pytest.approx(-1.0)
    assert np.isnan(log_slope([1, 2], [1.0, 0.0]))


CONVERGE = ["converge", MLP2, "--data", DATA, "--steps", "2", "--param", "ntp", "--opt",
            "adam(lr=0.02)", "--center", "--engine", "test-proxy", "--particles", "64",
            "--replicas", "2", "--widths", "16,32", "--seeds", "2"]


def test_converge_json_text_and_plot(tmp_path, capsys):
    out, doc_path = tmp_path / "c.png", tmp_path / "c.json"
    assert main([*CONVERGE, "--plot", str(out), "--json", str(doc_path)]) == 0
    text = capsys.readouterr().out
    doc = json.loads(doc_path.read_text())
    assert doc["widths"] == [16, 32] and doc["seeds"] == [0, 1]
    assert len(doc["distance"]) == len(doc["distance_stderr"]) == 2
    assert np.array(doc["finite_mean"]).shape == (2, 3, 12)
    assert np.array(doc["limit"]["f"]).shape == (3, 12) and doc["limit"]["engine"] == "test-proxy"
    assert "fitted slope" in text and "how to read it" in text and f"plot: {out}" in text
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_converge_is_deterministic(capsys):
    docs = []
    for _ in range(2):
        assert main([*CONVERGE, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        doc.pop("seconds")
        docs.append(doc)
    assert docs[0] == docs[1]


@pytest.mark.parametrize(("change", "says"), [
    (["--widths", "16"], "two widths"),
    (["--seeds", "1"], "--seeds"),
    (["--widths", "16,x"], "--widths"),
    (["--memory-limit", "1e-6"], "above --memory-limit"),
])
def test_converge_refuses_bad_requests_before_running(capsys, monkeypatch, change, says):
    monkeypatch.setattr("runtime.trainer.train", lambda *a, **k: pytest.fail("trained"))
    assert main([*CONVERGE, *change]) == 1
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_converge_refuses_a_random_f0_limit(capsys):
    """Seed means converge to E f_t, not to one GP draw of f_0 (05 §5.1): --center is needed."""
    argv = [a for a in CONVERGE if a != "--center"]
    assert main(argv) == 1
    assert "--center" in capsys.readouterr().err


def test_converge_refuses_a_centred_limit_that_decays(capsys):
    """Weight decay keeps (ρ^t − 1)·f_0 in f − f_0 (05 §5.6): centring does not remove the draw."""
    argv = [a if a != "adam(lr=0.02)" else "adamw(lr=0.02, wd=1)" for a in CONVERGE]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "even centred" in err and "Traceback" not in err


def _ntp_sgd_convergence(widths: tuple[int, ...], seeds: int):
    """mlp2, NTP, SGD, centred, against the NT engine's exact limit (no Monte Carlo floor):
    D_n² = bias² + seed noise σ²/(nK), both O(1/n) (Master Theorem), so the slope is −½."""
    from compiler.frontend.parse import parse_file
    from compiler.train.setup import build_training
    from runtime.converge import converge
    from runtime.limits.trajectory import TrajectoryOptions

    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 10)) / np.sqrt(10)
    y = rng.standard_normal((4, 1))
    tr = build_training(parse_file(MLP2), "ntp", "sgd(lr=0.5)", "mse", 2, 4, 2, center=True)
    return converge(tr, x, y, widths, range(seeds), TrajectoryOptions(method="exact"), "nt")


def test_ntp_sgd_networks_approach_the_exact_nt_limit():
    """Measured: slope −0.84 ± 0.35 (D_n = 0.0094, 0.0020, 0.0009 at n = 64, 256, 1024)."""
    res = _ntp_sgd_convergence((64, 256, 1024), 6)
    assert res.limit.path == "exact" and not res.notes
    assert res.slope < 0 and abs(res.slope + 0.5) <= 4 * res.slope_stderr


@pytest.mark.slow
def test_ntp_sgd_networks_approach_the_exact_nt_limit_full():
    res = _ntp_sgd_convergence((64, 128, 256, 512, 1024, 2048), 16)
    # D_n of 6 points × 2 steps has few effective degrees of freedom: the jackknife s.e. of the
    # slope stays ≈ 0.35 even with 16 seeds (measured: slope −0.64 ± 0.36)
    assert res.slope < 0 and abs(res.slope + 0.5) <= 4 * res.slope_stderr


def test_a_gap_below_the_limit_error_is_noted_not_a_crash():
    """Networks equal to the computed limit, which has a Monte Carlo error: D² − s² < 0 is
    clipped to D = 0, left out of the slope, and both facts are said."""
    from compiler.frontend.parse import parse_file
    from compiler.train.setup import build_training
    from runtime.converge import summarise
    from runtime.limits.trajectory import LimitTrajectory, plan_limit

    tr = build_training(parse_file(MLP2), "mup", "adam", "mse", 2, 3, 1)
    f = np.ones((3, 4, 1))
    limit = LimitTrajectory(plan_limit(tr), "test", "mc", f, np.full_like(f, 0.1))
    res = summarise(limit, (8, 16), (0, 1), np.stack([np.stack([f, f])] * 2))
    assert [d.distance for d in res.distances] == [0.0, 0.0] and np.isnan(res.slope)
    assert any("above the smallest" in n for n in res.notes)
    assert any("left out of the slope" in n for n in res.notes)


def test_the_bias_note_only_when_a_bias_was_bounded():
    """A limit whose pool-size check found nothing (bias all 0) gets no "systematic error
    bound" note; one with a bound gets it with the bound's RMS."""
    from compiler.frontend.parse import parse_file
    from compiler.train.setup import build_training
    from runtime.converge import summarise
    from runtime.limits.trajectory import LimitTrajectory, plan_limit

    tr = build_training(parse_file(MLP2), "mup", "adam", "mse", 2, 3, 1)
    f = np.ones((3, 4, 1))
    finite = np.stack([np.stack([f + 0.1, f - 0.1])] * 2)
    for bias, noted in ((np.zeros_like(f), False), (np.full_like(f, 0.05), True)):
        limit = LimitTrajectory(plan_limit(tr), "test", "mc", f, np.full_like(f, 0.1), bias=bias)
        res = summarise(limit, (8, 16), (0, 1), finite)
        assert any("systematic error bound (RMS 0.05)" in n for n in res.notes) == noted
