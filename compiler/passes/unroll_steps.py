"""The builder of the unrolled training program (spec 04 §4.3), one step at a time.

Rules (P the actual value of a parameter, the semantics of :mod:`compiler.train.setup`):

* step s runs the backpropagation program (02 §2.2) once per point of the step's batch and the
  forward program once per other point, every non-parameter variable renamed per point and step
  (``h1`` → ``h1_ξ2_t3``), every vector or scalar parameter read at its current value;
* F_s(ξ^i) = avg(o) (``F_t3_ξ2``); f = n^{1−e_out}·F (minus f₀ when centring); the error signal
  χ_{s,i} = ε(f, y^i)/b (``chi_t3_ξ2``) is a scalar function: a constant Nonlin, then an Avg;
* a MatMul y = W x at step s > 0 is an OuterNonlin of order 1 (01 §1.2):
  y_α = c_s·(W₀x)_α + (1/n) Σ_β Σ_{r<s} k_{r,s}·Q̃_r(G_0(α,β), …, G_r(α,β))·x_β with
  c_s = (1−η·lr·λ)^s σ n^{½−A}, k_{r,s} = −η·lr·n^{1−C}(1−η·lr·λ)^{s−1−r} and
  G_k(α,β) = n^{D−e_out} Σ_i χ_{k,i} Σ_u a_{u,k,i}(α) b_{u,k,i}(β), (a, b) = (dy, x) per use of W
  and (x, dy) per use of Wᵀ (:attr:`~compiler.passes.gradients.MatrixUse.outer`); for y = Wᵀ x the
  roles of α and β swap. W₀x is a MatMul by the initial matrix (entries N(0, 1/n));
* a vector parameter: g_s = n^{D−e_out} Σ_i χ_{s,i} dV_{s,i} (a Nonlin), then
  V_{s+1} = (1−η·lr·λ)V_s − η·lr·n^{-C}·Q_s(g_0, …, g_s) (a Nonlin); V₀ = σ n^{-A}·V;
* a scalar parameter: the same with g_s = n^{D+1−e_out} Σ_i χ_{s,i} dΘ_{s,i}, each a constant
  Nonlin followed by an Avg (01 §1.2 scalar-to-scalar functions);
* normalize/clip (Eq. 2.54): Q̃_s = ν_s·Q_s with ν_s a scalar of the mean square of Q_s over
  the whole group (an OuterNonlin + Avg for a matrix), see :meth:`StepBuilder._shaping`;
* a memoryful Q_s is a function of the whole history g_0..g_s: its state updates are unrolled
  symbolically (:func:`q_of_history`), so the program grows as O(T²).

Every power of n is the explicit factor n^k of a formula, k from
:func:`compiler.train.widths.training_width_exponents`; in μP all are n⁰, so none is printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import assert_never

import sympy

from compiler.errors import UsageError
from compiler.ir import (
    Avg,
    Instruction,
    MatMul,
    Nonlin,
    OuterNonlin,
    Program,
    copy_ref,
    formula_args,
)
from compiler.passes.backprop import Backprop
from compiler.passes.total import per_input
from compiler.rename import rename_symbols, split_name
from compiler.symbols import WIDTH, sym
from compiler.train.optimizers import G, Optimizer, T
from compiler.train.setup import TensorTraining, Training

COPY = "b"
"""The copy index of the update OuterNonlins (β of 04 §4.3)."""

Chis = dict[tuple[int, int], str]
"""(point i, output j) → the scalar χ_{s,ij} of one step."""

Term = tuple[str, str, str]
"""(χ scalar, a, b) of one use of a matrix at one point: χ·a(α)·b(β) is a term of G."""


def power(k: sympy.Expr) -> sympy.Expr:
    """n^k, an explicit symbolic factor of a formula (n⁰ = 1 disappears)."""
    return sympy.Pow(WIDTH, k)


def q_of_history(opt: Optimizer, grads: Sequence[sympy.Expr]) -> sympy.Expr:
    """Q_s(g_0, …, g_s) with s = len(grads) − 1: the optimizer's state updates applied in order
    (04 §4.1), so a memoryful Q becomes a function of the whole history."""
    state: list[sympy.Expr] = [s.init for s in opt.state]
    for t, g in enumerate(grads):
        sub = {G: g, T: sympy.Integer(t), **dict(zip(opt.symbols, state, strict=True))}
        state = [s.update.xreplace(sub) for s in opt.state]
    last = {G: grads[-1], T: sympy.Integer(len(grads) - 1),
            **dict(zip(opt.symbols, state, strict=True))}
    return opt.q.xreplace(last)


def step_name(name: str, s: int) -> str:
    """The name of a per-point variable at step s: ``h_ξ1[2]`` → ``h_ξ1_t0[2]``."""
    base, idx = split_name(name)
    return f"{base}_t{s}{idx}"


@dataclass
class _Tensor:
    """What the builder knows of one parameter entry: its rule and its history."""

    rule: TensorTraining
    current: str  # the variable holding the current value (vectors, scalars)
    grads: list[sympy.Expr] = field(default_factory=list)  # g_0, g_1, … (vectors, scalars)
    terms: list[tuple[Term, ...]] = field(default_factory=list)  # G_0, G_1, … (matrices)

    @property
    def eta(self) -> sympy.Expr:
        return self.rule.optimizer.lr * self.rule.lr

    @property
    def decay(self) -> sympy.Expr:
        return 1 - self.eta * self.rule.optimizer.weight_decay


class StepBuilder:
    """Appends the instructions of training steps 0..T to one body (see the module docstring)."""

    def __init__(self, training: Training, backprops: Sequence[Backprop]) -> None:
        self.training = training
        self.program = training.program
        self.bps = tuple(backprops)  # one per output f_j
        self.body: list[Instruction] = []
        self.tensors: dict[str, _Tensor] = {}
        for rule in training.tensors:
            for entry in rule.entries:
                self.tensors[entry] = _Tensor(rule, entry)
        forward = len(self.program.body)
        for bp in self.bps:  # the forward part of every backprop program is the program's body
            assert bp.program.body[:forward] == self.program.body
        self.refs = [_symbol_refs(bp.program) for bp in self.bps]
        # with k > 1 outputs the gradient variables of output j get the suffix _o{j}
        self.own = [{ins.out for ins in bp.program.body[forward:]} | set(bp.grads.table.values())
                     if len(self.bps) > 1 else set() for bp in self.bps]
        self.inputs = set(self.program.input_names)
        self.f_names: list[tuple[tuple[str, ...], ...]] = []  # [t][point][output]
        self._q_cache: dict[tuple[str, int, bool], sympy.Expr] = {}
        self.nu: dict[str, list[sympy.Expr]] = {}  # per group: the shaping ν_0, ν_1, …

    # -- names --------------------------------------------------------------------------------
    def name(self, var: str, i: int, s: int, j: int = 0) -> str:
        """``var`` of the backprop program of output j as seen by point i (1-based) at step s."""
        if var in self.tensors:
            return self.tensors[var].current
        if var in self.inputs:
            return per_input(var, i)
        if var in self.own[j]:
            base, idx = split_name(var)
            var = f"{base}_o{j}{idx}"
        return step_name(per_input(var, i), s)

    def _symbols(self, i: int, s: int, j: int) -> dict[sympy.Basic, sympy.Basic]:
        return {x: sym(self.name(var, i, s, j) + copy) for x, (var, copy) in self.refs[j].items()}

    # -- one step -----------------------------------------------------------------------------
    def initial_values(self) -> None:
        """V₀ = σ n^{-A} V for random vectors and scalars whose factor is not 1 (03 §3.1)."""
        for entry, t in self.tensors.items():
            rule = t.rule
            if rule.kind == "matrix" or rule.init is not None:
                continue
            factor = sympy.S.Zero if rule.zero_init else rule.sigma * power(-rule.exponents.A)
            if factor != 1:
                t.current = self._emit_value(entry, 0, factor * sym(entry), rule.kind)

    def forward_backward(self, s: int, batch: frozenset[int], last: bool) -> None:
        """Step s on every point (1-based i): the forward program, and on the batch the
        backward part of every output's backprop program."""
        forward = len(self.program.body)
        points = range(1, self.training.schedule.n_points + 1)
        for i in points:
            symbols = self._symbols(i, s, 0)  # extended by rename_symbols with its memo
            for ins in self.program.body:
                self._emit(ins, i, s, 0, symbols)
            if last or i not in batch:
                continue
            for j, bp in enumerate(self.bps):
                symbols = self._symbols(i, s, j)
                for ins in bp.program.body[forward:]:
                    self._emit(ins, i, s, j, symbols)
        k = len(self.program.outputs)
        self.f_names.append(tuple(
            tuple(self._avg(f"F{'' if k == 1 else j}_t{s}_ξ{i}", self.name(o, i, s))
                  for j, o in enumerate(self.program.outputs))
            for i in points))

    def _emit(self, ins: Instruction, i: int, s: int, j: int,
              symbols: dict[sympy.Basic, sympy.Basic]) -> None:
        def name(var: str) -> str:
            return self.name(var, i, s, j)

        match ins:
            case MatMul(out=y, matrix=w, arg=x, transpose=tr):
                self._matmul(name(y), w, name(x), tr, s)
            case Avg(out=y, arg=x):
                self.body.append(Avg(name(y), name(x), ins.loc))
            case Nonlin(out=y, formula=f):
                self.body.append(Nonlin(name(y), rename_symbols(f, symbols), ins.loc))
            case OuterNonlin(out=y, copies=c, formula=f):
                new = rename_symbols(f, symbols)
                self.body.append(OuterNonlin(name(y), c, new, ins.loc))
            case _:
                assert_never(ins)

    def _matmul(self, y: str, w: str, x: str, transpose: bool, s: int) -> None:
        """y = W_s x (or W_sᵀ x): W₀x by a MatMul, the updates of steps r < s by one
        OuterNonlin of order 1 (see the module docstring)."""
        t = self.tensors[w]
        rule = t.rule
        init = sympy.S.Zero if rule.zero_init else (
            t.decay ** s * rule.sigma * power(rule.widths.initial or 0))
        updates = [] if rule.frozen else list(range(s))
        raw = f"{split_name(y)[0]}_w0{split_name(y)[1]}"
        if not updates:
            if init == 1:
                self.body.append(MatMul(y, w, x, transpose))
            elif init == 0:
                self.body.append(Nonlin(y, sympy.S.Zero))
            else:
                self.body.append(MatMul(raw, w, x, transpose))
                self.body.append(Nonlin(y, init * sym(raw)))
            return
        terms = []
        if init != 0:
            self.body.append(MatMul(raw, w, x, transpose))
            terms.append(init * sym(raw))
        rate, nu = -t.eta * power(rule.widths.update), self.nu[rule.name]
        terms += [rate * t.decay ** (s - 1 - r) * nu[r] * self._matrix_q(w, r, transpose)
                  * sym(copy_ref(x, COPY)) for r in updates]
        self.body.append(OuterNonlin(y, (COPY,), sympy.Add(*terms)))

    def _matrix_q(self, w: str, r: int, transpose: bool) -> sympy.Expr:
        """Q_r(G_0(α,β), …, G_r(α,β)) of matrix w; for a use of wᵀ, α and β swap."""
        key = (w, r, transpose)
        if key not in self._q_cache:
            t = self.tensors[w]
            scale = power(t.rule.widths.q_input)

            def own(v: str) -> sympy.Symbol:
                return sym(v)

            def copy(v: str) -> sympy.Symbol:
                return sym(copy_ref(v, COPY))

            left, right = (copy, own) if transpose else (own, copy)
            grads = [scale * sympy.Add(*(sym(chi) * left(a) * right(b) for chi, a, b in terms))
                     for terms in t.terms[: r + 1]]
            self._q_cache[key] = q_of_history(t.rule.optimizer, grads)
        return self._q_cache[key]

    # -- the error signal and the updates -----------------------------------------------------
    def error_signal(self, s: int, batch: Sequence[int]) -> Chis:
        """χ_{s,ij} for the points i of the batch and the outputs j (04 §4.2), as scalars."""
        out_power = power(self.training.widths.output)
        k = len(self.program.outputs)
        chis = {}
        for i in batch:
            fs = [out_power * sym(x) for x in self.f_names[s][i - 1]]
            if self.training.center:
                fs = [f - out_power * sym(x) for f, x in zip(fs, self.f_names[0][i - 1],
                                                             strict=True)]
            ys = [sym(target_name(i, j, k)) for j in range(k)]
            for j, chi in enumerate(self.training.signal.chi(fs, ys, len(batch))):
                name = f"chi{'' if k == 1 else j}_t{s}_ξ{i}"
                chis[i, j] = self._emit_value(name, None, chi, "scalar")
        return chis

    def update(self, s: int, chis: Chis) -> None:
        """Record step s's gradients, the shaping ν_s of every group, and emit the vector and
        scalar parameters' updates."""
        for rule in self.training.tensors:
            tensors = [self.tensors[e] for e in rule.entries]
            if rule.frozen:  # learning rate 0; a decoupled weight decay still shrinks it
                self._decay_only(rule, tensors, s)
                continue
            for entry, t in zip(rule.entries, tensors, strict=True):
                if rule.kind == "matrix":
                    t.terms.append(self._matrix_terms(entry, s, chis))
                else:
                    t.grads.append(self._gradient(entry, t, s, chis))
            shaped = rule.optimizer.normalize or rule.optimizer.clip is not None
            qs = [self._matrix_q(e, s, False) if rule.kind == "matrix"
                  else q_of_history(rule.optimizer, t.grads)
                  for e, t in zip(rule.entries, tensors, strict=True)
                  if shaped or rule.kind != "matrix"]
            nu = self._shaping(rule, s, qs) if shaped else sympy.S.One
            self.nu.setdefault(rule.name, []).append(nu)
            if rule.kind == "matrix":
                continue
            for entry, t, q in zip(rule.entries, tensors, qs, strict=True):
                new = t.decay * sym(t.current) - t.eta * power(rule.widths.update) * nu * q
                t.current = self._emit_value(entry, s + 1, new, rule.kind)

    def _decay_only(self, rule: TensorTraining, tensors: list[_Tensor], s: int) -> None:
        """A frozen vector or scalar: P ← (1 − η·lr·λ)P (a matrix's decay is in c_s)."""
        if rule.kind == "matrix" or tensors[0].decay == 1:
            return
        for entry, t in zip(rule.entries, tensors, strict=True):
            t.current = self._emit_value(entry, s + 1, t.decay * sym(t.current), rule.kind)

    def _shaping(self, rule: TensorTraining, s: int, qs: list[sympy.Expr]) -> sympy.Expr:
        """ν_s with Q̃_s = ν_s·Q_s (04 §4.1, Eq. 2.54): 1, or from N² = the mean of Q_s² over
        every entry of the group (an Avg of an OuterNonlin for a matrix: (1/n²)Σ_αβ):
        normalize ν = 1/N, clip ν = min(1, τ/N) = (1 + τ/N − |1 − τ/N|)/2."""
        opt = rule.optimizer
        mean_square = sympy.Add(*(q ** 2 for q in qs)) / len(qs)
        if mean_square == 0:
            return sympy.S.One  # Q ≡ Q(0) = 0 needs no shaping (Optimizer.run: N = 0)
        name = f"{rule.name}_rms2_t{s}"
        if rule.kind == "matrix":
            self.body.append(OuterNonlin(f"{name}_1", (COPY,), mean_square))
            self.body.append(Avg(name, f"{name}_1"))
        elif rule.kind == "vector":
            self.body.append(Nonlin(f"{name}_1", mean_square))
            self.body.append(Avg(name, f"{name}_1"))
        else:
            self._emit_value(name, None, mean_square, "scalar")
        inverse = sym(name) ** sympy.Rational(-1, 2)
        if opt.clip is None:
            return inverse
        ratio = opt.clip * inverse
        return (1 + ratio - sympy.Abs(1 - ratio)) / 2

    def _matrix_terms(self, w: str, s: int, chis: Chis) -> tuple[Term, ...]:
        return tuple((chi, self.name(a, i, s, j), self.name(b, i, s, j))
                     for (i, j), chi in chis.items() for use in self.bps[j].grads.matrix_uses(w)
                     for a, b in [use.outer])

    def _gradient(self, entry: str, t: _Tensor, s: int, chis: Chis) -> sympy.Expr:
        """g_s = n^{q_input} Σ_i χ_{s,i} dP_{s,i} as a new vector or scalar (0 if none)."""
        terms = [sym(chi) * sym(self.name(d, i, s, j)) for (i, j), chi in chis.items()
                 if (d := self.bps[j].grads.get(entry)) is not None]
        if not terms:
            return sympy.S.Zero
        g = power(t.rule.widths.q_input) * sympy.Add(*terms)
        base, idx = split_name(entry)
        return sym(self._emit_value(f"{base}_grad_t{s}{idx}", None, g, t.rule.kind))

    def _emit_value(self, entry: str, s: int | None, formula: sympy.Expr, kind: str) -> str:
        """A new vector (a Nonlin) or scalar (a constant Nonlin and an Avg) holding ``formula``;
        ``s`` given: the value of parameter ``entry`` at step s."""
        base, idx = split_name(entry)
        name = entry if s is None else f"{base}_t{s}{idx}"
        match kind:
            case "vector":
                self.body.append(Nonlin(name, formula))
            case "scalar":
                vec_base, vec_idx = split_name(name)
                vec = f"{vec_base}_1{vec_idx}"
                self.body.append(Nonlin(vec, formula))
                self.body.append(Avg(name, vec))
            case _:
                raise AssertionError(f"no value of kind {kind}")
        return name

    def _avg(self, name: str, arg: str) -> str:
        self.body.append(Avg(name, arg))
        return name


def target_name(i: int, j: int = 0, k: int = 1) -> str:
    """The input scalar holding the target y_j of training point i (1-based), k outputs."""
    return f"target_ξ{i}" if k == 1 else f"target_ξ{i}[{j}]"


def _symbol_refs(program: Program) -> dict[sympy.Basic, tuple[str, str]]:
    """Every formula symbol of ``program`` → (variable, "[copy]" or "")."""
    refs: dict[sympy.Basic, tuple[str, str]] = {}
    for ins in program.body:
        if isinstance(ins, Nonlin | OuterNonlin):
            for x, var, copy in formula_args(ins):
                refs[x] = (var, "" if copy is None else f"[{copy}]")
    return refs


def check_supported(training: Training) -> None:
    """Refuse what the unrolled program does not express (yet), naming the option."""
    if training.symbols:
        names = ", ".join(sorted(s.name for s in training.symbols))
        raise UsageError(f"--param {training.param.name}: the exponents contain the symbol(s) "
                         f"{names}; the training program needs numbers")
