"""Pictures of runs: coordinate histograms of a program's vectors at finite width.

In a Tensor Program every vector's coordinates look iid, distributed like its ket (spec 01 §1.4);
a histogram per vector is the most direct picture of that. Named vectors (not compiler
temporaries ``_k``) are shown, with a Gaussian of the same mean and variance for comparison.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from runtime.executor import Execution

_TEMP = re.compile(r"^_\d+$")


def _histogram(ax: object, name: str, x: np.ndarray) -> None:
    """Density of the coordinates; an atom at 0 (relu, step) is reported, not drawn as a spike."""
    zero = float(np.mean(x == 0))
    rest = x[x != 0] if zero > 0.01 else x
    mu, sd = float(x.mean()), float(x.std())
    if rest.size:
        weights = np.full(rest.size, (1 - zero) if zero > 0.01 else 1.0)
        ax.hist(rest, bins=60, density=True, weights=weights, color="#4878a8", alpha=0.8)
    if sd > 0 and zero <= 0.01:
        grid = np.linspace(x.min(), x.max(), 200)
        pdf = np.exp(-0.5 * ((grid - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        ax.plot(grid, pdf, "k--", lw=1)
    atom = f", P(=0) {zero:.2f}" if zero > 0.01 else ""
    ax.set_title(f"{name}: mean {mu:.3g}, sd {sd:.3g}{atom}", fontsize=9)
    ax.tick_params(labelsize=7)


def plot_coordinates(ex: Execution, path: str | Path, column: int = 0, limit: int = 8) -> Path:
    """Histogram the coordinates of up to ``limit`` named vectors for input ``column`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = ex.program.kinds
    names = [i.out for i in ex.program.body if kinds[i.out] == "vector" and not _TEMP.match(i.out)]
    names = names[-limit:]
    cols = min(4, len(names)) or 1
    rows = -(-len(names) // cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        v = ex[name]
        _histogram(ax, name, v[:, min(column, v.shape[1] - 1)])
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(
        f"{ex.program.name}: coordinates of each vector at width n = {ex.width} (input {column})"
        "\ndashed: Gaussian with the same mean and variance (vectors without an atom at 0)",
        fontsize=10,
    )
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
