"""The training data of ``nexort train`` (04 §4.2): inputs, targets, the train/test split.

DATA is an ``.npz`` with ``X_train`` (B × d, or B × the input's shape), ``y_train`` (B, or B × k)
and optionally ``X_test`` (rows = the architecture's input scalars as given, no rescaling). Test
points are evaluated at every step and never trained on. Targets have one column per output f_j;
for cross-entropy ``y_train`` may also be B integer class labels in 0..k−1 (made one-hot). Every
problem is an error naming the array and, for a NaN or Inf, the row.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.errors import UsageError
from compiler.ir import Program
from compiler.train.signals import ErrorSignal


@dataclass(frozen=True)
class TrainingData:
    """``x`` (points, d): the training rows then the test rows; ``y`` (n_train, k)."""

    x: np.ndarray
    y: np.ndarray
    n_train: int

    @property
    def n_test(self) -> int:
        return self.x.shape[0] - self.n_train


def load_training_data(path: str, program: Program, signal: ErrorSignal) -> TrainingData:
    """Read and check DATA for training ``program`` with ``signal``."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--data {path}: no such file")
    if not zipfile.is_zipfile(file):
        raise UsageError(f"--data {path} is not an .npz file (a zip archive of .npy arrays)")
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {path} as .npz: {e}") from None
    for key in ("X_train", "y_train"):
        if key not in arrays:
            raise UsageError(f"{path} has no {key} array (found: {', '.join(arrays) or 'none'})")
    return prepare(arrays["X_train"], arrays["y_train"], arrays.get("X_test"), program, signal,
                   path)


def prepare(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray | None,
            program: Program, signal: ErrorSignal, source: str = "data") -> TrainingData:
    """Check shapes and values against ``program`` (d inputs, k outputs) and stack the points."""
    train = _rows(x_train, "X_train", program, source)
    test = _rows(x_test, "X_test", program, source) if x_test is not None else None
    y = _targets(y_train, train.shape[0], len(program.outputs), signal, source)
    x = train if test is None else np.vstack([train, test])
    return TrainingData(x, y, train.shape[0])


def _rows(x: np.ndarray, key: str, program: Program, source: str) -> np.ndarray:
    d = len(program.input_names)
    if x.ndim == 0 or x.shape[0] == 0:
        raise UsageError(f"{source}: {key} has no rows (shape {x.shape})")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise UsageError(f"{source}: {key} must hold real numbers, not {x.dtype}")
    rows = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
    if rows.shape[1] != d:
        inputs = ", ".join(f"{i.name}{''.join(f'[{s}]' for s in i.shape)}"
                           for i in program.inputs)
        raise UsageError(f"{source}: {key} rows have {rows.shape[1]} numbers (shape {x.shape}), "
                         f"but arch {program.name} takes d = {d} input scalars ({inputs})",
                         program.inputs[0].loc if program.inputs else None)
    _finite(rows, key, source)
    return rows


def _finite(a: np.ndarray, key: str, source: str) -> None:
    bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        what = "NaN" if np.isnan(a[row]).any() else "Inf"
        raise UsageError(f"{source}: {key} row {row} contains {what}"
                         f"{f' (and {int(bad.sum()) - 1} more rows)' if bad.sum() > 1 else ''}")


def _targets(y: np.ndarray, rows: int, k: int, signal: ErrorSignal, source: str) -> np.ndarray:
    if signal.kind == "softmax" and y.shape == (rows,):
        return _one_hot(y, k, source)
    allowed = {(rows, k), (rows,)} if k == 1 else {(rows, k)}
    if y.shape not in allowed or not np.issubdtype(y.dtype, np.number):
        want = " or ".join(sorted(str(s) for s in allowed))
        if signal.kind == "softmax":
            want = f"({rows},) class labels or ({rows}, {k}) one-hot rows"
        raise UsageError(f"{source}: y_train has shape {y.shape} ({y.dtype}), expected {want}: "
                         f"one row per X_train row, one column per output of the arch")
    out = np.asarray(y, dtype=np.float64).reshape(rows, k)
    _finite(out, "y_train", source)
    return out


def _one_hot(labels: np.ndarray, k: int, source: str) -> np.ndarray:
    ok = np.issubdtype(labels.dtype, np.number) and np.all(np.isfinite(labels))
    if not ok or np.any(labels != np.round(labels)) or np.any((labels < 0) | (labels >= k)):
        raise UsageError(f"{source}: y_train as class labels must be integers 0..{k - 1} "
                         f"(one per output of the arch)")
    return np.eye(k)[labels.astype(int)]
