"""PPO with a critic, GAE and per-token KL shaping, as used for RLHF.

PPO (Schulman et al., 2017) with GAE (Schulman et al., 2015) and InstructGPT's
per-token KL penalty to the reference (Ouyang et al., 2022):

1. Under ``pi_old`` (the policy that sampled) and the frozen reference, shape
   per-token rewards: ``r~_t = -beta * KL_t`` on every token, the verifier's reward
   added on the last one.
2. The critic's values ``V(s_t)`` give GAE advantages and returns; advantages are
   whitened over the batch.
3. ``epochs`` passes over minibatches: clipped surrogate for the policy, clipped
   value loss for the critic, optional entropy bonus.

The critic is a separate network with its own optimiser (:class:`rlvr.agents.critic.Critic`).
DAPO's soft overlong punishment and overlong filtering (Yu et al., 2025) are
options (``overlong_buffer`` with ``token_budget``, ``overlong_filter``; see
:class:`rlvr.agents.grpo.GRPOConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlvr import distributed
from rlvr.agents.advantages import gae, masked_mean, whiten
from rlvr.agents.critic import Critic, explained_variance, last_token_mask
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
    minibatches,
    nothing_kept,
    optimizer_step,
)
from rlvr.agents.kl import KLEstimator, check_kl_choice, kl_controller, kl_estimate, shaped_token_rewards
from rlvr.agents.losses import Aggregation, entropy_bonus, ppo_clip_loss, value_loss
from rlvr.agents.mismatch import TISLevel, mismatch_stats, tis_weights
from rlvr.policy import Policy, reference_logprobs

__all__ = ["PPO", "PPOConfig"]


@dataclass(frozen=True)
class PPOConfig:
    """PPO's knobs.

    Attributes:
        clip_eps / clip_eps_high: policy clip range.
        value_clip_eps: critic clip range (None: unclipped MSE).
        gamma, lam: GAE discount and trace decay (gamma = 1 is usual for LLMs, whose
            reward comes after the last token; the RLHF lecture slides, Ahn, 2026).
        beta, kl_target, kl_estimator: KL shaping in the reward (k1, the log-ratio, as
            in InstructGPT, Ouyang et al., 2022: the one estimator whose gradient in
            the reward follows KL(pi || pi_ref); k2 and k3 are refused). A
            ``kl_target`` needs ``beta > 0`` to start from.
        entropy_coef, value_coef: weights of the entropy bonus and the value loss.
        whiten_advantages: normalise advantages over the batch.
        epochs, minibatch_size, micro_batch_size, aggregation, max_grad_norm: as in GRPO.
        overlong_buffer, overlong_penalty, token_budget, overlong_filter: DAPO's
            overlong shaping and filtering, as in GRPO.
        unscored: ``"exclude"`` or ``"zero"``.
        tis, tis_cap: truncated importance sampling on ``pi_old / mu`` (see GRPOConfig
            and :mod:`rlvr.agents.mismatch`).
    """

    clip_eps: float = 0.2
    clip_eps_high: float | None = None
    value_clip_eps: float | None = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    beta: float = 0.05
    kl_target: float | None = None
    kl_estimator: KLEstimator = "k1"
    entropy_coef: float = 0.0
    value_coef: float = 1.0
    whiten_advantages: bool = True
    epochs: int = 2
    minibatch_size: int | None = None
    micro_batch_size: int = 8
    aggregation: Aggregation = "token_mean"
    aggregation_constant: float | None = None
    max_grad_norm: float | None = 1.0
    overlong_buffer: int = 0
    overlong_penalty: float = 1.0
    overlong_filter: bool = False
    token_budget: int | None = None
    unscored: str = "exclude"
    tis: TISLevel = "off"
    tis_cap: float = 2.0

    def __post_init__(self) -> None:
        if self.tis not in ("off", "token", "sequence"):
            raise ValueError(f"tis must be 'off', 'token' or 'sequence', got {self.tis!r}")
        if self.unscored not in ("exclude", "zero"):
            raise ValueError(f"unscored must be 'exclude' or 'zero', got {self.unscored!r}")
        if self.epochs < 1 or self.micro_batch_size < 1:
            raise ValueError("epochs and micro_batch_size must be >= 1")
        check_overlong_options(self.overlong_buffer, self.overlong_penalty, self.token_budget)
        check_kl_choice(self.beta, self.kl_target, self.kl_estimator, "reward", placements=("reward",))


class PPO:
    """PPO with a critic: ``update(experience) -> metrics``. Dependencies are passed in, nothing is built here.

    Args:
        policy: the :class:`rlvr.policy.Policy` being trained.
        optimizer: over the policy's parameters.
        critic: the value model (:class:`rlvr.agents.critic.Critic`), a separate network.
        critic_optimizer: over the critic's parameters.
        config: :class:`PPOConfig`.
        reference: a frozen reference ``Policy``; ``None`` with a LoRA policy uses the
            adapter-free model (:func:`rlvr.policy.reference_logprobs`). Needed only
            when ``beta > 0``.
        generator: the RNG that shuffles minibatches (saved in :meth:`state_dict`).

    Raises:
        ValueError: no parameter of the critic requires a gradient.
    """

    def __init__(
        self,
        policy: Policy,
        optimizer: torch.optim.Optimizer,
        critic: Critic,
        critic_optimizer: torch.optim.Optimizer,
        config: PPOConfig = PPOConfig(),
        reference: Policy | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if not any(p.requires_grad for p in critic.parameters()):
            raise ValueError(
                "the critic has no trainable parameter (a frozen model's copy?): its value loss would not train it"
            )
        self.policy, self.optimizer, self.config, self.reference = policy, optimizer, config, reference
        self.critic, self.critic_optimizer = critic, critic_optimizer
        self.kl_ctl = kl_controller(config.beta, config.kl_target)
        self.generator = generator

    def state_dict(self) -> dict[str, Any]:
        """What the agent itself carries between updates (the KL controller, the minibatch RNG), for checkpoints."""
        state: dict[str, Any] = {"kl": self.kl_ctl.state_dict()}
        if self.generator is not None:
            state["generator"] = self.generator.get_state().tolist()  # JSON-friendly
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        self.kl_ctl.load_state_dict(state["kl"])
        if self.generator is not None and "generator" in state:
            self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))

    def warm_up_critic(self, exp: Experience) -> dict[str, float]:
        """Critic steps only, on a batch of the current policy: the policy, and beta, stay as they are.

        InstructGPT-style value warm-up (Ouyang et al., 2022, start the value model
        from the reward model; here it is then fitted to the shaped returns before the
        first policy step): the first policy updates otherwise follow advantages from a
        critic that has never seen a return, whose explained variance is below zero.
        The same shaped rewards, GAE targets and value loss as :meth:`update`, with
        ``epochs`` passes over the batch; the metrics are :meth:`update`'s without the
        policy's terms.
        """
        return self._update(exp, policy_step=False)

    def update(self, exp: Experience) -> dict[str, float]:
        """One PPO update on a batch: shaped rewards, GAE, then ``epochs`` passes of optimiser steps.

        Rollout metrics are taken on every row; then the overlong penalty (when
        configured) is added to the rewards, and unscored rows (with
        ``unscored="exclude"``) and, with ``overlong_filter``, truncated ones are
        removed before any forward pass. Under ``pi_old``
        and the reference, the KL penalty shapes per-token rewards; the critic's
        values give GAE advantages (whitened when configured) and returns. Each
        minibatch then takes one policy step on the clipped surrogate (plus the
        entropy bonus) and one critic step on the value loss. An adaptive KL
        coefficient is updated at the end from the measured ``kl_ref``, and not at
        all when no row was kept.

        Args:
            exp: the batch of completions and their rewards.

        Returns:
            Metrics for logging: rollout statistics, ``rows_kept``, the loss terms and
            PPO statistics (``ratio_first`` and ``clip_fraction_first`` for the first
            minibatch of the first epoch), ``kl_ref``, ``explained_variance`` and
            ``explained_variance_last`` (absent when every return in the batch is equal), both
            gradient norms, the mean value and return, the ``mismatch/...`` figures
            when the engine reported log-probs, ``overlong_penalty_mean`` with the
            overlong penalty, and the ``beta`` this update used.

        Raises:
            ValueError: with ``overlong_buffer`` when a completion is longer than ``token_budget``.
        """
        return self._update(exp, policy_step=True)

    def _update(self, exp: Experience, policy_step: bool) -> dict[str, float]:
        cfg, policy, critic = self.config, self.policy, self.critic
        if cfg.unscored == "zero":
            exp = exp.with_unscored_as_zero()
        beta = self.kl_ctl.beta
        exp, metrics = begin_update(exp, cfg, beta)  # metrics on every row, kept or not
        exp = kept_rows(exp, exp.scored & ~exp.truncated if cfg.overlong_filter else exp.scored, metrics)
        if nothing_kept(exp):  # on every rank; a rank without rows still takes part in the steps
            return metrics  # nothing to learn from, no KL measured: the controller keeps beta

        args = (exp.input_ids, exp.attention_mask, exp.prompt_len)
        mask = exp.completion_mask.float()  # [N, T]; every row kept is scored
        old_logp = policy.logprobs(*args)  # [N, T]
        old_values = critic.values(*args, micro_batch_size=cfg.micro_batch_size) * mask  # [N, T]
        kl = torch.zeros_like(old_logp)  # [N, T]
        if beta > 0 or self.reference is not None:
            ref_logp = reference_logprobs(policy, self.reference, *args)  # [N, T]
            kl = kl_estimate(old_logp, ref_logp, cfg.kl_estimator) * mask
            if distributed.is_distributed():
                kl_ref = global_mean(kl_estimate(old_logp, ref_logp, "k3"), mask)
                if kl_ref == kl_ref:  # some rank has a token
                    metrics["kl_ref"] = kl_ref
            elif mask.sum() > 0:
                metrics["kl_ref"] = float(masked_mean(kl_estimate(old_logp, ref_logp, "k3"), mask))
        token_rewards = shaped_token_rewards(exp.rewards, kl, mask, beta)  # [N, T]
        advantages, returns = gae(token_rewards, old_values, mask, cfg.gamma, cfg.lam)  # [N, T] each
        reduce = batch_reduce()  # with several ranks, the whole batch's statistics
        if cfg.whiten_advantages:
            advantages = whiten(advantages, mask, reduce=reduce)
        # at every token, and at each row's last, where the critic has read the whole answer
        for key, where in (("explained_variance", mask), ("explained_variance_last", last_token_mask(mask))):
            ev = explained_variance(old_values, returns, where, reduce=reduce)
            if ev is not None:  # undefined when every return is equal: left out
                metrics[key] = ev

        weights = None
        if exp.sampler_logprobs is not None:  # the rollout engine's mu: measure (and correct) the gap
            weights = tis_weights(old_logp, exp.sampler_logprobs, mask, cfg.tis, cfg.tis_cap)  # [N, T]
            metrics.update(mismatch_stats(old_logp, exp.sampler_logprobs, mask, weights, cfg.tis_cap))

        stats, first = Stats(), Stats()
        for epoch in range(cfg.epochs):
            for i, mb in enumerate(minibatches(len(exp), cfg.minibatch_size, self.generator)):
                agg = dict(mode=cfg.aggregation, constant=cfg.aggregation_constant, **global_totals(mask[mb]))
                for micro in micro_batches(mb, cfg.micro_batch_size):
                    ids, att, m = exp.input_ids[micro], exp.attention_mask[micro], mask[micro]
                    values = critic(ids, att, exp.prompt_len)  # [n, T]
                    v_loss, v_stats = value_loss(
                        values, old_values[micro], returns[micro], m, cfg.value_clip_eps, **agg
                    )
                    if not policy_step:
                        (cfg.value_coef * v_loss).backward()
                        stats.add(v_stats, weight=float(m.sum()))
                        continue
                    logp, entropy = policy(
                        ids, att, exp.prompt_len, with_entropy=True, entropy_grad=cfg.entropy_coef > 0
                    )  # [n, T] each
                    pg_loss, st = ppo_clip_loss(
                        logp, old_logp[micro], advantages[micro], m, cfg.clip_eps, cfg.clip_eps_high,
                        weights=None if weights is None else weights[micro], **agg,
                    )  # fmt: skip
                    ent_loss, ent_stats = entropy_bonus(entropy, m, **agg)
                    (pg_loss + cfg.entropy_coef * ent_loss + cfg.value_coef * v_loss).backward()
                    st["entropy"] = masked_mean(entropy.detach(), m)
                    stats.add({**st, **v_stats}, weight=float(m.sum()))
                    if epoch == 0 and i == 0:  # pi_old is this pass's policy: the ratio must be exactly 1
                        first.add(
                            {"ratio_first": st["ratio_mean"], "clip_fraction_first": st["clip_fraction"]},
                            weight=float(m.sum()),
                        )
                if policy_step:
                    grad_norm = optimizer_step(self.optimizer, policy.parameters(), cfg.max_grad_norm, policy)
                    stats.add({"grad_norm": grad_norm})
                critic_norm = optimizer_step(self.critic_optimizer, critic.parameters(), cfg.max_grad_norm, critic)
                stats.add({"critic_grad_norm": critic_norm})

        metrics.update(stats.means())
        metrics.update(first.means())
        if distributed.is_distributed():
            metrics["value_mean"] = global_mean(old_values, mask)
            metrics["return_mean"] = global_mean(returns, mask)
        else:
            metrics["value_mean"] = float(masked_mean(old_values, mask))
            metrics["return_mean"] = float(masked_mean(returns, mask))
        if "kl_ref" in metrics and policy_step:  # measured on at least one token; warm-up leaves beta
            self.kl_ctl.update(metrics["kl_ref"])
        return metrics
