"""The Master Theorem as a property (spec 01 §1.5, 07 §7.3): for random well-formed programs the
seed-averaged finite-width scalars approach the ket limits computed by the generic evaluator.

Programs are drawn by a hypothesis strategy: initial vectors x0, x1, one or two matrices used
with and without transpose (so dot terms appear), Nonlins with scalar arguments, Avgs, and
OuterNonlins of order 1 and 2.  Every Avg scalar is compared.

Statistics.  For a scalar s, one seed's value at width n fluctuates by σ_s/√n; c_s = σ_s² is
pooled over all widths (3·(K−1) degrees of freedom, much steadier than one width's K − 1), so the
standard error of the K-seed mean is √(c_s/(nK)); each width uses its own seeds (one seed's
streams share their prefix across widths, which would correlate the widths).  With the limit's
own replica standard error e_L, the z-score of the gap at the largest width must stay below
Z = 5 (several scalars per program); a bias allowance of 2·√c_s/n covers the O(1/n) finite-width
bias.  "The largest gap shrinks with n": over all programs and scalars, the largest gap in units
of √c_s at the largest width is smaller than at the smallest width.

Cost.  Order-2 OuterNonlins cost n³ at finite width, so programs containing one run at widths
64, 128, 256 instead of 256, 1024, 4096 (stated in the output).  The CI variant draws 6 programs
(about 40 s on 2 cores); the full variant draws 100 and is marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from compiler.ir import Avg, OuterNonlin, Program
from compiler.kets import lower
from compiler.parse import parse_text
from runtime.executor import execute
from runtime.limits import LimitOptions, evaluate

WIDTHS, WIDTHS_ORDER2 = (256, 1024, 4096), (64, 128, 256)
SEEDS, PARTICLES, Z = 6, 16384, 5.0

UNARY = ("tanh({a})", "sin({a})", "relu({a})", "sigmoid({a})", "{a}")
BINARY = (
    "tanh({a} + {s}*{b})",
    "sin({a})*{b}",
    "relu({a}) - {s}*{b}",
    "{a}*tanh({b})",
    "sigmoid({a} - {b})*{s}",
    "{a}*{b}/(1 + {b}^2)",
)


@st.composite
def programs(draw: st.DrawFn, order2: bool | None = None) -> Program:
    """A random program; ``order2`` forces (True) or forbids (False) an order-2 OuterNonlin."""
    mats = ["A", "B"][: draw(st.integers(1, 2))]
    c = draw(st.sampled_from(["1/2", "-1/3", "1", "3/4"]))
    lines = [
        "param x0 : vector",
        "param x1 : vector",
        *(f"param {m} : matrix" for m in mats),
        f"param c : scalar = {c}",
    ]
    vecs, scals, avgs = ["x0", "x1"], ["c"], 0
    pick = lambda xs: draw(st.sampled_from(xs))  # noqa: E731
    kinds = draw(
        st.lists(
            st.sampled_from(["matmul", "matmul", "nonlin", "avg", "outer1"]), min_size=4, max_size=9
        )
    )
    if order2 is not False and (order2 or (draw(st.booleans()) and draw(st.booleans()))):
        kinds.insert(draw(st.integers(1, len(kinds))), "outer2")
    for k, kind in enumerate(kinds):
        a, b, u, s = pick(vecs), pick(vecs), pick(vecs), pick(scals)
        y = f"y{k}"
        if kind == "matmul":
            t = ".T" if draw(st.booleans()) else ""
            lines.append(f"{y} = {pick(mats)}{t} @ {pick(UNARY).format(a=a)}")
        elif kind == "nonlin":
            lines.append(f"{y} = " + pick(BINARY).format(a=a, b=b, s=s))
        elif kind == "outer1":
            lines.append(f"{y} = mean[p](tanh({a}*{u}[p] + {s})*{b}[p])")
        elif kind == "outer2":
            lines.append(f"{y} = mean[p, q](sigmoid({a}*{u}[p] - {b}[q])*{u}[q])")
        else:
            lines.append(f"s{k} = avg({pick(BINARY).format(a=a, b=b, s=s)})")
            scals.append(f"s{k}")
            avgs += 1
            continue
        vecs.append(y)
    for k in range(avgs, 2):  # at least two scalars to compare
        lines.append(f"t{k} = avg({vecs[-1 - k]}*{pick(UNARY).format(a=pick(vecs))})")
    body = "\n    ".join(lines)
    return parse_text(f"arch random_program {{\n    {body}\n    output {vecs[-1]}\n}}\n")


def has_order2(p: Program) -> bool:
    return any(isinstance(i, OuterNonlin) and i.order == 2 for i in p.body)


def gaps(p: Program) -> dict[str, dict[str, float]]:
    """Per Avg scalar: z-score of the gap at the largest width and the normalised gaps
    (gap/√c_s) at the smallest and largest widths."""
    widths = WIDTHS_ORDER2 if has_order2(p) else WIDTHS
    lim = evaluate(lower(p), opts=LimitOptions(particles=PARTICLES, outer2_pool=64))
    names = [i.out for i in p.body if isinstance(i, Avg)]
    # independent seeds per width: parameter streams of one seed share their prefix across widths
    runs = {
        n: [execute(p, n, 1000 * k + seed) for seed in range(SEEDS)] for k, n in enumerate(widths)
    }
    out = {}
    for s in names:
        vals = {n: np.array([r[s][0] for r in runs[n]]) for n in widths}
        c = np.mean([n * v.var(ddof=1) for n, v in vals.items()])
        lim_s, lim_se = lim.scalars[s][0], lim.stderr[s][0]
        gap = {n: abs(v.mean() - lim_s) for n, v in vals.items()}
        n_max, n_min = widths[-1], widths[0]
        se = np.sqrt(c / (n_max * SEEDS) + lim_se**2)
        allowance = 2 * np.sqrt(c) / n_max
        out[s] = {
            "z": (gap[n_max] - allowance) / se
            if se > 0
            else (0.0 if gap[n_max] < 1e-9 else np.inf),
            "small": gap[n_min] / np.sqrt(c) if c > 1e-20 else 0.0,
            "large": gap[n_max] / np.sqrt(c) if c > 1e-20 else 0.0,
        }
    return out


def check_program(p: Program, rows: list[dict[str, float]]) -> None:
    """Consistency at the largest width; collects the normalised gaps for the sweep."""
    g = gaps(p)
    worst = max(g.values(), key=lambda d: d["z"])
    assert worst["z"] < Z, (g, "\n" + _text(p))
    rows.extend({**d, "order2": has_order2(p)} for d in g.values())


def sweep(n_programs: int, n_order2: int) -> list[dict[str, float]]:
    """Run hypothesis over ``n_programs`` programs (``n_order2`` of them with an order-2
    OuterNonlin) and return one row per compared scalar."""
    rows: list[dict[str, float]] = []

    @settings(max_examples=n_programs - n_order2, **SETTINGS)
    @given(programs(order2=False))
    def plain(p: Program) -> None:
        check_program(p, rows)

    @settings(max_examples=n_order2, **SETTINGS)
    @given(programs(order2=True))
    def order2(p: Program) -> None:
        check_program(p, rows)

    plain()
    order2()
    return rows


def assert_gap_shrinks(rows: list[dict[str, float]], order2: bool = False) -> None:
    """The largest gap over every program and scalar shrinks from the smallest width to the
    largest (in units of the per-coordinate standard deviation √c_s), within the programs with
    (``order2``) or without an order-2 OuterNonlin: their width ranges differ (64…256 spans a
    factor 4, an expected shrink of only 2, so a few order-2 programs do not decide it)."""
    rows = [r for r in rows if r["order2"] == order2]
    small, large = max(r["small"] for r in rows), max(r["large"] for r in rows)
    assert large < small, (large, small)


def _text(p: Program) -> str:
    from compiler.printer import print_program

    return print_program(p)


SETTINGS = dict(
    deadline=None,
    derandomize=True,
    phases=[Phase.generate],
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_master_theorem_fast():
    rows = sweep(6, 1)
    assert len(rows) >= 12
    assert_gap_shrinks(rows)


@pytest.mark.slow
def test_master_theorem_full():
    rows = sweep(100, 20)
    assert_gap_shrinks(rows)
    assert_gap_shrinks(rows, order2=True)
    large = np.array([r["large"] for r in rows])
    small = np.array([r["small"] for r in rows])
    assert np.median(large) < 0.5 * np.median(small), (np.median(large), np.median(small))
