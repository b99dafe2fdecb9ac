"""Output of an abcd analysis: a readable table, JSON, LaTeX, and a PyTorch recipe (spec 03).

**Torch recipe.** In PyTorch one stores the trainable tensor p, multiplies it by n^{-a} in the
forward pass, initialises it with std σ·n^{-b} and gives it the learning rate η·lr·n^{-c}. The
optimizer sees g = ∂L/∂p, and the abcd rule feeds Q with n^{d}g (03 §3.1). For Adam,
Q(n^{d}g) = n^{d}g / (√(n^{2d}v̂) + ε) = g / (√v̂ + ε·n^{-d}): the same as Adam on g with
eps_p = ε·n^{-d}. (For the actual value P = n^{-a}p, whose gradient is n^{a}g, this is
ε·n^{-D}, D = d − a, as 03 §3.1 states; the two agree because they describe different tensors.)
For a linear Q (SGD, momentum) the multiplier folds into the learning rate: lr·n^{d−c}; for an
exactly scale-invariant Q (ε = 0) d does nothing. Relative to a base width N0 where the model is
tuned, each factor is (N/N0)^{−exponent}: init std (N/N0)^{−b}, forward multiplier
(N/N0)^{−a}, learning rate (N/N0)^{−c} (SGD: (N/N0)^{d−c}), Adam eps (N/N0)^{−d}, and the output
multiplier (N/N0)^{−e_out} on f = Σ_α o_α. Fan-in d of the input layer is width independent.
"""

from __future__ import annotations

import json
from typing import Any

import sympy

from compiler.abcd.conditions import Exp, fmt, fmt_set
from compiler.abcd.exponent_values import on_set
from compiler.abcd.param import LETTERS
from compiler.abcd.symmetry import invariants
from compiler.abcd.verdict import VERDICTS, Analysis

_WORDS = {True: "yes", False: "no"}


def json_value(e: Exp | None) -> Any:
    """An exponent for JSON: always an exact string ("1/2", "0", "s + 1"), one schema for every
    exponent whether it is a number or a formula."""
    if e is None:
        return None
    return str(e)


def _state(a: Analysis, name: str) -> str:
    v = a[name]
    if v.holds is not None:
        return _WORDS[v.holds]
    return "iff " + fmt_set(v.solutions(), a.symbols)


def size_table(a: Analysis) -> str:
    """Every vector's and scalar's exponent at init and of its change after one update, forward
    then backward (what the coordinate check of 03 §3.4 measures as log-log slopes)."""
    if not a.sizes:
        return "no per-vector sizes (the MLP classifier was used; try --method calculus)\n"
    width = max(len("variable"), *(len(x) for x, _, _ in a.sizes))
    lines = ["(unstable: the change after one update from init; later updates grow further)"
             ] if a["stable"].holds is False else []
    lines.append(f"{'variable':<{width}}  init  change")
    lines += [f"{x:<{width}}  {fmt(e0):<4}  {fmt(ed)}" for x, e0, ed in a.sizes]
    return "\n".join(lines + _q_table(a)) + "\n"


def _q_table(a: Analysis) -> list[str]:
    """The Q inputs n^D·∂L/∂P per group at step 0 and after the first update; a step-0 limit
    that is exactly 0 by symmetry is marked (its exponent is the CLT fluctuation's)."""
    if not a.q_inputs:
        return []
    width = max(len("Q input"), *(len(f"q({r.group})") for r in a.q_inputs))
    lines = ["", f"{'Q input':<{width}}  step 0  step 1  limit at step 0"]
    for r in a.q_inputs:
        zero = f"0 (by symmetry: odd under {', '.join(r.zero_by)})" if r.zero_by else ""
        lines.append(f"{f'q({r.group})':<{width}}  {fmt(r.step0):<6}  {fmt(r.step1):<6}  "
                     f"{zero}".rstrip())
    return lines


