"""Start-up: whole-process seconds of ``nexort --help`` (goal < 0.3 s) and ``nexort compile
samples/mlp2.nx`` (goal < 0.6 s), against a bare ``python -c pass`` in the same run.

Run: python bench/bench_startup.py. Each is the median of 5 fresh processes (wall and the
child's CPU seconds); it also lists which heavy libraries each command imports, and the ratio to
the bare interpreter. The first compile may build the grammar cache (see compiler.frontend.syntax);
the median is over warm runs."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sympy", "numpy", "scipy", "networkx", "matplotlib", "lark")
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "nexort --help": ["-m", "compiler.cli", "--help"],
    "nexort compile samples/mlp2.nx": ["-m", "compiler.cli", "compile", "samples/mlp2.nx"],
}
GOALS = {"nexort --help": 0.3, "nexort compile samples/mlp2.nx": 0.6}


def _run(args: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _imports(args: list[str]) -> list[str]:
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    err = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stderr
    top = {line.rsplit("|", 1)[-1].strip() for line in err.splitlines() if "|" in line}
    return [m for m in HEAVY if m in top]


def main() -> None:
    base = None
    for name, args in COMMANDS.items():
        _run(args)  # warm the OS file cache and the grammar cache
        runs = [_run(args) for _ in range(5)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        base = base or wall
        goal = GOALS.get(name)
        met = goal is not None and wall < goal
        verdict = "" if goal is None else f"; goal < {goal} s: {'met' if met else 'NOT met'}"
        print(f"{name:34s} {wall:.3f} s wall, {cpu:.3f} s CPU, {wall / base:.1f}x bare python; "
              f"imports {', '.join(_imports(args)) or 'none of ' + '/'.join(HEAVY)}{verdict}")


if __name__ == "__main__":
    main()
