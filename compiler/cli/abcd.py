"""``nexort abcd FILE``: the abcd table and verdicts of an architecture (spec 03).

    nexort abcd samples/mlp2.nx --param mup --opt adam
    nexort abcd samples/mlp2.nx --param up:s --json
    nexort abcd samples/attention.nx --param sp:3/2 --opt signsgd --latex
    nexort abcd samples/mlp3.nx --param mup --torch-recipe --width 4096 --base-width 256

``--param`` is a built-in (sp, sp:C with a global learning rate n^-C, ntp, mup, up:S with S a
number or a symbol) or a TOML/JSON table file (:mod:`compiler.abcd.tables`). ``--opt`` decides how
the gradient multiplier n^d acts (:mod:`compiler.abcd.optim`). Errors print as
FILE:LINE:COL: error: MESSAGE, with the line of the architecture or table file at fault.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler.cli.common import _file_options, command, load
from compiler.errors import NexortError, UsageError


def _options(p: argparse.ArgumentParser) -> None:
    _file_options(p)
    p.add_argument("--param", default="mup", metavar="P",
                   help="sp | sp:C | ntp | mup | up:S | TABLE.toml/.json (default mup)")
    p.add_argument("--opt", default="adam", metavar="OPT",
                   help="sgd | momentum(b) | signsgd | signsgd(eps) | adam | adam(eps=0) | "
                        "rmsprop | adagrad (default adam, eps = 1e-8)")
    p.add_argument("--method", choices=("auto", "mlp", "calculus"), default="auto",
                   help="auto: the exact MLP classifier for MLPs, else the size calculus")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--latex", action="store_true", help="a LaTeX table for a paper")
    out.add_argument("--torch-recipe", action="store_true",
                     help="per-parameter init std, multiplier, lr and Adam-eps factors")
    p.add_argument("--width", type=int, help="the width N for --torch-recipe")
    p.add_argument("--base-width", type=int, help="the base width N0 for --torch-recipe")
    p.add_argument("--sizes", action="store_true",
                   help="also print every vector's exponent at init and of its change")
    p.add_argument("--canonical", action="store_true",
                   help="show the canonical representative (a = 0) of the parametrization")


@command("abcd", "abcd-parametrization table and verdicts (stable, faithful, regime)", _options)
def cmd_abcd(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except NexortError as e:
        if e.source is None and e.loc is not None and e.loc.file == args.file:
            e.source = Path(args.file).read_text(encoding="utf-8", errors="replace")
        raise


def _run(args: argparse.Namespace) -> int:
    import json

    from compiler.abcd import analyse, parse_optimizer, resolve
    from compiler.abcd.recipe import check_widths, recipe_dict, recipe_text
    from compiler.abcd.render import dumps, latex, size_table, table
    from compiler.abcd.symmetry import canonical_form

    if not args.torch_recipe and (args.width is not None or args.base_width is not None):
        flag = "--width" if args.width is not None else "--base-width"
        raise UsageError(f"{flag} only applies to --torch-recipe (the verdicts do not depend on "
                         "a width; add --torch-recipe for the factors at width N)")
    program = load(args)
    opt = parse_optimizer(args.opt)
    param = resolve(args.param, program)
    if args.canonical:
        param = canonical_form(param)
    if args.torch_recipe:
        width, base = check_widths(args.width, args.base_width)
        fixed = frozenset(p.name for p in program.params if p.init is not None)
        if args.json:
            print(json.dumps(recipe_dict(param, opt, width, base, fixed), indent=1,
                             ensure_ascii=False))
        else:
            print(recipe_text(param, opt, width, base, fixed), end="")
        return 0
    analysis = analyse(program, param, opt, args.method)
    if args.json:
        print(dumps(analysis))
    elif args.latex:
        print(latex(analysis), end="")
    else:
        print(table(analysis), end="")
        if args.sizes:
            print("\nsizes (entries Θ(n^e); the coordinate check's slopes, 03 §3.4):")
            print(size_table(analysis), end="")
    return 0
