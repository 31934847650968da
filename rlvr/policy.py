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

__all__ = ["Critic", "Policy", "add_lora", "autocast", "is_peft_model", "pick_autocast", "reference_logprobs"]


def position_ids(attention_mask: Tensor) -> Tensor:
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def pick_autocast(setting: str, device: torch.device | str = "cpu") -> torch.dtype | None:
    """``"bf16"``, ``"none"``, or ``"auto"``: bf16 where the hardware computes it natively
    (a CUDA GPU, or a CPU with AMX / AVX512-BF16), else full float32. Emulated bf16 is
    slower than float32, hence the check."""
    if setting == "none":
        return None
    if setting == "bf16":
        return torch.bfloat16
    if setting != "auto":
        raise ValueError(f"autocast must be 'auto', 'bf16' or 'none', got {setting!r}")
    if torch.device(device).type == "cuda":
        return torch.bfloat16
    cpu = torch.cpu
    native = (
        getattr(cpu, "_is_amx_tile_supported", lambda: False)()
        or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
    )
    return torch.bfloat16 if native else None


def autocast(module: nn.Module, dtype: torch.dtype | None):
    """Mixed precision for ``module``'s device (master weights stay in their dtype)."""
    device = next(module.parameters()).device.type
    return torch.autocast(device_type=device, dtype=dtype or torch.float32, enabled=dtype is not None)


def _trimmed(attention_mask: Tensor, prompt_len: int, bucket: int = 16) -> int:
    """Completion columns to compute: up to the longest completion in the batch, rounded up
    to a multiple of ``bucket``. Rounding keeps the set of tensor shapes small, because
    CPU (oneDNN) and GPU kernels are tuned per shape: a new width every step cost ~1.8x
    the update time of a repeated one on this machine."""
    width = attention_mask.shape[1] - prompt_len
    lengths = attention_mask[:, prompt_len:].sum(dim=1)
    longest = int(lengths.max()) if lengths.numel() else 0
    return min(width, -(-longest // bucket) * bucket)


def _pad_to(x: Tensor, width: int) -> Tensor:
    return x if x.shape[1] == width else torch.nn.functional.pad(x, (0, width - x.shape[1]))


class Policy(nn.Module):
    """Wraps a causal LM; returns log-probs (and entropies) of completion tokens.

    Args:
        model: a ``transformers`` causal LM (or a ``peft`` model around one).
        temperature: logits are divided by it before the softmax, so the
            log-probs are those of the distribution the sampler drew from
            (keep it equal to the sampling temperature).
        micro_batch_size: rows per forward pass in :meth:`logprobs` (no-grad).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        temperature: float = 1.0,
        micro_batch_size: int = 8,
        autocast: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.model = model
        self.temperature = float(temperature)
        self.micro_batch_size = int(micro_batch_size)
        self.autocast = autocast

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        prompt_len: int,
        *,
        with_entropy: bool = False,
        entropy_grad: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """``(logp [N, T], entropy [N, T] or None)`` for the completion tokens.

        Only the last ``T + 1`` positions go through the LM head (``logits_to_keep``):
        the prompt's logits are never needed. The entropy is a metric computed
        without a graph unless ``entropy_grad`` (an entropy bonus) asks for one.
        Hidden cost: the ``[N, T, vocab]`` logits are materialised in float32
        (about 75 MB for 8 x 48 tokens x 49k vocab); micro-batch to bound it.
        """
        full_width = input_ids.shape[1] - prompt_len
        n_completion = _trimmed(attention_mask, prompt_len)  # columns past every completion's end are skipped
        input_ids, attention_mask = (
            input_ids[:, : prompt_len + n_completion],
            attention_mask[:, : prompt_len + n_completion],
        )
        with autocast(self.model, self.autocast):
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids(attention_mask),
                logits_to_keep=n_completion + 1,
            )
        logits = out.logits[:, -(n_completion + 1) : -1].float() / self.temperature  # [N, T, V]
        targets = input_ids[:, prompt_len:]  # [N, T]
        log_z = torch.logsumexp(logits, dim=-1)  # [N, T]
        logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z
        entropy = None
        if with_entropy:
            with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
                source, z = (logits, log_z) if entropy_grad else (logits.detach(), log_z.detach())
                entropy = _pad_to(z - (torch.softmax(source, dim=-1) * source).sum(-1), full_width)
        return _pad_to(logp, full_width), entropy

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

    def __init__(
        self, causal_lm: nn.Module, autocast: torch.dtype | None = None, head: nn.Linear | None = None
    ) -> None:
        super().__init__()
        self.autocast = autocast
        self.trunk = getattr(causal_lm, "base_model", causal_lm)
        hidden = causal_lm.config.hidden_size
        self.head = nn.Linear(hidden, 1) if head is None else head
        if head is None:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    @classmethod
    def from_reward_model(
        cls, reward_model: nn.Module, autocast: torch.dtype | None = None, mean: float = 0.0, std: float = 1.0
    ) -> Critic:
        """A critic whose trunk and head start as a copy of a reward model's (ref 002,
        InstructGPT: "the value function is initialized from the RM"), so its first
        values are the RM's score of each prefix instead of 0. The RM is not changed.

        ``mean`` and ``std``: when the policy is rewarded with the RM's score
        normalised as ``(score - mean) / std`` (the ``reward-model`` verifier's
        ``normalize``), pass the same statistics so that the critic's values are on
        the reward's scale; the head is rescaled to ``(head(h) - mean) / std``.
        Without this the values are in raw RM units, and GAE's ``V(s_{t+1}) - V(s_t)``
        terms, many times larger than the normalised reward, drown it.
        """
        import copy

        if std <= 0:
            raise ValueError(f"std must be > 0, got {std}")
        head = copy.deepcopy(reward_model.head)
        with torch.no_grad():
            head.weight.div_(std)
            head.bias.sub_(mean).div_(std)
        return cls(copy.deepcopy(reward_model.trunk), autocast, head=head)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, prompt_len: int) -> Tensor:
        full_width = input_ids.shape[1] - prompt_len
        width = prompt_len + _trimmed(attention_mask, prompt_len)
        input_ids, attention_mask = input_ids[:, :width], attention_mask[:, :width]
        with autocast(self.trunk, self.autocast):
            out = self.trunk(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask)
            )
        hidden = out.last_hidden_state[:, prompt_len - 1 : -1]  # [N, T, H]
        return _pad_to(self.head(hidden.to(self.head.weight.dtype)).squeeze(-1), full_width)  # [N, T]

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
