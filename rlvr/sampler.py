"""Token-by-token sampling over a key/value cache, each prompt prefilled once for its whole group.

This replaces ``transformers``' ``generate`` in the ``transformers`` rollout
engine for three reasons, each measured or tested:

- **The prompt is computed once per group** (:func:`rlvr.prefix.prefill`): with
  8 samples of a 98-token prompt, ``generate`` prefills 8 copies; and the head
  all prompts share (the system prompt) is computed once per batch.
- **Finished rows leave the batch**, so a long straggler does not keep paying for
  the rows that stopped early.
- **The cache has room for the completion** (:func:`reserve`): appending a
  token's keys writes into a buffer instead of copying the whole cache with
  ``torch.cat``, which took a fifth of the sampling time on a 2-core CPU.
- **Nothing is inherited.** The only processing is temperature, top-k and top-p,
  applied here in that order; no setting comes from a model's generation config.

The log-probs returned are those of the distribution each token was drawn
from (after temperature, top-k and top-p); with greedy decoding, of the
unscaled distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from rlvr.prefix import prefill
from rlvr.tokens import position_ids

__all__ = ["process_logits", "reserve", "sample_tokens"]


class _ReservedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values sit at the front of buffers with room for more.

    ``keys`` and ``values`` are views of the first ``length`` positions, so the
    model sees exactly what a ``DynamicLayer`` would hold; ``update`` writes the
    new positions in place. No-grad only: a later write changes a tensor an
    earlier attention step saved for backward.
    """

    def __init__(self, keys: Tensor, values: Tensor, room: int, repeats: int) -> None:
        super().__init__()
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self.length = keys.shape[-2]
        self._keys, self._values = _repeated(keys, repeats, room), _repeated(values, repeats, room)
        self._view()

    def _view(self) -> None:
        self.keys, self.values = self._keys[:, :, : self.length], self._values[:, :, : self.length]

    def update(
        self, key_states: Tensor, value_states: Tensor, *args: object, **kwargs: object
    ) -> tuple[Tensor, Tensor]:
        """Write the new positions after the cached ones (more room is made if it runs out)."""
        end = self.length + key_states.shape[-2]
        if end > self._keys.shape[-2]:
            extra = end - self._keys.shape[-2]
            self._keys, self._values = F.pad(self._keys, (0, 0, 0, extra)), F.pad(self._values, (0, 0, 0, extra))
        self._keys[:, :, self.length : end] = key_states
        self._values[:, :, self.length : end] = value_states
        self.length = end
        self._view()
        return self.keys, self.values

    def batch_select_indices(self, indices: Tensor) -> None:
        """Keep only the rows ``indices``."""
        self._keys, self._values = self._keys[indices], self._values[indices]
        self._view()

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Repeat every row ``repeats`` times."""
        self._keys = self._keys.repeat_interleave(repeats, dim=0)
        self._values = self._values.repeat_interleave(repeats, dim=0)
        self._view()


def _repeated(x: Tensor, repeats: int, room: int) -> Tensor:
    """``x`` ``[B, H, L, D]`` with each row repeated, in a buffer ``[B*repeats, H, L + room, D]``.

    One allocation and one broadcast copy; the room is left uninitialised, since
    the views never show it before it is written.
    """
    b, h, length, d = x.shape
    out = x.new_empty(b * repeats, h, length + room, d)
    out.view(b, repeats, h, length + room, d)[:, :, :, :length] = x[:, None]
    return out


def reserve(cache: DynamicCache, room: int, repeats: int = 1) -> DynamicCache:
    """``cache`` with each row repeated ``repeats`` times and room for ``room`` more positions in every layer.

    Appending then writes in place instead of copying the cache at every token.
    A cache whose layers are not plain ``DynamicLayer`` (sliding windows, other
    cache types) is only repeated, as ``transformers`` does it.
    """
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer or layer.keys is None for layer in layers):
        if repeats > 1:
            cache.batch_repeat_interleave(repeats)
        return cache
    cache.layers = [_ReservedLayer(layer.keys, layer.values, room, repeats) for layer in layers]
    return cache


def process_logits(logits: Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Scores ``[N, V]`` of the sampling distribution: logits / temperature, then top-k, then top-p (-inf outside)."""
    scores = logits.float() / temperature
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]  # [N, 1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
        mass_before = torch.softmax(sorted_scores, dim=-1).cumsum(-1) - torch.softmax(sorted_scores, dim=-1)
        drop = mass_before >= top_p  # the token that crosses top_p is kept, so one token always is
        scores = scores.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
    return scores


