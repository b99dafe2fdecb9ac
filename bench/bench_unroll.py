"""``nexort unroll`` of transformer_block (S = 4 tokens) for B = 4 points, T = 10 steps of μP Adam.

Run: python bench/bench_unroll.py [--repeats R] [--steps T]. Each measurement runs in a fresh
process (sympy and nexort cache expressions, so a second build in one process is not what a user
waits for) and reports medians of wall and CPU time for: the unroll pass (training record,
backprop, the T steps; the pipeline's verification included), printing, and the whole CLI
command; then the program's size in instructions and formula nodes. The growth in T is the
log-log exponent of the size over T = 1, 2, 5, 10 (the spec expects O(T²) for a memoryful Q,
whose ψ reads the whole gradient history).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ONE_RUN = """
import json, time, sympy
from compiler.frontend.parse import parse_file
from compiler.passes.pipeline import run_pass
from compiler.passes.unroll import UnrollOptions
from compiler.printer import print_program
program = parse_file('samples/transformer_block.nx', consts={{'S': 4}})
options = UnrollOptions('mup', 'adam', 'mse', {steps}, 4)
wall, cpu = time.perf_counter(), time.process_time()
result = run_pass(program, options)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
printed = time.process_time()
text = print_program(result.program) if {print} else ""
printed = time.process_time() - printed
nodes = sum(sum(1 for _ in sympy.preorder_traversal(i.formula))
            for i in result.program.body if hasattr(i, 'formula'))
print(json.dumps({{"wall": wall, "cpu": cpu, "print": printed, "chars": len(text),
                  "size": len(result.program.body), "nodes": nodes}}))
"""
CLI = ["-m", "compiler.cli", "unroll", "samples/transformer_block.nx", "--const", "S=4",
       "--param", "mup", "--opt", "adam", "--batch", "4"]


def measure(steps: int, repeats: int, printing: bool = True) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", ONE_RUN.format(steps=steps, print=printing)],
                             capture_output=True, text=True, check=True, cwd=ROOT).stdout
        runs.append(json.loads(out))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def cli_seconds(steps: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = _now()
        subprocess.run([sys.executable, *CLI, "--steps", str(steps)], capture_output=True,
                       check=True, cwd=ROOT)
        times.append(_now() - start)
    return statistics.median(times)


def _now() -> float:
    import time

    return time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    m = measure(args.steps, args.repeats)
    print(f"transformer_block S=4, B=4, T={args.steps}, mup + adam: {m['size']:.0f} instructions,"
          f" {m['nodes']:.0f} formula nodes, {m['chars'] / 1e6:.2f} MB printed")
    print(f"  unroll pass {m['wall']:.2f} s wall ({m['cpu']:.2f} s CPU); print {m['print']:.2f} s")
    ts = [t for t in (1, 2, 5, 10) if t <= args.steps]
    sizes = [measure(t, 1, printing=False) for t in ts]
    for what in ("size", "nodes", "cpu"):
        p = float(np.polyfit(np.log(ts), np.log([s[what] for s in sizes]), 1)[0])
        print(f"  growth in T of {what}: T^{p:.2f} over T = {ts} "
              f"({', '.join(f'{s[what]:.3g}' for s in sizes)})")
    print(f"  nexort unroll (whole command, fresh process): {cli_seconds(args.steps, 1):.2f} s")


if __name__ == "__main__":
    main()
