"""Rollout engines: G sampled completions per prompt, with the sampler's log-probs.

The protocol is what the trainer needs from any engine (``transformers`` here,
vLLM in :mod:`rlvr.vllm_engine`): :meth:`RolloutEngine.generate` and :meth:`RolloutEngine.sync_weights`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from rlvr.precision import autocast
from rlvr.sampler import sample_tokens
from rlvr.tokens import encode_prompts, render_prompt

__all__ = ["RolloutEngine", "Rollouts", "SamplingParams", "TransformersEngine", "derive_seed"]


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from a tuple of integers, e.g. ``(run seed, step)`` or ``(seed, prompt, sample)``.

    Hashed (numpy's ``SeedSequence``), so no two tuples share a stream the way
    ``seed * K + step + row`` lets row ``r + 1`` at step ``s`` reuse row ``r``'s
    seed at step ``s + 1``.

    Raises:
        ValueError: a negative part.
    """
    if any(int(p) < 0 for p in parts):
        raise ValueError(f"seed parts must be >= 0, got {parts}")
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class SamplingParams:
    """How completions are sampled.

    Attributes:
        n: completions per prompt (the group size G).
        temperature: > 0; the policy's log-probs use the same value.
        top_p: nucleus mass; keep 1.0 for RL, since truncation makes the sampled
            distribution differ from the policy the loss differentiates.
        top_k: 0 disables it (``transformers`` would otherwise apply 50).
        max_new_tokens: the length limit; a completion that reaches it finishes
            with reason ``"length"``.
        stop: strings that end a completion (kept in the tokens, cut from the text).
        seed: makes sampling reproducible; ``None`` draws from torch's global RNG.
        greedy: take the most likely token each step (evaluation); temperature,
            top-p and top-k are then ignored and the log-probs are those of the
            unscaled distribution.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    seed: int | None = None
    greedy: bool = False

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1:
            raise ValueError("n and max_new_tokens must be >= 1")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0 (use a tiny value, not 0, for near-greedy sampling)")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")


@dataclass
class Rollouts:
    """N = B x G completions, grouped by prompt (rows ``b*G .. b*G+G-1`` share prompt ``b``).

    Attributes:
        prompt_ids, prompt_mask: ``[N, P]``, left-padded.
        completion_ids: ``[N, T]``, right-padded; ``completion_mask`` ``[N, T]`` is 1 on
            the tokens that were generated before the completion finished (an
            EOS token counts; padding after a stop does not).
        sampler_logprobs: ``[N, T]`` log-probs of the sampled tokens under the
            sampling distribution (0 where masked).
        texts: the decoded completions (special tokens dropped, cut after a stop string).
        finish_reasons: ``"stop"`` (EOS or a stop string) or ``"length"``.
        group: ``[N]`` prompt index of each row.
    """

    prompt_ids: Tensor
    prompt_mask: Tensor
    completion_ids: Tensor
    completion_mask: Tensor
    sampler_logprobs: Tensor
    texts: list[str]
    finish_reasons: list[str]
    group: Tensor

    @property
    def input_ids(self) -> Tensor:
        """``[N, P + T]``: prompt and completion."""
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> Tensor:
        """``[N, P + T]``: 1 on real tokens."""
        return torch.cat([self.prompt_mask, self.completion_mask], dim=1)

    @property
    def prompt_len(self) -> int:
        """P, the padded prompt width."""
        return self.prompt_ids.shape[1]

    @property
    def group_size(self) -> int:
        """G, completions per prompt."""
        prompts = int(self.group[-1]) + 1 if len(self.group) else 1
        return len(self.texts) // prompts

    def groups(self) -> list[list[str]]:
        """The completion texts as ``[B][G]``: ``groups()[b]`` are prompt ``b``'s samples."""
        g = self.group_size
        return [self.texts[i : i + g] for i in range(0, len(self.texts), g)]


class RolloutEngine(Protocol):
    """What the trainer needs from a rollout engine: sampling, and weight sync after each update."""

    def generate(self, prompts: Sequence[Any], params: SamplingParams) -> Rollouts:
        """Sample ``params.n`` completions for each prompt (a string or a list of chat messages)."""
        ...

    def sync_weights(self, model: nn.Module) -> None:
        """Make the engine sample from ``model``'s current weights."""


