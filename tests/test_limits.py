"""The limit evaluators (spec 01 §1.4–1.6, 07 §7.1): closed forms on the exact path and within
Monte Carlo error, dot terms where gradient independence fails, Stein vs derivative, numerics.

Tolerances: the exact path is compared at 1e-8 (it reaches ~1e-15); Monte Carlo at 4 standard
errors from 16 independent replicas (a z of 4 with 15 degrees of freedom has p ≈ 1e-3 per scalar;
the seeds are fixed, so the tests are deterministic)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from compiler.cli import main
from compiler.errors import NumericError, UsageError
from compiler.frontend.parse import parse_file, parse_text
from compiler.kets.lowering import lower
from compiler.passes.backprop import backprop
from compiler.passes.kernel_program import kernel_program
from runtime.executor import execute
from runtime.limits import LimitOptions, NotApplicableError, evaluate
from runtime.limits.closed_forms import mlp_kernels
from tests.conftest import ROOT
from tests.strategies import programs

X = np.load(ROOT / "samples" / "data" / "gauss10.npz")["X_train"][:3]
MLPS = [
    ("mlp1", 1, "relu"),
    ("mlp2", 2, "relu"),
    ("mlp3", 3, "relu"),
    ("mlp2_erf", 2, "erf"),
    ("mlp3_erf", 3, "erf"),
]


def mlp(name: str):
    if name == "mlp3_erf":
        return parse_text((ROOT / "samples" / "mlp3.nx").read_text().replace("relu", "erf"))
    return parse_file(ROOT / "samples" / f"{name}.nx")


def prog(body: str, params: str = "param x : vector\n param W : matrix") -> object:
    return parse_text(f"arch t {{\n {params}\n {body}\n}}\n")


def kernel_errors(res, kp, k):
    ntk = max(abs(res.scalars[n][0] - k.ntk[i, j]) for (i, j), n in kp.ntk.items())
    nngp = max(abs(res.scalars[n][0] - k.nngp[i, j]) for (i, j), n in kp.nngp.items())
    return ntk, nngp


@pytest.mark.parametrize(("name", "depth", "act"), MLPS)
def test_nngp_and_ntk_exact_path_matches_closed_forms(name, depth, act):
    kp = kernel_program(mlp(name), len(X))
    res = evaluate(lower(kp.program), kp.bind(X), method="exact")
    ntk, nngp = kernel_errors(res, kp, mlp_kernels(X, depth, act))
    assert ntk < 1e-8 and nngp < 1e-8, (ntk, nngp)


@pytest.mark.parametrize(("name", "depth", "act"), MLPS)
def test_nngp_and_ntk_monte_carlo_within_4_standard_errors(name, depth, act):
    kp = kernel_program(mlp(name), len(X))
    opts = LimitOptions(particles=16384, seed=1)
    res = evaluate(lower(kp.program), kp.bind(X), method="mc", options=opts)
    k = mlp_kernels(X, depth, act)
    for table, ref in ((kp.ntk, k.ntk), (kp.nngp, k.nngp)):
        for (i, j), n in table.items():
            assert abs(res.scalars[n][0] - ref[i, j]) < 4 * res.stderr[n][0], (
                n,
                res.scalars[n],
                ref[i, j],
            )


RNN_SQ = (
    (ROOT / "samples" / "rnn.nx").read_text().replace("output v * h[S-1]", "output h[S-1] * h[S-1]")
)


def test_transposes_rnn_backward_needs_its_dot_terms():
    """rnn forward + backward with F = avg(h²): W and Wᵀ interact (the readout is not an
    independent zero-mean vector), so the dot terms are non-zero.  At n = 4096 the finite-width
    scalars agree with the limit; the gradient-independence limit (dot = 0) is far off."""
    p = backprop(parse_text(RNN_SQ))
    kets = lower(p)
    assert {c.rule for s in kets.stmts for c in getattr(s, "dots", ())} == {"derivative"}
    x = np.load(ROOT / "samples" / "data" / "seq3x4.npz")["X_train"][:1]
    lim = evaluate(kets, x, method="mc", options=LimitOptions(particles=32768))
    off = LimitOptions(particles=32768, gradient_independence=True)
    gia = evaluate(kets, x, method="mc", options=off)
    seeds = 8
    runs = [execute(p, 4096, s, x) for s in range(seeds)]
    z_true, z_gia = [], []
    for name in kets.avg_names:
        v = np.array([r[name][0] for r in runs])
        se = v.std(ddof=1) / np.sqrt(seeds)
        z_true.append(abs(v.mean() - lim.scalars[name][0]) / np.hypot(se, lim.stderr[name][0]))
        z_gia.append(abs(v.mean() - gia.scalars[name][0]) / np.hypot(se, gia.stderr[name][0]))
    assert max(z_true) < 4.5, z_true
    assert max(z_gia) > 10, z_gia


def test_rnn_with_readout_has_exact_gradient_independence():
    kets = lower(backprop(parse_file(ROOT / "samples" / "rnn.nx")))
    dots = [c for s in kets.stmts for c in getattr(s, "dots", ())]
    assert dots and all(c.rule == "zero" for c in dots)


STEIN_PROGRAM = """
    param c : scalar = 1/2
    h = W @ x
    g = W.T @ tanh(h + c)
    k = W @ sin(g)
    y = mean[p](tanh(x*g[p] + c) * k[p])
    z = W.T @ (y*k)
    f = avg(z*g)
    output x*g"""


def test_derivative_and_stein_estimators_agree():
    kets = lower(prog(STEIN_PROGRAM))
    # independent seeds: with a shared seed the two estimates are correlated and agree trivially
    d = evaluate(kets, method="mc", options=LimitOptions(particles=32768, seed=3))
    s = evaluate(kets, method="mc", options=LimitOptions(particles=32768, seed=4, stein=True))
    assert len(d.dots) == 4
    for key, (val, se) in d.dots.items():
        sval, sse = s.dots[key]
        assert abs(val[0] - sval[0]) < 4 * np.hypot(se[0], sse[0]), (key, val, sval)
        assert se[0] < 0.01
    assert abs(d.scalars["f"][0] - s.scalars["f"][0]) < 4 * np.hypot(
        d.stderr["f"][0], s.stderr["f"][0]
    )


def test_dirac_delta_coefficient_is_the_density_at_zero():
    """E[∂ step(Ŵx)/∂Ŵx] = φ(0) = 1/√(2π), not the a.e. derivative 0."""
    kets = lower(prog("h = W @ x\n g = W.T @ step(h)\n s = avg(g*x)\n output g"))
    want = 1 / np.sqrt(2 * np.pi)
    mc = evaluate(kets, method="mc", options=LimitOptions(particles=65536))
    val, se = mc.dots[("g", "h")]
    assert abs(val[0] - want) < 4 * se[0] and se[0] < 0.01
    ex = evaluate(kets, method="exact")
    assert abs(ex.dots[("g", "h")][0][0] - want) < 1e-10 and ex.dots[("g", "h")][1][0] == 0
    assert abs(ex.scalars["s"][0] - want) < 1e-10  # E[g x] = E[x²]·φ(0)


def test_outer_nonlin_orders_1_and_2():
    kets = lower(
        prog(
            "y = mean[b](relu(x[b]) * x)\n s = avg(y*x)\n"
            "z = mean[b, c](relu(x[b]) * relu(x[c]) + x[b]*x[c]*x)\n t = avg(z)\n output y",
            "param x : vector",
        )
    )
    res = evaluate(kets, method="mc", options=LimitOptions(particles=16384, outer2_pool=128))
    for name, want in (("s", 1 / np.sqrt(2 * np.pi)), ("t", 1 / (2 * np.pi))):
        assert abs(res.scalars[name][0] - want) < 4 * res.stderr[name][0], (name, res.scalars[name])
    with pytest.raises(NotApplicableError, match="OuterNonlin"):
        evaluate(kets, method="exact")


def test_rank_deficient_gram_same_vector_twice_and_collinear_inputs():
    kets = lower(
        prog(
            "h = W @ x\n k = W @ x\n m = W @ (2*x)\n a = avg(h*k)\n b = avg(h*m)\n"
            "c = avg((h - k)^2)\n output h"
        )
    )
    res = evaluate(kets, method="mc", options=LimitOptions(particles=8192))
    assert abs(res.scalars["c"][0]) < 1e-20
    assert abs(res.scalars["b"][0] - 2 * res.scalars["a"][0]) < 1e-9
    ex = evaluate(kets, method="exact")
    assert ex.scalars["a"][0] == pytest.approx(1.0) and ex.scalars["c"][0] == pytest.approx(
        0.0, abs=1e-12
    )
    kp = kernel_program(mlp("mlp2"), 2)  # two identical inputs: every Gram is singular
    same = np.vstack([X[0], X[0]])
    res = evaluate(lower(kp.program), kp.bind(same), "mc", LimitOptions(particles=4096))
    assert all(np.isfinite(v).all() for v in res.scalars.values())


def test_deterministic_for_a_seed_and_seed_dependent():
    kets = lower(prog(STEIN_PROGRAM))
    a = evaluate(kets, method="mc", options=LimitOptions(particles=2048, seed=5))
    b = evaluate(kets, method="mc", options=LimitOptions(particles=2048, seed=5))
    c = evaluate(kets, method="mc", options=LimitOptions(particles=2048, seed=6))
    assert a.scalars["f"][0] == b.scalars["f"][0] != c.scalars["f"][0]


def test_nan_names_the_ket_and_instruction():
    kets = lower(prog("h = W @ x\n y = log(h - 100)\n s = avg(y)\n output y"))
    with pytest.raises(NumericError, match=r"ket \|y⟩.*log"):
        evaluate(kets, method="mc", options=LimitOptions(particles=1024))


def test_nan_on_the_exact_path_names_the_ket_and_instruction():
    """The exact path composes kets inside one quadrature, so it localises a non-finite
    expectation with a small particle run; it must never print a NaN limit."""
    kets = lower(prog("h = W @ x\n y = log(h - 100)\n s = avg(y)\n output y"))
    with pytest.raises(NumericError, match=r"ket \|y⟩.*log"):
        evaluate(kets, method="exact")
    inf = lower(prog("h = W @ x\n s = avg(1/step(h))\n output h"))
    with pytest.raises(NumericError, match=r"(NaN|Inf) in the limit"):
        evaluate(inf, method="exact")


def test_memory_estimate_refuses_clearly():
    kets = lower(prog(STEIN_PROGRAM))
    with pytest.raises(UsageError, match=r"needs about .* GiB, more than the budget"):
        evaluate(kets, None, "mc", LimitOptions(particles=1 << 20, memory_budget=1 << 20))


def test_random_scalar_parameter_is_conditioned_on():
    kets = lower(prog("s = avg(b*x*x)\n output x", "param x : vector\n param b : scalar"))
    mc = evaluate(kets, None, "mc", LimitOptions(particles=4096), scalars={"b": 0.25})
    assert mc.scalars["s"][0] == pytest.approx(0.25, rel=0.1)
    ex = evaluate(kets, scalars={"b": 0.25}, method="exact")
    assert ex.scalars["s"][0] == pytest.approx(0.25)
    assert mc.given == ex.given == {"b": 0.25}


def test_cli_limit_scalars_exact_mc_and_compare(capsys, tmp_path):
    path = tmp_path / "t.nx"
    path.write_text(
        "arch t {\n param x : vector\n param W : matrix\n h = W @ x\n"
        " g = W.T @ tanh(h)\n s = avg(g*x)\n y = mean[b](tanh(x[b]*x))\n"
        " r = avg(y*x)\n output g\n}\n"
    )
    assert (
        main(
            [
                "limit-scalars",
                str(path),
                "--particles",
                "4096",
                "--compare-widths",
                "64,256",
                "--seeds",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Monte Carlo" in out and "exact path not applicable" in out and "n=256" in out
    assert main(["limit-scalars", str(path), "--method", "exact"]) == 1
    assert "no exact path" in capsys.readouterr().err
    mlp2_bp = tmp_path / "bp.nx"
    assert main(["backprop", str(ROOT / "samples" / "mlp2.nx")]) == 0
    mlp2_bp.write_text(capsys.readouterr().out)
    assert main(["limit-scalars", str(mlp2_bp), "--inputs", "1,0,0,0,0,0,0,0,0,0"]) == 0
    assert "exact (quadrature)" in capsys.readouterr().out


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(programs(orders=(0, 1)))
def test_exact_path_and_monte_carlo_agree_on_random_programs(p):
    """The two evaluators share only the lowering: on tests/strategies.py programs that the exact
    path accepts, every Avg limit agrees with Monte Carlo within 5 standard errors."""
    kets = lower(p)
    x = np.full((1, len(p.input_names)), 0.5) if p.input_names else None
    try:
        ex = evaluate(kets, x, method="exact")
    except NotApplicableError:
        return
    mc = evaluate(kets, x, method="mc", options=LimitOptions(particles=8192))
    for name in kets.avg_names:
        gap = abs(ex.scalars[name][0] - mc.scalars[name][0])
        assert gap < 5 * mc.stderr[name][0] + 1e-9, (name, ex.scalars[name], mc.scalars[name])


def test_order2_pool_never_pairs_a_particle_with_itself():
    """E″ over a copy pool: own particles that lie in the pool use a disjoint pool, so y(p) does
    not depend on X(p) through a copy slot (that was a bias of about 2/P in every average)."""
    from runtime.limits.outer import Arg, copy_average

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 1))
    kern = lambda own, b, c: own * b * c  # noqa: E731
    args = [Arg(x, None, True), Arg(x, 1, True), Arg(x, 2, True)]
    before = copy_average([kern], args, 2, pool=16)[0]
    bumped = x.copy()
    bumped[3] += 1.0  # particle 3 is in the first pool, and an own particle
    args = [Arg(bumped, None, True), Arg(bumped, 1, True), Arg(bumped, 2, True)]
    after = copy_average([kern], args, 2, pool=16)[0]
    assert after[3, 0, 0] / bumped[3, 0, 0] == pytest.approx(before[3, 0, 0] / x[3, 0, 0])
    assert after[20, 0, 0] != pytest.approx(before[20, 0, 0])  # others do see particle 3


WITH_C = "param x : vector\n param W : matrix\n param c : scalar = 1/2"


def test_matmul_of_a_constant_vector_has_a_hat_per_replica():
    """W·vec(θ): the argument has one replica column; its hat must still be drawn per replica
    (else the replicas share one draw and the s.e. is 0), and it must join later hats' Grams."""
    kets = lower(prog("k = vec(1)\n y = W @ k\n s = avg(y*y)\n output y"))
    res = evaluate(kets, method="mc", options=LimitOptions(particles=16384))
    assert res.stderr["s"][0] > 0.003  # Var(y²)/M: √(2/16384) ≈ 0.011
    assert abs(res.scalars["s"][0] - 1.0) < 4 * res.stderr["s"][0]
    mixed = lower(prog("k = vec(tanh(c))\n y2 = W @ k\n y1 = W @ x\n y3 = W @ y2\n"
                       " s = avg(y3*y1 + y3*y3)\n output y3", WITH_C))
    exact = evaluate(mixed, method="exact").scalars["s"][0]  # = tanh(1/2)²: independent hats
    assert exact == pytest.approx(np.tanh(0.5) ** 2, rel=1e-10)
    mc = evaluate(mixed, method="mc", options=LimitOptions(particles=16384))
    assert abs(mc.scalars["s"][0] - exact) < 4 * mc.stderr["s"][0]


