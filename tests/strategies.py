"""Hypothesis strategies: random well-formed NE⊗OR⊤ programs (spec 01 §1.2) for property tests.

:func:`programs` draws a verified :class:`Program` built directly as IR: parameters (vectors, one
or two matrices, a scalar), optional inputs contracted with a stacked vector parameter, and a body
mixing MatMul (optionally transposed), Avg, Nonlin (vector formulas and constant vectors
``vec(ψ(θ))``) and OuterNonlin of order 1 and 2 whose formulas read slot-0 vectors, copies and
scalars. Formulas are smooth — tanh, sin, sigmoid, erf and low-degree polynomials — so finite
differences and Monte Carlo limits are meaningful, and values stay O(1): every formula is
``f(linear form) · m`` with f bounded, or a polynomial only where a tracked magnitude bound stays
small. The printed form of every drawn program re-parses to it (tests check this).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy
from hypothesis import strategies as st

from compiler.ir import (
    Avg,
    Input,
    Instruction,
    MatMul,
    Nonlin,
    OuterNonlin,
    Param,
    Program,
    copy_ref,
)
from compiler.symbols import sigmoid, sym
from compiler.verify import verify

HALF = sympy.Rational(1, 2)
COEFFS = (HALF, -HALF, sympy.Integer(1), sympy.Integer(-1), sympy.Rational(3, 4))
BOUNDED: dict[str, Callable[[sympy.Expr], sympy.Expr]] = {
    "tanh": sympy.tanh,
    "sin": sympy.sin,
    "sigmoid": sigmoid,
    "erf": sympy.erf,
}
POLYNOMIALS: dict[str, tuple[Callable[[sympy.Expr], sympy.Expr], Callable[[float], float]]] = {
    # name: (f, a bound of |f(t)| given a bound of |t|)
    "id": (lambda t: t, lambda b: b),
    "quadratic": (lambda t: t + t**2 / 4, lambda b: b + b * b / 4),
}
POLY_LIMIT = 6.0
"""A polynomial is used only where the bound of its value stays below this (no blow-up)."""
COPIES = ("b", "c")


@dataclass
class _State:
    vectors: list[str] = field(default_factory=list)
    scalars: list[str] = field(default_factory=list)
    matrices: list[str] = field(default_factory=list)
    bound: dict[str, float] = field(default_factory=dict)
    body: list[Instruction] = field(default_factory=list)

    def new(self, prefix: str) -> str:
        return f"{prefix}{len(self.body) + 1}"


def _declarations(draw: st.DrawFn, state: _State, with_inputs: bool) -> tuple[list, list]:
    params = [Param("x0", "vector"), Param("x1", "vector"), Param("W", "matrix")]
    state.vectors += ["x0", "x1"]
    state.matrices.append("W")
    if draw(st.booleans()):
        params.append(Param("V", "matrix"))
        state.matrices.append("V")
    init = draw(st.sampled_from([HALF, sympy.Integer(-1), None]))
    params.append(Param("th", "scalar", (), init))
    state.scalars.append("th")
    state.bound.update({"x0": 3.0, "x1": 3.0, "th": 2.0})
    inputs = []
    if with_inputs:
        inputs.append(Input("xi", (2,)))
        params.append(Param("U", "vector", (2,)))
        state.scalars += ["xi[0]", "xi[1]"]
        state.bound.update({"xi[0]": 3.0, "xi[1]": 3.0})
        h = sym("U[0]") * sym("xi[0]") + sym("U[1]") * sym("xi[1]")
        state.body.append(Nonlin("h0", h))
        state.vectors.append("h0")
        state.bound["h0"] = 6.0
    return inputs, params


def _linear(draw: st.DrawFn, state: _State, symbols: list[tuple[sympy.Symbol, str]]) -> tuple:
    """Σ c_k s_k over 1–3 distinct drawn (symbol, variable) pairs, and a bound of its size."""
    chosen = draw(st.lists(st.sampled_from(symbols), min_size=1, max_size=3, unique=True))
    coeffs = [draw(st.sampled_from(COEFFS)) for _ in chosen]
    expr = sympy.Add(*(c * s for c, (s, _) in zip(coeffs, chosen, strict=True)))
    bound = sum(abs(float(c)) * state.bound[v] for c, (_, v) in zip(coeffs, chosen, strict=True))
    return expr, bound, {v for _, v in chosen}


def _formula(
    draw: st.DrawFn, state: _State, symbols: list[tuple[sympy.Symbol, str]], needed: list
) -> tuple[sympy.Expr, float]:
    """f(L)·m: L a linear form (that reads every symbol in ``needed``), f smooth, m an optional
    multiplier symbol. Returns the formula and a bound of its size."""
    lin, bound, _ = _linear(draw, state, symbols)
    lin = lin + sympy.Add(*(s for s, _ in needed))
    bound += sum(state.bound[v] for _, v in needed)
    name = draw(st.sampled_from([*BOUNDED, *POLYNOMIALS]))
    if name in POLYNOMIALS and POLYNOMIALS[name][1](bound) <= POLY_LIMIT:
        f, size = POLYNOMIALS[name][0](lin), POLYNOMIALS[name][1](bound)
    else:
        f, size = BOUNDED.get(name, sympy.tanh)(lin), 1.0
    if draw(st.booleans()):
        s, v = draw(st.sampled_from(symbols))
        f, size = f * s, size * state.bound[v]
    return f, size


def _vector_symbols(state: _State, copy: str | None) -> list[tuple[sympy.Symbol, str]]:
    return [(sym(v if copy is None else copy_ref(v, copy)), v) for v in state.vectors]


def _step(draw: st.DrawFn, state: _State, orders: tuple[int, ...], transposes: bool) -> None:
    kinds = ["matmul", "avg", "vec", *(f"order{r}" for r in orders)]
    kind = draw(st.sampled_from(kinds))
    scalars = [(sym(s), s) for s in state.scalars]
    if kind == "matmul":
        x = draw(st.sampled_from(state.vectors))
        w = draw(st.sampled_from(state.matrices))
        t = transposes and draw(st.booleans())
        _emit(state, MatMul(state.new("y"), w, x, t), "vector", state.bound[x])
    elif kind == "avg":
        x = draw(st.sampled_from(state.vectors))
        _emit(state, Avg(state.new("s"), x), "scalar", state.bound[x])
    elif kind == "vec":  # a constant vector ψ(θ)·1, whose gradient is a scalar's
        f, size = _formula(draw, state, scalars, [])
        _emit(state, Nonlin(state.new("k"), f), "vector", size)
    else:
        order = int(kind.removeprefix("order"))
        copies = COPIES[:order]
        symbols = _vector_symbols(state, None) + scalars
        needed = []
        for c in copies:
            symbols += _vector_symbols(state, c)
            needed.append(draw(st.sampled_from(_vector_symbols(state, c))))
        f, size = _formula(draw, state, symbols, needed)
        ins = OuterNonlin(state.new("y"), copies, f) if copies else Nonlin(state.new("y"), f)
        _emit(state, ins, "vector", size)


def _emit(state: _State, ins: Instruction, kind: str, bound: float) -> None:
    state.body.append(ins)
    (state.vectors if kind == "vector" else state.scalars).append(ins.out)
    state.bound[ins.out] = bound


@st.composite
def programs(
    draw: st.DrawFn,
    max_steps: int = 7,
    orders: tuple[int, ...] = (0, 1, 2),
    transposes: bool = True,
    inputs: bool | None = None,
) -> Program:
    """A random verified program; ``orders`` lists the Nonlin (0) and OuterNonlin orders used,
    ``inputs`` forces inputs on or off (None: drawn). The output mixes the last vectors and a
    scalar, so that most of the body is live."""
    state = _State()
    with_inputs = draw(st.booleans()) if inputs is None else inputs
    decl_inputs, params = _declarations(draw, state, with_inputs)
    for _ in range(draw(st.integers(1, max_steps))):
        _step(draw, state, orders, transposes)
    last = state.vectors[-3:]
    out = sympy.Add(*(draw(st.sampled_from(COEFFS)) * sym(v) for v in last))
    if state.scalars:
        out += sym(draw(st.sampled_from(state.scalars))) * sym(state.vectors[-1])
    state.body.append(Nonlin("out", out))
    return verify(Program("random", tuple(decl_inputs), tuple(params), tuple(state.body), ("out",)))
