"""The prompt computed once per group: a shared prefix for sampling and for the policy's forward pass.

GRPO-style batches repeat every prompt G times, and on a CPU the prompt is most
of each row (about 98 of 114 tokens in the default main job). Running the
prompt once and repeating its key/value cache along the batch makes both the
sampler's prefill and the trainer's forward and backward pass pay for each
prompt once instead of G times. Gradients flow through the repeated cache into
the one prompt pass, so the result equals the full pass up to floating-point
summation order (``tests/test_prefix.py`` checks values and gradients).

Distinct prompts often share a head too: the chat template's header and the
system prompt (with worked examples, about 100 of the main job's 121 prompt
tokens). :func:`prefill` runs that common head once for all of them, then each
prompt's own tail against the repeated head cache, so an evaluation of 100
prompts or a step of 4 groups pays for the system prompt once. The cache then
holds ``[head | left padding | tail]`` instead of ``[left padding | prompt]``;
positions are counted over real tokens either way, so every token sees the same
keys at the same positions as in a full pass, and the attention mask returned
with the cache says which columns are real.

Limits: the model must take ``past_key_values`` and ``use_cache`` the way
``transformers``' decoder-only models do (a ``DynamicCache`` with
``batch_select_indices``). Gradient checkpointing turns the cache off in
``transformers``, so the shared path is not used with it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlvr.tokens import position_ids

__all__ = ["MIN_SHARED_HEAD", "forward_completions", "prefill", "prompt_runs", "shared_head"]

# A head shorter than this is not worth a pass of its own (one more call through every layer).
MIN_SHARED_HEAD = 16


def prompt_runs(prompt_ids: Tensor, prompt_mask: Tensor) -> Tensor:
    """Lengths of the runs of consecutive identical prompt rows: ``[U]``, summing to N.

    Only consecutive rows are merged (rollouts keep a group's rows together), so
    the row order never changes.
    """
    n = prompt_ids.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=prompt_ids.device)
    same = (prompt_ids[1:] == prompt_ids[:-1]).all(dim=1) & (prompt_mask[1:] == prompt_mask[:-1]).all(dim=1)  # [N-1]
    starts = torch.cat([torch.ones(1, dtype=torch.bool, device=same.device), ~same]).nonzero().squeeze(1)  # [U]
    return torch.diff(torch.cat([starts, torch.tensor([n], device=starts.device)]))


def shared_head(prompt_ids: Tensor, prompt_mask: Tensor) -> int:
    """How many leading real tokens every prompt shares, leaving each at least one of its own.

    0 unless there are two or more prompts, each left-padded (its mask is zeros
    then ones) and non-empty.
    """
    u, p = prompt_ids.shape
    if u < 2:
        return 0
    lengths = prompt_mask.long().sum(1)  # [U]
    shortest = int(lengths.min())
    if shortest < 2 or not bool(
        (prompt_mask.bool() == (torch.arange(p, device=lengths.device) >= p - lengths[:, None])).all()
    ):
        return 0
    columns = (p - lengths)[:, None] + torch.arange(shortest - 1, device=lengths.device)  # [U, shortest-1]
    starts = prompt_ids.gather(1, columns)  # [U, shortest-1] each prompt's first real tokens
    same = (starts == starts[:1]).all(0)  # [shortest-1]
    return int(same.long().cumprod(0).sum())


def prefill(
    model: nn.Module, prompt_ids: Tensor, prompt_mask: Tensor, repeats: Tensor
) -> tuple[object, Tensor, Tensor]:
    """Run U distinct prompts once, their common head once; return the cache repeated to N rows.

    Returns ``(cache, logits [N, V], mask [N, K])``: the last position's logits, and
    the attention mask of the K cached columns (``prompt_mask`` repeated, or
    ``[ones(head) | tail mask]`` when a head of ``MIN_SHARED_HEAD`` tokens or more
    was run once). Later tokens must be fed with this mask, extended.

    Args:
        model: a ``transformers`` causal LM (or a ``peft`` model around one).
        prompt_ids: ``[U, P]``, left-padded.
        prompt_mask: ``[U, P]``, 1 on real tokens.
        repeats: ``[U]`` rows each prompt becomes.
    """
    head = shared_head(prompt_ids, prompt_mask)
    if head < MIN_SHARED_HEAD:
        out = model(
            input_ids=prompt_ids,
            attention_mask=prompt_mask,
            position_ids=position_ids(prompt_mask),
            use_cache=True,
            logits_to_keep=1,
        )
        mask = prompt_mask
    else:
        u, p = prompt_ids.shape
        lengths = prompt_mask.long().sum(1)  # [U]
        first = p - int(lengths[0])
        cache = model(input_ids=prompt_ids[:1, first : first + head], use_cache=True, logits_to_keep=1).past_key_values
        cache.batch_repeat_interleave(u)
        width = int(lengths.max()) - head  # the longest tail
        tail_mask = (torch.arange(width, device=lengths.device) >= width - (lengths[:, None] - head)).long()  # [U, W]
        mask = torch.cat([torch.ones(u, head, dtype=tail_mask.dtype, device=tail_mask.device), tail_mask], 1)
        # A tail's left columns hold its head's last tokens or padding, masked out either way.
        out = model(
            input_ids=prompt_ids[:, p - width :],
            attention_mask=mask,
            position_ids=position_ids(mask)[:, head:],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
    cache = out.past_key_values
    index = torch.repeat_interleave(torch.arange(len(repeats), device=prompt_ids.device), repeats)  # [N]
    if bool((repeats != 1).any()):
        cache.batch_select_indices(index)
    return cache, out.logits[:, -1][index], mask[index]


def forward_completions(
    model: nn.Module, prompt_ids: Tensor, prompt_mask: Tensor, completion_ids: Tensor, completion_mask: Tensor
) -> Tensor:
    """Logits ``[N, T, V]`` that score each completion token, with each distinct prompt run once.

    Row ``i``'s logits at ``t`` predict ``completion_ids[i, t]`` (the logits of
    the position before it), exactly as a full forward pass over prompt and
    completion would give them.

    Args:
        model: a ``transformers`` causal LM.
        prompt_ids: ``[N, P]``, left-padded; consecutive equal rows (with equal masks) are computed once.
        prompt_mask: ``[N, P]``, 1 on real tokens.
        completion_ids: ``[N, T]``, right-padded, T >= 1.
        completion_mask: ``[N, T]``, 1 on real tokens.
    """
    runs = prompt_runs(prompt_ids, prompt_mask)  # [U]
    firsts = torch.cumsum(runs, 0) - runs  # [U] the first row of each run
    cache, first_logits, cached_mask = prefill(model, prompt_ids[firsts], prompt_mask[firsts], runs)  # [N, V], [N, K]
    t = completion_ids.shape[1]
    if t == 1:
        return first_logits[:, None]
    # The last completion token predicts nothing we score, so it is not fed.
    mask = torch.cat([cached_mask, completion_mask[:, : t - 1]], dim=1)  # [N, K + T - 1]
    out = model(
        input_ids=completion_ids[:, : t - 1],
        attention_mask=mask,
        position_ids=position_ids(mask)[:, cached_mask.shape[1] :],
        past_key_values=cache,
        use_cache=True,
    )
    return torch.cat([first_logits[:, None], out.logits], dim=1)  # [N, T, V]
