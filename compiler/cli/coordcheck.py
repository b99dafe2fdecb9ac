"""``nexort coordcheck FILE --param P --opt OPT --widths 128,256,… --seeds K --steps T``: the
coordinate check of spec 03 §3.4 (:mod:`runtime.coordcheck`). Prints per step the RMS size of
every vector at init, of its change, of f_t − f_0 and of every Q input at each width, the
fitted log-log slope (± a jackknife standard error over seeds) and the slope over the widest half
of the widths, the size calculus's predicted exponent and a status (|slope − prediction| ≤
--tolerance: ok; otherwise frozen, curved, unsure or FAILS: :mod:`runtime.coordcheck_stats`).
Without --data a bundled dataset is used. ``--plot``: size against width per step, log-log, one
line per vector."""

from __future__ import annotations

import argparse
import time

from compiler.cli.common import Report, arch_summary, command, load
from compiler.cli.options import (
    file_options,
    integer_at_least,
    plot_option,
    positive_number,
    training_options,
)
from compiler.errors import UsageError


def widths_list(text: str) -> tuple[int, ...]:
    """``--widths 128,256,512``: at least two distinct widths ≥ 2."""
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise UsageError(f"--widths {text!r}: expected integers separated by commas, "
                         "e.g. 128,256,512") from None
    if len(set(widths)) < 2 or min(widths) < 2:
        raise UsageError(f"--widths {text!r}: a slope needs at least two distinct widths ≥ 2")
    return tuple(sorted(set(widths)))


def _options(p: argparse.ArgumentParser) -> None:
    file_options(p)
    training_options(p)
    p.add_argument("--widths", type=widths_list, default=(128, 256, 512, 1024, 2048, 4096),
                   metavar="N1,N2,…", help="widths (default 128,256,…,4096)")
    p.add_argument("--seeds", type=integer_at_least(1), default=8, metavar="K",
                   help="seeds 0..K-1 per width (default 8: the 'within s.e.' rule uses the "
                        "Student-t quantile with K-1 degrees of freedom, 2.36 at K = 8)")
    p.add_argument("--steps", type=integer_at_least(1), default=3, metavar="T",
                   help="training steps T (default 3)")
    p.add_argument("--data", metavar="DATA",
                   help=".npz with X_train, y_train, optional X_test (default: bundled data)")
    p.add_argument("--center", action="store_true",
                   help="train f - f_0 (04 §4.2): χ_0 = −y is then the same for every seed, "
                        "which removes f_0's seed noise from the slopes under SP and NTP")
    p.add_argument("--tolerance", type=positive_number, default=0.1, metavar="TOL",
                   help="verdict: |slope − predicted exponent| ≤ TOL (default 0.1)")
    p.add_argument("--dist", default="gaussian",
                   help="initial matrix entries: gaussian, rademacher, uniform")
    plot_option(p, "size against width per step (log-log, one line per vector)")


@command("coordcheck", "coordinate check: measured width exponents against the calculus",
         _options)
def cmd_coordcheck(args: argparse.Namespace) -> Report:
    from compiler.train.options import parse_optimizer
    from compiler.train.setup import build_training, check_signal
    from compiler.train.signals import parse_signal
    from runtime.coordcheck import coordcheck, default_data
    from runtime.training.dataset import load_training_data

    program = load(args)
    opt, signal = parse_optimizer(args.opt), parse_signal(args.loss)
    check_signal(program, signal)
    data = (load_training_data(args.data, program, signal) if args.data
            else default_data(program, signal))
    training = build_training(program, args.param, opt, signal, args.steps, data.n_train,
                              data.n_test, center=args.center)
    start = time.perf_counter()
    result = coordcheck(training, data.x, data.y, args.widths, range(args.seeds),
                        float(args.tolerance), args.dist)
    elapsed = time.perf_counter() - start
    if args.plot:
        from runtime.coordcheck_plot import plot_coordcheck

        plot_coordcheck(result, args.plot)
    doc = {**arch_summary(program), **result.to_json(), "opt": args.opt, "loss": args.loss,
           "data": args.data, "seconds": elapsed, "plot": args.plot}
    return Report(doc, _text(result, elapsed, args.plot))


def _shown(e: object) -> str:
    return "zero" if e is None else ("—" if e == "?" else str(e))


_REGIME = {
    "limit": "the limit's",
    "eps-free": "ε = 0 (every step-0 Q input ≫ ε at these widths: Adam-like optimizers are "
                "scale-invariant here, the limit's Q(x) ≈ x/ε only at far larger n)",
    "crossover": "step-0 Q inputs cross ε at these widths: rows where the limit and ε = 0 "
                 "differ are not judged",
}


_VERDICT = {"ok": "ok", "fails": "FAILS", "inconclusive": "unsure (s.e.)",
            "curved": "curved", "frozen": "frozen", "unjudged": "—"}
_MEANING = {
    "fails": "fail",
    "inconclusive": "inconclusive (the gap beyond the tolerance is within t·s.e.: more seeds "
                    "decide)",
    "curved": "curved (pre-asymptotic: the slope bends toward the prediction, or the predicted "
              "term is present under a decaying n^-1/2 part; wider widths decide)",
    "frozen": "frozen (a size is exactly 0: nothing to fit, e.g. every ReLU died)",
}


def _summary(result: object) -> str:
    from runtime.coordcheck import CoordCheck

    assert isinstance(result, CoordCheck)
    judged = result.judged
    status: list[str] = [result.status(r) for r in judged]
    q = [r.fit.quantile for r in judged[:1]]
    return (f"{status.count('ok')} of {len(judged)} predicted rows hold"
            + "".join(f"; {status.count(k)} {text}" for k, text in _MEANING.items()
                      if status.count(k))
            + (f"; t quantile {q[0]:.2f} ({len(result.seeds)} seeds)" if q else ""))


def _text(result: object, elapsed: float, plot: str | None) -> str:
    import numpy as np  # here, not at the top: registering the commands must not import numpy

    from runtime.coordcheck import CoordCheck

    assert isinstance(result, CoordCheck)
    widths = result.widths
    lines = [result.training.format(),
             f"widths {', '.join(map(str, widths))}; {len(result.seeds)} seed(s); "
             f"{elapsed:.2f} s; verdict: |slope − predicted| ≤ {result.tolerance:g}; "
             f"predictions: {_REGIME[result.regime]}",
             f"{'t':>2} {'quantity':<18}" + "".join(f"{n:>10}" for n in widths)
             + f"{'slope':>16} {'wide':>7} {'predicted':>10}  verdict"]
    for r in result.rows:
        if r.verdict is None and r.predicted == "?":
            continue
        pred = _shown(r.predicted)
        sizes = np.sqrt(np.mean(np.square(r.sizes), axis=0))  # the seed RMS the slope fits
        verdict = _VERDICT[result.status(r)]
        lines.append(f"{r.t:>2} {r.label:<18}" + "".join(f"{s:10.3g}" for s in sizes)
                     + f"{r.slope:>9.3f} ±{r.stderr:5.3f} {r.wide_slope:>7.3f} {pred:>10}  "
                     + verdict
                     + ("" if r.limit == r.predicted else f"  (limit: {_shown(r.limit)})"))
    lines.append(_summary(result))
    if plot:
        lines.append(f"plot: {plot}")
    return "\n".join(lines) + "\n"
