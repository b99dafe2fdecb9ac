"""The pair-sum rewrites (runtime/limits/pairkernel*.py) against the pair-by-pair numpy pass.

Both compute the same average over the same pairs (spec 01 §1.4, §1.6), so they agree up to
rounding.  Tolerance 1e-12 relative to the largest |y|: sums of ≤ 10⁵ terms of size O(1) lose
~√(terms)·2⁻⁵³ ≈ 1e-13 relative in either order (pairwise in numpy, sequential in the kernel, a
centred cumulative sum for the window sums), with margin.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import sympy

from compiler.frontend.parse import parse_file
from compiler.kets.lowering import lower
from compiler.passes.backprop import backprop
from runtime.codegen import compile_formula
from runtime.limits import LimitOptions, evaluate, outer
from runtime.limits import pairkernel as pk
from runtime.limits.outer import Arg

ROOT = Path(__file__).resolve().parent.parent
RTOL = 1e-12
x, c, yb, zb, hb, hc, gc = sympy.symbols("x c y_b z_b h_b h_c g_c")


def _args(order: int, p: int = 120, seed: int = 0) -> tuple[tuple[sympy.Symbol, ...], list[Arg]]:
    """Own x (P, R, C), scalar c (R, C), copies: y_b, z_b (order 1) or h_b, h_c, g_c (order 2)."""
    rng = np.random.default_rng(seed)
    own = Arg(rng.standard_normal((p, 3, 2)), None, True)
    scal = Arg(rng.standard_normal((3, 2)), None, False)
    if order == 1:
        y, z = rng.standard_normal((p, 3, 1)), rng.standard_normal((p, 3, 2))
        return (x, c, yb, zb), [own, scal, Arg(y, 1, True), Arg(z, 1, True)]
    h, g = rng.standard_normal((p, 3, 1)), rng.standard_normal((p, 3, 2))
    return (x, c, hb, hc, gc), [own, scal, Arg(h, 1, True), Arg(h, 2, True), Arg(g, 2, True)]


def _reference(psi: sympy.Expr, syms: tuple, args: list[Arg], order: int, **kw) -> np.ndarray:
    f = compile_formula(psi, syms)
    return outer.copy_average([lambda *a: f(*a, np.inf)], args, order, **kw)[0]


def _close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    scale = float(np.max(np.abs(want)))
    assert float(np.max(np.abs(got - want))) <= RTOL * scale, float(
        np.max(np.abs(got - want)) / scale
    )


def test_split_finds_the_separable_terms():
    syms, args = _args(1)
    role = pk.roles(args)
    poly = pk.split(x * yb + (x * yb) ** 2, syms, role, 1)
    assert poly.rest == 0 and len(poly.terms) == 2
    mixed = pk.split(sympy.tanh(c + x * yb) * zb + x * zb**2, syms, role, 1)
    assert mixed.rest == sympy.tanh(c + x * yb) * zb and len(mixed.terms) == 1
    assert pk.split(sympy.tanh(c + x * yb), syms, role, 1).terms == ()


ORDER1 = [
    x * yb + (x * yb) ** 2,
    c * x * zb - (x - yb) ** 3 + 2,
    sympy.exp(x) * sympy.cos(zb) + c * yb,
    sympy.tanh(c + x * yb) * zb + x * zb**2,
]
ORDER2 = [
    x * hb * hc**2 - gc * x + hb,
    (x - hb) * (c + gc) ** 2,
    sympy.tanh(x * hb - gc) * hc + x * hb * hc,
]


@pytest.mark.parametrize("psi", ORDER1, ids=str)
@pytest.mark.parametrize("span", [None, 50])
def test_order1_rewrite_matches_the_pair_pass(psi, span):
    syms, args = _args(1)
    want = _reference(psi, syms, args, 1, span=span)
    _close(pk.pair_average(pk.PairFormulas(syms, (psi,)), args, 1, span=span)[0], want)


@pytest.mark.parametrize("psi", ORDER2, ids=str)
@pytest.mark.parametrize(("span", "pool"), [(None, 96), (40, 15)])
def test_order2_rewrite_matches_the_pair_pass(psi, span, pool):
    syms, args = _args(2)
    want = _reference(psi, syms, args, 2, span=span, pool=pool)
    got = pk.pair_average(pk.PairFormulas(syms, (psi,)), args, 2, pool=pool, span=span)[0]
    _close(got, want)


def _random_polynomial(rng: np.random.Generator, syms: tuple, terms: int) -> sympy.Expr:
    """Σ of ``terms`` monomials of degree ≤ 3 per symbol with integer coefficients in ±5."""
    out = sympy.Integer(0)
    for _ in range(terms):
        powers = rng.integers(0, 4, size=len(syms))
        monomial = sympy.Mul(*(s**int(k) for s, k in zip(syms, powers, strict=True)))
        out += int(rng.integers(-5, 6)) * monomial
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_polynomials_are_separable_and_exact(seed):
    rng = np.random.default_rng(seed)
    order = 1 + seed % 2
    syms, args = _args(order, p=90, seed=seed)
    psi = _random_polynomial(rng, syms, 6)
    role = pk.roles(args)
    assert pk.split(sympy.expand(psi), syms, role, order).rest == 0
    want = _reference(psi, syms, args, order, pool=12)
    _close(pk.pair_average(pk.PairFormulas(syms, (psi,)), args, order, pool=12)[0], want)


@pytest.mark.parametrize("order", [1, 2])
def test_compiled_kernel_matches_the_pair_pass(monkeypatch, order):
    """The numba kernel (forced at this small size) on non-separable ψ with a shared part;
    without numba the same call must fall back to the numpy pass."""
    monkeypatch.setattr(pk, "NUMBA_MIN_PAIRS", 0)
    syms, args = _args(order)
    t = sympy.Symbol("_fuse0")
    if order == 1:
        arg = c + x * yb
        outs = (t * zb + x * yb, (1 - t**2) * yb * zb, t)
    else:
        arg = x * hb - gc
        outs = (t * hc, (1 - t**2) * hb * hc + x * hb * hc, t)
    formulas = pk.PairFormulas(syms, outs, ((t, sympy.tanh(arg)),))
    got = pk.pair_average(formulas, args, order, pool=15)
    for k in range(len(outs)):
        _close(got[k], _reference(formulas.full(k), syms, args, order, pool=15))


def test_language_functions_compile(monkeypatch):
    from compiler.symbols import relu, sigmoid, softplus, step

    monkeypatch.setattr(pk, "NUMBA_MIN_PAIRS", 0)
    syms, args = _args(1)
    psi = relu(x - yb) * sigmoid(zb * x) + step(x * yb) * softplus(c - zb * x)
    want = _reference(psi, syms, args, 1)
    _close(pk.pair_average(pk.PairFormulas(syms, (psi,)), args, 1)[0], want)


def _program(name: str):
    return lower(backprop(parse_file(ROOT / "samples" / "programs" / f"{name}.nx")))


@pytest.mark.parametrize("name", ["outer1", "outer2"])
def test_evaluator_values_unchanged(monkeypatch, name):
    """Every ket and scalar of outer1/outer2's backprop with the rewrites (numba forced) equals
    the numpy pass's to 1e-12 relative."""
    kets = _program(name)
    opts = LimitOptions(particles=2048, seed=1, keep_values=True)
    monkeypatch.setattr(pk, "ENABLED", False)
    base = evaluate(kets, None, "mc", opts)
    monkeypatch.setattr(pk, "ENABLED", True)
    monkeypatch.setattr(pk, "NUMBA_MIN_PAIRS", 0)
    new = evaluate(kets, None, "mc", opts)
    for k, v in base.values.items():
        _close(np.asarray(new.values[k]), np.asarray(v))
    for k, v in base.scalars.items():
        np.testing.assert_allclose(new.scalars[k], v, rtol=1e-10, atol=1e-13)


