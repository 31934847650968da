"""The learning-rate schedule: the policy's rate as a function of how far the run has gone.

A run ends at ``train.steps`` or at ``train.time_limit_minutes``, whichever comes
first, so the schedule's progress is the larger of the two fractions:

    progress = max((step - warmup) / (steps - warmup), elapsed / time_limit)   clipped to [0, 1]

A cosine over steps alone never decays in a run that its clock ends at step 250
of 400; measured against both, the rate reaches its floor as the run ends,
whichever ends it.

The rate is a pure function of the step and the elapsed seconds (both kept in
checkpoints), so it holds no state of its own and a resumed run goes on with the
rate it would have had. The price of the clock: with a time limit, two runs of one
seed on machines of different speed see different rates at the same step, as
they already stop at different steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

FLOOR = 0.1  # the cosine's end, as a fraction of the base rate


@dataclass(frozen=True)
class LRSchedule:
    """The factor of the base rate at a step, for ``optim.schedule``.

    kind: ``constant`` (1 after warm-up) or ``cosine`` (from 1 to ``FLOOR`` over the
        run's progress). Warm-up is linear over ``warmup_steps`` steps, from
        1/warmup_steps to 1, and counts steps only.
    steps: the run's step budget (``train.steps``).
    time_limit_s: the run's time budget in seconds, or None for steps alone.
    """

    kind: Literal["constant", "cosine"]
    warmup_steps: int
    steps: int
    time_limit_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "cosine"):
            raise ValueError(f"schedule kind must be 'constant' or 'cosine', got {self.kind!r}")

    def progress(self, step: int, elapsed_s: float) -> float:
        """The fraction of the run after warm-up that is done: the larger of its steps and its time."""
        by_steps = (step - self.warmup_steps) / max(self.steps - self.warmup_steps, 1)
        by_time = elapsed_s / self.time_limit_s if self.time_limit_s else 0.0
        return min(max(by_steps, by_time, 0.0), 1.0)

    def factor(self, step: int, elapsed_s: float) -> float:
        """The multiple of the base rate for the update at ``step`` (0-based), ``elapsed_s`` into the run."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "cosine":
            return FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * self.progress(step, elapsed_s)))
        return 1.0


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    """Set every parameter group's rate to ``base_lr * factor``; returns that rate."""
    lr = base_lr * factor
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
