"""``method="auto"`` weighs cost (issue 13 item 1b): the exact path reports progress, gives up
past its time limit (set from the Monte Carlo estimate) so that Monte Carlo runs instead, and
its quadrature grids stay within ``memory_budget``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compiler.frontend.parse import parse_file
from compiler.kets.lowering import KetProgram, lower
from compiler.passes.kernel_program import kernel_program
from runtime.limits import LimitOptions, NotApplicableError, engines, evaluate
from runtime.limits.closed_forms import mlp_kernels

ROOT = Path(__file__).resolve().parent.parent
X = np.load(ROOT / "samples" / "data" / "gauss10.npz")["X_train"][:2]


def _kernels() -> tuple[KetProgram, dict[str, np.ndarray], dict[tuple[int, int], str]]:
    kp = kernel_program(parse_file(ROOT / "samples" / "mlp2.nx"), len(X))
    return lower(kp.program), kp.bind(X), kp.nngp


def test_exact_path_reports_progress_to_the_end() -> None:
    kets, x, _ = _kernels()
    seen: list[tuple[float, float, str]] = []
    evaluate(kets, x, "exact", progress=lambda d, t, label: seen.append((d, t, label)))
    assert seen and seen[-1][0] == seen[-1][1] == len(kets.stmts)
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    assert {label for _, _, label in seen} == {"exact path"}


def test_exact_path_gives_up_past_its_time_limit() -> None:
    kets, x, _ = _kernels()
    with pytest.raises(NotApplicableError, match="time limit"):
        evaluate(kets, x, "exact", LimitOptions(time_limit=0.0))


def test_auto_takes_monte_carlo_when_the_exact_path_is_dearer(monkeypatch) -> None:
    """With the exact path allowed (almost) no time, auto passes it over on its up-front
    estimate, says why with both estimates, and answers by Monte Carlo, within 4 standard
    errors of the closed form."""
    monkeypatch.setattr(engines, "AUTO_FLOOR", 0.0)
    monkeypatch.setattr(engines, "AUTO_FACTOR", 1e-9)
    kets, x, nngp = _kernels()
    res = evaluate(kets, x, "auto", LimitOptions(particles=4096), scalars_wanted=set(nngp.values()))
    assert res.method == "mc"
    (note,) = res.notes
    assert "exact path not applicable (estimated" in note and "Monte Carlo's" in note, note
    assert "integrals" in note and "Monte Carlo instead" in note
    want = mlp_kernels(X, 2, "relu").nngp
    for (i, j), name in nngp.items():
        assert abs(res.scalars[name][0] - want[i, j]) <= 4 * res.stderr[name][0]


def test_auto_keeps_the_exact_path_when_it_is_cheap() -> None:
    kets, x, nngp = _kernels()
    res = evaluate(kets, x, "auto", scalars_wanted=set(nngp.values()))
    assert res.method == "exact" and not res.notes


def test_a_memory_budget_bounds_every_quadrature_grid(monkeypatch) -> None:
    """Under 256 KiB no integral's grid holds more than budget / (8·(leaves + 4)) points, and an
    answer the small grids cannot make exact is refused, never printed as exact."""
    from runtime.limits import quadgrid

    budget = 1 << 18
    sizes: list[int] = []
    real = quadgrid._sum

    def recording(f, coords, consts, kink, u, wu, comp, v, wv):  # type: ignore[no-untyped-def]
        points = len(wu) * (len(wv) if v.ndim > 1 else len(wv) ** comp.shape[1])
        sizes.append(8 * (coords.shape[0] + 4) * points)
        return real(f, coords, consts, kink, u, wu, comp, v, wv)

    monkeypatch.setattr(quadgrid, "_sum", recording)
    kp = kernel_program(parse_file(ROOT / "samples" / "mlp2_erf.nx"), len(X))
    try:
        res = evaluate(lower(kp.program), kp.bind(X), "exact", LimitOptions(memory_budget=budget))
    except NotApplicableError as e:
        assert "did not converge" in e.message
    else:
        want = mlp_kernels(X, 2, "erf").nngp
        for (i, j), name in kp.nngp.items():
            assert abs(res.scalars[name][0] - want[i, j]) < 1e-10
    assert sizes and max(sizes) <= budget
