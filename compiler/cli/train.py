"""``nexort train FILE --param P --opt OPT --loss L --data DATA --steps T --width N --seeds K``:
train the architecture at finite width (spec 04; :mod:`runtime.trainer`) and print f_t per point
and the loss, for K seeds (0..K−1). JSON: ``{"points": ["train:0", …, "test:0", …],
"f": [seed][t][point] (t = 0..T; a trailing output axis when k > 1), "loss": [seed][t],
"width": N, …}``; ``--plot`` draws f_t per point with the seed band, and the loss."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `nexort --help` must not import numpy
    import numpy as np

    from compiler.train.setup import Training
    from runtime.training.dataset import TrainingData

from compiler.cli.common import Report, arch_summary, command, load
from compiler.cli.options import (
    file_options,
    integer_at_least,
    plot_option,
    training_options,
)
from compiler.cli.progress import Progress


def run_options(p: argparse.ArgumentParser, steps_required: bool = True) -> None:
    """What ``limit`` and ``converge`` share with ``nexort train``: the file, --param/--opt/
    --loss, --data, --steps, --center, --batch-size."""
    file_options(p)
    training_options(p)
    p.add_argument("--data", required=True, metavar="DATA",
                   help=".npz with X_train (B × d), y_train (B or B × k), optional X_test")
    p.add_argument("--steps", type=integer_at_least(1), required=steps_required, metavar="T",
                   help="training steps T")
    p.add_argument("--center", action="store_true",
                   help="train f - f_0 (04 §4.2; its limit is deterministic, 05 §5.1)")
    p.add_argument("--batch-size", type=integer_at_least(1), metavar="b",
                   help="mini-batches of b consecutive training points, cycling (default all)")


def setup(args: argparse.Namespace) -> tuple[Training, TrainingData]:
    """The training of ``args`` and its data, exactly as ``nexort train`` builds them."""
    from compiler.train.options import parse_optimizer
    from compiler.train.setup import build_training, check_signal
    from compiler.train.signals import parse_signal
    from runtime.training.dataset import load_training_data

    program = load(args)
    opt, signal = parse_optimizer(args.opt), parse_signal(args.loss)
    check_signal(program, signal)
    data = load_training_data(args.data, program, signal)
    training = build_training(program, args.param, opt, signal, args.steps, data.n_train,
                              data.n_test, args.batch_size, args.center)
    return training, data


def _options(p: argparse.ArgumentParser) -> None:
    run_options(p)
    p.add_argument("--width", type=integer_at_least(1), required=True, metavar="N",
                   help="the width n")
    p.add_argument("--seeds", type=integer_at_least(1), default=1, metavar="K",
                   help="train seeds 0..K-1 (default 1)")
    p.add_argument("--dist", default="gaussian",
                   help="initial matrix entries: gaussian, rademacher, uniform")
    plot_option(p, "f_t per point with the seed band, and the loss")


@command("train", "train at finite width and print f_t and the loss", _options)
def cmd_train(args: argparse.Namespace) -> Report:
    from runtime.trainer import train

    training, data = setup(args)
    program = training.program
    progress = Progress("train")
    total = args.seeds * (args.steps + 1)
    start = time.perf_counter()
    result = train(training, data.x, data.y, args.width, range(args.seeds), args.dist,
                   lambda k, t: progress(k * (args.steps + 1) + t + 1, total, f"seed {k}"))
    elapsed = time.perf_counter() - start
    progress.done()
    if args.plot:
        from runtime.training.plot import plot_training

        plot_training(result, args.plot)
    doc = {**arch_summary(program), **result.to_json(), "opt": args.opt, "loss_spec": args.loss,
           "dist": args.dist, "seconds": elapsed, "plot": args.plot}
    return Report(doc, _text(result, elapsed, args.plot))


def _text(result: Any, elapsed: float, plot: str | None) -> str:
    tr = result.training
    lines = [tr.format(), f"width n = {result.width}, {len(result.seeds)} seed(s), "
                          f"{elapsed:.2f} s"]
    steps = sorted({0, 1, tr.steps // 2, tr.steps})
    what = "f̃_t = f_t − f_0" if tr.center else "f_t"
    lines.append(f"{what} (seed mean ± sd) at t = " + ", ".join(map(str, steps)))
    for i, label in enumerate(tr.schedule.points()):
        for j in range(tr.outputs):
            f = result.f[:, :, i, j]
            cells = "  ".join(_cell(f[:, t]) for t in steps)
            lines.append(f"  {label:>9}{'' if tr.outputs == 1 else f' f{j}'}  {cells}")
    import numpy as np

    loss = result.loss.mean(axis=0)
    if not np.isnan(loss).all():
        lines.append("loss (seed mean): " + ", ".join(f"t={t}: {loss[t]:.6g}" for t in steps))
    if plot:
        lines.append(f"plot: {plot}")
    return "\n".join(lines) + "\n"


def _cell(x: np.ndarray) -> str:
    return f"{x.mean():10.5f} ± {x.std(ddof=1):.1e}" if x.size > 1 else f"{x.mean():10.5f}"
