"""Which limit a training has (05 §5.5): the plan from the abcd analysis, and its refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from compiler.errors import UsageError
from compiler.frontend.parse import parse_file
from compiler.train.setup import build_training
from runtime.limits.trajectory import LimitTrajectory, limit_trajectory, plan_limit

MLP2 = parse_file(Path(__file__).parent.parent / "samples" / "mlp2.nx")


def _training(param: str, opt: str = "adam", center: bool = False):
    return build_training(MLP2, param, opt, "mse", steps=2, n_train=3, n_test=1, center=center)


def test_mup_is_feature_learning_with_every_update() -> None:
    plan = plan_limit(_training("mup"))
    assert plan.regime == "feature_learning"
    assert plan.contributing == {"U", "W", "v"}
    assert not plan.f0  # the readout average vanishes in μP (05 §5.3)


@pytest.mark.parametrize("param", ["ntp", "up:1/4", "up:1/2"])
def test_operator_tables_have_the_full_nt_operator(param: str) -> None:
    """UP_s for 0 < s ≤ ½ gives the full NT operator (05 §5.5)."""
    plan = plan_limit(_training(param))
    assert plan.regime == "operator"
    assert plan.contributing == {"U", "W", "v"}
    assert plan.dropped == ()


def test_ntp_f0_is_a_gaussian_process() -> None:
    assert plan_limit(_training("ntp", "sgd")).f0


def test_unstable_table_is_refused_quoting_the_condition() -> None:
    with pytest.raises(UsageError) as e:
        plan_limit(_training("sp", "sgd"))
    msg = str(e.value)
    assert "not stable" in msg and "r < 0" in msg and "05 §5.5" in msg


def test_unknown_engine_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no training-limit engine named 'nope'"):
        limit_trajectory(_training("mup"), np.zeros((4, 10)), np.zeros((3, 1)), engine="nope")


def test_json_has_the_train_points_and_null_for_unknown_stderr() -> None:
    plan = plan_limit(_training("mup"))
    f = np.arange(12, dtype=float).reshape(3, 4, 1)
    se = np.full_like(f, math.nan)
    doc = LimitTrajectory(plan, "test", "mc", f, se).to_json()
    assert doc["points"] == ["train:0", "train:1", "train:2", "test:0"]
    assert doc["f"][2] == [8.0, 9.0, 10.0, 11.0]
    assert doc["stderr"][0] == [None] * 4
    assert doc["regime"] == "feature_learning"
