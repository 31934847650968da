"""PPO's critic: a transformer trunk plus a scalar head, a value per completion token, and how well it explains."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlvr.agents.advantages import Reduce, masked_var
from rlvr.policy import disable_dropout
from rlvr.precision import autocast
from rlvr.tokens import pad_to, position_ids, trimmed_width

__all__ = ["Critic", "explained_variance", "last_token_mask"]


class Critic(nn.Module):
    """A value model for PPO: a transformer trunk plus a scalar head, ``V(s_t)`` per token.

    ``values[:, t]`` is the value of the state before completion token ``t``
    (the prefix ``prompt + completion[:t]``), read at position ``P - 1 + t``.
    The trunk is a separate network from the policy (a copy of it, a smaller
    model, or a reward model's trunk); the head starts at zero so initial values
    are 0. It runs the base model only, not the LM head, so no vocab-sized logits
    are computed. Dropout is off in the trunk, as in :class:`rlvr.policy.Policy`, so
    ``old_values`` and the values of the value loss come from the same function.
    """

    def __init__(
        self, causal_lm: nn.Module, autocast: torch.dtype | None = None, head: nn.Linear | None = None
    ) -> None:
        super().__init__()
        self.autocast = autocast
        self.trunk = getattr(causal_lm, "base_model", causal_lm)
        disable_dropout(self.trunk)
        hidden = causal_lm.config.hidden_size
        self.head = nn.Linear(hidden, 1) if head is None else head
        if head is None:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    @classmethod
    def from_reward_model(
        cls, reward_model: nn.Module, autocast: torch.dtype | None = None, mean: float = 0.0, std: float = 1.0
    ) -> Critic:
        """A critic whose trunk and head start as a copy of a reward model's.

        As in InstructGPT (Ouyang et al., 2022: "the value function is initialized
        from the RM"), so its first values are the RM's score of each prefix instead
        of 0. The RM is not changed, and the copy is trainable even when the RM was
        frozen (as the ``reward-model`` verifier freezes the model it scores with).

        ``mean`` and ``std``: when the policy is rewarded with the RM's score
        normalised as ``(score - mean) / std`` (the ``reward-model`` verifier's
        ``normalize``), pass the same statistics so that the critic's values are on
        the reward's scale; the head is rescaled to ``(head(h) - mean) / std``.
        Without this the values are in raw RM units, and GAE's ``V(s_{t+1}) - V(s_t)``
        terms, many times larger than the normalised reward, drown it.

        Raises:
            ValueError: ``std`` is not positive.
        """
        import copy

        if std <= 0:
            raise ValueError(f"std must be > 0, got {std}")
        head = copy.deepcopy(reward_model.head)
        with torch.no_grad():
            head.weight.div_(std)
            head.bias.sub_(mean).div_(std)
        return cls(copy.deepcopy(reward_model.trunk).requires_grad_(True), autocast, head=head.requires_grad_(True))

    def forward(self, input_ids: Tensor, attention_mask: Tensor, prompt_len: int) -> Tensor:
        """Values ``[N, T]`` of the states before each completion token, with gradients.

        Args:
            input_ids: ``[N, P + T]`` in the rollout layout (:mod:`rlvr.tokens`).
            attention_mask: ``[N, P + T]``, 1 on real tokens.
            prompt_len: P, the padded prompt width.

        Returns:
            ``[N, T]``: ``values[:, t]`` is ``V`` of the prefix ``prompt + completion[:t]``.
            Columns past the batch's longest completion (rounded up, see
            :func:`rlvr.tokens.trimmed_width`) are not computed and come back as 0.
        """
        full_width = input_ids.shape[1] - prompt_len
        width = prompt_len + trimmed_width(attention_mask, prompt_len)
        input_ids, attention_mask = input_ids[:, :width], attention_mask[:, :width]
        with autocast(self.trunk, self.autocast):
            out = self.trunk(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask)
            )
        hidden = out.last_hidden_state[:, prompt_len - 1 : -1]  # [N, T, H]
        return pad_to(self.head(hidden.to(self.head.weight.dtype)).squeeze(-1), full_width)  # [N, T]

    @torch.no_grad()
    def values(self, input_ids: Tensor, attention_mask: Tensor, prompt_len: int, micro_batch_size: int = 8) -> Tensor:
        """No-grad values ``[N, T]`` (PPO's ``old_values``), ``micro_batch_size`` rows per forward pass.

        ``[0, T]`` for no rows (a data-parallel rank that kept none).
        """
        if len(input_ids) == 0:
            return torch.zeros(0, input_ids.shape[1] - prompt_len, device=input_ids.device)
        return torch.cat(
            [
                self(input_ids[i : i + micro_batch_size], attention_mask[i : i + micro_batch_size], prompt_len)
                for i in range(0, len(input_ids), micro_batch_size)
            ]
        )


def last_token_mask(mask: Tensor) -> Tensor:
    """``[N, T]``: 1 at each row's last masked-in token, 0 elsewhere (all 0 for an empty row).

    The state before a completion's last token has read all of the answer but its
    end, so a critic's value there can know the reward where earlier values cannot.
    """
    taken = mask.to(torch.long)  # [N, T]
    from_here = taken.flip(1).cumsum(1).flip(1)  # [N, T]: masked-in tokens at or after each position
    return (taken * (from_here == 1)).float()


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor, reduce: Reduce | None = None) -> float | None:
    """``1 - Var(returns - values) / Var(returns)`` over the masked-in entries.

    1 when the values predict the returns, 0 for a constant at their mean, below 0
    when worse than that constant. ``None`` when the returns do not vary (undefined,
    and not divided by about 0). values, returns, mask: ``[N, T]``; ``reduce``: the
    variances over every rank's entries.
    """
    return_var = masked_var(returns, mask, reduce=reduce)
    if not return_var > 1e-8:
        return None
    return float(1.0 - masked_var(returns - values, mask, reduce=reduce) / return_var)
