"""Optimizers as formulas (spec 04 §4.1, compiler.train): parsing, located errors, derived
classes, and the formulas against PyTorch's update rules written out in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.abcd import analyse
from compiler.errors import UsageError
from compiler.frontend.parse import parse_file
from compiler.printer import format_formula
from compiler.train import OptionError, format_optimizer, parse_optimizer
from compiler.train.builtins import BUILTINS
from tests.conftest import ROOT

T_STEPS, SHAPE = 12, (5, 3)


def grads(seed: int = 0) -> np.ndarray:
    """A gradient sequence with mixed signs and scales (and one exact zero entry)."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((T_STEPS, *SHAPE)) * np.exp(rng.uniform(-3, 1, (T_STEPS, 1, 1)))
    g[3, 0, 0] = 0.0
    return g


# -- PyTorch's single-tensor update rules (torch/optim/{sgd,adam,rmsprop,adagrad}.py) ---------
def torch_sgd(p, gs, lr, momentum=0.0):
    buf, out = None, [p]
    for g in gs:
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + g
            g = buf
        p = p - lr * g
        out.append(p)
    return np.stack(out)


def torch_adam(p, gs, lr, beta1, beta2, eps, weight_decay=0.0, decoupled=False):
    m, v, out = np.zeros_like(p), np.zeros_like(p), [p]
    for step, g in enumerate(gs, start=1):
        if decoupled:  # AdamW
            p = p * (1 - lr * weight_decay)
        m = m + (1 - beta1) * (g - m)  # exp_avg.lerp_(grad, 1 - beta1)
        v = v * beta2 + (1 - beta2) * g * g
        bc1, bc2 = 1 - beta1**step, 1 - beta2**step
        denom = np.sqrt(v) / np.sqrt(bc2) + eps
        p = p - (lr / bc1) * m / denom
        out.append(p)
    return np.stack(out)


def torch_rmsprop(p, gs, lr, alpha, eps):
    sq, out = np.zeros_like(p), [p]
    for g in gs:
        sq = sq * alpha + (1 - alpha) * g * g
        p = p - lr * g / (np.sqrt(sq) + eps)
        out.append(p)
    return np.stack(out)


def torch_adagrad(p, gs, lr, eps):
    s, out = np.zeros_like(p), [p]
    for g in gs:
        s = s + g * g
        p = p - lr * g / (np.sqrt(s) + eps)
        out.append(p)
    return np.stack(out)


REFERENCES = [
    ("sgd(lr=0.1)", lambda p, gs: torch_sgd(p, gs, 0.1)),
    ("momentum(0.8, lr=0.05)", lambda p, gs: torch_sgd(p, gs, 0.05, momentum=0.8)),
    ("adam(lr=0.01)", lambda p, gs: torch_adam(p, gs, 0.01, 0.9, 0.999, 1e-8)),
    ("adam(0.5, 0.6, 0.001, lr=0.3)", lambda p, gs: torch_adam(p, gs, 0.3, 0.5, 0.6, 1e-3)),
    ("adamw(lr=0.01)",
     lambda p, gs: torch_adam(p, gs, 0.01, 0.9, 0.999, 1e-8, 1e-2, decoupled=True)),
    ("adam(wd=0.3, eps=0.01, lr=0.2)",
     lambda p, gs: torch_adam(p, gs, 0.2, 0.9, 0.999, 0.01, 0.3, decoupled=True)),
    ("rmsprop(lr=0.01)", lambda p, gs: torch_rmsprop(p, gs, 0.01, 0.99, 1e-8)),
    ("rmsprop(alpha=0.5, eps=0.1, lr=0.1)", lambda p, gs: torch_rmsprop(p, gs, 0.1, 0.5, 0.1)),
    ("adagrad(lr=0.1)", lambda p, gs: torch_adagrad(p, gs, 0.1, 1e-10)),
    ("formula(Q = m, m = 0.8*m + g, lr=0.05)",
     lambda p, gs: torch_sgd(p, gs, 0.05, momentum=0.8)),
]


@pytest.mark.parametrize(("text", "reference"), REFERENCES, ids=[r[0] for r in REFERENCES])
@pytest.mark.parametrize("seed", [0, 1])
def test_formulas_match_pytorch(text, reference, seed):
    gs = grads(seed)
    p0 = np.random.default_rng(seed + 10).standard_normal(SHAPE)
    ours = parse_optimizer(text).trajectory(p0, gs)
    np.testing.assert_allclose(ours, reference(p0, gs), rtol=1e-12, atol=1e-12)


def test_eps_inside_is_the_smooth_form():
    """adam(eps_inside): Q = m̂/√(v̂ + ε²) (the paper's Eq. 2.2), finite where ε = 0 is not."""
    gs = grads()
    gs[:, 0, 0] = 0.0
    q = parse_optimizer("adam(eps=0.1, eps_inside)").run(gs)
    b1, b2, m, v = 0.9, 0.999, 0.0, 0.0
    for t, g in enumerate(gs[:, 1, 1]):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        mh, vh = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
        assert q[t, 1, 1] == pytest.approx(mh / np.sqrt(vh + 0.01), rel=1e-12)
    assert np.all(q[:, 0, 0] == 0)


