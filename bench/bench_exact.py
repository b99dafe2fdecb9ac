"""Exact-path benchmark (01 §1.6, 07 §7.1): CPU time of the quadrature engine on the kernels
(NNGP + NTK) of relu ``mlp2``/``mlp3`` and erf ``mlp2_erf``, and of ``mlp3`` written with the
linear layer inline (``x1 = relu(U . xi)``), with the largest error against the closed forms;
then the many-leaves expectation E[(Σ_s erf(4e_s))²] for S = 2…8, its method and error against
the arcsine closed form.  Timings are process CPU seconds (the machine is shared).

Batched kernels (runtime.limits.kernels.exact_kernel_blocks, the default of --kernels): relu
``mlp3`` at B = 8, 32, 64, 128 and erf ``mlp2_erf`` at B = 32, warm (the symbolic plan is built
once per program, as neural-tangents builds its kernel_fn once), each as a ratio against
neural-tangents' warm ``kernel_fn`` when it is importable, else against the hand-written numpy
closed-form recursion (runtime.limits.closed_forms.mlp_kernels), with the cold first call and
the largest error against the closed forms; and a tanh/sigmoid MLP (quadrature) at B = 32.
Goals (issue 13): ≤ 3× at B = 128, < 1 s for B = 64, erf B = 32 < 2 s.

``--costs``: only the exact path's up-front cost estimate against measured runs (integrals,
grid points, largest grid, CPU seconds), Monte Carlo's estimate against its run, and auto's
choice, on the kernel programs of mlp3, mlp2_erf, attention, layernorm_mlp, transformer_block
and rnn (issue 13 item 1b).

Run: python bench/bench_exact.py [--quick | --costs]."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median_seconds
from compiler.frontend.parse import parse_file, parse_text
from compiler.kets.lowering import lower
from compiler.passes.kernel_program import kernel_program
from runtime.limits import evaluate
from runtime.limits.closed_forms import mlp_kernels
from runtime.limits.kernels import exact_kernel_blocks, ntk_of

ROOT = Path(__file__).resolve().parent.parent
X = np.load(ROOT / "samples" / "data" / "gauss10.npz")["X_train"]
INLINE = ("h1 = U . xi\n    x1 = relu(h1)", "x1 = relu(U . xi)")


def kernels(name: str, depth: int, act: str, batch: int, inline: bool = False) -> None:
    text = (ROOT / "samples" / f"{name}.nx").read_text()
    if inline:
        assert INLINE[0] in text
        text = text.replace(*INLINE)
    kp = kernel_program(parse_text(text), batch)
    x = X[:batch]
    start = time.process_time()
    res = evaluate(lower(kp.program), kp.bind(x), method="exact")
    cpu = time.process_time() - start
    k = mlp_kernels(x, depth, act)
    err = max(
        abs(res.scalars[n][0] - ref[i, j])
        for table, ref in ((kp.ntk, k.ntk), (kp.nngp, k.nngp))
        for (i, j), n in table.items()
    )
    label = f"{name}{' (inline U . xi)' if inline else ''}"
    print(f"kernels {label:<24} B={batch:<3} {cpu:7.2f} CPU-s   max error {err:.1e}")


def _baseline(depth: int, act: str) -> tuple[str, object]:
    """neural-tangents' warm kernel_fn (NNGP + NTK) when importable, else the numpy recursion."""
    try:
        from neural_tangents import stax  # type: ignore[import-not-found]
    except ImportError:
        return "numpy recursion", lambda x: mlp_kernels(x, depth, act).ntk
    layer = stax.Relu() if act == "relu" else stax.Erf()
    layers = [stax.Dense(1, W_std=1.0, parameterization="ntk"), layer] * depth
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, parameterization="ntk"))
    return "neural-tangents", lambda x: kernel_fn(x, None, ("nngp", "ntk"))


def batched(name: str, depth: int, act: str, batch: int) -> None:
    prog = parse_file(ROOT / "samples" / f"{name}.nx")
    x = np.random.default_rng(batch).standard_normal((batch, 10)) / np.sqrt(10)
    start = time.perf_counter()
    blocks = exact_kernel_blocks(prog, x)
    cold = time.perf_counter() - start
    label, base = _baseline(depth, act)
    base(x)  # warm (jit) before timing
    ours = median_seconds(lambda: exact_kernel_blocks(prog, x), 7)
    theirs = median_seconds(lambda: base(x), 7)
    k = mlp_kernels(x, depth, act)
    err = max(float(np.max(np.abs(blocks["nngp"] - k.nngp))),
              float(np.max(np.abs(ntk_of(blocks) - k.ntk))))
    print(f"batched kernels {name:<9} B={batch:<4} {ours * 1e3:8.2f} ms warm "
          f"({cold * 1e3:7.1f} ms cold)  {label} {theirs * 1e3:7.2f} ms  ratio "
          f"{ours / theirs:5.2f}x   max error {err:.1e}")


