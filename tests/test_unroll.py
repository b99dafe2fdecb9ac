"""The unrolled training program (spec 04 §4.3): executed literally at small width it equals
direct numpy training of the same network, written here independently with explicit matrices
built from the same draws; it verifies, round-trips, and is width free under μP."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from compiler.abcd.param import resolve
from compiler.errors import NexortError
from compiler.frontend.parse import parse_file, parse_text
from compiler.ir import OuterNonlin
from compiler.passes.backprop import BackpropOptions
from compiler.passes.pipeline import run_pass
from compiler.passes.unroll import Unrolled, UnrollOptions
from compiler.printer import print_program
from compiler.train.widths import check_width_free
from runtime.executor import execute
from runtime.params import draw_parameters
from tests.conftest import SAMPLES, sample_id

Params = dict[str, np.ndarray]
Grads = Callable[[Params, np.ndarray], tuple[float, Params]]

ADAM = (0.9, 0.99, 1e-3)  # beta1, beta2, eps of the option strings below


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def step(x: np.ndarray) -> np.ndarray:
    return (x > 0).astype(float)


def mlp2_grads(p: Params, xi: np.ndarray, n: int, e_out: float) -> tuple[float, Params]:
    """f(ξ) = n^{-e_out} v·relu(W relu(U ξ)) and ∂f/∂P for P = U (n×d), W, v (actual values)."""
    h1 = p["U"] @ xi
    x1 = relu(h1)
    h2 = p["W"] @ x1
    x2 = relu(h2)
    scale = n ** -e_out
    dh2 = scale * p["v"] * step(h2)
    dh1 = (p["W"].T @ dh2) * step(h1)
    return scale * p["v"] @ x2, {"v": scale * x2, "W": np.outer(dh2, x1), "U": np.outer(dh1, xi)}


def resmlp_grads(p: Params, xi: np.ndarray, n: int, e_out: float) -> tuple[float, Params]:
    """z₀ = Uξ, z_{l+1} = z_l + W_l relu(z_l) (l = 0, 1), f = n^{-e_out} v·relu(z₂)."""
    z = [p["U"] @ xi]
    for w in (p["W[0]"], p["W[1]"]):
        z.append(z[-1] + w @ relu(z[-1]))
    scale = n ** -e_out
    dz = scale * p["v"] * step(z[2])
    grads = {"v": scale * relu(z[2])}
    for layer in (1, 0):
        w = p[f"W[{layer}]"]
        grads[f"W[{layer}]"] = np.outer(dz, relu(z[layer]))
        dz = dz + step(z[layer]) * (w.T @ dz)
    grads["U"] = np.outer(dz, xi)
    return scale * p["v"] @ relu(z[2]), grads


ARCHS = {"mlp2": mlp2_grads, "resmlp": resmlp_grads}


def q_hand(opt: str, grads: list[np.ndarray]) -> np.ndarray:
    """Q_t of the gradient history, by hand (04 §4.1 table, PyTorch's conventions)."""
    if opt == "sgd":
        return grads[-1]
    if opt == "momentum":
        return sum(0.5 ** (len(grads) - 1 - s) * g for s, g in enumerate(grads))
    b1, b2, eps = ADAM
    m, v = np.zeros_like(grads[0]), np.zeros_like(grads[0])
    for g in grads:
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    t = len(grads)
    return (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)


OPTS = {"sgd": "sgd(lr=0.1)", "momentum": "momentum(lr=0.1, beta=0.5)",
        "adam": f"adam(lr=0.01, beta1={ADAM[0]}, beta2={ADAM[1]}, eps={ADAM[2]})"}


def direct_training(arch: str, param: str, opt: str, n: int, seed: int, x: np.ndarray,
                    y: np.ndarray, steps: int, n_train: int, batch_size: int, center: bool,
                    loss: str, shape: Callable[[np.ndarray], np.ndarray] = lambda q: q,
                    wd: float = 0.0) -> np.ndarray:
    """f_t on every point, t = 0..T: plain numpy training with explicit matrices (03 §3.1)."""
    program = parse_file(f"samples/{arch}.nx")
    table = resolve(param, program)
    e_out = float(table.e_out)
    draws = draw_parameters(program, n, seed)
    # σ n^{-A} (0 for b = ∞) and the tensor's rate η·lr (n^{-C} = 0 for c = ∞: frozen)
    init = {g: float(r.sigma) * n ** -float(r.exponents.A) for g, r in table.table.items()}
    rates = {g: (0.01 if opt == "adam" else 0.1) * float(r.lr) for g, r in table.table.items()}
    p: Params = {}
    for decl in program.params:
        e = table[decl.name]
        if decl.kind == "vector" and decl.shape:  # input layer: the columns U[j]
            p[decl.name] = np.stack([draws[k] for k in decl.names], axis=1) * init[decl.name]
        elif decl.kind == "matrix":
            for k in decl.names:  # entries N(0, 1/n): the actual matrix is n^{½−A}·draw
                p[k] = draws[k] * init[decl.name] * n ** 0.5
        else:
            p[decl.name] = draws[decl.name] * init[decl.name]
    group = {k: k.split("[")[0] for k in p}
    history: dict[str, list[np.ndarray]] = {k: [] for k in p}
    fs = []
    for t in range(steps + 1):
        out = [ARCHS[arch](p, xi, n, e_out) for xi in x]
        fs.append(np.array([f for f, _ in out]))
        if t == steps:
            break
        f = fs[-1] - fs[0] if center else fs[-1]  # centring: train f − f₀ (04 §4.2)
        batch = [(t * batch_size + j) % n_train for j in range(batch_size)]
        for k in p:
            e = table[group[k]]
            loss_grad = sum(_chi(loss, f[i], y[i]) / batch_size * out[i][1][k] for i in batch)
            history[k].append(n ** float(e.D) * loss_grad)
            lr = rates[group[k]]
            p[k] = (1 - lr * wd) * p[k] - lr * n ** -float(e.C) * shape(q_hand(opt, history[k]))
    return np.array(fs) - (fs[0] if center else 0.0)


def _chi(loss: str, f: float, y: float) -> float:
    return f - y if loss == "mse" else 1.0 / (1.0 + np.exp(-f)) - y  # a formula(loss=…) signal


LOSSES = {"mse": "mse", "logistic": "formula(chi = 1/(1 + exp(-f)) - y)"}


def unrolled_f(arch: str, options: UnrollOptions, n: int, seed: int, x: np.ndarray,
               y: np.ndarray) -> tuple[Unrolled, np.ndarray]:
    result = run_pass(parse_file(f"samples/{arch}.nx"), options)
    run = execute(result.program, n, seed, inputs=result.bind(x, y))
    return result, result.f(run.values, n)


def data(points: int, n_train: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((points, 10)) / np.sqrt(10)
    return x, rng.standard_normal(n_train)


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    """float64 agreement: the two differ only in summation order (1e-10 relative to f)."""
    scale = max(1.0, float(np.max(np.abs(want))))
    assert np.max(np.abs(got - want)) <= 1e-10 * scale, (got, want)


@pytest.mark.parametrize("param", ["mup", "ntp", "sp"])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_mlp2_literal_equals_direct_training(param, opt):
    n, seed, steps = 24, 3, 3
    x, y = data(2, 2)
    options = UnrollOptions(param=param, opt=OPTS[opt], steps=steps, batch=2)
    _, got = unrolled_f("mlp2", options, n, seed, x, y)
    want = direct_training("mlp2", param, opt, n, seed, x, y, steps, 2, 2, False, "mse")
    assert np.ptp(want[:, 0]) > 1e-3  # training moved f: the comparison is not vacuous
    assert_same(got, want)


def test_resmlp_mup_adam_literal_equals_direct_training():
    n, seed, steps = 20, 5, 2
    x, y = data(3, 3)
    options = UnrollOptions(param="mup", opt=OPTS["adam"], steps=steps, batch=3)
    _, got = unrolled_f("resmlp", options, n, seed, x, y)
    want = direct_training("resmlp", "mup", "adam", n, seed, x, y, steps, 3, 3, False, "mse")
    assert_same(got, want)


@pytest.mark.parametrize("loss", ["mse", "logistic"])
def test_test_points_minibatches_centring_momentum(loss):
    """3 points, 2 of them training points, mini-batches of 1 (cycling), centred f."""
    n, seed, steps = 16, 11, 3
    x, y = data(3, 2)
    options = UnrollOptions(param="mup", opt=OPTS["momentum"], loss=LOSSES[loss], steps=steps,
                            batch=3, train=2, batch_size=1, center=True)
    _, got = unrolled_f("mlp2", options, n, seed, x, y)
    want = direct_training("mlp2", "mup", "momentum", n, seed, x, y, steps, 2, 1, True, loss)
    assert_same(got, want)
    assert np.all(got[0] == 0) and np.ptp(got[:, 2]) > 0  # centred; the test point moves


def test_memoryful_update_is_an_outer_nonlin_of_the_history():
    """Q_s of Adam reads G_0..G_s: the update of W at step 2 reads both steps' gradients."""
    result = run_pass(parse_file("samples/mlp2.nx"),
                      UnrollOptions(opt="adam", steps=2, batch=1))
    outer = [ins for ins in result.program.body if isinstance(ins, OuterNonlin)]
    assert [ins.out for ins in outer] == ["h2_ξ1_t1", "dx1_ξ1_t1", "h2_ξ1_t2"]
    names = {s.name for s in outer[-1].formula.free_symbols}  # G(α,β) = dh2_α x1_β
    assert {"chi_t0_ξ1", "chi_t1_ξ1", "dh2_ξ1_t0", "dh2_ξ1_t1", "x1_ξ1_t0[b]",
            "x1_ξ1_t1[b]", "x1_ξ1_t2[b]"} == names - {"h2_ξ1_t2_w0"}
    names = {s.name for s in outer[1].formula.free_symbols}  # Wᵀ: α and β swap
    assert {"dh2_ξ1_t0[b]", "x1_ξ1_t0", "dh2_ξ1_t1[b]"} <= names


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_mup_training_program_is_width_free(path):
    """Every sample's μP training program (Rem. 2.7.2), unless the sample cannot be trained at
    all (then its backpropagation program is refused too)."""
    program = parse_file(path)
    try:
        result = run_pass(program, UnrollOptions(param="mup", opt="adam", steps=2, batch=2))
    except NexortError:
        with pytest.raises(NexortError):
            run_pass(program, BackpropOptions())
        return
    check_width_free(result.program)  # the round trip: tests/test_golden.py


def test_ntp_training_program_carries_its_powers_of_n():
    result = run_pass(parse_file("samples/mlp2.nx"), UnrollOptions(param="ntp", steps=1))
    text = print_program(result.program)
    assert "n^" in text or "sqrt(n)" in text
    assert parse_text(text) == result.program


@pytest.mark.parametrize("shaping", ["normalize", "clip=0.5"])
def test_normalize_and_clip_use_the_rms_over_the_tensor(shaping):
    """Eq. 2.54: Q̃ = Q/N or Q·min(1, τ/N), N the RMS of Q over the whole group (U is one n×10
    tensor); the reference shapes the hand-written Q with numpy."""
    n, seed, steps = 16, 4, 2
    x, y = data(2, 2)
    opt = f"sgd(lr=0.1, {shaping})"
    _, got = unrolled_f("mlp2", UnrollOptions(param="mup", opt=opt, steps=steps, batch=2),
                        n, seed, x, y)

    def shape(q: np.ndarray) -> np.ndarray:
        rms = np.sqrt(np.mean(q * q))
        return q / rms if shaping == "normalize" else q * min(1.0, 0.5 / rms)

    want = direct_training("mlp2", "mup", "sgd", n, seed, x, y, steps, 2, 2, False, "mse",
                           shape=shape)
    assert_same(got, want)


TABLE = """
base = "mup"
[params.v]
b = "inf"        # zero-initialised readout
[params.U]
c = "inf"        # frozen input layer
[params.W]
sigma = 2
lr = 0.5
"""


def test_table_constants_zero_init_frozen_and_weight_decay(tmp_path):
    """σ and lr of a table, b = ∞ (v₀ = 0), c = ∞ (U never moves) and decoupled weight decay
    p ← (1 − η·lr·λ)p − η·lr·n^{-C}·Q (03 §3.1, 04 §4.1)."""
    path = tmp_path / "table.toml"
    path.write_text(TABLE)
    n, seed, steps = 16, 6, 3
    x, y = data(2, 2)
    opt = f"adam(lr=0.01, beta1={ADAM[0]}, beta2={ADAM[1]}, eps={ADAM[2]}, wd=0.5)"
    result, got = unrolled_f("mlp2", UnrollOptions(param=str(path), opt=opt, steps=steps,
                                                   batch=2), n, seed, x, y)
    assert "U_grad_t0[0]" not in result.program.kinds and np.all(got[0] == 0)
    want = direct_training("mlp2", str(path), "adam", n, seed, x, y, steps, 2, 2, False, "mse",
                           wd=0.5)
    assert np.ptp(want[:, 0]) > 1e-3
    assert_same(got, want)
