"""Parametrization objects, tables and the abcd symmetry (spec 03 §3.1, §3.2)."""

from __future__ import annotations

import json

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.abcd import analyse
from compiler.abcd.calculus import analyse_sizes
from compiler.abcd.classify import layer_rows
from compiler.abcd.conditions import parse_exponent, symbol
from compiler.abcd.mlp import recognise
from compiler.abcd.param import Exponents, resolve
from compiler.abcd.pwl import canonical as canonical_exponent
from compiler.abcd.symmetry import canonical, canonical_form, equivalent, invariants, shift
from compiler.errors import ParametrizationError, UsageError
from compiler.frontend.parse import parse_file
from compiler.train import parse_optimizer
from tests.conftest import ROOT

HALF = sympy.Rational(1, 2)


def program(name: str):
    return parse_file(ROOT / "samples" / f"{name}.nx")


# -- built-ins map onto the MLP tables of 03 §3.2 (Rem. 2.9.13) ------------------------------------
TABLES = {  # layer 1 / hidden / L+1: (a, b, c, d), from the table of 03 §3.2
    "sp": [(0, 0, 0, 0), (0, HALF, 0, 0), (0, HALF, 0, 0)],
    "ntp": [(0, 0, HALF, HALF), (HALF, 0, 1, 1), (HALF, 0, HALF, HALF)],
    "mup": [(0, 0, 0, 1), (0, HALF, 1, 1), (1, 0, 0, 1)],
}


@pytest.mark.parametrize("name", TABLES)
def test_builtins_give_the_mlp_tables(name):
    p = program("mlp3")
    rows = layer_rows(recognise(p), resolve(name, p))
    first, hidden, top = TABLES[name]
    assert [r.as_tuple() for r in rows] == [first, hidden, hidden, top]


def test_up_s_representative_and_endpoints():
    """03 §3.2 item 7: a = 0/0/1−s, b = 0/½/0, c = s/1+s/s, d = 1−s; UP_0 = μP, UP_½ = NTP."""
    p, s = program("mlp2"), symbol("s")
    rows = layer_rows(recognise(p), resolve("up:s", p))
    assert [r.as_tuple() for r in rows] == [(0, 0, s, 1 - s), (0, HALF, 1 + s, 1 - s),
                                             (1 - s, 0, s, 1 - s)]
    assert equivalent(resolve("up:0", p), resolve("mup", p))
    assert equivalent(resolve("up:1/2", p), resolve("ntp", p))
    assert not equivalent(resolve("mup", p), resolve("ntp", p))


def test_general_architecture_kinds_03_3_3():
    p = program("layernorm_mlp")
    mup = resolve("mup", p)
    assert mup["W"].as_tuple() == (0, HALF, 1, 1) and mup["U"].as_tuple() == (0, 0, 0, 1)
    assert mup["gain"].as_tuple() == (0, 0, 0, 0) and mup.e_out == 1
    assert mup.role("v") == "readout" and mup.role("U") == "vector"


def test_ntp_refuses_scalar_parameters():
    with pytest.raises(ParametrizationError) as info:
        resolve("ntp", program("layernorm_mlp"))
    assert "scalar parameter gain" in info.value.message and info.value.loc.line == 8


@pytest.mark.parametrize("spec", ["up", "sp:x y", "up:n", "up:1/0"])
def test_bad_builtin_specs(spec):
    with pytest.raises(UsageError):
        resolve(spec, program("mlp2"))


# -- tables ---------------------------------------------------------------------------------------
TOML = """
name = "mup, slow readout"
base = "mup"
symbols = ["t"]

[params.v]
c = "t"
lr = 0.5
"""


def test_toml_table_with_base_and_symbol(tmp_path):
    f = tmp_path / "slow.toml"
    f.write_text(TOML)
    p = resolve(str(f), program("mlp1"))
    assert p.name == "mup, slow readout" and p["v"].c == symbol("t")
    assert p.table["v"].lr == sympy.Rational(1, 2)  # exact, not the double 0.5
    a = analyse(program("mlp1"), p, "adam")
    assert a["feature_learning"].solutions() == sympy.Interval(0, sympy.oo)
    v_update = next(c for c in a.contributions if c.name == "v")
    assert v_update.condition.subs(symbol("t"), 0) and not v_update.condition.subs(
        symbol("t"), HALF)


