"""Exact zeros by symmetry in the size calculus (spec 03 §3.3-3.4;
:mod:`compiler.abcd.zeros`).

In μP attention at step 0 the score gradients da[s] = avg(v ⊙ …) are odd under the flip of the
readout v: their limit is exactly 0, so Wq's and Wk's Q inputs are n^{-1/2} (CLT) at step 0, not
Θ(1). The calculus says so in its Q-input rows and notes, without changing the verdicts (the
scale, from step 1 on, is Θ(1)); an independent finite-width measurement (the backprop program
executed at several widths) checks the two slopes it predicts.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy

from compiler.abcd import analyse
from compiler.abcd.calculus import SizeCalculus
from compiler.abcd.conditions import fmt, npow
from compiler.abcd.param import resolve
from compiler.abcd.symmetry import invariants
from compiler.cli import main
from compiler.frontend.parse import parse_file
from compiler.ir import Program
from compiler.passes.backprop import Backprop, BackpropOptions
from compiler.passes.pipeline import run_pass
from compiler.train import parse_optimizer
from runtime.executor import Execution, execute
from runtime.params import draw_parameters
from tests.conftest import ROOT

HALF = sympy.Rational(1, 2)
ATTENTION = str(ROOT / "samples" / "attention.nx")


def program(name: str) -> Program:
    return parse_file(ROOT / "samples" / f"{name}.nx")


def rows(a):
    return {r.group: r for r in a.q_inputs}


# -- the calculus ----------------------------------------------------------------------------------
def test_attention_step0_q_inputs_of_wq_wk_are_n_to_minus_half():
    a = analyse(program("attention"), "mup", "adam")
    got = rows(a)
    for g in ("Wq", "Wk"):
        assert got[g].step0 == -HALF and got[g].step1 == 0
        assert "v" in got[g].zero_by  # odd under the flip of the readout
    for g in ("U", "Wv", "v"):
        assert got[g].step0 == 0 and got[g].zero_by == ()
    q = dict(a.quantities)
    assert q["q(Wq)"] == -HALF and q["q₁(Wq)"] == 0  # step 0, and the scale faithfulness judges
    # the verdicts are those of the scale: μP attention stays faithful feature learning
    assert a["faithful"].holds is True and a.regime == "feature_learning" and a.r == 0


def test_attention_note_says_what_adam_does_with_the_zero():
    a = analyse(program("attention"), "mup", "adam")
    (note,) = [n for n in a.notes if n.startswith("Wq, Wk:")]
    assert "limit exactly 0" in note and "Q(0) = 0" in note
    assert "n* = (κ/ε)^2" in note  # q₀ = -1/2: κ·n^{-1/2} = ε at n = (κ/ε)^2
    assert "raw gradient of p is n^-3/2 against eps = ε·n^-1" in note  # μP: d = 1, q₀ − d
    sign = analyse(program("attention"), "mup", "signsgd")
    assert any("random sign at every width" in n for n in sign.notes)
    sgd = analyse(program("attention"), "mup", "sgd")
    assert any("as in the limit" in n for n in sgd.notes)


def test_crossover_follows_the_table():
    """The crossover exponent −1/q₀ and the PyTorch eps follow the table's d and e_out: under
    UP_1/4 (e_out = 3/4, d = 3/4) Wq's step-0 input is still n^{-1/2} below its scale."""
    p = program("attention")
    a = analyse(p, "up:1/4", "adam")
    q0, scale = dict(a.quantities)["q(Wq)"], dict(a.quantities)["q₁(Wq)"]
    assert q0 == scale - HALF
    d = resolve("up:1/4", p)["Wq"].d
    (note,) = [n for n in a.notes if n.startswith("Wq, Wk:")]
    assert f"eps = ε·{npow(-d)}" in note and f"raw gradient of p is {npow(q0 - d)}" in note
    assert f"(κ/ε)^{fmt(-1 / q0)}" in note


