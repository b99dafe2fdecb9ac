"""The floor of Fig. 5.1 (07 §7.4; samples/paper/README.md "Measured"): NTP mlp4 under Adam
against its neural-tangent limit (05 §5.1–5.2), on a small set-up with many seeds, split into
the seed mean's *bias* and its *noise*, per step, for variants of the optimizer and depth.

The distance of :mod:`runtime.converge` mixes two things (f̄_n the mean of K seeds, f̂ the limit
with Monte Carlo s.e. s, σ_n² the per-seed variance):

    E (f̄_n − f̂)² = b_n² + σ_n²/K + s²,     b_n = E f_n − f        (the width-n bias)

so b̂_n² = (f̄_n − f̂)² − σ̂_n²/K − s² is an unbiased estimate of b_n² (averaged over points and
steps; negative when b_n is below the noise).  The Master Theorem (01 §1.5) makes σ_n² = O(1/n)
and b_n = O(1/n) for smooth Q: D_n ∝ n^{-1/2} is the *noise's* rate, and a bias falling like
n^{-1} is invisible below it at large n.  A floor of D_n means b_n stops falling; a wrong limit
(a missing term) shows as a b_n that tends to a constant; a slow finite-width approach as a b_n
that keeps falling, at its own rate.  Printed per variant and width: D_n (as ``converge``), the
seed noise σ_n/√K, b̂_n and b̂_n,t per step t = 1..T (signed like b̂²: negative = below noise),
local slopes of b̂_n between consecutive widths and the fitted slope of D_n.

Variants (all NTP, mse, centred; ``--data regress10``: 8 training + 4 test points): SGD at
lr = 5 (exact kernel limit, linear Q, about Adam's motion of f), Adam ε = 1e-4 lr = 0.2 (the
paper's), ε = 1e-2, ε = 1 at lr = 2 (a nearly linear Q), the L = 2 network (mlp2), and
``adam-frozen0``: the paper's Adam with every entry whose step-0 gradient is exactly 0 frozen
(:class:`FrozenAtZero`, the limit's behaviour of those entries).  ``--data paper`` is Fig. 5.1's
own data (100 + 4 points; give --steps 10).  Also printed: the *persistence* r_n of the widest
width's deviation pattern at narrower widths (r_n = (W/n)^p for a deviation ∝ n^{-p}).

Run: python -m bench.bench_nt_floor [--quick] [--data regress10|paper] [--widths LIST]
                                    [--seeds K] [--steps T] [--only NAME,…]
Default: widths 256…2048, 16 seeds, T = 5, limits with 2^17 particles in 16 replicas (5–9 min
on one core, estimated from the runs below: a variant's networks to 2048 are ~¼ of its run to
4096, 131–530 s measured under load); --quick: widths 256…1024, 6 seeds, T = 4, 2^15
particles (47 s measured).

Measured 2026-12-08 (2 shared cores, load 2–4), regress10, T = 5, 16–24 seeds, n = 256…4096
(``--widths 256,512,1024,2048,4096``), b̂_n:

    adam   ε=1e-4 (24 seeds)  0.0166 0.0156 0.0131 0.0081 0.0052   slope 1024..4096 −0.67 ± 0.11
    adam-frozen0              0.0153 0.0176 0.0144 0.0063 0.0055   (the same: not dead units)
    adam-L2 (mlp2)            0.0147 0.0018 0.0065 0.0046 0.0030   slope −0.57 ± 0.27
    adam   ε=1e-2             0.0012 0.0112 0.0089 0.0020 0.0020   (at the noise from 2048)
    adam   ε=1, lr=2          <0     0.0095 0.0069 <0     <0
    sgd    lr=5 (exact limit) 0.0061 0.0113 0.0092 0.0017 0.0018

Step 1 (Adam's sign-like m̂/√v̂ = g/|g|) has b̂_n,1 at the noise at every width; the step-0 Q
inputs of the limit's particles and of the width-2048 entries have the same quantiles and the
same fraction of exact zeros per group.  Under ε = 1e-4 the bias falls like n^{-2/3} (the 2048
deviation pattern is 1.55× the 4096 one), slower than the linear-Q variants, whose bias is
under the noise from n = 2048 (O(1/n)): a sign-like Q makes the finite-width bias decay slower,
but it decays — no floor here.

Paper data (``--data paper --steps 10 --only adam``; 16 seeds at 2048 and 4096, 4 at 8192; the
limit of samples/paper/README.md, 2^17 particles in 16 replicas): with seeds 0..9, D_n = 0.0069 /
0.0069 (the README's numbers, reproduced); with 16 seeds D_n = 0.0065 / 0.0062, noise 0.0041 /
0.0026, b̂_n = 0.0050 (1 s.e. 0.0041..0.0058) / 0.0056 (0.0049..0.0063).  The deviation is on
the training points (test points: under the noise), grows linearly in t from t ≈ 2 (b̂_n,t at
4096: 0.0009 … 0.0107 at t = 10), is the same vector at both widths (correlation 0.86 over the
training points at t = 10; persistence r_2048 = 0.94 ± 0.17 where n^{-1/2} gives 1.41) and
correlates with the residual f − y (0.7): the networks fit ~2.5% less than the limit (seed mean
− limit ≈ −0.026 · f_t).  A limit with 8× the pool per replica (4 × 65536) moves by RMS 0.0016
(under its s.e.), 0.09 of the pattern: not the limit's Monte Carlo.  At n = 8192 (4 seeds,
~2.5 min each) the same pattern (correlation 0.78 at t = 10) has shrunk: r_8192 = 0.61 ± 0.16
of the 4096 one (1 would be a floor, 0.71 is n^{-1/2}), seed mean − limit ≈ −0.011 · f_t,
b̂_n = 0.0018 (0..0.0029), b̂_n,10 = 0.0048 (0.0107 at 4096), D_n = 0.0045 at its noise 0.0041.
So the floor is the plateau of a finite-width bias that then falls (as regress10's does from
1024 on), not an error of the limit: over 2048 → 8192 its amplitude falls ×0.64 (≈ n^{-0.3}).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compiler.frontend.parse import parse_file
from compiler.train.setup import build_training
from runtime import trainer
from runtime.converge import log_slope, width_distance
from runtime.limits.trajectory import TrajectoryOptions, limit_trajectory
from runtime.trainer import train
from runtime.training.stepper import GroupStepper

ROOT = Path(__file__).resolve().parent.parent
DATASETS = {"regress10": ROOT / "samples" / "data" / "regress10.npz",
            "paper": ROOT / "samples" / "paper" / "paper.npz"}
PAPER = "adam(0.9, 0.99, 1e-4, lr=0.2)"


@dataclass(frozen=True)
class Variant:
    """An architecture and optimizer; ``freeze`` keeps every entry whose step-0 gradient is
    exactly 0 frozen in the finite networks (see :class:`FrozenAtZero`)."""

    arch: str
    opt: str
    freeze: bool = False


VARIANTS = {
    "sgd": Variant("mlp4", "sgd(lr=5)"),
    "adam": Variant("mlp4", PAPER),
    "adam-eps1e-2": Variant("mlp4", "adam(0.9, 0.99, 1e-2, lr=0.2)"),
    "adam-eps1": Variant("mlp4", "adam(0.9, 0.99, 1, lr=2)"),
    "adam-L2": Variant("mlp2", PAPER),
    "adam-frozen0": Variant("mlp4", PAPER, freeze=True),
}
FULL = {"widths": "256,512,1024,2048", "seeds": 16, "steps": 5, "particles": 1 << 17}
QUICK = {"widths": "256,512,1024", "seeds": 6, "steps": 4, "particles": 1 << 15}


@dataclass(frozen=True)
class Run:
    """One variant: the limit f̂ (T+1, C), its Monte Carlo s.e., and per width the finite
    runs (K, T+1, C)."""

    name: str
    limit: np.ndarray
    stderr: np.ndarray
    path: str
    finite: dict[int, np.ndarray]
    seconds: tuple[float, float]


def load(data: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    d = np.load(DATASETS[data])
    x = np.concatenate([d["X_train"], d["X_test"]])
    return x, d["y_train"].reshape(-1, 1), len(d["X_train"]), len(d["X_test"])


class FrozenAtZero(GroupStepper):
    """The trainer's stepper, except that an entry whose gradient is exactly 0 at step 0 keeps
    Q = 0 at every step.  In the NT limit such an entry's gradient is 0 at every step (a unit
    dead on every training input stays dead: the features are frozen, 05 §5.1), so this is the
    limit's own behaviour of those entries; at width n the features move by O(n^{-1/2}), a dead
    unit can wake with a tiny gradient, and Adam with a small ε turns it into a full step."""

    def step(self, t: int, grads: Sequence[np.ndarray]) -> list[np.ndarray]:
        if t == 0:
            self.dead = [np.asarray(g) == 0 for g in grads]
        qs = super().step(t, grads)
        return [np.where(dead, 0.0, q) for dead, q in zip(self.dead, qs, strict=True)]


@contextlib.contextmanager
def stepper(freeze: bool) -> Iterator[None]:
    """The finite networks' stepper for the run (the limit has its own import, untouched)."""
    saved = trainer.GroupStepper
    trainer.GroupStepper = FrozenAtZero if freeze else saved  # type: ignore[misc]
    try:
        yield
    finally:
        trainer.GroupStepper = saved  # type: ignore[misc]


