"""Limit evaluator benchmarks (01 §1.6): printed numbers, baselines measured in the same process.

1. O(M²) pair averages of an order-1 OuterNonlin, y(p) = 1/(P−1) Σ_q tanh(x_p u_q + c)·z_q:
   achieved throughput in flop/s (pair evaluations × the formula's operation count) against the
   machine's numpy matmul flop/s (an M×M by M×64 product), for several block sizes.
2. Time and peak memory (tracemalloc: numpy allocations) of the Monte Carlo limits of mlp2's
   backprop program against M = 256 … 16384, with the fitted exponents t ∝ M^a, mem ∝ M^b;
   then the same for samples/programs/outer1.nx, whose OuterNonlin makes the cost O(M²/R).
3. The Monte Carlo kets of mlp2's backprop (every gradient ket requested) against a hand-written
   numpy Monte Carlo of the same kets, same (P, R, B) layout: the interpreter's overhead (goal
   ≤ 1.3×).
4. outer1's backprop with its gradient kets requested, pair sums fused (one pass, shared tanh:
   runtime/limits/fusion.py) against one pass per OuterNonlin, and fused with the pair kernel
   (runtime/limits/pairkernel*.py), CPU seconds of one thread.  Last measured at M = 65 536 (2-core
   machine shared with other jobs): 57.0, 45.1 and 4.7 CPU-s.

Run: python bench/bench_limits.py [--quick] [--outer1]."""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import sympy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median_cpu, median_seconds
from compiler.frontend.parse import parse_text
from compiler.kets.lowering import lower
from compiler.passes.backprop import backprop
from compiler.symbols import sym
from runtime.codegen import compile_formula
from runtime.limits import outer
from runtime.limits.montecarlo import LimitOptions, evaluate

ROOT = Path(__file__).resolve().parent.parent


def matmul_flops(m: int) -> float:
    a = np.random.default_rng(0).standard_normal((m, m))
    b = np.random.default_rng(1).standard_normal((m, 64))
    t = median_seconds(lambda: a @ b, repeats=7)
    return 2 * m * m * 64 / t


def tanh_rate(elements: int) -> float:
    """np.tanh evaluations per second on cache-sized blocks, one thread: the ceiling of any
    numpy-evaluated ψ containing a tanh (per thread)."""
    a = np.random.default_rng(2).standard_normal(1 << 16)
    t = median_seconds(lambda: [np.tanh(a) for _ in range(elements >> 16)], repeats=3)
    return (elements >> 16 << 16) / t


def pair_averages(m: int, smooth: bool = True) -> None:
    x, u, z, c = sym("x"), sym("u[p]"), sym("z[p]"), sym("c")
    formula = sympy.tanh(x * u + c) * z if smooth else (x * u + c) * z
    ops = sympy.count_ops(formula) + 1  # + the sum over p
    f = compile_formula(formula, (c, u, x, z))
    kern = lambda *a: f(*a, np.inf)  # noqa: E731
    rng = np.random.default_rng(0)
    vx, vu, vz = (rng.standard_normal((m, 1, 1)) for _ in range(3))
    args = [
        outer.Arg(np.full((1, 1), 0.5), None, False),
        outer.Arg(vu, 1, True),
        outer.Arg(vx, None, True),
        outer.Arg(vz, 1, True),
    ]
    base = matmul_flops(m)
    ceiling = tanh_rate(m * m) * outer.THREADS
    print(
        f"pair averages of ψ = {formula}, M = {m} particles (one replica): {m * m:.3g} ψ "
        f"evaluations of {ops} operations, {outer.THREADS} threads; numpy matmul in this "
        f"process: {base / 1e9:.1f} GFLOP/s; np.tanh × threads: {ceiling / 1e6:.0f} M/s"
    )
    best = 0.0
    for block in (1 << 14, 1 << 16, 1 << 18, 1 << 21):
        t = median_seconds(lambda b=block: outer.copy_average([kern], args, 1, block=b), repeats=3)
        rate = m * m * ops / t
        best = max(best, rate)
        tail = f" = {100 * m * m / t / ceiling:5.1f}% of the np.tanh ceiling" if smooth else ""
        print(
            f"  block {block:>8} ψ: {t:7.3f} s  {m * m / t / 1e6:8.1f} M pairs/s  "
            f"{rate / 1e9:6.2f} GFLOP/s  = {100 * rate / base:5.1f}% of matmul" + tail
        )
    verdict = "met" if best >= 0.3 * base else "NOT met"
    print(f"  goal ≥ 30% of matmul: {verdict} (best {100 * best / base:.1f}%): ψ is elementwise "
          "numpy work, bound by memory traffic and (for tanh) by the ufunc's own rate, while "
          "matmul is compute-bound BLAS")


