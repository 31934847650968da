"""What every agent shares: the experience batch, minibatching, the optimiser step, rollout metrics.

Agents see rewards as tensors and a ``scored`` mask; they never import
environments or verifiers.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rlvr.agents.advantages import overlong_penalty
from rlvr.rollout import Rollouts

__all__ = [
    "Experience",
    "Stats",
    "check_overlong_options",
    "minibatches",
    "optimizer_step",
    "rollout_metrics",
    "shape_overlong",
]


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
        reward_components: ``[N, K]`` float, each leaf score of a composed reward
            (the step infos' ``components``), if given; column ``k`` is
            ``component_names[k]``.
        component_names: the K leaf names, sorted.
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
    reward_components: Tensor | None = None
    component_names: tuple[str, ...] = ()

    @classmethod
    def from_rollouts(cls, rollouts: Rollouts, rewards: Any, scored: Any = None, infos: Any = None) -> Experience:
        """The experience of ``rollouts`` scored with ``rewards``.

        Args:
            rollouts: the engine's output, N = B x G rows.
            rewards: ``[B, G]`` or ``[N]`` (a tensor, an array or nested lists), as
                :class:`rlvr.BatchResult` gives them.
            scored: the same shape, bool; None means every row was scored.
            infos: the step infos, ``[B][G]`` or ``[N]`` dicts (``BatchResult.infos``);
                when given, their ``components`` (leaf name -> score) become
                ``reward_components``. A leaf missing from a row's info (a row recorded
                with an error) counts 0 there; such a row is unscored anyway.
        """
        device = rollouts.completion_ids.device
        rewards = _flat(rewards, torch.float32, device)
        if len(rewards) != len(rollouts.texts):
            raise ValueError(f"{len(rewards)} rewards for {len(rollouts.texts)} completions")
        scored_t = torch.ones_like(rewards, dtype=torch.bool) if scored is None else _flat(scored, torch.bool, device)
        components, names = None, ()
        if infos is not None:
            components, names = _components(infos, len(rewards), device)
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
            reward_components=components,
            component_names=names,
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
        if self.reward_components is not None:
            rows.reward_components = self.reward_components * self.scored[:, None].to(self.reward_components.dtype)
        rows.scored = torch.ones_like(self.scored)
        return rows


def _components(infos: Any, n: int, device: torch.device) -> tuple[Tensor, tuple[str, ...]]:
    """The ``[N, K]`` leaf scores of step ``infos`` (``[B][G]`` or ``[N]`` dicts) and their sorted names."""
    rows = [info for group in infos for info in group] if infos and isinstance(infos[0], list | tuple) else list(infos)
    if len(rows) != n:
        raise ValueError(f"{len(rows)} step infos for {n} completions")
    names = tuple(sorted({name for info in rows for name in info.get("components", {})}))
    if not names:
        raise ValueError("the step infos carry no 'components': the reward is not a composite of named leaves")
    table = [[float(info.get("components", {}).get(name, 0.0)) for name in names] for info in rows]
    return torch.tensor(table, dtype=torch.float32, device=device), names


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
    """Chunks of at most ``size`` rows of ``index``, one forward/backward each, rows in ascending order.

    A minibatch's gradient is a sum over its rows, so their order is free; sorted,
    the rows of one group sit next to each other and the policy computes their
    shared prompt once (:mod:`rlvr.prefix`) instead of once per row.
    """
    index = index.sort().values
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


def check_overlong_options(overlong_buffer: int, overlong_penalty: float, token_budget: int | None) -> None:
    """Refuse overlong-shaping options that cannot work (the agents' configs call it).

    Raises:
        ValueError: naming the key to change.
    """
    if overlong_buffer < 0:
        raise ValueError(f"overlong_buffer must be >= 0 (0: no overlong penalty), got {overlong_buffer}")
    if overlong_penalty < 0:
        raise ValueError(f"overlong_penalty must be >= 0 (the penalty at the token budget), got {overlong_penalty}")
    if overlong_buffer > 0 and token_budget is None:
        raise ValueError(
            f"overlong_buffer={overlong_buffer} needs token_budget, the rollouts' max_new_tokens: the penalty "
            "grows over the last overlong_buffer tokens before it"
        )
    if token_budget is not None and token_budget < max(overlong_buffer, 1):
        raise ValueError(f"token_budget must be >= overlong_buffer and >= 1, got {token_budget}")


def begin_update(exp: Experience, cfg: Any, beta: float) -> tuple[Experience, dict[str, float]]:
    """The start of every agent's update: rollout metrics on every row, ``beta``, and DAPO's overlong shaping.

    ``cfg`` is the agent's config (its ``overlong_*`` and ``token_budget`` fields).
    The metrics are the verifier's rewards; the shaped rewards are the task's from here on.
    """
    metrics = rollout_metrics(exp)
    metrics["beta"] = beta
    if cfg.overlong_buffer > 0:
        exp, shaped = shape_overlong(exp, cfg.token_budget, cfg.overlong_buffer, cfg.overlong_penalty)
        metrics.update(shaped)
    return exp, metrics


def kept_rows(exp: Experience, keep: Tensor, metrics: dict[str, float]) -> Experience:
    """Only the rows of ``keep`` ``[N]``: the rest pay no forward or backward pass; logs ``rows_kept``."""
    metrics["rows_kept"] = float(keep.sum())
    return exp if keep.all() else exp.rows(keep)


def shape_overlong(exp: Experience, token_budget: int, buffer: int, penalty: float) -> tuple[Experience, dict]:
    """DAPO's soft overlong punishment added to each reward (:func:`rlvr.agents.advantages.overlong_penalty`).

    The length is the completion's token count (EOS included). With
    ``reward_components``, the penalty is also appended as one more component,
    ``overlong``, so that a per-component estimator (GDPO) normalises it on its own.
    Returns the shaped experience and ``overlong_penalty_mean`` (over scored rows).

    Raises:
        ValueError: when a completion is longer than ``token_budget`` (the budget
            is not the rollouts' ``max_new_tokens``).
    """
    lengths = exp.completion_mask.sum(dim=1)  # [N]
    if len(exp) and int(lengths.max()) > token_budget:
        raise ValueError(
            f"token_budget={token_budget} but a completion has {int(lengths.max())} tokens: "
            "set token_budget to the rollouts' max_new_tokens"
        )
    pen = overlong_penalty(lengths, token_budget, buffer, penalty).to(exp.rewards.dtype)  # [N]
    shaped = replace(exp, rewards=exp.rewards + pen)
    if exp.reward_components is not None:
        shaped = replace(
            shaped,
            reward_components=torch.cat([exp.reward_components, pen[:, None]], dim=1),
            component_names=(*exp.component_names, "overlong"),
        )
    scored = pen[exp.scored]
    return shaped, {"overlong_penalty_mean": float(scored.mean()) if len(scored) else 0.0}


def rollout_metrics(exp: Experience, warn_truncated_above: float = 0.5) -> dict[str, float]:
    """Reward and length statistics of a batch; warns when most completions were cut off.

    With ``reward_components``, each component's mean and std over the scored rows
    are logged too (``component/<name>/mean``, ``component/<name>/std``).
    """
    scored = exp.scored
    rewards = exp.rewards[scored]
    lengths = exp.completion_mask.sum(dim=1).float()
    truncated = float(exp.truncated.float().mean()) if len(exp) else 0.0
    if truncated > warn_truncated_above:
        warnings.warn(
            f"{truncated:.0%} of completions hit the length limit: raise max_new_tokens or expect a biased signal",
            stacklevel=3,
        )
    metrics = {
        "reward_mean": float(rewards.mean()) if len(rewards) else math.nan,
        "reward_std": float(rewards.std()) if len(rewards) > 1 else 0.0,
        "scored_fraction": float(scored.float().mean()) if len(exp) else 0.0,
        "response_length": float(lengths.mean()) if len(exp) else 0.0,
        "truncated_fraction": truncated,
    }
    if exp.reward_components is not None:
        components = exp.reward_components[scored]  # [n_scored, K]
        for k, name in enumerate(exp.component_names):
            values = components[:, k]
            metrics[f"component/{name}/mean"] = float(values.mean()) if len(values) else math.nan
            metrics[f"component/{name}/std"] = float(values.std()) if len(values) > 1 else 0.0
    return metrics
