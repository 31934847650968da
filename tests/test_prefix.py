"""The shared prompt prefix (rlvr.prefix) and the cache sampler (rlvr.sampler) against plain full passes."""

import math

import torch
from toymodels import char_tokenizer, tiny_llama, wide_tokenizer

from rlvr.policy import Policy
from rlvr.prefix import MIN_SHARED_HEAD, prompt_runs, shared_head
from rlvr.sampler import process_logits, sample_tokens
from rlvr.tokens import encode_prompts


def test_prompt_runs_merges_only_consecutive_equal_rows():
    ids = torch.tensor([[0, 1], [0, 1], [2, 3], [0, 1], [0, 1], [0, 1]])
    mask = torch.ones_like(ids)
    assert prompt_runs(ids, mask).tolist() == [2, 1, 3]
    mask[1, 0] = 0  # same ids, another mask: another prompt
    assert prompt_runs(ids, mask).tolist() == [1, 1, 1, 3]
    assert prompt_runs(ids[:0], mask[:0]).tolist() == []


def _batch(tok):
    """Two left-padded prompts x 3 rows, right-padded completions of lengths 1 to 5."""
    prompt_ids, prompt_mask = encode_prompts(tok, ["abcd", "fg"])  # [2, 4]
    prompt_ids, prompt_mask = prompt_ids.repeat_interleave(3, 0), prompt_mask.repeat_interleave(3, 0)
    gen = torch.Generator().manual_seed(0)
    completion = torch.randint(3, 14, (6, 5), generator=gen)
    lengths = torch.tensor([5, 1, 3, 2, 5, 4])
    completion_mask = (torch.arange(5)[None] < lengths[:, None]).long()
    completion = torch.where(completion_mask.bool(), completion, torch.full_like(completion, tok.pad_token_id))
    return torch.cat([prompt_ids, completion], 1), torch.cat([prompt_mask, completion_mask], 1), completion_mask


def test_shared_prompt_pass_equals_the_full_pass_in_values_and_gradients():
    tok = char_tokenizer()
    ids, att, cmask = _batch(tok)
    results = []
    for share in (True, False):
        model = tiny_llama(len(tok), seed=4)
        policy = Policy(model, temperature=0.7, share_prompts=share)
        assert policy._share_prompts(ids[:, :4], att[:, :4], 5) is share
        logp, entropy = policy(ids, att, prompt_len=4, with_entropy=True)
        (logp * cmask).sum().backward()
        results.append((logp * cmask, entropy * cmask, [p.grad.clone() for p in model.parameters()]))
    (lp_a, ent_a, grads_a), (lp_b, ent_b, grads_b) = results
    torch.testing.assert_close(lp_a, lp_b, atol=1e-5, rtol=0)
    torch.testing.assert_close(ent_a, ent_b, atol=1e-5, rtol=0)
    assert len(grads_a) == len(grads_b) > 0
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb, atol=1e-5, rtol=1e-4)
    assert any(float(g.abs().max()) > 1e-3 for g in grads_a)  # gradients reach the weights through the shared cache


def test_distinct_prompts_take_the_plain_pass():
    tok = char_tokenizer()
    ids, att, _ = _batch(tok)
    policy = Policy(tiny_llama(len(tok)), share_prompts=True)
    assert not policy._share_prompts(ids[::3, :4], att[::3, :4], 5)  # one row per prompt: nothing to share
    assert policy._share_prompts(ids[:, :4], att[:, :4], 5)


def test_process_logits_top_k_and_top_p_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    assert torch.isinf(process_logits(logits, 1.0, top_k=2)).tolist() == [[False, False, True]]
    assert torch.isinf(process_logits(logits, 1.0, top_p=0.6)).tolist() == [[False, False, True]]
    assert torch.isinf(process_logits(logits, 1.0, top_p=0.5)).tolist() == [[False, True, True]]
    assert torch.isinf(process_logits(logits, 1.0, top_p=0.81)).tolist() == [[False, False, False]]
    scaled = process_logits(logits, 2.0)
    torch.testing.assert_close(scaled, logits / 2.0)
    assert math.isclose(float(torch.softmax(process_logits(logits, 1.0, top_k=1), -1)[0, 0]), 1.0)


