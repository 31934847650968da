"""Dynamic sampling: draw more prompts while too few groups carry a learning signal (DAPO, Yu et al., 2025).

A group whose scored rewards are all equal has zero group-relative advantage and
teaches GRPO nothing. DAPO keeps sampling until the batch is filled with groups
that do carry signal. Here a step draws ``prompts_per_step`` prompts, scores them,
and draws another batch only while the groups with signal number fewer than the
target, at most ``max_draws`` batches in all; every drawn row goes to the update
(the agent's ``drop_zero_std_groups`` then leaves the flat groups out).

Deviation from the paper: DAPO fills the batch to exactly its size and discards
the surplus; here the last draw is kept whole, so a step may hold more signal
groups than the target, and fewer when ``max_draws`` runs out first (the step
then trains on what it found).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rlvr.batched import BatchResult
from rlvr.rollout import Rollouts
from rlvr.types import Problem

__all__ = ["concat_results", "concat_rollouts", "draw_until_signal", "signal_groups"]

Draw = tuple[list[Problem], Rollouts, BatchResult]


def signal_groups(result: BatchResult) -> int:
    """How many groups of ``result`` hold at least two scored rewards that differ."""
    count = 0
    for rewards, scored in zip(result.rewards, result.scored, strict=True):
        kept = rewards[scored]
        count += int(len(kept) >= 2 and kept.max() > kept.min())
    return count


def concat_rollouts(parts: Sequence[Rollouts]) -> Rollouts:
    """The rows of several batches as one: prompts left-padded and completions right-padded to the widest.

    Group indices continue from one part to the next, so group ``b`` of the second
    part becomes ``B1 + b``. Padding carries mask 0 and token id 0.
    """
    if len(parts) == 1:
        return parts[0]
    P = max(r.prompt_ids.shape[1] for r in parts)
    T = max(r.completion_ids.shape[1] for r in parts)

    def left(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (P - x.shape[1], 0))

    def right(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, T - x.shape[1]))

    offsets, start = [], 0
    for r in parts:
        offsets.append(start)
        start += int(r.group.max()) + 1 if len(r.group) else 0
    return Rollouts(
        prompt_ids=torch.cat([left(r.prompt_ids) for r in parts]),
        prompt_mask=torch.cat([left(r.prompt_mask) for r in parts]),
        completion_ids=torch.cat([right(r.completion_ids) for r in parts]),
        completion_mask=torch.cat([right(r.completion_mask) for r in parts]),
        sampler_logprobs=torch.cat([right(r.sampler_logprobs) for r in parts]),
        texts=[t for r in parts for t in r.texts],
        finish_reasons=[f for r in parts for f in r.finish_reasons],
        group=torch.cat([r.group + o for r, o in zip(parts, offsets, strict=True)]),
    )


def concat_results(parts: Sequence[BatchResult]) -> BatchResult:
    """Several batches' scores as one, problem indices of ``errors`` shifted to match."""
    errors, start = [], 0
    for r in parts:
        errors += [(b + start, g, e) for b, g, e in r.errors]
        start += len(r.infos)
    return BatchResult(
        rewards=np.concatenate([r.rewards for r in parts]),
        scored=np.concatenate([r.scored for r in parts]),
        infos=[row for r in parts for row in r.infos],
        errors=errors,
    )


def draw_until_signal(
    draw: Callable[[int], Draw],
    target: int,
    max_draws: int,
    total: Callable[[int], int] = lambda n: n,
) -> tuple[Draw, int]:
    """Call ``draw(i)`` for ``i = 0, 1, ...`` until ``target`` groups carry signal or ``max_draws`` are spent.

    Args:
        draw: samples and scores one batch; ``i`` is the draw's index (its seed).
        target: groups with signal wanted, counted over every rank (``total``).
        max_draws: the most batches drawn (1: exactly one, as without dynamic sampling).
        total: sums a per-rank count over the ranks, so every rank stops at the same draw.

    Returns:
        ``((problems, rollouts, result), draws)``: every drawn batch joined, and how many.
    """
    parts: list[Draw] = [draw(0)]
    # The count is taken (a collective with several ranks) only when another draw may follow.
    while len(parts) < max_draws and total(sum(signal_groups(result) for _, _, result in parts)) < target:
        parts.append(draw(len(parts)))
    problems = [p for part in parts for p in part[0]]
    joined = (problems, concat_rollouts([p[1] for p in parts]), concat_results([p[2] for p in parts]))
    return joined, len(parts)