@pytest.mark.parametrize("name", ["mlp2", "resmlp", "rnn"])
def test_no_symmetric_zero_where_there_is_none(name):
    """mlp2, resmlp, rnn: every Q input is Θ(1) at step 0, as before (no backward average)."""
    for spec in ("mup", "ntp"):
        a = analyse(program(name), spec, "adam", method="calculus")
        assert all(r.zero_by == () and r.step0 == r.step1 for r in a.q_inputs), spec
        assert not any("limit exactly 0" in n for n in a.notes)
        assert not any(k.startswith("q₁(") for k, _ in a.quantities)
        if spec == "mup":
            assert all(r.step0 == 0 for r in a.q_inputs)


def test_layernorm_gain_and_transformer_scores():
    """A layer-norm gain's gradient avg(v ⊙ …) and the transformer block's score gradients are
    symmetric zeros at step 0 too; the other tensors are not."""
    ln = rows(analyse(program("layernorm_mlp"), "mup", "adam"))
    assert {g for g, r in ln.items() if r.zero_by} == {"gain", "bias"}
    tb = rows(analyse(program("transformer_block"), "mup", "adam"))
    assert {g for g, r in tb.items() if r.zero_by} == {"Wq", "Wk"}
    assert all(r.step0 == (-HALF if r.zero_by else 0) for r in tb.values())