def test_rows_that_finish_early_leave_the_batch_without_disturbing_the_others():
    """Several end tokens make rows stop at different steps; every row's log-probs must still be the policy's."""
    tok = wide_tokenizer()
    model = tiny_llama(len(tok), seed=7, hidden=64).eval()
    prompt_ids, prompt_mask = encode_prompts(tok, ["abc", "hijk"])
    ends = list(range(3, 60))  # about a fifth of the vocabulary ends a row
    torch.manual_seed(1)
    tokens, logprobs = sample_tokens(
        model, prompt_ids, prompt_mask, n=6, max_new_tokens=10, eos_ids=ends, pad_id=tok.pad_token_id
    )
    ended = torch.isin(tokens, torch.tensor(ends))
    lengths = torch.where(ended.any(1), ended.int().argmax(1) + 1, torch.full((12,), tokens.shape[1]))
    assert len(set(lengths.tolist())) >= 3, "rows should end at different steps"
    mask = (torch.arange(tokens.shape[1])[None] < lengths[:, None]).long()
    assert (tokens[mask == 0] == tok.pad_token_id).all() and (logprobs[mask == 0] == 0).all()
    full_ids = torch.cat([prompt_ids.repeat_interleave(6, 0), tokens], 1)
    full_mask = torch.cat([prompt_mask.repeat_interleave(6, 0), mask], 1)
    policy_logp = Policy(model, share_prompts=False).logprobs(full_ids, full_mask, prompt_ids.shape[1])
    gap = (policy_logp - logprobs).abs()[mask.bool()]
    assert float(gap.max()) < 1e-4, float(gap.max())


def test_greedy_follows_the_argmax_of_the_full_pass():
    tok = wide_tokenizer()
    model = tiny_llama(len(tok), seed=5, hidden=64).eval()
    prompt_ids, prompt_mask = encode_prompts(tok, ["abc", "hijk"])
    tokens, _ = sample_tokens(
        model, prompt_ids, prompt_mask, n=2, max_new_tokens=6, eos_ids=[-1], pad_id=tok.pad_token_id, greedy=True
    )
    assert tokens.shape == (4, 6)
    assert torch.equal(tokens[0], tokens[1]) and torch.equal(tokens[2], tokens[3])
    for row in (0, 2):
        ids, mask = prompt_ids[row // 2 : row // 2 + 1], prompt_mask[row // 2 : row // 2 + 1]
        for t in range(6):
            with torch.no_grad():
                logits = model(
                    input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0)
                ).logits
            nxt = logits[0, -1].argmax()
            assert int(nxt) == int(tokens[row, t])
            ids, mask = torch.cat([ids, nxt.view(1, 1)], 1), torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype)], 1)


def test_draws_follow_the_distribution_and_never_pick_a_zero():
    from rlvr.sampler import _draw

    torch.manual_seed(0)
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.3, 0.2, 0.0]]).expand(40000, 6)
    counts = torch.bincount(_draw(probs), minlength=6).float() / 40000
    assert counts[[0, 2, 5]].sum() == 0
    torch.testing.assert_close(counts, probs[0], atol=0.01, rtol=0)
    assert _draw(torch.tensor([[0.0, 1.0, 0.0]])).tolist() == [1]


HEAD = "abcdefghij abcdefgh"  # 19 tokens: past MIN_SHARED_HEAD, like a system prompt every prompt starts with


def test_shared_head_counts_the_common_start_of_left_padded_prompts():
    ids = torch.tensor([[0, 0, 5, 6, 7, 8], [5, 6, 7, 9, 8, 8], [0, 5, 6, 7, 8, 1]])
    mask = (ids != 0).long()
    assert shared_head(ids, mask) == 3  # 5 6 7, then the rows part
    assert shared_head(ids[:1], mask[:1]) == 0  # one prompt shares with nobody
    same = torch.tensor([[0, 5, 6], [0, 5, 6]])
    assert shared_head(same, (same != 0).long()) == 1  # each prompt keeps its last token
    holes = mask.clone()
    holes[1, 2] = 0  # not left padding: no head
    assert shared_head(ids, holes) == 0


