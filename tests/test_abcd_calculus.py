"""The size calculus (spec 03 §3.3) equals the MLP classifier (03 §3.2) on MLPs, as symbolic
condition sets for L = 1…4 and verdict by verdict on random numeric tables; on the other
samples it gives the predictions the coordinate check measures.
"""

from __future__ import annotations

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.abcd import analyse
from compiler.abcd.calculus import SizeCalculus, analyse_sizes
from compiler.abcd.classify import classify_mlp
from compiler.abcd.conditions import condition_set, symbol
from compiler.abcd.mlp import recognise
from compiler.abcd.param import Exponents, resolve
from compiler.frontend.parse import parse_file, parse_text
from compiler.train import parse_optimizer
from tests.conftest import ROOT

HALF = sympy.Rational(1, 2)
OTHERS = ["resmlp", "layernorm_mlp", "rnn", "attention", "transformer_block"]


def mlp(depth: int, act: str = "relu"):
    lines = ["arch m {", " input xi[3]", " param U : vector[3]"]
    lines += [f" param W{k} : matrix" for k in range(2, depth + 1)]
    lines += [" param v : vector", f" x1 = {act}(U . xi)"]
    lines += [f" x{k} = {act}(W{k} @ x{k - 1})" for k in range(2, depth + 1)]
    return parse_text("\n".join([*lines, f" output v * x{depth}", "}"]))


def family(name: str, program):
    """One-symbol families probing every boundary of 03 §3.2 (t is the symbol)."""
    t = symbol("t")
    if name in ("up", "sp"):
        return resolve(f"{name}:t", program)
    base = resolve("mup" if name != "ntp-input-c" else "ntp", program)
    first, hidden = "U", [g for g in base if base.role(g) == "matrix"]
    change = {
        "mup-readout-c": {"v": Exponents(0, 0, t, 1)},
        "mup-readout-b": {"v": Exponents(0, t, 0, 1)},
        "mup-hidden-b": {g: Exponents(0, t, 1, 1) for g in hidden},
        "mup-input-d": {first: Exponents(0, 0, 0, t)},
        "ntp-input-c": {first: Exponents(0, 0, t, HALF)},
    }[name]
    return base.with_exponents(change)


FAMILIES = ["up", "sp", "mup-readout-c", "mup-readout-b", "mup-hidden-b", "mup-input-d",
            "ntp-input-c"]
OPTS = ["adam", "signsgd", "sgd"]


