"""The MLP classifier reproduces spec 03 §3.2.

SP is unfaithful, NTP is in the operator regime with r = 1/2, μP in the feature-learning regime
with r = 0, UP_s is stable and faithful exactly for s ∈ [0, 1/2] and feature learning iff s = 0;
SP with a global learning rate n^{-c} under SignSGD is unstable at c = 1 and in the operator
regime at c = 3/2 (03 §3.2 "open", L ≥ 2; L = 1: c = 1 is stable, operator regime).
"""

from __future__ import annotations

import pytest
import sympy

from compiler.abcd import analyse
from compiler.abcd.classify import classify_mlp, effective, layer_rows
from compiler.abcd.conditions import condition_set, symbol
from compiler.abcd.mlp import recognise
from compiler.abcd.param import Exponents, resolve
from compiler.frontend.parse import parse_file, parse_text
from compiler.train import parse_optimizer
from tests.conftest import ROOT

HALF = sympy.Rational(1, 2)
MLPS = ["mlp1", "mlp2", "mlp3"]


def program(name: str):
    return parse_file(ROOT / "samples" / f"{name}.nx")


def verdicts(a) -> dict[str, bool | None]:
    return {v.name: v.holds for v in a.verdicts}


@pytest.mark.parametrize("name", [*MLPS, "mlp2_erf"])
def test_samples_are_recognised_as_mlps(name):
    s = recognise(program(name))
    depth = {"mlp1": 1, "mlp2": 2, "mlp3": 3, "mlp2_erf": 2}[name]
    assert s is not None and s.depth == depth
    assert [la.index for la in s.layers] == list(range(1, depth + 2))
    assert s.layers[0].group == "U" and s.layers[-1].group == "v"


@pytest.mark.parametrize("name", ["resmlp", "layernorm_mlp", "rnn", "attention",
                                  "transformer_block"])
def test_other_samples_are_not_mlps(name):
    assert recognise(program(name)) is None


@pytest.mark.parametrize("text", [
    # fused activations, a group of matrices, different activations per layer, linear layer
    "param W : matrix[2]\n param v : vector\n output v * tanh(W[1] @ relu(W[0] @ erf(U . xi)))",
    "param W : matrix\n param v : vector\n x1 = U . xi\n output v * (W @ x1)",
])
def test_recognition_is_structural(text):
    src = f"arch m {{\n input xi[3]\n param U : vector[3]\n {text}\n}}"
    assert recognise(parse_text(src)) is not None


@pytest.mark.parametrize("text", [
    "param W : matrix\n param v : vector\n output v * relu(W.T @ relu(U . xi))",  # transpose
    "param W : matrix\n param v : vector\n x = relu(U . xi)\n output v * (W @ x + x)",  # residual
    "param W : matrix\n param v : vector\n x = relu(U . xi)\n output v * relu(W @ relu(W @ x))",
    "param W : matrix\n param v : vector\n param b : vector\n"
    " output v * relu(W @ relu(U . xi) + b)",  # a bias
])
def test_non_mlps_are_refused(text):
    src = f"arch m {{\n input xi[3]\n param U : vector[3]\n {text}\n}}"
    assert recognise(parse_text(src)) is None


@pytest.mark.parametrize("name", MLPS)
def test_sp_is_stable_at_init_but_unfaithful(name):
    a = analyse(program(name), "sp", "adam")
    assert a.method == "mlp"
    v = verdicts(a)
    assert v["stable_init"] is True and v["faithful_init"] is False and v["faithful"] is False
    assert a.regime is None
    assert any("d_1" in r and "≠" in r for r in a.reasons())


@pytest.mark.parametrize("opt", ["adam", "signsgd", "sgd", "momentum(0.9)"])
@pytest.mark.parametrize("name", MLPS)
def test_ntp_operator_regime_with_r_one_half(name, opt):
    a = analyse(program(name), "ntp", opt)
    assert all(verdicts(a)[k] for k in ("stable", "faithful", "nontrivial", "operator"))
    assert a.regime == "operator" and a.r == HALF


@pytest.mark.parametrize("opt", ["adam", "signsgd", "sgd"])
@pytest.mark.parametrize("name", MLPS)
def test_mup_feature_learning_with_r_zero(name, opt):
    a = analyse(program(name), "mup", opt)
    assert all(verdicts(a)[k] for k in ("stable", "faithful", "nontrivial", "feature_learning"))
    assert a.regime == "feature_learning" and a.r == 0
    assert all(c.holds for c in a.contributions if c.name != "f_0")  # every layer contributes


@pytest.mark.parametrize("opt", ["adam", "signsgd", "sgd"])
@pytest.mark.parametrize("name", MLPS)
def test_up_s_sets(name, opt):
    s = symbol("s")
    a = analyse(program(name), "up:s", opt)
    both = sympy.And(a["stable"].condition, a["faithful"].condition)
    assert condition_set(both) == sympy.Interval(0, HALF)
    assert a["nontrivial"].solutions() == sympy.Interval(0, HALF)
    assert a["feature_learning"].solutions() == sympy.FiniteSet(0)
    assert a["operator"].solutions() == sympy.Interval.Lopen(0, HALF)
    assert sympy.simplify(a.r.subs(s, sympy.Rational(1, 3)) - sympy.Rational(1, 3)) == 0


@pytest.mark.parametrize("value", ["0", "1/4", "1/2"])
def test_up_s_numbers(value):
    a = analyse(program("mlp2"), f"up:{value}", "adam")
    assert a["stable"].holds and a["faithful"].holds and a["nontrivial"].holds
    assert a.r == sympy.Rational(value)
    assert a.regime == ("feature_learning" if value == "0" else "operator")


