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

The policy losses that take an importance ratio against ``pi_old`` share one
signature, ``(logp, old_logp, advantages, mask, clip_eps, clip_eps_high,
weights=None, **agg)``, and are named in :data:`POLICY_LOSSES`:

* ``"clip"`` — PPO's clipped surrogate on the per-token ratio (:func:`ppo_clip_loss`);
* ``"gspo"`` — GSPO's clipped surrogate on the length-normalised sequence ratio
  (:func:`gspo_loss`);
* ``"cispo"`` — CISPO's REINFORCE term weighted by the clipped, stop-gradient
  per-token ratio (:func:`cispo_loss`).

:data:`DEFAULT_CLIP` holds each one's clip range when none is configured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_CLIP",
    "POLICY_LOSSES",
    "Aggregation",
    "PolicyLoss",
    "aggregate",
    "cispo_loss",
    "counted_rows",
    "entropy_bonus",
    "gspo_loss",
    "ppo_clip_loss",
    "reinforce_loss",
    "value_loss",
]

Aggregation = Literal["token_mean", "sequence_mean", "constant"]
PolicyLoss = Literal["clip", "gspo", "cispo"]

LOG_RATIO_CLAMP = 20.0
"""Log-ratios against ``pi_old`` are clamped to ``[-20, 20]`` nats where only their value is used."""


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


