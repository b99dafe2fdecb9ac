"""The coordinate check (spec 03 §3.4, runtime/coordcheck.py): slopes, regimes, predictions.

Choices for the statistical tests (fast variants; the @slow ones use 128…4096 and more seeds):
* slopes are fitted on the seed-RMS size over ≥ 4 widths spanning 3 octaves (log-range ln 8),
  so a slope's standard error is ≈ sd(log size)/1.6; the tests assert the verdict (|slope −
  predicted| ≤ 0.1) and that the jackknife standard error is below 0.1, so the margin is real;
* mlp2 runs are centred (04 §4.2): f_0 is a Θ(1) Gaussian-process sample under SP and NTP
  (n^{-1/2} under μP), and χ_0 = f_0 − y carries its seed noise into every gradient (measured
  uncentred under NTP: slopes ± 0.13 at K = 6, n ≤ 4096, the U row off by 0.125); centred,
  χ_0 = −y for every seed and standard errors are ≈ 0.05 at K = 4–6;
* T = 1: one update from init is what the calculus predicts on every table (on an unstable one
  it predicts nothing later); attention's step-0 Q inputs are CLT scalars (a few Gaussian
  numbers per seed), hence 24 seeds there (standard error ≈ 0.07 measured)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import sympy

from compiler.cli.app import main
from compiler.frontend.parse import parse_file
from compiler.train import parse_optimizer
from compiler.train.setup import build_training
from compiler.train.signals import parse_signal
from runtime.coordcheck import coordcheck, default_data, fit_slopes, regime, without_eps
from runtime.coordcheck_stats import STATUSES, fit, lead_evidence, status
from tests.conftest import ROOT

SAMPLES = ROOT / "samples"
FAST = (128, 256, 512, 1024)
FULL = (128, 256, 512, 1024, 2048, 4096)


def _check(arch: str, param: str, opt: str, widths=FAST, seeds=4, steps=1, center=False):
    program = parse_file(str(SAMPLES / f"{arch}.nx"), {})
    data = default_data(program, parse_signal("mse"))
    training = build_training(program, param, opt, "mse", steps, data.n_train, data.n_test,
                              center=center)
    return coordcheck(training, data.x, data.y, widths, range(seeds))


def _assert_all_hold(cc, max_se=0.1):
    judged = cc.judged
    assert judged, "nothing was predicted"
    bad = [(r.label, r.t, r.slope, str(r.predicted)) for r in judged if not r.verdict]
    noisy = [(r.label, r.t, r.stderr) for r in judged if r.stderr >= max_se]
    assert not bad, bad
    se = [r.stderr for r in judged if r.predicted is not None and np.isfinite(r.stderr)]
    assert max(se) < max_se, noisy


def test_fit_slopes_recovers_an_exponent_and_its_error():
    rng = np.random.default_rng(1)
    widths = np.array(FULL)
    sizes = 3.0 * widths ** -0.5 * np.exp(0.05 * rng.standard_normal((8, len(FULL))))
    slope, se = fit_slopes(widths, sizes)
    assert abs(slope + 0.5) < 4 * se and 0 < se < 0.05
    assert np.isnan(fit_slopes(widths, np.zeros((2, len(FULL))))[0])
    assert np.isnan(fit_slopes(widths, sizes[:1])[1])  # one seed: no standard error


def test_regime_compares_step0_q_inputs_with_eps():
    adam = parse_optimizer("adam(eps=1e-4)")
    big, small = np.full((2, 3), 1e-2), np.full((2, 3), 1e-6)
    assert regime(adam, [big]) == "eps-free"
    assert regime(adam, [small]) == "limit"
    assert regime(adam, [big, small]) == "crossover"
    assert regime(parse_optimizer("sgd"), [small]) == "limit"


def test_without_eps_keeps_everything_else():
    opt = parse_optimizer("adamw(lr=0.02, beta1=0.8, eps=1e-4, wd=0.1)")
    free = without_eps(opt)
    assert free is not None and free.eps == 0 and free.qclass == "scale_invariant"
    assert (free.lr, free.weight_decay, free.arg("beta1")) == (opt.lr, opt.weight_decay,
                                                               sympy.Rational(4, 5))
    assert without_eps(parse_optimizer("sgd")) is None


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_mlp2_mup(opt):
    _assert_all_hold(_check("mlp2", "mup", opt, seeds=6, center=True))


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_mlp2_ntp(opt):
    _assert_all_hold(_check("mlp2", "ntp", opt, center=True))


@pytest.mark.parametrize("param, opt", [("sp:1", "sgd"), ("sp:1", "adam"), ("sp:3/2", "adam"),
                                        ("sp:1", "signsgd"), ("sp:3/2", "signsgd")])
def test_mlp2_sp_global_rate(param, opt):
    """03 §3.2: SP with a global rate n^{-c}; under Adam and SignSGD (the spec's measurement:
    slopes +0.44 and −0.06) c = 1 gives |Δf| ∝ √n, c = 3/2 flat (measured here with SignSGD,
    K = 4, n = 128…1024: +0.42 ± 0.05)."""
    cc = _check("mlp2", param, opt, center=True)
    _assert_all_hold(cc)
    df = cc.row("f", "f", 1)
    half = sympy.Rational(1, 2)
    expected = {("sp:1", "adam"): half, ("sp:1", "signsgd"): half}.get((param, opt),
                                                                        sympy.S.Zero)
    assert df.predicted == expected and abs(df.slope - float(expected)) <= 0.1


def test_attention_mup_adam_step0_q_inputs():
    """Wq/Wk's step-0 Q input is 0 in the limit (the readout's sign symmetry, compiler.abcd.zeros):
    n^{-1/2} measured; ≫ ε = 1e-8 at these widths, so the ε-free predictions are the ones judged."""
    cc = _check("attention", "mup", "adam", widths=(64, 128, 256, 512, 1024), seeds=24)
    assert cc.regime == "eps-free"
    for group in ("Wq", "Wk"):
        row = cc.row("q", group, 0)
        assert row.predicted == sympy.Rational(-1, 2) and row.verdict, row
        assert row.stderr < 0.1
    for group in ("U", "Wv", "v"):
        assert cc.row("q", group, 0).verdict
    # every other row of attention under μP + Adam: none fails or is frozen (issue 12)
    bad = [(r.label, r.t, r.slope) for r in cc.judged if cc.status(r) in ("fails", "frozen")]
    assert not bad, bad


def test_cli_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "cc.json", tmp_path / "cc.png"
    rc = main(["coordcheck", str(SAMPLES / "mlp2.nx"), "--widths", "32,64", "--seeds", "2",
               "--steps", "2", "--json", str(out), "--plot", str(png)])
    assert rc == 0 and png.stat().st_size > 0
    doc = json.loads(out.read_text())
    assert doc["widths"] == [32, 64] and doc["regime"] == "eps-free"  # Adam, ε = 1e-8
    row = next(r for r in doc["rows"] if r["kind"] == "f" and r["t"] == 2)
    assert len(row["sizes"]) == 2 and len(row["sizes"][0]) == 2 and row["predicted"] == "0"
    # two widths: the widest "half" is the whole range, so the wide slope is the slope
    assert row["wide_slope"] == row["slope"] and row["status"] in STATUSES
    assert "t quantile 12.71 (2 seeds)" in capsys.readouterr().out  # t_{0.975, 1}


@pytest.mark.parametrize("widths", ["64", "64,x", "1,64", "64,64"])
def test_cli_bad_widths(widths, capsys):
    assert main(["coordcheck", str(SAMPLES / "mlp2.nx"), "--widths", widths]) == 1
    assert "--widths" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("param, opt, center", [
    ("mup", "sgd", False), ("mup", "adam", False), ("ntp", "sgd", True), ("ntp", "adam", True),
    ("sp:1", "sgd", True), ("sp:1", "adam", True), ("sp:3/2", "adam", True)])
def test_mlp2_full(param, opt, center):
    _assert_all_hold(_check("mlp2", param, opt, widths=FULL, seeds=6, center=center))


@pytest.mark.slow
def test_attention_full():
    cc = _check("attention", "mup", "adam", widths=FULL, seeds=16)
    for group in ("Wq", "Wk"):
        assert cc.row("q", group, 0).verdict


def test_cli_refuses_a_width_that_does_not_fit(capsys):
    """The widest run is estimated before any training: n = 10⁷ needs ≥ 8·n² bytes ≈ 727 TiB."""
    assert main(["coordcheck", str(SAMPLES / "mlp2.nx"), "--widths", "16,10000000"]) == 1
    err = capsys.readouterr().err
    assert "GiB" in err and "--widths" in err and "Traceback" not in err


def test_status_separates_a_significant_failure_from_an_unsure_one():
    """The 'within s.e.' rule uses t_{0.975, K-1} (a jackknife s.e. over K seeds has K − 1
    degrees of freedom): 3.18 at K = 4, where the normal quantile 1.96 would call a gap of
    2.5 s.e. beyond the tolerance a failure."""
    cc = _check("mlp2", "mup", "sgd", widths=(128, 256), seeds=2, center=True)
    row = next(r for r in cc.judged if r.predicted is not None)
    pred = float(sympy.sympify(row.predicted))
    tol = cc.tolerance

    def shifted(gap: float, se: float, seeds: int):
        f = dataclasses.replace(row.fit, slope=pred + tol + gap, stderr=se,
                                wide_slope=pred + tol + gap, narrow_slope=pred + tol + gap,
                                bend_stderr=se, seeds=seeds)
        return dataclasses.replace(row, fit=f, verdict=False)

    assert shifted(0.05, 0.02, 4).fit.quantile == pytest.approx(3.182, abs=1e-3)
    assert cc.status(shifted(0.05, 0.02, 4)) == "inconclusive"  # 2.5 s.e. < t_3 = 3.18
    assert cc.status(shifted(0.05, 0.02, 100)) == "fails"  # 2.5 s.e. > t_99 = 1.98
    assert cc.status(shifted(0.05, 0.01, 4)) == "fails"  # 5 s.e.
    assert cc.status(dataclasses.replace(row, verdict=True)) == "ok"
    assert all(r["status"] in STATUSES for r in cc.to_json()["rows"])


def test_curved_frozen_and_wide_slope():
    """A size n^{-1} up to n = 512 that flattens to n^0 beyond: the whole-range slope misses the
    prediction 0, the widest half fits it: curved; a size exactly 0 somewhere: frozen."""
    widths = np.array((128, 256, 512, 1024, 2048, 4096))
    rng = np.random.default_rng(3)
    bent = np.where(widths <= 512, 512 / widths, 1.0) * np.exp(
        0.01 * rng.standard_normal((6, widths.size)))
    f = fit(widths, bent)
    assert abs(f.wide_slope) < 4 * f.wide_stderr and f.slope < -0.3  # least squares: -0.37
    assert f.bent and status(0.0, f, bent, False, 0.1) == "curved"
    assert status(-1.0, f, bent, False, 0.1) == "fails"  # the wide slope disagrees
    frozen = bent.copy()
    frozen[2, 4] = 0.0
    assert status(0.0, fit(widths, frozen), frozen, False, 0.1) == "frozen"
    straight = (widths ** -0.5) * np.exp(0.01 * rng.standard_normal((6, widths.size)))
    g = fit(widths, straight)
    assert not g.bent and abs(g.wide_slope + 0.5) < 4 * g.wide_stderr


def test_two_term_fit_finds_a_masked_leading_term():
    """size = A·s_k + B·n^{-1/2}·g (s_k a seed's sign, g Gaussian): the seed mean square is
    A² + B²/n. With layer norm's Δmu under Adam (A = 0.0036, B = 0.1, 16 seeds, 128…4096) the
    slope is far below 0 but A² is found (over 20 draws A²/s.e. had 10th percentile 3.25 >
    t_{0.95,15} = 1.75); with A = 0 it is not (90th percentile 0.96), so never "curved"."""
    widths = np.array(FULL)
    rng = np.random.default_rng(7)
    sign = rng.choice([-1.0, 1.0], size=(16, 1))
    noise = rng.standard_normal((16, widths.size)) * 0.1 / np.sqrt(widths)
    masked = np.abs(0.0036 * sign + noise)
    f = fit(widths, masked)
    assert f.slope < -0.1
    assert lead_evidence(widths, masked, 0.0) > 1.75
    assert status(0.0, f, masked, False, 0.1, widths) == "curved"
    clean = np.abs(noise)
    assert lead_evidence(widths, clean, 0.0) < 1.75
    assert status(0.0, fit(widths, clean), clean, False, 0.1, widths) in ("fails", "inconclusive")
