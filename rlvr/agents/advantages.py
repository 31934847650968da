"""Advantage estimators and baselines: pure functions over tensors.

Shapes: ``N`` sequences (B prompts x G completions), ``T`` completion tokens.
``scored`` masks out completions a verifier could not score (UNSCORABLE / ERROR):
they take no part in baselines and get advantage 0, so they carry no gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "MovingAverageBaseline",
    "batch_mean_advantages",
    "gae",
    "group_normalized_advantages",
    "masked_mean",
    "masked_var",
    "rloo_advantages",
    "whiten",
]


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` where ``mask`` is true (0 where nothing is masked in)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of the masked-in entries of ``x`` (Bessel-corrected by default)."""
    mean = masked_mean(x, mask)
    n = mask.to(x.dtype).sum()
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def batch_mean_advantages(rewards: Tensor, scored: Tensor | None = None) -> Tensor:
    """REINFORCE advantages with the batch-mean baseline.

    ``A_i = r_i - mean_j r_j`` over scored completions: REINFORCE (Williams, 1992)
    with the batch-mean baseline of the RLHF lecture slides (Ahn, 2026).

    rewards, scored: ``[N]``. Returns ``[N]``.
    """
    scored = _scored(rewards, scored)
    return torch.where(scored, rewards - masked_mean(rewards, scored), torch.zeros_like(rewards))


class MovingAverageBaseline:
    """REINFORCE with a moving-average baseline: ``b <- m*b + (1-m)*mean(r)``.

    The baseline of the RLHF lecture slides (Ahn, 2026). The advantage uses the
    baseline *before* this batch updates it, so a completion's own reward does
    not shrink its advantage. State: one float, saved with checkpoints through
    :meth:`state_dict`.
    """

    def __init__(self, momentum: float = 0.9, initial: float | None = None) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        self.momentum = momentum
        self.value = initial

    def __call__(self, rewards: Tensor, scored: Tensor | None = None) -> Tensor:
        """rewards, scored: ``[N]`` -> advantages ``[N]``; then updates the baseline."""
        scored = _scored(rewards, scored)
        if not scored.any():
            return torch.zeros_like(rewards)
        batch_mean = float(masked_mean(rewards, scored))
        baseline = batch_mean if self.value is None else self.value
        self.value = batch_mean if self.value is None else self.momentum * self.value + (1 - self.momentum) * batch_mean
        return torch.where(scored, rewards - baseline, torch.zeros_like(rewards))

    def state_dict(self) -> dict[str, float | None]:
        """The momentum and the current baseline (None before the first batch), for checkpoints."""
        return {"momentum": self.momentum, "value": self.value}

    def load_state_dict(self, state: dict[str, float | None]) -> None:
        """Restore the momentum and the baseline saved by :meth:`state_dict`."""
        self.momentum, self.value = float(state["momentum"]), state["value"]


def rloo_advantages(rewards: Tensor, group: Tensor, scored: Tensor | None = None) -> Tensor:
    """Leave-one-out baseline (RLOO): ``A_i = r_i - mean_{j in group(i), j != i} r_j``.

    rewards, group (prompt index of each completion), scored: ``[N]``. A
    completion alone in its group (after dropping unscored ones) gets 0.
    Returns ``[N]``.
    """
    scored = _scored(rewards, scored)
    r = torch.where(scored, rewards, torch.zeros_like(rewards))
    n_groups = int(group.max()) + 1 if group.numel() else 0
    sums = torch.zeros(n_groups, dtype=r.dtype, device=r.device).index_add_(0, group, r)
    counts = torch.zeros(n_groups, dtype=r.dtype, device=r.device).index_add_(0, group, scored.to(r.dtype))
    others = counts[group] - 1
    loo_mean = (sums[group] - r) / others.clamp(min=1)
    return torch.where(scored & (others > 0), r - loo_mean, torch.zeros_like(r))


def group_normalized_advantages(
    rewards: Tensor, group: Tensor, scored: Tensor | None = None, *, scale_by_std: bool = True, eps: float = 1e-4
) -> tuple[Tensor, Tensor]:
    """GRPO's group-relative advantage (Shao et al., 2024): ``A_i = (r_i - mean_g) / (std_g + eps)``.

    ``scale_by_std=False`` is Dr. GRPO's correction (no division by the group
    std, which over-weights groups that are nearly all right or all wrong). The
    std is the unbiased sample std, as in the GRPO paper's ``stdev``.

    rewards, group, scored: ``[N]``. Returns ``(advantages [N], zero_std [N] bool)``,
    where ``zero_std`` marks completions whose group's rewards are all equal
    (no learning signal; the caller may count or drop them).
    """
    scored = _scored(rewards, scored)
    r = torch.where(scored, rewards, torch.zeros_like(rewards))
    n_groups = int(group.max()) + 1 if group.numel() else 0
    zeros = torch.zeros(n_groups, dtype=r.dtype, device=r.device)
    counts = zeros.clone().index_add_(0, group, scored.to(r.dtype))
    mean = zeros.clone().index_add_(0, group, r) / counts.clamp(min=1)
    centered = torch.where(scored, r - mean[group], torch.zeros_like(r))
    sq = zeros.clone().index_add_(0, group, centered**2)
    std = (sq / (counts - 1).clamp(min=1)).sqrt()
    zero_std = (std[group] <= 1e-8) | (counts[group] < 2)
    adv = centered / (std[group] + eps) if scale_by_std else centered
    adv = torch.where(scored & ~zero_std, adv, torch.zeros_like(adv))
    return adv, zero_std & scored


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation over masked token sequences (GAE, Schulman et al., 2015).

    ``delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)`` and
    ``A_t = sum_l (gamma*lam)^l delta_{t+l}``, with ``V`` after the last
    completion token taken as 0 (the episode ends there).

    rewards, values, mask: ``[N, T]`` (mask 1 on completion tokens, a prefix of
    each row). Returns ``(advantages [N, T], returns [N, T])`` with
    ``returns = advantages + values``; both are 0 where ``mask`` is 0.
    """
    mask = mask.to(rewards.dtype)
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    n_tokens = rewards.shape[1]
    for t in reversed(range(n_tokens)):
        next_value = values[:, t + 1] * mask[:, t + 1] if t + 1 < n_tokens else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        advantages[:, t] = last
    return advantages, (advantages + values) * mask


def whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """``(x - mean) / std`` over masked-in entries (mean kept when ``shift_mean`` is False).

    x, mask: any matching shape. Masked-out entries come back as 0.
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def _scored(rewards: Tensor, scored: Tensor | None) -> Tensor:
    return torch.ones_like(rewards, dtype=torch.bool) if scored is None else scored.to(torch.bool)
