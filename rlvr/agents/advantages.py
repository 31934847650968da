"""Advantage estimators and baselines: pure functions over tensors.

Shapes: ``N`` sequences (B prompts x G completions), ``T`` completion tokens.
``scored`` masks out completions a verifier could not score (UNSCORABLE / ERROR):
they take no part in baselines and get advantage 0, so they carry no gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from rlvr.agents.kl import shaped_token_rewards

__all__ = [
    "MovingAverageBaseline",
    "Reduce",
    "WhitenLevel",
    "batch_mean_advantages",
    "batch_normalized_advantages",
    "gae",
    "gdpo_advantages",
    "group_normalized_advantages",
    "masked_mean",
    "masked_var",
    "overlong_penalty",
    "reinforce_plus_plus_advantages",
    "returns_to_go",
    "rloo_advantages",
    "whiten",
]

WhitenLevel = Literal["token", "sequence"]
Reduce = Callable[[Tensor], Tensor]
"""Sums a vector of statistics over data-parallel ranks (:func:`rlvr.distributed.reduce_sums`).

Batch statistics (batch-mean baselines, whitening) take one as ``reduce`` so that
each rank's share of a batch is normalised with the whole batch's statistics; None
keeps them to the tensors given.
"""


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` where ``mask`` is true (0 where nothing is masked in)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True, reduce: Reduce | None = None) -> Tensor:
    """Variance of the masked-in entries of ``x`` (Bessel-corrected by default).

    ``reduce``: over every rank's entries (Bessel-corrected).
    """
    if reduce is not None:
        return _global_var(x, mask, _global_mean(x, mask, reduce), reduce)
    mean = masked_mean(x, mask)
    n = mask.to(x.dtype).sum()
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def batch_mean_advantages(rewards: Tensor, scored: Tensor | None = None, reduce: Reduce | None = None) -> Tensor:
    """REINFORCE advantages with the batch-mean baseline.

    ``A_i = r_i - mean_j r_j`` over scored completions: REINFORCE (Williams, 1992)
    with the batch-mean baseline of the RLHF lecture slides (Ahn, 2026).

    rewards, scored: ``[N]``. Returns ``[N]``. ``reduce``: the mean over every rank's rows.
    """
    scored = _scored(rewards, scored)
    mean = masked_mean(rewards, scored) if reduce is None else _global_mean(rewards, scored, reduce)
    return torch.where(scored, rewards - mean, torch.zeros_like(rewards))


def _global_mean(x: Tensor, mask: Tensor, reduce: Reduce) -> Tensor:
    """The mean of ``x`` where ``mask``, over every rank's entries (0 where none is masked in)."""
    m = mask.to(x.dtype)
    sums = reduce(torch.stack([(x * m).sum(), m.sum()]))  # [2]
    return sums[0] / sums[1].clamp(min=1)


