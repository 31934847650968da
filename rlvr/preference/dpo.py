"""Offline preference optimisation: DPO (Rafailov et al., 2023) and SimPO (Meng et al., 2024).

No sampling and no reward: each update reads a batch of preference pairs,
computes the policy's (and, for DPO, the frozen reference's) log-probabilities of
the chosen and rejected completions, and steps on :func:`rlvr.preference.losses.dpo_loss`
or :func:`rlvr.preference.losses.simpo_loss`. The two losses are two small functions;
``loss`` picks one, and ``beta`` / ``gamma`` mean what the papers say.

Deviations and limits: a completion is scored as ``text + EOS`` (so the model
also learns where to stop); prompts longer than ``max_prompt_tokens`` are cut
from the left and completions beyond ``max_completion_tokens`` are cut, which
changes the sequence log-probabilities compared with the untruncated pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from rlvr.policy import Policy, reference_logprobs
from rlvr.preference.losses import dpo_loss, sequence_logprobs, simpo_loss
from rlvr.preference.pairs import PreferencePair
from rlvr.tokens import encode_completions

__all__ = ["DPO", "DPOConfig", "encode_pairs"]


@dataclass(frozen=True)
class DPOConfig:
    """DPO / SimPO settings.

    Attributes:
        loss: ``dpo`` (needs a reference) or ``simpo`` (none).
        beta: the implicit reward's scale (None: 0.1 for DPO, 2.0 for SimPO).
        gamma: SimPO's target margin.
        label_smoothing: conservative DPO's assumed label-noise rate.
        micro_batch_size: pairs per forward/backward.
        max_grad_norm: clipping (None: off).
        max_prompt_tokens: longer prompts are cut from the left.
        max_completion_tokens: longer completions (``text + EOS``) are cut from the right.
    """

    loss: Literal["dpo", "simpo"] = "dpo"
    beta: float | None = None
    gamma: float = 0.5
    label_smoothing: float = 0.0
    micro_batch_size: int = 4
    max_grad_norm: float | None = 1.0
    max_prompt_tokens: int = 512
    max_completion_tokens: int = 256

    @property
    def effective_beta(self) -> float:
        """``beta``, or the loss's default when it is None (0.1 for DPO, 2.0 for SimPO)."""
        return self.beta if self.beta is not None else (0.1 if self.loss == "dpo" else 2.0)


def encode_pairs(tokenizer: Any, pairs: Sequence[PreferencePair], **kwargs: Any) -> tuple[Tensor, Tensor, int, Tensor]:
    """:func:`encode_completions` of the chosen rows, then the rejected rows (``[2B, ...]``)."""
    prompts = [p.prompt for p in pairs] * 2
    return encode_completions(tokenizer, prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs], **kwargs)


class DPO:
    """DPO / SimPO on preference pairs: ``update(pairs)`` is one optimiser step.

    Args:
        policy: the :class:`rlvr.policy.Policy` being trained (temperature 1).
        optimizer: over the policy's parameters.
        tokenizer: the policy's tokenizer (with a pad token).
        config: :class:`DPOConfig`.
        reference: a frozen ``Policy`` for DPO; ``None`` with a LoRA policy uses the
            adapter-free model, and SimPO needs none.
    """

    def __init__(
        self,
        policy: Policy,
        optimizer: torch.optim.Optimizer,
        tokenizer: Any,
        config: DPOConfig | None = None,
        reference: Policy | None = None,
        *,
        chat_template: bool = True,
    ) -> None:
        self.policy, self.optimizer, self.tokenizer = policy, optimizer, tokenizer
        self.config = config or DPOConfig()
        self.reference, self.chat_template = reference, chat_template

    def _encode(self, pairs: Sequence[PreferencePair]) -> tuple[Tensor, Tensor, int, Tensor]:
        c = self.config
        return encode_pairs(
            self.tokenizer, pairs, chat_template=self.chat_template, max_prompt_tokens=c.max_prompt_tokens,
            max_completion_tokens=c.max_completion_tokens, device=next(self.policy.parameters()).device,
        )  # fmt: skip

    def _loss(self, pairs: Sequence[PreferencePair]) -> tuple[Tensor, dict[str, float]]:
        c = self.config
        ids, mask, prompt_len, completion_mask = self._encode(pairs)
        logp, _ = self.policy(ids, mask, prompt_len)  # [2B, T]
        n = len(pairs)
        if c.loss == "simpo":
            avg = sequence_logprobs(logp, completion_mask, average=True)  # [2B]
            return simpo_loss(avg[:n], avg[n:], beta=c.effective_beta, gamma=c.gamma)
        with torch.no_grad():
            ref = reference_logprobs(self.policy, self.reference, ids, mask, prompt_len)  # [2B, T]
        total = sequence_logprobs(logp, completion_mask)  # [2B]
        ref_total = sequence_logprobs(ref, completion_mask)
        return dpo_loss(
            total[:n], total[n:], ref_total[:n], ref_total[n:],
            beta=c.effective_beta, label_smoothing=c.label_smoothing,
        )  # fmt: skip

    def update(self, pairs: Sequence[PreferencePair]) -> dict[str, float]:
        """One optimiser step on ``pairs``, micro-batched; stats are pair-weighted means."""
        if not pairs:
            raise ValueError("update needs at least one pair")
        self.policy.train()
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        size = self.config.micro_batch_size
        for start in range(0, len(pairs), size):
            chunk = pairs[start : start + size]
            loss, stats = self._loss(chunk)
            (loss * len(chunk) / len(pairs)).backward()
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value * len(chunk) / len(pairs)
        if self.config.max_grad_norm is not None:
            params = [p for p in self.policy.parameters() if p.requires_grad]
            totals["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm))
        self.optimizer.step()
        return totals

    @torch.no_grad()
    def evaluate(self, pairs: Sequence[PreferencePair]) -> dict[str, float]:
        """The same stats on held-out pairs, without a step.

        ``rewards/accuracy`` is the implicit-reward accuracy; before any training a
        DPO policy equals its reference, every implicit reward is 0 and the accuracy
        reads 0.
        """
        was_training = self.policy.training
        self.policy.eval()
        totals: dict[str, float] = {}
        size = self.config.micro_batch_size
        for start in range(0, len(pairs), size):
            chunk = pairs[start : start + size]
            _, stats = self._loss(chunk)
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value * len(chunk) / len(pairs)
        self.policy.train(was_training)
        return totals