def assert_same(a, b):
    for v in a.verdicts:
        assert v.solutions() == b[v.name].solutions(), (v.name, v.solutions(),
                                                         b[v.name].solutions())
    for ca, cb in zip(a.contributions, b.contributions, strict=True):
        assert ca.name == cb.name
        assert condition_set(ca.condition) == condition_set(cb.condition), ca.name


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("fam", FAMILIES)
def test_calculus_equals_classifier_as_condition_sets(depth, fam):
    program = mlp(depth)
    param = family(fam, program)
    opt = parse_optimizer(OPTS[(depth + FAMILIES.index(fam)) % 3])  # every pair meets all Qs
    a = classify_mlp(recognise(program), param, opt)
    b = analyse_sizes(program, param, opt)
    assert_same(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("opt", OPTS)
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("fam", FAMILIES)
def test_calculus_equals_classifier_every_optimizer(depth, fam, opt):
    program = mlp(depth, "tanh")
    param = family(fam, program)
    o = parse_optimizer(opt)
    assert_same(classify_mlp(recognise(program), param, o), analyse_sizes(program, param, o))


QUARTERS = st.integers(-4, 8).map(lambda k: sympy.Rational(k, 4))


@st.composite
def mlp_tables(draw):
    """Random MLP tables around the built-ins; sometimes one b (zero init) or c (frozen) = ∞."""
    depth = draw(st.integers(1, 4))
    act = draw(st.sampled_from(["relu", "tanh", "gelu", "erf"]))
    program = mlp(depth, act)
    base = resolve(draw(st.sampled_from(["mup", "ntp", "sp", "up:1/4", "sp:1"])), program)
    infinite = draw(st.none() | st.tuples(st.sampled_from(list(base)), st.sampled_from("bc")))
    rows = {}
    for g in base:
        old = base[g].as_tuple()
        row = [draw(st.one_of(st.just(x), QUARTERS)) for x in old]
        if infinite is not None and infinite[0] == g:
            row["abcd".index(infinite[1])] = sympy.oo
        rows[g] = Exponents(*row)
    param = base.with_exponents(rows)
    if draw(st.booleans()):
        param = type(param)(param.name, draw(QUARTERS), param.rows, param.roles)
    return program, param, parse_optimizer(draw(st.sampled_from(OPTS))), act


@settings(max_examples=60, deadline=None)
@given(mlp_tables())
def test_calculus_equals_classifier_on_random_tables(case):
    """Same verdicts, same contributions, and the same reported r and e(Δf): the same number
    when defined, or both undefined (features not Θ(1) at init) or both diverging — with the same
    first-update lower bound for homogeneous activations (relu: no saturation to model)."""
    program, param, opt, act = case
    a = classify_mlp(recognise(program), param, opt)
    b = analyse_sizes(program, param, opt)
    assert {v.name: v.holds for v in a.verdicts} == {v.name: v.holds for v in b.verdicts}
    for q in ("r", "e(Δf)"):
        ra, rb = a.reported(q), b.reported(q)
        assert ra.key() == rb.key(), (q, ra, rb)
        if act == "relu" and ra.diverges and ra.bound is not None:
            assert ra.bound == rb.bound, (q, ra, rb)
    assert [c.holds for c in a.contributions] == [c.holds for c in b.contributions]


@pytest.mark.parametrize("name", OTHERS)
def test_other_samples_predictions(name):
    """μP: feature learning with every Q input Θ(1) (from step 1 on where its step-0 limit is
    exactly 0 by symmetry: then n^{-1/2} at step 0, tests/test_abcd_zeros.py) and every parameter
    contributing; UP_1/4: operator regime with r = 1/4; SP: unfaithful under Adam (ε > 0)."""
    p = parse_file(ROOT / "samples" / f"{name}.nx")
    mu = analyse(p, "mup", "adam")
    assert mu.method == "calculus"
    assert mu.regime == "feature_learning" and mu.r == 0
    judged = {k.split("(", 1)[1]: v for k, v in mu.quantities if k.startswith(("q(", "q₁("))}
    assert all(v == 0 for v in judged.values())  # q₁ follows q: the one faithfulness judges
    for row in mu.q_inputs:
        assert row.step0 == (-HALF if row.zero_by else 0), row
    assert all(c.holds for c in mu.contributions if c.name != "f_0")
    up = analyse(p, "up:1/4", "adam")
    assert up.regime == "operator" and up.r == sympy.Rational(1, 4)
    assert analyse(p, "sp", "adam")["faithful"].holds is False
    assert analyse(p, "sp:3/2", "signsgd").regime == "operator"


def test_sizes_of_layernorm_and_attention():
    """Mean-zero averages at init are n^{-1/2} (CLT): layer norm's mean, attention's scores."""
    ln = SizeCalculus(parse_file(ROOT / "samples" / "layernorm_mlp.nx"),
                      resolve("mup", parse_file(ROOT / "samples" / "layernorm_mlp.nx")),
                      parse_optimizer("adam"))
    assert ln.init[0]["mu"].e0 == -HALF and ln.init[0]["var"].e0 == 0
    att = parse_file(ROOT / "samples" / "attention.nx")
    calc = SizeCalculus(att, resolve("mup", att), parse_optimizer("adam"))
    assert calc.init[0]["a[0]"].e0 == -HALF
    step = calc.run()
    assert step.sizes[0]["a[0]"].ed == 0  # μP attention logits move by Θ(1)
    assert calc.f0() == -HALF


def test_sp_attention_logits_blow_up():
    """SP attention with scores n^{1/2}·avg(q·k) (1/√d scaling): Θ(1) at init, but the scores
    change by n^{1/2} after one μP-sized step — why μP uses 1/d attention."""
    src = (ROOT / "samples" / "attention.nx").read_text().replace(
        "avg(q[S-1] * k[s])", "n^(1/2) * avg(q[S-1] * k[s])")
    p = parse_text(src)
    a = analyse(p, "mup", "adam")
    assert a["stable_init"].holds is True
    assert a["stable"].holds is False
    assert any("exp" in r and "n^1/2" in r for r in a.reasons())
