"""Per-token log-probabilities of completions under a Hugging Face causal LM, and a critic.

Token layout used across rlvr (see :class:`rlvr.rollout.Rollouts`)::

    input_ids [N, P + T] = prompt (left-padded to P) + completion (right-padded to T)
    completion_mask [N, T] = 1 on the completion tokens that count

The logits at position ``i`` predict token ``i + 1``, so completion token ``t``
is scored by the logits at ``P - 1 + t``. Position ids are computed from the
attention mask, so left padding does not shift positions (it would otherwise
disagree with what generation saw).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Critic", "Policy", "add_lora", "is_peft_model", "reference_logprobs"]


def position_ids(attention_mask: Tensor) -> Tensor:
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class Policy(nn.Module):
    """Wraps a causal LM; returns log-probs (and entropies) of completion tokens.

    Args:
        model: a ``transformers`` causal LM (or a ``peft`` model around one).
        temperature: logits are divided by it before the softmax, so the
            log-probs are those of the distribution the sampler drew from
            (keep it equal to the sampling temperature).
        micro_batch_size: rows per forward pass in :meth:`logprobs` (no-grad).
    """

    def __init__(self, model: nn.Module, *, temperature: float = 1.0, micro_batch_size: int = 8) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.model = model
        self.temperature = float(temperature)
        self.micro_batch_size = int(micro_batch_size)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, prompt_len: int, *, with_entropy: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``(logp [N, T], entropy [N, T] or None)`` for the completion tokens.

        Hidden cost: the full ``[N, T, vocab]`` logits are materialised in float32
        (about 75 MB for 8 x 48 tokens x 49k vocab); micro-batch to bound it.
        """
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask))
        logits = out.logits[:, prompt_len - 1 : -1].float() / self.temperature  # [N, T, V]
        targets = input_ids[:, prompt_len:]  # [N, T]
        log_z = torch.logsumexp(logits, dim=-1)  # [N, T]
        logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z
        entropy = None
        if with_entropy:
            probs = torch.softmax(logits, dim=-1)
            entropy = log_z - (probs * logits).sum(-1)
        return logp, entropy

    @torch.no_grad()
    def logprobs(self, input_ids: Tensor, attention_mask: Tensor, prompt_len: int) -> Tensor:
        """No-grad log-probs ``[N, T]``, micro-batched (pi_old, or a reference)."""
        chunks = [
            self(input_ids[i : i + self.micro_batch_size], attention_mask[i : i + self.micro_batch_size], prompt_len)[0]
            for i in range(0, len(input_ids), self.micro_batch_size)
        ]
        return torch.cat(chunks)


class Critic(nn.Module):
    """A value model for PPO: a transformer trunk plus a scalar head, ``V(s_t)`` per token.

    ``values[:, t]`` is the value of the state before completion token ``t``
    (the prefix ``prompt + completion[:t]``), read at position ``P - 1 + t``.
    The trunk is a separate network from the policy (a copy of it, a smaller
    model, or a reward model's trunk); the head starts at zero so initial values
    are 0. It runs the base model only, not the LM head, so no vocab-sized logits
    are computed.
    """

    def __init__(self, causal_lm: nn.Module) -> None:
        super().__init__()
        self.trunk = getattr(causal_lm, "base_model", causal_lm)
        hidden = causal_lm.config.hidden_size
        self.head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, prompt_len: int) -> Tensor:
        out = self.trunk(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask))
        hidden = out.last_hidden_state[:, prompt_len - 1 : -1]  # [N, T, H]
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1)  # [N, T]

    @torch.no_grad()
    def values(self, input_ids: Tensor, attention_mask: Tensor, prompt_len: int, micro_batch_size: int = 8) -> Tensor:
        return torch.cat(
            [
                self(input_ids[i : i + micro_batch_size], attention_mask[i : i + micro_batch_size], prompt_len)
                for i in range(0, len(input_ids), micro_batch_size)
            ]
        )


def is_peft_model(model: nn.Module) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def add_lora(
    model: nn.Module, r: int = 16, alpha: int = 32, dropout: float = 0.0, target_modules: str | list[str] = "all-linear"
):
    """Wrap ``model`` with LoRA adapters (needs ``peft``: ``pip install rlvr[lora]``).

    With LoRA the reference policy is the same model with its adapters disabled
    (see :func:`reference_logprobs`), so no second copy is held in memory.
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise ImportError("LoRA needs the peft package: pip install 'rlvr[lora]'") from exc
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, task_type="CAUSAL_LM"
    )
    return get_peft_model(model, config)


def reference_logprobs(
    policy: Policy, reference: Policy | None, input_ids: Tensor, attention_mask: Tensor, prompt_len: int
) -> Tensor:
    """Log-probs ``[N, T]`` under the reference policy.

    ``reference`` is a frozen policy; with ``None`` the policy must be a LoRA
    model, and the reference is the base model (adapters disabled).
    """
    if reference is not None:
        return reference.logprobs(input_ids, attention_mask, prompt_len)
    if not is_peft_model(policy.model):
        raise ValueError("no reference policy: pass a frozen reference Policy, or train LoRA adapters (add_lora)")
    with policy.model.disable_adapter():
        return policy.logprobs(input_ids, attention_mask, prompt_len)