def test_without_numba_the_numpy_pass_is_used(monkeypatch):
    """numba missing, switched off (NEXORT_NUMBA=0), or a function it cannot print: the same
    values by the numpy pass."""
    from runtime.limits import pairkernel_numba as pkn

    monkeypatch.setattr(pk, "NUMBA_MIN_PAIRS", 0)
    syms, args = _args(1)
    psi = sympy.tanh(c + x * yb) * zb
    want = _reference(psi, syms, args, 1)
    formulas = pk.PairFormulas(syms, (psi,))
    with pytest.raises(pkn.UnsupportedError):
        pkn.source(pk.PairFormulas(syms, (sympy.besselj(0, x * yb),)), (0, 0, 1, 1),
                   (True, False, True, True), 1)

    def refuse(*a, **k):
        raise pkn.UnsupportedError("no printer")

    monkeypatch.setattr(pkn, "copy_average", refuse)
    _close(pk.pair_average(formulas, args, 1)[0], want)
    monkeypatch.setenv("NEXORT_NUMBA", "0")
    assert not pk.numba_enabled()
    _close(pk.pair_average(formulas, args, 1)[0], want)


def test_requested_subsets_stay_bit_identical_with_the_kernel(monkeypatch):
    """The demand contract (tests/test_mc_demand.py) on the compiled path: each output's
    operations do not depend on which other outputs are computed with it."""
    monkeypatch.setattr(pk, "NUMBA_MIN_PAIRS", 0)
    kets = _program("outer1")
    opts = LimitOptions(particles=1024, seed=3)
    full = evaluate(kets, None, "mc", opts)
    names = [n for n in kets.scalar_names if full.methods[n] == "mc"]
    for want in ([names[0]], [names[-1]]):
        part = evaluate(kets, None, "mc", opts, scalars_wanted=want)
        for n in want:
            assert np.array_equal(part.scalars[n], full.scalars[n]), n