class TransformersEngine:
    """Sampling from a ``transformers`` model itself, each prompt prefilled once per group (:mod:`rlvr.sampler`).

    The engine holds the very model the trainer updates, so :meth:`sync_weights`
    has nothing to copy (it checks that it is given that model).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        chat_template: bool = True,
        max_prompt_tokens: int = 1024,
        autocast: torch.dtype | None = None,
    ) -> None:
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token = tokenizer.eos_token")
        self.model, self.tokenizer = model, tokenizer
        self.autocast = autocast
        self.chat_template = chat_template
        self.max_prompt_tokens = max_prompt_tokens

    def sync_weights(self, model: nn.Module) -> None:
        """Check that ``model`` is the engine's own: it samples from the live weights, so nothing is copied.

        Raises:
            ValueError: ``model`` is another model.
        """
        if model is not self.model:
            raise ValueError("TransformersEngine samples from the model it was built with; pass that model")

    @torch.no_grad()
    def generate(self, prompts: Sequence[Any], params: SamplingParams) -> Rollouts:
        """Sample ``params.n`` completions per prompt (:func:`rlvr.sampler.sample_tokens`).

        Prompts are rendered (with the chat template when enabled) and left-padded.
        The sampler log-probs come from the processed scores (after temperature,
        top-k and top-p), the distribution the tokens were drawn from.

        Args:
            prompts: B prompts, each a string or a list of chat messages.
            params: how to sample.

        Returns:
            :class:`Rollouts` with N = B x G rows, on the model's device.

        Raises:
            ValueError: a rendered prompt is longer than ``max_prompt_tokens``.
        """
        tok = self.tokenizer
        texts = [render_prompt(tok, p, self.chat_template) for p in prompts]
        prompt_ids, prompt_mask = encode_prompts(tok, texts)  # [B, P], left-padded
        if prompt_ids.shape[1] > self.max_prompt_tokens:
            raise ValueError(f"a prompt has {prompt_ids.shape[1]} tokens > max_prompt_tokens={self.max_prompt_tokens}")
        device = next(self.model.parameters()).device
        eos_ids = tok.eos_token_id if isinstance(tok.eos_token_id, list) else [tok.eos_token_id]
        stopped = None
        if params.stop:

            def stopped(row: list[int]) -> bool:
                text = tok.decode(row, skip_special_tokens=True)
                return any(s in text for s in params.stop)

        was_training = self.model.training
        self.model.eval()
        try:
            # A seeded call leaves the global RNG as it found it; an unseeded one draws from it.
            seeded = torch.random.fork_rng(devices=[]) if params.seed is not None else contextlib.nullcontext()
            with seeded, autocast(self.model, self.autocast):
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                completion_ids, logprobs = sample_tokens(
                    self.model,
                    prompt_ids.to(device),
                    prompt_mask.to(device),
                    n=params.n,
                    max_new_tokens=params.max_new_tokens,
                    eos_ids=eos_ids,
                    pad_id=tok.pad_token_id,
                    temperature=params.temperature,
                    top_k=params.top_k,
                    top_p=params.top_p,
                    greedy=params.greedy,
                    stopped=stopped,
                )  # [N, T]
        finally:
            self.model.train(was_training)

        lengths, reasons, decoded = self._finish(completion_ids, params)
        mask = (torch.arange(completion_ids.shape[1], device=device)[None, :] < lengths[:, None]).long()
        completion_ids = torch.where(mask.bool(), completion_ids, torch.full_like(completion_ids, tok.pad_token_id))
        n = params.n
        return Rollouts(
            prompt_ids=prompt_ids.repeat_interleave(n, dim=0).to(device),
            prompt_mask=prompt_mask.repeat_interleave(n, dim=0).to(device),
            completion_ids=completion_ids,
            completion_mask=mask,
            sampler_logprobs=torch.where(mask.bool(), logprobs, torch.zeros_like(logprobs)),
            texts=decoded,
            finish_reasons=reasons,
            group=torch.arange(len(prompts), device=device).repeat_interleave(n),
        )

    def _finish(self, completion_ids: Tensor, params: SamplingParams) -> tuple[Tensor, list[str], list[str]]:
        """Where each completion ends, with its finish reason and its text.

        A completion ends after its first EOS, or at the token that completed a stop
        string, or at the length limit. (The first pad token is no guide: a pad
        token can be sampled like any other.)
        """
        tok = self.tokenizer
        eos_ids = tok.eos_token_id if isinstance(tok.eos_token_id, list) else [tok.eos_token_id]
        lengths, reasons, texts = [], [], []
        for row in completion_ids.tolist():
            end = next((i + 1 for i, t in enumerate(row) if t in eos_ids), None)
            reason = "stop" if end is not None else "length"
            end = end if end is not None else len(row)
            text = tok.decode(row[:end], skip_special_tokens=True)
            hits = [(text.find(s), s) for s in params.stop if s in text]
            if hits:
                cut, stop = min(hits)
                end = next(k for k in range(1, end + 1) if stop in tok.decode(row[:k], skip_special_tokens=True))
                text, reason = text[:cut], "stop"
            lengths.append(end)
            reasons.append(reason)
            texts.append(text)
        return torch.tensor(lengths, device=completion_ids.device), reasons, texts