def _headed_batch(tok, repeats: int = 2):
    """Three distinct prompts of different lengths after one long common head, each repeated."""
    prompt_ids, prompt_mask = encode_prompts(tok, [HEAD + " hij", HEAD + "a", HEAD + " jj ab"])
    assert shared_head(prompt_ids, prompt_mask) >= MIN_SHARED_HEAD
    prompt_ids, prompt_mask = prompt_ids.repeat_interleave(repeats, 0), prompt_mask.repeat_interleave(repeats, 0)
    n = len(prompt_ids)
    gen = torch.Generator().manual_seed(3)
    completion = torch.randint(3, len(tok), (n, 4), generator=gen)
    lengths = torch.tensor([4, 1, 3, 2, 4, 3][:n])
    completion_mask = (torch.arange(4)[None] < lengths[:, None]).long()
    completion = torch.where(completion_mask.bool(), completion, torch.full_like(completion, tok.pad_token_id))
    return torch.cat([prompt_ids, completion], 1), torch.cat([prompt_mask, completion_mask], 1), prompt_ids.shape[1]


def test_a_shared_head_gives_the_full_pass_in_values_and_gradients():
    tok = char_tokenizer()
    for repeats in (1, 2):  # distinct prompts only; and prompts repeated in groups as well
        ids, att, p = _headed_batch(tok, repeats)
        cmask = att[:, p:]
        results = []
        for share in (True, False):
            model = tiny_llama(len(tok), seed=4)
            policy = Policy(model, temperature=0.7, share_prompts=share)
            assert policy._share_prompts(ids[:, :p], att[:, :p], 4) is share
            logp, entropy = policy(ids, att, prompt_len=p, with_entropy=True)
            (logp * cmask).sum().backward()
            results.append((logp * cmask, entropy * cmask, [q.grad.clone() for q in model.parameters()]))
        (lp_a, ent_a, grads_a), (lp_b, ent_b, grads_b) = results
        torch.testing.assert_close(lp_a, lp_b, atol=1e-5, rtol=0)
        torch.testing.assert_close(ent_a, ent_b, atol=1e-5, rtol=0)
        for ga, gb in zip(grads_a, grads_b, strict=True):
            torch.testing.assert_close(ga, gb, atol=1e-5, rtol=1e-4)
        assert any(float(g.abs().max()) > 1e-3 for g in grads_a)


def test_the_sampler_with_a_shared_head_draws_from_the_policy():
    tok = wide_tokenizer()
    model = tiny_llama(len(tok), seed=7, hidden=64).eval()
    prompt_ids, prompt_mask = encode_prompts(tok, [HEAD + " hij", HEAD + "a", HEAD + " jj ab"])
    assert shared_head(prompt_ids, prompt_mask) >= MIN_SHARED_HEAD
    torch.manual_seed(2)
    ends = list(range(3, 60))
    tokens, logprobs = sample_tokens(
        model, prompt_ids, prompt_mask, n=4, max_new_tokens=8, eos_ids=ends, pad_id=tok.pad_token_id, temperature=0.8
    )
    ended = torch.isin(tokens, torch.tensor(ends))
    lengths = torch.where(ended.any(1), ended.int().argmax(1) + 1, torch.full((12,), tokens.shape[1]))
    mask = (torch.arange(tokens.shape[1])[None] < lengths[:, None]).long()
    full_ids = torch.cat([prompt_ids.repeat_interleave(4, 0), tokens], 1)
    full_mask = torch.cat([prompt_mask.repeat_interleave(4, 0), mask], 1)
    plain = Policy(model, temperature=0.8, share_prompts=False).logprobs(full_ids, full_mask, prompt_ids.shape[1])
    gap = (plain - logprobs).abs()[mask.bool()]
    assert float(gap.max()) < 1e-4, float(gap.max())
    greedy, _ = sample_tokens(
        model, prompt_ids, prompt_mask, n=1, max_new_tokens=5, eos_ids=[-1], pad_id=tok.pad_token_id, greedy=True
    )
    for row in range(3):  # each distinct prompt alone takes the plain path: the same greedy tokens
        alone, _ = sample_tokens(
            model,
            prompt_ids[row : row + 1, prompt_mask[row].argmax() :],
            prompt_mask[row : row + 1, prompt_mask[row].argmax() :],
            n=1,
            max_new_tokens=5,
            eos_ids=[-1],
            pad_id=tok.pad_token_id,
            greedy=True,
        )
        assert torch.equal(alone[0], greedy[row])


