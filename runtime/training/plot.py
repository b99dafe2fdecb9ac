"""The picture of a training run: f_t per point with its band over seeds, and the loss.

Left: the seed mean of f_t(ξ) for every point (training points solid, test points dashed; one
panel column per output when k > 1 is folded into the labels) with the band between the lowest
and highest seed. Right: the loss over the training points, seed mean and band (log scale when
positive). A formula signal has no loss: its panel says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from runtime.trainer import TrainResult


def plot_training(result: TrainResult, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = result.training
    steps = np.arange(tr.steps + 1)
    fig, (ax_f, ax_l) = plt.subplots(1, 2, figsize=(10.0, 4.2))
    labels = tr.schedule.points()
    colors = plt.get_cmap("tab10")
    for i, label in enumerate(labels):
        for j in range(tr.outputs):
            f = result.f[:, :, i, j]  # (seeds, T+1)
            style = "-" if label.startswith("train") else "--"
            name = label if tr.outputs == 1 else f"{label} f{j}"
            c = colors((i * tr.outputs + j) % 10)
            ax_f.plot(steps, f.mean(axis=0), style, color=c, lw=1.2,
                      label=name if len(labels) * tr.outputs <= 12 else None)
            if f.shape[0] > 1:
                ax_f.fill_between(steps, f.min(axis=0), f.max(axis=0), color=c, alpha=0.15)
    ax_f.set_xlabel("step t")
    ax_f.set_ylabel("f̃_t(ξ) (centred)" if tr.center else "f_t(ξ)")
    ax_f.set_title(f"{tr.program.name}, {tr.param.name}, width {result.width}, "
                   f"{len(result.seeds)} seed(s)", fontsize=10)
    if len(labels) * tr.outputs <= 12:
        ax_f.legend(fontsize=7, ncol=2)
    _loss_panel(ax_l, steps, result.loss, tr.signal.name)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _loss_panel(ax: object, steps: np.ndarray, loss: np.ndarray, name: str) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    if np.isnan(loss).all():
        ax.text(0.5, 0.5, f"error signal {name}: χ only, no loss", ha="center",
                transform=ax.transAxes)
        return
    ax.plot(steps, loss.mean(axis=0), "k-", lw=1.5, label="seed mean")
    if loss.shape[0] > 1:
        ax.fill_between(steps, loss.min(axis=0), loss.max(axis=0), color="k", alpha=0.15,
                        label="seed range")
    if np.all(loss > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel(f"{name} loss (training points)")
    ax.legend(fontsize=8)
