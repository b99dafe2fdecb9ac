"""What a PyTorch user needs to implement an abcd-parametrization at width N (spec 03 §3.1, §3.4).

The derivation of every factor is in :mod:`compiler.abcd.render`'s docstring: with the trainable
tensor p stored and multiplied by n^{-a} in the forward pass, at width N relative to the base
width N0 the per-parameter factors are

    init std (N/N0)^{-b},  forward multiplier (N/N0)^{-a},  learning rate (N/N0)^{-c}
    (linear Q: (N/N0)^{d-c}),  Adam eps (N/N0)^{-d}  (adaptive Q only),

and the output f = Σ_α o_α is multiplied by (N/N0)^{-e_out}. Decoupled weight decay
(04 §4.1: P ← (1 − η·lr·λ)P, a width-independent factor per step) is multiplied by the group's
learning rate in PyTorch (AdamW: p ← (1 − lr·weight_decay)p), so its weight_decay is λ times
the inverse of the learning-rate factor: λ·(N/N0)^{c} (linear Q: λ·(N/N0)^{c−d}).

Absolute values at width N are given too: init std σ·N^{-b} (the spec's N(0, σ²n^{-2b})),
multiplier N^{-a}, learning rate η·lr·N^{-c}. A symbolic exponent gives a formula instead of a
number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy

from compiler.abcd.conditions import Exp, fmt, npow
from compiler.abcd.param import Parametrization
from compiler.errors import UsageError
from compiler.train import Optimizer


@dataclass(frozen=True)
class RecipeRow:
    """The factors of one parameter group (exponent, and value at N relative to N0)."""

    param: str
    role: str
    init: Exp
    multiplier: Exp
    lr: Exp
    eps: Exp | None
    sigma: sympy.Rational
    lr_const: sympy.Rational
    deterministic: bool


def recipe(param: Parametrization, opt: Optimizer, deterministic: frozenset[str] = frozenset()
           ) -> tuple[RecipeRow, ...]:
    """Exponents x such that each factor is (N/N0)^{-x}."""
    rows = []
    for g in param:
        e, rule = param[g], param.table[g]
        lr = e.c - e.d if opt.qclass == "linear" else e.c
        eps = e.d if opt.qclass == "adaptive" else None
        rows.append(RecipeRow(g, param.role(g), e.b, e.a, lr, eps, rule.sigma, rule.lr,
                              g in deterministic))
    return tuple(rows)


def factor(exponent: Exp | None, width: int, base: int) -> Any:
    """(N/N0)^{-exponent}: a float, or a formula when the exponent is symbolic."""
    if exponent is None:
        return None
    value = sympy.Rational(width, base) ** (-exponent)
    if exponent == sympy.oo:
        return 0.0
    return float(value) if value.is_number else str(value)


def check_widths(width: int | None, base: int | None) -> tuple[int, int]:
    if width is None or width < 1:
        raise UsageError("--torch-recipe needs --width N (a positive integer)")
    base = width if base is None else base
    if base < 1:
        raise UsageError("--base-width must be a positive integer")
    return width, base


def recipe_dict(param: Parametrization, opt: Optimizer, width: int, base: int,
                deterministic: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The recipe as data: per parameter the exponents and factors, and the output multiplier."""
    out: dict[str, Any] = {"width": width, "base_width": base, "optimizer": opt.text,
                           "output_multiplier": factor(param.e_out, width, base),
                           "e_out": fmt(param.e_out), "parameters": {}}
    for r in recipe(param, opt, deterministic):
        out["parameters"][r.param] = {
            "role": r.role,
            "init_std_factor": factor(r.init, width, base),
            "init_std_at_width": _absolute(r.sigma, r.init, width),
            "deterministic_init": r.deterministic,
            "forward_multiplier": factor(r.multiplier, width, base),
            "lr_factor": factor(r.lr, width, base),
            "lr_multiplier": float(r.lr_const),
            "adam_eps_factor": factor(r.eps, width, base),
            # PyTorch's decoupled decay is lr·weight_decay: λ over the lr factor (module doc)
            "weight_decay_factor": _decay(r.lr, width, base) if opt.weight_decay else None,
            "exponents": {"init_std": fmt(r.init), "multiplier": fmt(r.multiplier),
                          "lr": fmt(r.lr), "eps": None if r.eps is None else fmt(r.eps)},
        }
    return out


def _decay(lr: Exp, width: int, base: int) -> Any:
    """λ's factor 1/(lr factor); none for a frozen tensor (lr 0 cannot carry a decay)."""
    return None if lr == sympy.oo else factor(-lr, width, base)


def _absolute(sigma: sympy.Rational, b: Exp, width: int) -> Any:
    value = sigma * sympy.Integer(width) ** (-b)
    return float(value) if value.is_number else str(value)


def recipe_text(param: Parametrization, opt: Optimizer, width: int, base: int,
                deterministic: frozenset[str] = frozenset()) -> str:
    d = recipe_dict(param, opt, width, base, deterministic)
    head = ("param", "role", "init std ×", "std at N", "multiplier ×", "lr ×", "adam eps ×")
    rows = [head]
    for name, r in d["parameters"].items():
        std = "deterministic" if r["deterministic_init"] else _num(r["init_std_at_width"])
        rows.append((name, r["role"], _num(r["init_std_factor"]), std,
                     _num(r["forward_multiplier"]),
                     _num(r["lr_factor"]) + ("" if r["lr_multiplier"] == 1 else
                                             f" (·{r['lr_multiplier']:g})"),
                     "—" if r["adam_eps_factor"] is None else _num(r["adam_eps_factor"])))
    widths = [max(len(r[k]) for r in rows) for k in range(len(head))]
    lines = [f"PyTorch recipe for {param.name} at width N = {width} relative to N0 = {base} "
             f"({opt.text}); each factor multiplies the value you use at N0:", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += ["", f"output multiplier × {_num(d['output_multiplier'])} "
              f"(f = {npow(-param.e_out, '(N/N0)')} · Σ_α o_α relative to N0)",
              "init std: sample the stored tensor with this std; multiplier: multiply it by this "
              "in the forward pass;",
              "lr: per-parameter-group learning rate; adam eps: per-group eps "
              "(eps on the stored tensor's gradient = ε·N^-d)." if opt.qclass == "adaptive" else
              "adam eps: not needed (" + ("linear Q: d is folded into the lr"
                                          if opt.qclass == "linear" else "ε = 0") + ")."]
    if opt.weight_decay:
        lines += [f"weight decay {float(opt.weight_decay):g} is decoupled (P ← (1 − lr·λ)P): "
                  "PyTorch multiplies weight_decay by the group's lr, so use per group",
                  "weight_decay = λ × " + ", ".join(
                      f"{name} {_num(r['weight_decay_factor'] or '—')}"
                      for name, r in d["parameters"].items()) +
                  " (AdamW; SGD only without momentum)."]
    return "\n".join(lines) + "\n"


def _num(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x).replace("**", "^")  # a symbolic factor: 4^(s - 1), as the exponents print
