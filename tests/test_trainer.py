"""The finite-width trainer against direct numpy training written here by hand (04 §4.3).

The reference builds mlp2 and resmlp from explicit matrices (the same draws as
``draw_parameters``, scaled by the abcd table: P = n^{-a}p, 03 §3.1), differentiates them by hand,
and updates every tensor with P ← (1 − ηλ)P − η n^{-C} Q̃_t(n^{D} ∂L/∂P), where Q̃_t is the
optimizer's own float64 reference semantics (:meth:`Optimizer.run` on the tensor's whole gradient
history, group entries stacked so that normalisation runs over the group). Agreement to 1e-10 in
float64: both sides do the same O(n·B) sums in different orders, so the differences are a few
ulps of f (|f| = O(1)) amplified over a handful of steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest

from compiler.abcd.param import Parametrization
from compiler.frontend.parse import parse_file, parse_text
from compiler.ir import Program
from compiler.train.setup import Training, build_training
from runtime.params import draw_parameters
from runtime.trainer import train
from tests.conftest import ROOT

OPTIMIZERS = ("sgd(lr=0.5)", "momentum(0.9, lr=0.2)", "signsgd(0.01, lr=0.05)",
              "adam(lr=0.02, eps=1e-4)", "rmsprop(0.9, 1e-3, lr=0.01)", "adagrad(1e-3, lr=0.05)",
              "adamw(lr=0.02, eps=1e-4, wd=0.1)", "sgd(lr=0.3, normalize)",
              "adam(lr=0.02, eps=1e-4, clip=0.5)", "adam(lr=0.02, eps=0.01, eps_inside)")
WIDTH, STEPS, D = 48, 4, 10


def program(name: str) -> Program:
    return parse_file(ROOT / "samples" / f"{name}.nx")


def data(n_train: int, n_test: int, k: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, D))
    y = rng.standard_normal((n_train, k))
    return x, y


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def step(z: np.ndarray) -> np.ndarray:
    return (z > 0).astype(float)


TWO_OUTPUTS = """
arch mlp2k {
    input xi[10]
    param U : vector[10]
    param W : matrix
    param v : vector[2]
    x1 = relu(U . xi)
    x2 = relu(W @ x1)
    output v[0] * x2, v[1] * x2
}
"""


@dataclass
class Net:
    """Explicit tensors: U (n, d), W a list of (n, n), v (k, n) (one readout per output)."""

    U: np.ndarray
    W: list[np.ndarray]
    v: np.ndarray


def initial(prog: Program, param: Parametrization, n: int, seed: int) -> Net:
    drawn = draw_parameters(prog, n, seed)
    groups = {p.name: p.names for p in prog.params}

    def scale(group: str, matrix: bool) -> float:
        e, rule = param[group], param.table[group]
        return float(rule.sigma) * float(n) ** (float((0.5 if matrix else 0) - e.A))

    def stacked(group: str, matrix: bool) -> np.ndarray:
        return np.stack([drawn[name] for name in groups[group]]) * scale(group, matrix)

    return Net(stacked("U", False).T, list(stacked("W", True)), stacked("v", False))


def forward(net: Net, x: np.ndarray, resnet: bool, e_out: float
            ) -> tuple[np.ndarray, list[np.ndarray]]:
    """f (points, k) and the pre-activations z_0, …, z_L (n, points)."""
    n = net.v.shape[1]
    z = [net.U @ x.T]
    for w in net.W:
        z.append(z[-1] + w @ relu(z[-1]) if resnet else w @ relu(z[-1]))
    return n ** -e_out * (net.v @ relu(z[-1])).T, z


def gradients(net: Net, x: np.ndarray, chi: np.ndarray, resnet: bool, e_out: float,
              z: list[np.ndarray]) -> Net:
    """∂(Σ_i Σ_j χ_ij f_j(ξ^i))/∂(U, W, v) at the actual tensors; χ (points, k)."""
    n = net.v.shape[1]
    gv = n ** -e_out * chi.T @ relu(z[-1]).T
    dz = n ** -e_out * step(z[-1]) * (net.v.T @ chi.T)  # ∂/∂z_L per point (n, points)
    grad_w = [np.zeros_like(w) for w in net.W]
    for layer in reversed(range(len(net.W))):
        grad_w[layer] = dz @ relu(z[layer]).T
        back = net.W[layer].T @ dz
        dz = dz + step(z[layer]) * back if resnet else step(z[layer]) * back
    return Net(dz @ x, grad_w, gv)


def error_signal(name: str, f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """χ·B per point: mse f − y, ce softmax(f) − y, the formula loss (f − y)⁴/4 (04 §4.2)."""
    if name == "mse":
        return f - y
    if name == "formula":
        return (f - y) ** 3
    e = np.exp(f - f.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True) - y


def reference(tr: Training, x: np.ndarray, y: np.ndarray, n: int, seed: int, resnet: bool
              ) -> np.ndarray:
    """f_t (T+1, points, k) by direct training."""
    param, s = tr.param, tr.schedule
    e_out = float(param.e_out)
    net = initial(tr.program, param, n, seed)
    hist: dict[str, list[np.ndarray]] = {"U": [], "W": [], "v": []}
    fs: list[np.ndarray] = []
    f0: np.ndarray | None = None
    for t in range(tr.steps + 1):
        f, z = forward(net, x, resnet, e_out)
        if tr.center:  # f̃ = f − f_0 (04 §4.2)
            f0 = f.copy() if f0 is None else f0
            f = f - f0
        fs.append(f)
        if t == tr.steps:
            break
        batch = list(s.batch(t))
        chi = np.zeros_like(f)
        chi[batch] = error_signal(tr.signal.name, f[batch], y[batch]) / len(batch)
        g = gradients(net, x, chi, resnet, e_out, z)
        for group, cur, grad in (("U", list(net.U.T), g.U.T), ("W", net.W, np.stack(g.W)),
                                 ("v", list(net.v), g.v)):
            e, opt = param[group], tr[group].optimizer
            hist[group].append(grad * float(n) ** float(e.D))
            q = opt.run(np.stack(hist[group]))[-1]
            eta = float(opt.lr * param.table[group].lr)
            for k, p in enumerate(cur):
                p *= 1 - eta * float(opt.weight_decay)
                p -= eta * float(n) ** float(-e.C) * q[k]
    return np.stack(fs)


def check(arch: str, param: str, opt: str, loss: str = "mse", center: bool = False,
          n_test: int = 0, batch: int | None = None, n_train: int = 4, seed: int = 3) -> None:
    prog = parse_text(TWO_OUTPUTS) if arch == "mlp2k" else program(arch)
    tr = build_training(prog, param, opt, loss, STEPS, n_train, n_test, batch, center)
    x, y = data(n_train, n_test, tr.outputs)
    if loss == "ce":  # one-hot labels
        y = np.eye(tr.outputs)[np.argmax(y, axis=1)]
    got = train(tr, x, y, WIDTH, seeds=(seed,)).f[0]
    want = reference(tr, x, y, WIDTH, seed, arch == "resmlp")
    assert np.abs(want[-1] - want[0]).max() > 1e-6  # training moved f: the test has teeth
    # 1e-10 absolute for |f| = O(1); relative to |f| should a table make f large (SP)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("arch", ["mlp2", "resmlp"])
def test_every_optimizer_matches_direct_training(arch: str, opt: str) -> None:
    check(arch, "mup", opt)


@pytest.mark.parametrize("param", ["ntp", "sp", "sp:1"])
@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("arch", ["mlp2", "resmlp"])
def test_every_parametrization_matches(arch: str, opt: str, param: str) -> None:
    if param == "sp":  # SP's updates are Θ(n) too large at these rates (03 §3.2): it diverges
        opt = re.sub(r"lr=([0-9.e-]+)", lambda m: f"lr={float(m.group(1)) / 20:g}", opt)
    check(arch, param, opt)


@pytest.mark.parametrize("arch,loss,center", [
    ("mlp2", "mse", True), ("resmlp", "mse", True), ("mlp2k", "mse", False),
    ("mlp2k", "ce", False), ("mlp2k", "ce", True), ("mlp2k", "formula(loss = (f - y)^4/4)", True),
])
def test_signals_and_centring_match(arch: str, loss: str, center: bool) -> None:
    check(arch, "ntp", "momentum(0.5, lr=0.2)", loss, center)


@pytest.mark.parametrize("arch,loss", [("mlp2", "mse"), ("resmlp", "mse"), ("mlp2k", "ce")])
@pytest.mark.parametrize("opt", ["sgd(lr=0.3)", "adam(lr=0.02, eps=1e-4, normalize)"])
@pytest.mark.parametrize("param", ["mup", "sp"])
def test_test_mask_and_minibatches_match(arch: str, loss: str, opt: str, param: str) -> None:
    check(arch, param, opt, loss, True, n_test=3, batch=2, n_train=5)
