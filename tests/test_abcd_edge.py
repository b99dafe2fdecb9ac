"""Zero-initialised and frozen tensors, blow-ups, and how they are reported (spec 03 §3.2-3.3,
05 §5.5): the MLP classifier and the size calculus agree, diverging exponents are reported with
their first-update lower bound, reasons say which way a check fails, symbolic exponents are
simplified on the stable set.
"""

from __future__ import annotations

import json

import pytest
import sympy

from compiler.abcd import analyse
from compiler.abcd.calculus import SizeCalculus
from compiler.abcd.classify import classify_mlp
from compiler.abcd.conditions import condition_set, npow, symbol
from compiler.abcd.mlp import recognise
from compiler.abcd.param import Exponents, resolve
from compiler.abcd.render import latex
from compiler.cli import main
from compiler.frontend.parse import parse_file
from compiler.train import parse_optimizer
from tests.conftest import ROOT

HALF = sympy.Rational(1, 2)
MLP2 = str(ROOT / "samples" / "mlp2.nx")


def program(name: str):
    return parse_file(ROOT / "samples" / f"{name}.nx")


def both(name: str, param, opt: str):
    p = program(name)
    bound = resolve(param, p) if isinstance(param, str) else param
    return (classify_mlp(recognise(p), bound, parse_optimizer(opt)),
            analyse(p, bound, opt, method="calculus"))


def with_row(name: str, base: str, group: str, **letters):
    p = resolve(base, program(name))
    row = dict(zip("abcd", p[group].as_tuple(), strict=True)) | letters
    return p.with_exponents({group: Exponents(*row.values())})


# -- 1. zero initialisation (b = ∞) and frozen tensors (c = ∞) -------------------------------------
@pytest.mark.parametrize("group", ["U", "W"])
def test_zero_hidden_or_input_layer_is_degenerate(group):
    """b = ∞ for the input layer or a hidden matrix makes h^l identically 0 at init: 03 §3.2
    item 1 (a_1+b_1 = 0, a_l+b_l = 1/2) fails; there is no Θ(1) feature, r is undefined."""
    for a in both("mlp2", with_row("mlp2", "mup", group, b=sympy.oo), "adam"):
        assert a["stable_init"].holds is False and a.regime is None, a.method
        assert any("identically 0 at init" in r for r in a.reasons()), a.method
        assert a.reported("r").undefined


def test_frozen_tensors():
    """c = ∞: the tensor never moves. A frozen readout: the hidden layers still move f by
    a_3+b_3+r = 1 (μP), so it is feature learning without the readout's term; a frozen hidden
    matrix: θ_2 = ∞, r = min(θ_1, θ_2) = 0 through the input layer, W drops out of the limit."""
    for frozen in ("v", "W"):
        for a in both("mlp2", with_row("mlp2", "mup", frozen, c=sympy.oo), "adam"):
            assert a.regime == "feature_learning" and a.r == 0, (frozen, a.method)
            holds = {c.name: c.holds for c in a.contributions}
            assert holds[frozen] is False and holds["U"] is True


# -- 2. blow-ups: reported as diverging, with the first update's exponent --------------------------
def first_update(name: str, spec: str, opt: str) -> tuple[sympy.Expr, sympy.Expr]:
    """Growth exponents of the features and of f after exactly one update from init."""
    p = program(name)
    calc = SizeCalculus(p, resolve(spec, p), parse_optimizer(opt))
    q0 = calc.q_inputs(calc.init, after=False)
    sizes = tuple(calc.changes(k, q0) for k in range(len(calc.bps)))
    vectors = [x for x in calc.forward if x not in p.outputs and p.kinds[x] == "vector"]
    return sympy.Max(*(sizes[0][x].ed for x in vectors)), calc.delta_f(sizes)


def test_mlp2_sp_sgd_blow_up_is_reported_by_its_first_update():
    """SP + SGD on mlp2: at init v_0 = n^{-1/2}, so W's gradient dh²⊗x¹ has entries n^{-1/2}
    and ΔW x¹ = n^{1-1/2}: the features grow like n^{1/2} after one step. Δv = x² (c = 0) gives
    Δv·Δx² = n·n^{1/2}: Δf grows like n^{3/2}. Both analyses report these, not the exponents of
    later passes."""
    for a in both("mlp2", "sp", "sgd"):
        r, df = a.reported("r"), a.reported("e(Δf)")
        assert r.diverges and r.bound == HALF, a.method
        assert df.diverges and df.bound == sympy.Rational(3, 2), a.method
    assert first_update("mlp2", "sp", "sgd") == (HALF, sympy.Rational(3, 2))
    changes = {x: ed for x, _, ed in both("mlp2", "sp", "sgd")[1].sizes}  # what --sizes shows
    assert changes["h2"] == changes["x2"] == HALF


@pytest.mark.parametrize(("name", "spec", "opt"), [("attention", "sp", "sgd"),
                                                   ("transformer_block", "sp", "adam")])
def test_unstable_general_architectures_report_first_update_bounds(name, spec, opt):
    a = analyse(program(name), spec, opt)
    features, df = first_update(name, spec, opt)
    assert a["stable"].holds is False
    assert a.reported("r").bound == features and a.reported("e(Δf)").bound == df
    caption = next(line for line in latex(a).splitlines() if line.startswith(r"\caption"))
    assert "diverges" in caption and npow(features) in caption
    assert npow(df) in next(line for line in a.reasons() if "e(Δf)" in line)


