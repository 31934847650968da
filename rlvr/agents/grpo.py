"""GRPO: group-relative advantages, PPO's clipped surrogate, KL to the reference as a loss (Shao et al., 2024).

For each prompt, G completions; ``A_i = (r_i - mean_group) / std_group`` for every
token of completion ``i``; then ``epochs`` passes of the clipped surrogate over
minibatches against ``pi_old`` (the policy that sampled), plus ``beta * KL``
(k3 by default) to the reference policy.

The paper calls its k3 loss term an unbiased estimator of KL(pi || pi_ref); it is,
of the value, but its expected gradient on-policy is that of KL(pi_ref || pi)
(:mod:`rlvr.agents.kl`). rlvr keeps it as the default and says so (docs/agents.md);
``kl_estimator="k2"`` follows KL(pi || pi_ref)'s gradient instead.

Deviations from the paper, each a named option: Dr. GRPO's ``scale_by_std=False``;
the loss aggregation (``token_mean`` by default, the paper used ``sequence_mean``);
``kl_placement="reward"`` (with ``kl_estimator="k1"``) subtracts
``beta * sum_t KL_t`` from each reward before normalising instead of adding a
loss term; ``drop_zero_std_groups`` leaves groups without signal out entirely.

The variants that change one part, each a named option:

* ``policy_loss="gspo"``: GSPO (Zheng et al., 2025), the clipped surrogate on the
  length-normalised sequence ratio, with its own clip range and per-sequence
  aggregation by default; ``policy_loss="cispo"``: CISPO (MiniMax-M1, 2025), the
  REINFORCE term weighted by the clipped, stop-gradient token ratio
  (:mod:`rlvr.agents.losses`). With one epoch over one minibatch the ratio is 1
  and both follow the plain policy gradient; they differ from ``clip`` only on
  reused samples.
* ``overlong_buffer`` / ``overlong_filter``: DAPO's soft overlong punishment and
  overlong filtering (Yu et al., 2025); the first needs ``token_budget``, the
  rollouts' ``max_new_tokens``.
* ``multi_reward="gdpo"``: GDPO's per-component group normalisation of a composed
  reward (:func:`rlvr.agents.advantages.gdpo_advantages`); the experience must carry
  the step infos' components (``Experience.from_rollouts(..., infos=result.infos)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from rlvr import distributed
from rlvr.agents.advantages import gdpo_advantages, group_normalized_advantages, masked_mean
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
from rlvr.agents.kl import KLEstimator, check_kl_choice, kl_controller, kl_estimate, kl_penalty_loss
from rlvr.agents.losses import DEFAULT_CLIP, POLICY_LOSSES, Aggregation, PolicyLoss, aggregate
from rlvr.agents.mismatch import TISLevel, mismatch_stats, tis_weights
from rlvr.policy import Policy, reference_logprobs

__all__ = ["GRPO", "GRPOConfig"]


@dataclass(frozen=True)
class GRPOConfig:
    """GRPO's knobs; every default is a stated choice (docs/agents.md says why).

    Attributes:
        policy_loss: ``"clip"`` (PPO's clipped surrogate per token), ``"gspo"``
            (GSPO: the length-normalised sequence ratio, clipped per sequence) or
            ``"cispo"`` (CISPO: the clipped, stop-gradient ratio weighting
            ``-A * log pi``); see :mod:`rlvr.agents.losses`.
        clip_eps / clip_eps_high: clip range ``[1 - eps, 1 + eps_high]`` of the ratio
            (of the loss's weight for CISPO). None takes the policy loss's own
            (:data:`rlvr.agents.losses.DEFAULT_CLIP`): 0.2 / 0.2 for ``clip``,
            3e-4 / 4e-4 for ``gspo`` (the paper's), 1.0 (no lower bound) / 0.2 for
            ``cispo``; ``clip_eps_high`` None with ``clip_eps`` set is ``clip_eps``.
        beta: KL coefficient (0 disables the reference entirely).
        kl_target: if set, beta adapts towards this per-token KL (PPO-penalty's rule,
            Schulman et al., 2017), starting from ``beta``, which must then be > 0.
        kl_estimator: ``k1``, ``k2`` or ``k3`` (see :mod:`rlvr.agents.kl`).
        kl_placement: ``"loss"`` (GRPO) or ``"reward"``. The pairs whose gradient
            follows no KL are refused (:func:`rlvr.agents.kl.check_kl_choice`): k1 as
            a loss, k2 or k3 in the reward.
        scale_by_std: divide by the group std (False: Dr. GRPO).
        multi_reward: ``"combined"`` normalises the environment's reward;
            ``"gdpo"`` normalises each component of a composed reward within its
            group, sums them and whitens the sum over the batch (GDPO). ``gdpo``
            needs the experience's ``reward_components`` and takes no KL in the reward.
        component_weights: GDPO's weight of each component in the sum, by leaf name
            (1 for a leaf not named). The composite's own weights are not read: the
            agent sees only the leaf scores.
        drop_zero_std_groups: leave groups whose rewards are all equal out of the
            update, forward passes included (they carry no policy-gradient signal;
            keeping them only adds KL and tokens to the denominator). With ``gdpo``,
            groups equal in every component.
        overlong_buffer / overlong_penalty / token_budget: DAPO's soft overlong
            punishment, added to the reward: 0 up to ``token_budget - overlong_buffer``
            completion tokens, then linear to ``-overlong_penalty`` at ``token_budget``
            (:func:`rlvr.agents.advantages.overlong_penalty`). 0 turns it off;
            ``token_budget`` must be the rollouts' ``max_new_tokens``.
        overlong_filter: leave completions cut at the token budget (``truncated``)
            out of the update, as unscored ones are: out of the group statistics and
            the loss (DAPO's overlong filtering masks only their loss).
        unscored: ``"exclude"`` completions a verifier could not score, or count them as ``"zero"``.
        epochs: passes over each batch (more than 1 reuses samples with pi_old).
        minibatch_size: sequences per optimiser step (None: the whole batch).
        group_minibatches: minibatches hold whole groups (shuffled groups, not
            shuffled rows; :func:`rlvr.agents.experience.minibatches`), so the rows of
            one prompt share its forward pass, and each minibatch's advantages sum to
            zero per group. Off by default: rows are shuffled, as PPO implementations
            do, and the guessing-game test learned less with whole groups (docs/agents.md).
        old_logprobs: where ``pi_old`` comes from when samples are reused (several
            minibatches or epochs, or KL in the reward): ``"recompute"``, a no-grad
            pass of the policy over the batch before the first step, or
            ``"sampler"``, the rollout engine's own log-probs of the tokens it drew,
            which saves that pass. The ratio is then taken against the policy that
            truly sampled (with vLLM, its numerics: the ratio then also carries the
            engine mismatch, and ``tis`` has nothing left to correct, so it is
            refused). With the ``transformers`` engine the two agree to numerical noise.
        micro_batch_size: sequences per forward/backward (memory bound). 16, two
            groups of 8 in one pass: on the main job's model, a forward and backward
            over 16 rows took 0.8x the time of two passes of 8 (benchmarks/shared_head.py).
        aggregation / aggregation_constant: see :mod:`rlvr.agents.losses`. None takes
            the policy loss's own: ``sequence_mean`` for ``gspo`` (the paper's
            per-sequence objective; no other is accepted), ``token_mean`` otherwise.
        max_grad_norm: gradient clipping (None: off).
        tis / tis_cap: truncated importance sampling on ``pi_old / mu`` (the rollout
            engine's log-probs), ``"token"`` or ``"sequence"`` level, capped (see
            :mod:`rlvr.agents.mismatch`). Off by default: with the ``transformers`` engine the
            sampler is the trained model itself and the gap is numerical noise; turn
            it on with vLLM rollouts. The gap is logged either way.
    """

    policy_loss: PolicyLoss = "clip"
    clip_eps: float | None = None
    clip_eps_high: float | None = None
    beta: float = 0.04
    kl_target: float | None = None
    kl_estimator: KLEstimator = "k3"
    kl_placement: str = "loss"
    scale_by_std: bool = True
    multi_reward: Literal["combined", "gdpo"] = "combined"
    component_weights: dict[str, float] = field(default_factory=dict)
    drop_zero_std_groups: bool = False
    overlong_buffer: int = 0
    overlong_penalty: float = 1.0
    overlong_filter: bool = False
    token_budget: int | None = None
    unscored: str = "exclude"
    epochs: int = 1
    minibatch_size: int | None = None
    group_minibatches: bool = False
    old_logprobs: Literal["recompute", "sampler"] = "recompute"
    micro_batch_size: int = 16
    aggregation: Aggregation | None = None
    aggregation_constant: float | None = None
    max_grad_norm: float | None = 1.0
    tis: TISLevel = "off"
    tis_cap: float = 2.0

    def __post_init__(self) -> None:
        if self.policy_loss not in POLICY_LOSSES:
            raise ValueError(f"policy_loss must be 'clip', 'gspo' or 'cispo', got {self.policy_loss!r}")
        if self.clip_eps is not None and not 0 < self.clip_eps <= 1:
            raise ValueError(f"clip_eps must lie in (0, 1] (1: no lower bound), got {self.clip_eps}")
        if self.clip_eps_high is not None and self.clip_eps_high <= 0:
            raise ValueError(f"clip_eps_high must be > 0, got {self.clip_eps_high}")
        if self.policy_loss == "gspo" and self.aggregation not in (None, "sequence_mean"):
            raise ValueError(
                f"policy_loss='gspo' takes aggregation='sequence_mean' (GSPO's per-sequence objective; "
                f"{self.aggregation!r} weights each sequence by its length), or leave aggregation unset"
            )
        if self.multi_reward not in ("combined", "gdpo"):
            raise ValueError(f"multi_reward must be 'combined' or 'gdpo', got {self.multi_reward!r}")
        if self.component_weights and self.multi_reward != "gdpo":
            raise ValueError("component_weights applies only to multi_reward='gdpo'")
        if not all(isinstance(w, int | float) and not isinstance(w, bool) for w in self.component_weights.values()):
            raise ValueError(f"component_weights must map leaf names to numbers, got {self.component_weights!r}")
        if self.multi_reward == "gdpo" and self.beta > 0 and self.kl_placement == "reward":
            raise ValueError(
                "multi_reward='gdpo' normalises each reward component on its own, so a KL in the reward has no "
                "place: use kl_placement='loss' (with kl_estimator 'k2' or 'k3'), or beta=0"
            )
        if self.tis not in ("off", "token", "sequence"):
            raise ValueError(f"tis must be 'off', 'token' or 'sequence', got {self.tis!r}")
        if self.kl_placement not in ("loss", "reward"):
            raise ValueError(f"kl_placement must be 'loss' or 'reward', got {self.kl_placement!r}")
        if self.old_logprobs not in ("recompute", "sampler"):
            raise ValueError(f"old_logprobs must be 'recompute' or 'sampler', got {self.old_logprobs!r}")
        if self.old_logprobs == "sampler" and self.tis != "off":
            raise ValueError(
                "tis corrects pi_old / mu, which is 1 when pi_old is the sampler's own log-probs: "
                "use old_logprobs='recompute' with tis, or tis='off'"
            )
        if self.minibatch_size is not None and self.minibatch_size < 1:
            raise ValueError(f"minibatch_size must be >= 1 or None, got {self.minibatch_size}")
        if self.unscored not in ("exclude", "zero"):
            raise ValueError(f"unscored must be 'exclude' or 'zero', got {self.unscored!r}")
        if self.epochs < 1 or self.micro_batch_size < 1:
            raise ValueError("epochs and micro_batch_size must be >= 1")
        check_overlong_options(self.overlong_buffer, self.overlong_penalty, self.token_budget)
        check_kl_choice(self.beta, self.kl_target, self.kl_estimator, self.kl_placement)

    def clip_range(self) -> tuple[float, float]:
        """``(clip_eps, clip_eps_high)`` in force: the configured ones, else the policy loss's own."""
        low, high = DEFAULT_CLIP[self.policy_loss]
        if self.clip_eps is not None:
            low, high = self.clip_eps, self.clip_eps
        return low, high if self.clip_eps_high is None else self.clip_eps_high

    def aggregation_mode(self) -> Aggregation:
        """The aggregation in force: the configured one, else the policy loss's own."""
        if self.aggregation is not None:
            return self.aggregation
        return "sequence_mean" if self.policy_loss == "gspo" else "token_mean"


class GRPO:
    """``update(experience) -> metrics``. Dependencies are passed in, nothing is built here."""

    def __init__(
        self,
        policy: Policy,
        optimizer: torch.optim.Optimizer,
        config: GRPOConfig = GRPOConfig(),
        reference: Policy | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.policy, self.optimizer, self.config, self.reference = policy, optimizer, config, reference
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

    def advantages(self, rewards: torch.Tensor, exp: Experience) -> tuple[torch.Tensor, torch.Tensor]:
        """``(advantages [N], zero_std [N])``: GRPO's on ``rewards``, or GDPO's on ``exp``'s components."""
        cfg = self.config
        if cfg.multi_reward == "gdpo":
            unknown = set(cfg.component_weights) - set(exp.component_names)
            if unknown:
                raise ValueError(
                    f"component_weights names {sorted(unknown)}, not components of this reward: "
                    f"{', '.join(exp.component_names)}"
                )
            weights = exp.reward_components.new_tensor([cfg.component_weights.get(k, 1.0) for k in exp.component_names])
            return gdpo_advantages(
                exp.reward_components, exp.group, exp.scored, weights=weights, scale_by_std=cfg.scale_by_std,
                reduce=batch_reduce(),
            )  # fmt: skip
        return group_normalized_advantages(rewards, exp.group, exp.scored, scale_by_std=cfg.scale_by_std)

    def update(self, exp: Experience) -> dict[str, float]:
        """One GRPO update on a batch: advantages, then ``epochs`` passes of optimiser steps.

        Rollout metrics are taken on every row; then the overlong penalty (when
        configured) is added to the rewards, and the rows left out (unscored with
        ``unscored="exclude"``, with ``drop_zero_std_groups`` the groups whose
        rewards are all equal, with ``overlong_filter`` the truncated completions)
        are removed before any forward pass. Computes ``pi_old`` (only when samples
        are reused or KL goes into the reward) and the reference log-probs, the
        group-normalised advantages (per component with ``multi_reward="gdpo"``),
        then for each minibatch the configured policy loss plus, with
        ``kl_placement="loss"``, the KL term, one optimiser step per minibatch. An
        adaptive KL coefficient is updated at the end from the measured ``kl_ref``,
        and not at all when no row was kept.

        Args:
            exp: the batch; the completions of one prompt share a ``group`` index.

        Returns:
            Metrics for logging: rollout statistics, ``rows_kept``, the loss terms and
            ratio statistics (``ratio_first`` and ``clip_fraction_first`` for the first
            minibatch of the first epoch), ``kl_ref``, ``entropy``, ``grad_norm``,
            zero-std group counts, ``overlong_penalty_mean`` with the overlong penalty,
            the ``mismatch/...`` figures when the engine reported log-probs, and the
            ``beta`` this update used.

        Raises:
            ValueError: with ``multi_reward="gdpo"`` when ``exp`` carries no
                ``reward_components``; with ``overlong_buffer`` when a completion is
                longer than ``token_budget``.
        """
        cfg, policy = self.config, self.policy
        if cfg.multi_reward == "gdpo" and exp.reward_components is None:
            raise ValueError(
                "multi_reward='gdpo' needs each reward component: build the experience with "
                "Experience.from_rollouts(rollouts, result.rewards, result.scored, infos=result.infos)"
            )
        if cfg.unscored == "zero":
            exp = exp.with_unscored_as_zero()
        beta = self.kl_ctl.beta
        exp, metrics = begin_update(exp, cfg, beta)  # metrics on every row, kept or not

        # Groups without signal are judged on the task's rewards, before any KL in the reward.
        zero_std = self.advantages(exp.rewards, exp)[1]  # [N]
        n_groups = int(exp.group.max()) + 1 if len(exp) else 0
        zero_groups = float(len(torch.unique(exp.group[zero_std]))) if zero_std.any() else 0.0
        zero_groups, n_groups = distributed.global_sum(zero_groups, n_groups)  # over every rank's groups
        metrics["zero_std_groups"] = zero_groups
        metrics["zero_std_group_fraction"] = zero_groups / max(n_groups, 1)
        keep = exp.scored & ~zero_std if cfg.drop_zero_std_groups else exp.scored  # [N]
        if cfg.overlong_filter:
            keep = keep & ~exp.truncated
        exp = kept_rows(exp, keep, metrics)
        if nothing_kept(exp):  # on every rank; a rank without rows still takes part in the steps
            return metrics  # nothing to learn from, no KL measured: the controller keeps beta

        args = (exp.input_ids, exp.attention_mask, exp.prompt_len)
        mask = exp.completion_mask.float()  # [N, T]; every row kept is scored
        # pi_old is needed when samples are reused or KL goes into the reward; with one
        # pass over one minibatch the gradient pass's own log-probs serve (ratio = 1).
        n_rows = metrics["rows_kept"]  # every rank's
        single_pass = cfg.epochs == 1 and (cfg.minibatch_size is None or cfg.minibatch_size >= n_rows)
        if single_pass and cfg.kl_placement == "loss":
            old_logp = None
        elif cfg.old_logprobs == "sampler":
            if exp.sampler_logprobs is None:
                raise ValueError(
                    "old_logprobs='sampler' needs the rollout engine's log-probs (Experience.sampler_logprobs)"
                )
            old_logp = exp.sampler_logprobs  # [N, T]
        else:
            old_logp = policy.logprobs(*args)  # [N, T]
        old_from_sampler = old_logp is not None and cfg.old_logprobs == "sampler"
        ref_logp = (
            reference_logprobs(policy, self.reference, *args) if beta > 0 or self.reference is not None else None
        )  # [N, T]

        rewards = exp.rewards  # [N]
        if beta > 0 and cfg.kl_placement == "reward":
            seq_kl = (kl_estimate(old_logp, ref_logp, cfg.kl_estimator) * mask).sum(dim=1)  # [N]
            rewards = rewards - beta * seq_kl
        advantages, _ = self.advantages(rewards, exp)  # [N]
        policy_loss = POLICY_LOSSES[cfg.policy_loss]
        clip_eps, clip_eps_high = cfg.clip_range()

        stats, first, mismatch = Stats(), Stats(), Stats()
        for epoch in range(cfg.epochs):
            group = exp.group if cfg.group_minibatches else None
            for i, mb in enumerate(minibatches(len(exp), cfg.minibatch_size, self.generator, group)):
                agg = dict(mode=cfg.aggregation_mode(), constant=cfg.aggregation_constant, **global_totals(mask[mb]))
                for micro in micro_batches(mb, cfg.micro_batch_size):
                    logp, entropy = policy(
                        exp.input_ids[micro], exp.attention_mask[micro], exp.prompt_len, with_entropy=True
                    )  # [n, T] each
                    old = logp.detach() if old_logp is None else old_logp[micro]
                    m = mask[micro]
                    weights = None
                    if exp.sampler_logprobs is not None and not old_from_sampler:  # measure (and correct) the gap
                        sampler = exp.sampler_logprobs[micro]
                        weights = tis_weights(old, sampler, m, cfg.tis, cfg.tis_cap)
                        mismatch.add(mismatch_stats(old, sampler, m, weights, cfg.tis_cap), weight=float(m.sum()))
                    elif old_from_sampler and epoch == 0 and i == 0:  # the policy is still the one that sampled
                        sampler = exp.sampler_logprobs[micro]
                        mismatch.add(
                            mismatch_stats(logp.detach(), sampler, m, None, cfg.tis_cap), weight=float(m.sum())
                        )
                    loss, st = policy_loss(
                        logp, old, advantages[micro], m, clip_eps, clip_eps_high, weights=weights, **agg
                    )
                    if beta > 0 and cfg.kl_placement == "loss":
                        kl_tokens = kl_penalty_loss(logp, ref_logp[micro], m, cfg.kl_estimator)
                        loss = loss + beta * aggregate(kl_tokens, m, **agg)
                    if ref_logp is not None:  # the metric is always k3, whatever the penalty's estimator
                        st["kl_ref"] = masked_mean(kl_estimate(logp.detach(), ref_logp[micro], "k3"), m)
                    loss.backward()
                    st["entropy"] = masked_mean(entropy.detach(), m)
                    st["loss"] = loss.detach()
                    stats.add(st, weight=float(m.sum()))
                    if epoch == 0 and i == 0:  # pi_old is this pass's policy: the ratio is 1 (to noise with "sampler")
                        first.add(
                            {"ratio_first": st["ratio_mean"], "clip_fraction_first": st["clip_fraction"]},
                            weight=float(m.sum()),
                        )
                stats.add({"grad_norm": optimizer_step(self.optimizer, policy.parameters(), cfg.max_grad_norm, policy)})

        metrics.update(stats.means())
        metrics.update(first.means())
        metrics.update(mismatch.means())
        metrics["advantage_abs_mean"] = (
            global_mean(advantages.abs()) if distributed.is_distributed() else float(advantages.abs().mean())
        )
        if "kl_ref" in metrics:  # measured on at least one token
            self.kl_ctl.update(metrics["kl_ref"])
        return metrics
