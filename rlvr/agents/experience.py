"""What every agent shares: the experience batch, minibatching, the optimiser step, rollout metrics.

Agents see rewards as tensors and a ``scored`` mask; they never import
environments or verifiers.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rlvr.rollout import Rollouts

__all__ = ["Experience", "Stats", "minibatches", "optimizer_step", "rollout_metrics"]


@dataclass
class Experience:
    """One batch of N completions with their rewards, ready for an update.

    Attributes:
        input_ids, attention_mask: ``[N, P + T]`` (prompt left-padded, completion right-padded).
        prompt_len: P.
        completion_mask: ``[N, T]``.
        rewards: ``[N]`` float; meaningful only where ``scored``.
        scored: ``[N]`` bool; False for completions a verifier could not score.
            They are left out of baselines, losses and forward passes (configurably
            counted as 0 instead, see each agent's ``unscored`` option).
        group: ``[N]`` prompt index.
        truncated: ``[N]`` bool; the completion hit the length limit.
        sampler_logprobs: ``[N, T]`` from the rollout engine, if it reports them.
    """

    input_ids: Tensor
    attention_mask: Tensor
    prompt_len: int
    completion_mask: Tensor
    rewards: Tensor
    scored: Tensor
    group: Tensor
    truncated: Tensor
    sampler_logprobs: Tensor | None = None

    @classmethod
    def from_rollouts(cls, rollouts: Rollouts, rewards: Any, scored: Any = None) -> Experience:
        """The experience of ``rollouts`` scored with ``rewards``.

        Args:
            rollouts: the engine's output, N = B x G rows.
            rewards: ``[B, G]`` or ``[N]`` (a tensor, an array or nested lists), as
                :class:`rlvr.BatchResult` gives them.
            scored: the same shape, bool; None means every row was scored.
        """
        device = rollouts.completion_ids.device
        rewards = _flat(rewards, torch.float32, device)
        if len(rewards) != len(rollouts.texts):
            raise ValueError(f"{len(rewards)} rewards for {len(rollouts.texts)} completions")
        scored_t = torch.ones_like(rewards, dtype=torch.bool) if scored is None else _flat(scored, torch.bool, device)
        return cls(
            input_ids=rollouts.input_ids,
            attention_mask=rollouts.attention_mask,
            prompt_len=rollouts.prompt_len,
            completion_mask=rollouts.completion_mask,
            rewards=rewards,
            scored=scored_t,
            group=rollouts.group,
            truncated=torch.tensor([r == "length" for r in rollouts.finish_reasons], device=rewards.device),
            sampler_logprobs=rollouts.sampler_logprobs,
        )

    def __len__(self) -> int:
        return len(self.rewards)

    def rows(self, index: Tensor) -> Experience:
        """The rows picked by ``index`` (indices or a ``[N]`` bool mask) as a new experience.

        Every tensor field is indexed along its first dimension; ``prompt_len`` is kept.
        """
        values = {}
        for f in fields(self):
            v = getattr(self, f.name)
            values[f.name] = v[index] if isinstance(v, Tensor) else v
        return Experience(**values)

    def with_unscored_as_zero(self) -> Experience:
        """Count unscorable completions as reward 0 instead of leaving them out."""
        rows = self.rows(torch.arange(len(self)))
        rows.rewards = torch.where(self.scored, self.rewards, torch.zeros_like(self.rewards))
        rows.scored = torch.ones_like(self.scored)
        return rows


def _flat(values: Any, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``values`` (a tensor, an array or nested lists) as a flat tensor on ``device``."""
    tensor = values if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values))
    return tensor.to(device=device, dtype=dtype).flatten()


def minibatches(n: int, size: int | None, generator: torch.Generator | None = None) -> list[Tensor]:
    """A random partition of ``range(n)`` into chunks of ``size`` (all of it when None)."""
    order = torch.randperm(n, generator=generator)
    size = n if size is None else size
    return [order[i : i + size] for i in range(0, n, size)]


def micro_batches(index: Tensor, size: int) -> Iterator[Tensor]:
    """Consecutive chunks of ``index`` of at most ``size`` rows, one forward/backward each."""
    for i in range(0, len(index), size):
        yield index[i : i + size]


def optimizer_step(
    optimizer: torch.optim.Optimizer, parameters: Iterable[nn.Parameter], max_grad_norm: float | None
) -> float:
    """Clip gradients (when ``max_grad_norm`` is set), step, zero; returns the pre-clip norm."""
    params = [p for p in parameters if p.grad is not None]
    if max_grad_norm is not None:
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    else:
        norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))) if params else 0.0
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


class Stats:
    """Weighted means of per-micro-batch statistics."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.weights: dict[str, float] = defaultdict(float)

    def add(self, stats: dict[str, Tensor | float], weight: float = 1.0) -> None:
        """Accumulate each statistic with ``weight`` (e.g. the micro-batch's token count)."""
        for k, v in stats.items():
            self.sums[k] += float(v) * weight
            self.weights[k] += weight

    def means(self) -> dict[str, float]:
        """The weighted mean of each statistic added so far (those with zero total weight are left out)."""
        return {k: self.sums[k] / self.weights[k] for k in self.sums if self.weights[k] > 0}


def rollout_metrics(exp: Experience, warn_truncated_above: float = 0.5) -> dict[str, float]:
    """Reward and length statistics of a batch; warns when most completions were cut off."""
    scored = exp.scored
    rewards = exp.rewards[scored]
    lengths = exp.completion_mask.sum(dim=1).float()
    truncated = float(exp.truncated.float().mean()) if len(exp) else 0.0
    if truncated > warn_truncated_above:
        warnings.warn(
            f"{truncated:.0%} of completions hit the length limit: raise max_new_tokens or expect a biased signal",
            stacklevel=3,
        )
    return {
        "reward_mean": float(rewards.mean()) if len(rewards) else math.nan,
        "reward_std": float(rewards.std()) if len(rewards) > 1 else 0.0,
        "scored_fraction": float(scored.float().mean()) if len(exp) else 0.0,
        "response_length": float(lengths.mean()) if len(exp) else 0.0,
        "truncated_fraction": truncated,
    }
