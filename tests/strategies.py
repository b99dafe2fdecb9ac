"""Hypothesis strategies: random well-formed NE⊗OR⊤ programs (spec 01 §1.2) for property tests.

:func:`programs` draws a verified :class:`Program` built directly as IR: parameters (vectors, one
or two matrices, a scalar), optional inputs contracted with a stacked vector parameter, and a body
mixing MatMul (optionally transposed), Avg, Nonlin (vector formulas and constant vectors
``vec(ψ(θ))``) and OuterNonlin of order 1 and 2 whose formulas read slot-0 vectors, copies and
scalars. Formulas are smooth — tanh, sin, sigmoid, erf and low-degree polynomials — so finite
differences and Monte Carlo limits are meaningful, and values stay O(1): every formula is
``f(linear form) · m`` with f bounded, or a polynomial only where a tracked magnitude bound stays
small. The printed form of every drawn program re-parses to it (tests check this).

:func:`master_programs` draws programs for the Master-Theorem property: no inputs, a scalar with
a fixed initial value, and a backward-like motif y = M x, (y₂ = M φ(y),) g = ψ(y, …), z = Mᵀ g
drawn often, so that most programs have live dot terms (01 §1.4 Dot), plus Avg probes of recent
vectors (even functions and products, rarely 0 by a sign flip).
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
    reads,
)
from compiler.symbols import relu, sigmoid, sym
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
    constant: set[str] = field(default_factory=set)
    """Vectors whose ket is a constant (vec(ψ(θ)) and formulas of constants only)."""
    constant_matmuls: bool = True
    """Whether a MatMul may take a constant vector (master_programs)."""

    def new(self, prefix: str) -> str:
        return f"{prefix}{len(self.body) + 1}"


def _base_params(
    draw: st.DrawFn, state: _State, inits: list[sympy.Expr | None], th_bound: float
) -> list[Param]:
    """Vectors x0, x1, the matrix W (maybe V) and the scalar th with an init from ``inits``."""
    params = [Param("x0", "vector"), Param("x1", "vector"), Param("W", "matrix")]
    state.vectors += ["x0", "x1"]
    state.matrices.append("W")
    if draw(st.booleans()):
        params.append(Param("V", "matrix"))
        state.matrices.append("V")
    params.append(Param("th", "scalar", (), draw(st.sampled_from(inits))))
    state.scalars.append("th")
    state.bound.update({"x0": 3.0, "x1": 3.0, "th": th_bound})
    return params


def _declarations(draw: st.DrawFn, state: _State, with_inputs: bool) -> tuple[list, list]:
    params = _base_params(draw, state, [HALF, sympy.Integer(-1), None], 2.0)
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
    draw: st.DrawFn,
    state: _State,
    symbols: list[tuple[sympy.Symbol, str]],
    needed: list,
    kinks: bool = False,
) -> tuple[sympy.Expr, float]:
    """f(L)·m: L a linear form (that reads every symbol in ``needed``), f smooth (or relu, with
    ``kinks``), m an optional multiplier symbol. Returns the formula and a bound of its size."""
    lin, bound, _ = _linear(draw, state, symbols)
    lin = lin + sympy.Add(*(s for s, _ in needed))
    lin = lin + sympy.Add(*(s for s, _ in needed if not lin.has(s)))  # c·s + s cancelled (c = −1)
    bound += sum(state.bound[v] for _, v in needed)
    name = draw(st.sampled_from([*BOUNDED, *POLYNOMIALS, *(["relu"] if kinks else [])]))
    if name in POLYNOMIALS and POLYNOMIALS[name][1](bound) <= POLY_LIMIT:
        f, size = POLYNOMIALS[name][0](lin), POLYNOMIALS[name][1](bound)
    elif name == "relu":
        f, size = relu(lin), bound
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
        _outer_step(draw, state, int(kind.removeprefix("order")))


def _outer_step(draw: st.DrawFn, state: _State, order: int, kinks: bool = False) -> None:
    """A Nonlin (order 0) or an OuterNonlin of ``order`` reading one drawn vector of every copy."""
    copies = COPIES[:order]
    symbols = _vector_symbols(state, None) + [(sym(s), s) for s in state.scalars]
    needed = []
    for c in copies:
        symbols += _vector_symbols(state, c)
        needed.append(draw(st.sampled_from(_vector_symbols(state, c))))
    f, size = _formula(draw, state, symbols, needed, kinks)
    ins = OuterNonlin(state.new("y"), copies, f) if copies else Nonlin(state.new("y"), f)
    _emit(state, ins, "vector", size)


def _emit(state: _State, ins: Instruction, kind: str, bound: float) -> None:
    if isinstance(ins, Nonlin | OuterNonlin):
        own = {v.name for v in ins.formula.free_symbols} & set(state.vectors)
        if own <= state.constant:
            state.constant.add(ins.out)
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


# --- Master-Theorem programs: W and Wᵀ interacting ------------------------------------------


def _opposite_matmul(draw: st.DrawFn, state: _State, kinks: bool) -> None:
    """The backward-like motif that makes dot terms live (01 §1.4 Dot): from a drawn vector x,
    y₁ = M x (M a drawn orientation, W or Wᵀ), optionally an rnn-like chain y₂ = M φ(y₁, …), then
    g = ψ(y_last, …) (or g = y_last: the Gram pattern Mᵀ M x) and z = Mᵀ g, whose dot term
    Σ_y |y.arg⟩ E[∂g/∂ŷ] runs over the hats of the chain; optionally the probe avg(z·x), which
    reads the dot term directly (E[z x] = Σ c·E[y.arg x])."""
    w, t = draw(st.sampled_from(state.matrices)), draw(st.booleans())
    x = draw(st.sampled_from(_matmul_args(state)))
    y = state.new("y")
    _emit(state, MatMul(y, w, x, t), "vector", state.bound[x])
    for _ in range(draw(st.integers(0, 1))):
        f, size = _formula(draw, state, _own_symbols(state), [(sym(y), y)], kinks)
        h = state.new("h")
        _emit(state, Nonlin(h, f), "vector", size)
        y = state.new("y")
        _emit(state, MatMul(y, w, h, t), "vector", size)
    g = y
    if draw(st.booleans()):
        f, size = _formula(draw, state, _own_symbols(state), [(sym(y), y)], kinks)
        g = state.new("g")
        _emit(state, Nonlin(g, f), "vector", size)
    z = state.new("z")
    _emit(state, MatMul(z, w, g, not t), "vector", state.bound[g])
    if draw(st.sampled_from([True, True, False])):
        _avg_of(state, sym(z) * sym(x), state.bound[z] * state.bound[x])


def _own_symbols(state: _State) -> list[tuple[sympy.Symbol, str]]:
    return _vector_symbols(state, None) + [(sym(s), s) for s in state.scalars]


def _avg_of(state: _State, formula: sympy.Expr, bound: float) -> None:
    q = state.new("q")
    _emit(state, Nonlin(q, formula), "vector", bound)
    _emit(state, Avg(state.new("s"), q), "scalar", bound)


EVEN: dict[str, tuple[Callable[[sympy.Expr], sympy.Expr], Callable[[float], float]]] = {
    # even functions (their Avg is not 0 by a sign flip): f and a bound of |f| given one of |t|
    "t*tanh(t)": (lambda t: t * sympy.tanh(t), lambda b: b),
    "cos": (sympy.cos, lambda b: 1.0),
    "t^2/(1+t^2)": (lambda t: t**2 / (1 + t**2), lambda b: 1.0),
}


def _probe(draw: st.DrawFn, state: _State, kinks: bool) -> None:
    """An Avg scalar of recent vectors: of an even function of one (never 0 by a sign flip),
    of a product a·b (a kernel entry ⟨a|b⟩) or of a general formula f(L)·m."""
    kind = draw(st.sampled_from(["even", "product", "even", "formula"]))
    a, b = (draw(st.sampled_from(state.vectors[-3:])) for _ in range(2))
    if kind == "product":
        _avg_of(state, sym(a) * sym(b), state.bound[a] * state.bound[b])
    elif kind == "even":
        f, size = EVEN[draw(st.sampled_from(sorted(EVEN)))]
        _avg_of(state, f(sym(a)), size(state.bound[a]))
    else:
        _avg_of(state, *_formula(draw, state, _own_symbols(state), [], kinks))


@st.composite
def master_programs(
    draw: st.DrawFn,
    order2: bool = False,
    max_blocks: int = 5,
    kinks: bool = True,
    constant_matmuls: bool = True,
) -> Program:
    """A random verified program for the Master-Theorem property (01 §1.5, 07 §7.3): vectors x0,
    x1, W (and maybe V), a scalar th with a fixed initial value (so that seeds can be averaged),
    and 1–``max_blocks`` blocks among the backward-like W/Wᵀ motif (drawn most often), a plain
    MatMul (maybe transposed), a Nonlin with scalar arguments, a constant vector ψ(θ)·1, an
    order-1 OuterNonlin and an Avg probe; with ``order2`` one order-2 OuterNonlin is inserted.
    Every program has at least two Avg scalars; ``kinks`` allows relu in formulas and
    ``constant_matmuls`` MatMuls of constant vectors (W·vec(ψ(θ)), a bias-like pattern)."""
    state = _State(constant_matmuls=constant_matmuls)
    params = _base_params(draw, state, [HALF, sympy.Integer(-1), sympy.Rational(3, 4)], 1.0)
    blocks = ["backward"] * 4 + ["probe", "matmul", "nonlin", "vec", "order1"]
    kinds = draw(st.lists(st.sampled_from(blocks), min_size=1, max_size=max_blocks))
    if order2:
        kinds.insert(draw(st.integers(0, len(kinds))), "order2")
    for kind in kinds:
        if kind == "backward":
            _opposite_matmul(draw, state, kinks)
        elif kind == "probe":
            _probe(draw, state, kinks)
        elif kind == "matmul":
            _matmul_step(draw, state)
        elif kind == "vec":
            f, size = _formula(draw, state, [(sym(s), s) for s in state.scalars], [], kinks)
            _emit(state, Nonlin(state.new("k"), f), "vector", size)
        else:
            order = {"nonlin": 0, "order1": 1, "order2": 2}[kind]
            _outer_step(draw, state, order, kinks)
    while sum(isinstance(i, Avg) for i in state.body) < 2:
        _probe(draw, state, kinks)
    last = [v for v in state.vectors if not v.startswith("q")][-3:]
    out = sympy.Add(*(draw(st.sampled_from(COEFFS)) * sym(v) for v in last))
    state.body.append(Nonlin("out", out))
    used = {v for ins in state.body for v in reads(ins)} | {"x0", "x1"}
    params = [q for q in params if q.name in used]  # an unused V would only duplicate programs
    return verify(Program("random", (), tuple(params), tuple(state.body), ("out",)))


def _matmul_args(state: _State) -> list[str]:
    if state.constant_matmuls:
        return state.vectors
    return [v for v in state.vectors if v not in state.constant]


def _matmul_step(draw: st.DrawFn, state: _State) -> None:
    x = draw(st.sampled_from(_matmul_args(state)))
    w, t = draw(st.sampled_from(state.matrices)), draw(st.booleans())
    _emit(state, MatMul(state.new("y"), w, x, t), "vector", state.bound[x])
