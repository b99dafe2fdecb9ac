"""Forward-mode tangents through radicals (runtime/limits/aediff.py; spec 01 §1.4 Dot, 05 §5.4).

Adam's update m̂/(√v̂ + ε) at a gradient that is exactly 0 (an input coordinate 0, relu′ = 0) has
the finite derivative (∂m̂/∂g_s)/ε, but sympy's derivative of √v̂ is v̂′/(2√v̂) = 0/0 = NaN there.
Checked against independent computations: the derivative at 0 from PyTorch's Adam formula written
out here, central finite differences of the compiled formula away from 0, the pair kernel against
the numpy pass, and end to end the forward-mode coefficients against Stein's lemma (which takes no
derivative).

Finite-difference tolerance: the central difference D(h) has error c·h² + O(h⁴) plus rounding
≤ 2⁻⁵²·|ψ|/h, so |D(h/2) − exact| ≈ |D(h) − D(h/2)|/3; the bound used is |D(h) − D(h/2)| plus
the rounding term, both measured, not assumed.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import compiler.kets.parity as parity
from compiler.frontend.parse import parse_text
from compiler.kets.lowering import FormulaKet, lower
from compiler.passes.unroll import unroll
from compiler.train.setup import Training, build_training
from runtime.codegen import compile_formula
from runtime.limits import pairkernel as pk
from runtime.limits.aediff import formula_derivative
from runtime.limits.fusion import slot_derivative
from runtime.limits.ketfuncs import KetFunctions
from runtime.limits.outer import Arg
from runtime.limits.trajectory import LimitTrajectory, TrajectoryOptions, limit_trajectory

TANH2 = """
arch tanh2 {
    input xi[2]
    param U : vector[2]
    param W : matrix
    param v : vector
    h1 = U . xi
    x1 = tanh(h1)
    h2 = W @ x1
    x2 = tanh(h2)
    output v * x2
}
"""
B1, B2, EPS = 0.9, 0.999, 0.01
"""Adam's β₁, β₂ (PyTorch's default) and an ε ≥ the lowering's PEAK_FLOOR (1e-3): at a larger ε
the first update's g/(|g| + ε) goes by the derivative rule (the case that crashed, below)."""


def _training(steps: int) -> Training:
    opt = f"adam(lr=0.1, beta1={B1}, beta2={B2}, eps={EPS})"
    return build_training(parse_text(TANH2), "mup", opt, "mse", steps, 1, 1)


def _update_ket(tr: Training, out: str) -> tuple[KetFunctions, FormulaKet]:
    kets = lower(unroll(tr).program)
    s = next(s for s in kets.stmts if s.out == out)
    assert isinstance(s, FormulaKet)
    return KetFunctions(kets), s


def test_adam_update_derivative_at_a_zero_gradient_is_the_limit() -> None:
    """U[0] after two updates: U_t2 = U_t1 − η·m̂/(√v̂ + ε) of the gradients G_0, G_1, whose own
    slots are U_grad_t0, U_grad_t1.  At G = 0, ∂U_t2/∂G_s = −η·(∂m̂/∂G_s)/ε with PyTorch's
    m̂ = (β₁(1−β₁)G_0 + (1−β₁)G_1)/(1 − β₁²): rounding of a few operations only (1e-12)."""
    tr = _training(3)
    funcs, s = _update_ket(tr, "U_t2[0]")
    names = [v for v, _, _ in funcs.args(s)]
    assert names == ["U_grad_t0[0]", "U_grad_t1[0]", "U_t1[0]"]
    eta = float(tr["U"].optimizer.lr * tr["U"].lr)
    dm = {"U_grad_t0[0]": B1 / (1 + B1), "U_grad_t1[0]": 1 / (1 + B1)}
    at = [np.zeros(3), np.zeros(3), np.array([-1.0, 0.3, 2.0])]
    for var, slope in dm.items():
        got = np.broadcast_to(funcs.derivative(s, var)(*at), (3,))
        want = -eta * slope / EPS
        assert np.allclose(got, want, rtol=1e-12, atol=0), (var, got, want)
    assert np.all(funcs.derivative(s, "U_t1[0]")(*at) == 1)


