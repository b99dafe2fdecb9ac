"""The one limit-engine interface (spec 01 §1.5): ``runtime.limits.evaluate`` chooses an engine,
every engine gives one result type whose standard errors are 0 exactly where the value is exact,
engines can be added for other program types, and the finite-width comparison harness
conditions on the limit's scalar values."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pytest

from compiler.errors import UsageError
from compiler.frontend.parse import parse_text
from compiler.kets.lowering import lower
from runtime.limits import (
    ENGINES,
    LimitOptions,
    LimitResult,
    NotApplicableError,
    compare_widths,
    evaluate,
    methods,
    register,
)
from runtime.params import stream

SMOOTH = "h = W @ x\n g = W.T @ tanh(h)\n s = avg(g*x)\n z = avg(h)\n output g"
OUTER = "y = mean[b](relu(x[b]) * x)\n r = avg(y*x)\n z = avg(x)\n output y"


def kets(body: str, params: str = "param x : vector\n param W : matrix"):
    return lower(parse_text(f"arch t {{\n {params}\n {body}\n}}\n"))


def test_auto_is_exact_where_the_program_allows_it_with_real_zero_errors():
    res = evaluate(kets(SMOOTH))
    assert res.method == "exact" and res.exact and res.notes == ()
    assert res.methods == {"s": "exact", "z": "symmetry"}
    assert all((se == 0).all() for se in res.stderr.values())
    noted = evaluate(kets(SMOOTH), options=LimitOptions(particles=1024))
    assert any("particles are ignored" in n for n in noted.notes)


def test_auto_falls_back_to_monte_carlo_and_says_why():
    res = evaluate(kets(OUTER, "param x : vector"), options=LimitOptions(particles=2048))
    assert res.method == "mc" and not res.exact
    assert len(res.notes) == 1 and "exact path not applicable" in res.notes[0]
    assert "OuterNonlin" in res.notes[0] and "Monte Carlo instead" in res.notes[0]
    assert res.methods == {"r": "mc", "z": "symmetry"}
    assert res.stderr["r"][0] > 0 and res.stderr["z"][0] == 0 and res.scalars["z"][0] == 0


def test_explicit_methods_and_their_errors():
    outer = kets(OUTER, "param x : vector")
    with pytest.raises(NotApplicableError, match=r"no exact path for this program: .*OuterNonlin"):
        evaluate(outer, method="exact")
    with pytest.raises(UsageError, match="unknown limit method 'quad'"):
        evaluate(outer, method="quad")
    with pytest.raises(UsageError, match="evaluates a KetProgram, not a str"):
        evaluate("not kets", method="mc")
    assert methods() == ("auto", "exact", "mc")


def test_one_replica_gives_an_unknown_standard_error_never_zero():
    """With R = 1 the replica spread does not exist: a Monte Carlo value's s.e. is NaN (null in
    JSON); inputs, fixed scalars and sign-flip zeros keep their real 0."""
    k = kets("s = avg(x*x + c)\n z = avg(x)\n output x", "param x : vector\n param c : scalar = 1")
    res = evaluate(k, None, "mc", LimitOptions(particles=1024, replicas=1))
    assert res.replicas == 1 and math.isnan(res.stderr["s"][0])
    assert res.stderr["c"][0] == 0 and res.methods["c"] == "data"
    assert res.stderr["z"][0] == 0 and res.methods["z"] == "symmetry"
    out = res.as_json()
    assert out["stderr"]["s"] == [None] and out["stderr"]["c"] == [0.0]
    assert out["exact_zero"] == ["z"] and out["engine"] == "mc"


def test_both_engines_give_the_same_result_type_and_conditioning():
    k = kets("s = avg(b*x*x)\n output x", "param x : vector\n param b : scalar")
    default = float(stream(0, "b").standard_normal())  # the executor's seed-0 draw
    ex = evaluate(k, method="exact")
    mc = evaluate(k, None, "mc", LimitOptions(particles=4096))
    assert type(ex) is type(mc) is LimitResult
    assert ex.given == mc.given == {"b": default}
    assert ex.scalars["s"][0] == pytest.approx(default)  # E[b x²] = b
    with pytest.raises(UsageError, match="not scalar parameters of t"):
        evaluate(k, scalars={"q": 1.0})


@pytest.mark.parametrize(("name", "value"), [("particles", 2), ("replicas", 0),
                                             ("outer2_pool", 1), ("seed", -1)])
def test_options_are_validated(name, value):
    with pytest.raises(UsageError, match=name):
        replace(LimitOptions(), **{name: value})


@dataclass(frozen=True)
class Training:
    """Stand-in for a training representation (the coming NT and μ-limit engines' input)."""

    value: float


class ConstantEngine:
    name, label, takes = "constant", "constant engine", Training

    def evaluate(
        self,
        program: Training,
        inputs: object,
        scalars: Mapping[str, float],
        options: LimitOptions,
        progress: object,
    ) -> LimitResult:
        res = LimitResult("constant", "a constant", 1)
        res.scalars["loss"], res.stderr["loss"] = np.array([program.value]), np.zeros(1)
        res.methods["loss"] = "exact"
        return res


def test_an_engine_for_another_program_type_plugs_in():
    register(ConstantEngine())
    try:
        res = evaluate(Training(0.5))  # auto: only the engines that take a Training
        assert res.method == "constant" and res.scalars["loss"][0] == 0.5
        assert evaluate(kets(SMOOTH)).method == "exact"  # ket programs still choose as before
        with pytest.raises(ValueError, match="already registered"):
            register(ConstantEngine())
    finally:
        del ENGINES["constant"]


def test_compare_widths_conditions_on_the_limits_scalars():
    """s = avg(b x²) at width n with b fixed to the limit's value: the seed mean is b·avg(x²),
    whose s.e. over K seeds is |b|·√(2/n)/√K; drawing b per seed would make it O(1)."""
    src = "arch t {\n param x : vector\n param b : scalar\n s = avg(b*x*x)\n output x\n}\n"
    program = parse_text(src)
    lim = evaluate(lower(program))
    n, k = 512, 4
    cmp = compare_widths(program, None, [n], k, lim.given)
    b = lim.given["b"]
    avg = cmp.widths[n]["s"]
    assert avg.stderr[0] < 2 * abs(b) * math.sqrt(2 / n) / math.sqrt(k)
    assert abs(avg.mean[0] - lim.scalars["s"][0]) < 5 * avg.stderr[0]
    assert cmp.widths[n]["b"].mean[0] == b and cmp.widths[n]["b"].stderr[0] == 0
    assert set(cmp.as_json()[str(n)]) == {"b", "s"} and cmp.only(["s"]).widths[n].keys() == {"s"}
    with pytest.raises(UsageError, match="at least 2 seeds"):
        compare_widths(program, None, [n], 1)
