"""The learning-rate schedule against hand-computed factors, and its shape as properties."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rlvr.schedule import FLOOR, LRSchedule, set_lr


def test_constant_is_one_after_a_linear_warm_up():
    s = LRSchedule("constant", warmup_steps=4, steps=100, time_limit_s=60.0)
    assert [s.factor(k, 0.0) for k in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert s.factor(99, 1e6) == 1.0  # the clock does not move a constant rate


def test_cosine_over_steps_alone():
    s = LRSchedule("cosine", warmup_steps=0, steps=100)
    assert s.factor(0, 0.0) == pytest.approx(1.0)
    assert s.factor(50, 0.0) == pytest.approx(0.1 + 0.9 * 0.5)  # cos(pi/2) = 0
    assert s.factor(75, 0.0) == pytest.approx(0.1 + 0.45 * (1 - math.sqrt(0.5)))  # 0.231802
    assert s.factor(100, 0.0) == pytest.approx(0.1)
    assert s.factor(150, 0.0) == pytest.approx(0.1)  # past the end it stays at the floor


def test_cosine_counts_steps_after_the_warm_up():
    s = LRSchedule("cosine", warmup_steps=10, steps=110)
    assert s.factor(9, 0.0) == 1.0  # the last warm-up step
    assert s.factor(10, 0.0) == pytest.approx(1.0)
    assert s.factor(60, 0.0) == pytest.approx(0.55)  # half of the 100 steps after it


def test_cosine_follows_the_clock_when_the_time_limit_comes_first():
    s = LRSchedule("cosine", warmup_steps=0, steps=400, time_limit_s=600.0)
    assert s.progress(10, 300.0) == pytest.approx(0.5)  # 10/400 of the steps, half of the time
    assert s.factor(10, 300.0) == pytest.approx(0.55)
    assert s.factor(10, 450.0) == pytest.approx(0.1 + 0.45 * (1 - math.sqrt(0.5)))
    assert s.factor(10, 600.0) == pytest.approx(0.1)
    assert s.factor(10, 900.0) == pytest.approx(0.1)  # a step that starts late still uses the floor


def test_cosine_follows_the_steps_when_they_come_first():
    s = LRSchedule("cosine", warmup_steps=0, steps=400, time_limit_s=600.0)
    assert s.progress(300, 60.0) == pytest.approx(0.75)
    assert s.factor(300, 60.0) == pytest.approx(0.1 + 0.45 * (1 - math.sqrt(0.5)))


@given(
    step=st.integers(0, 500),
    later=st.integers(0, 500),
    elapsed=st.floats(0, 2000),
    wait=st.floats(0, 2000),
    warmup=st.integers(0, 20),
    limit=st.one_of(st.none(), st.floats(1, 1000)),
)
def test_cosine_never_rises_after_warm_up_and_stays_between_floor_and_one(step, later, elapsed, wait, warmup, limit):
    s = LRSchedule("cosine", warmup_steps=warmup, steps=400, time_limit_s=limit)
    step = max(step, warmup)
    f = s.factor(step, elapsed)
    assert FLOOR - 1e-12 <= f <= 1 + 1e-12
    assert s.factor(step + later, elapsed + wait) <= f + 1e-12


def test_set_lr_sets_every_group_and_returns_the_rate():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.AdamW([{"params": [a]}, {"params": [b]}], lr=1.0)
    assert set_lr(opt, 2e-5, 0.5) == pytest.approx(1e-5)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-5, 1e-5])


def test_an_unknown_kind_is_an_error_not_a_constant_rate():
    with pytest.raises(ValueError, match="linear"):
        LRSchedule("linear", warmup_steps=0, steps=10)
