"""Start-up (issue 13 item 5): ``nexort compile`` imports only what compiling needs, builds the
options of its own command only, and the deferred ``sympy.tensor.tensor`` (compiler.cli.lazy_sympy)
answers sympy exactly as the real module would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from compiler.cli import app
from compiler.cli.common import COMMANDS

ROOT = Path(__file__).resolve().parent.parent


def _fresh(code: str) -> str:
    """stdout of ``code`` run in a fresh interpreter (imports are per process)."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout


def test_every_command_name_maps_to_the_module_that_registers_it() -> None:
    app.build_parser()
    assert set(app.COMMAND_OF_NAME) == set(COMMANDS)
    for name, module in app.COMMAND_OF_NAME.items():
        assert COMMANDS[name].run.__module__ == f"compiler.cli.{module}"


def test_a_named_command_gets_a_parser_of_its_own_options_only() -> None:
    full = app.build_parser()
    one = app.build_parser(["--debug", "limit-scalars", "x.nx"])
    sub = next(a for a in one._actions if a.dest == "command")
    assert list(sub.choices) == ["limit-scalars"]  # type: ignore[union-attr]
    args = ["limit-scalars", "samples/mlp2.nx", "--particles", "64"]
    assert vars(one.parse_args(args)) == vars(full.parse_args(args))
    assert app._named_command(["--help"]) is None and app._named_command(["compil"]) is None


def test_compile_imports_no_numpy_combinatorics_or_resources() -> None:
    out = _fresh(
        "import sys, io, contextlib\n"
        "from compiler.cli.app import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['compile', 'samples/mlp2.nx']) == 0\n"
        "heavy = ('numpy', 'scipy', 'networkx', 'matplotlib', 'sympy.combinatorics',\n"
        "         'importlib.resources')\n"
        "print([m for m in heavy if m in sys.modules])\n")
    assert out.strip() == "[]"


def test_help_imports_neither_sympy_nor_lark() -> None:
    out = _fresh(
        "import sys, io, contextlib\n"
        "from compiler.cli.app import main\n"
        "try:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print([m for m in ('sympy', 'lark', 'numpy') if m in sys.modules])\n")
    assert out.strip() == "[]"


def test_deferred_tensor_module_gives_way_to_the_real_one() -> None:
    """After a compile has used the placeholder, sympy's tensors still add up like tensors
    (A + B + A = 2A + B, a TensAdd), and every reference to the module sees the real class."""
    out = _fresh(
        "import sys, io, contextlib, json\n"
        "from compiler.cli.app import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['compile', 'samples/mlp2.nx'])\n"
        "early = sys.modules['sympy.tensor.tensor']\n"
        "placeholder = type(early).__name__\n"
        "from sympy.tensor.tensor import TensorIndexType, TensorHead, tensor_indices, TensAdd\n"
        "L = TensorIndexType('L'); i, _ = tensor_indices('i j', L)\n"
        "A, B = TensorHead('A', [L]), TensorHead('B', [L])\n"
        "e = A(i) + B(i) + A(i)\n"
        "real = sys.modules['sympy.tensor.tensor']\n"
        "print(json.dumps([placeholder, str(e), isinstance(e, TensAdd),\n"
        "                  early.TensExpr is real.TensExpr, type(real).__name__]))\n")
    placeholder, text, is_add, same, kind = json.loads(out)
    assert placeholder == "_Deferred" and kind == "module"
    assert text == "2*A(i) + B(i)" and is_add and same