def test_cli_sizes_table_and_json(capsys, tmp_path):
    assert main(["abcd", ATTENTION, "--param", "mup", "--opt", "adam", "--sizes"]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.startswith("q(")}
    assert lines["q(Wq)"][1:4] == ["-1/2", "0", "0"] and "symmetry" in " ".join(lines["q(Wq)"])
    assert lines["q(Wv)"][1:] == ["0", "0"]
    assert "Q(0) = 0" in out
    path = tmp_path / "a.json"
    assert main(["abcd", ATTENTION, "--param", "mup", "--opt", "adam", "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    wq = doc["q_inputs"]["Wq"]
    assert (wq["step0"], wq["step1"], wq["limit_zero_at_step0"]) == ("-1/2", "0", True)
    assert "v" in wq["zero_by"]
    assert doc["q_inputs"]["Wv"]["limit_zero_at_step0"] is False
    assert doc["sizes"]["q(Wq)"] == "-1/2" and doc["sizes"]["q₁(Wq)"] == "0"
    assert any("Q(0) = 0" in n for n in doc["notes"])


def test_generic_sizes_differ_only_in_backward_averages():
    """``generic`` keeps gradient averages at their size once the symmetry is broken; the
    forward pass is the same in both (its CLT rule was already there)."""
    p = program("attention")
    calc = SizeCalculus(p, resolve("mup", p), parse_optimizer("adam"))
    init, generic = calc.init[0], calc.generic[0]
    differ = {x for x in init if init[x] != generic[x]}
    assert {"da[0]", "da[1]", "da[2]"} <= differ
    assert not differ & set(calc.forward)


# -- an independent measurement: the backprop program at finite width ------------------------------
def q_input_mean_square(bp: Backprop, ex: Execution, group: str, scale: float) -> float:
    """Mean square entry of the Q input n^{D-e_out}·Σ_u dy_u x_uᵀ (n·∂F/∂W = Σ_u dy_u x_uᵀ over
    the uses y_u = W x_u), averaged over the batch, by ‖Σ_u a_u b_uᵀ‖² = Σ (a_u·a_v)(b_u·b_v)."""
    n, uses = ex.width, bp.grads.matrix_uses(group)
    vec = [(np.broadcast_to(ex[u.outer[0]], (n, ex.batch)),
            np.broadcast_to(ex[u.outer[1]], (n, ex.batch))) for u in uses]
    total = sum(np.einsum("nb,nb->b", a, c) * np.einsum("nb,nb->b", b, d)
                for a, b in vec for c, d in vec)
    return float(np.mean(total)) * scale**2 / n**2


def inputs(p: Program) -> np.ndarray:
    """One input per embedding vector U[j]: token s is t_s·e_j. At init the score gradients of
    input j are (t_s − t̄)/S·avg(v ⊙ Wv U[j]) + o(n^{-1/2}), so the four inputs carry four
    independent Gaussians of equal weight per seed (a generic input mixes the same four: one
    effective Gaussian, and a run would need four times the seeds)."""
    t = (1.0, -1.0, 1.0)
    index = {name: k for k, name in enumerate(p.input_names)}
    xs = np.zeros((4, len(index)))
    for j in range(4):
        for s in range(3):
            xs[j, index[f"xi[{s}][{j}]"]] = t[s]
    return xs


def nested(p: Program, widths: list[int], seed: int) -> dict[int, dict[str, np.ndarray]]:
    """Parameters at every width from one draw at the largest: vectors are its first n entries,
    matrices its leading n×n block rescaled to N(0, 1/n). Each width has the exact law; the
    widths share their randomness (common random numbers), which cancels in the slope."""
    top = max(widths)
    big = draw_parameters(p, top, seed)
    out = {}
    for n in widths:
        out[n] = {k: (a[:n, :n] * np.sqrt(top / n) if a.ndim == 2 else a[:n] if a.ndim else a)
                  for k, a in big.items()}
    return out


def measured_slopes(widths: list[int], seeds: int, groups: tuple[str, ...]):
    """Log-log slope of the RMS Q input against n (y = ½ log of the mean square over seeds and
    inputs), and its standard error by the delta method over seeds: the slope's linearisation
    Σ_i w_i·½·m_{s,i}/m̄_i is one number per seed (the widths of a seed are correlated)."""
    p = program("attention")
    param = resolve("mup", p)
    bp = run_pass(p, BackpropOptions(p.outputs[0], input_gradients=False))
    xs = inputs(p)
    ms = {g: np.zeros((seeds, len(widths))) for g in groups}
    for s in range(seeds):
        drawn = nested(bp.program, widths, s)
        for i, n in enumerate(widths):
            ex = execute(bp.program, n, inputs=xs, params=drawn[n])
            for g in groups:
                _, _, big_d = invariants(param[g])
                ms[g][s, i] = q_input_mean_square(bp, ex, g, n ** float(big_d - param.e_out))
    x = np.log(widths)
    w = (x - x.mean()) / np.sum((x - x.mean()) ** 2)
    out = {}
    for g, m in ms.items():
        mean = m.mean(axis=0)
        slope = float(w @ (0.5 * np.log(mean)))
        per_seed = (0.5 * m / mean) @ w
        out[g] = (slope, float(per_seed.std(ddof=1) / np.sqrt(seeds)))
    return out


def check_measurement(widths: list[int], seeds: int) -> None:
    predicted = rows(analyse(program("attention"), "mup", "adam"))
    got = measured_slopes(widths, seeds, ("Wq", "Wv"))
    assert predicted["Wq"].step0 == -HALF and predicted["Wv"].step0 == 0
    for g, (slope, se) in got.items():
        assert 4 * se < 0.1, (g, se)  # the run resolves the 0.1 tolerance at 4 standard errors
        assert abs(slope - float(predicted[g].step0)) < 0.1, (g, slope, se)


def test_measured_slope_of_the_score_gradient_fast():
    """Fast variant: widths 32…256 (the same exponent; the standard error needs ~150 seeds,
    four Gaussians each, which is cheap only at small widths)."""
    check_measurement([32, 64, 128, 256], seeds=160)


@pytest.mark.slow
def test_measured_slope_of_the_score_gradient():
    """Widths 256…2048, as the coordinate check would run them."""
    check_measurement([256, 512, 1024, 2048], seeds=160)


def test_ntp_attention_scores_stay_below_scale():
    """In the operator regime the first update breaks the symmetry only by n^{-1/2}: the score
    gradients stay n^{-1/2} during training, so (Adam linear near 0) Wq and Wk's updates move f by
    o(1) and drop out of the limit, as in the NTK of 1/n attention; the verdicts are unchanged."""
    a = analyse(program("attention"), "ntp", "adam")
    assert a.regime == "operator" and a["faithful"].holds is True
    holds = {c.name: c.holds for c in a.contributions}
    assert holds["Wq"] is False and holds["Wk"] is False and holds["Wv"] is True
    assert rows(a)["Wq"].step1 == -HALF  # measured after one update: still below its scale
