"""The coordinate check (spec 03 §3.4): measured width exponents against the size calculus.

Train the finite-width network (:func:`runtime.trainer.train`, through its observer hook) for T
steps at several widths and K seeds, and record at every step t the RMS entry size (‖x‖/√n,
over coordinates and points) of every vector and scalar of the forward and backward pass at
init (t = 0), of its change x_t − x_0 (t ≥ 1), of f_t − f_0 and of every group's Q input. The
log-log slope of a size against n estimates its exponent; it is fitted per seed (least squares
over the widths) and reported as the seed mean with its standard error over seeds.

Predictions come from the abcd size calculus (:func:`compiler.abcd.analyse`, method
"calculus", 03 §3.3): e0 for a vector at init, e(Δx) for its change, e(Δf) for f_t − f_0 and
the Q-input exponents of step 0 (with the exact zeros by symmetry of
:mod:`compiler.abcd.zeros`: attention's Wq/Wk are n^{-1/2} there) and after the first update.
On a table that is not stable the calculus reports one update from init only, so only the
rows of step 1 (and t = 0) carry predictions there. A row's verdict holds when
|slope − prediction| ≤ tolerance (0.1 by default, the spec's "~0.1 in the exponent"); an
identically zero prediction (a constant, an exact −∞ exponent) holds when every measured size
is 0 to rounding. Rows that miss are told apart (frozen, curved, inconclusive at the Student-t
quantile of the seeds, fails) by :mod:`runtime.coordcheck_stats`.

Adaptive optimizers with ε > 0 (Adam, RMSProp, Adagrad) have two regimes (03 §3.1: ε acts on the
Q input n^{d}·g). The limit sees Q(x) ≈ x/ε for a Q input that vanishes with n (attention's
Wq/Wk at step 0 under μP: Q(0) = 0), but at any width where the Q input is still ≫ ε (n below
≈ (size/ε)², 10⁶–10⁷ for size 10⁻², ε = 10⁻⁴) Adam is scale-invariant and turns that CLT noise
into a full step of random sign. So the check also analyses the optimizer with ε = 0 and
judges the rows against the regime the measured step-0 Q inputs are in: every one > 10ε at
every width: the ε-free prediction; every one < ε/10: the limit's; otherwise no verdict
(a crossover). Both are reported; they differ only where some Q input is not Θ(1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, assert_never

import numpy as np
import sympy

from compiler.abcd import analyse
from compiler.abcd.conditions import Exp, fmt
from compiler.abcd.verdict import Analysis
from compiler.errors import NexortError
from compiler.ir import Program
from compiler.train import Optimizer, parse_optimizer
from compiler.train.setup import Training
from compiler.train.signals import ErrorSignal
from runtime import memory
from runtime.coordcheck_stats import ZERO_SIZE, Fit, Status, fit, fit_slopes, status
from runtime.trainer import StepView, backprops, estimate_bytes, train
from runtime.training.dataset import TrainingData, load_training_data, prepare

Kind = Literal["init", "change", "f", "q"]
__all__ = ["CoordCheck", "Row", "Status", "coordcheck", "default_data", "fit_slopes", "regime",
           "without_eps"]
SAMPLE_DATA = Path(__file__).resolve().parent.parent / "samples" / "data"


@dataclass(frozen=True)
class Row:
    """One measured quantity at step t: sizes (K seeds × widths), the fitted slopes with their
    standard errors over seeds, the prediction (None: identically zero; "?" not predicted) and
    the verdict |slope − prediction| ≤ tolerance over the whole range."""

    kind: Kind
    name: str
    t: int
    sizes: np.ndarray
    fit: Fit
    predicted: Exp | str | None
    verdict: bool | None
    limit: Exp | str | None = "?"
    eps_free: Exp | str | None = "?"

    @property
    def slope(self) -> float:
        return self.fit.slope

    @property
    def stderr(self) -> float:
        return self.fit.stderr

    @property
    def wide_slope(self) -> float:
        """The slope over the widest half of the widths (the nearest the limit)."""
        return self.fit.wide_slope

    @property
    def label(self) -> str:
        match self.kind:
            case "init":
                return self.name
            case "change":
                return f"Δ{self.name}"
            case "f":
                return "f_t − f_0"
            case "q":
                return f"Q input {self.name}"
            case _:
                assert_never(self.kind)

    def to_json(self) -> dict[str, Any]:
        pred = self.predicted
        return {"kind": self.kind, "name": self.name, "label": self.label, "t": self.t,
                "sizes": self.sizes.tolist(), "slope": _num(self.slope),
                "stderr": _num(self.stderr), "wide_slope": _num(self.fit.wide_slope),
                "wide_stderr": _num(self.fit.wide_stderr),
                "narrow_slope": _num(self.fit.narrow_slope),
                "predicted": _exp(pred), "predicted_limit": _exp(self.limit),
                "predicted_eps_free": _exp(self.eps_free),
                "verdict": self.verdict}


@dataclass(frozen=True)
class CoordCheck:
    """All rows of a coordinate check, with the widths, seeds and tolerance used."""

    training: Training
    analysis: Analysis
    widths: tuple[int, ...]
    seeds: tuple[int, ...]
    tolerance: float
    rows: tuple[Row, ...]
    regime: Regime = "limit"

    @property
    def judged(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.verdict is not None)

    @property
    def holds(self) -> bool:
        return all(r.verdict for r in self.judged)

    def row(self, kind: Kind, name: str, t: int) -> Row:
        return next(r for r in self.rows if (r.kind, r.name, r.t) == (kind, name, t))

    def status(self, r: Row) -> Status:
        """ok / fails / inconclusive / curved / frozen / unjudged
        (:func:`runtime.coordcheck_stats.status`)."""
        if r.verdict is None or isinstance(r.predicted, str):
            return "unjudged"
        value = None if r.predicted is None else float(sympy.sympify(r.predicted))
        return status(value, r.fit, r.sizes, r.verdict, self.tolerance, self.widths)

    def to_json(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "seeds": list(self.seeds), "steps":
                self.training.steps, "param": self.training.param.name,
                "tolerance": self.tolerance, "stable": self.analysis["stable"].holds,
                "holds": self.holds, "regime": self.regime,
                "rows": [{**r.to_json(), "status": self.status(r)} for r in self.rows]}


def _exp(e: Exp | str | None) -> str | None:
    return None if isinstance(e, str) else ("zero" if e is None else fmt(e))


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a)))) if a.size else 0.0


class _Recorder:
    """The observer: per (kind, name, t) the RMS sizes of one seed at one width."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self.sizes: dict[tuple[Kind, str, int], float] = {}
        self.x0: dict[str, np.ndarray] = {}
        self.f0: np.ndarray | None = None

    def __call__(self, view: StepView) -> None:
        if view.t == 0:
            self.x0 = {k: np.array(v, dtype=np.float64) for k, v in view.values.items()}
            self.f0 = np.array(view.f)
        for name, v in view.values.items():
            if name not in self.names:  # inputs and parameters: not predicted
                continue
            if view.t == 0:
                self.sizes["init", name, 0] = rms(np.asarray(v))
            elif name in self.x0:
                self.sizes["change", name, view.t] = rms(np.asarray(v) - self.x0[name])
        if view.t > 0 and self.f0 is not None:
            self.sizes["f", "f", view.t] = rms(view.f - self.f0)
        for group, qs in view.q_inputs.items():
            self.sizes["q", group, view.t] = rms(np.concatenate([np.ravel(q) for q in qs]))