def test_adam_update_derivative_away_from_zero_is_the_finite_difference() -> None:
    tr = _training(3)
    funcs, s = _update_ket(tr, "U_t2[0]")
    f = funcs.function(s)
    rng = np.random.default_rng(0)
    g = rng.standard_normal((2, 64)) * np.logspace(-3, 1, 64)  # |G| from ε/10 to 1000 ε
    u = rng.standard_normal(64)
    for k, var in enumerate(["U_grad_t0[0]", "U_grad_t1[0]"]):
        d = np.broadcast_to(funcs.derivative(s, var)(g[0], g[1], u), (64,))

        def central(h: np.ndarray, k: int = k) -> np.ndarray:
            e = np.zeros((2, 1))
            e[k] = 1
            return (f(*(g + h * e), u) - f(*(g - h * e), u)) / (2 * h)

        h = 1e-3 * np.abs(g[k]) + 1e-6 * EPS
        coarse, fine = central(h), central(h / 2)
        bound = np.abs(coarse - fine) + 2.0**-52 * np.abs(f(g[0], g[1], u)) / (h / 2)
        assert np.all(np.abs(fine - d) <= 2 * bound), (var, np.max(np.abs(fine - d) / bound))


A, B = sympy.symbols("a b", real=True)
ROOT = sympy.sqrt(A**2 + B**2)


def _value(e: sympy.Expr, a: float, b: float) -> float:
    return float(compile_formula(e, (A, B))(np.float64(a), np.float64(b), np.inf))


@pytest.mark.parametrize(
    ("expr", "at_zero"),
    [
        (ROOT, 0.0),  # kink: the mean of the one-sided slopes ±1, as |a|′ = sign(0) = 0
        ((A**2 + B**2) ** sympy.Rational(3, 4), 0.0),  # differentiable, a minimum: slope 0
        (A * ROOT, 0.0),  # a·|a| along the axis: derivative 0
        ((1 + 2 * A) / (ROOT + sympy.Rational(1, 10)), 20.0),  # Adam's shape: 2/ε
        (sympy.sqrt(A**4 + B**2) + A, 1.0),  # a² + a along the axis: no kink, slope 1
    ],
)
def test_radical_derivatives_are_finite_and_exact(expr: sympy.Expr, at_zero: float) -> None:
    """At (0, 0) the value derived by hand in each case; elsewhere sympy's own derivative (the
    rewrite changes nothing where the base is > 0: to rounding, 1e-13)."""
    d = formula_derivative(expr, A)
    assert _value(d, 0.0, 0.0) == at_zero
    plain = sympy.diff(expr, A)
    for a, b in [(0.3, -1.2), (-2.0, 0.5), (1e-3, 0.0), (0.0, 0.7)]:
        want = _value(plain, a, b)
        assert abs(_value(d, a, b) - want) <= 1e-13 * max(1.0, abs(want))


def test_poles_and_higher_powers_are_left_to_sympy() -> None:
    """A negative power is a genuine pole (reported by the finiteness check) and u^(3/2) has a
    finite slope already: neither is rewritten."""
    for e in [1 / ROOT, ROOT**3, sympy.exp(A) + B]:
        assert formula_derivative(e, A) == sympy.diff(e, A)