def smooth(batch: int) -> None:
    """A smooth activation without a closed form (tanh, then sigmoid): the trapezoid rule of
    runtime.limits.pairs, warm and cold."""
    text = (ROOT / "samples" / "mlp2_erf.nx").read_text()
    text = text.replace("x1 = erf(h1)", "x1 = tanh(h1)").replace("x2 = erf(h2)", "x2 = sigmoid(h2)")
    prog = parse_text(text)
    x = np.random.default_rng(batch).standard_normal((batch, 10)) / np.sqrt(10)
    start = time.perf_counter()
    exact_kernel_blocks(prog, x)
    cold = time.perf_counter() - start
    warm = median_seconds(lambda: exact_kernel_blocks(prog, x), 3)
    print(f"batched kernels tanh/sigmoid mlp2 B={batch:<4} {warm * 1e3:8.2f} ms warm "
          f"({cold * 1e3:7.1f} ms cold)  (no closed form: quadrature, error ≤ 1e-14)")


def many_leaves(size: int) -> None:
    text = f"""arch t {{
 const S = {size}
 input xi[S][6]
 param U : vector[6]
 param v : vector
 for s in 0..S {{ e[s] = U . xi[s] }}
 z = sum[s in 0..S](erf(4*e[s]))
 r = avg(z*z)
 output v * z
}}"""
    xi = np.random.default_rng(size).standard_normal((size, 6)) / np.sqrt(6)
    c = xi @ xi.T
    d = np.sqrt(1 + 32 * np.diag(c))
    truth = float(np.sum(2 / np.pi * np.arcsin(32 * c / np.outer(d, d))))
    start = time.process_time()
    res = evaluate(lower(parse_text(text)), xi.reshape(1, -1), "auto")
    cpu = time.process_time() - start
    val, se = res.scalars["r"][0], res.stderr["r"][0]
    print(
        f"E[(Σ erf(4e_s))²] S={size}  {res.methods['r']:<5} error {val - truth:+.1e} "
        f"(s.e. {se:.1e})  {cpu:6.2f} CPU-s"
    )


def cost(name: str, data: str, batch: int) -> None:
    """The exact path's up-front estimate (runtime.limits.exactcost) against the run: integrals,
    grid points, the largest grid, CPU seconds; Monte Carlo's estimate against its run; and what
    ``auto`` chooses (issue 13 item 1b)."""
    from runtime.limits import LimitOptions, NotApplicableError, engines, quadgrid
    from runtime.limits.exactcost import estimate_exact

    x = np.load(ROOT / "samples" / "data" / f"{data}.npz")["X_train"][:batch]
    kp = kernel_program(parse_file(ROOT / "samples" / f"{name}.nx"), batch)
    kets, inputs = lower(kp.program), kp.bind(x)
    est = estimate_exact(kets, 1, LimitOptions())
    seen: list[int] = []
    calls = [0]
    grid_sum, integrate = quadgrid._sum, quadgrid.integrate

    def rec(f, coords, consts, kink, u, wu, comp, v, wv):  # type: ignore[no-untyped-def]
        seen.append(len(wu) * (len(wv) if v.ndim > 1 else len(wv) ** comp.shape[1]))
        return grid_sum(f, coords, consts, kink, u, wu, comp, v, wv)

    def count(col, expr, items):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return integrate(col, expr, items)

    quadgrid._sum, quadgrid.integrate = rec, count
    start, how = time.process_time(), "ran"
    try:
        evaluate(kets, inputs, "exact")
    except NotApplicableError as e:
        how = f"refused after {calls[0]} integrals ({e.message[:60]}…)"
    finally:
        quadgrid._sum, quadgrid.integrate = grid_sum, integrate
    exact_cpu = time.process_time() - start
    mc_est = engines.ENGINES["mc"].estimate_seconds(  # type: ignore[attr-defined]
        kets, inputs, LimitOptions(), None)
    start = time.process_time()
    evaluate(kets, inputs, "mc")
    mc_cpu = time.process_time() - start
    auto = evaluate(kets, inputs, "auto").method
    print(f"cost {name:<17} B={batch}: integrals est {est.integrals} / {calls[0]}; points est "
          f"{est.points:.2e} / {sum(seen):.2e}; largest est {est.largest_points} / "
          f"{max(seen, default=0)}; exact est {est.seconds:5.2f} s / {exact_cpu:5.2f} CPU-s "
          f"({how}); mc est {mc_est:5.2f} s / {mc_cpu:5.2f} CPU-s; auto: {auto}")


def main() -> None:
    quick = "--quick" in sys.argv
    if "--costs" in sys.argv:
        for args in (("mlp3", "gauss10", 4), ("mlp2_erf", "gauss10", 4), ("attention", "seq3x4", 2),
                     ("layernorm_mlp", "gauss10", 8), ("transformer_block", "seq3x4", 4),
                     ("rnn", "seq3x4", 4)):
            cost(*args)
        return
    for batch in (8, 32, 64, 128):
        batched("mlp3", 3, "relu", batch)
    batched("mlp2_erf", 2, "erf", 32)
    smooth(32)
    for name, depth, act in (("mlp2", 2, "relu"), ("mlp3", 3, "relu"), ("mlp2_erf", 2, "erf")):
        kernels(name, depth, act, 4)
    kernels("mlp3", 3, "relu", 4, inline=True)
    if not quick:
        kernels("mlp3", 3, "relu", 8)
    for size in range(2, 9):
        many_leaves(size)


if __name__ == "__main__":
    main()
