"""Train/inference mismatch between the rollout engine and the trainer.

The rollout engine's sampling log-probabilities (``mu``, e.g. vLLM's kernels)
differ from the trainer's recomputed ``pi_old`` for the same weights and tokens,
so "on-policy" samples are slightly off-policy.

:func:`tis_weights` is truncated importance sampling (Yao et al., 2025, "Your
efficient RL framework secretly brings you off-policy RL training"): the policy
loss of each token is multiplied by ``min(pi_old / mu, cap)`` (``token`` level)
or every token of a sequence by ``min(prod_t pi_old / mu, cap)`` (``sequence``
level). Truncation bounds the variance; it biases towards ``mu`` where the ratio
is large. :func:`mismatch_stats` are the figures logged every step whichever
engine samples (docs/metrics.md).

Why top-p = 1 and top-k off by default: the engine's log-probabilities are then
those of the full softmax at the rollout temperature, which is exactly what the
trainer recomputes. With top-p < 1 the sampler's distribution is renormalised over
the nucleus, the trainer's is not, and the ratio is biased for every token.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["TISLevel", "mismatch_stats", "tis_weights"]

TISLevel = Literal["off", "token", "sequence"]


def tis_weights(old_logp: Tensor, sampler_logp: Tensor, mask: Tensor, level: TISLevel, cap: float = 2.0) -> Tensor:
    """Per-token weights ``[N, T]`` (no gradient) for the policy loss; 1 where masked or ``off``.

    ``token``: ``w_t = min(exp(old_t - mu_t), cap)``; ``sequence``:
    ``w = min(exp(sum_t (old_t - mu_t)), cap)`` for every token of the row.
    """
    if level == "off":
        return torch.ones_like(old_logp)
    if cap <= 0:
        raise ValueError(f"the TIS cap must be > 0, got {cap}")
    m = mask.to(old_logp.dtype)
    log_ratio = (old_logp.detach() - sampler_logp) * m  # [N, T]
    if level == "token":
        w = torch.exp(log_ratio).clamp(max=cap)
    elif level == "sequence":
        w = torch.exp(log_ratio.sum(dim=1, keepdim=True).clamp(max=50.0)).clamp(max=cap).expand_as(log_ratio)
    else:
        raise ValueError(f"TIS level must be 'off', 'token' or 'sequence', got {level!r}")
    return torch.where(m.bool(), w, torch.ones_like(w))


def mismatch_stats(
    old_logp: Tensor, sampler_logp: Tensor, mask: Tensor, weights: Tensor | None = None, cap: float | None = None
) -> dict[str, float]:
    """Per-token statistics of the gap between the trainer's ``pi_old`` and the sampler's ``mu``.

    ``mismatch/logp_abs_diff``: mean ``|pi_old - mu|`` per token; ``mismatch/kl``: k3
    estimate of ``KL(mu || pi_old)`` per token (samples come from ``mu``);
    ``mismatch/tis_weight_mean`` when weights are given, and ``mismatch/tis_clipped_fraction``
    (tokens whose weight was cut to ``cap``) when the cap is given too.
    """
    m = mask.to(old_logp.dtype)
    n = m.sum().clamp(min=1)
    diff = (old_logp.detach() - sampler_logp) * m  # log(pi_old / mu)
    stats = {
        "mismatch/logp_abs_diff": float(diff.abs().sum() / n),
        "mismatch/kl": float(((torch.exp(diff) - 1 - diff) * m).sum() / n),
    }
    if weights is not None:
        stats["mismatch/tis_weight_mean"] = float((weights * m).sum() / n)
        if cap is not None:
            stats["mismatch/tis_clipped_fraction"] = float(((weights >= cap - 1e-6).to(m.dtype) * m).sum() / n)
    return stats
