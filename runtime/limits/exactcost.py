"""The up-front cost model of the exact path (:mod:`runtime.limits.quadrature`, spec 01 §1.6):
how many integrals it will do, over how many Gaussian dimensions, on how many grid points,
the bytes of its largest grid and of its linear forms, and the seconds that takes, estimated
from the ket program alone (its formulas' structure; nothing composed or integrated):
``method="auto"`` weighs it against Monte Carlo's estimate (:mod:`runtime.limits.mccost`) before
running either, and a budget (``--memory-limit``) refuses it before it allocates.

The rules mirror the exact path statement by statement, per input column:

* a ket is *linear* (an affine form of the basis ζ: an initial vector, a hat, an affine formula of
  linear kets, a MatMul whose live dot terms are linear) or a *node*, a sum of terms, each the
  set of Gaussian leaves its product reaches (sums and products distribute as in
  quadreduce.split_terms; a function of linear arguments only is one new leaf per affine
  argument, as quadreduce.collapse makes it; any other function mixes its arguments' leaves),
  with the kinks (relu, step, …) on the way;
* integrals: one per Avg not proved 0 by symmetry; per MatMul, one per inner product with a node
  among its Gram row (every earlier hat of its orientation: O(H²) per orientation) and one per
  Stein regressor when its argument is a node;
* an integrand over more than two leaves is split into its terms (merged when one's leaves hold
  another's); each part's leaves split into groups of mutually dependent leaves (sharing an
  initial vector or a matrix orientation), integrated separately; a group of r leaves has
  q = min(kinks, r, 2) kink dimensions and r − q smooth ones, and the grid of quadgrid's rules
  (:func:`runtime.limits.quadgrid.grid_points`) at both levels under the memory budget's cap
  on its points.

Seconds = integrals · SECONDS_PER_INTEGRAL + points · SECONDS_PER_POINT, plus
SECONDS_PER_WIDE per group over more than two dimensions (tensor Hermite, sympy-heavy).
Measured (``bench/bench_exact.py --costs``, kernel programs of mlp3, mlp2_erf, attention,
layernorm_mlp, transformer_block at B = 2–8): the integrals and the largest grid are counted
exactly, the grid points within 0.5–2.5×, the seconds within 0.7–2.7× of the CPU time.  Not
seen: a sum over independent leaves that quadgrid does not factor (rnn's backward Gram entries
are 3–4-dimensional integrals, counted here as 2-dimensional ones).  A program with an
OuterNonlin is refused statically (``ExactCost.refusal``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.ir import Program
from compiler.kets.lowering import AvgLimit, FormulaKet, InitKet, KetProgram, MatMulKet
from runtime.limits.quadgrid import grid_points
from runtime.limits.result import LimitOptions

SECONDS_PER_INTEGRAL = 5e-3
"""CPU seconds of one integral's symbolic work (compose, reduce, factor, compile, SVD), measured
on the kernel programs of layernorm_mlp (B = 2, 4, 8: 4.4–6.6 ms) and transformer_block
(B = 2, 4: 5.6–6.2 ms) on 2 shared cores."""
SECONDS_PER_POINT = 2e-8
"""CPU seconds per grid point and level (the integrand at a few leaves, numpy): 10–60 ns
measured (relu kink grids of layernorm_mlp at the low end, erf² panels of mlp2_erf high)."""
SECONDS_PER_WIDE = 0.5
"""Extra seconds per group over more than two dimensions (term splitting, tensor Hermite):
rnn's kernel program spends ~2 s on its four such groups."""


@dataclass(frozen=True)
class ExactCost:
    """The exact path's cost for ``batch`` input columns: ``integrals`` and grid ``points``
    (every level, every column), the largest grid (``largest_points``, ``largest_dims``,
    ``largest_bytes``), the size of the Gaussian basis of a column (``basis``) and the bytes of
    its linear forms (``form_bytes``), ``seconds``; ``refusal``: why the exact path cannot run
    at all (None: it may)."""

    integrals: int
    points: int
    largest_points: int
    largest_dims: int
    largest_bytes: int
    basis: int
    form_bytes: int
    seconds: float
    refusal: str | None = None

    @property
    def bytes(self) -> int:
        """Peak bytes: the largest grid beside a column's linear forms."""
        return self.largest_bytes + self.form_bytes

    def refusal_over(self, budget: int) -> str:
        """Why the exact path does not fit ``budget`` bytes (for NotApplicableError)."""
        return (f"it needs about {size_text(self.bytes)} ({self.summary()}), more than the "
                f"memory budget of {size_text(budget)}")

    def summary(self) -> str:
        """One clause for a note: what the estimate counts."""
        return (f"{self.integrals} integrals, {self.points:.2e} grid points, the largest "
                f"{self.largest_points} points over {self.largest_dims} dimension(s) "
                f"({size_text(self.largest_bytes)}), {self.basis} Gaussian basis vectors")