def test_signsgd_smooth_and_exact():
    g = grads()
    np.testing.assert_allclose(parse_optimizer("signsgd(0.5)").run(g), g / np.sqrt(g * g + 0.25),
                               rtol=1e-12)
    np.testing.assert_array_equal(parse_optimizer("signsgd").run(g), np.sign(g))


def test_normalize_and_clip_use_the_rms_over_the_tensor():
    """04 §2.10 Eq. 2.54 with N(Q) the RMS of Q's entries over the tensor."""
    g = grads()
    rms = np.sqrt(np.mean(g * g, axis=(1, 2), keepdims=True))
    np.testing.assert_allclose(parse_optimizer("sgd(normalize)").run(g), g / rms, rtol=1e-12)
    clipped = parse_optimizer("sgd(clip=0.5)").run(g)
    np.testing.assert_allclose(clipped, g * np.minimum(1, 0.5 / rms), rtol=1e-12)
    assert np.sqrt(np.mean(clipped**2, axis=(1, 2))).max() <= 0.5 * (1 + 1e-12)


# -- derived classes ------------------------------------------------------------------------
# (memoryless, stationary, linear, degree, abcd class), from 04 §4.1 and 03 §3.1
CLASSES = {
    "sgd": (True, True, True, 1, "linear"),
    "momentum": (False, False, True, 1, "linear"),
    "momentum(0)": (True, True, True, 1, "linear"),
    "signsgd": (True, True, False, 0, "scale_invariant"),
    "signsgd(1e-3)": (True, True, False, None, "adaptive"),
    "adam": (False, False, False, None, "adaptive"),
    "adam(eps=0)": (False, False, False, 0, "scale_invariant"),
    # β₁ = β₂ = 0: the bias corrections 1 − 0^{t+1} are 1 at every t, so Q = g/(|g| + ε)
    "adam(0, 0, 1e-8)": (True, True, False, None, "adaptive"),
    "adam(eps_inside)": (False, False, False, None, "adaptive"),
    "adamw": (False, False, False, None, "adaptive"),
    "rmsprop": (False, False, False, None, "adaptive"),
    "rmsprop(0, 0)": (True, True, False, 0, "scale_invariant"),
    "adagrad": (False, False, False, None, "adaptive"),
    "adagrad(0)": (False, False, False, 0, "scale_invariant"),
    "sgd(normalize)": (True, True, False, 0, "scale_invariant"),
    "sgd(clip=1)": (True, True, False, None, "adaptive"),
    "momentum(clip=1)": (False, False, False, None, "adaptive"),
    "adam(eps=0, clip=2)": (False, False, False, 0, "scale_invariant"),
    "formula(Q = g^3)": (True, True, False, 3, None),
    "formula(Q = g + t*g)": (True, False, True, 1, "linear"),
    "formula(Q = g/(abs(g) + 1))": (True, True, False, None, "adaptive"),
    "formula(Q = g/sqrt(s), s = s + g^2 from 1)": (False, False, False, None, "adaptive"),
}


@pytest.mark.parametrize("text", CLASSES)
def test_derived_classes(text):
    c = parse_optimizer(text).classes
    memoryless, stationary, linear, degree, qclass = CLASSES[text]
    assert (c.memoryless, c.stationary, c.linear) == (memoryless, stationary, linear)
    assert c.degree == degree and c.qclass == qclass


def test_every_builtin_has_an_abcd_class():
    for name in BUILTINS:
        assert parse_optimizer(name).qclass in ("linear", "scale_invariant", "adaptive")


def test_abcd_uses_the_derived_class():
    p = parse_file(ROOT / "samples" / "mlp2.nx")
    a = analyse(p, "mup", "formula(Q = m, m = 0.9*m + g)")
    b = analyse(p, "mup", "momentum(0.9)")
    assert [v.holds for v in a.verdicts] == [v.holds for v in b.verdicts]
    assert a.optimizer.qclass == "linear"
    with pytest.raises(UsageError, match="homogeneous of degree 3"):
        analyse(p, "mup", "formula(Q = g^3)")


# -- parsing --------------------------------------------------------------------------------
ROUND_TRIPS = ["sgd", "momentum(0.9)", "signsgd(1e-3)", "adam(0.9, 0.99, 0)", "adamw(lr=1e-3)",
               "adam(eps_inside=true, wd=0.1)", "rmsprop(alpha=0.9, eps=0, clip=2)",
               "sgd(normalize, lr=0.5)", "adagrad(1e-12)",
               "formula(Q = m, m = 0.9*m + g)",
               "formula(Q = m/(sqrt(v) + 1e-8)/(1 - 0.9^(t+1)), m = 0.9*m + 0.1*g,"
               " v = 0.99*v + 0.01*g^2 from 0.5, lr = 0.01, wd = 0.1)",
               "formula(Q = max(g, -1) - min(g, 1) + sign(g)*exp(-abs(g)), clip = 3)"]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_round_trip(text):
    opt = parse_optimizer(text)
    again = parse_optimizer(format_optimizer(opt))
    assert again == opt
    assert format_optimizer(again) == format_optimizer(opt)


