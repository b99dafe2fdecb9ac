"""Training as data (spec 04): update functions, error signals, the width exponents of training.

* :mod:`~compiler.train.optimizers`: an :class:`Optimizer` is Q_t as sympy formulas of the gradient
  g, the step t and named state (04 §4.1), with η, decoupled weight decay and normalisation or
  clipping; :mod:`~compiler.train.builtins` builds sgd, momentum, signsgd, adam(w), rmsprop and
  adagrad with PyTorch's defaults;
* :mod:`~compiler.train.classes`: memoryless, stationary, linear, homogeneous of degree k,
  adaptive, and abcd's QClass, derived from the formulas;
* :mod:`~compiler.train.options`: the ``--opt`` option string (and a user ``formula(…)``), with
  located errors (:mod:`~compiler.train.syntax`); :mod:`~compiler.train.signals`: ``--loss``
  (mse, ce, a formula of f and y) as χ formulas (04 §4.2);
* :mod:`~compiler.train.widths`: the powers of n of the training program of an
  abcd-parametrization (04 §4.3), imported on its own (it depends on :mod:`compiler.abcd`, which
  depends on this package).
"""

from compiler.train.classes import OptimizerClass, QClass
from compiler.train.optimizers import Optimizer, State
from compiler.train.options import format_optimizer, parse_optimizer
from compiler.train.signals import ErrorSignal, parse_signal
from compiler.train.syntax import OptionError

__all__ = [
           "ErrorSignal",
           "Optimizer",
           "OptimizerClass",
           "OptionError",
           "QClass",
           "State",
           "format_optimizer",
           "parse_optimizer",
           "parse_signal",
]