def size_text(nbytes: float) -> str:
    """Bytes for a message: GiB from 1 GiB up, else MiB (0.00 GiB says nothing)."""
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


Terms = tuple[frozenset[str], ...]
"""A ket as a sum of terms, each the set of Gaussian leaves its product reaches."""


@dataclass(frozen=True)
class _Shape:
    """The static shape of one ket: ``linear`` (then ``terms`` is itself, one leaf) or a node,
    a sum of ``terms``; ``kinks``: kink applications on the way."""

    linear: bool
    terms: Terms
    kinks: int
    smooth: bool = False  # a smooth non-polynomial function (tanh, erf, exp …) on the way

    @property
    def leaves(self) -> frozenset[str]:
        return frozenset().union(*self.terms)


def estimate_exact(kets: KetProgram, batch: int, opts: LimitOptions) -> ExactCost:
    """The exact path's cost on ``kets`` for ``batch`` input columns (see the module rules)."""
    walk = _Walk(kets, opts)
    for s in kets.stmts:
        refusal = walk.step(s)
        if refusal is not None:
            return ExactCost(0, 0, 0, 0, 0, walk.basis, 0, math.inf, refusal)
    per = walk.seconds()
    return ExactCost(
        batch * walk.integrals, batch * walk.points, walk.largest[0], walk.largest[1],
        walk.largest[2], walk.basis, 8 * walk.basis * walk.linear_kets, batch * per,
    )


