"""Printing and building the total program of transformer_block (S = 16): µs per instruction
(goal ≤ 20, cold) and the whole ``nexort total`` process (goal < 3 s at B = 64).

Run: python bench/bench_print.py [--batch B] [--baseline-batch B0] [--scale-batch B2].
In one process, each against its baseline:

1. printing at B0 inputs: sympy's printer formula by formula (the printer before the shape
   memo) against the present printer; the two texts are checked to be identical;
2. printing at B inputs: cold (every memo empty: each formula walked for its shape), cold as the
   CLI runs it (texts and templates empty, the shapes the total pass handed over), and warm;
3. the total pass and its check at B inputs: every copy renamed in full (``rename_symbols``) and
   the whole program verified formula by formula (``formula_facts``), the way before the
   Copier, against the present pass (copies rebuilt from copy 1, base verified once, copies
   checked by structure); the two programs are checked to be equal;
4. the whole process ``nexort total samples/transformer_block.nx --const S=16 --batch B`` (and at
   B2, for scale): wall and CPU seconds of a child process.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import compiler.printer as printer
import compiler.shapeprint as shapeprint
import compiler.verify as verify_mod
from compiler.frontend.parse import parse_file
from compiler.ir import Program
from compiler.passes.backprop import backprop_map
from compiler.passes.gradients import verify_gradients
from compiler.passes.pipeline import run_pass
from compiler.passes.total import Total, TotalOptions, batch_size, total_map, verify_total
from compiler.passes.total_copies import Renamer, per_input
from compiler.symbols import formula_facts

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "transformer_block.nx"
T = TypeVar("T")


def _program() -> Program:
    return parse_file(SAMPLE, {"S": 16})


def total_program(batch: int) -> Total:
    program = _program()
    return run_pass(program, TotalOptions(batch_size(program, batch)))


def _clear(shapes: bool = True) -> None:
    """Empty the printer's memos (texts, templates) and, with ``shapes``, the remembered shapes
    and the verifier's facts by shape."""
    printer._plain.clear()
    printer._contracted.clear()
    shapeprint._templates.clear()
    if shapes:
        shapeprint._shapes.clear()
        verify_mod._TREE_FACTS.clear()


def _seconds(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def old_print(program: Program) -> str:
    """The baseline: every formula through sympy's printer (no memo)."""
    saved = printer.print_by_shape
    printer.print_by_shape = lambda expr, direct, shape=None: direct(expr, {})  # type: ignore[assignment]
    try:
        _clear()
        return printer.print_program(program)
    finally:
        printer.print_by_shape = saved
        _clear()


def old_total(batch: int) -> Program:
    """The baseline pass and check: each copy renamed in full, every formula's facts walked
    (the collector running, as it did), gradient maps renamed and checked."""
    program = _program()
    bp = backprop_map(program)
    base = bp.program
    renamer = Renamer(base)
    body = [ins for i in range(1, batch + 1) for ins in renamer.instructions(base.body, i)]
    copies = range(1, batch + 1)
    old = program.replace(
        name=f"{program.name}_total",
        inputs=tuple(replace(d, name=per_input(d.name, i)) for i in copies for d in program.inputs),
        body=tuple(body),
        outputs=tuple(per_input(o, i) for i in copies for o in program.outputs),
    )
    saved = verify_mod.facts_of
    verify_mod.facts_of = formula_facts  # type: ignore[assignment]
    try:
        verify_mod.verify(old)
    finally:
        verify_mod.facts_of = saved
    for i in copies:
        verify_gradients(bp.grads.renamed(partial(renamer.name, i=i)), old)
    return old


def bench_printing(b0: int, batch: int) -> None:
    small = total_program(b0).program
    n = len(small.body)
    t_old, old = _seconds(lambda: old_print(small))
    _clear()
    t_new, new = _seconds(lambda: printer.print_program(small))
    assert new == old, "the shape-memoised text differs from sympy's"
    print(f"B={b0}: {n} instructions; sympy printer {1e6 * t_old / n:.1f} µs/ins, present "
          f"{1e6 * t_new / n:.1f} µs/ins: ratio {t_new / t_old:.3f} ({t_old / t_new:.1f}x faster)")
    big = total_program(batch).program
    n = len(big.body)
    _clear(shapes=True)
    t_cold, _ = _seconds(lambda: printer.print_program(big))
    _clear(shapes=False)
    verify_total(total_program(batch))  # as the CLI: the pass's shapes, nothing printed yet
    big = total_program(batch).program
    _clear(shapes=False)
    t_cli, _ = _seconds(lambda: printer.print_program(big))
    t_warm, _ = _seconds(lambda: printer.print_program(big))
    cold = 1e6 * t_cold / n
    print(f"B={batch}: {n} instructions; present printer {cold:.1f} µs/ins cold (every memo "
          f"empty), {1e6 * t_cli / n:.1f} cold with the pass's shapes (as the CLI), "
          f"{1e6 * t_warm / n:.1f} warm; goal ≤ 20 cold: {'met' if cold <= 20 else 'NOT met'}")


def bench_pass(batch: int) -> None:
    program = _program()
    total_map(program, 1)  # backprop remembered, as in both measurements below
    _clear()
    t_old, old = _seconds(lambda: old_total(batch))
    _clear()
    def present() -> Program:
        result = total_map(program, batch)
        verify_total(result)
        return result.program

    t_new, new = _seconds(present)
    assert new == old, "the copies differ from the full renaming"
    print(f"B={batch}: total pass + check: full renaming + formula-by-formula verifier "
          f"{t_old:.2f} s, present {t_new:.2f} s: ratio {t_new / t_old:.3f} "
          f"({t_old / t_new:.1f}x faster)")


def whole_process(batch: int) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "compiler.cli", "total", str(SAMPLE.relative_to(ROOT)),
           "--const", "S=16", "--batch", str(batch)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--baseline-batch", type=int, default=8)
    ap.add_argument("--scale-batch", type=int, default=32)
    args = ap.parse_args()
    bench_printing(args.baseline_batch, args.batch)
    bench_pass(args.batch)
    for b in (args.scale_batch, args.batch):
        wall, cpu = whole_process(b)
        goal = f" (goal < 3 s: {'met' if wall < 3 else 'NOT met'})" if b == args.batch else ""
        print(f"whole process `nexort total transformer_block --const S=16 --batch {b}`: "
              f"{wall:.2f} s wall, {cpu:.2f} s CPU{goal}")


if __name__ == "__main__":
    main()
