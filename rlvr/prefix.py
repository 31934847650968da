"""The prompt computed once per group: a shared prefix for sampling and for the policy's forward pass.

GRPO-style batches repeat every prompt G times, and on a CPU the prompt is most
of each row (about 98 of 114 tokens in the default main job). Running the
prompt once and repeating its key/value cache along the batch makes both the
sampler's prefill and the trainer's forward and backward pass pay for each
prompt once instead of G times. Gradients flow through the repeated cache into
the one prompt pass, so the result equals the full pass up to floating-point
summation order (``tests/test_prefix.py`` checks values and gradients).

Limits: the model must take ``past_key_values`` and ``use_cache`` the way
``transformers``' decoder-only models do (a ``DynamicCache`` with
``batch_select_indices``). Gradient checkpointing turns the cache off in
``transformers``, so the shared path is not used with it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlvr.tokens import position_ids

__all__ = ["forward_completions", "prefill", "prompt_runs"]


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


def prefill(model: nn.Module, prompt_ids: Tensor, prompt_mask: Tensor, repeats: Tensor) -> tuple[object, Tensor]:
    """Run U distinct prompts once; return their cache repeated to N rows and the last position's logits ``[N, V]``.

    Args:
        model: a ``transformers`` causal LM (or a ``peft`` model around one).
        prompt_ids: ``[U, P]``, left-padded.
        prompt_mask: ``[U, P]``, 1 on real tokens.
        repeats: ``[U]`` rows each prompt becomes.
    """
    out = model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=position_ids(prompt_mask),
        use_cache=True,
        logits_to_keep=1,
    )
    cache = out.past_key_values
    index = torch.repeat_interleave(torch.arange(len(repeats), device=prompt_ids.device), repeats)  # [N]
    if bool((repeats != 1).any()):
        cache.batch_select_indices(index)
    return cache, out.logits[:, -1][index]


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
    cache, first_logits = prefill(model, prompt_ids[firsts], prompt_mask[firsts], runs)  # [N, V]
    t = completion_ids.shape[1]
    if t == 1:
        return first_logits[:, None]
    # The last completion token predicts nothing we score, so it is not fed.
    mask = torch.cat([prompt_mask, completion_mask[:, : t - 1]], dim=1)  # [N, P + T - 1]
    out = model(
        input_ids=completion_ids[:, : t - 1],
        attention_mask=mask,
        position_ids=position_ids(mask)[:, prompt_ids.shape[1] :],
        past_key_values=cache,
        use_cache=True,
    )
    return torch.cat([first_logits[:, None], out.logits], dim=1)  # [N, T, V]