def predictions(analysis: Analysis, steps: int) -> dict[tuple[Kind, str, int], Exp | None]:
    """The calculus's exponent of every row it predicts (see the module docstring)."""
    stable = analysis["stable"].holds is True
    later = range(1, steps + 1) if stable else range(1, min(steps, 1) + 1)
    out: dict[tuple[Kind, str, int], Exp | None] = {}
    for name, e0, ed in analysis.sizes:
        out["init", name, 0] = e0
        for t in later:
            out["change", name, t] = ed
    df = analysis.quantity("e(Δf)") if stable else dict(analysis.first).get("e(Δf)")
    for t in later:
        out["f", "f", t] = df
    for q in analysis.q_inputs:
        out["q", q.group, 0] = q.step0
        for t in later:
            if t < steps:  # the last step has no update, hence no Q input
                out["q", q.group, t] = q.step1
    return out


def _verdict(pred: Exp | str | None, slope: float, sizes: np.ndarray, tol: float
             ) -> bool | None:
    if isinstance(pred, str):
        return None
    if pred is None:
        return bool(np.all(sizes <= ZERO_SIZE))
    value = sympy.sympify(pred)
    if value.free_symbols or not value.is_finite:
        return None
    return bool(np.isfinite(slope) and abs(slope - float(value)) <= tol)


