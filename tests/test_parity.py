"""The one sign-flip parity analysis (compiler.kets.parity) and its two consumers: the ket lowering
(exact zeros) and the abcd size calculus (mean-zero averages)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings

from compiler.abcd import analyse
from compiler.frontend.parse import parse_file, parse_text
from compiler.ir import Program
from compiler.kets.lowering import MatMulKet, lower
from compiler.kets.parity import flippable, is_odd, parities, sign_flips
from runtime.executor import execute
from runtime.params import draw_parameters
from tests.conftest import ROOT, SAMPLES, sample_id
from tests.strategies import programs

WIDTH = 64


def _inputs(program: Program) -> np.ndarray | None:
    d = len(program.input_names)
    return np.random.default_rng(1).normal(size=(2, d)) if d else None


def _check_flips(program: Program, gens: dict[str, frozenset[str]], width: int) -> int:
    """Flip the objects of each generator in one draw and compare every object the analysis
    calls odd (−1) or even (+1) with the unflipped run; returns the number of claims checked."""
    par = parities(program, gens)
    drawn = draw_parameters(program, width, seed=0)
    base = execute(program, width, inputs=_inputs(program), params=drawn)
    claims = 0
    for g, members in gens.items():
        flipped = {k: -v if k in members else v for k, v in drawn.items()}
        run = execute(program, width, inputs=_inputs(program), params=flipped)
        for ins in program.body:
            sign = par[ins.out].get(g, 1)
            if sign != 0:
                claims += 1
                np.testing.assert_allclose(run[ins.out], sign * base[ins.out], rtol=1e-9,
                                           atol=1e-10, err_msg=f"{ins.out} under {g}")
    return claims


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_parities_are_what_flipping_the_parameters_does(path):
    """Soundness at finite width: flipping the objects of a generator negates every object the
    analysis calls odd under it and leaves every even one unchanged (same draw otherwise)."""
    program = parse_file(path)
    assert _check_flips(program, sign_flips(program), WIDTH) > 0


@settings(max_examples=30, deadline=None, derandomize=True)
@given(programs(max_steps=6, orders=(0, 1)))
def test_parities_hold_on_generated_programs(program):
    """The same on generated programs, with every random scalar as a generator too: the rules
    are right for any flip; which flips preserve the law is the caller's choice (module doc)."""
    gens = sign_flips(program) | {s: frozenset({s}) for s in flippable(program)
                                  if program.kinds[s] == "scalar"}
    _check_flips(program, gens, width=16)


# A random scalar s (no init) multiplies an even-ish vector: under a flip of s, x = s·relu(Wu) is
# odd, but the limit is conditioned on s, where E|x⟩ = s·E relu(N(0,1)) ≠ 0 and the dot coefficient
# E[∂x/∂Ŵu] = s·E step(N(0,1)) = s/2 ≠ 0.
RANDOM_SCALAR = """arch rs {
    param u : vector
    param W : matrix
    param s : scalar
    h = W @ u
    x = s * relu(h)
    g = W.T @ x
    c = avg(g * u)
    m = avg(x)
    output x
}
"""


def test_random_scalars_are_not_generators():
    program = parse_text(RANDOM_SCALAR)
    gens = sign_flips(program)
    assert "s" in flippable(program) and not any("s" in m for m in gens.values())
    assert not is_odd(parities(program, gens)["x"])
    # flipping s is expressible (a law averaged over draws), and then x is odd, as it is pointwise
    assert parities(program, {"s": frozenset({"s"})})["x"] == {"s": -1}
    assert _check_flips(program, {"s": frozenset({"s"})}, WIDTH) == len(program.body)


def test_a_random_scalar_is_conditioned_on_at_finite_width():
    """Why s is not flipped: for the drawn s, avg(x) → s·E relu(N(0,1)) and avg(g·u) → s/2 at
    every seed, not 0 (which holds only on average over s)."""
    program, n, s = parse_text(RANDOM_SCALAR), 3000, 1.5
    runs = []
    for seed in range(4):
        drawn = draw_parameters(program, n, seed)
        drawn["s"] = np.asarray(s)
        runs.append(execute(program, n, seed, params=drawn))
    # fluctuations are O(n^{-1/2}) per seed (s.d. ≈ 0.035 for c at n = 3000): 5 s.d. of the mean
    assert np.mean([r["m"][0] for r in runs]) == pytest.approx(s / math.sqrt(2 * math.pi), abs=0.1)
    assert np.mean([r["c"][0] for r in runs]) == pytest.approx(s / 2, abs=0.1)


def test_the_lowering_keeps_the_dot_term_through_a_random_scalar():
    kets = lower(parse_text(RANDOM_SCALAR))
    g = kets.by_name["g"]
    assert isinstance(g, MatMulKet) and [c.rule for c in g.dots] == ["derivative"]
    assert not is_odd(kets.parity["x"])
    # with s as a generator the coefficient would have been "proven" 0, which the draw refutes
    wrong = parities(kets.source, {"s": frozenset({"s"})})
    assert wrong["x"]["s"] * wrong["h"].get("s", 1) == -1


def test_abcd_sizes_a_random_scalar_like_a_given_one():
    """The size calculus conditions on s too: f_0 of s·relu(Wu) has the exponent it has with
    s = 1 given (a mean-zero output would make it ½ smaller)."""
    random = analyse(parse_text(RANDOM_SCALAR), "mup", "sgd", method="calculus")
    given = parse_text(RANDOM_SCALAR.replace("param s : scalar", "param s : scalar = 1"))
    fixed = analyse(given, "mup", "sgd", method="calculus")
    assert random.quantity("e(f_0)") == fixed.quantity("e(f_0)")


def test_generators_must_flip_sign_symmetric_objects():
    program = parse_text(RANDOM_SCALAR.replace("param s : scalar", "param s : scalar = 1"))
    with pytest.raises(ValueError, match="not a sign-symmetric initial object: s"):
        parities(program, {"s": frozenset({"s"})})


def test_compositions_find_what_single_flips_miss():
    """u + w is neither under u nor under w alone, odd when both flip (the law is preserved)."""
    program = parse_text("""arch t {
        param u : vector
        param w : vector
        y = u + w
        output y * u
    }
    """)
    par = parities(program, sign_flips(program))
    assert par["y"] == {"u": 0, "w": 0, "all vectors": -1, "everything": -1}


@pytest.mark.parametrize("name", ["mlp4", "resmlp", "attention"])
def test_the_canonical_memo_changes_no_parity(name, monkeypatch):
    """The memo shares one symmetry check among instructions whose ψ differ only in argument
    names (compiler/kets/parity._canonical): on the 3-input total program (with gradients) of
    a sample the parities equal those of a memo keyed on the formulas as written."""
    import compiler.kets.parity as parity_module
    from compiler.passes.total import total

    base = parse_file(ROOT / "samples" / f"{name}.nx")
    d = len(base.input_names)
    program = total(base, np.random.default_rng(0).normal(size=(3, d)))
    shared = parities(program, sign_flips(program))
    monkeypatch.setattr(parity_module, "_canonical",
                        lambda formula, syms: (formula, {s: s for s in syms}))
    assert parities(program, sign_flips(program)) == shared
    assert any(is_odd(p) for p in shared.values())
