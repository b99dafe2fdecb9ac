"""Input data: a batch of B inputs bound to a program's input scalars (spec 02 §2.1).

Inputs come as a (B, d) array (d = number of input coordinates, row-major over the declared
shapes: ``input xi[3][4]`` takes 12 columns, or a (B, 3, 4) array), a single input (d,), or a
dict from input entry names to (B,) arrays. On the command line DATA is an ``.npz`` with
``X_train`` (B × d) and optionally ``X_test``, or a comma-separated list for one input.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from compiler.errors import UsageError
from compiler.ir import Program


def input_batch(program: Program, inputs: Any) -> tuple[int, dict[str, np.ndarray]]:
    """(B, {input entry name: (B,) array}) for ``inputs`` (see module docstring)."""
    names = program.input_names
    if not names:
        if inputs is not None and np.size(inputs) > 0:
            raise UsageError(f"arch {program.name} declares no inputs, but inputs were given")
        return 1, {}
    if inputs is None:
        raise UsageError(f"arch {program.name} needs inputs ({_describe(program)})")
    if isinstance(inputs, dict):
        missing = [n for n in names if n not in inputs]
        if missing:
            raise UsageError(f"missing input values for {', '.join(missing[:5])}")
        cols = [np.atleast_1d(_floats(inputs[n], f"input {n}")) for n in names]
        if len({c.shape for c in cols}) != 1 or cols[0].ndim != 1:
            raise UsageError("every input entry needs a (B,) array of the same length")
        if cols[0].shape[0] == 0:
            raise UsageError("the input batch is empty (no values for any input)")
        return cols[0].shape[0], dict(zip(names, cols, strict=True))
    x = _rows(_floats(inputs, "inputs"), "the input batch")
    if x.shape[1] != len(names):
        raise UsageError(
            f"inputs have dimension {x.shape[1]}, but arch {program.name} takes {len(names)} "
            f"({_describe(program)})",
            program.inputs[0].loc,  # point at the declaration the data must match
        )
    if not np.all(np.isfinite(x)):
        raise UsageError("inputs contain NaN or Inf")
    return x.shape[0], {name: x[:, j].copy() for j, name in enumerate(names)}


def _floats(values: object, what: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"{what} are not numbers") from None


def _rows(x: np.ndarray, what: str) -> np.ndarray:
    """``x`` as a (B, d) matrix: (B, …) flattens each row, a single input (d,) is one row. A
    batch without rows is refused: f is evaluated at each input, and there would be none."""
    if x.ndim <= 1:
        x = x.reshape(1, x.size)
    if x.shape[0] == 0:
        raise UsageError(f"{what} has no rows: at least one input is needed")
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))


def _describe(program: Program) -> str:
    return ", ".join(f"input {i.name}{''.join(f'[{s}]' for s in i.shape)}" for i in program.inputs)


def load_inputs(spec: str) -> tuple[np.ndarray, int]:
    """Read DATA from the command line: (X, number of training rows). X stacks X_train and
    X_test (if present) row-wise."""
    path = Path(spec)
    if spec.endswith(".npz") or path.is_file():
        if path.is_file() and not zipfile.is_zipfile(path):  # numpy would call it "pickled"
            raise UsageError(f"{spec} is not an .npz file (a zip archive of .npy arrays)")
        try:
            with np.load(path, allow_pickle=False) as data:
                if "X_train" not in data:
                    raise UsageError(
                        f"{spec} has no X_train array (found: {', '.join(data.files)})"
                    )
                train = np.asarray(data["X_train"], dtype=np.float64)
                test = np.asarray(data["X_test"], dtype=np.float64) if "X_test" in data else None
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read {spec} as .npz: {e}") from None
        for key, rows in (("X_train", train), ("X_test", test)):
            if rows is not None and rows.size == 0:  # numpy cannot even reshape it
                raise UsageError(f"{spec}: {key} is empty (shape {rows.shape}); give it rows")
        train = train.reshape(train.shape[0], -1) if train.ndim > 1 else train.reshape(1, -1)
        if test is None:
            return train, train.shape[0]
        test = test.reshape(test.shape[0], -1) if test.ndim > 1 else test.reshape(1, -1)
        if test.shape[1] != train.shape[1]:
            raise UsageError(f"X_test has {test.shape[1]} columns but X_train has {train.shape[1]}")
        return np.vstack([train, test]), train.shape[0]
    try:
        row = np.array([float(v) for v in spec.split(",") if v.strip()], dtype=np.float64)
    except ValueError:
        raise UsageError(
            f"--inputs {spec!r} is neither an .npz file nor a comma list of numbers"
        ) from None
    return row.reshape(1, -1), 1