def _global_var(x: Tensor, mask: Tensor, mean: Tensor, reduce: Reduce) -> Tensor:
    """The Bessel-corrected variance of ``x`` where ``mask`` around ``mean``, over every rank's entries."""
    m = mask.to(x.dtype)
    sums = reduce(torch.stack([(((x - mean) ** 2) * m).sum(), m.sum()]))  # [2]
    n = sums[1]
    return sums[0] / (n - 1).clamp(min=1) if n > 1 else sums[0] / n.clamp(min=1)


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

    def __call__(self, rewards: Tensor, scored: Tensor | None = None, reduce: Reduce | None = None) -> Tensor:
        """rewards, scored: ``[N]`` -> advantages ``[N]``; then updates the baseline.

        ``reduce``: the batch mean is over every rank's rows (each rank keeps the same baseline).
        """
        scored = _scored(rewards, scored)
        if reduce is not None:
            m = scored.to(rewards.dtype)
            sums = reduce(torch.stack([(rewards * m).sum(), m.sum()]))  # [2]
            if sums[1] == 0:
                return torch.zeros_like(rewards)
            batch_mean = float(sums[0] / sums[1])
        elif not scored.any():
            return torch.zeros_like(rewards)
        else:
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

    rewards, values, mask: ``[N, T]`` (mask 1 on the policy's tokens). Returns
    ``(advantages [N, T], returns [N, T])`` with ``returns = advantages + values``;
    both are 0 where ``mask`` is 0. The mask may have holes (an episode's
    environment tokens): the recursion skips them, so the state after a turn's last
    token is the next turn's first policy token, and ``gamma``/``lam`` count policy
    tokens only.
    """
    mask = mask.to(rewards.dtype)
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])  # [N] A of the next policy token
    next_value = torch.zeros_like(last)  # [N] V of the next policy token (0 after the last)
    for t in reversed(range(rewards.shape[1])):
        keep = mask[:, t] > 0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantage = delta + gamma * lam * last
        advantages[:, t] = advantage * mask[:, t]
        last = torch.where(keep, advantage, last)
        next_value = torch.where(keep, values[:, t], next_value)
    return advantages, (advantages + values) * mask


def whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8, reduce: Reduce | None = None) -> Tensor:
    """``(x - mean) / std`` over masked-in entries (mean kept when ``shift_mean`` is False).

    x, mask: any matching shape. Masked-out entries come back as 0. ``reduce``:
    the statistics are over every rank's entries.
    """
    if reduce is None:
        mean, var = masked_mean(x, mask), masked_var(x, mask)
    else:
        mean = _global_mean(x, mask, reduce)
        var = _global_var(x, mask, mean, reduce)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def returns_to_go(token_rewards: Tensor, mask: Tensor) -> Tensor:
    """Undiscounted reward-to-go ``G_t = sum_{s >= t} r_s`` within each row (gamma = 1).

    token_rewards, mask: ``[N, T]`` (holes in the mask, an episode's environment
    tokens, carry no reward and are skipped). Returns ``[N, T]``, 0 where ``mask`` is 0.
    """
    m = mask.to(token_rewards.dtype)
    r = token_rewards * m
    return r.flip(1).cumsum(1).flip(1) * m


def batch_normalized_advantages(
    advantages: Tensor, mask: Tensor, level: WhitenLevel = "token", eps: float = 1e-8, reduce: Reduce | None = None
) -> Tensor:
    """REINFORCE++'s global normalisation: ``(A - mean) / std`` over the whole batch (Hu, 2025).

    ``level="token"``: every completion token of the batch counts once (the
    paper's, OpenRLHF's and verl's choice); a long completion weighs more in the
    statistics. ``level="sequence"``: every sequence counts once (each of its
    tokens weighs ``1 / |y_i|``), so for one advantage per sequence this is the
    whitening of the ``[N]`` vector. The variance is Bessel-corrected over the
    units counted (tokens or sequences), as :func:`whiten`; OpenRLHF divides by the
    count instead (a factor ``n / (n - 1)``).

    advantages: ``[N, T]`` (or ``[N]``, broadcast over each row's tokens); mask
    ``[N, T]``. Returns ``[N, T]``, 0 where ``mask`` is 0 and for rows without a
    token. ``reduce``: the statistics are over every rank's rows.
    """
    m = mask.to(advantages.dtype)
    adv = (advantages[:, None] if advantages.dim() == 1 else advantages) * m  # [N, T]
    if level == "token":
        w, n = m, m.sum()
    elif level == "sequence":
        w, n = m / m.sum(dim=1, keepdim=True).clamp(min=1), (m.sum(dim=1) > 0).sum().to(m.dtype)
    else:
        raise ValueError(f"whitening level must be 'token' or 'sequence', got {level!r}")
    if reduce is not None:
        sums = reduce(torch.stack([w.sum(), (w * adv).sum(), n]))  # [3]
        total, n = sums[0].clamp(min=1e-12), sums[2]
        mean = sums[1] / total
        var = reduce((w * (adv - mean) ** 2).sum()[None])[0] / total
    else:
        total = w.sum().clamp(min=1e-12)
        mean = (w * adv).sum() / total
        var = (w * (adv - mean) ** 2).sum() / total
    if n > 1:
        var = var * n / (n - 1)
    return (adv - mean) * torch.rsqrt(var + eps) * m


def reinforce_plus_plus_advantages(
    rewards: Tensor,
    mask: Tensor,
    *,
    kl: Tensor | None = None,
    beta: float = 0.0,
    group: Tensor | None = None,
    scored: Tensor | None = None,
    level: WhitenLevel = "token",
    reduce: Reduce | None = None,
) -> Tensor:
    """REINFORCE++ (Hu, 2025): token-level KL in the reward, reward-to-go, then batch normalisation.

    ``r~_t = 1[t = last] * r - beta * KL_t``, ``A_t = sum_{s >= t} r~_s``, then
    ``A <- (A - mean_batch) / std_batch`` (:func:`batch_normalized_advantages`). With
    ``group`` (REINFORCE++-baseline), the group's mean reward is subtracted from
    ``r`` first (``r_i - mean_{j in group(i)} r_j``, on the verifier's rewards,
    before the KL), as OpenRLHF and verl do.

    The KL reward-to-go makes token ``t``'s advantage carry only the KL of the
    tokens from ``t`` on: with k1 this is the REINFORCE gradient of the sequence's
    KL(pi || pi_ref), with less variance than the whole sequence's sum on every
    token. Unscored rows count nowhere and get 0. A lone member of its group
    (after unscored rows are left out) gets ``r - r = 0`` before normalisation.

    rewards, group, scored: ``[N]``; mask, kl: ``[N, T]`` (kl from ``pi_old``, a
    constant of the update). Returns ``[N, T]``.
    """
    scored = _scored(rewards, scored)
    m = mask.to(rewards.dtype) * scored[:, None].to(rewards.dtype)  # [N, T]: unscored rows count nowhere
    r = torch.where(scored, rewards, torch.zeros_like(rewards))  # [N]
    if group is not None:
        r, _ = group_normalized_advantages(r, group, scored, scale_by_std=False)  # r - group mean
    token_rewards = shaped_token_rewards(r, torch.zeros_like(m) if kl is None else kl, m, beta)  # [N, T]
    return batch_normalized_advantages(returns_to_go(token_rewards, m), m, level, reduce=reduce)


def gdpo_advantages(
    components: Tensor,
    group: Tensor,
    scored: Tensor | None = None,
    *,
    weights: Tensor | None = None,
    scale_by_std: bool = True,
    eps: float = 1e-4,
    reduce: Reduce | None = None,
) -> tuple[Tensor, Tensor]:
    """GDPO's decoupled normalisation of a composed reward (GDPO, 2026, arXiv 2601.05242).

    Each component ``k`` is normalised within its group,
    ``A_i^k = (r_i^k - mean_g r^k) / (std_g r^k + eps)`` (GRPO's estimator, per
    component), the normalised components are summed, ``S_i = sum_k A_i^k``, and
    the sum is whitened over the batch's scored rows, ``A_i = (S_i - mean S) / std S``.
    Normalising the *sum* instead (GRPO on the combined reward) lets a component
    with a wide spread drown one with a narrow spread, and maps different
    component patterns to the same advantage. ``reduce``: the batch whitening is
    over every rank's rows.

    Limits: the composite's own combination (its weights, gates, clips) is not
    applied: each component enters linearly with its weight here, so a gate's
    condition becomes a reward of its own. A component that is constant within a
    group adds 0 there. ``scale_by_std=False`` only centres each component (Dr.
    GRPO's choice, per component); the batch whitening of the sum stays.

    components: ``[N, K]``; group, scored: ``[N]``; weights: ``[K]``. Returns ``(advantages [N],
    zero_std [N] bool)``, ``zero_std`` marking rows whose group is constant in every
    component.
    """
    if components.dim() != 2 or components.shape[1] == 0:
        raise ValueError(f"components must be [N, K] with K >= 1, got shape {tuple(components.shape)}")
    scored = _scored(components[:, 0], scored)
    total, zero_std = torch.zeros_like(components[:, 0]), torch.ones_like(scored)  # [N] each
    for k in range(components.shape[1]):
        adv_k, zero_k = group_normalized_advantages(
            components[:, k], group, scored, scale_by_std=scale_by_std, eps=eps
        )  # [N] each
        w_k = 1.0 if weights is None else weights[k]
        total, zero_std = total + w_k * adv_k, zero_std & zero_k
    return whiten(total, scored.to(total.dtype), reduce=reduce), zero_std & scored  # [N], 0 where unscored


def overlong_penalty(lengths: Tensor, budget: int, buffer: int, penalty: float = 1.0) -> Tensor:
    """DAPO's soft overlong punishment (Yu et al., 2025), scaled by ``penalty``.

    ``0`` for ``|y| <= budget - buffer``, then linear to ``-penalty`` at ``|y| = budget``:
    ``-penalty * min((|y| - (budget - buffer)) / buffer, 1)``. ``budget`` is the token
    budget of the rollouts (``max_new_tokens``, the paper's ``L_max``), ``buffer``
    the paper's ``L_cache``; a completion cut at the budget gets the whole
    ``-penalty``. ``penalty`` is verl's and OpenRLHF's penalty factor (the paper: 1).

    lengths: ``[N]`` completion tokens (EOS included). Returns ``[N]``.
    """
    if buffer <= 0 or budget < buffer:
        raise ValueError(f"the overlong buffer must lie in [1, budget], got buffer={buffer}, budget={budget}")
    excess = (lengths.to(torch.float32) - (budget - buffer)).clamp(min=0) / buffer
    return -penalty * excess.clamp(max=1.0)


def _scored(rewards: Tensor, scored: Tensor | None) -> Tensor:
    return torch.ones_like(rewards, dtype=torch.bool) if scored is None else scored.to(torch.bool)
