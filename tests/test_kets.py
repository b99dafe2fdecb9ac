"""The ket lowering and its printer (spec 01 §1.4): one ket per vector, one limit per scalar,
hats per orientation, symbolic dot coefficients with the rule that evaluates them."""

from __future__ import annotations

import pytest

from compiler.cli import main
from compiler.frontend.parse import parse_file, parse_text
from compiler.kets.lowering import AvgLimit, FormulaKet, InitKet, MatMulKet, ScalarLimit, lower
from compiler.kets.printer import print_kets
from compiler.passes.backprop import backprop
from tests.conftest import ROOT, SAMPLES, sample_id


def prog(body: str, params: str = "param x : vector\n param W : matrix") -> object:
    return parse_text(f"arch t {{\n {params}\n {body}\n}}\n")


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_every_sample_lowers_one_statement_per_object(path):
    p = parse_file(path)
    k = lower(p)
    assert [s.out for s in k.stmts if not isinstance(s, ScalarLimit | InitKet)] == [
        i.out for i in p.body
    ]
    assert {s.out for s in k.stmts} == set(p.kinds) - set(p.param_names("matrix"))
    text = print_kets(k)
    latex = print_kets(k, latex=True)
    assert "⟩" in text and r"\begin{align*}" in latex and r"\lvert" in latex


def test_statement_kinds_and_initial_scalars():
    p = parse_text("""arch t {
        input xi[2]
        param u : vector
        param W : matrix
        param a : scalar = 1/2
        param b : scalar
        h = W @ (u * xi[0] + a)
        s = avg(h * b)
        output h
    }""")
    k = lower(p).by_name
    assert k["xi[0]"] == ScalarLimit("xi[0]", "input")
    assert k["a"].source == "fixed" and k["b"].source == "random"
    assert isinstance(k["u"], InitKet)
    assert isinstance(k["h"], MatMulKet) and k["h"].hat.matrix == "W" and k["h"].dots == ()
    assert isinstance(k["s"], AvgLimit)
    assert isinstance(k[p.producer["h"].arg], FormulaKet)


def test_hats_are_grouped_per_orientation_and_dots_name_the_other_orientation():
    k = lower(prog("h = W @ x\n g = W.T @ tanh(h)\n k = W @ g\n output k"))
    hats = {name: h for name, h in k.hats.items()}
    assert [(h.transpose, h.index) for h in hats.values()] == [(False, 0), (True, 0), (False, 1)]
    g = k.by_name["g"]
    (c,) = g.dots
    assert c.hat.out == "h" and c.rule == "derivative" and c.arg == g.hat.arg
    k_ = k.by_name["k"]
    assert [d.hat.out for d in k_.dots] == ["g"]  # E[∂g/∂Ŵᵀ(tanh h)]


def test_no_dot_term_without_dependence():
    # u is independent of W x, so Wᵀu has no dot term on the hat of W x
    k = lower(
        prog(
            "h = W @ x\n g = W.T @ u\n output g + h",
            "param x : vector\n param u : vector\n param W : matrix",
        )
    )
    assert k.by_name["g"].dots == ()


def test_step_makes_the_coefficient_a_stein_coefficient():
    k = lower(prog("h = W @ x\n g = W.T @ step(h)\n output g"))
    (c,) = k.by_name["g"].dots
    assert c.rule == "stein" and "Dirac" in c.why


def test_readout_parity_kills_backprop_dot_terms():
    k = lower(backprop(parse_file(ROOT / "samples" / "mlp3.nx")))
    dots = [c for s in k.stmts if isinstance(s, MatMulKet) for c in s.dots]
    assert dots and all(c.rule == "zero" and "v ↦ −v" in c.why for c in dots)
    assert "= 0    # odd under v ↦ −v" in print_kets(k)


def test_copies_carry_no_dependence():
    k = lower(prog("h = W @ x\n y = mean[b](tanh(h[b]) * x)\n g = W.T @ y\n output g"))
    assert k.by_name["g"].dots == ()  # y depends on Ŵx only through the copies (E′)


def test_printer_shows_primes_rings_and_hats():
    k = lower(
        prog("h = W @ x\n s = avg(h*h)\n y = mean[b](tanh(x * h[b] + s))\n g = W.T @ y\n output g")
    )
    text = print_kets(k)
    assert "|h⟩ = |Ŵ x⟩" in text
    assert "s̊ = E[|_2⟩]" in text or "s̊ = E[" in text
    assert "E′[tanh(s̊ + |h⟩′*|x⟩)]" in text
    assert "|g⟩ = |Ŵᵀ y⟩" in text
    latex = print_kets(k, latex=True)
    assert r"\mathring{s}" in latex and r"\widehat{W^{\top}}" in latex and r"\mathbb{E}'" in latex


def test_cli_lower(capsys):
    assert main(["lower", str(ROOT / "samples" / "programs" / "outer2.nx")]) == 0
    out = capsys.readouterr().out
    assert "|g⟩ = |Ŵᵀ h⟩ + |x⟩·E[∂|h⟩/∂|Ŵ x⟩]" in out
    assert main(["lower", str(ROOT / "samples" / "rnn.nx"), "--latex"]) == 0
    assert r"\begin{align*}" in capsys.readouterr().out
