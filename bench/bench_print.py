"""Printing the total program of transformer_block (S = 16): µs per instruction, goal ≤ 20.

Run: python bench/bench_print.py [--batch B] [--baseline-batch B0]. In one process: the total
program for B0 inputs printed by sympy's printer formula by formula (the printer before the shape
memo, compiler/shapeprint.py: the baseline) and by the present printer, their ratio, then the
present printer alone at B inputs (cold memos, then warm), and the whole ``nexort total … --batch
B`` process (goal < 3 s; it also builds and verifies the program, which this bench does not
separate). The two texts are checked to be identical."""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import compiler.printer as printer
import compiler.shapeprint as shapeprint
from compiler.frontend.parse import parse_file
from compiler.ir import Program
from compiler.passes.pipeline import run_pass
from compiler.passes.total import TotalOptions, batch_size

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "transformer_block.nx"


def total_program(batch: int) -> Program:
    program = parse_file(SAMPLE, {"S": 16})
    return run_pass(program, TotalOptions(batch_size(program, batch))).program


def _cold() -> None:
    printer._plain.clear()
    printer._contracted.clear()
    shapeprint._templates.clear()


def _seconds(fn: object) -> tuple[float, str]:
    start = time.process_time()
    text = fn()  # type: ignore[operator]
    return time.process_time() - start, text


def old_print(program: Program) -> str:
    """The baseline: every formula through sympy's printer (no memo)."""
    saved = printer.print_by_shape
    printer.print_by_shape = lambda expr, direct, shape=None: direct(expr, {})  # type: ignore[assignment]
    try:
        _cold()
        return printer.print_program(program)
    finally:
        printer.print_by_shape = saved
        _cold()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--baseline-batch", type=int, default=8)
    args = ap.parse_args()

    small = total_program(args.baseline_batch)
    n = len(small.body)
    t_old, old = _seconds(lambda: old_print(small))
    _cold()
    t_new, new = _seconds(lambda: printer.print_program(small))
    assert new == old, "the shape-memoised text differs from sympy's"
    print(f"B={args.baseline_batch}: {n} instructions; sympy printer {1e6 * t_old / n:.1f} µs/ins, "
          f"present {1e6 * t_new / n:.1f} µs/ins: ratio {t_new / t_old:.3f} "
          f"({t_old / t_new:.1f}x faster)")

    big = total_program(args.batch)
    n = len(big.body)
    _cold()
    t_cold, _ = _seconds(lambda: printer.print_program(big))
    t_warm, _ = _seconds(lambda: printer.print_program(big))
    print(f"B={args.batch}: {n} instructions; present printer {1e6 * t_cold / n:.1f} µs/ins cold, "
          f"{1e6 * t_warm / n:.1f} µs/ins warm; goal ≤ 20: "
          f"{'met' if 1e6 * t_cold / n <= 20 else 'NOT met'}")

    cmd = [sys.executable, "-m", "compiler.cli", "total", str(SAMPLE.relative_to(ROOT)),
           "--const", "S=16", "--batch", str(args.batch)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"whole process `nexort total transformer_block --const S=16 --batch {args.batch}`: "
          f"{wall:.2f} s wall, {cpu:.2f} s CPU (goal < 3 s: {'met' if wall < 3 else 'NOT met'})")


if __name__ == "__main__":
    main()
