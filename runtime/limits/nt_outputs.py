"""k > 1 outputs in the neural-tangent limit (spec 05 §5.2: "for k outputs the obvious
contraction over the output index").

With outputs f_1 … f_k the error signal χ is (C, k) and the limit is

    f_{t+1,j}(ξ) = f_{t,j}(ξ) − Σ_W η_W E[G_W^j(ξ) Q_W(Σ_{i,j'} χ_{t,ij'} G_W^{j'}(ξ^i))],

G_W^j the scaled gradient of f_j.  Every (point, output) pair is a copy of one network: the
program gets a selector input s ∈ R^k and the single output o = Σ_j s_j·out_j, whose gradient at
s = e_j is that of f_j (linearity).  The total program over the C·k copies (ξ^i, e_j), parameters
shared (02 §2.3), then gives the joint law of all G_W^j(ξ^i) (cross-output terms included), so
both NT paths run unchanged on the flattened index i·k + j; only χ is computed on the (C, k)
view with the original training's error signal and batches.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import sympy

from compiler.ir import Input, Nonlin, Program
from compiler.symbols import sym
from compiler.train.setup import Training, build_training
from runtime.limits.nt_run import ChiFn, chi_at

SELECT = "nt_select"
OUTPUT = "nt_f"

def selector_program(program: Program) -> Program:
    """``program`` with the selector input and the one output Σ_j s_j·out_j."""
    taken = {i.name for i in program.inputs} | {p.name for p in program.params}
    taken |= {i.out for i in program.body}
    assert SELECT not in taken and OUTPUT not in taken, "reserved names"
    formula = sum((sym(f"{SELECT}[{j}]") * sym(o) for j, o in enumerate(program.outputs)),
                  sympy.Integer(0))
    return replace(program, inputs=(*program.inputs, Input(SELECT, (len(program.outputs),))),
                   body=(*program.body, Nonlin(OUTPUT, formula)), outputs=(OUTPUT,))


def flat_training(training: Training) -> Training:
    """One output over C·k points, the same parametrization and per-group optimizers (only its
    programs, kernels and samples are used; χ comes from the original, :func:`chi_function`)."""
    s = training.schedule
    flat = build_training(selector_program(training.program), training.param, "sgd", "mse",
                          steps=training.steps, n_train=s.n_points * training.outputs, n_test=0)
    return flat.with_optimizers({t.name: t.optimizer for t in training.tensors})


def flat_points(x: np.ndarray, k: int) -> np.ndarray:
    """Rows (ξ^i, e_j) in the order i·k + j."""
    return np.concatenate([np.repeat(x, k, axis=0), np.tile(np.eye(k), (x.shape[0], 1))], axis=1)


def chi_function(training: Training, y: np.ndarray) -> ChiFn:
    """χ_t on the (C, k) view (04 §4.2), flattened like the points."""
    k = training.outputs

    def chi(t: int, f: np.ndarray) -> np.ndarray:
        return chi_at(training, t, f.reshape(-1, k), y).reshape(-1)

    return chi