def run_variant(name: str, size: dict, widths: list[int]) -> Run:
    v = VARIANTS[name]
    arch, opt = v.arch, v.opt
    x, y, n_train, n_test = load(size["data"])
    tr = build_training(parse_file(ROOT / "samples" / f"{arch}.nx"), "ntp", opt, "mse",
                        steps=size["steps"], n_train=n_train, n_test=n_test, center=True)
    start = time.perf_counter()
    lim = limit_trajectory(tr, x, y, TrajectoryOptions(particles=size["particles"],
                                                       replicas=16), "nt")
    mid = time.perf_counter()
    with stepper(v.freeze):
        finite = {n: train(tr, x, y, n, list(range(size["seeds"]))).f[..., 0] for n in widths}
    # the Monte Carlo variance alone, as converge subtracts it (a bias bound is not noise)
    se = np.sqrt(np.nan_to_num(lim.noise_variance[..., 0]))
    return Run(name, lim.f[..., 0], se, lim.path, finite,
               (mid - start, time.perf_counter() - mid))


def bias2(finite: np.ndarray, limit: np.ndarray, stderr: np.ndarray) -> np.ndarray:
    """Per step t the unbiased estimate of mean_ξ b_n,t(ξ)²: (f̄ − f̂)² − σ̂²/K − s²."""
    k = finite.shape[0]
    gap = np.square(finite.mean(axis=0) - limit) - finite.var(axis=0, ddof=1) / k
    return np.asarray((gap - np.square(stderr)).mean(axis=-1))


