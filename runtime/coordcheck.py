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
is 0 to rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, assert_never

import numpy as np
import sympy

from compiler.abcd import analyse
from compiler.abcd.conditions import Exp, fmt
from compiler.abcd.verdict import Analysis
from compiler.ir import Program
from compiler.train.setup import Training
from compiler.train.signals import ErrorSignal
from runtime.trainer import StepView, train
from runtime.training.dataset import TrainingData, load_training_data, prepare

Kind = Literal["init", "change", "f", "q"]
ZERO_SIZE = 1e-12
"""A size at or below this (relative to 1) is rounding: an exact zero measured."""
SAMPLE_DATA = Path(__file__).resolve().parent.parent / "samples" / "data"


@dataclass(frozen=True)
class Row:
    """One measured quantity at step t: sizes (K seeds × widths), the fitted slope with its
    standard error over seeds, the prediction (None: identically zero; "?" not predicted)."""

    kind: Kind
    name: str
    t: int
    sizes: np.ndarray
    slope: float
    stderr: float
    predicted: Exp | None | str
    verdict: bool | None

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
                "stderr": _num(self.stderr),
                "predicted": None if pred == "?" else ("zero" if pred is None else fmt(pred)),
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

    @property
    def judged(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.verdict is not None)

    @property
    def holds(self) -> bool:
        return all(r.verdict for r in self.judged)

    def row(self, kind: Kind, name: str, t: int) -> Row:
        return next(r for r in self.rows if (r.kind, r.name, r.t) == (kind, name, t))

    def to_json(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "seeds": list(self.seeds), "steps":
                self.training.steps, "param": self.training.param.name,
                "tolerance": self.tolerance, "stable": self.analysis["stable"].holds,
                "holds": self.holds, "rows": [r.to_json() for r in self.rows]}


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


def fit_slopes(widths: Sequence[int], sizes: np.ndarray) -> tuple[float, float]:
    """The least-squares slope of log(size) against log(n), the size at a width being the RMS
    over seeds (√ of the seed mean of the squared sizes, as the μP coordinate check pools
    seeds: a CLT-sized quantity such as a Q input that is 0 in the limit has a heavy-tailed
    per-seed size), and its jackknife standard error over seeds (NaN for one seed or a zero
    size)."""
    logn = np.log(np.asarray(widths, dtype=np.float64))
    centred = logn - logn.mean()

    def slope(rows: np.ndarray) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = 0.5 * np.log(np.mean(np.square(rows), axis=0))
            return float(logs @ centred / (centred @ centred))

    whole, k = slope(sizes), sizes.shape[0]
    if not np.isfinite(whole) or k < 2:
        return whole, float("nan")
    leave = np.array([slope(np.delete(sizes, i, axis=0)) for i in range(k)])
    return whole, float(np.sqrt((k - 1) / k * np.sum(np.square(leave - leave.mean()))))


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


def _verdict(pred: Exp | None | str, slope: float, sizes: np.ndarray, tol: float
             ) -> bool | None:
    if isinstance(pred, str):
        return None
    if pred is None:
        return bool(np.all(sizes <= ZERO_SIZE))
    value = sympy.sympify(pred)
    if value.free_symbols or not value.is_finite:
        return None
    return bool(np.isfinite(slope) and abs(slope - float(value)) <= tol)


def coordcheck(training: Training, x: np.ndarray, y: np.ndarray, widths: Sequence[int],
               seeds: Sequence[int] = (0, 1, 2), tolerance: float = 0.1,
               dist: str = "gaussian", analysis: Analysis | None = None) -> CoordCheck:
    """Train at every width for every seed and compare the fitted slopes with the calculus."""
    if analysis is None:
        opt = training.tensors[0].optimizer if training.tensors else "sgd"
        analysis = analyse(training.program, training.param, opt, method="calculus")
    names = frozenset(name for name, _, _ in analysis.sizes)
    recorded: list[list[dict[tuple[Kind, str, int], float]]] = []
    for n in widths:
        per_seed = []
        for seed in seeds:
            rec = _Recorder(names)
            train(training, x, y, n, (seed,), dist, observer=rec)
            per_seed.append(rec.sizes)
        recorded.append(per_seed)
    preds = predictions(analysis, training.steps)
    keys = [k for k in recorded[0][0] if all(k in s for w in recorded for s in w)]
    rows = []
    for key in keys:
        sizes = np.array([[recorded[i][k][key] for i in range(len(widths))]
                          for k in range(len(seeds))])
        slope, se = fit_slopes(widths, sizes)
        pred: Exp | None | str = preds.get(key, "?")
        rows.append(Row(key[0], key[1], key[2], sizes, slope, se, pred,
                        _verdict(pred, slope, sizes, tolerance)))
    order = {"init": 0, "change": 1, "f": 2, "q": 3}
    rows.sort(key=lambda r: (r.t, order[r.kind]))
    return CoordCheck(training, analysis, tuple(widths), tuple(seeds), tolerance, tuple(rows))


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
