"""Preference losses as pure tensor functions returning ``(loss, stats)``.

All three read one number per completion, ``[B]`` for the chosen and ``[B]`` for
the rejected member of each pair, and average the per-pair loss over the batch:

* :func:`bradley_terry_loss` — reward-model training (the RLHF lecture slides,
  Ahn, 2026, "From Bradley-Terry to a Reward Model"): ``-log sigma(r_w - r_l)``.
* :func:`dpo_loss` — DPO (Rafailov et al., 2023): the implicit reward
  ``beta * (log pi(y|x) - log pi_ref(y|x))`` of *summed* sequence log-probs in a
  Bradley-Terry loss; with ``label_smoothing`` e, the conservative variant
  ``-(1 - e) log sigma(h) - e log sigma(-h)`` for pairs whose label may be wrong.
* :func:`simpo_loss` — SimPO (Meng et al., 2024): no reference model; the
  reward is ``beta`` times the *mean* log-prob per token, and the margin must
  exceed ``gamma``.

``stats`` hold the implicit-reward metrics logged by the preference trainer
(``rewards/chosen``, ``rewards/rejected``, ``rewards/margin``, ``rewards/accuracy``:
the share of pairs whose chosen reward is strictly higher; docs/metrics.md).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["bradley_terry_loss", "dpo_loss", "implicit_accuracy", "sequence_logprobs", "simpo_loss"]


def _stats(chosen: Tensor, rejected: Tensor, loss: Tensor) -> dict[str, float]:
    chosen, rejected = chosen.detach().float(), rejected.detach().float()
    return {
        "loss": float(loss.detach()),
        "rewards/chosen": float(chosen.mean()),
        "rewards/rejected": float(rejected.mean()),
        "rewards/margin": float((chosen - rejected).mean()),
        "rewards/accuracy": implicit_accuracy(chosen, rejected),
    }


def sequence_logprobs(logp: Tensor, mask: Tensor, average: bool = False) -> Tensor:
    """``[N]`` sum (DPO) or mean per token (SimPO) of ``logp [N, T]`` over ``mask [N, T]``.

    A row with no completion tokens sums to 0 and averages to 0 (not NaN).
    """
    mask = mask.to(logp.dtype)
    total = (logp * mask).sum(-1)  # [N]
    return total / mask.sum(-1).clamp(min=1) if average else total


def bradley_terry_loss(chosen_rewards: Tensor, rejected_rewards: Tensor) -> tuple[Tensor, dict[str, float]]:
    """Reward-model loss, ``mean(-log sigma(r_w - r_l))`` over ``[B]`` pairs (the RLHF lecture slides, Ahn, 2026).

    ``logsigmoid`` keeps it finite for any margin (a naive ``log(sigmoid(x))``
    underflows to ``-inf`` below about -100).
    """
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError(
            f"shapes differ: chosen {tuple(chosen_rewards.shape)}, rejected {tuple(rejected_rewards.shape)}"
        )
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards).mean()
    return loss, _stats(chosen_rewards, rejected_rewards, loss)


def dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, dict[str, float]]:
    """DPO over ``[B]`` pairs of summed sequence log-probs under the policy and the frozen reference.

    ``h = beta * ((pi_w - ref_w) - (pi_l - ref_l))``; loss ``-(1 - e) log sigma(h) - e log sigma(-h)``
    (``e = 0``: the paper's loss). The stats' rewards are the implicit rewards
    ``beta * (pi - ref)`` of chosen and rejected.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must lie in [0, 0.5), got {label_smoothing}")
    chosen = beta * (policy_chosen - ref_chosen)  # [B]
    rejected = beta * (policy_rejected - ref_rejected)  # [B]
    h = chosen - rejected
    loss = (-(1 - label_smoothing) * F.logsigmoid(h) - label_smoothing * F.logsigmoid(-h)).mean()
    return loss, _stats(chosen, rejected, loss)


def simpo_loss(
    policy_chosen_avg: Tensor, policy_rejected_avg: Tensor, *, beta: float = 2.0, gamma: float = 0.5
) -> tuple[Tensor, dict[str, float]]:
    """SimPO over ``[B]`` pairs of *length-averaged* log-probs (no reference model).

    ``-log sigma(beta * avg_w - beta * avg_l - gamma)``. Defaults follow the paper's
    usual range (beta 2.0, gamma 0.5; the paper tunes both per model). The stats'
    rewards are ``beta * avg``.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen, rejected = beta * policy_chosen_avg, beta * policy_rejected_avg  # [B]
    loss = -F.logsigmoid(chosen - rejected - gamma).mean()
    return loss, _stats(chosen, rejected, loss)


def implicit_accuracy(chosen: Tensor, rejected: Tensor) -> float:
    """Share of pairs with ``chosen > rejected`` (ties count as wrong)."""
    return float((chosen > rejected).float().mean()) if len(chosen) else float("nan")