def bias2_stderr(finite: np.ndarray, limit: np.ndarray, stderr: np.ndarray) -> float:
    """Jackknife standard error over seeds of the all-steps b̂_n² (heavy-tailed seeds make the
    normal-theory one too small)."""
    k = finite.shape[0]
    leave = np.array([bias2(np.delete(finite, i, axis=0), limit, stderr).mean()
                      for i in range(k)])
    return float(np.sqrt((k - 1) / k * np.sum(np.square(leave - leave.mean()))))


def signed_root(v: float) -> float:
    """√|v| with v's sign: a negative estimate of b² says the bias is below the noise."""
    return float(np.sign(v) * np.sqrt(abs(v)))


def width_row(run: Run, n: int, prev: tuple[int, float] | None) -> tuple[str, float, float]:
    """One table row at width n: the text, D_n and b̂_n."""
    variance = float(np.mean(np.square(run.stderr)))
    d = width_distance(n, run.finite[n][..., None], run.limit[..., None], variance)
    per = bias2(run.finite[n], run.limit, run.stderr)
    b2, se2 = float(per.mean()), bias2_stderr(run.finite[n], run.limit, run.stderr)
    b = signed_root(b2)
    band = f"{np.sqrt(max(b2 - se2, 0.0)):.4f}..{np.sqrt(max(b2 + se2, 0.0)):.4f}"
    slope = (np.log(b / prev[1]) / np.log(n / prev[0])
             if prev is not None and b > 0 and prev[1] > 0 else np.nan)
    steps = " ".join(f"{signed_root(v):+7.4f}" for v in per[1:])
    text = (f"{n:6d} {d.distance:7.4f} {d.stderr:6.4f} {d.noise:7.4f} {b:+7.4f} {band:>15} "
            f"{slope:+6.2f} | {steps}")
    return text, d.distance, b


