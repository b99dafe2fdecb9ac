"""The pass pipeline and the one liveness analysis.

Driven by the registry: every registered pass, run with its sample options on every sample,
gives a result of its declared class that the verifier of that class accepts (or refuses the
sample with a located user error). A broken pass is caught after it runs, by name, with the
instruction quoted; a chain that cannot type-check is refused before anything runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.errors import NexortError, UsageError, VerifyError
from compiler.frontend.parse import parse_file, parse_text
from compiler.ir import Avg, Program, reads
from compiler.kets.lowering import KetProgram, lower
from compiler.kets.verify import verify_kets
from compiler.passes.backprop import Backprop, BackpropOptions, backprop_map
from compiler.passes.dce import DceOptions, dead_code_elimination
from compiler.passes.gradients import verify_gradients
from compiler.passes.kernel_program import KernelOptions, kernel_program, verify_kernels
from compiler.passes.liveness import live_variables
from compiler.passes.lower import LowerOptions
from compiler.passes.pipeline import (
    describe,
    make_options,
    parse_pipeline,
    run_pass,
    run_pipeline,
)
from compiler.passes.registry import (
    BY_OPTIONS,
    PASSES,
    PROGRAM,
    PassOptions,
    load_passes,
    register_pass,
)
from compiler.passes.total import Total, TotalOptions
from tests.conftest import ROOT, SAMPLES, sample_id
from tests.strategies import programs

REGISTERED = sorted(load_passes())
MLP2 = ROOT / "samples" / "mlp2.nx"


@pytest.mark.parametrize("name", REGISTERED)
@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_every_registered_pass_output_verifies_on_every_sample(path, name):
    info = PASSES[name]
    assert info.sample is not None, f"pass {name} has no sample options: it goes untested"
    try:
        result = info.run(parse_file(path), info.sample)
    except NexortError as e:  # a pass may refuse a sample (backprop through a step) ...
        assert not isinstance(e, VerifyError) and e.loc is not None  # ... with a located error
        return
    assert isinstance(result, info.result.cls)
    info.result.verify(result)


def test_the_required_passes_are_registered_with_typed_frozen_options():
    assert {"dce", "backprop", "total", "kernel-program", "lower"} <= set(PASSES)
    for name, info in PASSES.items():
        assert issubclass(info.options, PassOptions) and dataclasses.is_dataclass(info.options)
        assert info.options.__dataclass_params__.frozen, name  # type: ignore[attr-defined]
        assert BY_OPTIONS[info.options] is info
        assert info.doc, f"pass {name} has no docstring"


@pytest.fixture
def broken_pass() -> Iterator[type[PassOptions[Program]]]:
    """A pass that assigns its last instruction's variable twice (registered for one test)."""

    @dataclass(frozen=True)
    class BrokenOptions(PassOptions[Program]):
        pass

    @register_pass("broken", BrokenOptions, PROGRAM)
    def run_broken(program: Program, options: BrokenOptions) -> Program:
        """Break single assignment."""
        return program.replace(body=(*program.body, program.body[-1]))

    yield BrokenOptions
    del PASSES["broken"], BY_OPTIONS[BrokenOptions]


def test_pipeline_verifies_after_each_pass_naming_it(broken_pass):
    program = parse_file(MLP2)
    with pytest.raises(VerifyError) as err:
        run_pipeline(program, [BackpropOptions(), broken_pass()])
    last = backprop_map(program).program.body[-1]
    assert err.value.message.startswith("after pass broken: ")
    assert f"{last.out} is assigned twice" in err.value.message
    assert "\n    in: " in err.value.message  # the printed instruction is quoted


def test_pipeline_refuses_a_terminal_result_before_running_anything(broken_pass):
    with pytest.raises(UsageError, match="pass dce needs a program, but pass lower gives"):
        run_pipeline(parse_file(MLP2), [broken_pass(), LowerOptions(), DceOptions()])


def test_what_later_steps_need_travels_with_the_result():
    program = parse_file(MLP2)
    bp = backprop_map(program)
    keep = tuple(g for _, g in bp.grads.names)
    res = run_pipeline(program, [BackpropOptions(), DceOptions(keep=keep), TotalOptions(batch=3)])
    assert res.find(Backprop).grads == bp.grads
    assert res.steps[1].result == bp.program  # every gradient is kept alive by ``keep``
    total = res.find(Total)
    assert len(total.grads or ()) == 3 and res.program is total.program
    assert isinstance(run_pass(program, LowerOptions()), KetProgram)


