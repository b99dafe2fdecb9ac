"""The width exponents of the training program (spec 04 §4.3, compiler.train.widths)."""

from __future__ import annotations

import pytest
import sympy

from compiler.abcd import resolve
from compiler.errors import VerifyError
from compiler.frontend.parse import parse_file, parse_text
from compiler.train.widths import check_width_free, training_width_exponents, width_powers
from tests.conftest import ROOT, SAMPLES, sample_id

HALF = sympy.Rational(1, 2)
WIDTHY = ("arch a {\n input xi[2]\n param U : vector[2]\n param v : vector\n"
          " h0 = U . xi\n h = n^(1/2) * h0 + n * h0 + h0 / n\n output v * h\n}")


@pytest.mark.parametrize("path", [p for p in SAMPLES if "signsgd_step" not in p.name],
                         ids=sample_id)
def test_mup_training_program_is_width_free(path):
    """04 §4.3: under μP every power of n in the training program is n^0 (Rem. 2.9.28).

    The unroll pass does not exist yet (a later issue): this checks the table side; once it
    lands, its tests should also call check_width_free on the unrolled μP program of every
    sample."""
    p = parse_file(path)
    exps = training_width_exponents(p, resolve("mup", p))
    assert exps.width_free and exps.exponents() == {0}
    assert [q.name for q in exps.params] == [q.name for q in p.params]
    check_width_free(p)  # no n in the samples


def test_ntp_training_program_is_not_width_free():
    """NTP (03 §3.2: hidden W has a = ½, b = 0, c = 1, d = 1; e_out = ½ via the readout):
    W₀x has ½ − A = 0, its update 1 − C = −½, the output 1 − e_out = ½."""
    p = parse_file(ROOT / "samples" / "mlp2.nx")
    exps = training_width_exponents(p, resolve("ntp", p))
    w = exps["W"]
    assert (w.kind, w.initial, w.update) == ("matrix", 0, -HALF)
    assert exps.output == HALF and not exps.width_free
    assert dict(exps.items())["W: update"] == -HALF


def test_deterministic_initial_value_has_no_random_term():
    p = parse_text("arch a {\n input xi\n param U : vector\n param s : scalar = 1\n"
                   " output s * (U * xi)\n}")
    param = resolve("mup", p)
    exps = training_width_exponents(p, param)
    assert exps["s"].initial is None and exps["U"].initial is not None
    assert "s: initial value" not in dict(exps.items())
    # a scalar's Q input carries the extra n¹ of 04 §4.3 (dΘ is not scaled by n), a vector's not
    assert exps["s"].q_input == param["s"].D - param.e_out + 1
    assert exps["U"].q_input == param["U"].D - param.e_out


def test_unknown_parameter_is_a_key_error():
    p = parse_file(ROOT / "samples" / "mlp2.nx")
    with pytest.raises(KeyError):
        training_width_exponents(p, resolve("mup", p))["nope"]


def test_width_powers_reads_formulas():
    assert width_powers(parse_text(WIDTHY)) == {"h": {HALF, 1, -1}}


def test_check_width_free_names_the_instruction():
    with pytest.raises(VerifyError) as e:
        check_width_free(parse_text(WIDTHY))
    message = str(e.value)
    assert "not width free" in message and "h:" in message and "h = " in message