def _clipped_surrogate(
    ratio: Tensor,
    adv: Tensor,
    log_ratio: Tensor,
    mask: Tensor,
    clip_eps: float,
    eps_high: float,
    weights: Tensor | None,
    agg: dict,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``-min(r * A, clip(r, 1 - eps, 1 + eps_high) * A)`` per token ``[N, T]``, weighted, aggregated; with stats."""
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + eps_high) * adv
    per_token = -torch.minimum(unclipped, clipped)  # [N, T]
    if weights is not None:
        per_token = per_token * weights.detach()
    loss = aggregate(per_token, mask, **agg)
    return loss, _ratio_stats(loss, log_ratio, ratio, clipped < unclipped, mask)


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
    return _clipped_surrogate(ratio, adv, log_ratio, mask, clip_eps, eps_high, weights, agg)


def gspo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 3e-4,
    clip_eps_high: float | None = 4e-4,
    weights: Tensor | None = None,
    **agg,
) -> tuple[Tensor, dict[str, Tensor]]:
    """GSPO's sequence-level clipped surrogate (Zheng et al., 2025), negated to minimise.

    ``s_i = exp((1 / |y_i|) * sum_t (logp_t - old_logp_t))`` is the length-normalised
    sequence ratio (the geometric mean of the token ratios), and
    ``L_i = -min(s_i * A_i, clip(s_i, 1 - eps, 1 + eps_high) * A_i)``: a sequence is
    clipped, or not, as a whole. The defaults are the paper's range (3e-4, 4e-4,
    Sec. 5.1): a length-normalised ratio moves far less than a token's.

    It is computed per token in the paper's GSPO-token form,
    ``s_{i,t} = sg(s_i) * pi_t / sg(pi_t)``, whose value is ``s_i`` and whose gradient
    is ``s_i * grad log pi_t``. With one advantage per sequence and
    ``aggregation="sequence_mean"`` (the paper's ``1/G sum_i``) the gradient is
    exactly GSPO's, ``A_i * s_i * (1 / |y_i|) * sum_t grad log pi_t`` for an unclipped
    sequence; ``token_mean`` instead weights each sequence by its length.

    Deviations and limits: the sequence log-ratio is clamped to ``[-20, 20]`` before
    the exponential (it only sets the value; the gradient is through ``pi_t``); and
    ``weights`` (truncated importance sampling against the sampler) multiply each
    token's term, as verl does, rather than entering the sequence ratio.

    logp, old_logp, mask: ``[N, T]``; advantages ``[N]`` (or ``[N, T]``: GSPO-token's
    per-token advantages). weights: optional ``[N, T]`` without gradient. Stats as
    :func:`ppo_clip_loss`, with ``clip_fraction`` the share of tokens in clipped
    sequences and ``ratio_mean`` the token-weighted mean of ``s_i``.
    """
    adv = advantages[:, None] if advantages.dim() == 1 else advantages
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    m = mask.to(logp.dtype)
    log_ratio = (logp - old_logp) * m  # [N, T]
    seq_log_ratio = log_ratio.detach().sum(dim=1) / m.sum(dim=1).clamp(min=1)  # [N]
    seq_log_ratio = seq_log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(seq_log_ratio[:, None] + logp - logp.detach())  # [N, T]: value s_i, gradient s_i * grad log pi_t
    return _clipped_surrogate(ratio, adv, log_ratio, mask, clip_eps, eps_high, weights, agg)


def cispo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 1.0,
    clip_eps_high: float | None = 0.2,
    weights: Tensor | None = None,
    **agg,
) -> tuple[Tensor, dict[str, Tensor]]:
    """CISPO (the MiniMax-M1 report, MiniMax, 2025): a clipped, stop-gradient importance weight on REINFORCE.

    ``L_t = -sg(clip(rho_t, 1 - eps, 1 + eps_high)) * A * log pi(a_t | s_t)``, with
    ``rho_t = exp(logp_t - old_logp_t)``. Clipping bounds the weight, never the
    gradient: every token keeps ``-w_t * A * grad log pi_t``, where PPO's clip
    drops the gradient of a token whose ratio left the band. The paper sets no
    lower bound (a large ``eps``) and tunes only the upper one, which it does not
    publish: the default ``eps = 1.0`` (weights in ``[0, 1 + eps_high]``) is no
    lower bound, and ``eps_high = 0.2`` is PPO's range.

    Limits: the paper's unified form (a token mask for PPO-style dropping) is not
    offered; the loss's *value* is ``-w * A * log pi``, not comparable with the
    clipped surrogate's. The ratio's log is clamped to ``[-20, 20]`` (value only).

    logp, old_logp, mask: ``[N, T]``; advantages ``[N]`` or ``[N, T]``. weights:
    optional ``[N, T]`` without gradient. Stats as :func:`ppo_clip_loss`, with
    ``clip_fraction`` the share of tokens whose weight was clipped (they still
    carry gradient).
    """
    adv = advantages[:, None] if advantages.dim() == 1 else advantages
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    log_ratio = logp.detach() - old_logp  # [N, T]
    ratio = torch.exp(log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))  # [N, T], no gradient
    weight = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + eps_high)  # [N, T], no gradient
    per_token = -weight * adv * logp  # [N, T]
    if weights is not None:
        per_token = per_token * weights.detach()
    loss = aggregate(per_token, mask, **agg)
    return loss, _ratio_stats(loss, log_ratio, ratio, weight != ratio, mask)


def _ratio_stats(loss: Tensor, log_ratio: Tensor, ratio: Tensor, clipped: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """``policy_loss``, ``clip_fraction``, ``approx_kl`` (k3 of KL(pi_old || pi)) and ``ratio_mean`` over masked tokens."""
    with torch.no_grad():
        m = mask.to(ratio.dtype)
        n = m.sum().clamp(min=1)
        log_ratio = log_ratio.detach()
        return {
            "policy_loss": loss.detach(),
            "clip_fraction": (clipped.to(m.dtype) * m).sum() / n,
            "approx_kl": ((torch.exp(log_ratio) - 1 - log_ratio) * m).sum() / n,
            "ratio_mean": (ratio.detach() * m).sum() / n,
        }


POLICY_LOSSES: dict[str, Callable[..., tuple[Tensor, dict[str, Tensor]]]] = {
    "clip": ppo_clip_loss,
    "gspo": gspo_loss,
    "cispo": cispo_loss,
}
"""The importance-ratio policy losses by name (GRPO's ``policy_loss`` option)."""

DEFAULT_CLIP: dict[str, tuple[float, float]] = {"clip": (0.2, 0.2), "gspo": (3e-4, 4e-4), "cispo": (1.0, 0.2)}
"""Each policy loss's ``(clip_eps, clip_eps_high)`` when none is configured: PPO's 0.2; GSPO's paper
range; CISPO without a lower bound (``1 - 1.0 = 0``) and PPO's upper bound."""


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