@pytest.mark.parametrize("value", ["-1/4", "3/4"])
def test_up_s_outside_the_range_fails_with_reason(value):
    """s < 0: θ_l = s < 0, the features blow up. After the first update Δh^1 = n^{-θ_1} and
    Δh^2 ⊇ ΔW^2 Δx^1 = n^{1 − (a_2+c_2)}·n^{-θ_1} = n^{-θ_2-θ_1} = n^{-2s} (the ΔW·Δx term).
    s > 1/2: a_3+b_3 = 1 − s < 1/2, f_0 blows up at init."""
    a = analyse(program("mlp2"), f"up:{value}", "adam")
    assert not a["stable"].holds
    text = "\n".join(a.reasons())
    if value == "-1/4":
        assert "r < 0: the features blow up" in text and "at least like n^1/2" in text
        assert a.reported("r").diverges and a.reported("r").bound == -2 * sympy.Rational(value)
    else:
        assert "a_3+b_3 = 1/4 < 1/2: f_0 blows up: it grows like n^1/4" in text
        assert a.reported("r").value == sympy.Rational(3, 4)  # the features are fine


@pytest.mark.parametrize("name", ["mlp2", "mlp3"])
def test_sp_global_learning_rate_under_signsgd(name):
    """03 §3.2 'open': c = 1 unstable (Δf grows like n^{1/2}), c = 3/2 operator regime."""
    one = analyse(program(name), "sp:1", "signsgd")
    assert one["stable"].holds is False and one.r == 0
    top = {"mlp2": 3, "mlp3": 4}[name]
    assert any(f"a_{top}+b_{top}+r = 1/2 < 1" in r and "n^1/2" in r for r in one.reasons())
    assert any("open" in n for n in one.notes)
    half = analyse(program(name), "sp:3/2", "signsgd")
    assert half.regime == "operator" and half.r == HALF
    # 05 §5.5: the SP c = 3/2 limit is the hidden layers' term alone
    assert {c.name for c in half.contributions if c.holds} - {"f_0"} == (
        {"W"} if name == "mlp2" else {"W2", "W3"})


def test_sp_global_learning_rate_one_hidden_layer():
    a = analyse(program("mlp1"), "sp:1", "signsgd")
    assert a.regime == "operator" and a.r == 1


def test_sp_global_learning_rate_as_a_set():
    a = analyse(program("mlp2"), "sp:c", "signsgd")
    assert a["stable"].solutions() == sympy.Interval(sympy.Rational(3, 2), sympy.oo)
    assert a["operator"].solutions() == sympy.FiniteSet(sympy.Rational(3, 2))


def test_sgd_folds_d_into_c():
    """Rem. 2.2.4: with SGD, SP at c = 1 is the abc-parametrization with c = 1 (kernel regime);
    SP at c = 0 is unstable."""
    assert analyse(program("mlp2"), "sp:1", "sgd").regime == "operator"
    assert analyse(program("mlp2"), "sp", "sgd")["stable"].holds is False
    assert analyse(program("mlp2"), "sp:c", "sgd")["stable"].solutions() == sympy.Interval(
        1, sympy.oo)


def test_adam_readout_at_half_speed_drops_the_readout_update():
    """05 §5.5: μP with readout c = 1/2 (L = 1, Adam) converges to the limit with v frozen."""
    p = program("mlp1")
    mup = resolve("mup", p)
    slow = mup.with_exponents({"v": Exponents.of(0, 0, HALF, 1)})
    a = classify_mlp(recognise(p), slow, parse_optimizer("adam"))
    assert a.regime == "feature_learning"
    contributes = {c.name: c.holds for c in a.contributions}
    assert contributes == {"U": True, "v": False, "f_0": False}


@pytest.mark.parametrize("opt", ["sgd", "signsgd", "adam"])
def test_zero_initialised_readout(opt):
    """b_{L+1} = ∞ (zero init, common μP practice): the readout is ΔW_0 = n^{-(a+c)} from its
    first update on, so it counts with b' = min(b, c) = c for every optimizer: μP stays feature
    learning with r = 0 and every layer's update contributes (05 §5.5). Under Adam the hidden
    gradients are exactly 0 at step 0 (Q(0) = 0: neither linearised nor saturated) and from step
    1 on have the scale n^{-(a_l+a_{L+1}+c_{L+1})} that d_l = 1 matches: faithful."""
    p = program("mlp2")
    zero = resolve("mup", p).with_exponents({"v": Exponents.of(0, sympy.oo, 0, 1)})
    for a in (classify_mlp(recognise(p), zero, parse_optimizer(opt)),
              analyse(p, zero, opt, method="calculus")):
        assert a.regime == "feature_learning" and a.r == 0, a.method
        assert all(verdicts(a)[k] for k in ("stable", "faithful", "nontrivial"))
        assert {c.name: c.holds for c in a.contributions} == {
            "U": True, "W": True, "v": True, "f_0": False}


def test_effective_exponents_match_the_spec_tables():
    """θ_l and r_l of 03 §3.2 (paper Eq. 2.23): NTP r_l = 1/2, μP r_l = 0."""
    s = recognise(program("mlp3"))
    for name, r in (("ntp", HALF), ("mup", 0)):
        e = effective(layer_rows(s, resolve(name, program("mlp3"))), "adaptive")
        assert e.r_l == (r, r, r)
