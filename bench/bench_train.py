"""Training mlp2 under μP with Adam at n = 4096, B = 16, T = 10, against a hand-written numpy
trainer of the same network in the same process (goal: ratio ≤ 1.2) and, when torch is
importable, against PyTorch on CPU in float64 (``torch.optim.Adam``, one parameter group per tensor
with the recipe's lr = η·n^{-C} and eps = ε·n^{-D} on the raw gradients, 03 §3.1); then the
trainer's time against T (goal: linear) and against n (goal: n², once the n×n work dominates),
each with its fitted log-log exponent.

Run: python bench/bench_train.py [--quick]. All sides draw the same parameters
(``draw_parameters``) inside the timing and agree to 1e-10.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median_seconds
from compiler.frontend.parse import parse_file
from compiler.train.setup import Training, build_training
from runtime.params import draw_parameters
from runtime.trainer import train

ROOT = Path(__file__).resolve().parent.parent
OPT = "adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)"
B1, B2, EPS, LR = 0.9, 0.999, 1e-8, 0.01


def by_hand(tr: Training, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """mlp2 under μP (U: n^0 init, W: n^{-1/2}·N(0,1)… as drawn, v: N(0,1); f = n^{-1} v·x2;
    Q inputs n^{D}∂L/∂P with D = 1, rates n^{-C}: C = 0, 1, 0) with Adam, written out."""
    p = draw_parameters(tr.program, n, 0)
    u = np.stack([p[f"U[{j}]"] for j in range(10)], axis=1)
    w, v = p["W"], p["v"]
    state = {k: [np.zeros_like(a), np.zeros_like(a)] for k, a in (("u", u), ("w", w), ("v", v))}
    fs = []
    for t in range(tr.steps + 1):
        h1 = u @ x.T
        x1 = np.maximum(h1, 0)
        h2 = w @ x1
        x2 = np.maximum(h2, 0)
        f = v @ x2 / n
        fs.append(f)
        if t == tr.steps:
            break
        chi = (f - y) / len(f)
        dh2 = (v[:, None] * (h2 > 0)) * chi / n  # ∂(Σ χ f)/∂h2, per point
        grads = {"v": x2 @ chi, "w": n * (dh2 @ x1.T), "u": n * (((h1 > 0) * (w.T @ dh2)) @ x)}
        for key, param, rate in (("u", u, LR), ("w", w, LR / n), ("v", v, LR)):
            g, (m, s) = grads[key], state[key]
            m *= B1
            m += (1 - B1) * g
            s *= B2
            s += (1 - B2) * g * g
            param -= rate * (m / (1 - B1 ** (t + 1))) / (np.sqrt(s / (1 - B2 ** (t + 1))) + EPS)
    return np.array(fs)


def by_torch(tr: Training, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """The same network and Adam in PyTorch (float64, autograd): loss ½·mean (f − y)², so its
    χ is (f − y)/B; raw gradients are n^{-D} = n^{-1} times the Q inputs of :func:`by_hand`,
    hence eps = ε/n; rates η·n^{-C}: C = 0 (U, v), 1 (W)."""
    import torch

    p = draw_parameters(tr.program, n, 0)
    u = torch.tensor(np.stack([p[f"U[{j}]"] for j in range(10)], axis=1), requires_grad=True)
    w = torch.tensor(p["W"], requires_grad=True)
    v = torch.tensor(p["v"], requires_grad=True)
    xt, yt = torch.tensor(x), torch.tensor(y)
    opt = torch.optim.Adam([{"params": [u], "lr": LR}, {"params": [w], "lr": LR / n},
                            {"params": [v], "lr": LR}], betas=(B1, B2), eps=EPS / n)
    fs = []
    for t in range(tr.steps + 1):
        f = torch.relu(w @ torch.relu(u @ xt.T)).T @ v / n
        fs.append(f.detach().numpy().copy())
        if t == tr.steps:
            break
        opt.zero_grad()
        (0.5 * torch.mean((f - yt) ** 2)).backward()
        opt.step()
    return np.array(fs)


def exponent(xs: list[int], times: list[float]) -> float:
    """The least-squares slope of log time against log x."""
    return float(np.polyfit(np.log(xs), np.log(times), 1)[0])


def torch_line(tr: Training, x: np.ndarray, y: np.ndarray, n: int, ours: float,
               repeats: int) -> str:
    try:
        import torch
    except ImportError:
        return "PyTorch: not importable, no comparison"
    np.testing.assert_allclose(by_torch(tr, x, y, n), by_hand(tr, x, y, n), rtol=0, atol=1e-10)
    theirs = median_seconds(lambda: by_torch(tr, x, y, n), repeats)
    return (f"PyTorch {torch.__version__} CPU float64 ({torch.get_num_threads()} threads) "
            f"{theirs:.2f} s, ratio trainer/torch {ours / theirs:.2f}")


def main(quick: bool = False) -> None:
    program = parse_file(ROOT / "samples" / "mlp2.nx")
    rng = np.random.default_rng(0)
    n, batch, steps = (1024, 16, 4) if quick else (4096, 16, 10)
    x = rng.standard_normal((batch, 10)) / np.sqrt(10)
    y = np.tanh(x.sum(axis=1))
    tr = build_training(program, "mup", OPT, "mse", steps, batch)
    ours_f = train(tr, x, y[:, None], n).f[0, :, :, 0]
    np.testing.assert_allclose(ours_f, by_hand(tr, x, y, n), rtol=0, atol=1e-10)
    repeats = 1 if quick else 3
    hand = median_seconds(lambda: by_hand(tr, x, y, n), repeats)
    ours = median_seconds(lambda: train(tr, x, y[:, None], n), repeats)
    print(f"mlp2 μP Adam, n = {n}, B = {batch}, T = {steps}: numpy by hand {hand:.2f} s, "
          f"trainer {ours:.2f} s, ratio {ours / hand:.2f} (goal ≤ 1.2)")
    print(torch_line(tr, x, y, n, ours, repeats))
    base_n = n // 2
    times = []
    t_list = [steps // 2, steps, 2 * steps]
    for t_steps in t_list:
        tr_t = build_training(program, "mup", OPT, "mse", t_steps, batch)
        times.append(median_seconds(lambda tr_t=tr_t: train(tr_t, x, y[:, None], base_n), 1))
    print(f"against T at n = {base_n}: T = {steps // 2}, {steps}, {2 * steps}: "
          + ", ".join(f"{s:.2f} s" for s in times)
          + f"; ratios {times[1] / times[0]:.2f}, {times[2] / times[1]:.2f} (goal 2, linear); "
          f"fitted exponent {exponent(t_list, times):.2f} (goal 1)")
    times = []
    n_list = [n // 4, n // 2, n]
    for width in n_list:
        times.append(median_seconds(lambda width=width: train(tr, x, y[:, None], width), 1))
    print(f"against n at T = {steps}: n = {n // 4}, {n // 2}, {n}: "
          + ", ".join(f"{s:.2f} s" for s in times)
          + f"; ratios {times[1] / times[0]:.2f}, {times[2] / times[1]:.2f} (goal 4, n²); "
          f"fitted exponent {exponent(n_list, times):.2f} (goal 2)")


if __name__ == "__main__":
    main("--quick" in sys.argv)
