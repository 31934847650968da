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

from rlvr import distributed
from rlvr.agents.advantages import overlong_penalty
from rlvr.rollout import Rollouts

__all__ = [
    "Experience",
    "Stats",
    "check_overlong_options",
    "batch_reduce",
    "global_mean",
    "global_totals",
    "minibatches",
    "nothing_kept",
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


def minibatches(
    n: int, size: int | None, generator: torch.Generator | None = None, group: Tensor | None = None
) -> list[Tensor]:
    """A random partition of ``range(n)`` into chunks of ``size`` (all of it when None).

    With ``group`` (``[n]``, each row's prompt), the chunks hold whole groups: the
    groups are shuffled and split into ``ceil(n / size)`` chunks of as equal a
    number of groups as can be, so a chunk is at least one group and a group's rows
    share one forward pass of their prompt (:mod:`rlvr.prefix`); its
    group-normalised advantages then also sum to zero within the chunk. Chunks left
    without a group (``size`` below a group's size) are dropped.

    With several data-parallel ranks, ``n`` is this rank's row count and ``size``
    counts rows over all ranks: every rank cuts its rows into the same number of
    chunks, ``ceil(global rows / size)`` (one when None), as equal as can be (some
    may be empty, and are kept, so that every rank takes the same optimiser steps).
    A minibatch is then about ``size`` rows spread over the ranks, not a random
    subset of the global batch.
    """
    sharded = distributed.is_distributed()
    total = int(distributed.global_sum(n)[0]) if sharded else n
    parts = 1 if size is None else max(1, math.ceil(total / size))
    if group is None:
        order = torch.randperm(n, generator=generator)
        if sharded:
            return list(order.tensor_split(parts))
        size = n if size is None else size
        return [order[i : i + size] for i in range(0, n, size)]
    ids = torch.unique(group.cpu())  # [K]
    shuffled = ids[torch.randperm(len(ids), generator=generator)]
    row_group = group.cpu()
    chunks = [torch.nonzero(torch.isin(row_group, part)).flatten() for part in shuffled.tensor_split(parts)]
    return chunks if sharded else [c for c in chunks if len(c)]


def global_totals(mask: Tensor) -> dict[str, float]:
    """The loss denominators of a minibatch with completion mask ``mask [n, T]``, summed over ranks.

    ``total_tokens`` and ``total_seqs`` (rows with a token) as :func:`rlvr.agents.losses.aggregate`
    takes them: with several ranks each rank divides by the global counts, so the
    summed gradients are those of one process with the whole batch.
    """
    tokens, seqs = distributed.global_sum(mask.sum(), (mask.sum(dim=1) > 0).sum())
    return {"total_tokens": tokens, "total_seqs": seqs}


def batch_reduce() -> Any:
    """The ``reduce`` of batch statistics (:data:`rlvr.agents.advantages.Reduce`): a sum over ranks, None in one process."""
    return distributed.reduce_sums if distributed.is_distributed() else None


def nothing_kept(exp: Experience) -> bool:
    """Whether no rank kept a row (every rank gets the same answer, so all return early together)."""
    return distributed.global_sum(len(exp))[0] == 0


def global_mean(values: Tensor, mask: Tensor | None = None) -> float:
    """The mean of ``values`` (where ``mask``) over every rank's entries; nan when there is none."""
    m = torch.ones_like(values) if mask is None else mask.to(values.dtype)
    total, count = distributed.global_sum((values * m).sum(), m.sum())
    return total / count if count > 0 else math.nan


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
    optimizer: torch.optim.Optimizer,
    parameters: Iterable[nn.Parameter],
    max_grad_norm: float | None,
    module: nn.Module | None = None,
) -> float:
    """Clip gradients (when ``max_grad_norm`` is set), step, zero; returns the pre-clip norm.

    ``module`` (the policy or the critic that owns ``parameters``): with several
    data-parallel ranks, its gradients are summed over ranks first
    (:func:`rlvr.distributed.reduce_gradients`), so the norm, the clipping and the
    step are the global batch's, and its gathered weights are refreshed after a
    sharded step (:func:`rlvr.distributed.refresh_shards`).
    """
    sharded = distributed.is_sharded(module)
    if module is not None:
        distributed.reduce_gradients(module)
    if sharded:  # the optimiser holds the shards; the module shows its gathered copy, without gradients
        parameters = (p for group in optimizer.param_groups for p in group["params"])
    params = [p for p in parameters if p.grad is not None]
    if max_grad_norm is not None or sharded:
        norm = torch.nn.utils.clip_grad_norm_(params, math.inf if max_grad_norm is None else max_grad_norm)
        norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
    else:
        norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))) if params else 0.0
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if module is not None:
        distributed.refresh_shards(module)
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
        """The weighted mean of each statistic added so far (those with zero total weight are left out).

        With several data-parallel ranks the sums and weights are every rank's
        (a collective: every rank calls it), so the means are the global batch's.
        """
        sums, weights = self.sums, self.weights
        if distributed.is_distributed():
            sums, weights = defaultdict(float), defaultdict(float)
            for s, w in distributed.gather_objects((dict(self.sums), dict(self.weights))):
                for k in s:
                    sums[k] += s[k]
                    weights[k] += w[k]
        return {k: sums[k] / weights[k] for k in sums if weights[k] > 0}


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
    """Only the rows of ``keep`` ``[N]``: the rest pay no forward or backward pass; logs ``rows_kept``.

    ``rows_kept`` counts every rank's rows.
    """
    metrics["rows_kept"] = distributed.global_sum(keep.sum())[0]
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
    if distributed.is_distributed():
        mean = global_mean(pen, exp.scored)
        return shaped, {"overlong_penalty_mean": 0.0 if math.isnan(mean) else mean}
    return shaped, {"overlong_penalty_mean": float(scored.mean()) if len(scored) else 0.0}


