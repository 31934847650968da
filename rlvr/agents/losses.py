"""Policy-gradient losses as pure tensor functions returning ``(loss, stats)``.

Per-token terms are ``[N, T]``; :func:`aggregate` reduces them with an explicit,
named choice, because frameworks differ here and it changes what is learned:

* ``"token_mean"`` — sum over all tokens / number of tokens in the batch (DAPO,
  TRL's default since 2025): every token weighs the same, long answers weigh more.
* ``"sequence_mean"`` — mean over each sequence's tokens, then over sequences
  (the original GRPO): every answer weighs the same, so tokens of long answers
  weigh less, which biases towards long wrong answers.
* ``"constant"`` — sum over tokens / (N * constant) (Dr. GRPO, with the constant
  the max completion length): unbiased in length, stable scale.

One rule for every mode: a row with no token in the mask (dropped: unscored,
in a group without signal, skipped) counts in no denominator, so the loss is
the one of the batch without that row. With micro-batching, pass the *whole*
batch's ``total_tokens`` / ``total_seqs`` (counting only rows with a token in
the mask) so that the micro-batch losses add up to the loss of the batch.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "Aggregation",
    "aggregate",
    "counted_rows",
    "entropy_bonus",
    "ppo_clip_loss",
    "reinforce_loss",
    "value_loss",
]

Aggregation = Literal["token_mean", "sequence_mean", "constant"]


def aggregate(
    per_token: Tensor,
    mask: Tensor,
    mode: Aggregation = "token_mean",
    *,
    total_tokens: float | None = None,
    total_seqs: float | None = None,
    constant: float | None = None,
) -> Tensor:
    """Reduce ``per_token [N, T]`` over ``mask [N, T]`` to a scalar (see module docstring).

    ``total_tokens`` / ``total_seqs`` default to this call's masked tokens and
    rows with at least one masked-in token; ``constant`` is the ``"constant"``
    mode's divisor per sequence.
    """
    mask = mask.to(per_token.dtype)
    masked = per_token * mask  # [N, T]
    if mode == "token_mean":
        denom = total_tokens if total_tokens is not None else mask.sum()
        return masked.sum() / max(float(denom), 1.0)
    n_seqs = total_seqs if total_seqs is not None else counted_rows(mask)
    if mode == "sequence_mean":
        per_seq = masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return per_seq.sum() / max(float(n_seqs), 1.0)
    if mode == "constant":
        if constant is None or constant <= 0:
            raise ValueError("aggregation 'constant' needs a positive constant (e.g. max new tokens)")
        return masked.sum() / (max(float(n_seqs), 1.0) * constant)
    raise ValueError(f"unknown aggregation {mode!r}; choose token_mean, sequence_mean or constant")


def counted_rows(mask: Tensor) -> float:
    """How many rows of ``mask [N, T]`` count in a per-sequence denominator: those with a token in it."""
    return float((mask.sum(dim=1) > 0).sum())


def reinforce_loss(logp: Tensor, advantages: Tensor, mask: Tensor, **agg) -> tuple[Tensor, dict[str, Tensor]]:
    """REINFORCE with a baseline (Williams, 1992): ``-A * log pi(a_t|s_t)``.

    logp, mask: ``[N, T]``; advantages: ``[N]`` (one per sequence, broadcast to its
    tokens) or ``[N, T]``. ``agg``: keyword arguments of :func:`aggregate`.
    """
    adv = advantages[:, None] if advantages.dim() == 1 else advantages
    loss = aggregate(-adv * logp, mask, **agg)
    return loss, {"policy_loss": loss.detach()}


def ppo_clip_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    weights: Tensor | None = None,
    **agg,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's clipped surrogate (Schulman et al., 2017), negated to minimise.

    ``L_t = -min(rho_t * A, clip(rho_t, 1 - eps, 1 + eps_high) * A)``,
    ``rho_t = exp(logp_t - old_logp_t)``. ``clip_eps_high`` defaults to ``clip_eps``
    (DAPO's "clip-higher" raises it).

    logp, old_logp, mask: ``[N, T]``; advantages ``[N]`` or ``[N, T]``. weights:
    optional ``[N, T]`` per-token multipliers without gradient (truncated importance
    sampling, :mod:`rlvr.agents.mismatch`). Stats: ``clip_fraction`` (tokens where the
    clipped term is the one taken), ``approx_kl`` (k3 estimate of KL(pi_old || pi),
    over masked tokens), ``ratio_mean``.
    """
    adv = advantages[:, None] if advantages.dim() == 1 else advantages
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + eps_high) * adv
    per_token = -torch.minimum(unclipped, clipped)  # [N, T]
    if weights is not None:
        per_token = per_token * weights.detach()
    loss = aggregate(per_token, mask, **agg)
    with torch.no_grad():
        m = mask.to(logp.dtype)
        n = m.sum().clamp(min=1)
        stats = {
            "policy_loss": loss.detach(),
            "clip_fraction": ((clipped < unclipped).to(m.dtype) * m).sum() / n,
            "approx_kl": ((torch.exp(log_ratio) - 1 - log_ratio) * m).sum() / n,
            "ratio_mean": (ratio * m).sum() / n,
        }
    return loss, stats


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_eps: float | None = 0.2, **agg
) -> tuple[Tensor, dict[str, Tensor]]:
    """Critic loss: ``0.5 * (V - G)^2``, clipped when ``clip_eps`` is set.

    The value-function term of PPO (Schulman et al., 2017); the clipped form is
    the one of PPO implementations:
    ``0.5 * max((V - G)^2, (old_V + clip(V - old_V, -eps, eps) - G)^2)``.

    values, old_values, returns, mask: ``[N, T]``.
    """
    unclipped = (values - returns) ** 2
    if clip_eps is None:
        per_token = unclipped
        frac = torch.zeros((), dtype=values.dtype)
    else:
        v_clipped = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)
        clipped = (v_clipped - returns) ** 2
        per_token = torch.maximum(unclipped, clipped)
        m = mask.to(values.dtype)
        frac = ((clipped > unclipped).to(m.dtype) * m).sum() / m.sum().clamp(min=1)
    loss = 0.5 * aggregate(per_token, mask, **agg)
    return loss, {"value_loss": loss.detach(), "value_clip_fraction": frac.detach()}


def entropy_bonus(entropy: Tensor, mask: Tensor, **agg) -> tuple[Tensor, dict[str, Tensor]]:
    """Entropy bonus (Schulman et al., 2017): returns ``-H`` aggregated.

    Adding ``coef * loss`` to the total loss therefore *raises* entropy.
    entropy, mask: ``[N, T]``.
    """
    h = aggregate(entropy, mask, **agg)
    return -h, {"entropy": h.detach()}