def table(a: Analysis) -> str:
    """Parameters × a, b, c, d, A, C, D; the verdicts with reasons; contributions; notes."""
    p = a.param
    rows: list[tuple[str, ...]] = [("param", "role", "a", "b", "c", "d", "A", "C", "D")]
    for g in p:
        e = p[g]
        rows.append((g, p.role(g), *map(fmt, e.as_tuple()), *map(fmt, invariants(e))))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = [f"{a.program}", f"parametrization {p.name}, output multiplier e_out = {fmt(p.e_out)}",
             f"optimizer {a.optimizer.describe()}", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += ["", "verdicts (03 §3.2):", *(f"  {r}" for r in a.reasons())]
    lines.append(f"regime: {_regime(a)}; r = {a.reported('r').text(a.symbols)}")
    if a.quantities:
        lines.append(_exponents_line(a))
    contrib = [c for c in a.contributions if c.holds is not False]
    if contrib:
        lines.append("contributes to the limit (05 §5.5):")
        stable = a["stable"].condition
        for c in contrib:  # a contribution needs stability: its exponent there is exact
            when = "yes" if c.holds else "iff " + fmt_set(sympy_set(c.condition), a.symbols)
            lines.append(f"  {c.what}: {when} (Δf exponent {fmt(on_set(c.exponent, stable))})")
    lines += ["", "notes:", *(f"  - {n}" for n in a.notes)] if a.notes else []
    return "\n".join(lines) + "\n"


def _exponents_line(a: Analysis) -> str:
    """The analysis's exponents; e(Δf) as reported (it may diverge), the others simplified on
    the stable set (where they describe the training; outside it something blows up)."""
    stable, parts = a["stable"].condition, []
    region = ""
    for k, v in a.quantities:
        if k == "e(Δf)" and a.reported(k).value is None:
            parts.append(f"{k} = {a.reported(k).text(a.symbols)}")
            continue
        shown = on_set(v, stable)
        if shown != v:
            region = f" (on the stable set {fmt_set(sympy_set(stable), a.symbols)})"
        parts.append(f"{k} = {fmt(shown)}")
    return f"exponents{region}: " + ", ".join(parts)


def _regime(a: Analysis) -> str:
    if a.regime is not None:
        return a.regime.replace("_", " ")
    parts = [f"{n.replace('_', ' ')} {_state(a, n)}" for n in ("feature_learning", "operator")
             if a[n].holds is None]
    return "; ".join(parts) if parts else "none (not nontrivial, stable and faithful)"


def sympy_set(cond: sympy.Basic) -> sympy.Set | sympy.Basic:
    from compiler.abcd.conditions import condition_set

    return condition_set(cond)


def as_json(a: Analysis) -> dict[str, Any]:
    """The machine-readable result (``nexort abcd --json``)."""
    p = a.param
    params = {g: {k: json_value(v) for k, v in zip(LETTERS, p[g].as_tuple(), strict=True)}
              | {"role": p.role(g), "sigma": float(p.table[g].sigma),
                 "lr": float(p.table[g].lr),
                 **{k: json_value(v) for k, v in zip("ACD", invariants(p[g]), strict=True)}}
              for g in p}
    out: dict[str, Any] = {
        "arch": a.program, "method": a.method, "param": p.name, "e_out": json_value(p.e_out),
        "optimizer": a.optimizer.text, "q_class": a.optimizer.qclass,
        "optimizer_note": a.optimizer.describe(), "parameters": params,
    }
    for name in VERDICTS:
        v = a[name]
        out[name] = v.holds if v.holds is not None else fmt_set(v.solutions(), a.symbols)
    out["regime"] = a.regime
    r = a.reported("r")
    out["r"] = r.json()
    if r.where is not None:
        out["r_where"] = fmt_set(r.where, a.symbols)
    if a.first:  # what one update from init gives (the lower bound of a blow-up)
        out["first_update"] = {k: json_value(v) for k, v in a.first}
    out["contributions"] = {c.name: (c.holds if c.holds is not None else
                                     fmt_set(sympy_set(c.condition), a.symbols))
                            for c in a.contributions}
    stable = a["stable"].condition
    out["sizes"] = {k: a.reported(k).json() if k == "e(Δf)" else json_value(on_set(v, stable))
                    for k, v in a.quantities}
    if any(on_set(v, stable) != v for _, v in a.quantities):
        out["sizes_where"] = fmt_set(sympy_set(stable), a.symbols)
    if a.sizes:  # the size calculus: what a coordinate check measures (03 §3.4)
        out["vectors"] = {x: {"init": json_value(e0), "change": json_value(ed)}
                          for x, e0, ed in a.sizes}
    if a.q_inputs:  # step 0 and 1; zero_by: the flips that make the step-0 limit exactly 0
        out["q_inputs"] = {r.group: {"step0": json_value(r.step0), "step1": json_value(r.step1),
                                     "limit_zero_at_step0": bool(r.zero_by),
                                     "zero_by": list(r.zero_by)} for r in a.q_inputs}
    out["reasons"] = a.reasons()
    out["notes"] = list(a.notes)
    return out


def dumps(a: Analysis) -> str:
    return json.dumps(as_json(a), indent=1, ensure_ascii=False)


def latex(a: Analysis) -> str:
    """A LaTeX table for a paper: parameters × a, b, c, d, A, C, D, verdicts in the caption."""
    p = a.param
    head = r"Parameter & role & $a$ & $b$ & $c$ & $d$ & $A$ & $C$ & $D$ \\"
    body = []
    for g in p:
        cells = [sympy.latex(x) for x in (*p[g].as_tuple(), *invariants(p[g]))]
        body.append(rf"\texttt{{{_tex_escape(g)}}} & {p.role(g)} & "
                    + " & ".join(f"${c}$" for c in cells) + r" \\")
    verdicts = ", ".join(f"{n.replace('_', ' ')}: {_state(a, n)}" for n in
                         ("stable", "faithful", "nontrivial"))
    regime = _tex_escape(_regime(a))
    caption = (f"{_tex_escape(p.name)} for {_tex_escape(a.program)} "
               f"($e_{{\\mathrm{{out}}}} = {sympy.latex(p.e_out)}$, "
               f"{_tex_escape(a.optimizer.text)}): {_tex_escape(verdicts)}; regime {regime}, "
               f"{_tex_r(a)}.")
    return "\n".join([r"\begin{table}[ht]", r"\centering", r"\begin{tabular}{llrrrrrrr}",
                      r"\hline", head, r"\hline", *body, r"\hline", r"\end{tabular}",
                      rf"\caption{{{caption}}}", r"\end{table}"]) + "\n"


def _tex_r(a: Analysis) -> str:
    r = a.reported("r")
    if r.value is None:
        return f"$r$ {_tex_escape(r.text(a.symbols))}"
    where = "" if r.where is None else f" for {_tex_escape(fmt_set(r.where, a.symbols))}"
    return f"$r = {sympy.latex(r.value)}${where}"


def _tex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("&", r"\&"), ("%", r"\%"),
                 ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("≥", r"$\geq$"),
                 ("≤", r"$\leq$"), ("∈", r"$\in$"), ("∞", r"$\infty$"), ("−", "-")):
        text = text.replace(a, b)
    return text
