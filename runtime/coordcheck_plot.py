"""The coordinate-check picture μP users know (spec 03 §3.4): RMS size against width, log-log,
one panel per step and one line per vector (seed RMS), predicted slopes dashed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.coordcheck import CoordCheck

MAX_LINES = 12
"""Lines per panel: beyond it the plot is unreadable (the JSON has every row)."""


def plot_coordcheck(result: CoordCheck, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted({r.t for r in result.rows})
    fig, axes = plt.subplots(1, len(steps), figsize=(4.0 * len(steps), 3.8), squeeze=False)
    widths = np.asarray(result.widths, dtype=np.float64)
    colors = plt.get_cmap("tab10")
    for ax, t in zip(axes[0], steps, strict=True):
        rows = [r for r in result.rows if r.t == t and np.all(r.sizes > 0)
                and not r.name.startswith("_")][:MAX_LINES]
        for i, r in enumerate(rows):
            size = np.sqrt(np.mean(np.square(r.sizes), axis=0))
            ax.loglog(widths, size, "o-", color=colors(i % 10), lw=1.2, ms=3,
                      label=f"{r.label} ({r.slope:+.2f})")
        ax.set_title(f"t = {t}", fontsize=10)
        ax.set_xlabel("width n")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("RMS size")
    fig.suptitle(f"{result.training.program.name}, {result.training.param.name}: "
                 "coordinate check", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
