"""REINFORCE with a baseline (Williams, 1992).

``loss = -A_i * sum_t log pi(a_t | s_t)``, aggregated per :mod:`rlvr.agents.losses`, with
``A_i = r_i - b`` for the chosen baseline: the batch mean, a moving average (both
as in the RLHF lecture slides, Ahn, 2026), the leave-one-out mean of the
prompt's group (RLOO), or none. One on-policy gradient step per batch.

KL to the reference goes into the reward by default, as in InstructGPT's RLHF
objective (Ouyang et al., 2022): ``r_i <- r_i - beta * sum_t KL_t`` (k1: the
log-ratio of the sampled tokens; this is the REINFORCE gradient of the
sequence's KL(pi || pi_ref)), or into the loss with ``kl_placement="loss"``
(k2 for KL(pi || pi_ref)'s gradient, k3 for KL(pi_ref || pi)'s).

REINFORCE++ (Hu, 2025) is two more baselines, ``"reinforce_plus_plus"`` and
``"reinforce_plus_plus_baseline"`` (the group mean subtracted from each reward
first): the KL goes into the reward *per token* (``-beta * KL_t`` on each token,
the reward on the last, and each token's advantage the reward-to-go), and the
advantages are whitened over the whole batch, its tokens or its sequences
(:func:`rlvr.agents.advantages.reinforce_plus_plus_advantages`). Deviation from the
paper: the paper optimises them with PPO's clipped surrogate over minibatches;
here it is one on-policy step, where the ratio is 1 and the clipped surrogate's
gradient is this REINFORCE loss's.

DAPO's soft overlong punishment and overlong filtering (Yu et al., 2025) are
options here too (``overlong_buffer`` with ``token_budget``, ``overlong_filter``;
see :class:`rlvr.agents.grpo.GRPOConfig`).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal

import torch

from rlvr import distributed
from rlvr.agents.advantages import (
    MovingAverageBaseline,
    WhitenLevel,
    batch_mean_advantages,
    masked_mean,
    reinforce_plus_plus_advantages,
    rloo_advantages,
)
from rlvr.agents.experience import (
    Experience,
    Stats,
    batch_reduce,
    begin_update,
    check_overlong_options,
    global_mean,
    global_totals,
    kept_rows,
    micro_batches,
    nothing_kept,
    optimizer_step,
)
from rlvr.agents.kl import KLEstimator, check_kl_choice, kl_controller, kl_estimate, kl_penalty_loss
from rlvr.agents.losses import Aggregation, aggregate, reinforce_loss
from rlvr.policy import Policy, reference_logprobs

__all__ = ["Baseline", "Reinforce", "ReinforceConfig"]

Baseline = Literal[
    "batch_mean", "moving_average", "rloo", "none", "reinforce_plus_plus", "reinforce_plus_plus_baseline"
]
REINFORCE_PLUS_PLUS = ("reinforce_plus_plus", "reinforce_plus_plus_baseline")


@dataclass(frozen=True)
class ReinforceConfig:
    """REINFORCE's knobs.

    Attributes:
        baseline: ``"batch_mean"``, ``"moving_average"``, ``"rloo"``, ``"none"``, or
            REINFORCE++'s ``"reinforce_plus_plus"`` (batch whitening) and
            ``"reinforce_plus_plus_baseline"`` (the group mean subtracted, then batch
            whitening). With the REINFORCE++ baselines a KL in the reward is per token
            (reward-to-go); with the others it is the sequence's sum on every token.
        baseline_momentum: for the moving average.
        whiten_over: the REINFORCE++ baselines' whitening statistics: over every
            ``"token"`` of the batch (the paper's, OpenRLHF's and verl's) or every
            ``"sequence"`` (each counted once). Refused with other baselines.
        beta, kl_target, kl_estimator, kl_placement: KL to the reference (see
            :mod:`rlvr.agents.kl`); a ``kl_target`` needs ``beta > 0`` to start from,
            and the pairs whose gradient follows no KL (k1 as a loss, k2 or k3 in the
            reward) are refused.
        overlong_buffer, overlong_penalty, token_budget, overlong_filter: DAPO's
            overlong shaping and filtering, as in GRPO.
        unscored: ``"exclude"`` or ``"zero"`` for completions a verifier could not score.
        micro_batch_size, aggregation, aggregation_constant, max_grad_norm: as in GRPO.
    """

    baseline: Baseline = "batch_mean"
    baseline_momentum: float = 0.9
    whiten_over: WhitenLevel = "token"
    beta: float = 0.05
    kl_target: float | None = None
    kl_estimator: KLEstimator = "k1"
    kl_placement: str = "reward"
    overlong_buffer: int = 0
    overlong_penalty: float = 1.0
    overlong_filter: bool = False
    token_budget: int | None = None
    unscored: str = "exclude"
    micro_batch_size: int = 8
    aggregation: Aggregation = "token_mean"
    aggregation_constant: float | None = None
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        if self.baseline not in typing.get_args(Baseline):
            raise ValueError(f"baseline must be one of {', '.join(typing.get_args(Baseline))}, got {self.baseline!r}")
        if self.whiten_over not in ("token", "sequence"):
            raise ValueError(f"whiten_over must be 'token' or 'sequence', got {self.whiten_over!r}")
        if self.whiten_over != "token" and self.baseline not in REINFORCE_PLUS_PLUS:
            raise ValueError(
                f"whiten_over={self.whiten_over!r} applies only to baseline 'reinforce_plus_plus' or "
                f"'reinforce_plus_plus_baseline', got baseline={self.baseline!r}"
            )
        if self.kl_placement not in ("loss", "reward"):
            raise ValueError(f"kl_placement must be 'loss' or 'reward', got {self.kl_placement!r}")
        if self.unscored not in ("exclude", "zero"):
            raise ValueError(f"unscored must be 'exclude' or 'zero', got {self.unscored!r}")
        if self.micro_batch_size < 1:
            raise ValueError("micro_batch_size must be >= 1")
        check_overlong_options(self.overlong_buffer, self.overlong_penalty, self.token_budget)
        check_kl_choice(self.beta, self.kl_target, self.kl_estimator, self.kl_placement)


class Reinforce:
    """REINFORCE with a baseline: ``update(experience) -> metrics``, one gradient step per batch.

    Args:
        policy: the :class:`rlvr.policy.Policy` being trained.
        optimizer: over the policy's parameters.
        config: :class:`ReinforceConfig`.
        reference: a frozen reference ``Policy``; ``None`` with a LoRA policy uses the
            adapter-free model (:func:`rlvr.policy.reference_logprobs`). Needed only
            when ``beta > 0``.
    """

    def __init__(
        self,
        policy: Policy,
        optimizer: torch.optim.Optimizer,
        config: ReinforceConfig = ReinforceConfig(),
        reference: Policy | None = None,
    ) -> None:
        self.policy, self.optimizer, self.config, self.reference = policy, optimizer, config, reference
        self.moving_average = MovingAverageBaseline(config.baseline_momentum)
        self.kl_ctl = kl_controller(config.beta, config.kl_target)

    def state_dict(self) -> dict[str, Any]:
        """What the agent itself carries between updates (the KL controller, the moving-average baseline)."""
        return {"kl": self.kl_ctl.state_dict(), "baseline": self.moving_average.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        self.kl_ctl.load_state_dict(state["kl"])
        self.moving_average.load_state_dict(state["baseline"])

    def advantages(
        self, rewards: torch.Tensor, exp: Experience, kl: torch.Tensor | None = None, beta: float = 0.0
    ) -> torch.Tensor:
        """Advantages for the configured baseline: ``[N]``, or ``[N, T]`` for the REINFORCE++ baselines.

        ``kl``: the per-token KL ``[N, T]`` of a KL in the reward, with coefficient
        ``beta``: the sequence baselines subtract ``beta * sum_t KL_t`` from each
        reward; REINFORCE++ puts ``-beta * KL_t`` on each token (reward-to-go).
        """
        b = self.config.baseline
        if b in REINFORCE_PLUS_PLUS:
            group = exp.group if b == "reinforce_plus_plus_baseline" else None
            return reinforce_plus_plus_advantages(
                rewards, exp.completion_mask, kl=kl, beta=beta, group=group, scored=exp.scored,
                level=self.config.whiten_over, reduce=batch_reduce(),
            )  # fmt: skip
        if kl is not None:
            rewards = rewards - beta * kl.sum(dim=1)
        if b == "batch_mean":
            return batch_mean_advantages(rewards, exp.scored, reduce=batch_reduce())
        if b == "moving_average":
            return self.moving_average(rewards, exp.scored, reduce=batch_reduce())
        if b == "rloo":
            return rloo_advantages(rewards, exp.group, exp.scored)
        return torch.where(exp.scored, rewards, torch.zeros_like(rewards))

    def update(self, exp: Experience) -> dict[str, float]:
        """One on-policy gradient step on a batch.

        Rollout metrics are taken on every row; then the overlong penalty (when
        configured) is added to the rewards, and unscored rows (with
        ``unscored="exclude"``) and, with ``overlong_filter``, truncated ones are
        removed before any forward pass. :meth:`advantages` applies the baseline
        (a moving average is updated here) and a KL in the reward, and the loss is
        accumulated over micro-batches before one optimiser step. An adaptive KL
        coefficient is updated at the end from the measured ``kl_ref``, and not at
        all when no row was kept.

        Args:
            exp: the batch of completions and their rewards.

        Returns:
            Metrics for logging: rollout statistics, ``rows_kept``, the loss terms,
            ``kl_ref``, ``entropy``, ``grad_norm``, ``advantage_abs_mean``,
            ``overlong_penalty_mean`` with the overlong penalty, and the ``beta`` this
            update used.

        Raises:
            ValueError: with ``overlong_buffer`` when a completion is longer than ``token_budget``.
        """
        cfg, policy = self.config, self.policy
        if cfg.unscored == "zero":
            exp = exp.with_unscored_as_zero()
        beta = self.kl_ctl.beta
        exp, metrics = begin_update(exp, cfg, beta)  # metrics on every row, kept or not
        exp = kept_rows(exp, exp.scored & ~exp.truncated if cfg.overlong_filter else exp.scored, metrics)
        if nothing_kept(exp):  # on every rank; a rank without rows still takes part in the step
            return metrics  # nothing to learn from, no KL measured: the controller keeps beta

        args = (exp.input_ids, exp.attention_mask, exp.prompt_len)
        mask = exp.completion_mask.float()  # [N, T]; every row kept is scored
        ref_logp = (
            reference_logprobs(policy, self.reference, *args) if beta > 0 or self.reference is not None else None
        )  # [N, T]

        kl = None
        if beta > 0 and cfg.kl_placement == "reward":
            kl = kl_estimate(policy.logprobs(*args), ref_logp, cfg.kl_estimator) * mask  # [N, T], pi_old = pi here
        advantages = self.advantages(exp.rewards, exp, kl, beta)  # [N], or [N, T] for REINFORCE++

        stats = Stats()
        agg = dict(mode=cfg.aggregation, constant=cfg.aggregation_constant, **global_totals(mask))
        for micro in micro_batches(torch.arange(len(exp)), cfg.micro_batch_size):
            logp, entropy = policy(
                exp.input_ids[micro], exp.attention_mask[micro], exp.prompt_len, with_entropy=True
            )  # [n, T] each
            m = mask[micro]
            loss, st = reinforce_loss(logp, advantages[micro], m, **agg)
            if beta > 0 and cfg.kl_placement == "loss":
                kl_tokens = kl_penalty_loss(logp, ref_logp[micro], m, cfg.kl_estimator)
                loss = loss + beta * aggregate(kl_tokens, m, **agg)
            if ref_logp is not None:  # the metric is always k3, whatever the penalty's estimator
                st["kl_ref"] = masked_mean(kl_estimate(logp.detach(), ref_logp[micro], "k3"), m)
            loss.backward()
            st["entropy"] = masked_mean(entropy.detach(), m)
            st["loss"] = loss.detach()
            stats.add(st, weight=float(m.sum()))
        metrics.update(stats.means())
        metrics["grad_norm"] = optimizer_step(self.optimizer, policy.parameters(), cfg.max_grad_norm, policy)
        if distributed.is_distributed():
            metrics["advantage_abs_mean"] = global_mean(advantages.abs(), None if advantages.dim() == 1 else mask)
        else:
            metrics["advantage_abs_mean"] = float(
                advantages.abs().mean() if advantages.dim() == 1 else masked_mean(advantages.abs(), mask)
            )
        if "kl_ref" in metrics:  # measured on at least one token
            self.kl_ctl.update(metrics["kl_ref"])
        return metrics
