"""The picture of ``nexort converge`` (the paper's Figs. 5.1/5.2 for any architecture file).

Left panels: f_t of a few points (test points first: the paper's), each finite width as its
seed mean with a ±1 sd band over seeds (colour: width, light to dark), the limit as a black line
with a ±2 s.e. band.  Right panel: the distance D_n (:mod:`runtime.converge`) against n, log-log,
with ±2 s.e. bars and the n^{-1/2} guide through the narrowest width: parallel means the
predicted rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from runtime.converge import Convergence

SHOWN_POINTS = 3


def shown_points(labels: tuple[str, ...], k: int = SHOWN_POINTS) -> list[int]:
    """Up to ``k`` point indices, test points first."""
    test = [i for i, label in enumerate(labels) if label.startswith("test")]
    train = [i for i, label in enumerate(labels) if not label.startswith("test")]
    return (test + train)[:k]


def plot_convergence(result: Convergence, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = result.training.schedule.points()
    points = shown_points(labels)
    fig, axes = plt.subplots(1, len(points) + 1, figsize=(3.6 * (len(points) + 1), 3.8),
                             squeeze=False)
    for ax, i in zip(axes[0], points, strict=False):
        _trajectories(ax, result, i, labels[i])
    axes[0][0].legend(fontsize=6)
    _distance(axes[0][-1], result)
    tr = result.training
    fig.suptitle(f"{tr.program.name}, {tr.param.name}, {tr.tensors[0].optimizer.text or ''}: "
                 f"finite widths ({len(result.seeds)} seeds) against the limit "
                 f"({result.limit.engine}, {result.limit.path})", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _trajectories(ax: Axes, result: Convergence, i: int, label: str) -> None:
    import matplotlib.pyplot as plt

    steps = np.arange(result.training.steps + 1)
    cmap = plt.get_cmap("viridis")
    for w, n in enumerate(result.widths):
        f = result.finite[w, :, :, i, 0]  # (K, T+1); the first output
        c = cmap(0.85 - 0.75 * w / max(1, len(result.widths) - 1))
        mean, sd = f.mean(axis=0), f.std(axis=0, ddof=1)
        ax.plot(steps, mean, color=c, lw=1, label=f"n = {n}")
        ax.fill_between(steps, mean - sd, mean + sd, color=c, alpha=0.2)
    lim, se = result.limit.f[:, i, 0], np.nan_to_num(result.limit.stderr[:, i, 0])
    ax.plot(steps, lim, "k-", lw=2, label="limit")
    ax.fill_between(steps, lim - 2 * se, lim + 2 * se, color="k", alpha=0.25)
    ax.set_title(label, fontsize=9)
    ax.set_xlabel("step t")
    ax.set_ylabel("f̃_t (centred)" if result.training.center else "f_t")


def _distance(ax: Axes, result: Convergence) -> None:
    n = np.asarray(result.widths, dtype=np.float64)
    d = np.array([x.distance for x in result.distances])
    se = np.array([x.stderr for x in result.distances])
    ok = d > 0
    # a log axis cannot reach 0: a lower bar longer than 3D/4 is cut at D/4
    lower = np.minimum(2 * se[ok], 0.75 * d[ok])
    ax.errorbar(n[ok], d[ok], yerr=(lower, 2 * se[ok]), fmt="o-",
                color="#b03a2e", capsize=3, label=f"slope {result.slope:+.2f} "
                                                  f"± {result.slope_stderr:.2f}")
    if ok.any():
        first = int(np.argmax(ok))
        ax.plot(n, d[first] * (n / n[first]) ** -0.5, "k--", lw=1, label="∝ n^(-1/2)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width n")
    ax.set_ylabel("RMS |seed mean − limit|")
    ax.set_title("distance to the limit (±2 s.e.)", fontsize=9)
    ax.legend(fontsize=7)