def measure(training: Training, x: np.ndarray, y: np.ndarray, widths: Sequence[int],
            seeds: Sequence[int], dist: str, names: frozenset[str]
            ) -> dict[tuple[Kind, str, int], np.ndarray]:
    """Every recorded size as a (seeds × widths) array, keyed by (kind, name, t). The widest
    run is checked against memory first, so nothing is trained before a refusal."""
    need = estimate_bytes(training, backprops(training.program), max(widths),
                          training.schedule.n_points)
    memory.check_memory(need, f"the coordinate check at width {max(widths)}",
                        "drop the largest of --widths")
    recorded: list[list[dict[tuple[Kind, str, int], float]]] = []
    for n in widths:
        per_seed = []
        for seed in seeds:
            rec = _Recorder(names)
            train(training, x, y, n, (seed,), dist, observer=rec)
            per_seed.append(rec.sizes)
        recorded.append(per_seed)
    keys = [k for k in recorded[0][0] if all(k in s for w in recorded for s in w)]
    return {key: np.array([[recorded[i][k][key] for i in range(len(widths))]
                           for k in range(len(seeds))]) for key in keys}


Regime = Literal["limit", "eps-free", "crossover"]
EPS_MARGIN = 10.0
"""A Q input this many times larger (smaller) than ε is in the ε-free (limit) regime."""


def without_eps(opt: Optimizer) -> Optimizer | None:
    """The same optimizer with ε = 0 (None when it has no ε or ε = 0 already)."""
    if not opt.eps:
        return None
    args = ", ".join(f"{k}={0 if k == 'eps' else _arg(v)}" for k, v in opt.args)
    try:
        free = parse_optimizer(f"{opt.name}({args})")
    except NexortError:
        return None
    return replace(free, lr=opt.lr, weight_decay=opt.weight_decay, normalize=opt.normalize,
                   clip=opt.clip, text=f"{opt.text or opt.name} with eps=0")


def _arg(v: object) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return repr(float(v)) if isinstance(v, sympy.Rational) else str(v)


def regime(opt: Optimizer, q_sizes: Sequence[np.ndarray]) -> Regime:
    """Which prediction the measured step-0 Q inputs (seeds × widths each) call for."""
    eps = float(opt.eps or 0)
    if not eps or not q_sizes:
        return "limit"
    low = min(float(np.min(np.sqrt(np.mean(np.square(q), axis=0)))) for q in q_sizes)
    high = max(float(np.max(np.sqrt(np.mean(np.square(q), axis=0)))) for q in q_sizes)
    if low > EPS_MARGIN * eps:
        return "eps-free"
    return "limit" if high < eps / EPS_MARGIN else "crossover"


def coordcheck(training: Training, x: np.ndarray, y: np.ndarray, widths: Sequence[int],
               seeds: Sequence[int] = range(8), tolerance: float = 0.1,
               dist: str = "gaussian", analysis: Analysis | None = None) -> CoordCheck:
    """Train at every width for every seed and compare the fitted slopes with the calculus."""
    opt = training.tensors[0].optimizer if training.tensors else parse_optimizer("sgd")
    if analysis is None:
        analysis = analyse(training.program, training.param, opt, method="calculus")
    table = measure(training, x, y, widths, seeds, dist,
                    frozenset(name for name, _, _ in analysis.sizes))
    where = regime(opt, [v for k, v in table.items() if k[0] == "q" and k[2] == 0])
    free_opt = without_eps(opt)
    free = (analyse(training.program, training.param, free_opt, method="calculus")
            if free_opt is not None else analysis)
    limit_preds = predictions(analysis, training.steps)
    free_preds = predictions(free, training.steps)
    rows = []
    for key, sizes in table.items():
        slopes = fit(widths, sizes)
        lim: Exp | str | None = limit_preds.get(key, "?")
        eps0: Exp | str | None = free_preds.get(key, "?")
        pred = {"limit": lim, "eps-free": eps0, "crossover": "?" if lim != eps0 else lim}[where]
        rows.append(Row(key[0], key[1], key[2], sizes, slopes, pred,
                        _verdict(pred, slopes.slope, sizes, tolerance), lim, eps0))
    order = {"init": 0, "change": 1, "f": 2, "q": 3}
    rows.sort(key=lambda r: (r.t, order[r.kind]))
    return CoordCheck(training, analysis, tuple(widths), tuple(seeds), tolerance, tuple(rows),
                      where)


def default_data(program: Program, signal: ErrorSignal, root: Path = SAMPLE_DATA
                 ) -> TrainingData:
    """The bundled ``regress10.npz`` when the architecture has its 10 inputs; otherwise four
    fixed Gaussian points (seed 0, the inputs as given) with Gaussian targets (labels 0..k−1
    for ce), so that a coordinate check runs without a data file."""
    d = len(program.input_names)
    bundled = root / "regress10.npz"
    if d == 10 and bundled.is_file():
        return load_training_data(str(bundled), program, signal)
    rng = np.random.default_rng(0)
    k = len(program.outputs)
    x = rng.standard_normal((4, d))
    y = (np.arange(4) % k) if signal.name == "ce" else rng.standard_normal((4, k))
    return prepare(x, y if k > 1 or signal.name == "ce" else y[:, 0], None, program, signal,
                   "the default data")
