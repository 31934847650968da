"""Adapter-mode weight sync on a saved tiny model, in a process of its own.

    python tests/vllm_engine/adapter_sync_check.py MODEL_FOLDER

vLLM keeps one compiled engine per process, so ``test_vllm_engine.py`` runs this
as a subprocess next to its module engine. Prints one JSON line of measurements;
exits non-zero on a failed check.
"""

import json
import os
import sys

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer, LlamaForCausalLM  # noqa: E402

from rlvr.agents.mismatch import mismatch_stats  # noqa: E402
from rlvr.policy import Policy, add_lora  # noqa: E402
from rlvr.rollout import SamplingParams  # noqa: E402
from rlvr.vllm_engine import VLLMEngine  # noqa: E402


def gap(model, rollouts) -> float:
    """Mean absolute gap between the trainer's and the sampler's log-probs of the sampled tokens."""
    old = Policy(model).logprobs(rollouts.input_ids, rollouts.attention_mask, rollouts.prompt_len)
    return mismatch_stats(old, rollouts.sampler_logprobs, rollouts.completion_mask)["mismatch/logp_abs_diff"]


def perturb_adapters(model, std: float) -> None:
    """Give every adapter a non-zero B (peft starts B at zero: the adapter would be a no-op)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(std=std)


def main(folder: str) -> dict:
    """Run the checks; returns the measured gaps."""
    tok = AutoTokenizer.from_pretrained(folder)
    base = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)
    engine = VLLMEngine(
        folder, tok, chat_template=False, dtype="float32", max_model_len=128, kv_cache_gib=0.25,
        lora_sync="adapter", max_lora_rank=8,
    )  # fmt: skip
    params = SamplingParams(n=8, max_new_tokens=8, seed=0)
    prompts = ["abc", "de"]
    before = engine.generate(prompts, params)
    out = {"base_gap": gap(base, before)}
    assert out["base_gap"] < 1e-4, "before any sync vLLM serves the base model"

    with pytest.raises(ValueError, match="peft LoRA model"):
        engine.sync_weights(base)
    lora = add_lora(base, r=4, alpha=8)
    perturb_adapters(lora, 0.2)
    out["lora_gap_before_sync"] = gap(lora, before)
    assert out["lora_gap_before_sync"] > 1e-2, "the adapters change the policy"
    engine.sync_weights(lora)
    first = engine.generate(prompts, params)
    out["lora_gap"] = gap(lora, first)
    assert out["lora_gap"] < 1e-4, "after an adapter sync vLLM samples from the trainer's LoRA policy"
    assert first.texts != before.texts

    perturb_adapters(lora, 0.2)  # new adapters, same shapes: the next sync must not serve the cached ones
    assert gap(lora, first) > 1e-2
    engine.sync_weights(lora)
    second = engine.generate(prompts, params)
    out["lora_gap_second_sync"] = gap(lora, second)
    assert out["lora_gap_second_sync"] < 1e-4, "the second sync serves the new adapters, not the cached first"
    assert second.texts != first.texts, "the samples change when the adapters change"
    out["loaded_adapters"] = sorted(engine.llm.llm_engine.list_loras())
    assert out["loaded_adapters"] == [2], "older adapter versions are removed from vLLM"

    wide = add_lora(LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32), r=16, alpha=16)
    with pytest.raises(ValueError, match="max_lora_rank=8"):
        engine.sync_weights(wide)
    out["last_sync_s"] = engine.last_sync_s
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
