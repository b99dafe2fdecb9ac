"""``nexort abcd FILE``: the abcd table and verdicts of an architecture (spec 03).

    nexort abcd samples/mlp2.nx --param mup --opt adam
    nexort abcd samples/mlp2.nx --param up:s --json
    nexort abcd samples/attention.nx --param sp:3/2 --opt signsgd --latex
    nexort abcd samples/mlp3.nx --param mup --torch-recipe --width 4096 --base-width 256

``--param`` is a built-in (sp, sp:C with a global learning rate n^-C, ntp, mup, up:S with S a
number or a symbol) or a TOML/JSON table file (:mod:`compiler.abcd.tables`). ``--opt`` decides how
the gradient multiplier n^d acts (:mod:`compiler.train.classes`). Exponents in JSON are exact
strings ("1/2", "s + 1"). Errors in the architecture or table file quote the line at fault.
"""

from __future__ import annotations

import argparse

from compiler.cli.common import Report, arch_summary, command, load
from compiler.cli.options import (
    file_options,
    integer_at_least,
    optimizer_options,
    parametrization_options,
)
from compiler.errors import UsageError


def _options(p: argparse.ArgumentParser) -> None:
    file_options(p)
    parametrization_options(p)
    optimizer_options(p)
    p.add_argument("--method", choices=("auto", "mlp", "calculus"), default="auto",
                   help="the analysis: auto (the exact MLP classifier for MLPs, else the size "
                        "calculus), mlp or calculus")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--latex", action="store_true", help="a LaTeX table for a paper")
    out.add_argument("--torch-recipe", action="store_true",
                     help="per-parameter init std, multiplier, lr and Adam-eps factors")
    p.add_argument("--width", type=integer_at_least(1), help="the width N for --torch-recipe")
    p.add_argument("--base-width", type=integer_at_least(1),
                   help="the base width N0 for --torch-recipe")
    p.add_argument("--sizes", action="store_true",
                   help="also print every vector's exponent at init and of its change")
    p.add_argument("--canonical", action="store_true",
                   help="show the canonical representative (a = 0) of the parametrization")


@command("abcd", "abcd-parametrization table and verdicts (stable, faithful, regime)", _options)
def cmd_abcd(args: argparse.Namespace) -> Report:
    from compiler.abcd import analyse, parse_optimizer, resolve
    from compiler.abcd.recipe import check_widths, recipe_dict, recipe_text
    from compiler.abcd.render import as_json, latex, size_table, table
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
        doc = {**arch_summary(program), **recipe_dict(param, opt, width, base, fixed)}
        return Report(doc, recipe_text(param, opt, width, base, fixed))
    analysis = analyse(program, param, opt, args.method)
    found = as_json(analysis)
    # ``arch`` is the architecture's name in every document; the analysis's reading of it
    # ("2-hidden-layer MLP …") is its description
    doc = {**arch_summary(program), "description": found.pop("arch"), **found}
    if args.latex:
        return Report(doc, latex(analysis))
    text = table(analysis)
    if args.sizes:
        text += "\nsizes (entries Θ(n^e); the coordinate check's slopes, 03 §3.4):\n"
        text += size_table(analysis)
    return Report(doc, text)
