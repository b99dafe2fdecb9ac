"""Pictures of runs: coordinate histograms of a program's vectors at finite width.

In a Tensor Program every vector's coordinates look iid, distributed like its ket (spec 01 §1.4);
a histogram per vector is the most direct picture of that. Named vectors (not compiler
temporaries ``_k``) are shown, with a Gaussian of the same mean and variance for comparison.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runtime.executor import Execution

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_TEMP = re.compile(r"^_\d+$")


def _histogram(ax: Axes, name: str, x: np.ndarray) -> None:
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


def plot_master_theorem(
    arch: str,
    limits: dict[str, list[float]],
    compare: dict[str, dict[str, dict[str, list[float]]]],
    path: str | Path,
) -> Path:
    """The Master Theorem, visible (spec 01 §1.5): |seed-averaged finite-width scalar − its ket
    limit| against n on log-log axes — one faint point per (scalar, input), their root mean
    square in bold (it falls like n^{-1/2}: bias and seed noise both do), and the n^{-1/2} rate
    through the first RMS for reference (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = sorted(int(n) for n in compare)
    pairs = [(k, i) for k in limits for i in range(len(limits[k])) if k in compare[str(widths[0])]]
    gaps = np.array(
        [[abs(compare[str(n)][k]["mean"][i] - limits[k][i]) for n in widths] for k, i in pairs]
    ).reshape(len(pairs), len(widths))
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    floor = max(float(gaps.max()) * 1e-4, 1e-12) if gaps.size else 1e-12
    for row in gaps:
        ax.plot(widths, np.maximum(row, floor), "o", color="#4878a8", alpha=0.3, ms=3)
    if gaps.size:
        rms = np.sqrt(np.mean(gaps**2, axis=0))
        ax.plot(widths, rms, "o-", color="#b03a2e", lw=2, label=f"RMS over {len(pairs)} scalars")
        ref = rms[0] * (np.array(widths) / widths[0]) ** -0.5
        ax.plot(widths, ref, "k--", lw=1, label="∝ n^(-1/2)")
        ax.legend(fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width n")
    ax.set_ylabel("|seed-averaged finite-width value − limit|")
    ax.set_title(f"{arch}: finite-width scalars approach their infinite-width limits", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