def _draw(probs: Tensor) -> Tensor:
    """One token per row ``[A]`` from ``probs`` ``[A, V]``, by inverting the cumulative distribution.

    ``torch.multinomial`` draws an exponential variate for every vocabulary entry
    (35 ms a step for 32 rows of 49k tokens on a 2-core CPU, a tenth of the
    sampling time); one uniform per row and a binary search need a cumulative sum.
    """
    cdf = probs.cumsum(dim=-1)  # [A, V]
    u = torch.rand(probs.shape[0], 1, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    chosen = torch.searchsorted(cdf, u, right=True).squeeze(1)
    # Rounding can put u at the very top; the last token with mass is the answer then.
    last = probs.shape[1] - 1 - (probs > 0).flip(-1).int().argmax(-1)
    return torch.minimum(chosen, last)


@torch.no_grad()
def sample_tokens(
    model: nn.Module,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    *,
    n: int,
    max_new_tokens: int,
    eos_ids: Sequence[int],
    pad_id: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
    stopped: Callable[[list[int]], bool] | None = None,
) -> tuple[Tensor, Tensor]:
    """Sample ``n`` completions per prompt: ``(tokens [B*n, T], logprobs [B*n, T])``, rows grouped by prompt.

    A row finishes after an EOS token or when ``stopped`` (given its tokens so far)
    says so; its later columns hold ``pad_id`` and log-prob 0. T is the longest
    row, at most ``max_new_tokens``. Random draws come from torch's global RNG.

    Args:
        model: a ``transformers`` causal LM in eval mode.
        prompt_ids: ``[B, P]``, left-padded.
        prompt_mask: ``[B, P]``, 1 on real tokens.
        n: samples per prompt.
        max_new_tokens: the length limit.
        eos_ids: tokens that end a row (kept in it).
        pad_id: what fills a row after it ends.
        temperature: divides the logits (:func:`process_logits`).
        top_k: keep the k most likely tokens (0: all).
        top_p: keep the smallest set of tokens holding this much probability (1: all).
        greedy: take the most likely token instead of sampling.
        stopped: called with a row's tokens after each new token; True ends the row
            (for stop strings). None: only EOS and the limit end rows.
    """
    device = prompt_ids.device
    rows = prompt_ids.shape[0] * n
    once = torch.ones(prompt_ids.shape[0], dtype=torch.long, device=device)
    cache, logits, mask = prefill(model, prompt_ids, prompt_mask, once)  # [B, V], [B, K]
    cache = reserve(cache, max_new_tokens - 1, repeats=n)  # N rows; the last token is never fed back
    logits, mask = logits.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)  # [N, V], [N, K] (K grows)
    next_pos = position_ids(mask)[:, -1:] + 1  # [N, 1]
    eos = torch.tensor(list(eos_ids), device=device)
    tokens = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(rows, max_new_tokens, device=device)
    active = torch.arange(rows, device=device)  # rows still generating, in cache order
    steps = 0
    for t in range(max_new_tokens):
        if greedy:
            log_dist = torch.log_softmax(logits.float(), dim=-1)  # [A, V]
            chosen = log_dist.argmax(dim=-1)
        else:
            log_dist = torch.log_softmax(process_logits(logits, temperature, top_k, top_p), dim=-1)
            chosen = _draw(log_dist.exp())  # [A]
        tokens[active, t] = chosen
        logprobs[active, t] = log_dist.gather(-1, chosen[:, None]).squeeze(1)
        steps = t + 1
        done = torch.isin(chosen, eos)  # [A]
        if stopped is not None:
            done |= torch.tensor([stopped(tokens[i, : t + 1].tolist()) for i in active.tolist()], device=device)
        if t + 1 == max_new_tokens or bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)  # [A']
            cache.batch_select_indices(keep)
            active, chosen, mask, next_pos = active[keep], chosen[keep], mask[keep], next_pos[keep]
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        logits = model(
            input_ids=chosen[:, None], attention_mask=mask, position_ids=next_pos, past_key_values=cache, use_cache=True
        ).logits[:, -1]
        next_pos = next_pos + 1
    return tokens[:, :steps], logprobs[:, :steps]