DECIMALS = st.integers(0, 999).map(lambda k: f"0.{k:03d}")


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["adam", "rmsprop", "momentum"]), DECIMALS, DECIMALS,
       st.integers(-12, 0))
def test_random_arguments_round_trip_exactly(name, b1, b2, e):
    args = {"adam": f"{b1}, {b2}, 1e{e}", "rmsprop": f"{b1}, 1e{e}", "momentum": b1}[name]
    opt = parse_optimizer(f"{name}({args})")
    assert opt.arg("beta1" if name == "adam" else "beta") == sympy.Rational(b1)
    assert parse_optimizer(format_optimizer(opt)) == opt


def test_numbers_print_as_exact_decimals():
    """Issue 11 item 6: β = 0.9 prints as 9/10, never as the binary fraction of the double."""
    opt = parse_optimizer("adam")
    text = format_formula(opt.q) + " " + format_formula(opt.state[0].update)
    assert "9/10" in text and "1/100000000" in text and "999/1000" in text
    assert "9007199254740992" not in text
    assert opt.arg("beta1") == sympy.Rational(9, 10) and opt.eps == sympy.Rational(1, 10**8)


DEFAULTS = [("adam", {"beta1": "0.9", "beta2": "0.999", "eps": "1e-8"}),
            ("adamw", {"eps": "1e-8"}), ("rmsprop", {"beta": "0.99", "eps": "1e-8"}),
            ("adagrad", {"eps": "1e-10"}), ("signsgd", {"eps": "0"})]


@pytest.mark.parametrize(("name", "defaults"), DEFAULTS)
def test_pytorch_defaults(name, defaults):
    opt = parse_optimizer(name)
    assert all(opt.arg(k) == sympy.Rational(v) for k, v in defaults.items())
    assert opt.weight_decay == (sympy.Rational(1, 100) if name == "adamw" else 0)


# (text, column of the caret, its width, words of the message)
BAD = [
    ("lion", 1, 4, "unknown optimizer 'lion'"),
    ("adam(beta3=0.9)", 6, 5, "unknown keyword 'beta3' (known: beta1, beta2, eps"),
    ("adam(eps=x)", 10, 1, "eps must be a number"),
    ("adam(eps=-1)", 10, 2, "eps must be ≥ 0"),
    ("adam(0.9, 1.5)", 11, 3, "beta2 must be in [0, 1)"),
    ("momentum(beta=-0.1)", 15, 4, "beta must be in [0, 1)"),
    ("adam(eps=1, eps=2)", 13, 3, "eps of adam given twice"),
    ("adam(0.9, beta1=0.8)", 11, 5, "beta1 of adam given twice"),
    ("rmsprop(alpha=0.9, beta=0.8)", 20, 4, "beta of rmsprop given twice"),
    ("adam((", 6, 1, "beta1 must be a number"),
    ("sgd(lr=0)", 8, 1, "lr must be > 0"),
    ("adam(eps=3x)", 10, 2, "malformed number"),
    ("adam(1e999)", 6, 5, "out of range"),
    ("sgd(normalize, clip=1)", 16, 4, "normalize and clip exclude each other"),
    ("adam(eps_inside=2)", 17, 1, "eps_inside must be true or false"),
    ("sgd 3", 5, 1, "unexpected '3'"),
    ("adam(0.9", 9, 1, "expected ')'"),
    ("formula(Q = h)", 13, 1, "unknown name 'h'"),
    ("formula(m = g)", 1, 7, "needs Q"),
    ("formula(Q = g, Q = m)", 16, 1, "Q defined twice"),
    ("formula(Q = sqrt(g, g))", 13, 4, "sqrt takes 1 argument"),
    ("formula(Q = g / 0)", 15, 1, "division by zero"),
    ("formula(Q = m, m = g from x)", 27, 1, "expected a number after 'from'"),
    ("formula(Q = g $)", 15, 1, "unexpected character '$'"),
]


@pytest.mark.parametrize(("text", "column", "width", "words"), BAD, ids=[b[0] for b in BAD])
def test_located_errors(text, column, width, words):
    with pytest.raises(OptionError) as info:
        parse_optimizer(text)
    e = info.value
    assert isinstance(e, UsageError) and words in e.message
    assert (e.column, e.width) == (column, width)
    head, quoted, caret = e.render().splitlines()
    assert head.startswith("error: --opt: ") and quoted == f"    {text}"
    assert caret == "    " + " " * (column - 1) + "^" + "~" * (width - 1)


def test_old_entry_point_still_works():
    from compiler.abcd import parse_optimizer as old

    assert old("adam(eps=0)").qclass == "scale_invariant"
    assert old("adam(eps=0)").text == "adam(eps=0)"