def test_pair_kernel_prints_the_derivative_of_the_adam_ratio(monkeypatch) -> None:
    """The pair sums of ψ = u_b·m̂/(√v̂ + ε) and of ∂ψ/∂x (fusion.slot_derivative; own x gated
    to 0 on about half the particles, so G ≡ 0 over every copy there) by the numba kernel equal
    the numpy pass (1e-12, as test_pairkernel) and, where x = 0, the limit avg(u_b·y_b·∂m̂/∂G)/ε."""
    pytest.importorskip("numba")
    x, c, yb, ub = sympy.symbols("x c y_b u_b", real=True)
    g0, g1 = c * x * yb, x * yb
    eps = sympy.Rational(1, 100)
    psi = ub * (9 * g0 / 100 + g1 / 10) / (sympy.sqrt(999 * g0**2 / 1999 + g1**2) + eps)
    formulas = pk.PairFormulas((x, c, yb, ub), (psi, slot_derivative(psi, x)))
    rng = np.random.default_rng(3)
    p = 128
    own = rng.standard_normal((p, 2, 1)) * (rng.standard_normal((p, 2, 1)) > 0)
    chi = rng.standard_normal((2, 1))
    y, u = rng.standard_normal((p, 2, 1)), rng.standard_normal((p, 2, 1))
    args = [Arg(own, None, True), Arg(chi, None, False), Arg(y, 1, True), Arg(u, 1, True)]
    monkeypatch.setattr(pk, "NUMBA_MIN_PAIRS", 10**18)
    numpy_pass = pk.pair_average(formulas, args, 1)
    monkeypatch.setattr(pk, "NUMBA_MIN_PAIRS", 0)
    from runtime.limits import pairkernel_numba as pkn

    calls, run = [], pkn.copy_average
    monkeypatch.setattr(pkn, "copy_average", lambda *a, **k: calls.append(1) or run(*a, **k))
    kernel = pk.pair_average(formulas, args, 1)
    assert calls  # the numba kernel ran
    for got, want in zip(kernel, numpy_pass, strict=True):
        assert np.all(np.isfinite(got))
        assert np.max(np.abs(got - want)) <= 1e-12 * np.max(np.abs(want))
    zero = own == 0
    shifted = sum((u * y)[(np.arange(p) + i) % p] for i in range(1, p)) / (p - 1)
    limit = shifted * (0.09 * chi + 0.1) / 0.01
    assert np.allclose(kernel[1][zero], np.broadcast_to(limit, own.shape)[zero], rtol=1e-12)


def _limit(tr: Training) -> LimitTrajectory:
    x = np.array([[1.0, 0.0], [0.5, -1.0]])  # the training point's ξ_2 = 0: G of U[1] ≡ 0
    y = np.array([[1.0]])
    return limit_trajectory(tr, x, y, TrajectoryOptions(particles=2048, seed=1),
                            engine="mu-reference")


def test_reference_path_differentiates_adam_updates(monkeypatch) -> None:
    """tanh2, μP, Adam ε = 0.01, 3 steps, the reference path (05 §5.4).  As lowered, the first
    update g/(|g| + ε) goes by the derivative rule (fused groups used to differentiate |g| over
    symbols of unknown sign into terms the printer refused); with the lowering's peak guard
    relaxed, the later updates' √v̂ are differentiated too, at G ≡ 0 for U[1] (a NaN before).
    The two routes estimate the same limit: within 4 (s.e.₁ + s.e.₂), a bound on the s.d. of a
    difference of two estimates whatever their correlation (same particles)."""
    tr = _training(3)
    stein = _limit(tr)
    monkeypatch.setattr(parity, "_peaked", lambda node, syms: False)
    parity.nonsmooth_args.cache_clear()  # remembered verdicts of the unpatched guard
    try:
        forward = _limit(tr)
    finally:
        parity.nonsmooth_args.cache_clear()
    for r in (stein, forward):
        assert np.all(np.isfinite(r.f)) and np.all(np.isfinite(r.stderr))
    gap, tol = np.abs(forward.f - stein.f), 4 * (forward.stderr + stein.stderr)
    assert np.all(gap <= tol), (gap, tol)
    # training moves f by more than that tolerance: the comparison is not of noise with noise
    assert np.max(np.abs(stein.f[-1] - stein.f[0])) > 2 * np.max(tol)
