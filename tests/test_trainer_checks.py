"""Properties of the trainer beyond agreement with direct training: the abcd symmetry (03 §3.1),
the stepwise optimizer against :meth:`Optimizer.run`, K seeds, the batch schedule, divergence and
memory errors, and the record's own checks (04 §4.2, §4.3)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy

from compiler.errors import NumericError, UsageError
from compiler.train import OptionError, parse_optimizer
from compiler.train.setup import Schedule, build_training
from runtime.executor import execute
from runtime.trainer import _factors, _SeedRun, backprops, train
from runtime.training.stepper import GroupStepper
from tests.conftest import ROOT
from tests.test_trainer import OPTIMIZERS, data, program


@pytest.mark.parametrize("arch", ["mlp2", "resmlp", "layernorm_mlp", "attention"])
@pytest.mark.parametrize("opt", ["sgd(lr=0.05)", "adam(lr=0.02, eps=1e-3)"])
@pytest.mark.parametrize("param", ["mup", "sp"])
def test_abcd_symmetry_leaves_f_unchanged(arch: str, opt: str, param: str) -> None:
    """(a, b, c, d) → (a+θ, b−θ, c−θ, d+θ) per tensor, θ random: f_t equal to float precision
    (the factors n^{±θ} cancel exactly in real arithmetic; in float64 each costs an ulp)."""
    prog = program(arch)
    base = build_training(prog, param, opt, "mse", 4, 4, 2, None, True)
    rng = np.random.default_rng(11)
    shifted = base.param.with_exponents(
        {g: base.param[g].shifted(sympy.Rational(int(rng.integers(-9, 10)), 4))
         for g in base.param})
    other = build_training(prog, shifted, opt, "mse", 4, 4, 2, None, True)
    assert any(base.param[g] != other.param[g] for g in base.param)
    x = np.random.default_rng(4).standard_normal((6, len(prog.input_names))) / 2
    y = np.random.default_rng(5).standard_normal((4, 1))
    f1 = train(base, x, y, 64, seeds=(0,)).f
    f2 = train(other, x, y, 64, seeds=(0,)).f
    assert np.abs(f1[0, -1]).max() > 1e-3
    np.testing.assert_allclose(f2, f1, rtol=0, atol=1e-12 * max(1.0, np.abs(f1).max()))


@pytest.mark.parametrize("text", OPTIMIZERS)
def test_stepper_is_optimizer_run_one_step_at_a_time(text: str) -> None:
    opt = parse_optimizer(text)
    grads = np.random.default_rng(5).standard_normal((6, 3, 7))  # 6 steps, a group of 3 entries
    stepper = GroupStepper(opt, [(7,)] * 3)
    got = np.stack([np.stack(stepper.step(t, list(g))) for t, g in enumerate(grads)])
    np.testing.assert_allclose(got, opt.run(grads), rtol=1e-13, atol=1e-15)


def test_seeds_are_independent_draws_and_deterministic() -> None:
    tr = build_training(program("mlp2"), "mup", "adam(lr=0.02)", "mse", 2, 3)
    x, y = data(3, 0, 1)
    a = train(tr, x, y, 32, seeds=(0, 1))
    b = train(tr, x, y, 32, seeds=(1,))
    assert a.f.shape == (2, 3, 3, 1) and a.loss.shape == (2, 3)
    np.testing.assert_array_equal(a.f[1], b.f[0])
    assert np.abs(a.f[0] - a.f[1]).max() > 1e-3


def test_batches_are_consecutive_slices_cycling() -> None:
    s = Schedule(5, 2, 2)
    assert [s.batch(t) for t in range(4)] == [(0, 1), (2, 3), (4, 0), (1, 2)]
    assert s.points() == ("train:0", "train:1", "train:2", "train:3", "train:4", "test:0",
                          "test:1")


def test_test_points_do_not_train() -> None:
    """Moving the test points changes nothing on the training points (χ = 0 there)."""
    tr = build_training(program("mlp2"), "mup", "adam(lr=0.02, eps=1e-4)", "mse", 3, 4, 2)
    x, y = data(4, 2, 1)
    x2 = x.copy()
    x2[4:] *= -3
    a, b = train(tr, x, y, 32).f, train(tr, x2, y, 32).f
    np.testing.assert_array_equal(a[:, :, :4], b[:, :, :4])
    assert np.abs(a[:, :, 4:] - b[:, :, 4:]).max() > 1e-3


def test_divergence_names_the_step_and_tensor() -> None:
    tr = build_training(program("mlp2"), "sp", "sgd(lr=1e150)", "mse", 5, 4)
    x, y = data(4, 0, 1)
    with pytest.raises(NumericError, match=r"training step \d+: (NaN|Inf) ") as e:
        train(tr, x, y, 32)
    assert any(name in e.value.message for name in ("U[", "W", "v", "by:"))


def test_a_width_that_does_not_fit_is_refused_with_the_estimate(monkeypatch) -> None:
    def no_draw(*args, **kwargs):
        raise AssertionError("allocated before estimating")

    monkeypatch.setattr("runtime.trainer.draw_parameters", no_draw)
    tr = build_training(program("resmlp"), "mup", "adam", "mse", 2, 4)
    x, y = data(4, 0, 1)
    with pytest.raises(UsageError, match=r"GiB.*smaller --width"):
        train(tr, x, y, 2_000_000)


def test_symbolic_exponents_cannot_train() -> None:
    tr = build_training(program("mlp2"), "up:s", "sgd", "mse", 2, 4)
    x, y = data(4, 0, 1)
    with pytest.raises(UsageError, match="symbolic exponent"):
        train(tr, x, y, 16)


@pytest.mark.parametrize("kwargs,says", [
    ({"steps": 0}, "--steps"), ({"batch_size": 5}, "--batch-size"),
    ({"loss_spec": "ce"}, "k ≥ 2 outputs"), ({"n_train": 0}, "training point"),
])
def test_build_training_refuses_bad_counts(kwargs: dict, says: str) -> None:
    args = {"param_spec": "mup", "opt_spec": "sgd", "loss_spec": "mse", "steps": 3,
            "n_train": 4, **kwargs}
    with pytest.raises(UsageError, match=says):
        build_training(program("mlp2"), **args)


def test_option_strings_are_located() -> None:
    with pytest.raises(OptionError) as e:
        build_training(program("mlp2"), "mup", "adam(lr=0.1, beta3=2)", "mse", 3, 4)
    assert "beta3" in str(e.value)


def test_the_record_prints_every_tensor_and_mup_is_width_free() -> None:
    for arch in sorted(p.stem for p in (ROOT / "samples").glob("*.nx")):
        tr = build_training(program(arch), "mup", "adam", "mse", 3, 4)
        text = tr.format()
        assert all(t.name in text for t in tr.tensors) and tr.widths.width_free
    assert not build_training(program("mlp2"), "ntp", "adam", "mse", 3, 4).widths.width_free


ARCHS = sorted(p.stem for p in (ROOT / "samples").glob("*.nx"))


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_are_derivatives_of_the_chi_weighted_output(arch: str) -> None:
    """For every sample (OuterNonlins, deterministic scalars, sequences): the trainer's gradient
    of Σ_ij χ_ij f_j(ξ^i) in a random direction equals the central difference of the forward
    pass (error O(h²) + rounding/h ≈ 1e-10 relative at h = 1e-5)."""
    prog = program(arch)
    tr = build_training(prog, "mup", "sgd", "mse", 1, 3)
    n, rng = 24, np.random.default_rng(2)
    x = rng.standard_normal((3, len(prog.input_names))) / 2
    bps = backprops(prog)
    run = _SeedRun(tr, bps, {t.name: _factors(t, n, tr.e_out) for t in tr.tensors}, n, x,
                   np.zeros((3, tr.outputs)))
    run.params = run._initial(0, "gaussian")
    chi = rng.standard_normal((3, tr.outputs))
    e_out = float(tr.e_out)
    direction = {e: rng.standard_normal(np.shape(run.params[e])) for e in run.params}
    predicted = 0.0
    for t in tr.tensors:
        scale = n ** ((1 if t.kind == "scalar" else 0) - e_out)  # ∂f/∂P from n·∂F/∂x (04 §4.3)
        for e in t.entries:
            g = run._gradient(t, e, run._execute(0), chi)
            predicted += scale * float(np.sum(g * direction[e]))

    def phi(h: float) -> float:
        params = {e: p + h * direction[e] for e, p in run.params.items()}
        values = execute(prog, n, inputs=x, params=params)
        f = n ** (1 - e_out) * np.stack([values[o].mean(axis=0) for o in prog.outputs], -1)
        return float(np.sum(chi * f))

    h = 1e-5
    numeric = (phi(h) - phi(-h)) / (2 * h)
    assert abs(predicted) > 1e-3
    assert abs(numeric - predicted) <= 1e-6 * abs(predicted)


def test_observer_sees_every_step_and_the_update_rule() -> None:
    """P_{t+1} = P_t − η·n^{-C}·Q(G_t) with Q = id for SGD: the observed Q inputs and parameters
    obey it (03 §3.1), for every step and seed."""
    tr = build_training(program("mlp2"), "ntp", "sgd(lr=0.3)", "mse", 3, 4, 1)
    x, y = data(4, 1, 1)
    seen: list = []
    train(tr, x, y, 32, seeds=(0, 1), observer=lambda s: seen.append(
        (s.seed, s.t, {k: v.copy() for k, v in s.params.items()},
         {k: [g.copy() for g in v] for k, v in s.q_inputs.items()}, s.values["x2"].shape)))
    assert [(s, t) for s, t, *_ in seen] == [(s, t) for s in (0, 1) for t in range(4)]
    assert all(shape == (32, 5) for *_, shape in seen)
    for before, after in itertools.pairwise(seen):
        if before[0] != after[0]:
            continue
        for group in tr.tensors:
            rate = 0.3 * 32.0 ** -float(group.exponents.C)
            for e, g in zip(group.entries, before[3][group.name], strict=True):
                np.testing.assert_allclose(after[2][e], before[2][e] - rate * g, rtol=1e-13,
                                           atol=1e-15)


def test_training_record_gives_the_total_program_per_output() -> None:
    tr = build_training(program("mlp2"), "mup", "adam", "mse", 2, 3, 2)
    (total,) = tr.totals
    assert total.batch == 5 and total.grads is not None and len(total.grads) == 5
