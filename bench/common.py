"""Helpers for the benchmark scripts: repeat a function and report the median (seconds)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_cpu(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median CPU seconds of this process (all its threads): on a shared machine, where wall
    time also counts the waits for a core, the rate per CPU-second is the steadier number."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return float(statistics.median(times))
