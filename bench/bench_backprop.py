"""Backprop + total program of transformer_block over 16 tokens for B inputs (goal < 2 s at B = 32).

Run: python bench/bench_backprop.py [--repeats R]. Every measurement runs in a fresh process
(sympy caches constructed expressions and nexort caches derivatives, so a second build in one
process is not what a user of ``nexort total`` waits for) and reports the median of R runs, wall
clock and CPU time (CPU time is steadier on a shared machine): the backprop build alone, the
total build (backprop included), the printing of the total program, and its size in
instructions and formula nodes. Then the growth in B: the log-log exponent of the size
(1 = linear), a least-squares line a + b·B through the CPU times, and the log-log exponent of
the B-dependent part."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BATCHES = (1, 2, 4, 8, 16, 32)
ONE_RUN = """
import json, time, sympy
from compiler.frontend.parse import parse_file
from compiler.passes.backprop import backprop_map
from compiler.passes.total import total_map
from compiler.printer import print_program
program = parse_file('samples/transformer_block.nx', consts={{'S': 16}})
wall, cpu = time.perf_counter(), time.process_time()
result = backprop_map(program) if {batch} == 0 else total_map(program, {batch})
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
printed = time.process_time()
text = print_program(result.program)
printed = time.process_time() - printed
nodes = sum(sum(1 for _ in sympy.preorder_traversal(i.formula))
            for i in result.program.body if hasattr(i, 'formula'))
print(json.dumps({{"forward": len(program.body), "wall": wall, "cpu": cpu, "print": printed,
                  "size": len(result.program.body), "nodes": nodes}}))
"""


def measure(batch: int, repeats: int) -> dict[str, float]:
    """Medians over fresh processes; batch 0 builds the backprop program alone."""
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", ONE_RUN.format(batch=batch)],
                             capture_output=True, text=True, check=True, cwd=ROOT).stdout
        runs.append(json.loads(out))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def slope(x: list[float], y: list[float]) -> float:
    """Least-squares exponent p of y ∝ x^p."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bp = measure(0, args.repeats)
    rows = {b: measure(b, args.repeats) for b in BATCHES}
    print(f"transformer_block S=16: forward {bp['forward']:.0f} instructions; backprop program "
          f"{bp['size']:.0f} instructions built in {bp['wall']:.3f} s wall, {bp['cpu']:.3f} s CPU "
          f"(medians of {args.repeats} fresh processes)")
    print("    B   backprop+total: wall s   CPU s   instructions   formula nodes   CPU/instr"
          "   print CPU s")
    for b, r in rows.items():
        print(f"  {b:3d}   {r['wall']:22.3f}   {r['cpu']:5.3f}   {r['size']:12.0f}   "
              f"{r['nodes']:13.0f}   {1e6 * r['cpu'] / r['size']:6.1f} µs   {r['print']:11.3f}")
    bs = list(rows)
    sizes = [rows[b]["size"] for b in bs]
    cpu = [rows[b]["cpu"] for b in bs]
    per_input, fixed = np.polyfit(bs, cpu, 1)
    big = [b for b in bs if b >= 8]
    print(f"size ∝ B^{slope(bs, sizes):.3f}; CPU time ≈ {fixed:.3f} s + {1e3 * per_input:.1f} ms·B "
          f"(least squares; the fixed part is the backprop build); exponent of the B-dependent "
          f"part over B = 8…32: {slope(big, [rows[b]['cpu'] - fixed for b in big]):.3f}, of the "
          f"whole CPU time there: {slope(big, [rows[b]['cpu'] for b in big]):.3f}")
    r32 = rows[32]
    print(f"B = 32: backprop + total in {r32['wall']:.3f} s wall ({r32['cpu']:.3f} s CPU) for "
          f"{r32['size']:.0f} instructions; goal < 2 s: {'met' if r32['wall'] < 2 else 'NOT met'}"
          f"; 16 → 32 inputs: {r32['cpu'] / rows[16]['cpu']:.2f}x CPU time, "
          f"{r32['size'] / rows[16]['size']:.2f}x instructions")
    printed = [rows[b]["print"] for b in bs]
    print(f"printing the total program (what `nexort total` adds): {r32['print']:.3f} s CPU at "
          f"B = 32, ∝ B^{slope(big, [rows[b]['print'] for b in big]):.3f} over B = 8…32 "
          f"(all B: {slope(bs, printed):.3f})")


if __name__ == "__main__":
    main()
