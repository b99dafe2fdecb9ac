"""The PyTorch recipe of ``nexort abcd --torch-recipe`` against the fast trainer (03 §3.1, 04 §4.1).

A user implements an abcd-parametrization in PyTorch by storing p, multiplying it by n^{-a} in the
forward pass, sampling it with std σ·n^{-b}, giving each tensor its own parameter group with
learning rate η·lr·n^{-c} (linear Q: n^{d−c}) and, for an adaptive Q, eps = ε·n^{-d} on the
stored tensor's gradient (:mod:`compiler.abcd.render`). The test reads exactly those numbers from
the command's JSON (width N, base width N0 = 1, so every factor is the absolute value at N), builds
``mlp2``/``resmlp`` by hand as explicit float64 tensors from the same draws as
:func:`runtime.params.draw_parameters` (a matrix draw has entries N(0, 1/n), hence the √n), trains
it with ``torch.optim`` and compares f_t with :func:`runtime.trainer.train` to 1e-10: both sides
do the same float64 sums in different orders, so they differ by a few ulps amplified over a few
steps. A run with the unscaled eps must differ (the ε·n^{-d} factor has teeth).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from compiler.cli.app import main
from compiler.frontend.parse import parse_file
from compiler.ir import Program
from compiler.train.options import parse_optimizer
from compiler.train.setup import build_training
from runtime.params import draw_parameters
from runtime.trainer import train
from tests.conftest import ROOT

pytest.importorskip(
    "torch", reason="PyTorch is not installed (it is in the `test` extra: "
                    "pip install -e '.[test]')")
import torch  # after the skip, so the module is collected (and skipped) without torch

WIDTH, STEPS, D, N_TRAIN = 48, 4, 10, 4
# one string per torch optimizer the recipe serves; SP's rates are Θ(n) too large (03 §3.2), so
# its runs use lr / 20 as tests/test_trainer.py does
OPTIMIZERS = ("sgd(lr=0.5)", "momentum(0.9, lr=0.2)", "adam(lr=0.02, eps=1e-4)",
              "adam(lr=0.02, beta1=0.8, beta2=0.99, eps=0.05)", "adamw(lr=0.02, eps=1e-3, wd=0.1)",
              "rmsprop(0.9, 1e-3, lr=0.01)", "adagrad(1e-3, lr=0.05)")


def recipe(capsys: pytest.CaptureFixture[str], arch: str, param: str, opt: str
           ) -> dict[str, Any]:
    """``nexort abcd --torch-recipe --json`` at width N relative to N0 = 1: absolute factors."""
    code = main(["abcd", str(ROOT / "samples" / f"{arch}.nx"), "--param", param, "--opt", opt,
                 "--torch-recipe", "--width", str(WIDTH), "--base-width", "1", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    doc: dict[str, Any] = json.loads(out.out)
    return doc


class Net(torch.nn.Module):
    """f(ξ) = m_out·Σ_α v_α relu(z_L)_α, z_0 = m_U·U ξ, z_{l+1} = [z_l +] m_W·W_l relu(z_l)."""

    def __init__(self, prog: Program, rec: dict[str, Any], seed: int, resnet: bool) -> None:
        super().__init__()
        drawn = draw_parameters(prog, WIDTH, seed)
        names = {p.name: p.names for p in prog.params}
        rows = rec["parameters"]

        def stored(group: str, unit: float) -> list[Any]:
            std = rows[group]["init_std_at_width"]
            return [torch.tensor(drawn[e] * unit * std, dtype=torch.float64) for e in names[group]]

        self.U = torch.nn.Parameter(torch.stack(stored("U", 1.0), dim=1))  # (n, d): columns U[j]
        self.W = torch.nn.ParameterList(stored("W", np.sqrt(WIDTH)))  # draws have variance 1/n
        self.v = torch.nn.Parameter(stored("v", 1.0)[0])
        self.mult = {g: rows[g]["forward_multiplier"] for g in ("U", "W", "v")}
        self.out, self.resnet = rec["output_multiplier"], resnet

    def forward(self, x: Any) -> Any:
        z = self.mult["U"] * x @ self.U.T  # (points, n)
        for w in self.W:
            h = self.mult["W"] * torch.relu(z) @ w.T
            z = z + h if self.resnet else h
        return self.out * (torch.relu(z) @ (self.mult["v"] * self.v))


def torch_optimizer(net: Net, rec: dict[str, Any], opt_text: str,
                    unscaled: frozenset[str] = frozenset()) -> Any:
    """One parameter group per tensor with the recipe's lr (and eps, weight decay); the factors
    named in ``unscaled`` ("eps", "weight_decay") left out, as a naive port would."""
    opt = parse_optimizer(opt_text)
    eta, eps = float(opt.lr), None if opt.eps is None else float(opt.eps)
    groups = []
    for name, params in (("U", [net.U]), ("W", list(net.W)), ("v", [net.v])):
        row = rec["parameters"][name]
        group: dict[str, Any] = {"params": params,
                                 "lr": eta * row["lr_multiplier"] * row["lr_factor"]}
        if opt.qclass == "adaptive":
            assert eps is not None
            group["eps"] = eps * (1.0 if "eps" in unscaled else row["adam_eps_factor"])
        if opt.weight_decay:
            group["weight_decay"] = float(opt.weight_decay) * (
                1.0 if "weight_decay" in unscaled else row["weight_decay_factor"])
        groups.append(group)
    args = dict(opt.args)
    b1, b2 = (float(args.get("beta1", 0)), float(args.get("beta2", 0)))
    makers: dict[str, Callable[[], Any]] = {
        "sgd": lambda: torch.optim.SGD(groups),
        "momentum": lambda: torch.optim.SGD(groups, momentum=float(args["beta"])),
        "adam": lambda: torch.optim.Adam(groups, betas=(b1, b2)),
        "adamw": lambda: torch.optim.AdamW(groups, betas=(b1, b2)),
        "rmsprop": lambda: torch.optim.RMSprop(groups, alpha=float(args["beta"])),
        "adagrad": lambda: torch.optim.Adagrad(groups),
    }
    return makers[opt.name]()


def torch_training(net: Net, optimizer: Any, x: np.ndarray, y: np.ndarray,
                   batches: Callable[[int], tuple[int, ...]]) -> np.ndarray:
    """f_t (T+1, points) under L = Σ_{i∈batch} (f_i − y_i)²/(2b): mse, χ = (f − y)/b (04 §4.2)."""
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y[:, 0], dtype=torch.float64)
    fs = []
    for t in range(STEPS + 1):
        f = net(xt)
        fs.append(f.detach().numpy().copy())
        if t == STEPS:
            break
        batch = list(batches(t))
        loss = 0.5 * ((f[batch] - yt[batch]) ** 2).sum() / len(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return np.stack(fs)


def compare(capsys: pytest.CaptureFixture[str], arch: str, param: str, opt: str,
            n_test: int = 0, batch: int | None = None, seed: int = 5,
            unscaled: frozenset[str] = frozenset()) -> tuple[np.ndarray, ...]:
    """(nexort's f_t, torch's f_t by the recipe, torch's f_t without the ``unscaled``
    factors)."""
    if param == "sp":
        opt = _slower(opt)
    prog = parse_file(ROOT / "samples" / f"{arch}.nx")
    rec = recipe(capsys, arch, param, opt)
    tr = build_training(prog, param, opt, "mse", STEPS, N_TRAIN, n_test, batch)
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((N_TRAIN + n_test, D)), rng.standard_normal((N_TRAIN, 1))
    want = train(tr, x, y, WIDTH, seeds=(seed,)).f[0, :, :, 0]

    def run(leave_out: frozenset[str]) -> np.ndarray:
        net = Net(prog, rec, seed, arch == "resmlp")
        return torch_training(net, torch_optimizer(net, rec, opt, leave_out), x, y,
                              tr.schedule.batch)

    return (want, run(frozenset())) + ((run(unscaled),) if unscaled else ())


def _slower(opt: str) -> str:
    return re.sub(r"lr=([0-9.e-]+)", lambda m: f"lr={float(m.group(1)) / 20:g}", opt)


def assert_same(want: np.ndarray, got: np.ndarray) -> None:
    assert np.abs(want[-1] - want[0]).max() > 1e-6  # training moved f: the test has teeth
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("param", ["mup", "ntp", "sp"])
@pytest.mark.parametrize("arch", ["mlp2", "resmlp"])
def test_recipe_in_torch_trains_like_nexort(capsys: pytest.CaptureFixture[str], arch: str,
                                            param: str, opt: str) -> None:
    want, got = compare(capsys, arch, param, opt)
    assert_same(want, got)


@pytest.mark.parametrize("opt", ["sgd(lr=0.3)", "adam(lr=0.02, eps=1e-4)"])
def test_minibatches_and_test_points(capsys: pytest.CaptureFixture[str], opt: str) -> None:
    want, got = compare(capsys, "resmlp", "mup", opt, n_test=3, batch=2)
    assert_same(want, got)


@pytest.mark.parametrize("param", ["mup", "ntp"])
def test_eps_on_the_raw_gradient_must_be_scaled(capsys: pytest.CaptureFixture[str],
                                               param: str) -> None:
    """ε acts on n^{d}·g (03 §3.1): torch's eps on g = ∂L/∂p is ε·n^{-d}; ε unscaled is another
    optimizer (the d of μP's input and output layers is 1, NTP's hidden layer 1/2)."""
    want, got, naive = compare(capsys, "mlp2", param, "adam(lr=0.02, eps=0.05)",
                               unscaled=frozenset({"eps"}))
    assert_same(want, got)
    assert np.abs(naive - want).max() > 1e-4


@pytest.mark.parametrize("arch", ["mlp2", "resmlp"])
def test_weight_decay_must_be_scaled(capsys: pytest.CaptureFixture[str], arch: str) -> None:
    """Decoupled decay is width independent per step (04 §4.1), torch's is lr·weight_decay: under
    μP + AdamW the hidden matrices' weight_decay is λ·n^{c} = λ·n; λ unscaled barely decays them."""
    want, got, naive = compare(capsys, arch, "mup", "adamw(lr=0.02, eps=1e-3, wd=0.5)",
                               unscaled=frozenset({"weight_decay"}))
    assert_same(want, got)
    assert np.abs(naive - want).max() > 1e-4


def test_recipe_text_gives_the_weight_decay(capsys: pytest.CaptureFixture[str]) -> None:
    """The printed recipe names each group's weight_decay factor 1/(lr factor): μP + AdamW at
    N = 4·N0 has c = 1 for the hidden matrix (× 4) and c = 0 for the input and output layers."""
    code = main(["abcd", str(ROOT / "samples" / "mlp2.nx"), "--param", "mup", "--opt",
                 "adamw(lr=0.02, wd=0.1)", "--torch-recipe", "--width", "256",
                 "--base-width", "64"])
    out = capsys.readouterr().out
    assert code == 0 and "weight_decay = λ × U 1, W 4, v 1 (AdamW" in out