def test_json_table_with_kind_defaults(tmp_path):
    table = {"e_out": 1, "defaults": {"matrix": {"a": 0, "b": "1/2", "c": 1, "d": 1},
                                      "vector": {"a": 0, "b": 0, "c": 0, "d": 1},
                                      "scalar": {"a": 0, "b": 0, "c": 0, "d": 0}}}
    f = tmp_path / "t.json"
    f.write_text(json.dumps(table))
    p = program("layernorm_mlp")
    assert equivalent(resolve(str(f), p), resolve("mup", p))


BAD_TABLES = [
    ('e_out = 1\n[params.Q]\na = 0\nb = 0\nc = 0\nd = 0\n', "unknown parameter 'Q'", 2),
    ('e_out = 1\n[params.w]\na = 0\n', "did you mean W?", 2),
    ('e_out = 1\n[defaults.matrix]\na = 0\nb = 0\nc = 1\n', "missing exponent", None),
    ('base = "mup"\n[params.W]\nc = "fast"\n', "is not a number", 3),
    ('base = "mup"\n[params.W]\nc = true\n', "must be a number", 3),
    ('base = "mup"\n[params.W]\nc = [1]\n', "must be a number", 3),
    ('base = "mup"\n[params.W]\ne = 1\n', "unknown key 'e'", 3),
    ('base = "mup"\n[defaults.tensor]\nc = 1\n', "unknown role 'tensor'", 2),
    ('[params.W]\na = 0\n', "missing e_out", None),
    ('base = "mup"\nlearning = 1\n', "unknown key 'learning'", 2),
    ('base = "mup"\n[params.W]\nsigma = -1\n', "positive number", 3),
    ('base = "xp"\n', "base must name a built-in", 1),
    ('base = "mup"\n[params.W\n', "not valid TOML", 2),
]


@pytest.mark.parametrize(("text", "message", "line"), BAD_TABLES)
def test_bad_tables_give_located_errors(tmp_path, text, message, line):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ParametrizationError) as info:
        resolve(str(f), program("mlp2"))
    assert message in info.value.message, info.value.message
    assert info.value.loc.file == str(f)
    if line is not None:
        assert info.value.loc.line == line, info.value.render()


def test_table_under_ntp_base_with_scalars_needs_their_rows(tmp_path):
    f = tmp_path / "n.toml"
    f.write_text('base = "ntp"\n')
    with pytest.raises(ParametrizationError, match="base ntp gives it no row") as info:
        resolve(str(f), program("layernorm_mlp"))
    assert info.value.loc.line == 1 and "[params.gain]" in info.value.message


@pytest.mark.parametrize("text", [
    "[params.gain]\na = 0\nb = 0\nc = 0\nd = 0\n[params.bias]\na = 0\nb = 0\nc = 0\nd = 0\n",
    '[defaults.scalar]\na = 0\nb = 0\nc = "1/2"\nd = "1/2"\n',
])
def test_table_under_ntp_base_with_explicit_scalar_rows(tmp_path, text):
    """The error above says "give the parameter a row": a table that does so is accepted, the
    other parameters keep NTP's rows."""
    f = tmp_path / "n.toml"
    f.write_text('base = "ntp"\n' + text)
    p = program("layernorm_mlp")
    got = resolve(str(f), p)
    ntp_rows = resolve("ntp", program("mlp2"))
    assert got.e_out == HALF and got["W"] == ntp_rows["W"] and got["U"] == ntp_rows["U"]
    assert got["gain"].a == 0 and got["bias"].b == 0
    assert analyse(p, got, "adam").method == "calculus"


def test_missing_table_file():
    with pytest.raises(UsageError, match="no such table file"):
        resolve("nope.toml", program("mlp2"))


@pytest.mark.parametrize(("value", "want"), [
    (0.5, HALF), (1, 1), ("1/2", HALF), ("1 - s", 1 - symbol("s")), ("inf", sympy.oo),
    ("(1+s)/2", (1 + symbol("s")) / 2), (float("inf"), sympy.oo), ("+Infinity", sympy.oo),
])
def test_exponent_values(value, want):
    assert parse_exponent(value, ["s"], allow_inf=True) == want


