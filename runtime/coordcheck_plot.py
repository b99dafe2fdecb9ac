"""The coordinate-check picture μP users know (spec 03 §3.4): RMS size against width, log-log,
one panel per step and one line per quantity (seed RMS; f_t − f_0 and Q inputs first, then
forward vectors), the fitted slope in the legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.coordcheck import CoordCheck, Row

MAX_LINES = 12
"""Lines per panel: beyond it the plot is unreadable (the JSON has every row)."""


def _priority(row: Row) -> int:
    """f and the Q inputs first, then forward vectors, then the backward pass's."""
    if row.kind in ("f", "q"):
        return 0
    return 2 if row.name.startswith("d") else 1


def plot_coordcheck(result: CoordCheck, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted({r.t for r in result.rows})
    fig, axes = plt.subplots(1, len(steps), figsize=(4.0 * len(steps), 3.8), squeeze=False)
    widths = np.asarray(result.widths, dtype=np.float64)
    colors = plt.get_cmap("tab10")
    for ax, t in zip(axes[0], steps, strict=True):
        rows = sorted((r for r in result.rows if r.t == t and np.all(r.sizes > 0)
                       and not r.name.startswith("_")), key=_priority)[:MAX_LINES]
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
