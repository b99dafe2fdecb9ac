"""``nexort lower`` and ``nexort limit-scalars``: kets and the Master Theorem (01 §1.4–1.6).

``lower FILE [--latex]`` prints the ket program in bra-ket notation.  ``limit-scalars FILE``
prints every scalar's limit ± its standard error: by the exact path (quadrature,
:mod:`runtime.limits.quadrature`) when the program allows it and Monte Carlo otherwise
(``--method``), and with ``--compare-widths 256,1024,4096 --seeds K`` the seed-averaged
finite-width values beside them.  Scalar parameters without an init are conditioned on a
value (``--scalar NAME=VALUE``, default the executor's seed-0 draw), and the finite-width
runs use the same value.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from typing import Any

import numpy as np

from compiler.cli.common import _file_options, command, load
from compiler.errors import UsageError
from compiler.kets.lowering import KetProgram, lower


def _lower_options(p: argparse.ArgumentParser) -> None:
    _file_options(p)
    p.add_argument("--latex", action="store_true", help="LaTeX (align*) instead of unicode")


@command("lower", "print the kets (limit objects) of a program in bra-ket notation", _lower_options)
def cmd_lower(args: argparse.Namespace) -> int:
    from compiler.kets.printer import print_kets

    kets = lower(load(args))
    if args.json:
        print(json.dumps(_kets_json(kets)))
    else:
        print(print_kets(kets, latex=args.latex), end="")
    return 0


def _kets_json(kets: KetProgram) -> dict[str, Any]:
    from compiler.kets.lowering import MatMulKet

    dots = [
        {
            "out": s.out,
            "arg": c.arg,
            "hat": c.hat.out,
            "matrix": c.hat.matrix,
            "transpose": c.hat.transpose,
            "rule": c.rule,
            "why": c.why,
        }
        for s in kets.stmts
        if isinstance(s, MatMulKet)
        for c in s.dots
    ]
    return {
        "arch": kets.source.name,
        "kets": [type(s).__name__ + ":" + s.out for s in kets.stmts],
        "dots": dots,
    }


def _widths(text: str) -> list[int]:
    try:
        out = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--compare-widths wants integers like 256,1024: {text!r}"
        ) from None
    if not out or min(out) < 2:
        raise argparse.ArgumentTypeError("--compare-widths needs widths ≥ 2")
    return out


def _limit_options(p: argparse.ArgumentParser) -> None:
    _file_options(p)
    p.add_argument(
        "--particles", type=int, metavar="M", help="Monte Carlo particles (default 16384)"
    )
    p.add_argument(
        "--outer2-pool",
        type=int,
        default=96,
        metavar="K",
        help="copy pool of order-2 OuterNonlins (cost M·K², bias O(1/K); default 96)",
    )
    p.add_argument("--replicas", type=int, help="independent replicas for standard errors")
    p.add_argument("--inputs", metavar="DATA", help=".npz with X_train (and X_test), or 1,2,3")
    p.add_argument("--seed", type=int, default=0, help="seed of the particles")
    p.add_argument(
        "--method",
        choices=("auto", "exact", "mc"),
        default="auto",
        help="exact quadrature, Monte Carlo, or exact when possible (default)",
    )
    p.add_argument("--stein", action="store_true", help="every dot coefficient by Stein's lemma")
    p.add_argument(
        "--scalar",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="value of a scalar parameter without init (the limit conditions on it)",
    )
    p.add_argument("--memory-limit", type=float, metavar="GIB", help="refuse runs above this")
    p.add_argument(
        "--compare-widths",
        type=_widths,
        metavar="N1,N2,…",
        help="also run the finite-width program at these widths",
    )
    p.add_argument("--seeds", type=int, default=4, help="seeds per width for --compare-widths")
    p.add_argument("--kernels", action="store_true",
                   help="the NNGP and NTK entries between the --inputs (05 §5.1-5.2) instead of "
                        "the program's own scalars")
    p.add_argument("--plot", metavar="PNG",
                   help="with --compare-widths: |finite − limit| against n, log-log (PNG)")


def _scalar_values(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(Fraction(value))
        except (ValueError, ZeroDivisionError):
            raise UsageError(f"--scalar wants NAME=NUMBER, got {item!r}") from None
        if not sep:
            raise UsageError(f"--scalar wants NAME=NUMBER, got {item!r}")
    return out


class _Progress:
    """Progress of a limit evaluation on stderr, with the time left estimated from the work done
    (ψ evaluations, so the O(M²) OuterNonlin steps weigh what they cost).  On a terminal a bar
    after the first second; otherwise (a log, CI) one line every ten seconds."""

    def __init__(self, tty: bool) -> None:
        self.tty, self.start, self.shown, self.last = tty, time.monotonic(), False, 0.0

    def __call__(self, done: float, total: float, label: str) -> None:
        now = time.monotonic() - self.start
        if now < 1.0 or (not self.tty and now - self.last < 10.0) or total <= 0:
            return
        frac = min(1.0, done / total)
        left = f", ~{_duration(now * (1 - frac) / frac)} left" if frac > 0 else ""
        text = f"limit: {100 * frac:5.1f}% ({_duration(now)} elapsed{left}) {label[:30]}"
        if self.tty:
            bar = "#" * int(20 * frac)
            print(f"\r[{bar:<20}] {text:<70}", end="", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)
        self.shown, self.last = True, now

    def done(self) -> None:
        if self.shown and self.tty:
            print("\r" + " " * 95 + "\r", end="", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


@command(
    "limit-scalars", "every scalar's infinite-width limit ± s.e. (Master Theorem)", _limit_options
)
def cmd_limit_scalars(args: argparse.Namespace) -> int:
    from runtime.data import load_inputs

    program = load(args)
    x, n_train = (None, 1) if args.inputs is None else load_inputs(args.inputs)
    shown = None
    if args.kernels:
        program, x, shown = _kernel_program(program, x)
    kets = lower(program)
    given = _scalar_values(args.scalar)
    unknown = set(given) - set(program.param_names("scalar"))
    if unknown:
        raise UsageError(f"--scalar names {', '.join(sorted(unknown))}: not scalar parameters")
    start = time.perf_counter()
    lim = _limits(args, kets, x, given)
    lim["seconds"] = time.perf_counter() - start
    lim["inputs"] = list(program.input_names)
    cmp = _compare(args, program, x, lim["given"]) if args.compare_widths else None
    if shown is not None:  # only the kernel entries, not the total program's own scalars
        lim["scalars"] = {k: v for k, v in lim["scalars"].items() if k in shown}
        cmp = {n: {k: v for k, v in c.items() if k in shown} for n, c in (cmp or {}).items()}
        cmp = cmp or None
    if args.plot:
        if cmp is None:
            raise UsageError("--plot draws the comparison: give --compare-widths too")
        from runtime.plots import plot_master_theorem

        drawn = {k: v for k, v in lim["scalars"].items()
                 if k not in lim["inputs"] and k not in set(lim.get("exact_zero", ()))}
        plot_master_theorem(program.name, drawn, cmp, args.plot)
        lim["plot"] = args.plot
    if args.json:
        print(json.dumps({"arch": program.name, **lim, "compare": cmp}))
    else:
        _print_limits(program.name, lim, cmp, n_train)
    return 0


def _kernel_program(program: Any, x: Any) -> tuple[Any, Any, set[str]]:
    """The total program of ``program`` for the rows of ``x`` with one scalar per NNGP and NTK
    entry (compiler.passes.kernel_program), its inputs bound, and the names of those scalars."""
    from compiler.passes.kernel_program import kernel_program

    if x is None:
        raise UsageError("--kernels needs --inputs (the kernel is between inputs)")
    if len(x) > 16:
        raise UsageError(f"--kernels with {len(x)} inputs: at most 16 (the program grows as B²)")
    kp = kernel_program(program, len(x))
    return kp.program, kp.bind(x), {*kp.nngp.values(), *kp.ntk.values()}


def _limits(
    args: argparse.Namespace, kets: KetProgram, x: Any, given: dict[str, float]
) -> dict[str, Any]:
    from runtime.limits.quadrature import NotExactError, evaluate_exact

    note = ""
    if args.method in ("auto", "exact"):
        try:
            res = evaluate_exact(kets, x, given)
            se = {k: [0.0] * res.batch for k in res.scalars}
            ignored = "--particles is ignored on the exact path (--method mc to use it)"
            return {
                "method": "exact (quadrature)",
                "note": ignored if args.particles is not None else "",
                "given": given,
                "scalars": {k: v.tolist() for k, v in res.scalars.items()},
                "stderr": se,
            }
        except NotExactError as e:
            if args.method == "exact":
                raise UsageError(f"no exact path for this program: {e}") from None
            note = f"exact path not applicable ({e}); Monte Carlo instead"
    return _monte_carlo(args, kets, x, given, note)


def _monte_carlo(
    args: argparse.Namespace, kets: KetProgram, x: Any, given: dict[str, float], note: str
) -> dict[str, Any]:
    from runtime.limits.montecarlo import LimitOptions, evaluate

    particles = 16384 if args.particles is None else args.particles
    if particles < 4:
        raise UsageError("--particles must be at least 4")
    if args.outer2_pool < 2:
        raise UsageError("--outer2-pool must be at least 2")
    budget = int(args.memory_limit * 2**30) if args.memory_limit else None
    opts = LimitOptions(
        particles=particles,
        outer2_pool=args.outer2_pool,
        replicas=args.replicas,
        seed=args.seed,
        stein=args.stein,
        memory_budget=budget,
    )
    progress = _Progress(sys.stderr.isatty())
    res = evaluate(kets, x, given, opts, progress)
    progress.done()
    method = (
        f"Monte Carlo, M = {res.particles} particles in {res.replicas} replicas, seed {args.seed}"
    )
    return {
        "method": method,
        "note": note,
        "given": given,
        "scalars": {k: v.tolist() for k, v in res.scalars.items()},
        "stderr": {k: v.tolist() for k, v in res.stderr.items()},
        "exact_zero": sorted(res.exact_zero),
    }


def _compare(
    args: argparse.Namespace, program: Any, x: Any, given: dict[str, float]
) -> dict[str, Any]:
    from runtime.executor import execute
    from runtime.params import draw_parameters

    if args.seeds < 2:
        raise UsageError("--seeds must be at least 2 for a standard error")
    out: dict[str, Any] = {}
    names = [n for n, k in program.kinds.items() if k == "scalar" and n not in program.input_names]
    for w, n in enumerate(args.compare_widths):
        vals: dict[str, list[np.ndarray]] = {k: [] for k in names}
        # distinct seeds per width: the same seed at two widths shares its first coordinates
        for s in range(w * args.seeds, (w + 1) * args.seeds):
            params = draw_parameters(program, n, s)
            for k, v in given.items():
                params[k] = np.array(v)
            ex = execute(program, n, s, x, params=params)
            for k in names:
                vals[k].append(np.broadcast_to(ex[k], (ex.batch,)))
        out[str(n)] = {
            k: {
                "mean": np.mean(v, axis=0).tolist(),
                "stderr": (np.std(v, axis=0, ddof=1) / np.sqrt(len(v))).tolist(),
            }
            for k, v in vals.items()
        }
    return out


def _print_limits(arch: str, lim: dict[str, Any], cmp: dict[str, Any] | None, n_train: int) -> None:
    print(f"limits of {arch}: {lim['method']} ({lim['seconds']:.2f} s)")
    if lim["note"]:
        print(f"note: {lim['note']}")
    for k, v in lim["given"].items():
        print(f"conditioned on scalar parameter {k} = {v:g}")
    zero = set(lim.get("exact_zero", ()))
    head = f"  {'scalar':<16} {'input':>5}  {'limit':>12} {'± s.e.':>10}"
    widths = list(cmp) if cmp else []
    for n in widths:
        head += f"  {'n=' + n:>12} {'± s.e.':>10}"
    print(head)
    exact = lim["method"].startswith("exact")
    for name, vals in lim["scalars"].items():
        if name in lim["inputs"]:
            continue
        for i, val in enumerate(vals):
            se = lim["stderr"][name][i]
            tag = "0 by sym." if name in zero else ("exact" if exact else f"{se:10.2e}")
            row = f"  {name:<16} {i:>5}  {val:12.6f} {tag:>10}"
            for n in widths:
                c = cmp[n].get(name) if cmp else None  # type: ignore[index]
                if c is not None:
                    row += f"  {c['mean'][i]:12.6f} {c['stderr'][i]:10.2e}"
            print(row)
    if not any(name not in lim["inputs"] for name in lim["scalars"]):
        print("  (the program has no scalars besides its inputs: add avg(…) or run `nexort "
              "backprop` first)")
    if n_train > 1:
        print(f"inputs 0..{n_train - 1} are training rows; later rows are test rows")
    if lim.get("plot"):
        print(f"plot: {lim['plot']}")