def test_a_reserved_cache_holds_what_a_growing_one_does():
    from transformers import DynamicCache

    from rlvr.sampler import _ReservedLayer, reserve

    gen = torch.Generator().manual_seed(0)
    k, v = torch.randn(3, 2, 5, 4, generator=gen), torch.randn(3, 2, 5, 4, generator=gen)
    plain, reserved = DynamicCache(), DynamicCache()
    plain.update(k, v, 0)
    reserved.update(k.clone(), v.clone(), 0)
    reserved = reserve(reserved, room=2)
    assert reserve(DynamicCache(), room=2, repeats=3).get_seq_length() == 0  # nothing cached: nothing to reserve
    assert type(reserved.layers[0]) is _ReservedLayer
    for step in range(4):  # past the room: it grows
        if step == 1:
            plain.batch_select_indices(torch.tensor([0, 2]))
            reserved.batch_select_indices(torch.tensor([0, 2]))
        rows = plain.layers[0].keys.shape[0]
        new_k, new_v = torch.randn(rows, 2, 1, 4, generator=gen), torch.randn(rows, 2, 1, 4, generator=gen)
        out_plain, out_reserved = plain.update(new_k, new_v, 0), reserved.update(new_k, new_v, 0)
        for a, b in zip(out_plain, out_reserved, strict=True):
            assert torch.equal(a, b)
    assert reserved.get_seq_length() == plain.get_seq_length() == 9
    reserved.batch_repeat_interleave(2)
    plain.batch_repeat_interleave(2)
    assert torch.equal(reserved.layers[0].keys, plain.layers[0].keys)
    grouped, expected = DynamicCache(), DynamicCache()
    grouped.update(k.clone(), v.clone(), 0)
    expected.update(k.clone(), v.clone(), 0)
    grouped = reserve(grouped, room=1, repeats=3)  # each row becomes 3, as the sampler's groups do
    expected.batch_repeat_interleave(3)
    assert torch.equal(grouped.layers[0].keys, expected.layers[0].keys)
    assert torch.equal(grouped.layers[0].values, expected.layers[0].values)


def test_sampling_over_a_reserved_cache_draws_what_a_growing_cache_does(monkeypatch):
    import rlvr.sampler

    tok = wide_tokenizer()
    model = tiny_llama(len(tok), seed=7, hidden=64).eval()
    prompt_ids, prompt_mask = encode_prompts(tok, ["abc", "hijk", HEAD])
    ends = list(range(3, 40))
    draws = []
    for reserving in (True, False):
        if not reserving:
            monkeypatch.setattr(
                rlvr.sampler, "reserve", lambda cache, room, repeats: cache.batch_repeat_interleave(repeats) or cache
            )
        torch.manual_seed(5)
        draws.append(
            sample_tokens(model, prompt_ids, prompt_mask, n=4, max_new_tokens=9, eos_ids=ends, pad_id=tok.pad_token_id)
        )
    (tokens_a, logp_a), (tokens_b, logp_b) = draws
    assert torch.equal(tokens_a, tokens_b)
    torch.testing.assert_close(logp_a, logp_b, atol=1e-5, rtol=0)
    assert tokens_a.shape[1] > 1
