"""Golden files pin the printed output of flattening and of every registered pass on every
sample; every printed program also re-parses to an equal Program (spec 07 §7.3 round trip)."""

from __future__ import annotations

import pytest

from compiler.parse import parse_file, parse_text
from compiler.passes import PASSES, run_pass
from compiler.printer import print_program
from tests.conftest import SAMPLES, check_golden, sample_id


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_flatten_golden_and_round_trip(path, update_golden):
    program = parse_file(path)
    text = print_program(program)
    assert parse_text(text) == program
    check_golden(f"{sample_id(path)}.flat.nx", text, update_golden)


@pytest.mark.parametrize("name", sorted(n for n, p in PASSES.items() if p.golden is not None))
@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_pass_golden_and_round_trip(path, name, update_golden):
    result = run_pass(name, parse_file(path), **PASSES[name].golden)
    text = print_program(result)
    assert parse_text(text) == result
    check_golden(f"{sample_id(path)}.{name}.nx", text, update_golden)