# -- 5. which way a check fails --------------------------------------------------------------
def test_too_large_is_not_called_o1():
    """sp:1 + SignSGD: a_3+b_3+r = 1/2 < 1 means Δf grows like n^{1/2}; SP + SGD:
    a_3+c_3 = 0 < 1 means the readout's update blows up."""
    text = "\n".join(analyse(program("mlp2"), "sp:1", "signsgd").reasons())
    line = next(x for x in text.splitlines() if "a_3+b_3+r = 1/2 ≠ 1" in x)
    assert "blow up" in line and "n^1/2" in line and "o(1)" not in line
    for a in both("mlp2", "sp", "sgd"):
        text = "\n".join(a.reasons())
        assert "o(1)" not in text and "blows up" in text, a.method
        if a.method == "mlp":
            assert "a_3+c_3 = 0 ≠ 1: the readout update blows up (it moves f by n^1)" in text


def test_too_small_is_called_o1():
    """μP mlp2 under SGD with the readout at b = 1/2, c = 1: a_3+c'_3 = 2 and
    a_3+b_3+r = 3/2 + 1/2 = 2, so both terms move f by n^{-1}: trivial."""
    param = with_row("mlp2", "mup", "v", b=HALF, c=1)
    for a in both("mlp2", param, "sgd"):
        assert a["stable"].holds and a["nontrivial"].holds is False, a.method
        text = "\n".join(a.reasons())
        assert "o(1)" in text and "n^-1" in text and "blow" not in text, a.method


# -- 6, 7. symbolic exponents --------------------------------------------------------------------
def test_negated_sums_are_parenthesised():
    s = symbol("s")
    assert npow(-(1 - s)) == "n^(s - 1)" and npow(-(1 + s)) == "n^(-s - 1)"
    assert npow(HALF) == "n^1/2" and npow(-s) == "n^-s"


def test_up_s_recipe_output_multiplier(capsys):
    """e_out = 1 − s: f is multiplied by (N/N0)^{-(1-s)} = (N/N0)^{s-1}."""
    argv = [MLP2, "--param", "up:s", "--torch-recipe", "--width", "1024", "--base-width", "256"]
    assert main(["abcd", *argv]) == 0
    out = capsys.readouterr().out
    assert "f = (N/N0)^(s - 1)" in out and "^(-1 - s)" not in out
    assert main(["abcd", *argv, "--json"]) == 0
    factor = sympy.sympify(json.loads(capsys.readouterr().out)["output_multiplier"],
                           locals={"s": symbol("s")})
    assert sympy.simplify(factor - sympy.Integer(4) ** (symbol("s") - 1)) == 0


@pytest.mark.parametrize(("name", "opt"), [("mlp2", "sgd"), ("mlp3", "sgd"),
                                           ("transformer_block", "adam")])
def test_r_is_simplified_on_the_stable_set(name, opt):
    """The raw r (2s − Max(0, s) on mlp2 + SGD) is s on the stable set [0, 1/2], where it is
    reported as s; below 0 the features blow up and the raw value only counts update passes."""
    s = symbol("s")
    a = analyse(program(name), "up:s", opt)
    got = a.reported("r")
    assert got.value == s and got.where == a["stable"].solutions() == sympy.Interval(0, HALF)
    for x in (0, sympy.Rational(1, 4), HALF):
        assert a.r.subs(s, x) == x
    assert "r = s for s ∈ [0, 1/2] (where stable)" in "\n".join(a.reasons())


@pytest.mark.parametrize(("name", "opt"), [("mlp2", "adam"), ("mlp2", "sgd"),
                                           ("mlp3", "signsgd"), ("transformer_block", "adam")])
def test_listed_checks_explain_the_verdict_set(name, opt):
    """For every verdict that is a conjunction of its checks, the sets the checks are listed
    with intersect to the verdict's set (UP_s faithful: s ≤ 1/2 comes from f_0's check; the
    readout's b ≤ c only matters where the table is stable in training)."""
    a = analyse(program(name), "up:s", opt)
    for v in a.verdicts[:4]:
        listed = condition_set(sympy.And(*(c.shown for c in v.checks)))
        assert listed == v.solutions(), (v.name, listed, v.solutions())


# -- 3, 8. clean errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(("row", "where"), [
    ('[params.W]\na = "inf"\n', "[params.W] a cannot be infinite"),
    ('[params.v]\nd = inf\n', "[params.v] d cannot be infinite"),
    ('e_out = "inf"\n', "e_out cannot be infinite"),
    ('[params.W]\nc = -inf\n', "[params.W] c cannot be −∞"),
    ('[params.W]\nb = nan\n', "[params.W] b must be a number"),
])
@pytest.mark.parametrize("method", ["auto", "calculus"])
def test_infinite_exponents_are_located_errors(capsys, tmp_path, row, where, method):
    table = tmp_path / "t.toml"
    table.write_text('base = "mup"\n' + row)
    code = main(["abcd", MLP2, "--param", str(table), "--method", method])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"{table}:") and where in err
    assert "internal error" not in err and "Traceback" not in err


def test_missing_exponent_points_at_the_parameters_rows(tmp_path):
    """U has no row at all: the error is not at [params.W] (line 2); with a [defaults.vector]
    row it is there."""
    p = program("mlp2")
    none = tmp_path / "a.toml"
    none.write_text('e_out = 1\n[params.W]\na = 0\nb = "1/2"\nc = 1\nd = 1\n')
    part = tmp_path / "b.toml"
    part.write_text(none.read_text() + "[defaults.vector]\na = 0\nb = 0\nc = 0\n")
    for table, line in ((none, 1), (part, 7)):
        with pytest.raises(Exception, match="parameter U") as info:
            resolve(str(table), p)
        assert info.value.loc.line == line, info.value.render()


@pytest.mark.parametrize("flag", ["--width", "--base-width"])
def test_width_without_torch_recipe_is_a_usage_error(capsys, flag):
    assert main(["abcd", MLP2, flag, "64"]) == 1
    assert "only applies to --torch-recipe" in capsys.readouterr().err
