"""Demand-driven Monte Carlo limits (01 §1.4–1.6): only the statements the requested limits
depend on run (runtime.limits.ketfuncs.demand), and every kept value is bit-identical to the
full evaluation with the same seed — each ket and hat draws from its own stream, and the hats
of one orientation (drawn jointly) are kept together, so what is skipped cannot change what is
drawn.  Closed-form checks use 4 replica standard errors (16 replicas, as tests/test_limits.py)."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.errors import NumericError, UsageError
from compiler.frontend.parse import parse_file, parse_text
from compiler.kets.lowering import AvgLimit, MatMulKet, lower
from compiler.passes.backprop import backprop
from compiler.passes.kernel_program import kernel_program
from runtime.limits import LimitOptions, evaluate
from runtime.limits.ketfuncs import demand
from runtime.limits.montecarlo import estimate_memory
from tests.conftest import ROOT

X = np.load(ROOT / "samples" / "data" / "gauss10.npz")["X_train"][:2]


def prog(body: str, params: str = "param x : vector\n param W : matrix") -> object:
    return parse_text(f"arch t {{\n {params}\n {body}\n}}\n")


TWO_WAY = prog(
    "h = W @ x\n g = W.T @ tanh(h)\n s = avg(g*x)\n y = mean[b](tanh(x[b]*x))\n"
    " r = avg(y*x)\n q = avg(h*h)\n output g"
)


def programs() -> list[tuple[str, object, object]]:
    """(name, ket program, inputs): forward and backward hats, Stein and derivative dot
    coefficients, an OuterNonlin (with its half-span bias run), inputs."""
    square = (ROOT / "samples" / "mlp2.nx").read_text().replace(
        "output v * x2", "output x2 * x2"
    )
    kp = kernel_program(parse_file(ROOT / "samples" / "mlp2.nx"), len(X))
    return [
        ("two_way", lower(TWO_WAY), None),
        ("outer1", lower(backprop(parse_file(ROOT / "samples/programs/outer1.nx"))), None),
        ("mlp2_sq", lower(backprop(parse_text(square))), X[:1]),
        ("mlp2_kernels", lower(kp.program), kp.bind(X)),
    ]


PROGRAMS = programs()


@pytest.mark.parametrize(("name", "kets", "x"), PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_requested_limits_are_bit_identical_to_the_full_evaluation(name, kets, x):
    opts = LimitOptions(particles=1024, seed=3)
    full = evaluate(kets, x, "mc", opts)
    names = [n for n in kets.scalar_names if full.methods[n] == "mc"]
    assert names, name
    for want in ([names[0]], [names[-1]], names[len(names) // 2 :]):
        part = evaluate(kets, x, "mc", opts, scalars_wanted=want)
        assert set(part.scalars) == set(want)
        for n in want:
            assert np.array_equal(part.scalars[n], full.scalars[n]), (name, n)
            assert np.array_equal(part.stderr[n], full.stderr[n], equal_nan=True), (name, n)
            assert part.methods[n] == full.methods[n]


def test_demand_skips_what_no_requested_limit_reads():
    kets = lower(TWO_WAY)
    d = demand(kets, ["q"])
    ran = {kets.stmts[i].out for i in d.keep}
    assert {"q", "h", "x"} <= ran and not ran & {"g", "s", "y", "r"}
    assert estimate_memory(kets, 4096, 1, LimitOptions(), d.keep) < estimate_memory(
        kets, 4096, 1, LimitOptions()
    )
    every = {kets.stmts[i].out for i in demand(kets, None).keep}
    assert set(kets.scalar_names) <= every


def test_an_exact_zero_by_symmetry_reads_nothing():
    kets = lower(backprop(parse_file(ROOT / "samples" / "mlp2.nx")))
    zeros = [
        s.out
        for s in kets.stmts
        if isinstance(s, AvgLimit) and any(v == -1 for v in kets.parity[s.arg].values())
    ]
    assert zeros
    d = demand(kets, zeros)
    assert {kets.stmts[i].out for i in d.keep} == set(zeros)
    res = evaluate(kets, X[:1], "mc", LimitOptions(particles=256), scalars_wanted=zeros)
    assert all(res.methods[z] == "symmetry" and res.scalars[z][0] == 0.0 for z in zeros)


def test_an_unrequested_nan_ket_does_not_stop_the_requested_limits():
    kets = lower(prog("s = avg(x*x)\n bad = sqrt(-1 - x*x)\n r = avg(bad)\n output x"))
    opts = LimitOptions(particles=8192)
    with pytest.raises(NumericError):
        evaluate(kets, None, "mc", opts)
    res = evaluate(kets, None, "mc", opts, scalars_wanted=["s"])
    # E x² = 1 for x ~ N(0, 1)
    assert abs(res.scalars["s"][0] - 1.0) < 4 * res.stderr["s"][0]


def test_requested_kets_are_computed_and_kept():
    kets = lower(TWO_WAY)
    opts = LimitOptions(particles=512, keep_values=True)
    res = evaluate(kets, None, "mc", opts, scalars_wanted=["h"])
    assert "h" in res.values and "g" not in res.values and res.scalars == {}
    full = evaluate(kets, None, "mc", opts)
    assert np.array_equal(res.values["h"], full.values["h"])


def test_values_are_freed_after_their_last_read():
    kets = lower(TWO_WAY)
    d = demand(kets, ["q"])
    h = next(i for i, s in enumerate(kets.stmts) if isinstance(s, MatMulKet) and s.out == "h")
    freed = {n for names in d.last_read.values() for n in names}
    assert "x" in freed and "q" not in freed  # a root is the caller's, never dropped
    assert max(i for i, names in d.last_read.items() if "h" in names) > h


def test_unknown_requested_name_is_refused():
    with pytest.raises(UsageError, match="nope"):
        evaluate(lower(TWO_WAY), None, "mc", LimitOptions(particles=256), scalars_wanted=["nope"])


def test_exact_engine_result_is_restricted_to_the_request():
    kp = kernel_program(parse_file(ROOT / "samples" / "mlp2.nx"), len(X))
    kets = lower(kp.program)
    want = set(kp.nngp.values())
    res = evaluate(kets, kp.bind(X), "exact", scalars_wanted=want)
    assert set(res.scalars) == want


def test_fused_pair_sums_agree_with_one_by_one(monkeypatch):
    from runtime.limits import fusion
    from runtime.limits.ketfuncs import KetFunctions

    kets = lower(backprop(parse_file(ROOT / "samples/programs/outer1.nx")))
    groups = fusion.pair_groups(kets, KetFunctions(kets))
    assert len({g.members for g in groups.values()}) == 1 and len(groups) == 4  # ∂z ∂x ∂u ∂c
    opts = LimitOptions(particles=1024, keep_values=True)
    want = ["dx", "du", "dz", "dc"]
    fused = evaluate(kets, None, "mc", opts, scalars_wanted=want)
    monkeypatch.setattr(fusion, "FUSE", False)
    alone = evaluate(kets, None, "mc", opts, scalars_wanted=want)
    # the same sums of the same products, regrouped by common-subexpression elimination:
    # round-off only (a few ulps of each ψ, averaged over ~1e3 pairs)
    for k in want:
        np.testing.assert_allclose(fused.values.get(k, 0), alone.values.get(k, 0), rtol=1e-12,
                                   atol=1e-14)
    assert np.allclose(fused.scalars["dc"], alone.scalars["dc"], rtol=1e-12, atol=1e-15)
