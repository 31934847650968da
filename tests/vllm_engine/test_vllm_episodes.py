"""Multi-turn episodes sampled by vLLM, token in and token out, on a tiny Llama in float32.

The episodes are played in a subprocess (episode_runs.py: one vLLM engine per
process), which records every request vLLM received and what it sampled; the
checks here compare those records with the episode rows the trainer would get.
"""

import os
import subprocess
import sys

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here; .ci/run's vLLM job runs these tests")

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

from rlvr.policy import Policy  # noqa: E402
from rlvr.rollout import derive_seed  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*hit the length limit")


def pair_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character, plus one per pair of the letters a to j.

    Text is tokenised character by character, so a sampled pair token decodes to
    two characters that come back as two other tokens: re-tokenising a turn's
    text changes its ids.
    """
    pairs = [a + b for a in "abcdefghij" for b in "abcdefghij"]
    words = ["<pad>", "<eos>", "<bos>", *"abcdefghijklmnopqrstuvwxyz :\n", *pairs]
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(words)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")


def tiny_llama(vocab: int) -> LlamaForCausalLM:
    """Head size 64: vLLM's CPU attention kernels support only some head sizes."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0, eos_token_id=1, bos_token_id=2,
        tie_word_embeddings=False,
    )  # fmt: skip
    return LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("episodes")
    tok = pair_tokenizer()
    model = tiny_llama(len(tok))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    script = os.path.join(os.path.dirname(__file__), "episode_runs.py")
    out_file = folder / "runs.pt"
    out = subprocess.run([sys.executable, script, str(folder), str(out_file)], capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return tok, model, torch.load(out_file, weights_only=False)


def check_turns(episodes, calls, settings, eos_id) -> None:
    """Each turn: vLLM got the row's context as token ids, and the row goes on with exactly what vLLM sampled.

    Every policy token of the episodes is one vLLM sampled (loss mask 1, its
    sampling log-prob kept as is); every other real token after the prompt is
    the environment's (loss mask 0, observation mask 1).
    """
    rows = [ids[m.bool()].tolist() for ids, m in zip(episodes.input_ids, episodes.attention_mask, strict=True)]
    prompt_lens = episodes.prompt_mask.sum(1).tolist()
    sampled = torch.zeros_like(episodes.completion_mask)  # [N, T] 1 where a vLLM sample lies
    active = list(range(len(rows)))
    for turn, requests in enumerate(calls):
        assert len(requests) == len(active), f"turn {turn}: one request per active episode"
        for i, req in zip(active, requests, strict=True):
            context, tokens = req["prompt"], req["tokens"]
            assert req["keys"] == ["prompt_token_ids"], "vLLM gets token ids, never text"
            assert rows[i][: len(context)] == context, f"episode {i} turn {turn}: the context was re-tokenised"
            assert rows[i][len(context) : len(context) + len(tokens)] == tokens, f"episode {i} turn {turn}: changed"
            start = len(context) - prompt_lens[i]  # the turn's first completion column
            room = settings["max_total_tokens"] - start
            assert req["max_tokens"] == min(settings["max_new_tokens"], room)
            assert req["seed"] == derive_seed(settings["seed"], i, turn) and req["stop_token_ids"] == [eos_id]
            logps = episodes.sampler_logprobs[i, start : start + len(tokens)]
            assert torch.equal(logps, torch.tensor(req["logprobs"])), "the sampler's log-probs are vLLM's"
            sampled[i, start : start + len(tokens)] = 1
        active = [i for i in active if len(episodes.turn_texts[i]) > turn + 1]
    assert not active, "every turn of every episode was sampled by vLLM"
    assert torch.equal(episodes.completion_mask, sampled), "the loss mask is exactly vLLM's tokens"
    real = episodes.attention_mask[:, episodes.prompt_len :]
    assert torch.equal(episodes.observation_mask, real - sampled), "every other token is the environment's"


def test_episode_rows_are_what_vllm_sampled_turn_by_turn(runs):
    tok, _, result = runs
    run = result["main"]
    episodes = run["episodes"]
    check_turns(episodes, run["calls"], run["settings"], tok.eos_token_id)
    turns = [len(t) for t in episodes.turn_texts]
    assert len(turns) == 6 and max(turns) > 1, "multi-turn episodes"
    assert len(set(turns)) > 1, "episodes end at different turns, so later turns sample a subset"
    assert len(run["calls"][0]) == 6, "the first turn sends each prompt once per episode of its group"


def test_environment_tokens_are_masked_out_of_the_loss(runs):
    tok, _, result = runs
    episodes = result["main"]["episodes"]
    assert episodes.observation_mask.any()
    assert not (episodes.completion_mask & episodes.observation_mask).any()
    assert (episodes.sampler_logprobs[episodes.observation_mask.bool()] == 0).all()
    for i in range(len(episodes.turn_texts)):
        env_text = tok.decode(episodes.completion_ids[i][episodes.observation_mask[i].bool()].tolist())
        assert env_text.replace("\n", "") == "go on" * env_text.count("go on"), "only observations are masked"


def test_trainer_logprobs_match_vllms_sampling_logprobs(runs):
    _, model, result = runs
    run = result["main"]
    episodes, temperature = run["episodes"], run["settings"]["temperature"]
    policy = Policy(model, temperature=temperature, share_prompts=False)
    logp = policy.logprobs(episodes.input_ids, episodes.attention_mask, episodes.prompt_len)  # [N, T]
    m = episodes.completion_mask.bool()
    gap = (logp - episodes.sampler_logprobs).abs()[m]
    assert m.sum() > 20 and float(gap.max()) < 1e-4, f"trainer and vLLM differ by up to {float(gap.max()):.3g} nats"


def test_seeds_make_episodes_reproducible(runs):
    _, _, result = runs
    main, again, other = (result[k]["episodes"] for k in ("main", "again", "other_seed"))
    assert torch.equal(main.completion_ids, again.completion_ids)
    assert main.turn_texts == again.turn_texts
    assert main.turn_texts != other.turn_texts


def test_the_checks_catch_contexts_retokenised_from_text(runs):
    """An engine fed each turn's context as re-tokenised text fails both checks."""
    tok, model, result = runs
    run = result["text"]
    episodes = run["episodes"]
    with pytest.raises(AssertionError, match="re-tokenised"):
        check_turns(episodes, run["calls"], run["settings"], tok.eos_token_id)
    policy = Policy(model, temperature=run["settings"]["temperature"], share_prompts=False)
    logp = policy.logprobs(episodes.input_ids, episodes.attention_mask, episodes.prompt_len)
    m = episodes.completion_mask.bool()
    assert float((logp - episodes.sampler_logprobs).abs()[m].max()) > 1e-2


def test_a_budget_beyond_max_model_len_is_refused_before_sampling(runs):
    _, _, result = runs
    assert "above the vLLM engine's max_model_len=256" in result["too_long"]