def scaling(ms: list[int], sample: str = "mlp2.nx", inputs: int = 4, square: bool = False) -> None:
    """Time and memory of the limits of ``sample``'s backprop program against M (``square``:
    the output o replaced by o ⊙ o, so that W and Wᵀ interact and dot coefficients are live)."""
    text = (ROOT / "samples" / sample).read_text()
    if square:
        text = text.replace("output v * h[S-1]", "output h[S-1] * h[S-1]")
    program = parse_text(text)
    kets = lower(backprop(program))
    d = len(program.input_names)
    x = np.random.default_rng(0).standard_normal((inputs, d)) / np.sqrt(d) if d else None
    times, mems = [], []
    live = sum(len(s.live_dots) for s in kets.stmts if hasattr(s, "live_dots"))
    print(f"{sample} backprop program, {inputs if x is not None else 0} inputs, {live} live dot "
          "coefficients: M, seconds, peak MiB (numpy allocations)")
    for m in ms:
        opts = LimitOptions(particles=m)
        evaluate(kets, x, opts=opts)  # warm the compiled-formula caches
        tracemalloc.start()
        start = time.perf_counter()
        evaluate(kets, x, opts=opts)
        t = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        times.append(t)
        mems.append(peak)
        print(f"  {m:>6}  {t:8.3f}  {peak / 2**20:8.1f}")
    lm = np.log(ms)
    a = np.polyfit(lm, np.log(times), 1)[0]
    b = np.polyfit(lm, np.log(mems), 1)[0]
    big = [i for i, m in enumerate(ms) if m >= 2048]
    a_big = (
        np.polyfit(lm[big], np.log(np.array(times)[big]), 1)[0] if len(big) > 1 else float("nan")
    )
    print(f"fitted exponents: time ∝ M^{a:.2f} (M ≥ 2048: M^{a_big:.2f}), memory ∝ M^{b:.2f}")


def mlp2_by_hand(x: np.ndarray, m: int, replicas: int = 16) -> dict[str, np.ndarray]:
    """mlp2's backprop kets written directly in numpy: (P, R, B) arrays, hats from the particle
    second moment per replica and input (01 §1.4 Hat; no live dot coefficient in this program)."""
    rng = np.random.default_rng(0)
    p = m // replicas
    u = [rng.standard_normal((p, replicas, 1)) for _ in range(x.shape[1])]
    v = rng.standard_normal((p, replicas, 1))
    h1 = sum(uj * x[:, j] for j, uj in enumerate(u))
    x1 = np.maximum(h1, 0.0)
    h2 = np.sqrt(np.mean(x1 * x1, axis=0)) * rng.standard_normal(h1.shape)
    x2 = np.maximum(h2, 0.0)
    out = {"h1": h1, "x1": x1, "h2": h2, "x2": x2, "out": v * x2, "dv": x2}
    dh2 = v * (h2 > 0)
    dx1 = np.sqrt(np.mean(dh2 * dh2, axis=0)) * rng.standard_normal(h1.shape)
    dh1 = dx1 * (h1 > 0)
    out.update(dh2=dh2, dx1=dx1, dh1=dh1)
    for j, uj in enumerate(u):
        out[f"dU[{j}]"] = dh1 * x[:, j]
        out[f"dxi_1[{j}]"] = uj * dh1
        out[f"dxi[{j}]"] = out[f"dxi_1[{j}]"].mean(axis=0)
    return out


