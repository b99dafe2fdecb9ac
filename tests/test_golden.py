"""Golden files pin the printed output of flattening and of every registered pass on every
sample; every printed program also re-parses to an equal Program (spec 07 §7.3 round trip).
The list of passes comes from the registry: a pass with sample options gets golden files."""

from __future__ import annotations

import pytest

from compiler.errors import NexortError
from compiler.frontend.parse import parse_file, parse_text
from compiler.passes.pipeline import run_pass
from compiler.passes.registry import load_passes
from compiler.printer import print_program
from tests.conftest import SAMPLES, check_golden, sample_id

GOLDEN_PASSES = sorted(n for n, p in load_passes().items() if p.golden)


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_flatten_golden_and_round_trip(path, update_golden):
    program = parse_file(path)
    text = print_program(program)
    assert parse_text(text) == program
    check_golden(f"{sample_id(path)}.flat.nx", text, update_golden)


@pytest.mark.parametrize("name", GOLDEN_PASSES)
@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_pass_golden_and_round_trip(path, name, update_golden):
    info = load_passes()[name]
    assert info.sample is not None  # golden passes have sample options (see register_pass)
    try:
        result = run_pass(parse_file(path), info.sample)
    except NexortError as e:  # a pass may refuse a sample (backprop through a step): pin the error
        where = f"{e.loc.line}:{e.loc.column}: " if e.loc else ""
        text = f"{where}{type(e).__name__}: {e.message}\n"
        check_golden(f"{sample_id(path)}.{name}.err", text, update_golden)
        return
    if info.result.program is not None:
        program = info.result.program(result)
        assert parse_text(print_program(program)) == program
    check_golden(f"{sample_id(path)}.{name}.{info.result.suffix}", info.result.text(result),
                 update_golden)
