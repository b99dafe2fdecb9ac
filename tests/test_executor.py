"""The finite-width executor (spec 01 §1.3).

Shown against independent numpy implementations of mlp2 and attention written here from the
same random draws (agreement to 1e-12 in float64), against a naive O(n^{r+1}) evaluation of
OuterNonlin for the blocked one, and for determinism, batching and the parameter laws."""

from __future__ import annotations

import numpy as np
import pytest

import runtime.executor as executor
from compiler.errors import NumericError
from compiler.frontend.parse import parse_file, parse_text
from runtime.executor import execute
from runtime.params import draw_parameters
from tests.conftest import ROOT, SAMPLES, sample_id

DATA = np.load(ROOT / "samples" / "data" / "gauss10.npz")
SEQ = np.load(ROOT / "samples" / "data" / "seq3x4.npz")["X_train"]


def relu(x):
    return np.maximum(x, 0)


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_every_sample_executes_at_finite_width(path):
    program = parse_file(path)
    d = len(program.input_names)
    x = np.random.default_rng(1).standard_normal((3, d)) / np.sqrt(max(d, 1)) if d else None
    ex = execute(program, 32, seed=0, inputs=x)
    for name, kind in program.kinds.items():
        if kind != "matrix":
            assert np.all(np.isfinite(ex[name])), name
    assert ex.averages().shape == (len(program.outputs), ex.batch)


def test_mlp2_equals_independent_numpy():
    program = parse_file(ROOT / "samples" / "mlp2.nx")
    n, x = 257, DATA["X_train"]
    p = draw_parameters(program, n, seed=3)
    ex = execute(program, n, seed=3, inputs=x)
    u = np.stack([p[f"U[{j}]"] for j in range(10)], axis=1)  # n × d: the input layer
    h1 = u @ x.T
    x1 = relu(h1)
    h2 = p["W"] @ x1
    x2 = relu(h2)
    out = p["v"][:, None] * x2
    for name, want in {"h1": h1, "x1": x1, "h2": h2, "x2": x2, "out": out}.items():
        close(ex[name], want)
    close(ex.f(0.5)[0], out.sum(axis=0) / np.sqrt(n))


def test_attention_equals_independent_numpy():
    program = parse_file(ROOT / "samples" / "attention.nx")
    n, x = 129, SEQ  # (B, S=3, d=4)
    p = draw_parameters(program, n, seed=5)
    ex = execute(program, n, seed=5, inputs=x)
    u = np.stack([p[f"U[{j}]"] for j in range(4)], axis=1)
    e = np.einsum("nd,bsd->sbn", u, x)  # token embeddings, (S, B, n)
    q, k, val = (np.einsum("mn,sbn->sbm", p[w], e) for w in ("Wq", "Wk", "Wv"))
    scores = np.einsum("bn,sbn->sb", q[-1], k) / n  # avg(q[S-1] * k[s])
    weights = np.exp(scores) / np.exp(scores).sum(axis=0)
    att = np.einsum("sb,sbn->nb", weights, val)
    close(ex["att"], att)
    close(ex["out"], p["v"][:, None] * att)
    for s in range(3):
        close(ex[f"a[{s}]"], scores[s])


OUTER = """
arch outer {
    param x : vector
    param u : vector
    param c : scalar = 1/3
    y = mean[b](tanh(x * u[b] + c) * u[b] + x[b])
    z = mean[b, d](sin(x - u[b] * x[d]) * c + u[d])
    output y + z
}
"""


@pytest.mark.parametrize("block", [1 << 21, 50, 7])
def test_blocked_outer_nonlin_equals_naive(monkeypatch, block):
    monkeypatch.setattr(executor, "BLOCK_ELEMENTS", block)
    n = 23
    ex = execute(parse_text(OUTER), n, seed=2)
    x, u, c = ex["x"][:, 0], ex["u"][:, 0], 1 / 3
    y = (np.tanh(x[:, None] * u[None, :] + c) * u[None, :] + x[None, :]).mean(axis=1)
    z = np.sin(x[:, None, None] - u[None, :, None] * x[None, None, :]) * c + u[None, None, :]
    close(ex["y"][:, 0], y)
    close(ex["z"][:, 0], z.mean(axis=(1, 2)))


def test_batch_equals_one_input_at_a_time():
    program = parse_file(ROOT / "samples" / "layernorm_mlp.nx")
    x = DATA["X_train"][:4]
    batch = execute(program, 64, seed=1, inputs=x)
    for i in range(4):
        single = execute(program, 64, seed=1, inputs=x[i])
        close(batch["out"][:, i], single["out"][:, 0])
        close(batch["var"][i], single["var"][0])


def test_deterministic_for_a_seed_and_different_across_seeds():
    program = parse_file(ROOT / "samples" / "rnn.nx")
    a, b, c = (execute(program, 48, seed=s, inputs=SEQ) for s in (7, 7, 8))
    assert np.array_equal(a["out"], b["out"])
    assert not np.allclose(a["out"], c["out"])


@pytest.mark.parametrize("dist", ["gaussian", "rademacher", "uniform"])
def test_matrix_entries_have_variance_one_over_n(dist):
    program = parse_text("arch a { param W : matrix\n param v : vector\n output W @ v }")
    n = 400
    w = draw_parameters(program, n, seed=0, dist=dist)["W"]
    # n² = 160000 iid entries: the relative s.e. of the variance estimate is ≤ √(2/n²) ≈ 0.35%
    assert abs(w.var() * n - 1) < 4 * np.sqrt(2) / n
    assert abs(w.mean()) * n < 4
    if dist == "rademacher":
        assert np.allclose(np.abs(w), 1 / np.sqrt(n))


def test_nan_is_reported_with_the_instruction():
    program = parse_text("arch a {\n param v : vector\n y = log(v - 10)\n output y\n}", "nan.nx")
    with pytest.raises(NumericError) as info:
        execute(program, 16, seed=0)
    assert "y = log(v - 10)" in info.value.message
    assert info.value.loc.line == 3


def test_parameter_overrides_and_input_dimension_errors():
    from compiler.errors import UsageError

    program = parse_file(ROOT / "samples" / "mlp1.nx")
    params = draw_parameters(program, 8, seed=0)
    params["v"] = np.ones(8)
    ex = execute(program, 8, params=params, inputs=DATA["X_train"][:2])
    close(ex["out"], ex["x1"])
    with pytest.raises(UsageError, match="dimension 3"):
        execute(program, 8, inputs=np.ones((2, 3)))
    with pytest.raises(UsageError, match="needs inputs"):
        execute(program, 8)
