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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlvr.agents.advantages import MovingAverageBaseline, batch_mean_advantages, masked_mean, rloo_advantages
from rlvr.agents.experience import Experience, Stats, micro_batches, optimizer_step, rollout_metrics
from rlvr.agents.kl import KLEstimator, check_kl_choice, kl_controller, kl_estimate, kl_penalty_loss
from rlvr.agents.losses import Aggregation, aggregate, counted_rows, reinforce_loss
from rlvr.policy import Policy, reference_logprobs

__all__ = ["Reinforce", "ReinforceConfig"]


@dataclass(frozen=True)
class ReinforceConfig:
    """REINFORCE's knobs.

    Attributes:
        baseline: ``"batch_mean"``, ``"moving_average"``, ``"rloo"`` or ``"none"``.
        baseline_momentum: for the moving average.
        beta, kl_target, kl_estimator, kl_placement: KL to the reference (see
            :mod:`rlvr.agents.kl`); a ``kl_target`` needs ``beta > 0`` to start from,
            and the pairs whose gradient follows no KL (k1 as a loss, k2 or k3 in the
            reward) are refused.
        unscored: ``"exclude"`` or ``"zero"`` for completions a verifier could not score.
        micro_batch_size, aggregation, aggregation_constant, max_grad_norm: as in GRPO.
    """

    baseline: str = "batch_mean"
    baseline_momentum: float = 0.9
    beta: float = 0.05
    kl_target: float | None = None
    kl_estimator: KLEstimator = "k1"
    kl_placement: str = "reward"
    unscored: str = "exclude"
    micro_batch_size: int = 8
    aggregation: Aggregation = "token_mean"
    aggregation_constant: float | None = None
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        if self.baseline not in ("batch_mean", "moving_average", "rloo", "none"):
            raise ValueError(f"baseline must be batch_mean, moving_average, rloo or none, got {self.baseline!r}")
        if self.kl_placement not in ("loss", "reward"):
            raise ValueError(f"kl_placement must be 'loss' or 'reward', got {self.kl_placement!r}")
        if self.unscored not in ("exclude", "zero"):
            raise ValueError(f"unscored must be 'exclude' or 'zero', got {self.unscored!r}")
        if self.micro_batch_size < 1:
            raise ValueError("micro_batch_size must be >= 1")
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

    def advantages(self, rewards: torch.Tensor, exp: Experience) -> torch.Tensor:
        """``[N]`` advantages for the configured baseline."""
        b = self.config.baseline
        if b == "batch_mean":
            return batch_mean_advantages(rewards, exp.scored)
        if b == "moving_average":
            return self.moving_average(rewards, exp.scored)
        if b == "rloo":
            return rloo_advantages(rewards, exp.group, exp.scored)
        return torch.where(exp.scored, rewards, torch.zeros_like(rewards))

    def update(self, exp: Experience) -> dict[str, float]:
        """One on-policy gradient step on a batch.

        Rollout metrics are taken on every row; then unscored rows (with
        ``unscored="exclude"``) are removed before any forward pass. With
        ``kl_placement="reward"``, ``beta * sum_t KL_t`` is subtracted from each
        reward first; :meth:`advantages` then applies the baseline (a moving average
        is updated here), and the loss is accumulated over micro-batches before one
        optimiser step. An adaptive KL coefficient is updated at the end from the
        measured ``kl_ref``, and not at all when no row was kept.

        Args:
            exp: the batch of completions and their rewards.

        Returns:
            Metrics for logging: rollout statistics, ``rows_kept``, the loss terms,
            ``kl_ref``, ``entropy``, ``grad_norm``, ``advantage_abs_mean`` and the
            ``beta`` this update used.
        """
        cfg, policy = self.config, self.policy
        if cfg.unscored == "zero":
            exp = exp.with_unscored_as_zero()
        metrics = rollout_metrics(exp)  # on every row, kept or not
        beta = self.kl_ctl.beta
        metrics["beta"] = beta
        metrics["rows_kept"] = float(exp.scored.sum())
        if not exp.scored.all():  # the rows left out pay no forward or backward pass
            exp = exp.rows(exp.scored)
        if len(exp) == 0:
            return metrics  # nothing to learn from, no KL measured: the controller keeps beta

        args = (exp.input_ids, exp.attention_mask, exp.prompt_len)
        mask = exp.completion_mask.float()  # [N, T]; every row kept is scored
        ref_logp = (
            reference_logprobs(policy, self.reference, *args) if beta > 0 or self.reference is not None else None
        )  # [N, T]

        rewards = exp.rewards  # [N]
        if beta > 0 and cfg.kl_placement == "reward":
            kl = kl_estimate(policy.logprobs(*args), ref_logp, cfg.kl_estimator) * mask  # [N, T], pi_old = pi here
            rewards = rewards - beta * kl.sum(dim=1)
        advantages = self.advantages(rewards, exp)  # [N]

        stats = Stats()
        agg = dict(
            mode=cfg.aggregation,
            total_tokens=float(mask.sum()),
            total_seqs=counted_rows(mask),
            constant=cfg.aggregation_constant,
        )
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
        metrics["grad_norm"] = optimizer_step(self.optimizer, policy.parameters(), cfg.max_grad_norm)
        metrics["advantage_abs_mean"] = float(advantages.abs().mean())
        if "kl_ref" in metrics:  # measured on at least one token
            self.kl_ctl.update(metrics["kl_ref"])
        return metrics
