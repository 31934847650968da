"""Per-token log-probabilities of completions under a Hugging Face causal LM; LoRA and the reference.

The token layout is :mod:`rlvr.tokens`'. The logits at position ``i`` predict
token ``i + 1``, so completion token ``t`` is scored by the logits at ``P - 1 + t``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlvr.precision import autocast
from rlvr.prefix import MIN_SHARED_HEAD, forward_completions, prompt_runs, shared_head
from rlvr.token_logprobs import token_logprobs
from rlvr.tokens import pad_to, position_ids, trimmed_width

__all__ = ["Policy", "add_lora", "disable_dropout", "is_peft_model", "reference_logprobs"]


def disable_dropout(model: nn.Module) -> int:
    """Set every dropout rate in ``model`` to 0, for good; returns how many were above 0.

    Covers ``nn.Dropout`` modules (their ``p``; LoRA's dropout is one) and the float
    rates that attention and other modules read at call time (attributes named
    ``*dropout``, such as Llama's ``attention_dropout``). The rates are changed
    rather than the modules' ``training`` flags, so a later ``model.train()`` does
    not turn dropout back on, and what gradient checkpointing recomputes in the
    backward pass is what the forward pass computed.
    """
    changed = 0
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            changed += module.p > 0
            module.p = 0.0
            continue
        for name, value in list(vars(module).items()):
            if name.lower().endswith("dropout") and isinstance(value, float) and value > 0:
                setattr(module, name, 0.0)
                changed += 1
    return changed


class Policy(nn.Module):
    """Wraps a causal LM; returns log-probs (and entropies) of completion tokens.

    Args:
        model: a ``transformers`` causal LM (or a ``peft`` model around one).
        temperature: logits are divided by it before the softmax, so the
            log-probs are those of the distribution the sampler drew from
            (keep it equal to the sampling temperature).
        micro_batch_size: rows per forward pass in :meth:`logprobs` (no-grad).
        autocast: the dtype to autocast the forward pass to (None: none).
        share_prompts: run each prompt once for the consecutive rows that repeat
            it, and the head all prompts share once, reusing their key/value
            cache (:mod:`rlvr.prefix`); the log-probs equal the full pass's up to
            summation order. False: one plain pass.

    Dropout is turned off in ``model`` (:func:`disable_dropout`), on wrapping and
    again before every forward pass (adapters may be added later): with dropout,
    ``pi_old`` and the gradient pass would be two different random functions and
    the importance ratio would differ from 1 on the very first pass, whatever mode
    the trainer leaves the model in.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        temperature: float = 1.0,
        micro_batch_size: int = 8,
        autocast: torch.dtype | None = None,
        share_prompts: bool = True,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.model = model
        disable_dropout(model)
        self.temperature = float(temperature)
        self.micro_batch_size = int(micro_batch_size)
        self.autocast = autocast
        self.share_prompts = share_prompts

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
        the prompt's logits are never needed. Log-probs and entropies come from
        :func:`rlvr.token_logprobs.token_logprobs`, a few rows at a time; the
        entropy is a metric without a graph unless ``entropy_grad`` (an entropy
        bonus) asks for one, which takes the whole-tensor path. Hidden cost: the
        ``[N, T, vocab]`` logits are materialised in the autocast dtype (about 38
        MB in bf16 for 8 x 48 tokens x 49k vocab), and in float32 on the
        entropy-bonus path; micro-batch to bound them.
        """
        disable_dropout(self.model)  # cheap, and catches modules added since (LoRA adapters)
        full_width = input_ids.shape[1] - prompt_len
        n_completion = trimmed_width(attention_mask, prompt_len)  # columns past every completion's end are skipped
        input_ids, attention_mask = (
            input_ids[:, : prompt_len + n_completion],
            attention_mask[:, : prompt_len + n_completion],
        )
        with autocast(self.model, self.autocast):
            if self._share_prompts(input_ids[:, :prompt_len], attention_mask[:, :prompt_len], n_completion):
                logits = forward_completions(
                    self.model,
                    input_ids[:, :prompt_len],
                    attention_mask[:, :prompt_len],
                    input_ids[:, prompt_len:],
                    attention_mask[:, prompt_len:],
                )  # [N, T, V]
            else:
                logits = self.model(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    position_ids=position_ids(attention_mask),
                    logits_to_keep=n_completion + 1,
                ).logits[:, -(n_completion + 1) : -1]  # [N, T, V]
        targets = input_ids[:, prompt_len:]  # [N, T]
        if not (with_entropy and entropy_grad and torch.is_grad_enabled()):
            logp, entropy = token_logprobs(logits, targets, self.temperature, with_entropy)  # [N, T] each
            return pad_to(logp, full_width), None if entropy is None else pad_to(entropy, full_width)
        # An entropy bonus: the whole-tensor path, whose entropy carries a gradient.
        logits = logits.float() / self.temperature  # [N, T, V]
        log_z = torch.logsumexp(logits, dim=-1)  # [N, T]
        logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z
        entropy = log_z - (torch.softmax(logits, dim=-1) * logits).sum(-1)  # [N, T]
        return pad_to(logp, full_width), pad_to(entropy, full_width)

    def _share_prompts(self, prompt_ids: Tensor, prompt_mask: Tensor, n_completion: int) -> bool:
        """Whether to run prompts through :mod:`rlvr.prefix`: rows repeat a prompt or share a head, and the cache is on."""
        if not self.share_prompts or n_completion < 1 or len(prompt_ids) < 2:
            return False
        if getattr(self.model, "is_gradient_checkpointing", False):
            return False  # transformers turns the cache off under gradient checkpointing
        runs = prompt_runs(prompt_ids, prompt_mask)  # [U]
        if len(runs) < len(prompt_ids):
            return True
        return shared_head(prompt_ids, prompt_mask) >= MIN_SHARED_HEAD

    @torch.no_grad()
    def logprobs(self, input_ids: Tensor, attention_mask: Tensor, prompt_len: int) -> Tensor:
        """No-grad log-probs ``[N, T]``, micro-batched (pi_old, or a reference); ``[0, T]`` for no rows."""
        if len(input_ids) == 0:
            return torch.zeros(0, input_ids.shape[1] - prompt_len, device=input_ids.device)
        chunks = [
            self(input_ids[i : i + self.micro_batch_size], attention_mask[i : i + self.micro_batch_size], prompt_len)[0]
            for i in range(0, len(input_ids), self.micro_batch_size)
        ]
        return torch.cat(chunks)


def is_peft_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``peft`` model whose adapters can be disabled (the LoRA reference)."""
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