@pytest.mark.parametrize("value", ["inf", float("inf"), "-inf", float("-inf"), "oo"])
def test_infinite_exponents_only_where_allowed(value):
    """Only b (zero init) and c (frozen) may be +∞; an infinite a, d or e_out means nothing."""
    with pytest.raises(ParametrizationError, match=r"infinite|−∞"):
        parse_exponent(value, [])
    if "-" in str(value):
        with pytest.raises(ParametrizationError, match="−∞"):
            parse_exponent(value, [], allow_inf=True)


@pytest.mark.parametrize("value", ["s*s", "1/0", "exp(s)", "", "2**3", None, float("nan")])
def test_bad_exponent_values(value):
    with pytest.raises(ParametrizationError):
        parse_exponent(value, ["s"])


@pytest.mark.parametrize(("text", "qclass"), [
    ("sgd", "linear"), ("momentum(0.9)", "linear"), ("signsgd", "scale_invariant"),
    ("signsgd(1e-3)", "adaptive"), ("adam", "adaptive"), ("adam(eps=0)", "scale_invariant"),
    ("adam(0.9, 0.99, 0)", "scale_invariant"), ("adam(0.9, 0.99)", "adaptive"),
    ("rmsprop", "adaptive"), ("adagrad(0)", "scale_invariant"),
])
def test_optimizer_classes(text, qclass):
    assert parse_optimizer(text).qclass == qclass


@pytest.mark.parametrize("text", ["lion", "adam(eps=x)", "adam(eps=-1)", "adam(("])
def test_bad_optimizers(text):
    with pytest.raises(UsageError):
        parse_optimizer(text)


# -- symmetry (Prop. 2.2.3) -----------------------------------------------------------------------
def test_invariants_and_canonical_form():
    e = Exponents.of(HALF, 0, 1, 1)  # NTP matrix
    assert invariants(e) == (HALF, sympy.Rational(3, 2), HALF)
    assert canonical(e).as_tuple() == (0, HALF, sympy.Rational(3, 2), HALF)
    assert invariants(e.shifted(sympy.Rational(7, 3))) == invariants(e)


SHIFTS = st.integers(-6, 6).map(lambda k: sympy.Rational(k, 3))
CASES = [("mlp1", "sp"), ("mlp2", "ntp"), ("mlp3", "mup"), ("mlp2", "up:1/4"),
         ("mlp3", "sp:3/2"), ("mlp2", "up:s")]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(CASES), st.sampled_from(["adam", "signsgd", "sgd"]),
       st.sampled_from([None, "v", "U"]), st.data())
def test_random_shifts_leave_verdicts_and_invariants_unchanged(case, opt, zero, data):
    """Also with a zero-initialised readout or input layer (b = ∞ stays ∞ under any shift)."""
    name, spec = case
    p = program(name)
    base = resolve(spec, p)
    if zero is not None:
        e = base[zero]
        base = base.with_exponents({zero: Exponents(e.a, sympy.oo, e.c, e.d)})
    shifted = shift(base, {g: data.draw(SHIFTS) for g in base})
    assert equivalent(base, shifted)
    assert all(invariants(base[g]) == invariants(shifted[g]) for g in base)
    a, b = analyse(p, base, opt), analyse(p, shifted, opt)
    for v in a.verdicts:
        assert v.solutions() == b[v.name].solutions(), v.name
    assert a.r == b.r if sympy.oo in (a.r, b.r) else canonical_exponent(a.r - b.r) == 0
    assert a.reported("r").key()[0] == b.reported("r").key()[0]
    assert [c.holds for c in a.contributions] == [c.holds for c in b.contributions]


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["resmlp", "layernorm_mlp", "attention"]),
       st.sampled_from(["mup", "up:1/4", "sp:3/2"]), st.data())
def test_random_shifts_leave_the_calculus_unchanged(name, spec, data):
    p = program(name)
    base = resolve(spec, p)
    shifted = shift(base, {g: data.draw(SHIFTS) for g in base})
    opt = parse_optimizer("adam")
    a, b = analyse_sizes(p, base, opt), analyse_sizes(p, shifted, opt)
    assert [v.holds for v in a.verdicts] == [v.holds for v in b.verdicts]
    assert a.r == b.r and a.quantities == b.quantities


def test_canonical_form_has_a_zero():
    p = program("mlp2")
    c = canonical_form(resolve("ntp", p))
    assert all(c[g].a == 0 for g in c) and equivalent(c, resolve("ntp", p))
