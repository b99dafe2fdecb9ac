"""Pair-sum throughput against numpy matmul, in one process (issue 13 item 3; spec 01 §1.6).

Baseline: numpy (OpenBLAS) matmul of an M×M by M×64 product, in flop/s, with 1 and 2 BLAS
threads.  Pair sums: y(p) = 1/(P−1) Σ_{q≠p} ψ(X(p); X(q)) over one replica of P = M particles
(M² pairs), for

* polynomial ψ = x_a·y_b + (x_a·y_b)²   and   tanh ψ = tanh(c + u_a·x_b),

by (1) the numpy pass of runtime/limits/outer.py (blocks of pairs, one ufunc per operation,
outer.THREADS threads), (2) the numba kernel of runtime/limits/pairkernel_numba.py (generated from
the sympy formula, prange over own particles, 1 and 2 threads), (3) the separable rewrite of
runtime/limits/pairkernel.py (polynomial ψ only: window sums, O(P) instead of O(P²)).

Convention: one pair is counted as 2 flops — what a matmul spends per multiply-add on one entry
of an M×M operand — so "% of matmul" = 2·(pairs/s) / (matmul flop/s at the same thread count).
The goal of issue 13: ≥ 25 % for a polynomial ψ, ≥ 10 % for tanh.

The first-call latency of a new numba kernel (compilation, in a fresh process and cache folder)
and of a cached one (a second fresh process, same folder) is printed too.

Run: python bench/bench_pairsum.py [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sympy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median_cpu, median_seconds
from runtime.codegen import compile_formula
from runtime.limits import outer
from runtime.limits import pairkernel as pk
from runtime.limits.blas import blas_threads

ROOT = Path(__file__).resolve().parent.parent
XA, YB, C = sympy.Symbol("x"), sympy.Symbol("y_b"), sympy.Symbol("c")
POLY = XA * YB + (XA * YB) ** 2
TANH = sympy.tanh(C + XA * YB)


def matmul_flops(m: int, threads: int) -> tuple[float, float]:
    """(flop/s of wall time, flop/CPU-second) of an M×M by M×64 product."""
    a = np.random.default_rng(0).standard_normal((m, m))
    b = np.random.default_rng(1).standard_normal((m, 64))
    with blas_threads(threads):
        a @ b
        t = median_seconds(lambda: a @ b, repeats=5)
        cpu = median_cpu(lambda: a @ b, repeats=5)
    return 2 * m * m * 64 / t, 2 * m * m * 64 / cpu


def _args(m: int) -> tuple[tuple[sympy.Symbol, ...], list[outer.Arg]]:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((m, 1, 1))
    return (XA, YB, C), [
        outer.Arg(x, None, True), outer.Arg(x, 1, True),
        outer.Arg(np.full((1, 1), 0.5), None, False),
    ]


def _numba_threads(n: int) -> None:
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def paths(psi: sympy.Expr, m: int) -> dict[str, Callable[[], object]]:
    """name → a call computing the pair average of ψ over M² pairs."""
    syms, args = _args(m)
    f = compile_formula(psi, syms)
    formulas = pk.PairFormulas(syms, (psi,))
    out: dict[str, Callable[[], object]] = {
        f"numpy pass ({outer.THREADS} threads)": lambda: outer.copy_average(
            [lambda *a: f(*a, np.inf)], args, 1
        )
    }
    split = pk.split(psi, syms, pk.roles(args), 1)
    if pk.numba_enabled():
        from runtime.limits import pairkernel_numba as pkn

        rest = pk.PairFormulas(syms, (psi if not split.terms else split.rest,))
        for n in (1, 2):
            def run(n: int = n) -> object:
                _numba_threads(n)
                return pkn.copy_average(rest if split.rest != 0 else formulas, args, 1, 96, m - 1)

            out[f"numba kernel ({n} thread{'s' * (n > 1)})"] = run
    if split.terms:
        out["separable rewrite (1 thread)"] = lambda: pk.pair_average(formulas, args, 1)
    return out


def throughput(psi: sympy.Expr, m: int, base: dict[int, tuple[float, float]]) -> None:
    print(f"ψ = {psi}: M = {m} particles, {m * m:.3g} pairs per pass")
    want = None
    for name, fn in paths(psi, m).items():
        got = fn()  # warm (compiles the kernel) and check
        y = np.asarray(got[0] if isinstance(got, list) else got)
        if want is None:
            want = y
        err = float(np.max(np.abs(y - want)) / np.max(np.abs(want)))
        t = median_seconds(fn, repeats=3)
        cpu = median_cpu(fn, repeats=3)
        threads = 2 if "2 threads" in name else 1
        frac = 2 * m * m / t / base[threads][0]
        frac_cpu = 2 * m * m / cpu / base[1][1]
        print(f"  {name:<28} {t:8.4f} s {m * m / t / 1e6:9.1f} M pairs/s = {100 * frac:7.1f}% "
              f"of matmul ({threads} thr); per CPU-s {m * m / cpu / 1e6:9.1f} M pairs = "
              f"{100 * frac_cpu:7.1f}%; max rel. diff {err:.1e}")


LATENCY = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
import numpy as np, sympy
from runtime.limits import outer, pairkernel_numba as pkn
from runtime.limits.pairkernel import PairFormulas
x, y, c = sympy.symbols("x y_b c")
a = np.random.default_rng(0).standard_normal((64, 1, 1))
args = [outer.Arg(a, None, True), outer.Arg(a, 1, True), outer.Arg(np.ones((1, 1)), None, False)]
t1 = time.perf_counter()
pkn.copy_average(PairFormulas((x, y, c), ({psi},)), args, 1, 96, 63)
print(t1 - t0, time.perf_counter() - t1)
"""


def first_call_latency() -> None:
    if not pk.numba_enabled():
        print("numba not importable: no kernel latency")
        return
    psi = f"sympy.tanh(c + x * y) * y + sympy.Float({time.time_ns() % 997})"  # a new kernel
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NEXORT_CACHE": cache}
        code = LATENCY.format(root=str(ROOT), psi=psi)
        for label in ("new ψ (compiles)", "same ψ, new process (disk cache)"):
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, check=True).stdout.split()
            print(f"  numba first call, {label}: imports {float(out[0]):.2f} s, "
                  f"first call {float(out[1]):.2f} s")


def main() -> None:
    quick = "--quick" in sys.argv
    m = 2048 if quick else 8192
    base = {n: matmul_flops(4096 if not quick else 2048, n) for n in (1, 2)}
    print(f"numpy matmul (M×M by M×64): {base[1][0] / 1e9:.1f} GFLOP/s with 1 thread, "
          f"{base[2][0] / 1e9:.1f} GFLOP/s with 2 (wall); {base[1][1] / 1e9:.1f} GFLOP per "
          "CPU-second; one pair counted as 2 flops; goal ≥ 25% (polynomial), ≥ 10% (tanh)")
    throughput(POLY, m, base)
    throughput(TANH, m, base)
    first_call_latency()


if __name__ == "__main__":
    main()