def test_text_form_of_a_pipeline():
    got = parse_pipeline("backprop{output=out input_gradients=false}, dce{keep=a,b},total{batch=3}")
    assert got == [BackpropOptions("out", False), DceOptions(("a", "b")), TotalOptions(3)]
    assert parse_pipeline("backprop{output=none},lower") == [BackpropOptions(None), LowerOptions()]
    assert make_options("kernel-program", batch="4") == KernelOptions(4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dce,optimise", "unknown pass 'optimise'"),
        ("backprop{out=o}", "pass backprop has no option 'out'"),
        ("total{batch=two}", "option batch='two' is not a int"),
        ("total", "pass total: .*batch"),
        ("dce{keep}", "option 'keep' is not OPTION=VALUE"),
        ("dce;lower", "cannot read from column 4"),
    ],
)
def test_bad_pipeline_text_is_a_usage_error(text, message):
    with pytest.raises(UsageError, match=message):
        parse_pipeline(text)


def test_each_result_type_has_its_own_verifier():
    program = parse_file(MLP2)
    bp = backprop_map(program)
    bad = replace(bp.grads, names=(*bp.grads.names, ("x2", "nowhere")))
    with pytest.raises(VerifyError, match="names an undefined object"):
        verify_gradients(bad, bp.program)
    kp = kernel_program(program, 2)
    with pytest.raises(VerifyError, match="is not a scalar"):
        verify_kernels(replace(kp, nngp={**kp.nngp, (0, 0): kp.program.outputs[0]}))
    kets = lower(bp.program)
    shuffled = replace(kets, stmts=(*kets.stmts[:-2], kets.stmts[-1], kets.stmts[-2]))
    with pytest.raises(VerifyError, match="statement"):
        verify_kets(shuffled)
    first_hat = next(k for k, s in enumerate(kets.stmts) if hasattr(s, "hat"))
    hat = kets.stmts[first_hat]
    moved = replace(hat, hat=replace(hat.hat, index=hat.hat.index + 1))  # type: ignore[arg-type]
    stmts = (*kets.stmts[:first_hat], moved, *kets.stmts[first_hat + 1:])
    with pytest.raises(VerifyError, match="does not match its MatMul"):
        verify_kets(replace(kets, stmts=stmts))


@settings(max_examples=60, deadline=None)
@given(programs(max_steps=10), st.data())
def test_one_liveness_analysis_is_closed_and_minimal(program, data):
    """Live = the roots and everything a live instruction reads, and nothing else."""
    names = [ins.out for ins in program.body]
    roots = data.draw(st.sets(st.sampled_from(names), min_size=1, max_size=3))
    live = live_variables(program, roots)
    read_by_live = {v for ins in program.body if ins.out in live for v in reads(ins)}
    assert read_by_live <= live
    assert live == set(roots) | read_by_live
    kept = dead_code_elimination(program, tuple(roots))
    wanted = live | live_variables(program, program.outputs)
    assert [i.out for i in kept.body] == [n for n in names if n in wanted]


@settings(max_examples=40, deadline=None)
@given(programs(max_steps=10))
def test_backprop_differentiates_only_what_is_live(program):
    """Backprop and dce use the same liveness: an instruction dce drops gets no gradient, and
    backprop of the dce'd program is the same program over the kept body."""
    dead = {i.out for i in program.body} - {i.out for i in dead_code_elimination(program).body}
    bp = run_pass(program, BackpropOptions())
    assert not dead & {v for v, _ in bp.grads.names}
    slim = run_pass(dead_code_elimination(program), BackpropOptions())
    assert dict(slim.grads.names).keys() == dict(bp.grads.names).keys()


def test_liveness_refuses_an_unknown_root():
    with pytest.raises(UsageError, match="defines no nowhere"):
        live_variables(parse_text((MLP2).read_text()), ["nowhere"])
    with pytest.raises(UsageError, match="defines no nowhere"):
        run_pass(parse_file(MLP2), DceOptions(keep=("nowhere",)))


def test_avg_only_roots_keep_their_vector():
    program = parse_file(MLP2)
    program = program.replace(body=(*program.body, Avg("s", program.outputs[0])))
    assert live_variables(program, ["s"]) >= {"s", program.outputs[0]}


def test_empty_pipeline_is_the_verified_input():
    program = parse_file(MLP2)
    assert parse_pipeline(" ") == []
    assert run_pipeline(program, []).last is program
    with pytest.raises(UsageError, match="column 5"):
        parse_pipeline("dce,,lower")


def test_describe_lists_each_pass_with_its_options_in_the_text_form():
    """What ``describe`` prints is itself a pipeline the parser reads (once required options get
    values): the help text and the parser cannot drift apart."""
    for name, info in PASSES.items():
        line = describe(info)
        assert line.startswith(name) and info.doc in line
    assert describe(PASSES["total"]).startswith("total{batch output=None gradients=True")
    assert parse_pipeline("total{batch=2 output=None gradients=True input_gradients=True}") == [
        TotalOptions(2)
    ]