def mc_against_numpy(m: int, inputs: int = 4) -> None:
    program = parse_text((ROOT / "samples" / "mlp2.nx").read_text())
    kets = lower(backprop(program))
    d = len(program.input_names)
    x = np.random.default_rng(0).standard_normal((inputs, d)) / np.sqrt(d)
    want = [s.out for s in kets.stmts if s.out.startswith(("dU", "dv", "dxi_1"))]
    opts = LimitOptions(particles=m, keep_values=True)
    evaluate(kets, x, opts=LimitOptions(particles=1024), wanted=want)  # warm the caches
    ours = median_seconds(lambda: evaluate(kets, x, opts=opts, wanted=want), repeats=3)
    hand = median_seconds(lambda: mlp2_by_hand(x, m), repeats=3)
    verdict = "met" if ours <= 1.3 * hand else "NOT met"
    print(f"mlp2 backprop Monte Carlo, M = {m}, {inputs} inputs, {len(want)} gradient kets "
          f"requested: {ours:.3f} s against hand-written numpy {hand:.3f} s = "
          f"{ours / hand:.2f}× (goal ≤ 1.3×: {verdict})")


def fused_against_unfused(m: int) -> None:
    """outer1's backprop: one pass per pair sum, fused pair sums (numpy), and fused with the pair
    kernel (runtime/limits/pairkernel*.py: numba when importable); CPU seconds of one thread."""
    from runtime.limits import fusion, pairkernel
    from runtime.limits import outer as limit_outer

    kets = lower(backprop(parse_text((ROOT / "samples/programs/outer1.nx").read_text())))
    want = ["dx", "du", "dz", "dc"]
    opts = LimitOptions(particles=m)
    threads, limit_outer.THREADS = limit_outer.THREADS, 1  # CPU time of one thread: less noise
    if pairkernel.numba_enabled():
        import numba

        numba.set_num_threads(1)
    times = {}
    try:
        for label, fuse, kernel in (("one pass each", False, False), ("fused", True, False),
                                    ("fused + pair kernel", True, True)):
            fusion.FUSE, pairkernel.ENABLED = fuse, kernel
            evaluate(kets, None, opts=opts, wanted=want)  # warm: compile or load the kernel
            times[label] = median_cpu(lambda: evaluate(kets, None, opts=opts, wanted=want))
    finally:
        fusion.FUSE, pairkernel.ENABLED, limit_outer.THREADS = True, True, threads
    base = times["one pass each"]
    print(f"outer1 backprop Monte Carlo, M = {m}, kets {', '.join(want)} requested (4 pair sums "
          f"over the same pairs, one thread, numba {'on' if pairkernel.numba_enabled() else 'off'}"
          "): " + ", ".join(f"{k} {t:.2f} CPU-s ({base / t:.2f}×)" for k, t in times.items()))


def main() -> None:
    quick = "--quick" in sys.argv
    if "--outer1" in sys.argv:  # only the fused/unfused/kernel comparison
        fused_against_unfused(4096 if quick else 65536)
        return
    mc_against_numpy(16384 if quick else 262144)
    fused_against_unfused(4096 if quick else 65536)
    pair_averages(2048 if quick else 8192)
    pair_averages(2048 if quick else 8192, smooth=False)
    scaling(
        [256, 1024, 4096] if quick else [256, 512, 1024, 2048, 4096, 8192, 16384, 65536, 262144]
    )
    # an order-1 OuterNonlin in forward and backward: the O(M²/R) pair averages dominate
    scaling([256, 1024, 4096] if quick else [256, 1024, 4096, 16384], "programs/outer1.nx")
    # rnn with F = avg(h²): W and Wᵀ interact, live dot coefficients by forward-mode tangents
    scaling([256, 1024, 4096] if quick else [256, 1024, 4096, 16384], "rnn.nx", 1, square=True)


if __name__ == "__main__":
    main()