def bias_slope(run: Run, widths: list[int]) -> tuple[float, float]:
    """The fitted log-log slope of b̂_n over ``widths`` and its jackknife s.e. over seeds (seed
    k left out at every width at once, as :func:`runtime.converge.distances`)."""
    def slope(drop: int | None) -> float:
        b2 = [bias2(run.finite[n] if drop is None else np.delete(run.finite[n], drop, axis=0),
                    run.limit, run.stderr).mean() for n in widths]
        return log_slope(widths, [np.sqrt(v) if v > 0 else 0.0 for v in b2])

    k = run.finite[widths[0]].shape[0]
    leave = np.array([slope(i) for i in range(k)])
    return slope(None), float(np.sqrt((k - 1) / k * np.sum(np.square(leave - leave.mean()))))


def persistence(run: Run) -> list[tuple[int, float, float]]:
    """How much of the widest width's systematic deviation s_W = E f̄_W − f̂ each narrower width
    carries: r_n = ⟨d_n, s_W⟩ / |s_W|² with |s_W|² estimated without its noise as ⟨d_A, d_B⟩ over
    two disjoint halves of the seeds at W (d = seed mean − limit, over steps ≥ 1 and points).
    A deviation ∝ n^{-p} in a fixed pattern gives r_n = (W/n)^p: p is printed beside it."""
    widths = sorted(run.finite)
    wide = run.finite[widths[-1]]
    half = wide.shape[0] // 2
    d_a = (wide[:half].mean(axis=0) - run.limit)[1:].ravel()
    d_b = (wide[half:].mean(axis=0) - run.limit)[1:].ravel()
    ref, s_w = float(d_a @ d_b), (d_a + d_b) / 2
    out = []
    for n in widths[:-1]:
        r = float((run.finite[n].mean(axis=0) - run.limit)[1:].ravel() @ s_w) / ref
        out.append((n, r, np.log(r) / np.log(widths[-1] / n) if r > 0 and ref > 0 else np.nan))
    return out


def report(run: Run) -> None:
    widths = sorted(run.finite)
    se, steps = float(np.sqrt(np.mean(np.square(run.stderr)))), run.limit.shape[0] - 1
    v = VARIANTS[run.name]
    print(f"\n{run.name} ({v.arch} {v.opt}{', frozen at 0' if v.freeze else ''}; limit "
          f"{run.path}, {run.seconds[0]:.0f} s, RMS s.e. {se:.1e}; networks {run.seconds[1]:.0f} "
          f"s; RMS f_t of the limit {np.sqrt(np.mean(run.limit ** 2)):.3f})")
    head = " ".join(f"{'t=' + str(t):>7}" for t in range(1, steps + 1))
    print(f"{'n':>6} {'D_n':>7} {'±':>6} {'noise':>7} {'b_n':>7} {'b_n ± 1 s.e.':>15} "
          f"{'slope':>6} | b_n,t {head}")
    dist, prev = [], None
    for n in widths:
        text, d, b = width_row(run, n, prev)
        print(text)
        dist.append(d)
        prev = (n, b)
    if run.finite[widths[-1]].shape[0] >= 4:
        print("persistence of the widest deviation pattern: " + ", ".join(
            f"n={n}: r={r:.2f} (p={q:+.2f})" for n, r, q in persistence(run)))
    tail = widths[-3:]
    b, se = bias_slope(run, tail)
    print(f"fitted slope of D_n {log_slope(widths, dist):+.2f}; of b_n over n = "
          f"{tail[0]}..{tail[-1]}: {b:+.2f} ± {se:.2f} (jackknife); slope column: local log-log "
          "slope of b_n from the width above")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (< 2 min)")
    p.add_argument("--widths", help="override the widths, e.g. 256,512,1024,2048,4096")
    p.add_argument("--seeds", type=int, help="override the seeds per width")
    p.add_argument("--steps", type=int, help="override T")
    p.add_argument("--data", choices=sorted(DATASETS), default="regress10",
                   help="regress10 (8 + 4 points, default) or paper (100 + 4, Fig. 5.1's)")
    p.add_argument("--only", help=f"comma-separated variants of {', '.join(VARIANTS)}")
    args = p.parse_args(argv)
    size = dict(QUICK if args.quick else FULL)
    size.update({k: getattr(args, k) for k in ("widths", "seeds", "steps") if getattr(args, k)})
    size["data"] = args.data
    widths = [int(w) for w in str(size["widths"]).split(",")]
    names = args.only.split(",") if args.only else list(VARIANTS)
    print(f"NT floor: widths {widths}, {size['seeds']} seeds, T = {size['steps']}, "
          f"limits {size['particles']} particles in 16 replicas, data {args.data}")
    for name in names:
        report(run_variant(name, size, widths))


if __name__ == "__main__":
    main()