def test_printed_powers_keep_their_base():
    """The kernel prints small integer powers as products; each factor must be the whole base
    (regression: (a + b)**2 was printed a + b * a + b, i.e. a + a·b + b).  Every printed
    expression, run by Python, equals sympy's own value at the point to a few ulp."""
    from runtime.limits import pairkernel_numba as pkn

    a, b = sympy.symbols("a b")
    point = {a: 0.7, b: -1.3}

    def power(base: sympy.Expr, n: int) -> sympy.Expr:
        return sympy.Pow(base, n, evaluate=False)  # keep the bases sympy would distribute

    cases = [
        (a + b) ** 2, (a - b) ** -3, (a + 2 * b) ** 4, sympy.sqrt(a**2 + (a + b) ** 2),
        power(a * b, 2), power(a * b, -2), power(a / b, 3), power(sympy.Integer(-2), 2),
        power(sympy.Rational(1, 3), -2), power(sympy.sqrt(a**2 + 1), 3), power(-a, 3),
        power(power(a + b, 2), 2), sympy.Abs(a - b) ** 3,
    ]
    for e in cases:
        text = pkn._print(e)
        got = eval(text, {"math": math}, {str(s): v for s, v in point.items()})
        want = float(e.subs(point))
        assert abs(got - want) <= 1e-14 * abs(want), (e, text, got, want)


def test_kernel_adam_ratio_matches_the_direct_pair_sum(monkeypatch):
    """Regression (mlp2 μP Adam, 4 steps, M = 65536: a NaN limit): Adam's update at t = 1,
    m̂/(√v̂ + ε) of gradients g = Σ_i χ_i·d_i·x_i[b] summed over two points, by the numba kernel,
    against the pair average written out directly in numpy.  The own factors are gated (relu′
    = 0 on about half the particles), so there g ≡ 0 over every copy and the ratio is
    0/(0 + ε) = 0 exactly."""
    from runtime.limits import pairkernel_numba as pkn

    monkeypatch.setattr(pk, "NUMBA_MIN_PAIRS", 0)
    calls = []
    kernel = pkn.copy_average
    monkeypatch.setattr(pkn, "copy_average", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    rng = np.random.default_rng(7)
    p = 96
    gate = rng.standard_normal((p, 2, 1)) > 0
    own = [rng.standard_normal((p, 2, 1)) * gate for _ in range(2)]
    copies = [rng.standard_normal((p, 2, 1)) for _ in range(3)]
    chi = rng.standard_normal((2, 1))
    w, u = sympy.symbols("w u_b")
    g0, g1 = c * x * yb + w * zb, c * w * yb - x * zb
    eps = sympy.Rational(1, 10**8)
    psi = u * (9 * g0 / 100 + g1 / 10) / (sympy.sqrt(999 * g0**2 / 1999 + 1000 * g1**2 / 1999)
                                          + eps)
    args = [Arg(own[0], None, True), Arg(chi, None, False), Arg(copies[0], 1, True),
            Arg(copies[1], 1, True), Arg(own[1], None, True), Arg(copies[2], 1, True)]
    got = pk.pair_average(pk.PairFormulas((x, c, yb, zb, w, u), (psi,)), args, 1)[0]
    assert calls and np.all(np.isfinite(got))

    def direct(i: int) -> np.ndarray:
        y, z, ub = (v[(np.arange(p) + i) % p] for v in copies)
        h0, h1 = chi * own[0] * y + own[1] * z, chi * own[1] * y - own[0] * z
        v_hat = (999 * h0 * h0 + 1000 * h1 * h1) / 1999
        return ub * (0.09 * h0 + 0.1 * h1) / (np.sqrt(v_hat) + 1e-8)

    _close(got, sum(direct(i) for i in range(1, p)) / (p - 1))
    assert np.all(got[~gate] == 0) and np.all(got[gate] != 0)
