"""Start-up: defer ``sympy.tensor.tensor`` (and the ``sympy.combinatorics`` it pulls in) until a
name in it is really used.

Why: sympy's ``Add.flatten`` runs ``from sympy.tensor.tensor import TensExpr, TensAdd`` on every
call, only to ask ``isinstance(term, TensExpr)``. The first such call imports
``sympy.combinatorics``, whose ``polyhedron`` module builds the Platonic solids' permutation
groups at import: 30-50 ms of the 0.5 s that ``nexort compile`` takes, for a class of which no
instance can exist until the real module is imported (nexort never uses sympy's tensors).

The rule: a ``sys.meta_path`` finder answers the first import of ``sympy.tensor.tensor`` with a
placeholder module whose ``TensExpr`` and ``TensAdd`` are a class nothing is an instance of,
which is the truthful answer to that ``isinstance`` question while the real module is not loaded.
Any other public name (``TensorHead``, ``tensor_indices``, …) removes the finder, imports the
real module in the placeholder's stead and copies its names into the placeholder, so the module
object taken earlier sees the real classes too. ``Add.flatten`` looks the module up on every
call, so from then on it gets the real ``TensExpr``. (A ``from sympy.tensor.tensor import
TensExpr`` kept from before that moment would keep the placeholder; in sympy only ``Add.flatten``
imports those two names without another name first, and it does so per call.) Installed by the
command line only (:func:`compiler.cli.app.main`), never on ``import compiler``, so a library
user's sympy is untouched.
"""

from __future__ import annotations

import importlib
import sys
import types
from importlib.machinery import ModuleSpec

_NAME = "sympy.tensor.tensor"


class _NoInstances:
    """Stands for ``TensExpr``/``TensAdd`` until they exist: no object is an instance of it."""


class _Deferred(types.ModuleType):
    """The placeholder module (see the module docstring)."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):  # tools probing __file__, __path__ …: do not import for them
            raise AttributeError(name)
        return getattr(load_real(), name)


class _Finder:
    """A ``sys.meta_path`` entry answering the first import of the module with the placeholder
    (the import system then links it to its parent package as for any module); it is its
    own loader."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        # a duck-typed loader: importlib.abc.Loader would import importlib.resources (~4 ms)
        return ModuleSpec(name, self) if name == _NAME else None  # type: ignore[arg-type]

    def create_module(self, spec: ModuleSpec) -> types.ModuleType:
        return _Deferred(spec.name, __doc__)

    def exec_module(self, module: types.ModuleType) -> None:
        module.TensExpr = module.TensAdd = _NoInstances  # type: ignore[attr-defined]


_FINDER = _Finder()


def install() -> None:
    """Answer the first import of ``sympy.tensor.tensor`` with the placeholder (idempotent; no
    effect once the module is imported, and sympy itself is not imported here)."""
    if _NAME not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def load_real() -> types.ModuleType:
    """The real ``sympy.tensor.tensor``, imported now if the placeholder still stands for it."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    stub = sys.modules.get(_NAME)
    if not isinstance(stub, _Deferred):
        return importlib.import_module(_NAME)
    del sys.modules[_NAME]
    try:
        real = importlib.import_module(_NAME)
    except BaseException:
        sys.modules[_NAME] = stub  # keep a consistent state if the import fails
        raise
    stub.__dict__.update({k: v for k, v in real.__dict__.items() if not k.startswith("__")})
    return real
