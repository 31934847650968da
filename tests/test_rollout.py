import pytest
import torch
from toymodels import char_tokenizer, tiny_llama

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
