"""Finite width against the limit (spec 01 §1.5, the Master Theorem made visible).

``compare_widths`` runs a program at several widths n with K seeds each and gives every scalar's
seed mean and its standard error s.d./√K per input; beside a limit's values these show the gap
shrinking with n.  Seeds are distinct per width (seed s's streams at two widths share their first
coordinates, which would correlate the widths).  Random scalar parameters take the values the
limit was conditioned on (``given``, e.g. ``LimitResult.given``), so both sides compute the same
conditional quantity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from compiler.errors import UsageError
from compiler.ir import Program


@dataclass(frozen=True)
class SeedAverage:
    """One scalar at one width: (B,) seed mean and its standard error."""

    mean: np.ndarray
    stderr: np.ndarray


@dataclass(frozen=True)
class WidthComparison:
    """width → scalar name → its seed average, over ``seeds`` seeds per width."""

    seeds: int
    widths: dict[int, dict[str, SeedAverage]]

    def only(self, names: Iterable[str]) -> WidthComparison:
        keep = set(names)
        return WidthComparison(
            self.seeds,
            {n: {k: v for k, v in d.items() if k in keep} for n, d in self.widths.items()},
        )

    def as_json(self) -> dict[str, dict[str, dict[str, list[float]]]]:
        """str(width) → name → {"mean": […], "stderr": […]} (also what the plot reads)."""
        return {
            str(n): {
                k: {"mean": v.mean.tolist(), "stderr": v.stderr.tolist()} for k, v in d.items()
            }
            for n, d in self.widths.items()
        }


def compare_widths(
    program: Program,
    inputs: object,
    widths: Sequence[int],
    seeds: int,
    given: Mapping[str, float] | None = None,
) -> WidthComparison:
    """Seed averages of every scalar of ``program`` (inputs excluded) at each width."""
    from runtime.executor import execute
    from runtime.params import draw_parameters

    if seeds < 2:
        raise UsageError(f"a finite-width comparison needs at least 2 seeds per width, got {seeds}")
    if not widths or min(widths) < 2:
        raise UsageError("a finite-width comparison needs widths of at least 2")
    names = [n for n, k in program.kinds.items() if k == "scalar" and n not in program.input_names]
    out: dict[int, dict[str, SeedAverage]] = {}
    for w, n in enumerate(widths):
        vals: dict[str, list[np.ndarray]] = {k: [] for k in names}
        for s in range(w * seeds, (w + 1) * seeds):
            params = draw_parameters(program, n, s)
            for k, v in (given or {}).items():
                params[k] = np.array(v)
            ex = execute(program, n, s, inputs, params=params)
            for k in names:
                vals[k].append(np.broadcast_to(ex[k], (ex.batch,)))
        out[n] = {
            k: SeedAverage(np.mean(v, axis=0), np.std(v, axis=0, ddof=1) / np.sqrt(len(v)))
            for k, v in vals.items()
        }
    return WidthComparison(seeds, out)
