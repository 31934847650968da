import pytest
import torch
from toymodels import char_tokenizer, tiny_llama, wide_tokenizer

from rlvr.rollout import SamplingParams, TransformersEngine
from rlvr.tokens import render_prompt


@pytest.fixture(scope="module")
def engine():
    tok = char_tokenizer()
    return TransformersEngine(tiny_llama(len(tok), seed=3), tok, chat_template=False)


def test_groups_shapes_and_seeded_reproducibility(engine):
    params = SamplingParams(n=3, max_new_tokens=5, seed=11)
    a = engine.generate(["abc", "de"], params)
    b = engine.generate(["abc", "de"], params)
    assert a.texts == b.texts and torch.equal(a.completion_ids, b.completion_ids)
    assert a.group.tolist() == [0, 0, 0, 1, 1, 1]
    assert a.completion_ids.shape == (6, 5) and a.prompt_ids.shape == (6, 3)
    assert a.prompt_mask[3:].tolist() == [[0, 1, 1]] * 3  # left padding
    c = engine.generate(["abc", "de"], SamplingParams(n=3, max_new_tokens=5, seed=12))
    assert c.texts != a.texts


def test_masks_lengths_and_finish_reasons(engine):
    r = engine.generate(["abc"] * 4, SamplingParams(n=8, max_new_tokens=6, seed=0))
    eos = engine.tokenizer.eos_token_id
    for row, mask, reason, text, logp in zip(
        r.completion_ids.tolist(),
        r.completion_mask.tolist(),
        r.finish_reasons,
        r.texts,
        r.sampler_logprobs,
        strict=True,
    ):
        length = sum(mask)
        assert mask == [1] * length + [0] * (6 - length)  # a prefix
        if reason == "stop":
            assert row[length - 1] == eos and eos not in row[: length - 1]
        else:
            assert length == 6 and eos not in row
        assert text == engine.tokenizer.decode(row[:length], skip_special_tokens=True)
        assert (logp[length:] == 0).all() and (logp[:length] < 0).all()
    assert {"stop", "length"} <= set(r.finish_reasons) or len(set(r.finish_reasons)) == 1


def test_stop_strings_cut_the_text_and_the_mask(engine):
    r = engine.generate(["abc"], SamplingParams(n=16, max_new_tokens=8, seed=5, stop=("a",)))
    stopped = [
        i for i, t in enumerate(r.finish_reasons) if t == "stop" and "a" in engine.tokenizer.decode(r.completion_ids[i])
    ]
    assert stopped, "some sample should have produced the stop string"
    for i in stopped:
        length = int(r.completion_mask[i].sum())
        assert "a" not in r.texts[i]
        assert (
            engine.tokenizer.decode(r.completion_ids[i, :length]).endswith("a") or r.completion_ids[i, length - 1] == 1
        )


def test_bad_params_and_prompts(engine):
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match=">= 1"):
        SamplingParams(n=0)
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        TransformersEngine(engine.model, engine.tokenizer, chat_template=False, max_prompt_tokens=2).generate(
            ["abcdef"], SamplingParams()
        )
    with pytest.raises(ValueError, match="chat template"):
        render_prompt(engine.tokenizer, ({"role": "user", "content": "x"},))
    with pytest.raises(ValueError, match="it was built with"):
        engine.sync_weights(tiny_llama(14))
    engine.sync_weights(engine.model)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 1.7])
def test_the_sampler_samples_the_policy(temperature):
    """The sampler's log-probs are the policy's, whatever the model's own generation config says.

    A model's ``generation_config.json`` often sets top-k, top-p or a repetition
    penalty; ``transformers`` applies top-k 50 unless told 0. Any of them makes the
    sampled distribution differ from the one the loss differentiates.
    """
    from rlvr.policy import Policy

    tok = wide_tokenizer()
    model = tiny_llama(len(tok), seed=7, hidden=64)
    with torch.no_grad():  # spread the logits so that truncation and penalties would show
        model.lm_head.weight.mul_(8.0)
    gen = model.generation_config
    gen.top_k, gen.top_p, gen.repetition_penalty, gen.min_p = 5, 0.5, 1.5, 0.2
    gen.no_repeat_ngram_size, gen.temperature, gen.do_sample = 2, 0.1, True
    engine = TransformersEngine(model, tok, chat_template=False)
    r = engine.generate(["abc", "hij"], SamplingParams(n=8, max_new_tokens=12, temperature=temperature, seed=3))
    assert len(set(r.completion_ids.flatten().tolist())) > 50, "the samples should range over a wide vocabulary"
    policy = Policy(model, temperature=temperature)
    logp = policy.logprobs(r.input_ids, r.attention_mask, r.prompt_len)
    mask = r.completion_mask.bool()
    gap = (logp - r.sampler_logprobs).abs()[mask]
    assert float(gap.max()) < 1e-4, f"sampler and policy disagree by up to {float(gap.max()):.3g} nats"


def test_an_unseeded_call_draws_from_the_global_rng(engine):
    params = SamplingParams(n=8, max_new_tokens=6)
    torch.manual_seed(0)
    first = engine.generate(["abc"], params)
    second = engine.generate(["abc"], params)
    assert not torch.equal(first.completion_ids, second.completion_ids)
    torch.manual_seed(0)
    assert torch.equal(engine.generate(["abc"], params).completion_ids, first.completion_ids)


def test_derived_seeds_never_collide_across_seed_step_and_row():
    from rlvr.rollout import derive_seed

    grid = [(s, step, row) for s in range(3) for step in range(40) for row in range(16)]
    seeds = [derive_seed(*key) for key in grid]
    assert len(set(seeds)) == len(grid) and all(0 <= x < 2**63 for x in seeds)
    # The additive scheme it replaces reused row r's stream for row r + 1 one step later.
    additive = [s * 1_000_003 + step + row for s, step, row in grid]
    assert len(set(additive)) < len(grid)
    assert derive_seed(1, 2) == derive_seed(1, 2) != derive_seed(2, 1)
    with pytest.raises(ValueError):
        derive_seed(-1)
