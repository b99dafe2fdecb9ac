"""Start-up: whole-process seconds of ``nexort --help`` (goal < 0.3 s) and ``nexort compile
samples/mlp2.nx`` (goal < 0.6 s), against a bare ``python -c pass`` in the same run.

Run: python bench/bench_startup.py. Each is the median of 5 fresh processes (wall and the
child's CPU seconds); it also lists which heavy libraries each command imports, and the ratio to
the bare interpreter. The first compile may build the grammar cache (see compiler.frontend.syntax);
the median is over warm runs. Project modules are compiled from source in every process when
PYTHONDONTWRITEBYTECODE is set (as in the development sandbox): the last line measures compile
again with bytecode cached (a private PYTHONPYCACHEPREFIX), as an installed package runs."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sympy", "numpy", "scipy", "networkx", "matplotlib", "lark")
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "python -c 'import sympy'": ["-c", "import sympy"],  # the floor of any command using sympy
    "nexort --help": ["-m", "compiler.cli", "--help"],
    "nexort compile samples/mlp2.nx": ["-m", "compiler.cli", "compile", "samples/mlp2.nx"],
}
GOALS = {"nexort --help": 0.3, "nexort compile samples/mlp2.nx": 0.6}


def _run(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _imports(args: list[str]) -> list[str]:
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    err = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stderr
    top = {line.rsplit("|", 1)[-1].strip() for line in err.splitlines() if "|" in line}
    return [m for m in HEAVY if m in top]


def _line(name: str, args: list[str], base: float, env: dict[str, str] | None = None) -> float:
    _run(args, env)  # warm the OS file cache, the grammar cache and any bytecode cache
    runs = [_run(args, env) for _ in range(5)]
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    goal = GOALS.get(name.split(" (")[0])
    met = goal is not None and wall < goal
    verdict = "" if goal is None else f"; goal < {goal} s: {'met' if met else 'NOT met'}"
    print(f"{name:48s} {wall:.3f} s wall, {cpu:.3f} s CPU, {wall / (base or wall):.1f}x bare "
          f"python; imports {', '.join(_imports(args)) or 'none of ' + '/'.join(HEAVY)}{verdict}")
    return wall


def main() -> None:
    flag = os.environ.get("PYTHONDONTWRITEBYTECODE")
    print(f"PYTHONDONTWRITEBYTECODE={flag!r}: project bytecode "
          f"{'compiled in every process' if flag else 'cached'}")
    base = 0.0
    for name, args in COMMANDS.items():
        wall = _line(name, args, base)
        base = base or wall
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": cache}
        name = "nexort compile samples/mlp2.nx"
        _line(f"{name} (bytecode cached)", COMMANDS[name], base, env)


if __name__ == "__main__":
    main()