class _Walk:
    """The statement-by-statement count of one column (see the module rules)."""

    def __init__(self, kets: KetProgram, opts: LimitOptions) -> None:
        self.kets, self.opts = kets, opts
        self.shape: dict[str, _Shape] = {}
        self.tokens: dict[str, frozenset[str]] = {}  # leaf -> independent sources it reads
        self.hat_args: dict[tuple[str, bool], list[str]] = {}
        self.basis = self.linear_kets = self.integrals = self.points = self.wide = 0
        self.largest = (0, 0, 0)

    def seconds(self) -> float:
        return (self.integrals * SECONDS_PER_INTEGRAL + self.points * SECONDS_PER_POINT
                + self.wide * SECONDS_PER_WIDE)

    def step(self, s: object) -> str | None:
        match s:
            case InitKet(out=name):
                self.basis += 1
                self._linear(name, frozenset({f"init:{name}"}))
            case AvgLimit(arg=x):
                from runtime.limits.ketrules import odd_avg

                if not odd_avg(self.kets, x):
                    self._integral(self.shape[x], self.shape[x], expectation=True)
            case FormulaKet() if s.order:
                return f"|{s.out}⟩ is an OuterNonlin (E′ over copies): not on the exact path"
            case FormulaKet():
                self._formula(s)
            case MatMulKet():
                self._matmul(s)
        return None

    def _linear(self, name: str, tokens: frozenset[str]) -> None:
        self.linear_kets += 1
        self.tokens[name] = tokens
        self.shape[name] = _Shape(True, (frozenset({name}),), 0)

    def _formula(self, s: FormulaKet) -> None:
        from compiler.ir import formula_args

        args = {x: self.shape[v] for x, v, _ in formula_args(s.ins)
                if self.kets.kind(v) == "vector"}
        kinks = _kinks(s.formula)
        if all(a.linear for a in args.values()) and kinks == 0 and _affine(s.formula, args):
            tokens = frozenset().union(*(self._tokens(a.leaves) for a in args.values()))
            self._linear(s.out, tokens)
            return
        terms = _Terms(self, s.out, args).of(s.formula)
        smooth = any(a.smooth for a in args.values()) or _smooth(s.formula, args)
        self.shape[s.out] = _Shape(
            False, terms, kinks + sum(a.kinks for a in args.values()), smooth)

    def _tokens(self, leaves: frozenset[str]) -> frozenset[str]:
        return frozenset().union(*(self.tokens[x] for x in leaves))

    def _matmul(self, s: MatMulKet) -> None:
        from runtime.limits.ketrules import split_dots, stein_hats

        o = s.hat.orientation
        arg = self.shape[s.hat.arg]
        for a in self.hat_args.setdefault(o, [])[: s.hat.index]:  # the Gram row
            self._integral(self.shape[a], arg)
        self._integral(arg, arg)
        self.hat_args[o].append(s.hat.arg)
        self.basis += 1
        hat = f"{s.out}^"  # the hat is a leaf of its own (quadrature: self.hats)
        self._linear(hat, frozenset({f"hat:{o[0]}:{o[1]}"}))
        _, live = split_dots(s, stein=True, gradient_independence=self.opts.gradient_independence)
        if live:
            for h in stein_hats(self.kets, s, self.shape):
                self._integral(arg, self.shape[f"{h}^"])
        zs = [self.shape[c.hat.arg] for c in live]
        if all(z.linear for z in zs):
            self._linear(s.out, self._tokens(frozenset({hat}).union(*(z.leaves for z in zs))))
            return
        terms = self.shape[hat].terms + tuple(t for z in zs for t in z.terms)
        self.shape[s.out] = _Shape(False, _capped(terms), sum(z.kinks for z in zs),
                                   any(z.smooth for z in zs))

    def _integral(self, a: _Shape, b: _Shape, expectation: bool = False) -> None:
        """⟨a|b⟩ (``expectation``: E|a⟩): an inner product of linear kets is free, every other
        one is an integral."""
        if a.linear and b.linear and not expectation:
            return
        self.integrals += 1
        terms = a.terms if expectation else _products(a.terms, b.terms)
        kinks = a.kinks + (0 if expectation else b.kinks)
        smooth = a.smooth or b.smooth
        for r in self._parts(terms):
            pts, fine = grid_points(r, min(kinks, r, 2), self._cap(r), smooth)
            self.points += pts
            self.wide += r > 2
            if fine > self.largest[0]:
                self.largest = (fine, r, 8 * (r + 4) * fine)

    def _parts(self, terms: Terms) -> list[int]:
        """The dimensions of the integrals quadgrid does for an integrand of ``terms``: split
        into terms merged by leaf sets (quadreduce.split_terms) only when the whole spans over
        two dimensions, each factored into groups of mutually dependent leaves
        (quadgrid._groups).  (quadgrid factors a product only: a sum over independent leaves,
        as in rnn's backward Gram entries, is one wider integral than this counts.)"""
        whole = frozenset().union(*terms)
        if len(whole) <= 2:
            return self._dims(whole)
        parts: list[frozenset[str]] = []
        for key in sorted(set(terms), key=len, reverse=True):
            if not any(key <= p for p in parts):
                parts.append(key)
        return [r for p in parts for r in self._dims(p)]

    def _dims(self, leaves: frozenset[str]) -> list[int]:
        groups: list[tuple[int, frozenset[str]]] = []
        for x in sorted(leaves):
            t = self.tokens[x]
            hit = [g for g in groups if g[1] & t]
            merged = (1 + sum(g[0] for g in hit), t.union(*(g[1] for g in hit)))
            groups = [g for g in groups if g not in hit] + [merged]
        return [r for r, _ in groups]

    def _cap(self, leaves: int) -> int:
        """quadgrid._max_points: the grid cap under the memory budget."""
        from runtime.limits.quadgrid import MAX_POINTS

        if self.opts.memory_budget is None:
            return MAX_POINTS
        return max(1, min(MAX_POINTS, self.opts.memory_budget // (8 * (leaves + 4))))


MAX_TERMS = 1024  # quadreduce.MAX_TERMS: a longer expansion is integrated whole


def _capped(terms: Terms) -> Terms:
    terms = tuple(dict.fromkeys(terms))
    return terms if len(terms) <= MAX_TERMS else (frozenset().union(*terms),)


def _products(a: Terms, b: Terms) -> Terms:
    if len(a) * len(b) > MAX_TERMS:
        return (frozenset().union(*a, *b),)
    return _capped(tuple(x | y for x in a for y in b))


class _Terms:
    """The terms of a formula over its vector arguments ``args`` (symbol -> shape): sums and
    products distribute, a function of linear arguments only is one new leaf per affine
    argument (quadreduce.collapse), any other function mixes its arguments' leaves."""

    def __init__(self, walk: _Walk, out: str, args: dict[object, _Shape]) -> None:
        self.walk, self.out, self.args = walk, out, args

    def of(self, e: object) -> Terms:
        import sympy

        assert isinstance(e, sympy.Basic)
        if not (e.free_symbols & set(self.args)):
            return (frozenset(),)
        if e in self.args:
            return self.args[e].terms
        if isinstance(e, sympy.Add):
            return _capped(tuple(t for a in e.args for t in self.of(a)))
        if isinstance(e, sympy.Mul):
            out: Terms = (frozenset(),)
            for a in e.args:
                out = _products(out, self.of(a))
            return out
        if isinstance(e, sympy.Pow) and e.args[1].is_Integer and 1 <= int(e.args[1]) <= 8:
            out = (frozenset(),)
            for _ in range(int(e.args[1])):
                out = _products(out, self.of(e.args[0]))
            return out
        return (self._mixed(e),)

    def _mixed(self, e: object) -> frozenset[str]:
        import sympy

        assert isinstance(e, sympy.Basic)
        used = [self.args[x] for x in e.free_symbols if x in self.args]
        inner = e.args[0] if len(e.args) == 1 else None
        if inner is not None and all(u.linear for u in used) and _affine(inner, self.args):
            leaf = f"{self.out}~{len(self.walk.tokens)}"  # collapse: one new Gaussian
            self.walk.tokens[leaf] = self.walk._tokens(frozenset().union(*(u.leaves for u in used)))
            return frozenset({leaf})
        return frozenset().union(*(u.leaves for u in used))


def _kinks(formula: object) -> int:
    import sympy

    from runtime.limits.quadrature import KINKS

    return sum(1 for e in sympy.preorder_traversal(formula) if isinstance(e, KINKS))


def _smooth(formula: object, args: dict[object, _Shape]) -> bool:
    """A smooth non-polynomial function (not a kink) of the vector arguments in ``formula``."""
    import sympy

    from runtime.limits.quadrature import KINKS

    vec = set(args)
    for e in sympy.preorder_traversal(formula):
        wrapped = isinstance(e, sympy.Function) and not isinstance(e, KINKS)
        root = isinstance(e, sympy.Pow) and not (e.args[1].is_Integer and e.args[1] > 0)
        if (wrapped or root) and e.free_symbols & vec:
            return True
    return False


def _affine(e: object, args: dict[object, _Shape]) -> bool:
    """``e`` is affine in the vector symbols ``args`` (quadrature._linear's test, that every
    derivative is free of them, read off the expression tree: no sympy.diff, which was two
    thirds of the estimate's time)."""
    return _degree(e, args) <= 1


def _degree(e: object, vec: dict[object, _Shape]) -> float:
    """Polynomial degree of ``e`` in the symbols ``vec`` (inf: not a polynomial in them)."""
    import sympy

    assert isinstance(e, sympy.Basic)
    if e in vec:
        return 1
    if not (e.free_symbols & set(vec)):
        return 0
    if isinstance(e, sympy.Add):
        return max(_degree(a, vec) for a in e.args)
    if isinstance(e, sympy.Mul):
        return sum(_degree(a, vec) for a in e.args)
    if isinstance(e, sympy.Pow) and e.args[1].is_Integer and int(e.args[1]) >= 0:
        return _degree(e.args[0], vec) * int(e.args[1])
    return math.inf


BYTES_PER_INSTRUCTION = 3500
BYTES_FIXED = 1 << 20
"""Bytes a kernel program holds once built and lowered to kets (Program, sympy formulas,
KetProgram): BYTES_FIXED + BYTES_PER_INSTRUCTION per instruction.  Measured (tracemalloc peak in
a fresh process) on mlp3 at B = 2, 3, 8, 16, 32, rnn at B = 2, 8, transformer_block at B = 2, 4,
layernorm_mlp at B = 8: 0.9–44 MiB, 2.2–7.4 KB an instruction (fixed costs spread over more
instructions); the model is 1.1–1.8× the measurement on all of them, and 1.26× the issue's
835 MiB for mlp3's 300 000 instructions at B = 128."""


def kernel_program_size(program: Program, batch: int, output: str | None) -> tuple[int, int]:
    """(instructions, bytes) of ``kernel_program(program, batch, output)`` before it is built:
    B copies of the backprop program, and per entry i ≤ j the NNGP (4 instructions), the NTK
    scalar (2), one Avg product (2) per vector parameter with a gradient and two (4) per pair
    of uses of each matrix (compiler.passes.kernel_program)."""
    from compiler.passes.backprop import backprop_map

    bp = backprop_map(program, output, input_gradients=False)
    vectors = sum(1 for v in program.param_names("vector") if bp.grads.get(v))
    pairs = sum(len(bp.grads.matrix_uses(w)) ** 2 for w in program.param_names("matrix"))
    entries = batch * (batch + 1) // 2
    count = batch * len(bp.program.body) + entries * (6 + 2 * vectors + 4 * pairs)
    return count, BYTES_FIXED + count * BYTES_PER_INSTRUCTION
