"""Kets of the μ-limit engine computed without full-size temporaries (05 §5.4 on particles).

The engine evaluates Nonlin instructions on (M, points) particle arrays as the finite-width
executor does (:mod:`runtime.executor`), with two exceptions where the formula's shape allows a
cheaper evaluation of the same numbers (round-off apart):

* a formula linear in its vectors with coefficients of scalars only, ψ = Σ_k c_k(θ) v_k, whose
  vectors are all parameters (M, 1) (the input layer h¹ = Σ_j ξ_j u_j) is one (M, k) by
  (k, points) product instead of 2k full-size temporaries (a quarter of a one-hidden-layer run
  at M = 65536 per replica);
* a vector parameter's gradient ket that only the update reads, linear in its vectors
  (dU_j = ξ_j·dh¹), is never formed: the update needs Σ_i χ_i dU_j(ξ^i) = Σ_k v_k (c_k ⊙ χ), one
  product with the batch's χ (its d kets of (M, B) were a third of such a run's time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

import numpy as np
import sympy

from compiler.ir import Nonlin, Program, formula_args, reads
from compiler.passes.gradients import GradientMap
from runtime.codegen import NumpyFunction, compile_formula, compile_instruction

Values = dict[str, np.ndarray]

LinearForm = tuple[tuple[str, ...], tuple[tuple[NumpyFunction, tuple[str, ...]], ...]]
"""(vector variables v_k, (c_k as a function of its scalar variables, those variables))."""

MIN_TERMS = 3
"""A forward formula becomes one product from this many vector terms (fewer gain nothing)."""


def linear_form(ins: Nonlin, kinds: Mapping[str, str]) -> LinearForm | None:
    """ψ = Σ_k c_k(θ) v_k for the instruction's formula, or None (see the module docstring)."""
    args = formula_args(ins)
    return _linear_form(ins.formula, tuple((s, v) for s, v, _ in args if kinds[v] == "vector"),
                        tuple((s, v) for s, v, _ in args if kinds[v] != "vector"))


@lru_cache(maxsize=4096)
def _linear_form(formula: sympy.Expr, vectors: tuple[tuple[sympy.Symbol, str], ...],
                 scalars: tuple[tuple[sympy.Symbol, str], ...]) -> LinearForm | None:
    if not vectors:
        return None
    try:
        coeffs = [sympy.diff(formula, v) for v, _ in vectors]
        vs = {v for v, _ in vectors}
        if any(c.free_symbols & vs for c in coeffs):
            return None
        if sympy.expand(formula - sum(c * v for c, (v, _) in zip(coeffs, vectors, strict=True))):
            return None
    except (TypeError, ValueError, NotImplementedError):  # not differentiable as written
        return None
    names = dict(scalars)
    funcs = []
    for c in coeffs:
        syms = tuple(sorted((x for x in c.free_symbols if x in names), key=lambda x: x.name))
        funcs.append((compile_formula(c, syms), tuple(names[x] for x in syms)))
    return tuple(var for _, var in vectors), tuple(funcs)


def _coefficients(form: LinearForm, values: Values, m: int) -> list[np.ndarray]:
    return [np.asarray(f(*(values[x] for x in args), m), dtype=np.float64).reshape(-1)
            for f, args in form[1]]


def apply_linear(form: LinearForm, values: Values, m: int) -> np.ndarray | None:
    """Σ_k c_k v_k as V (M, k) @ C (k, points) when every v_k is a parameter (M, 1)."""
    vecs = form[0]
    if len(vecs) < MIN_TERMS or any(values[v].shape != (m, 1) for v in vecs):
        return None
    cs = _coefficients(form, values, m)
    width = max(c.size for c in cs)
    coeff = np.stack([np.broadcast_to(c, (width,)) for c in cs])
    return np.hstack([values[v] for v in vecs]) @ coeff


def nonlin(ins: Nonlin, values: Values, m: int, kinds: Mapping[str, str]) -> np.ndarray:
    """A Nonlin's ket as the executor computes it, but without its defensive copy: the engine
    never writes into a ket, and the copy of every (M, points) result was a third of the time
    of a one-hidden-layer run (measured, M = 16384 per replica). A result that does not depend
    on every axis stays a broadcast view of shape (M, batch)."""
    form = linear_form(ins, kinds)
    fast = None if form is None else apply_linear(form, values, m)
    if fast is not None:
        return fast
    arrays = [values[var] for _, var, _ in formula_args(ins)]
    y = np.asarray(compile_instruction(ins)(*arrays, m), dtype=np.float64)
    shape = (m, max((a.shape[-1] for a in arrays), default=1))
    return y if y.shape == shape else np.broadcast_to(y, shape)


def deferred_gradients(program: Program, grads: GradientMap, entries: Iterable[str],
                       start: int) -> dict[str, LinearForm]:
    """The gradient kets of the vector parameters ``entries`` that no instruction, output or
    matrix outer product reads and whose formula is linear in its vectors: name → its form."""
    names = {grads.get(e) for e in entries} - {None}
    read = set(program.outputs) | {n for u in grads.uses for n in (u.out, u.arg, u.d_out)}
    for ins in program.body:
        read.update(reads(ins))
    out: dict[str, LinearForm] = {}
    for ins in program.body[start:]:
        if isinstance(ins, Nonlin) and ins.out in names and ins.out not in read:
            form = linear_form(ins, program.kinds)
            if form is not None:
                out[ins.out] = form
    return out


def contract(form: LinearForm, values: Values, m: int, chi: np.ndarray) -> np.ndarray:
    """Σ_i χ_i ψ(ξ^i) = Σ_k v_k (c_k ⊙ χ) for ψ = Σ_k c_k v_k over the batch: (M, 1)."""
    total = np.zeros((m, 1))
    for v, c in zip(form[0], _coefficients(form, values, m), strict=True):
        w = np.broadcast_to(c, chi.shape) * chi
        x = values[v]
        total += x @ w[:, None] if x.shape[-1] == w.shape[0] else x * w.sum()
    return total
