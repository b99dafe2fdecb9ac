"""The option groups commands share, each defined once, with its values checked on parsing.

A bad value (``--seed -1``, ``--width 0``, ``--particles 2``) is an error naming the option
before anything is computed; the application renders it like every other error (exit 1).
Output paths (``--json PATH``, ``--plot PATH``) are checked by :mod:`compiler.cli.output`
before the command runs, so a long computation never ends in an unwritable file.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from fractions import Fraction

JSON_STDOUT = "-"  # ``--json`` without a PATH: the document on stdout


def integer_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer ≥ ``low``; the error names the bound."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"wants an integer, got {text!r}") from None
        if value < low:
            what = {0: "a non-negative integer", 1: "a positive integer"}.get(
                low, f"an integer ≥ {low}")
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    convert.__name__ = f"integer ≥ {low}"
    return convert


def positive_number(text: str) -> float:
    """An argparse type: a number > 0 (a decimal or fraction)."""
    value = fraction(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a decimal or a fraction like 3/2."""
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def file_options(p: argparse.ArgumentParser) -> None:
    """The architecture file and its ``--const`` overrides, and the output convention."""
    p.add_argument("file", help="architecture file (.nx)")
    p.add_argument("--const", action="append", default=[], metavar="NAME=INT",
                   help="override a const of the arch (e.g. S=16)")
    output_options(p)


def output_options(p: argparse.ArgumentParser) -> None:
    """``--json [PATH]``, the same for every command."""
    p.add_argument("--json", nargs="?", const=JSON_STDOUT, metavar="PATH",
                   help="the result as JSON: on stdout, or written to PATH (the text report "
                        "then still goes to stdout)")


def plot_option(p: argparse.ArgumentParser, what: str) -> None:
    """``--plot PATH``: a PNG of ``what``."""
    p.add_argument("--plot", metavar="PATH", help=f"write {what} (PNG)")


def data_options(p: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup) -> None:
    """``--inputs DATA``: an .npz with X_train (and X_test), or one input as a comma list."""
    p.add_argument("--inputs", metavar="DATA",
                   help=".npz with X_train (and X_test), or 1,2,3 for one input")


def width_options(p: argparse.ArgumentParser) -> None:
    """One finite-width run: ``--width`` n and its ``--seed``."""
    p.add_argument("--width", type=integer_at_least(1), required=True, help="the width n")
    seed_option(p, "seed of the random parameters (default 0)")


def seed_option(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--seed", type=integer_at_least(0), default=0, help=help_text)


def output_choice(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--output NAME``: which output vector o a gradient or kernel is of."""
    p.add_argument("--output", metavar="NAME", help=help_text)


def parametrization_options(p: argparse.ArgumentParser) -> None:
    """``--param``: an abcd-parametrization, built-in or a table file."""
    p.add_argument("--param", default="mup", metavar="P",
                   help="sp | sp:C | ntp | mup | up:S | TABLE.toml/.json (default mup)")


def optimizer_options(p: argparse.ArgumentParser) -> None:
    """``--opt``: the optimizer whose updates the analysis follows."""
    p.add_argument("--opt", default="adam", metavar="OPT",
                   help="sgd | momentum(b) | signsgd | signsgd(eps) | adam | adam(eps=0) | "
                        "rmsprop | adagrad (default adam, eps = 1e-8)")


def training_options(p: argparse.ArgumentParser) -> None:
    """What the training commands share: the parametrization, the optimizer, the loss (04 §4.2)."""
    parametrization_options(p)
    optimizer_options(p)
    p.add_argument("--loss", default="mse", metavar="L",
                   help="mse | ce | formula(chi = …) | formula(loss = …) of f and y "
                        "(default mse)")


def particle_options(p: argparse.ArgumentParser) -> None:
    """The Monte Carlo limit engine's sample sizes and memory budget."""
    p.add_argument("--particles", type=integer_at_least(4), metavar="M",
                   help="Monte Carlo particles (default 16384)")
    p.add_argument("--outer2-pool", type=integer_at_least(2), default=96, metavar="K",
                   help="order-2 OuterNonlins average about K² copy pairs per particle "
                        "(cost M·K²; default 96)")
    p.add_argument("--replicas", type=integer_at_least(2), metavar="R",
                   help="independent replicas for standard errors (each keeps at least "
                        "max(32, R) particles, 128 with OuterNonlins)")
    p.add_argument("--memory-limit", type=positive_number, metavar="GIB",
                   help="refuse runs above this")


def widths_seeds_options(p: argparse.ArgumentParser) -> None:
    """Several finite-width runs: ``--compare-widths N1,N2,…`` with ``--seeds`` K each."""
    p.add_argument("--compare-widths", type=widths, metavar="N1,N2,…",
                   help="also run the finite-width program at these widths")
    p.add_argument("--seeds", type=integer_at_least(2), default=4, metavar="K",
                   help="seeds per width for --compare-widths (default 4)")


def widths(text: str) -> list[int]:
    """An argparse type: a comma list of widths ≥ 2."""
    try:
        out = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants integers like 256,1024: {text!r}") from None
    if not out or min(out) < 2:
        raise argparse.ArgumentTypeError(f"needs widths ≥ 2, got {text!r}")
    return out
