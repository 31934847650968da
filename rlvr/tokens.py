"""The token layout every model-side module shares, in one place.

A batch of N completions is laid out as::

    input_ids      [N, P + T] = prompt (left-padded to P) + completion (right-padded to T)
    attention_mask [N, P + T]   1 on real tokens
    completion_mask [N, T]      1 on the completion tokens that count

Left-padded prompts let every completion start at column ``P``, so the logits
at ``P - 1 + t`` score completion token ``t`` for every row. Position ids come
from the attention mask (:func:`position_ids`), so left padding does not shift
positions away from what generation saw.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "default_system_prompt",
    "encode_completions",
    "encode_prompts",
    "encode_texts",
    "pad_to",
    "position_ids",
    "render_prompt",
    "trimmed_width",
]


def render_prompt(tokenizer: Any, prompt: str | Sequence[dict[str, str]], chat_template: bool = True) -> str:
    """The text the model sees for ``prompt``.

    The chat template is applied when the tokenizer has one (a plain-text prompt
    becomes one user message, and the generation prompt is appended); otherwise
    the prompt is used as it is.

    Raises:
        ValueError: a chat prompt (a list of messages) without a chat template.
    """
    if chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if not isinstance(prompt, str):
        raise ValueError("chat prompts need a tokenizer with a chat template")
    return prompt


def default_system_prompt(tokenizer: Any, text: str) -> None:
    """Make ``text`` the system message of every conversation that does not bring its own.

    The tokenizer's chat template is wrapped, not rewritten, so this works for any
    template that reads ``messages``; the change travels with the tokenizer when it
    is saved (a checkpoint renders prompts as its training run did). SmolLM2's
    template, for one, inserts a 20-token default system prompt into every
    sequence; ``text=""`` replaces it with an empty system turn.

    Raises:
        ValueError: the tokenizer has no chat template.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise ValueError("the tokenizer has no chat template to give a system prompt to")
    if not isinstance(template, str):
        raise ValueError("the tokenizer has several named chat templates; set the system prompt in the prompts")
    literal = text.replace("\\", "\\\\").replace("'", "\\'")
    prefix = (
        "{%- if messages and messages[0]['role'] != 'system' -%}"
        f"{{%- set messages = [{{'role': 'system', 'content': '{literal}'}}] + messages -%}}"
        "{%- endif -%}"
    )
    tokenizer.chat_template = prefix + template


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions counted over real tokens only: ``[N, L]``, 0 on and before the first one."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@contextlib.contextmanager
def _sides(tokenizer: Any, padding: str, truncation: str) -> Iterator[None]:
    """Set the tokenizer's padding and truncation sides for one call, then restore them."""
    saved = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side, tokenizer.truncation_side = padding, truncation
    try:
        yield
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = saved


def encode_prompts(tokenizer: Any, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Rendered prompts as ``(input_ids, attention_mask)`` ``[B, P]``, left-padded, never cut."""
    with _sides(tokenizer, "left", "left"):
        enc = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    return enc.input_ids, enc.attention_mask


def encode_completions(
    tokenizer: Any,
    prompts: Sequence[Any],
    completions: Sequence[str],
    *,
    chat_template: bool = True,
    max_prompt_tokens: int = 512,
    max_completion_tokens: int = 256,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor, int, Tensor]:
    """Prompts and given completions in the rollout layout, for teacher-forced log-probs.

    Used by DPO and supervised fine-tuning. The prompt is left-padded and cut from
    the left beyond ``max_prompt_tokens``; ``completion + EOS`` is right-padded and
    cut from the right beyond ``max_completion_tokens``.

    Returns:
        ``input_ids`` and ``attention_mask`` ``[N, P + T]``, ``prompt_len`` P and
        ``completion_mask`` ``[N, T]``.
    """
    rendered = [render_prompt(tokenizer, p, chat_template) for p in prompts]
    texts = [c + (tokenizer.eos_token or "") for c in completions]
    kwargs: dict[str, Any] = {"return_tensors": "pt", "padding": True, "truncation": True, "add_special_tokens": False}
    with _sides(tokenizer, "left", "left"):
        p_enc = tokenizer(rendered, max_length=max_prompt_tokens, **kwargs)
    with _sides(tokenizer, "right", "right"):
        c_enc = tokenizer(texts, max_length=max_completion_tokens, **kwargs)
    input_ids = torch.cat([p_enc.input_ids, c_enc.input_ids], dim=1).to(device)
    attention_mask = torch.cat([p_enc.attention_mask, c_enc.attention_mask], dim=1).to(device)
    return input_ids, attention_mask, p_enc.input_ids.shape[1], c_enc.attention_mask.to(device)


def encode_texts(
    tokenizer: Any,
    prompts: Sequence[Any],
    completions: Sequence[str],
    *,
    chat_template: bool = True,
    max_length: int = 512,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Whole sequences ``render(prompt) + completion + EOS`` for a scalar read at the last token.

    Returns:
        ``(input_ids, attention_mask)`` ``[N, L]``, right-padded and cut from the left
        beyond ``max_length`` tokens (the end, where a reward model reads, is kept).
    """
    eos = tokenizer.eos_token or ""
    texts = [render_prompt(tokenizer, p, chat_template) + c + eos for p, c in zip(prompts, completions, strict=True)]
    with _sides(tokenizer, "right", "left"):
        enc = tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length, add_special_tokens=False
        )
    return enc.input_ids.to(device), enc.attention_mask.to(device)


def trimmed_width(attention_mask: Tensor, prompt_len: int, bucket: int = 16) -> int:
    """Completion columns to compute: the longest completion in the batch, rounded up to ``bucket``.

    Rounding keeps the set of tensor shapes small, because CPU (oneDNN) and GPU
    kernels are tuned per shape: a new width every step makes the update markedly
    slower than a repeated one (docs/training.md has the figures).
    """
    width = attention_mask.shape[1] - prompt_len
    lengths = attention_mask[:, prompt_len:].sum(dim=1)
    longest = int(lengths.max()) if lengths.numel() else 0
    return min(width, -(-longest // bucket) * bucket)


def pad_to(x: Tensor, width: int) -> Tensor:
    """``x`` ``[N, W]`` right-padded with zeros to ``[N, width]``."""
    return x if x.shape[1] == width else torch.nn.functional.pad(x, (0, width - x.shape[1]))
