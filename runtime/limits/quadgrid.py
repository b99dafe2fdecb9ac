"""Quadrature for the exact path (spec 01 §1.6): compose, reduce, factor, whiten, split at kinks,
sum twice.

``integrate(column, expr, items)`` computes E[expr] where ``expr`` is a sympy expression in
placeholder symbols standing for kets of :mod:`runtime.limits.quadrature`:

1. *compose*: substitute every non-linear ket by its formula until only Gaussian leaves (linear
   kets, as symbols ℓ_k) and numbers remain;
2. *reduce* (:mod:`runtime.limits.quadreduce`): affine combinations of leaves become one leaf,
   products of sines and cosines become sums, and an integrand spanning more than two
   dimensions is split into terms integrated over their own (smaller) spans;
3. *factor*: split the product into groups of factors whose leaves are uncorrelated with every
   other group's (independent Gaussians: E of the product is the product of E's) — e.g.
   E[v² step(h)step(h′)] = E[v²]·E[step(h)step(h′)];
4. per group, *whiten* the leaves (SVD of their forms: ℓ = A·w + b, w ~ N(0, I_r)), find the kink
   hyperplanes {a·w = 0} of relu/step/sign/abs/Heaviside/Max/Min (each must pass through the
   origin and be linear in the leaves), integrate the kink span piecewise (q = 1: two half-lines;
   q = 2: polar sectors between the kink lines) and the complement smoothly;
5. rules: composite Gauss–Legendre panels on [−L, L] (or [0, L] radially, weight written out)
   for up to 2 smooth dimensions — robust when the integrand is much narrower than the Gaussian
   (erf′(h)² with Var h = 10 is exp(−20w²)) — and tensor Gauss–Hermite beyond that;
6. *error estimate*: every group is summed at a coarse and a fine level (10 and 16 nodes per
   panel, 16 and 24 per angle, ⅔ of the Hermite nodes); the estimate of the fine value's error
   is QUADPACK's (200·|fine − coarse|)^1.5 (relative to max(1, |E|)), and above ``TOL`` the
   value is not exact: :class:`NotExactError` says so, and ``method="auto"`` falls back to
   Monte Carlo instead of printing a wrong value with standard error 0."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, cast

import numpy as np
import sympy

from compiler.ir import formula_args
from compiler.kets.lowering import FormulaKet, MatMulKet
from runtime.codegen import compile_formula
from runtime.limits.quadreduce import collapse, split_terms

if TYPE_CHECKING:
    from runtime.limits.quadrature import Lin, _Column

MAX_POINTS = 4_000_000
MAX_OPS = 4000
CUT = 9.0  # |w| ≤ 9 holds all but 2e-19 of the Gaussian mass
PANEL = 0.5
COARSE, FINE = 0, 1  # levels: nodes per panel / angle / Hermite dimension, coarse and fine
PANEL_NODES, ANGLE_NODES = (10, 16), (16, 24)
TOL = 1e-11  # bound on the estimated error, relative to max(1, |E|), of a value called exact


@cache
def hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Σ w f(x) ≈ E f(Z), Z ~ N(0, 1) (probabilists' Gauss–Hermite)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / np.sqrt(2 * np.pi)


@cache
def legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _not_exact(msg: str) -> Exception:
    from runtime.limits.quadrature import NotExactError

    return NotExactError(msg)


def integrate(col: _Column, expr: sympy.Expr, items: Mapping[sympy.Symbol, object]) -> float:
    leaves: dict[sympy.Symbol, Lin] = {}
    memo: dict[int, sympy.Expr] = {}
    composed = {s: _compose(col, it, leaves, memo) for s, it in items.items()}
    full = cast(sympy.Expr, expr.xreplace(composed))
    if sympy.count_ops(full) > MAX_OPS:
        raise _not_exact(f"the integrand has {sympy.count_ops(full)} operations (max {MAX_OPS})")
    full = collapse(full, leaves, col.dim)
    total = 0.0
    for term in split_terms(full, leaves, col.dim):
        prod = 1.0
        for factor, syms in _groups(col, term, leaves):
            prod *= _integrate_group(col, factor, syms, leaves)
        total += prod
    return total


def _compose(col: _Column, item: object, leaves: dict, memo: dict) -> sympy.Expr:
    """``item`` (a linear form or a node) as a sympy expression in leaf symbols ℓ_k."""
    from runtime.limits.quadrature import Lin, Node

    if id(item) in memo:
        return memo[id(item)]
    out: sympy.Expr
    match item:
        case Lin():
            out = sympy.Symbol(f"ℓ{len(leaves)}", real=True)
            leaves[out] = item
        case Node(stmt=FormulaKet() as s):
            subs = {}
            for x, var, _ in formula_args(s.ins):
                subs[x] = (
                    _compose(col, col.ket[var], leaves, memo)
                    if col.kets.kind(var) == "vector"
                    else sympy.Float(col.scal[var], 30)
                )
            out = cast(sympy.Expr, s.formula.xreplace(subs))
        case Node(stmt=MatMulKet(), hat=hat, coeffs=coeffs):
            out = _compose(col, hat, leaves, memo) + sum(
                sympy.Float(c, 30) * _compose(col, col.ket[z], leaves, memo) for z, c in coeffs
            )
        case _:
            raise TypeError(f"not a ket of the exact path: {item!r}")
    memo[id(item)] = out
    return out


def _groups(col: _Column, full: sympy.Expr, leaves: dict) -> list[tuple[sympy.Expr, list]]:
    """Factors of ``full`` merged into groups with mutually uncorrelated leaves."""
    forms = {s: lf.padded(col.dim) for s, lf in leaves.items()}
    groups: list[tuple[list[sympy.Expr], set]] = []
    for f in sympy.Mul.make_args(full):
        syms = f.free_symbols & set(leaves)
        hit = [
            g for g in groups if any(abs(forms[a] @ forms[b]) > 1e-14 for a in syms for b in g[1])
        ]
        merged = ([f], set(syms))
        for g in hit:
            merged[0].extend(g[0])
            merged[1].update(g[1])
            groups.remove(g)
        groups.append(merged)
    return [(sympy.Mul(*fs), sorted(ss, key=lambda s: s.name)) for fs, ss in groups]


def _integrate_group(col: _Column, expr: sympy.Expr, syms: list, leaves: dict) -> float:
    if not syms:
        return float(expr)
    forms = np.stack([leaves[s].padded(col.dim) for s in syms])
    consts = np.array([leaves[s].const for s in syms])
    basis = _row_space(forms)
    coords = forms @ basis  # leaf = coords · w + const
    if basis.shape[1] == 0:  # degenerate: every leaf is a constant
        return float(compile_formula(expr, tuple(syms))(*consts, np.inf))
    normals = _kink_normals(expr, syms, coords, consts)
    r = basis.shape[1]
    kink = _row_space(np.array(normals)) if normals else np.zeros((r, 0))
    q = kink.shape[1]
    if q > 2:
        raise _not_exact(f"{q} independent kink directions in one Gaussian integral (max 2)")
    comp = _complement(kink, r)
    points = _max_points(col, len(syms))
    f = compile_formula(expr, tuple(syms))
    cuts = _cuts([kink.T @ n for n in normals]) if q == 2 else ()
    if q == 0 and r == 2 and points >= 64**2:  # cheap Hermite rules first; panels if they disagree
        u, wu = _kink_grid(q, cuts, FINE)
        coarse, fine = (_sum(f, coords, consts, kink, u, wu, comp, *hermite(n)) for n in (48, 64))
        if abs(coarse - fine) <= 1e-14 * max(1.0, abs(fine)):
            return fine
    coarse, fine = (
        _sum(f, coords, consts, kink, *_kink_grid(q, cuts, lv), comp,
             *_grid(comp, q, cuts, lv, points))
        for lv in (COARSE, FINE)
    )
    return _converged(fine, coarse, r)


def _converged(fine: float, coarse: float, dims: int) -> float:
    """``fine`` if QUADPACK's error estimate from the two levels meets ``TOL``, else refuse."""
    scale = max(1.0, abs(fine))
    error = scale * (200 * abs(fine - coarse) / scale) ** 1.5
    if error > TOL * scale:  # NaN passes: it is reported per limit
        raise _not_exact(
            f"quadrature over {dims} Gaussian dimension(s) did not converge (error estimate "
            f"{error:.1e} from two rules differing by {abs(fine - coarse):.1e}; tolerance "
            f"{TOL * scale:.0e})"
        )
    return fine


