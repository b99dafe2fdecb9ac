"""The picture of a training limit: f_t per point with its ±2 s.e. band (Monte Carlo error of
the engine; none on the exact path).  Training points solid, test points dashed, as the
picture of a finite-width run (:mod:`runtime.training.plot`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from runtime.limits.trajectory import LimitTrajectory

MAX_LEGEND = 12


def plot_limit(traj: LimitTrajectory, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = traj.training
    steps = np.arange(tr.steps + 1)
    labels = tr.schedule.points()
    many = len(labels) * tr.outputs > MAX_LEGEND
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colors = plt.get_cmap("tab10")
    for i, label in enumerate(labels):
        for j in range(tr.outputs):
            c = colors((i * tr.outputs + j) % 10)
            f, se = traj.f[:, i, j], np.nan_to_num(traj.stderr[:, i, j])
            style = "-" if label.startswith("train") else "--"
            name = label if tr.outputs == 1 else f"{label} f{j}"
            ax.plot(steps, f, style, color=c, lw=1.2, label=None if many else name)
            if np.any(se > 0):
                ax.fill_between(steps, f - 2 * se, f + 2 * se, color=c, alpha=0.2)
    ax.set_xlabel("step t")
    ax.set_ylabel("f̃_t(ξ) (centred)" if tr.center else "f_t(ξ)")
    ax.set_title(f"{tr.program.name}, {tr.param.name}: infinite-width limit "
                 f"({traj.engine}, {traj.path}); bands ±2 s.e.", fontsize=10)
    if not many:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