def test_outer_nonlin_that_reads_no_copy_is_pointwise():
    kets = lower(prog("y = mean[b](c)\n s = avg(y*x + y)\n output y", WITH_C))
    res = evaluate(kets, method="mc", options=LimitOptions(particles=4096))
    assert abs(res.scalars["s"][0] - 0.5) < 4 * res.stderr["s"][0]


def test_a_deterministic_dot_coefficient_has_standard_error_zero():
    """g = Wᵀ W x: E[∂h/∂ĥ] = 1 exactly, in every replica (not a NaN standard error)."""
    kets = lower(prog("h = W @ x\n g = W.T @ h\n s = avg(g*x)\n output g"))
    res = evaluate(kets, method="mc", options=LimitOptions(particles=4096))
    val, se = res.dots[("g", "h")]
    assert val[0] == 1.0 and se[0] == 0.0
    assert abs(res.scalars["s"][0] - 1.0) < 4 * res.stderr["s"][0]  # E[g x] = E[x²] = 1


def test_cli_kernels_match_the_closed_forms_and_plot(capsys, tmp_path):
    """``limit-scalars --kernels``: the NNGP and NTK entries of mlp2 between the given inputs,
    on the exact path, equal the closed-form recursions of 07 §7.1; the comparison plot exists."""
    x = np.load(ROOT / "samples" / "data" / "gauss10.npz")["X_train"][:2]
    data = tmp_path / "two.npz"
    np.savez(data, X_train=x)
    png = tmp_path / "mt.png"
    args = ["limit-scalars", str(ROOT / "samples" / "mlp2.nx"), "--inputs", str(data),
            "--kernels", "--json", "--compare-widths", "64,128", "--seeds", "2", "--plot", str(png)]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    want = mlp_kernels(x, 2, "relu")
    np.testing.assert_allclose(out["nngp"], want.nngp, rtol=1e-12)
    np.testing.assert_allclose(out["ntk"], want.ntk, rtol=1e-12)
    assert set(out["stderr"]) == {"nngp", "ntk"}  # user-visible names only, no _k1
    assert np.shape(out["compare"]["128"]["ntk"]["mean"]) == (2, 2)
    assert png.stat().st_size > 10_000
    assert main(["limit-scalars", str(ROOT / "samples" / "mlp2.nx"), "--kernels"]) == 1
    assert "needs --inputs" in capsys.readouterr().err