def _max_points(col: _Column, leaves: int) -> int:
    """The most grid points one integral may use: MAX_POINTS, fewer under a memory budget
    (``--memory-limit``): the sum holds the leaves' values and about four arrays of the
    integrand's intermediate values per point, 8 bytes each.  A grid cut down this way may not
    converge; the integral then refuses to be exact and ``auto`` hands it to Monte Carlo."""
    budget = col.opts.memory_budget
    if budget is None:
        return MAX_POINTS
    return max(1, min(MAX_POINTS, budget // (8 * (leaves + 4))))


def _grid(
    comp: np.ndarray, q: int, cuts: tuple, level: int, points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """The smooth grid of a level, within the point budget left by the kink grid."""
    return _smooth_grid(comp.shape[1], points // _kink_grid(q, cuts, FINE)[1].size, level)


def _sum(
    f: object,
    coords: np.ndarray,
    consts: np.ndarray,
    kink: np.ndarray,
    u: np.ndarray,
    wu: np.ndarray,
    comp: np.ndarray,
    v: np.ndarray,
    wv: np.ndarray,
) -> float:
    """Σ weights·f(leaves) over the product grid (kink points u) × (smooth points v)."""
    if v.ndim == 1:  # a 1-D rule used on every smooth dimension: tensor it
        d = comp.shape[1]
        grids = np.meshgrid(*([v] * d), indexing="ij")
        wv = np.prod(np.meshgrid(*([wv] * d), indexing="ij"), axis=0).ravel()
        v = np.stack([g.ravel() for g in grids], axis=1)
    a = (coords @ kink) @ u.T  # (leaves, Nu)
    b = (coords @ comp) @ v.T + consts[:, None]  # (leaves, Nv)
    vals = a[:, :, None] + b[:, None, :]  # (leaves, Nu, Nv)
    y = np.broadcast_to(f(*vals, np.inf), vals.shape[1:])  # type: ignore[operator]
    return float(np.einsum("i,ij,j->", wu, y, wv))  # no BLAS: its threads spin on a busy machine


def _kink_normals(expr: sympy.Expr, syms: list, coords: np.ndarray, consts: np.ndarray) -> list:
    from runtime.limits.quadrature import KINKS

    out = []
    index = {s: k for k, s in enumerate(syms)}
    for sub in sympy.preorder_traversal(expr):
        if not isinstance(sub, KINKS):
            continue
        args = cast(tuple[sympy.Expr, ...], sub.args)
        arg = args[0] - args[1] if isinstance(sub, sympy.Max | sympy.Min) else args[0]
        used = arg.free_symbols & set(syms)
        grads = {s: cast(sympy.Expr, sympy.diff(arg, s)) for s in used}
        if any(g.free_symbols for g in grads.values()):
            raise _not_exact(f"the kink {sub} is not at a hyperplane of Gaussian kets")
        normal = sum(
            (float(g) * coords[index[s]] for s, g in grads.items()), np.zeros(coords.shape[1])
        )
        offset = float(cast(sympy.Expr, arg.xreplace(dict.fromkeys(used, 0)))) + sum(
            float(g) * consts[index[s]] for s, g in grads.items()
        )
        if abs(offset) > 1e-12 * (1 + np.linalg.norm(normal)):
            raise _not_exact(f"the kink {sub} is off the origin (offset {offset:.3g})")
        if np.linalg.norm(normal) > 1e-14:
            out.append(normal)
    return out


def _row_space(a: np.ndarray) -> np.ndarray:
    """Orthonormal basis (columns) of the row space of ``a``."""
    if a.size == 0:
        return np.zeros((a.shape[-1], 0))
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    rank = int(np.sum(s > 1e-10 * max(s[0], 1e-300)))
    return vt[:rank].T


def _complement(kink: np.ndarray, r: int) -> np.ndarray:
    if kink.shape[1] == 0:
        return np.eye(r)
    u, _, _ = np.linalg.svd(kink, full_matrices=True)
    return u[:, kink.shape[1] :]


@cache
def _panels(a: float, b: float, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre on [a, b] (plain weights), ``nodes`` per panel."""
    x, w = legendre(nodes)
    edges = np.linspace(a, b, round((b - a) / PANEL) + 1)
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    return (mid[:, None] + half[:, None] * x).ravel(), (half[:, None] * w).ravel()


@cache
def _smooth_grid(d: int, budget: int, level: int) -> tuple[np.ndarray, np.ndarray]:
    """E over d smooth standard-normal dimensions: panels (d ≤ 2, if they fit) or Hermite, the
    coarse level with about 2/3 of the nodes per dimension (the two give the error estimate)."""
    if d == 0:
        return np.zeros((1, 0)), np.ones(1)
    x, w = _panels(-CUT, CUT, PANEL_NODES[level])
    w = w * np.exp(-(x**2) / 2) / np.sqrt(2 * np.pi)
    if d > 2 or _panels(-CUT, CUT, PANEL_NODES[FINE])[0].size ** d > budget:
        n = max(min(96, int(budget ** (1 / d))), 3)
        x, w = hermite(n if level == FINE else max(2 * n // 3, 2))
    grids = np.meshgrid(*([x] * d), indexing="ij")
    weights = np.prod(np.meshgrid(*([w] * d), indexing="ij"), axis=0).ravel()
    points = np.stack([g.ravel() for g in grids], axis=1)
    inside = np.sum(points**2, axis=1) <= CUT**2  # the ball the polar rules cover: no corners
    return points[inside], weights[inside]


def _cuts(normals: list[np.ndarray]) -> tuple[float, ...]:
    """The angles of the kink lines (normals rotated by ±π/2) in [0, 2π), sorted."""
    return tuple(
        sorted(
            {
                round((np.arctan2(n[1], n[0]) + sgn * np.pi / 2) % (2 * np.pi), 15)
                for n in normals
                for sgn in (1, -1)
            }
        )
    )


@cache
def _kink_grid(q: int, cuts: tuple[float, ...], level: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and weights in the kink coordinates: none, two half-lines, or polar sectors
    between the kink lines at angles ``cuts`` (q = 2)."""
    if q == 0:
        return np.zeros((1, 0)), np.ones(1)
    r, wr = _panels(0.0, CUT, PANEL_NODES[level])
    if q == 1:
        w = wr * np.exp(-(r**2) / 2) / np.sqrt(2 * np.pi)
        return np.concatenate([r, -r])[:, None], np.concatenate([w, w])
    wr = wr * r * np.exp(-(r**2) / 2) / (2 * np.pi)
    x, wa = legendre(ANGLE_NODES[level])
    pts, wts = [], []
    for a, b in zip(cuts, [*cuts[1:], cuts[0] + 2 * np.pi], strict=True):
        phi = (a + b) / 2 + (b - a) / 2 * x
        direc = np.stack([np.cos(phi), np.sin(phi)], axis=-1)
        pts.append((r[:, None, None] * direc[None]).reshape(-1, 2))
        wts.append((wr[:, None] * (wa * (b - a) / 2)[None, :]).ravel())
    return np.concatenate(pts), np.concatenate(wts)


@cache
def grid_points(r: int, q: int, cap: int, smooth: bool = True) -> tuple[int, int]:
    """(points over both levels, points of the fine level) of quadgrid's rules for a group of
    ``r`` leaves with ``q`` kink dimensions under the point cap ``cap``.  Two smooth dimensions
    are tried with a Hermite pair first, enough for a polynomial integrand; a ``smooth``
    non-polynomial one is counted as needing the panels too (measured: erf² and tanh² do)."""
    if r == 0:
        return 0, 0
    tried = 48**2 + 64**2 if q == 0 and r == 2 and cap >= 64**2 else 0  # Hermite pair first
    if tried and not smooth:
        return tried, 64**2
    cuts = (0.0, math.pi / 2, math.pi, 3 * math.pi / 2)  # two kink lines: four sectors
    sizes = []
    for level in (COARSE, FINE):
        kink = _kink_grid(q, cuts if q == 2 else (), level)[1].size
        budget = cap // _kink_grid(q, cuts if q == 2 else (), FINE)[1].size
        sizes.append(kink * _smooth_points(r - q, budget, level))
    return tried + sum(sizes), sizes[1]  # counted as if the panels were needed too


def _smooth_points(d: int, budget: int, level: int) -> int:
    """Points of quadgrid._smooth_grid(d, budget, level) without building the grid for d > 2."""
    if d <= 2:
        return int(_smooth_grid(d, budget, level)[1].size)
    n = max(min(96, int(budget ** (1 / d))), 3)
    x = hermite(n if level == FINE else max(2 * n // 3, 2))[0]
    sq = np.sort(x**2)
    inner = np.add.reduce(np.meshgrid(*([x**2] * (d - 1)), indexing="ij")).ravel()
    return int(np.searchsorted(sq, CUT**2 - inner, side="right").sum())
