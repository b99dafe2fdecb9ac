"""Executor on mlp3's forward pass at n = 4096 with 64 inputs, against a hand-written numpy
forward pass run in the same process on the same parameters (goal: ratio ≤ 2).

Run: python bench/bench_executor.py. Parameter drawing is excluded from both timings (the
executor is given the drawn parameters), so the ratio measures interpretation overhead."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median_seconds
from compiler.frontend.parse import parse_file
from runtime.executor import execute
from runtime.params import draw_parameters

ROOT = Path(__file__).resolve().parent.parent
N, B = 4096, 64


def main() -> None:
    program = parse_file(ROOT / "samples" / "mlp3.nx")
    params = draw_parameters(program, N, seed=0)
    x = np.random.default_rng(0).standard_normal((B, 10)) / np.sqrt(10)
    u = np.stack([params[f"U[{j}]"] for j in range(10)], axis=1)

    def by_hand() -> np.ndarray:
        x1 = np.maximum(u @ x.T, 0)
        x2 = np.maximum(params["W2"] @ x1, 0)
        x3 = np.maximum(params["W3"] @ x2, 0)
        return params["v"][:, None] * x3

    def by_executor() -> np.ndarray:
        return execute(program, N, inputs=x, params=params)["out"]

    assert np.allclose(by_hand(), by_executor(), rtol=1e-12, atol=1e-12)
    hand, ours = median_seconds(by_hand), median_seconds(by_executor)
    print(
        f"mlp3 forward, n = {N}, B = {B}: numpy by hand {hand * 1e3:.1f} ms, "
        f"executor {ours * 1e3:.1f} ms, ratio {ours / hand:.2f} (goal ≤ 2)"
    )


if __name__ == "__main__":
    main()