def rollout_metrics(exp: Experience, warn_truncated_above: float = 0.5) -> dict[str, float]:
    """Reward and length statistics of a batch; warns when most completions were cut off.

    With ``reward_components``, each component's mean and std over the scored rows
    are logged too (``component/<name>/mean``, ``component/<name>/std``). With
    several data-parallel ranks, the statistics are over every rank's rows.
    """
    scored, all_rewards, components = exp.scored, exp.rewards, exp.reward_components
    lengths = exp.completion_mask.sum(dim=1).float()
    truncated_rows = exp.truncated
    if distributed.is_distributed():
        parts = distributed.gather_objects(
            [t.cpu() if t is not None else None for t in (scored, all_rewards, lengths, truncated_rows, components)]
        )
        scored, all_rewards, lengths, truncated_rows = (torch.cat([p[i] for p in parts]) for i in range(4))
        components = torch.cat([p[4] for p in parts]) if components is not None else None
    n_rows = len(all_rewards)
    rewards = all_rewards[scored]
    truncated = float(truncated_rows.float().mean()) if n_rows else 0.0
    if truncated > warn_truncated_above:
        warnings.warn(
            f"{truncated:.0%} of completions hit the length limit: raise max_new_tokens or expect a biased signal",
            stacklevel=3,
        )
    metrics = {
        "reward_mean": float(rewards.mean()) if len(rewards) else math.nan,
        "reward_std": float(rewards.std()) if len(rewards) > 1 else 0.0,
        "scored_fraction": float(scored.float().mean()) if n_rows else 0.0,
        "response_length": float(lengths.mean()) if n_rows else 0.0,
        "truncated_fraction": truncated,
    }
    if components is not None:
        components = components[scored]  # [n_scored, K]
        for k, name in enumerate(exp.component_names):
            values = components[:, k]
            metrics[f"component/{name}/mean"] = float(values.mean()) if len(values) else math.nan
            metrics[f"component/{name}/std"] = float(values.std()) if len(values) > 1 else 0.0
    return metrics
