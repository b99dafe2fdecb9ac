"""How an optimizer's update function Q treats the scale of its input (spec 03 §3.1, 04 §4.1).

The abcd analysis only needs one property of Q: what happens to a gradient whose scale is not
Θ(1) (the "d" exponent is off). Three classes:

* ``linear`` (sgd, momentum): Q(n^d g) = n^d Q(g), so d folds into the learning rate
  (Rem. 2.2.4: the abc-parametrization with c_abc = c − d). Faithfulness is automatic; the
  analysis replaces d by the faithful value and c by c − d + d*. The last layer may outgrow its
  initialisation (b_{L+1} > c_{L+1}, e.g. a zero-initialised readout): the gradients then scale
  with the readout's larger size, as in Yang & Hu's abc classification (for any Q the readout's
  size during training is b' = min(b, c'), see :mod:`compiler.abcd.classify`).
* ``scale_invariant`` (signsgd, adam/rmsprop/adagrad with ε = 0): Q(n^d g) = Q(g), so d is
  irrelevant (Rem. 2.2.6). Faithfulness is automatic and c is unchanged.
* ``adaptive`` (adam, rmsprop, adagrad with ε > 0, smooth signsgd(ε > 0)): Q is linear near 0 and
  sign-like at infinity, so the d exponents must be the faithful ones (spec 03 §3.2 item 2) and
  the last layer must not outgrow its initialisation (b_{L+1} ≤ c_{L+1}; void for a zero readout,
  whose hidden gradients are exactly 0 at step 0 and Q(0) = 0). When they are not, the
  analysis still predicts the sizes: an input of size n^{q} with q < 0 is linearised (an update of
  size n^{q}, ε dominates), one with q > 0 saturates to sign (size 1): Q's output has exponent
  min(q, 0), i.e. an effective c' = c + max(d* − d, 0).

Optimizer names follow 04 §4.1 (``sgd``, ``momentum(beta)``, ``signsgd(eps)``,
``adam(beta1, beta2, eps)``, ``rmsprop(beta, eps)``, ``adagrad(eps)``; keyword arguments allowed).
Defaults follow PyTorch (ε = 1e-8 for adam/rmsprop, 1e-10 for adagrad); ``signsgd`` without an
argument is the exact sign (ε = 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from compiler.errors import UsageError

QClass = Literal["linear", "scale_invariant", "adaptive"]

_DEFAULT_EPS = {"signsgd": 0.0, "adam": 1e-8, "adamw": 1e-8, "rmsprop": 1e-8, "adagrad": 1e-10}
_EPS_POSITION = {"signsgd": 0, "adam": 2, "adamw": 2, "rmsprop": 1, "adagrad": 0}
_LINEAR = {"sgd", "momentum"}
_SPEC = re.compile(r"^\s*(?P<name>[a-z]+)\s*(?:\((?P<args>[^()]*)\))?\s*$")


@dataclass(frozen=True)
class Optimizer:
    """An entrywise optimizer as far as the size analysis is concerned."""

    name: str
    text: str
    qclass: QClass
    eps: float | None = None

    def describe(self) -> str:
        if self.qclass == "linear":
            return f"{self.text}: Q linear, d folds into c (Rem. 2.2.4: c_abc = c − d)"
        if self.qclass == "scale_invariant":
            return f"{self.text}: Q scale invariant (ε = 0), d is irrelevant (Rem. 2.2.6)"
        return (f"{self.text}: Q adaptive with ε = {self.eps:g} > 0, so the gradient multiplier "
                "n^d matters: faithfulness is required (spec 03 §3.2)")


def parse_optimizer(text: str) -> Optimizer:
    """``sgd``, ``adam``, ``adam(0.9, 0.99, 0)``, ``adam(eps=0)``, ``signsgd(1e-3)``, …"""
    m = _SPEC.match(text)
    if not m:
        raise UsageError(f"--opt: cannot read {text!r} (e.g. sgd, momentum(0.9), signsgd, adam, "
                         "adam(eps=0), rmsprop, adagrad)")
    name = m.group("name")
    if name not in _LINEAR and name not in _DEFAULT_EPS:
        known = ", ".join(sorted(_LINEAR | set(_DEFAULT_EPS)))
        raise UsageError(f"--opt: unknown optimizer {name!r} (known: {known})")
    args = [a.strip() for a in (m.group("args") or "").split(",") if a.strip()]
    if name in _LINEAR:
        return Optimizer(name, text.strip(), "linear")
    eps = _eps(name, args)
    return Optimizer(name, text.strip(), "scale_invariant" if eps == 0 else "adaptive", eps)


def _eps(name: str, args: list[str]) -> float:
    eps = _DEFAULT_EPS[name]
    for k, arg in enumerate(args):
        key, sep, value = arg.partition("=")
        if sep and key.strip() != "eps":
            continue
        if not sep and k != _EPS_POSITION[name]:
            continue
        try:
            eps = float(value if sep else arg)
        except ValueError:
            raise UsageError(f"--opt {name}: eps must be a number, got {arg!r}") from None
    if eps < 0:
        raise UsageError(f"--opt {name}: eps must be ≥ 0, got {eps:g}")
    return eps
